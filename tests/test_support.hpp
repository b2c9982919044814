// What many tests need: the build's plugins in one registry, and a scratch
// directory that cleans up after itself.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "registry.hpp"

namespace ssm_test {

// A registry of the plugin folders `dirs` (searched in this order), loaded
// once per test executable and list of folders.
inline ssmhost::Registry& registry_of(const std::vector<std::string>& dirs) {
  static std::map<std::vector<std::string>, std::unique_ptr<ssmhost::Registry>> loaded;
  std::unique_ptr<ssmhost::Registry>& reg = loaded[dirs];
  if (!reg) {
    reg = std::make_unique<ssmhost::Registry>();
    for (const std::string& d : dirs) reg->add_path(d);
    reg->load();
  }
  return *reg;
}

// The build's real plugins.
inline ssmhost::Registry& plugin_registry() { return registry_of({SSM_TEST_PLUGIN_DIR}); }

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "ssm_test") {
    std::string name = "/tmp/" + tag + "_XXXXXX";
    REQUIRE(mkdtemp(name.data()) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// What a run of the real ssmhost binary did.
struct Run {
  int status = -1;  // the exit code; 128 + signal if it crashed
  std::string out, err;
};

// Runs `ssmhost ARGS` (shell words) in `dir`, SSM_PLUGIN_PATH cleared (the
// binary finds the build's plugins by itself); stdout and stderr captured.
inline Run run_ssmhost(const std::filesystem::path& dir, const std::string& args) {
  const std::filesystem::path out = dir / ".stdout", err = dir / ".stderr";
  const std::string cmd = "cd '" + dir.string() + "' && env -u SSM_PLUGIN_PATH '" SSM_TEST_SSMHOST "' " + args + " >'" +
                          out.string() + "' 2>'" + err.string() + "'";
  const int raw = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  Run r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = slurp(out);
  r.err = slurp(err);
  std::error_code ignored;
  std::filesystem::remove(out, ignored);
  std::filesystem::remove(err, ignored);
  return r;
}

}  // namespace ssm_test
