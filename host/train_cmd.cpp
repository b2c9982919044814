// `ssmhost train`: resolves the run's options and starts the trainer.
//
// Options are layered, later wins: built-in defaults < the task's run
// defaults < --preset < --config FILE < the command line. Options a plugin
// declares (see `ssmhost info ID`) are accepted as --name-with-dashes too.
#include <sys/stat.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "commands.hpp"
#include "names.hpp"
#include "options.hpp"
#include "registry.hpp"
#include "trainer.hpp"

namespace ssmhost {

namespace {

struct HostOption {
  const char* name;  // snake_case key; the flag is --name-with-dashes
  const char* default_value;
  const char* help;
};

// Every host option of a run. An empty default means "not set": the plugin's
// own default applies and the key is not passed on.
const std::vector<HostOption>& host_options() {
  static const std::vector<HostOption> all = {
      {"layer", "", "layer plugin, e.g. s4d, or s4dz / s4db to pick its discretization by suffix"},
      {"disc", "", "discretization plugin for the layer (zoh, bilinear, ...); default: the layer's"},
      {"task", "", "task plugin, e.g. copy, selective_copy, sfashion"},
      {"dataset", "", "dataset plugin for tasks that read one, e.g. fashion-mnist"},
      {"preset", "", "a named configuration: s4d-example (the official S4D example model)"},
      {"config", "", "read options from FILE (lines 'key = value'); the command line wins"},
      {"steps", "1000", "training steps (giving --steps clears a default or preset --epochs)"},
      {"epochs", "0", "passes over a finite training set (0: use --steps; giving it clears a default --steps)"},
      {"batch_size", "32", "examples per step"},
      {"seq_len", "", "sequence length, for tasks that let you choose it"},
      {"eval_seq_len", "", "also evaluate at these sequence lengths (e.g. 256,1024,4096), for tasks that take --seq-len"},
      {"d_model", "64", "model width H"},
      {"n_layers", "2", "number of residual blocks"},
      {"d_state", "64", "SSM state size N"},
      {"dropout", "0", "dropout probability, in blocks and inside layers"},
      {"lr", "0.001", "peak learning rate (SSM parameters are capped by their layer, e.g. 1e-3)"},
      {"weight_decay", "0.01", "AdamW weight decay (SSM parameters get none)"},
      {"warmup", "0", "steps of linear learning-rate warm-up"},
      {"schedule", "cosine", "learning-rate schedule after warm-up: cosine or constant"},
      {"clip", "0", "clip the global gradient norm to this (0: no clipping)"},
      {"eval_every", "100", "evaluate every N steps (and at the end)"},
      {"patience", "0", "stop after N evaluations without improvement (0: never)"},
      {"seed", "0", "seed of everything random: same seed and threads, same losses bit for bit"},
      {"eval_seed", "1234", "seed of generated evaluation data (fixed, so runs compare)"},
      {"threads", "0", "CPU threads (0: all cores; at most 4 per core)"},
      {"device", "cpu", "cpu (cuda[:N] is not available in this version)"},
      {"log", "", "run log path (default runs/<task>-<layer>-<UTC time>.h5; with --resume X.ckpt: X)"},
      {"overwrite", "false", "replace an existing run log (and its checkpoint) at --log"},
      {"resume", "", "continue the run saved in this checkpoint (<log>.ckpt), appending to its log"},
      {"checkpoint_every", "0", "also checkpoint every N steps (always at the end)"},
      {"stop_at", "0", "stop after step N with a checkpoint, as if interrupted (0: run to the end)"},
      {"norm", "layer", "normalisation in blocks: layer (LayerNorm) or rms (RMSNorm)"},
      {"prenorm", "false", "pre-norm residual blocks (default post-norm, as the S4 example)"},
      {"quiet", "false", "no progress lines"},
      {"log_kernels", "false",
       "at every evaluation, record the layers' convolution kernels (first 8 channels, up to 1024 lags) in the log's "
       "/kernels, for `ssmhost plot --kernels`"},
  };
  return all;
}

const std::map<std::string, KV>& presets() {
  static const std::map<std::string, KV> all = {
      // The official S4D example (state-spaces/s4 example.py) on sequential images.
      {"s4d-example",
       {{"layer", "s4d"},
        {"d_model", "128"},
        {"n_layers", "4"},
        {"d_state", "64"},
        {"dropout", "0.1"},
        {"lr", "0.01"},
        {"lr_ssm", "0.001"},
        {"weight_decay", "0.01"},
        {"batch_size", "64"},
        {"norm", "layer"},
        {"prenorm", "false"},
        {"schedule", "cosine"},
        {"warmup", "0"}}},
  };
  return all;
}

bool is_host_option(const std::string& key) {
  if (key == "plugin_path" || key == "set") return true;
  for (const HostOption& o : host_options())
    if (key == o.name) return true;
  return false;
}

// Splits the command line into --key value pairs (host and plugin options
// alike: plugins' options are only known after loading them).
KV parse_command_line(const std::vector<std::string>& args, std::vector<std::string>& plugin_paths) {
  KV out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.size() < 3)
      throw UsageError("unexpected argument '" + a + "'; options look like --name value (`ssmhost help train`)");
    std::string key = a.substr(2), value;
    size_t eq = key.find('=');
    bool has_value = eq != std::string::npos;
    if (has_value) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    key = underscores(key);
    const bool is_flag = key == "quiet" || key == "prenorm" || key == "overwrite" || key == "log_kernels";
    if (!has_value) {
      if (is_flag) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) throw UsageError("option --" + dashes(key) + " needs a value");
        value = args[++i];
      }
    }
    if (key == "plugin_path") {
      plugin_paths.push_back(value);
    } else if (key == "set") {
      auto [k, v] = parse_key_value(value, "set");
      out[underscores(k)] = v;
    } else {
      if (out.count(key)) throw UsageError("option --" + dashes(key) + " is given twice");
      out[key] = value;
    }
  }
  return out;
}

