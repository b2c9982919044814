// The ssmhost command line (Boost.Program_options): one function per
// subcommand, each with its own options and help text.
#include "cli.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>

#include <ssm/sdk.hpp>

#include "commands.hpp"
#include "registry.hpp"

namespace po = boost::program_options;

namespace ssmhost {

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
  std::string (*help)();
};

const std::vector<Subcommand>& subcommands();

const char* kIntro =
    "ssmhost: train and run structured state space models (S4, S4D, S6, H3, Mamba) from plugins.\n"
    "\n"
    "Usage:\n"
    "  ssmhost [train] --layer LAYER --task TASK [options]   train a model (train is the default)\n"
    "  ssmhost SUBCOMMAND [options]\n"
    "\n"
    "Examples:\n"
    "  ssmhost --layer s4dz --task selective_copy            S4D + ZOH on selective copying\n"
    "  ssmhost --layer s4d --task sfashion --preset s4d-example --epochs 10\n"
    "  ssmhost list                                          every plugin found\n"
    "  ssmhost info s4d                                      what a plugin is and its options\n"
    "  ssmhost report runs/selective_copy-s4dz-*.h5         a run's configuration and summary\n"
    "  ssmhost report runs/ --sort -best                     every run as one table, best first\n"
    "  ssmhost plot runs/ --metric accuracy --out acc.png    eval accuracy of every run on one chart\n"
    "  ssmhost generate runs/lm.h5 --prompt 'Q: ' --length 200  text from a char_lm run\n"
    "\n";

std::string general_help() {
  std::ostringstream o;
  o << kIntro << "Subcommands:\n";
  for (const Subcommand& s : subcommands()) {
    std::string n = s.name;
    o << "  " << n << std::string(n.size() < 10 ? 10 - n.size() : 1, ' ') << s.summary << "\n";
  }
  o << "\nGlobal options:\n"
       "  --plugin-path DIR    also search DIR (or a single .so) for plugins; repeatable.\n"
       "                       Searched first, then $SSM_PLUGIN_PATH (colon-separated), then the\n"
       "                       build tree or the install prefix's lib/ssm/plugins.\n"
       "  --strict-plugins     a plugin that shadows another's id, alias or suffix is an error, not\n"
       "                       a warning (also: SSM_STRICT_PLUGINS=1)\n"
       "  --help, -h           this text; `ssmhost help SUBCOMMAND` for one subcommand\n"
       "  --version            the host version and its plugin ABI version\n";
  return o.str();
}

// ------------------------------------------------------------------- list

po::options_description list_options() {
  po::options_description d("ssmhost list [options]");
  d.add_options()("format", po::value<std::string>()->default_value("table"), "table (for people) or tsv (for tools)")(
      "kind", po::value<std::string>(), "only plugins of this kind: layer, disc, dataset, task")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "also search this folder or file; repeatable");
  return d;
}

std::string list_help() {
  std::ostringstream o;
  o << "List every plugin found, with its kind, version and ABI.\n"
       "With --format tsv: a header line, then one row per plugin with the columns\n"
       "id, kind, version, abi, path, description (tab-separated).\n"
       "Files that could not be loaded are reported on stderr; the exit status is still 0.\n\n"
    << list_options();
  return o.str();
}

po::variables_map parse(const std::vector<std::string>& args, const po::options_description& d,
                        const po::positional_options_description* pos = nullptr) {
  po::variables_map vm;
  po::command_line_parser p(args);
  p.options(d);
  if (pos) p.positional(*pos);
  po::store(p.run(), vm);
  po::notify(vm);
  return vm;
}

