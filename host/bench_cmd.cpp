// `ssmhost bench`: for each combination of layer, discretization, sequence
// length, batch size, width, state size and threads, the median training
// step, the median inference forward pass and the peak memory, measured in a
// fresh child process each (so each peak is its own), written to an HDF5
// bench file that `report` and `plot` read (docs/analysis.md).
#include <ssm/kernels/loss.hpp>
#include <ssm/kernels/parallel.hpp>
#include <ssm/kernels/philox.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "analysis.hpp"
#include "commands.hpp"
#include "git_commit.h"  // generated: SSMHOST_GIT_COMMIT
#include "h5util.hpp"
#include "model.hpp"
#include "optimizer.hpp"
#include "options.hpp"
#include "registry.hpp"
#include "spawn.hpp"

namespace ssmhost {

namespace {

using Clock = std::chrono::steady_clock;

// The options a combination is made of, in the order they vary (the last
// fastest), with their defaults.
struct Axis {
  const char* key;
  const char* default_value;
  const char* help;
};
const std::vector<Axis>& axes() {
  static const std::vector<Axis> all = {
      {"layer", "s4d", "layer plugins, e.g. s4d,s4dz (a name may carry a discretization suffix)"},
      {"disc", "", "discretizations (default: each layer's own)"},
      {"seq_len", "256", "sequence lengths L"},
      {"batch_size", "16", "batch sizes B"},
      {"d_model", "64", "model widths H"},
      {"d_state", "64", "state sizes N"},
      {"n_layers", "2", "residual blocks"},
      {"threads", "1", "CPU threads (0: all cores)"},
  };
  return all;
}

struct Settings {
  std::vector<std::pair<std::string, std::vector<std::string>>> lists;  // axis key -> values
  int64_t steps = 5, warmup = 1, channels = 1, classes = 10;
  std::string out, format = "table";
  std::vector<std::string> plugin_paths;
  KV extra;  // --set KEY=VALUE: more layer options
  bool quiet = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string v;
  while (std::getline(ss, v, ','))
    if (!v.empty()) out.push_back(v);
  return out;
}

double current_rss_mb() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::string join(const std::vector<double>& v) {
  std::ostringstream o;
  o.precision(9);
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  return o.str();
}

// ------------------------------------------------------------- the worker

// One combination, in this process: prints "key value" lines on stdout.
int run_worker(const KV& c, const Settings& s) {
  auto get = [&](const char* k) { return c.count(k) ? c.at(k) : std::string(); };
  const int64_t H = as_int(c, "d_model", 1), L = as_int(c, "seq_len", 1), B = as_int(c, "batch_size", 1);
  int threads = static_cast<int>(as_int(c, "threads", 0));
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ssm::kernels::set_threads(threads);
  Registry reg;
  for (const std::string& p : s.plugin_paths) reg.add_path(p);
  reg.add_default_paths();
  reg.load();
  const double base_rss = current_rss_mb();

  ModelConfig mc;
  mc.layer = get("layer");
  mc.d_model = H;
  mc.n_layers = as_int(c, "n_layers", 1);
  mc.layer_config = s.extra;
  mc.layer_config["d_model"] = get("d_model");
  mc.layer_config["d_state"] = get("d_state");
  if (!get("disc").empty()) mc.layer_config["disc"] = get("disc");
  mc.threads = threads;
  mc.seed = 1;
  mc.task.input_kind = SSM_INPUT_REAL;
  mc.task.in_channels = s.channels;
  mc.task.seq_len = L;
  mc.task.n_out = s.classes;
  mc.task.readout = SSM_READOUT_MEAN;
  mc.task.loss = SSM_LOSS_CROSS_ENTROPY;
  Model model(reg, mc);
  OptimizerConfig oc;
  oc.lr = 1e-3;
  oc.total_steps = s.steps + s.warmup;
  AdamW adam(model.params(), oc);

  const int64_t C = s.channels, K = s.classes;
  Tensor x = Tensor::of<float>({B, L, C});
  std::vector<int32_t> y(static_cast<size_t>(B));
  for (int64_t i = 0; i < B * L * C; ++i) x.data<float>()[i] = static_cast<float>(ssm::kernels::philox_normal(7, 0, i));
  for (int64_t i = 0; i < B; ++i) y[i] = static_cast<int32_t>(ssm::kernels::philox_uniform(7, 1, i) * K) % K;
  Tensor dlogits = Tensor::of<float>({B, K});

  std::vector<double> train_ms, infer_ms;
  for (int64_t step = 0; step < s.warmup + s.steps; ++step) {
    const auto t0 = Clock::now();
    const Tensor& logits = model.forward(x, true, static_cast<uint64_t>(step));
    ssm::kernels::cross_entropy(logits.data<float>(), y.data(), static_cast<const float*>(nullptr), B, K,
                                dlogits.data<float>(), static_cast<int64_t*>(nullptr));
    model.zero_grad();
    model.backward(dlogits);
    adam.step(step);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (step >= s.warmup) train_ms.push_back(ms);
  }
  for (int64_t step = 0; step < s.warmup + s.steps; ++step) {
    const auto t0 = Clock::now();
    model.forward(x, false, 0);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (step >= s.warmup) infer_ms.push_back(ms);
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("n_params %lld\nthreads %d\nbase_rss_mb %.6f\npeak_rss_mb %.6f\ntrain_step_ms %s\ninfer_ms %s\n",
              static_cast<long long>(model.n_params()), threads, base_rss, ru.ru_maxrss / 1024.0,
              join(train_ms).c_str(), join(infer_ms).c_str());
  return 0;
}

// ------------------------------------------------------------ the bench file

struct Measured {
  KV config;
  bool ok = false;
  std::string error;
  double n_params = NAN, base_rss_mb = NAN, peak_rss_mb = NAN, wall_s = NAN;
  std::vector<double> train_ms, infer_ms;
};

void create_bench_file(const std::string& path, const std::string& command_line) {
  const std::string where = "bench file '" + path + "'";
  h5::SilenceErrors quiet;
  h5::Handle f = h5::check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose, where,
                              "cannot create the file");
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  h5::set_attr_int64(f.get(), "schema_version", kBenchSchemaVersion, where);
  h5::set_attr_string(f.get(), "format", kBenchFormat, where);
  h5::set_attr_string(f.get(), "ssmhost_version", SSMHOST_VERSION, where);
  h5::set_attr_string(f.get(), "git_commit", SSMHOST_GIT_COMMIT, where);
  h5::set_attr_string(f.get(), "command_line", command_line, where);
  h5::set_attr_string(f.get(), "start_time", utc_timestamp(), where);
  h5::set_attr_string(f.get(), "host", host, where);
  h5::set_attr_string(f.get(), "device", "cpu", where);
  h5::create_group(f.get(), "results", where);
  h5::check_status(f.close(), where, "cannot close the file");
}

// Adds /results/<index> (and end_time when `last`): the file is complete
// after every combination, so a stopped benchmark keeps what it measured.
void append_result(const std::string& path, size_t index, size_t count, const Measured& m, bool last) {
  const std::string where = "bench file '" + path + "'";
  h5::SilenceErrors quiet;
  h5::Handle f = h5::check_id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, where,
                              "cannot reopen the file");
  h5::Handle results = h5::open_group(f.get(), "results", where);
  char name[32];
  std::snprintf(name, sizeof name, "%0*zu", static_cast<int>(std::to_string(count - 1).size()), index);
  h5::Handle g = h5::create_group(results.get(), name, where);
  h5::set_attr_string(g.get(), "status", m.ok ? "ok" : "failed", where);
  if (!m.ok) h5::set_attr_string(g.get(), "error", m.error, where);
  {
    h5::Handle cg = h5::create_group(g.get(), "config", where);
    for (const auto& [k, v] : m.config) h5::set_attr_string(cg.get(), k, v, where);
  }
  {
    h5::Handle sg = h5::create_group(g.get(), "summary", where);
    if (m.ok) {
      const double L = std::stod(m.config.at("seq_len")), B = std::stod(m.config.at("batch_size"));
      const double train = median_of(m.train_ms), infer = median_of(m.infer_ms);
      const std::pair<const char*, double> values[] = {
          {"train_step_ms", train},
          {"infer_ms", infer},
          {"tokens_per_s", B * L / (train / 1000.0)},
          {"infer_tokens_per_s", B * L / (infer / 1000.0)},
          {"peak_rss_mb", m.peak_rss_mb},
          {"base_rss_mb", m.base_rss_mb},
          {"n_params", m.n_params},
          {"steps", static_cast<double>(m.train_ms.size())},
          {"wall_time_s", m.wall_s}};
      for (const auto& [k, v] : values) h5::set_attr_double(sg.get(), k, v, where);
    }
  }
  for (const auto& [col, values] : {std::pair<const char*, const std::vector<double>*>{"train_step_ms", &m.train_ms},
                                    {"infer_ms", &m.infer_ms}}) {
    h5::Handle d = h5::create_column(g.get(), col, H5T_IEEE_F64LE, 64, where);
    if (!values->empty()) h5::append_to_column(d.get(), H5T_NATIVE_DOUBLE, values->data(), values->size(), where);
  }
  if (last) h5::set_attr_string(f.get(), "end_time", utc_timestamp(), where);
  h5::check_status(f.close(), where, "cannot close the file");
}

// Reads the worker's "key value" lines.
void parse_worker_output(const std::string& path, Measured& m) {
  std::ifstream in(path);
  std::string key, value;
  std::map<std::string, std::string> got;
  while (in >> key >> value) got[key] = value;
  auto num = [&](const char* k) { return got.count(k) ? std::stod(got[k]) : NAN; };
  auto list = [&](const char* k) {
    std::vector<double> v;
    if (got.count(k))
      for (const std::string& s : split_list(got[k])) v.push_back(std::stod(s));
    return v;
  };
  m.n_params = num("n_params");
  m.base_rss_mb = num("base_rss_mb");
  m.peak_rss_mb = num("peak_rss_mb");
  m.train_ms = list("train_step_ms");
  m.infer_ms = list("infer_ms");
  if (got.count("threads")) m.config["threads"] = got["threads"];
  m.ok = !m.train_ms.empty() && !m.infer_ms.empty();
  if (!m.ok) m.error = "the measuring process printed no timings";
}

std::string quote_args(const std::vector<std::string>& args) {
  std::string s = "ssmhost bench";
  for (const std::string& a : args) {
    bool plain = !a.empty() && a.find_first_of(" \t\"'$\\;&|<>*?()") == std::string::npos;
    s += " " + (plain ? a : "'" + a + "'");
  }
  return s;
}

std::string default_out() {
  std::string t = utc_timestamp();  // 2024-05-01T12:00:00Z -> 20240501T120000Z
  std::string compact;
  for (char ch : t)
    if (ch != '-' && ch != ':') compact += ch;
  return "runs/bench-" + compact + ".h5";
}

}  // namespace