// Lines "key = value" (or "key: value"); '#' starts a comment. A key given
// twice is an error (which value was meant?), as is a path that is a folder.
KV parse_config_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) throw Error("--config " + path + ": no such file");
  if (S_ISDIR(info.st_mode)) throw Error("--config " + path + ": is a directory, not a config file");
  std::ifstream in(path);
  if (!in) throw Error("--config " + path + ": cannot open the file");
  KV out;
  std::map<std::string, int> line_of;
  std::string line;
  int lineno = 0;
  auto trim = [](std::string s) {
    size_t a = s.find_first_not_of(" \t\r"), b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  while (std::getline(in, line)) {
    ++lineno;
    size_t hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    size_t sep = line.find_first_of("=:");
    if (sep == std::string::npos)
      throw Error("--config " + path + ":" + std::to_string(lineno) + ": expected 'key = value', got '" + line + "'");
    std::string key = underscores(trim(line.substr(0, sep)));
    while (!key.empty() && key[0] == '-') key.erase(0, 1);
    if (key.empty()) throw Error("--config " + path + ":" + std::to_string(lineno) + ": no key before '" + line[sep] + "'");
    if (line_of.count(key))
      throw Error("--config " + path + ":" + std::to_string(lineno) + ": '" + key + "' is given twice (first on line " +
                  std::to_string(line_of[key]) + ")");
    line_of[key] = lineno;
    out[key] = trim(line.substr(sep + 1));
  }
  if (in.bad()) throw Error("--config " + path + ": cannot read the file");
  return out;
}

std::string quote_args(const std::vector<std::string>& args) {
  std::string s = "ssmhost";
  for (const std::string& a : args) {
    bool plain = !a.empty() && a.find_first_of(" \t\"'$\\;&|<>*?()") == std::string::npos;
    s += " " + (plain ? a : "'" + a + "'");
  }
  return s;
}