int run_list(const std::vector<std::string>& args) {
  po::variables_map vm = parse(args, list_options());
  std::string format = vm["format"].as<std::string>();
  if (format != "table" && format != "tsv")
    throw UsageError("--format must be 'table' or 'tsv', got '" + format + "'");
  int kind_filter = 0;
  if (vm.count("kind")) {
    std::string k = vm["kind"].as<std::string>();
    for (int i = SSM_KIND_LAYER; i <= SSM_KIND_TASK; ++i)
      if (k == kind_name(static_cast<ssm_kind>(i))) kind_filter = i;
    if (!kind_filter) throw UsageError("--kind must be one of layer, disc, dataset, task; got '" + k + "'");
  }
  Registry reg;
  load_registry(reg, vm);
  std::vector<const PluginInfo*> rows;
  for (const PluginInfo* p : reg.plugins())
    if (!kind_filter || p->kind == kind_filter) rows.push_back(p);
  for (const PluginInfo* p : reg.shadowed())  // listed after the usable ones, marked
    if (!kind_filter || p->kind == kind_filter) rows.push_back(p);
  // "ok", or which file takes this plugin's id ("shadowed by F") or suffix.
  auto status = [](const PluginInfo* p) {
    if (!p->shadowed_by.empty()) return "shadowed by " + p->shadowed_by;
    if (!p->suffix_shadowed_by.empty()) return "suffix '" + p->suffix + "' shadowed by " + p->suffix_shadowed_by;
    return std::string("ok");
  };
  if (format == "tsv") {
    std::cout << "id\tkind\tversion\tabi\tpath\tdescription\tstatus\n";
    for (const PluginInfo* p : rows)
      std::cout << p->id << '\t' << kind_name(p->kind) << '\t' << p->version << '\t' << p->abi_major << '.'
                << p->abi_minor << '\t' << p->path << '\t' << p->description << '\t' << status(p) << '\n';
  } else {
    std::vector<std::string> ids;  // id and aliases, e.g. "seq_image (sfashion, smnist)"
    size_t width = 2;
    for (const PluginInfo* p : rows) {
      std::string id = p->id;
      for (size_t i = 0; i < p->aliases.size(); ++i) id += (i ? ", " : " (") + p->aliases[i];
      if (!p->aliases.empty()) id += ")";
      width = std::max(width, id.size());
      ids.push_back(id);
    }
    const int w = static_cast<int>(width);
    std::printf("%-*s  %-7s %-8s %-5s %s\n", w, "ID", "KIND", "VERSION", "ABI", "DESCRIPTION");
    for (size_t r = 0; r < rows.size(); ++r) {
      const PluginInfo* p = rows[r];
      std::string abi = std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor);
      std::string st = status(p);
      std::string description = st == "ok" ? p->description : "[" + st + "] " + p->description;
      std::printf("%-*s  %-7s %-8s %-5s %s\n", w, ids[r].c_str(), kind_name(p->kind), p->version.c_str(), abi.c_str(),
                  description.c_str());
    }
    std::printf("\n%zu plugins from: ", rows.size());
    for (size_t i = 0; i < reg.paths().size(); ++i) std::printf("%s%s", i ? ", " : "", reg.paths()[i].c_str());
    std::printf("\n");
  }
  return 0;
}

// ------------------------------------------------------------------- info

po::options_description info_options() {
  po::options_description d("ssmhost info ID [options]");
  d.add_options()("id", po::value<std::string>(), "plugin id or alias (a layer name may carry a discretization suffix)")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "also search this folder or file; repeatable");
  return d;
}

std::string info_help() {
  std::ostringstream o;
  o << "Describe one plugin: what it is, where it was loaded from, and every option it takes\n"
       "with its type, default and meaning. Options are given to `ssmhost train` as --name-with-dashes\n"
       "or through --set KEY=VALUE.\n\n"
    << info_options();
  return o.str();
}

// Which devices and dtypes a layer or discretization serves (ABI 1.1
// supports()), asked of an instance made with its defaults.
void print_serves(Registry& reg, const PluginInfo& p, const std::string& name) {
  if (p.kind != SSM_KIND_LAYER && p.kind != SSM_KIND_DISC) return;
  const std::vector<std::pair<DLDevice, DLDataType>> pairs =
      p.kind == SSM_KIND_LAYER
          ? std::vector<std::pair<DLDevice, DLDataType>>{{{kDLCPU, 0}, {kDLFloat, 32, 1}}, {{kDLCPU, 0}, {kDLFloat, 64, 1}},
                                                         {{kDLCUDA, 0}, {kDLFloat, 32, 1}}, {{kDLCUDA, 0}, {kDLFloat, 64, 1}}}
          : std::vector<std::pair<DLDevice, DLDataType>>{{{kDLCPU, 0}, {kDLComplex, 64, 1}}, {{kDLCPU, 0}, {kDLComplex, 128, 1}},
                                                         {{kDLCUDA, 0}, {kDLComplex, 64, 1}}, {{kDLCUDA, 0}, {kDLComplex, 128, 1}}};
  std::string served;
  try {
    std::unique_ptr<LayerObject> layer;
    std::unique_ptr<DiscObject> disc;
    if (p.kind == SSM_KIND_LAYER)
      layer = reg.create_layer(name, {{"d_model", "8"}});
    else
      disc = reg.create_disc(name, {});
    for (auto& [dev, dtype] : pairs)
      if (layer ? layer->supports(dev, dtype) : disc->supports(dev, dtype))
        served += (served.empty() ? "" : ", ") + std::string(dev.device_type == kDLCPU ? "cpu " : "cuda ") +
                  ssm::dtype_name(dtype);
    if (served.empty()) served = "nothing it was asked about";
  } catch (const std::exception& e) {
    served = std::string("unknown (it could not be created with its defaults: ") + e.what() + ")";
  }
  std::cout << "\nServes: " << served << "\n";
}

