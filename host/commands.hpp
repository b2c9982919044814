// The subcommands' entry points and what they share.
#pragma once

#include <boost/program_options/variables_map.hpp>
#include <string>
#include <vector>

#include "error.hpp"

namespace ssmhost {

class Registry;

// A mistake in the command line itself (exit status 2, not 1).
struct UsageError : Error {
  using Error::Error;
};

// Adds --plugin-path entries, then the default search path, loads every
// plugin and reports what happened (report_load).
void load_registry(Registry& reg, const boost::program_options::variables_map& vm);

// Prints load issues and shadowed names as warnings; with --strict-plugins
// (or SSM_STRICT_PLUGINS=1) a shadowed name is an error instead.
void report_load(const Registry& reg);

// Whether --strict-plugins was given (anywhere on the command line) or
// SSM_STRICT_PLUGINS is set to 1.
bool strict_plugins();

int run_train(const std::vector<std::string>& args);
std::string train_help();
int run_report(const std::vector<std::string>& args);
std::string report_help();
int run_validate(const std::vector<std::string>& args);
std::string validate_help();
int run_plot(const std::vector<std::string>& args);
std::string plot_help();
int run_bench(const std::vector<std::string>& args);
std::string bench_help();
int run_sweep(const std::vector<std::string>& args);
std::string sweep_help();
int run_generate(const std::vector<std::string>& args);
std::string generate_help();

}  // namespace ssmhost