// Options that no plugin of this run and not the host declares are errors.
void check_known(const KV& given, const std::vector<const PluginInfo*>& plugins) {
  std::set<std::string> known;
  for (const HostOption& o : host_options()) known.insert(o.name);
  known.insert("lr_ssm");  // the s4d-example preset's SSM learning rate, for layers that take it
  for (const PluginInfo* p : plugins)
    for (const OptionInfo& o : p->options) known.insert(o.name);
  for (const auto& kv : given) {
    if (known.count(kv.first)) continue;
    std::vector<std::string> close = closest_names(kv.first, {known.begin(), known.end()}, 1);
    std::string names;
    for (const PluginInfo* p : plugins) names += (names.empty() ? "" : ", ") + p->id;
    throw UsageError("unknown option --" + dashes(kv.first) +
                     (close.empty() ? "" : "; did you mean --" + dashes(close[0]) + "?") +
                     " (`ssmhost help train` lists the host's options; `ssmhost info ID` a plugin's: " + names + ")");
  }
}

}  // namespace

std::string train_help() {
  std::ostringstream o;
  o << "ssmhost [train] --layer LAYER --task TASK [options]\n\n"
       "Train a model on a task, print progress, and write an HDF5 run log (see docs/runlog.md)\n"
       "with a checkpoint beside it (<log>.ckpt). Options are resolved in layers, later wins:\n"
       "built-in defaults < the task's defaults < --preset < --config FILE < the command line.\n"
       "Every option can also be written --name=value; plugin options (`ssmhost info ID`) are\n"
       "accepted the same way, e.g. --init inv for s4d, or as --set KEY=VALUE.\n\n"
       "Examples:\n"
       "  ssmhost --layer s4dz --task selective_copy\n"
       "  ssmhost --layer s4d --disc bilinear --task copy --steps 500 --d-model 32\n"
       "  ssmhost --task sfashion --preset s4d-example --epochs 10 --log runs/sfashion.h5\n"
       "  ssmhost --resume runs/sfashion.h5.ckpt          # continues runs/sfashion.h5\n\n"
       "An existing --log is never replaced without --overwrite, and a log that another run is writing\n"
       "is refused (a lock file <log>.lock names that process). Ctrl-C or SIGTERM (Slurm sends it before\n"
       "it kills a job) finishes the step, writes the checkpoint and closes the log with status\n"
       "'interrupted' (exit 130 / 143); a second Ctrl-C stops at once. --resume continues the same log.\n\n"
       "Options:\n";
  for (const HostOption& h : host_options()) {
    std::string flag = "--" + dashes(h.name);
    std::string def = *h.default_value ? std::string(" (default ") + h.default_value + ")" : "";
    char line[512];
    std::snprintf(line, sizeof line, "  %-20s %s%s\n", flag.c_str(), h.help, def.c_str());
    o << line;
  }
  o << "  --plugin-path DIR     also search DIR for plugins; repeatable\n"
       "  --set KEY=VALUE       set any plugin option; repeatable\n";
  return o.str();
}