// A task's run defaults: what `--task ID` alone trains with. They sit below
// --preset, --config and the command line, which win.
void print_run_defaults(Registry& reg, const PluginInfo& p) {
  if (p.kind != SSM_KIND_TASK) return;
  std::cout << "\nRun defaults (`ssmhost --task " << p.id
            << "` alone trains with these; --preset, --config and the command line win,\n"
               "and giving --steps clears a default --epochs and the other way round):\n";
  try {
    KV defaults = reg.create_task(p.id, {})->run_defaults();
    if (defaults.empty()) std::cout << "  (none: the host's defaults, `ssmhost help train`)\n";
    for (const auto& kv : defaults) {
      std::string flag = "--" + kv.first;
      for (char& c : flag)
        if (c == '_') c = '-';
      std::printf("  %-20s %s\n", flag.c_str(), kv.second.c_str());
    }
  } catch (const std::exception& e) {
    std::cout << "  unknown: the task could not be created with its defaults (" << e.what() << ")\n";
  }
}

int run_info(const std::vector<std::string>& args) {
  po::positional_options_description pos;
  pos.add("id", 1);
  po::variables_map vm = parse(args, info_options(), &pos);
  if (!vm.count("id")) throw UsageError("info needs a plugin id, e.g. `ssmhost info s4d` (see `ssmhost list`)");
  std::string id = vm["id"].as<std::string>();
  Registry reg;
  load_registry(reg, vm);
  const PluginInfo* p = nullptr;
  std::string disc;
  for (int k = SSM_KIND_LAYER; k <= SSM_KIND_TASK && !p; ++k) p = reg.find(static_cast<ssm_kind>(k), id);
  if (!p) {
    try {
      auto r = reg.resolve_layer(id);
      p = r.first;
      disc = r.second;
    } catch (const Error&) {
      std::string msg = "no plugin named '" + id + "'";
      std::vector<std::string> close;
      for (int k = SSM_KIND_LAYER; k <= SSM_KIND_TASK; ++k)
        for (auto& c : reg.close_matches(static_cast<ssm_kind>(k), id)) close.push_back(c);
      if (!close.empty()) {
        msg += "; did you mean ";
        for (size_t i = 0; i < close.size(); ++i) msg += (i ? ", " : "") + ("'" + close[i] + "'");
        msg += "?";
      }
      for (const LoadIssue& is : reg.issues())
        if (is.path.find(id) != std::string::npos) msg += "\n  note: " + is.message;
      throw Error(msg + " (`ssmhost list` shows every plugin)");
    }
  }
  std::cout << p->id << " (" << kind_name(p->kind) << " plugin, version " << p->version << ", ABI " << p->abi_major
            << "." << p->abi_minor << ")\n  " << p->description << "\n  file: " << p->path << "\n";
  if (!disc.empty()) std::cout << "  '" << id << "' = layer '" << p->id << "' with discretization '" << disc << "'\n";
  if (!p->aliases.empty()) {
    std::cout << "  aliases:";
    for (auto& a : p->aliases) std::cout << " " << a;
    std::cout << "\n";
  }
  if (!p->suffix.empty())
    std::cout << "  layer suffix: '" << p->suffix << "' (e.g. s4d" << p->suffix << " = s4d with " << p->id << ")\n";
  std::cout << "\nOptions:\n";
  if (p->options.empty()) std::cout << "  (none)\n";
  for (const OptionInfo& o : p->options) {
    std::string flag = "--" + o.name;
    for (char& c : flag)
      if (c == '_') c = '-';
    std::string def = o.required ? "required" : "default: " + (o.default_value.empty() ? "\"\"" : o.default_value);
    std::string type = o.type, help = o.help;
    if (o.plugin_kind) {  // the value names a plugin: say which are there
      type = kind_name(static_cast<ssm_kind>(o.plugin_kind));
      std::string names;
      for (const PluginInfo* q : reg.plugins())
        if (q->kind == o.plugin_kind) names += (names.empty() ? "" : ", ") + q->id;
      help += " [a " + type + " plugin: " + (names.empty() ? "none found" : names) + "]";
    }
    std::printf("  %-20s %-7s %-20s %s\n", flag.c_str(), type.c_str(), def.c_str(), help.c_str());
  }
  print_serves(reg, *p, id);
  print_run_defaults(reg, *p);
  return 0;
}

// ------------------------------------------------------------------- help

int run_help(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cout << general_help();
    return 0;
  }
  for (const Subcommand& s : subcommands())
    if (args[0] == s.name) {
      std::cout << s.help();
      return 0;
    }
  throw UsageError("no subcommand '" + args[0] + "'; `ssmhost help` lists them");
}