std::string bench_help() {
  std::ostringstream o;
  o << "ssmhost bench --layer L1,L2 --seq-len 256,512 [options] [--out FILE.h5]\n\n"
       "For every combination of the lists below (comma-separated), build the model `ssmhost train`\n"
       "builds (encoder, n_layers residual blocks around the layer, mean pooling, a classifier) on\n"
       "random real-valued input and measure, in a fresh process each:\n"
       "  step_ms      median full training step (forward, loss, backward, AdamW), milliseconds\n"
       "  infer_ms     median inference forward pass (no dropout, no caches for backward), milliseconds\n"
       "  tokens_per_s training throughput (batch x length / step time)\n"
       "  peak_mb      peak resident memory of that process, MiB\n"
       "The results go to an HDF5 bench file (default runs/bench-<UTC time>.h5; format in\n"
       "docs/analysis.md) after each combination, and are printed as `ssmhost report` prints them;\n"
       "`ssmhost plot FILE --x seq_len --metric step_ms` draws them. A combination that fails is\n"
       "recorded with its error and the others still run (exit status 1).\n\n"
       "Lists (later ones vary fastest):\n";
  for (const Axis& a : axes()) {
    char line[256];
    std::string flag = "--" + dashes(a.key);
    std::snprintf(line, sizeof line, "  %-14s %s%s%s%s\n", flag.c_str(), a.help, *a.default_value ? " (default " : "",
                  a.default_value, *a.default_value ? ")" : "");
    o << line;
  }
  o << "Options:\n"
       "  --steps N      timed steps per measurement (default 5; the median is reported)\n"
       "  --warmup N     untimed steps before them (default 1)\n"
       "  --channels C   input channels (default 1), --classes K output classes (default 10)\n"
       "  --set K=V      another layer option (e.g. --set init=inv); repeatable\n"
       "  --out FILE.h5  the bench file\n"
       "  --format F     how to print the results: table (default), csv, json, markdown\n"
       "  --quiet        no line per combination\n"
       "  --plugin-path DIR  also search DIR for plugins; repeatable\n";
  return o.str();
}