int run_train(const std::vector<std::string>& args) {
  std::vector<std::string> plugin_paths;
  KV cli = parse_command_line(args, plugin_paths);
  KV file;
  if (cli.count("config")) file = parse_config_file(cli.at("config"));
  KV preset;
  std::string preset_name = cli.count("preset") ? cli.at("preset") : file.count("preset") ? file.at("preset") : "";
  if (!preset_name.empty()) {
    auto it = presets().find(preset_name);
    if (it == presets().end()) {
      std::string names;
      for (auto& p : presets()) names += (names.empty() ? "" : ", ") + p.first;
      throw UsageError("unknown --preset '" + preset_name + "' (presets: " + names + ")");
    }
    preset = it->second;
  }
  // A resumed run starts from its checkpoint's options (see trainer.cpp).
  auto user_value = [&](const std::string& key) -> std::string {
    if (cli.count(key)) return cli.at(key);
    if (file.count(key)) return file.at(key);
    if (preset.count(key)) return preset.at(key);
    return "";
  };

  KV resolved;
  for (const HostOption& h : host_options())
    if (*h.default_value) resolved[h.name] = h.default_value;

  std::string device = user_value("device");
  if (!device.empty() && device != "cpu") {
    if (device.rfind("cuda", 0) == 0)
      throw Error("--device " + device + ": training on CUDA is not available in this version of ssmhost; "
                  "use --device cpu");
    throw UsageError("--device must be cpu or cuda[:N], got '" + device + "'");
  }

  Registry reg;
  for (const std::string& p : plugin_paths) reg.add_path(p);
  reg.add_default_paths();
  reg.load();
  report_load(reg);

  std::string resume = user_value("resume");
  KV checkpoint_config;
  if (!resume.empty()) {
    // Options come from the checkpoint; the command line may change only a few (trainer checks).
    checkpoint_config = checkpoint_options(resume);
    for (auto& kv : checkpoint_config) resolved[kv.first] = kv.second;
  }

  std::string layer = user_value("layer"), task_name = user_value("task");
  if (layer.empty()) layer = resolved.count("layer") ? resolved["layer"] : "";
  if (task_name.empty()) task_name = resolved.count("task") ? resolved["task"] : "";
  if (task_name.empty()) throw UsageError("--task is required, e.g. --task selective_copy (`ssmhost list --kind task`)");
  if (layer.empty()) throw UsageError("--layer is required, e.g. --layer s4dz (`ssmhost list --kind layer`)");

  // The task's defaults sit between the built-in defaults and the user's
  // options. --steps and --epochs are one choice: a layer that sets one of
  // them clears the other from the layers below it (the task's --epochs 1
  // does not beat the user's --steps 2).
  auto apply_layer = [&](const KV& layer) {
    const bool steps = layer.count("steps") != 0, epochs = layer.count("epochs") != 0;
    if (steps && !epochs) resolved["epochs"] = "0";
    for (auto& kv : layer) resolved[kv.first] = kv.second;
  };
  const PluginInfo& task_info = reg.require(SSM_KIND_TASK, task_name);
  if (resume.empty()) {
    KV probe = resolved;
    for (auto* src : {&preset, &file, &cli})
      for (auto& kv : *src) probe[kv.first] = kv.second;
    auto task = reg.create_task(task_name, probe);
    apply_layer(task->run_defaults());
  }
  for (auto* src : {&preset, &file, &cli}) apply_layer(*src);
  resolved["layer"] = layer;
  resolved["task"] = task_name;
  resolved.erase("config");
  resolved.erase("preset");
  if (!preset_name.empty()) resolved["preset"] = preset_name;
  if (!resume.empty()) resolved["resume"] = resume;

  // Which plugins this run uses: the layer, the task, and every plugin that
  // an option of theirs names (--disc, --inner, --dataset, ... as declared by
  // the plugins, ABI 1.1), recursively. Every name is checked now, every
  // option one of them declares is accepted, and /config records what ran.
  auto [layer_info, suffix_disc] = reg.resolve_layer(layer);
  if (!suffix_disc.empty()) {
    if (resolved.count("disc") && resolved["disc"] != suffix_disc)
      throw UsageError("--disc " + resolved["disc"] + " contradicts the layer name '" + layer + "', which means " +
                       layer_info->id + " with " + suffix_disc + "; give one of them");
    resolved["disc"] = suffix_disc;
  }
  std::vector<const PluginInfo*> used = {layer_info, &task_info};
  auto use = [&](const PluginInfo* p) {
    if (std::find(used.begin(), used.end(), p) == used.end()) used.push_back(p);
  };
  for (size_t i = 0; i < used.size(); ++i)
    for (ssm_kind kind : {SSM_KIND_LAYER, SSM_KIND_DISC, SSM_KIND_DATASET}) {
      const OptionInfo* o = used[i]->child_option(kind);
      if (!o) continue;
      // Not set: the plugin's own default is the run's, recorded like one given by hand.
      if (!resolved.count(o->name) && !o->default_value.empty()) resolved[o->name] = o->default_value;
      if (!resolved.count(o->name) || resolved[o->name].empty()) continue;
      const std::string& value = resolved[o->name];
      if (kind == SSM_KIND_LAYER) {
        auto [inner, inner_disc] = reg.resolve_layer(value);
        use(inner);
        if (!inner_disc.empty()) use(&reg.require(SSM_KIND_DISC, inner_disc));
      } else {
        use(&reg.require(kind, value));
      }
    }
  if (resolved.count("disc")) {
    bool taken = false;
    for (const PluginInfo* p : used) taken |= p->takes_disc();
    if (!taken) {
      std::string takers;
      for (const std::string& t : reg.layers_taking_disc()) takers += (takers.empty() ? "" : ", ") + t;
      throw UsageError("--disc " + resolved["disc"] + ": layer '" + layer_info->id +
                       "' takes no discretization (nor does any plugin it uses); layers that take one: " +
                       (takers.empty() ? "none found" : takers));
    }
  }
  KV given = cli;
  for (auto& kv : file) given[kv.first] = kv.second;
  given.erase("resume");
  check_known(given, used);

  RunOptions o;
  o.layer = layer;
  o.task = task_name;
  o.steps = as_int(resolved, "steps", 1);
  o.epochs = as_int(resolved, "epochs", 0);
  o.batch_size = as_int(resolved, "batch_size", 1);
  if (resolved.count("seq_len")) as_int(resolved, "seq_len", 1);
  o.d_model = as_int(resolved, "d_model", 1);
  o.n_layers = as_int(resolved, "n_layers", 1);
  as_int(resolved, "d_state", 1);
  o.dropout = as_double(resolved, "dropout");
  if (o.dropout < 0 || o.dropout >= 1) throw UsageError("--dropout must be in [0, 1), got " + resolved["dropout"]);
  o.lr = as_double(resolved, "lr");
  if (!(o.lr > 0)) throw UsageError("--lr must be > 0, got " + resolved["lr"]);
  if (resolved.count("lr_ssm") && !(as_double(resolved, "lr_ssm") > 0))
    throw UsageError("--lr-ssm must be > 0, got " + resolved["lr_ssm"]);
  o.weight_decay = as_double(resolved, "weight_decay");
  if (o.weight_decay < 0) throw UsageError("--weight-decay must be >= 0, got " + resolved["weight_decay"]);
  o.warmup = as_int(resolved, "warmup", 0);
  o.schedule = resolved["schedule"];
  if (o.schedule != "cosine" && o.schedule != "constant")
    throw UsageError("--schedule must be cosine or constant, got '" + o.schedule + "'");
  o.clip = as_double(resolved, "clip");
  if (o.clip < 0) throw UsageError("--clip must be >= 0, got " + resolved["clip"]);
  o.eval_every = as_int(resolved, "eval_every", 1);
  o.patience = as_int(resolved, "patience", 0);
  o.seed = static_cast<uint64_t>(as_int(resolved, "seed", 0));
  o.eval_seed = static_cast<uint64_t>(as_int(resolved, "eval_seed", 0));
  int64_t threads = as_int(resolved, "threads", 0);
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t max_threads = 4 * cores;
  if (threads > max_threads)
    throw UsageError("--threads " + std::to_string(threads) + " is more than " + std::to_string(max_threads) +
                     " (4 per core; this machine has " + std::to_string(cores) + "); use at most " +
                     std::to_string(max_threads) + ", or 0 for one per core");
  o.threads = threads > 0 ? static_cast<int>(threads) : static_cast<int>(cores);
  resolved["threads"] = std::to_string(o.threads);
  o.checkpoint_every = as_int(resolved, "checkpoint_every", 0);
  o.stop_at = as_int(resolved, "stop_at", 0);
  o.norm = resolved["norm"];
  if (o.norm != "layer" && o.norm != "rms") throw UsageError("--norm must be layer or rms, got '" + o.norm + "'");
  o.prenorm = as_bool(resolved, "prenorm");
  o.quiet = as_bool(resolved, "quiet");
  o.log_kernels = as_bool(resolved, "log_kernels");
  o.overwrite = as_bool(resolved, "overwrite");
  o.log_path = resolved.count("log") ? resolved["log"] : "";
  o.resume = resume;
  o.all = resolved;
  o.all.erase("log");  // where the log is, is not part of what the run is
  o.all.erase("resume");
  o.all.erase("overwrite");

  TrainResult r = train(reg, o, quote_args(args));
  return r.signal ? 128 + r.signal : 0;  // 130 after SIGINT, 143 after SIGTERM, as a shell expects
}

}  // namespace ssmhost