std::string help_help() { return "ssmhost help [SUBCOMMAND]: general help, or one subcommand's options.\n"; }

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> all = {
      {"train", "train a model on a task and write an HDF5 run log (the default)", run_train, train_help},
      {"list", "list the plugins found (--format tsv for tools)", run_list, list_help},
      {"info", "describe one plugin and all of its options", run_info, info_help},
      {"report", "one run log in detail, or many as a table (--sort, --filter, --format, --follow)", run_report,
       report_help},
      {"plot", "training curves or results of runs as an SVG or PNG chart", run_plot, plot_help},
      {"bench", "median training step, inference time and peak memory per layer and length", run_bench,
       bench_help},
      {"sweep", "train the cross product of option lists, one log each (--jobs, --index)", run_sweep, sweep_help},
      {"validate", "check a plugin: create it, run it, check its gradients", run_validate, validate_help},
      {"generate", "text from a trained language model (char_lm run), in recurrent step mode", run_generate,
       generate_help},
      {"help", "help on a subcommand", run_help, help_help},
  };
  return all;
}

}  // namespace

namespace {
bool g_strict_plugins = false;
}

bool strict_plugins() {
  const char* env = std::getenv("SSM_STRICT_PLUGINS");
  return g_strict_plugins || (env && std::string(env) == "1");
}

void report_load(const Registry& reg) {
  for (const LoadIssue& is : reg.issues()) std::fprintf(stderr, "ssmhost: warning: %s\n", is.message.c_str());
  if (reg.shadowings().empty()) return;
  if (strict_plugins()) {
    std::string msg = "--strict-plugins: plugins clash:";
    for (const Shadowing& s : reg.shadowings()) msg += "\n  " + s.message;
    throw Error(msg + "\n  remove one of each pair from the plugin path, or drop --strict-plugins to let the first win");
  }
  for (const Shadowing& s : reg.shadowings())
    std::fprintf(stderr, "ssmhost: warning: %s (--strict-plugins makes this an error)\n", s.message.c_str());
}

void load_registry(Registry& reg, const po::variables_map& vm) {
  if (vm.count("plugin-path"))
    for (const std::string& p : vm["plugin-path"].as<std::vector<std::string>>()) reg.add_path(p);
  reg.add_default_paths();
  reg.load();
  report_load(reg);
}

int cli_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // --strict-plugins is global and may stand anywhere.
  for (auto it = args.begin(); it != args.end();)
    if (*it == "--strict-plugins") {
      g_strict_plugins = true;
      it = args.erase(it);
    } else {
      ++it;
    }
  try {
    if (args.empty()) {
      std::cout << general_help();
      return 0;
    }
    // Global options may come before the subcommand: move them after it.
    std::vector<std::string> globals;
    while (args.size() >= 2 && (args[0] == "--plugin-path" || args[0].rfind("--plugin-path=", 0) == 0)) {
      size_t n = args[0] == "--plugin-path" ? 2 : 1;
      globals.insert(globals.end(), args.begin(), args.begin() + n);
      args.erase(args.begin(), args.begin() + n);
    }
    bool subcommand_next = false;
    for (const Subcommand& s : subcommands()) subcommand_next |= !args.empty() && args[0] == s.name;
    args.insert(subcommand_next ? args.begin() + 1 : args.begin(), globals.begin(), globals.end());
    const std::string& first = args[0];
    if (first == "--version") {
      std::cout << "ssmhost " << SSMHOST_VERSION << " (plugin ABI " << SSM_ABI_MAJOR << "." << SSM_ABI_MINOR << ")\n";
      return 0;
    }
    if (first == "--help" || first == "-h") return run_help({});
    for (const Subcommand& s : subcommands())
      if (first == s.name) {
        std::vector<std::string> rest(args.begin() + 1, args.end());
        for (const std::string& a : rest)
          if (a == "--help" || a == "-h") {
            std::cout << s.help();
            return 0;
          }
        return s.run(rest);
      }
    if (first.rfind("-", 0) == 0) {  // options without a subcommand: train
      for (const std::string& a : args)
        if (a == "--help" || a == "-h") return run_help({});
      return run_train(args);
    }
    throw UsageError("unknown subcommand '" + first + "'; subcommands are train, list, info, report, plot, bench, sweep, validate, generate, help " +
                     "(`ssmhost --help` explains them)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "ssmhost: error: %s\n", e.what());
    return 2;
  } catch (const po::error& e) {
    std::fprintf(stderr, "ssmhost: error: %s (see `ssmhost help %s`)\n", e.what(),
                 args.empty() || args[0].rfind("-", 0) == 0 ? "train" : args[0].c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssmhost: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace ssmhost