int run_bench(const std::vector<std::string>& args) {
  Settings s;
  KV given;
  bool worker = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument '" + a + "' (`ssmhost help bench`)");
    std::string key = a.substr(2), value;
    const size_t eq = key.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    key = underscores(key);
    if (key == "worker") {
      worker = true;
      continue;
    }
    if (key == "quiet") {
      s.quiet = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) throw UsageError("option --" + dashes(key) + " needs a value");
      value = args[++i];
    }
    if (key == "plugin_path") {
      s.plugin_paths.push_back(value);
    } else if (key == "set") {
      auto [k, v] = parse_key_value(value, "set");
      s.extra[underscores(k)] = v;
    } else {
      if (given.count(key)) throw UsageError("option --" + dashes(key) + " is given twice");
      given[key] = value;
    }
  }
  for (const Axis& a : axes()) {
    std::vector<std::string> values = split_list(given.count(a.key) ? given.at(a.key) : a.default_value);
    if (values.empty()) values.push_back("");
    s.lists.push_back({a.key, values});
    given.erase(a.key);
  }
  if (given.count("steps")) s.steps = as_int(given, "steps", 1);
  if (given.count("warmup")) s.warmup = as_int(given, "warmup", 0);
  if (given.count("channels")) s.channels = as_int(given, "channels", 1);
  if (given.count("classes")) s.classes = as_int(given, "classes", 2);
  if (given.count("out")) s.out = given.at("out");
  if (given.count("format")) s.format = given.at("format");
  for (const char* k : {"steps", "warmup", "channels", "classes", "out", "format"}) given.erase(k);
  if (!given.empty())
    throw UsageError("unknown option --" + dashes(given.begin()->first) + " for bench (`ssmhost help bench`)");
  if (s.format != "table" && s.format != "csv" && s.format != "json" && s.format != "markdown")
    throw UsageError("--format must be table, csv, json or markdown, got '" + s.format + "'");

  // Every combination, checked before anything runs.
  std::vector<KV> combos(1);
  for (const auto& [key, values] : s.lists) {
    std::vector<KV> next;
    for (const KV& c : combos)
      for (const std::string& v : values) {
        KV d = c;
        if (!v.empty()) d[key] = v;
        next.push_back(d);
      }
    combos = next;
  }
  for (const KV& c : combos) {
    for (const char* k : {"seq_len", "batch_size", "d_model", "d_state", "n_layers"}) as_int(c, k, 1);
    as_int(c, "threads", 0);
  }
  if (worker) {
    if (combos.size() != 1) throw UsageError("bench --worker measures one combination");
    return run_worker(combos[0], s);
  }
  {
    Registry reg;
    for (const std::string& p : s.plugin_paths) reg.add_path(p);
    reg.add_default_paths();
    reg.load();
    report_load(reg);
    for (const std::string& disc : s.lists[1].second)
      if (!disc.empty()) reg.require(SSM_KIND_DISC, disc);
    // Each combination records the discretization it ran with: the one given,
    // the layer name's suffix, or the layer's default.
    for (KV& c : combos) {
      auto [info, suffix_disc] = reg.resolve_layer(c.at("layer"));  // throws with "did you mean"
      if (!c.count("disc") && !suffix_disc.empty()) c["disc"] = suffix_disc;
      if (!c.count("disc"))
        if (const OptionInfo* o = info->child_option(SSM_KIND_DISC); o && !o->default_value.empty())
          c["disc"] = o->default_value;
    }
  }

  if (s.out.empty()) {
    s.out = default_out();
    boost::system::error_code ec;
    boost::filesystem::create_directories("runs", ec);
  }
  create_bench_file(s.out, quote_args(args));
  const std::string exe = self_executable();
  const std::string tmp = s.out + ".worker-" + std::to_string(getpid());
  int failures = 0;
  for (size_t i = 0; i < combos.size(); ++i) {
    Measured m;
    m.config = combos[i];
    std::vector<std::string> wargs = {"bench", "--worker", "--steps", std::to_string(s.steps), "--warmup",
                                      std::to_string(s.warmup), "--channels", std::to_string(s.channels),
                                      "--classes", std::to_string(s.classes)};
    for (const auto& [k, v] : combos[i]) {
      wargs.push_back("--" + dashes(k));
      wargs.push_back(v);
    }
    for (const auto& [k, v] : s.extra) {
      wargs.push_back("--set");
      wargs.push_back(k + "=" + v);
      m.config[k] = v;
    }
    for (const std::string& p : s.plugin_paths) {
      wargs.push_back("--plugin-path");
      wargs.push_back(p);
    }
    m.config["channels"] = std::to_string(s.channels);
    m.config["classes"] = std::to_string(s.classes);
    std::string label;  // the options that vary, in the lists' order
    for (const auto& [key, values] : s.lists)
      if ((values.size() > 1 || key == "layer") && combos[i].count(key))
        label += (label.empty() ? "" : " ") + key + "=" + combos[i].at(key);
    if (!s.quiet) {
      std::fprintf(stderr, "[%zu/%zu] %s ... ", i + 1, combos.size(), label.c_str());
      std::fflush(stderr);
    }
    std::remove((tmp + ".out").c_str());
    std::remove((tmp + ".err").c_str());
    const auto t0 = Clock::now();
    ChildExit e = run_process(exe, wargs, tmp + ".out", tmp + ".err");
    m.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (e.status == 0) {
      parse_worker_output(tmp + ".out", m);
    } else {
      std::string why = tail_of_file(tmp + ".err", 3);
      m.error = (e.signaled ? "the measuring process was killed by signal " + std::to_string(e.status - 128)
                            : "the measuring process failed (exit status " + std::to_string(e.status) + ")") +
                (why.empty() ? "" : ": " + why);
    }
    std::remove((tmp + ".out").c_str());
    std::remove((tmp + ".err").c_str());
    if (!m.ok) ++failures;
    if (!s.quiet) {
      if (m.ok)
        std::fprintf(stderr, "train %.2f ms, infer %.2f ms, peak %.0f MiB\n", median_of(m.train_ms),
                     median_of(m.infer_ms), m.peak_rss_mb);
      else
        std::fprintf(stderr, "FAILED: %s\n", m.error.c_str());
    }
    append_result(s.out, i, combos.size(), m, i + 1 == combos.size());
  }
  LoadResult loaded = load_rows({s.out}, {boost::filesystem::path(s.out).filename().string()});
  std::cout << format_table(loaded.rows, table_columns(loaded.rows), s.format);
  for (const LoadProblem& p : loaded.problems) std::fprintf(stderr, "ssmhost: bench: %s\n", p.message.c_str());
  if (!s.quiet) std::fprintf(stderr, "bench file: %s\n", s.out.c_str());
  return failures ? 1 : 0;
}

}  // namespace ssmhost
