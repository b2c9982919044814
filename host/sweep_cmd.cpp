// `ssmhost sweep`: the cross product of option lists as separate training
// runs (`ssmhost train` in child processes), each with its own log in DIR;
// --jobs N at a time on this machine, or --index I for one configuration
// (Slurm job arrays, GNU parallel: docs/analysis.md).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <boost/filesystem.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "analysis.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runlog.hpp"
#include "spawn.hpp"

namespace ssmhost {

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  size_t index = 0;
  std::string name;                                       // file stem in DIR
  std::vector<std::pair<std::string, std::string>> axes;  // the swept values
  std::vector<std::string> train_args;                    // ssmhost train ...
  std::string log, out;                                   // DIR/name.h5, DIR/name.out
};

struct SweepOptions {
  std::string out;
  int64_t jobs = 1;
  int64_t index = -1;
  bool dry_run = false, count = false, force = false;
  std::string format = "table";
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string v;
  while (std::getline(ss, v, ','))
    if (!v.empty()) out.push_back(v);
  return out;
}

std::string safe_name(const std::string& s) {
  std::string o;
  for (char ch : s) o += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ? ch : '-';
  return o;
}

// A value in a file name: as it is when it says what it is (zoh, s4d), with
// its option's name when it is a number (seq_len256).
std::string file_part(const std::string& key, const std::string& value) {
  const bool number = !value.empty() && value.find_first_not_of("0123456789.eE+-") == std::string::npos;
  return safe_name(number ? key + value : value);
}

std::string shell_quote(const std::string& a) {
  bool plain = !a.empty() && a.find_first_of(" \t\"'$\\;&|<>*?()`!{}") == std::string::npos;
  if (plain) return a;
  std::string o = "'";
  for (char ch : a) o += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return o + "'";
}

// What to do with a configuration whose log may already be there.
enum class Plan { kFresh, kSkip, kResume, kOverwrite };

std::string log_status(const std::string& log, bool& finished) {
  finished = false;
  try {
    RunLogReader r = RunLogReader::open(log);
    finished = r.finished();
    auto it = r.summary_text().find("status");
    return it == r.summary_text().end() ? "" : it->second;
  } catch (const std::exception&) {
    return "";
  }
}

// No log: a fresh run. A complete one (completed, stopped early): skipped
// unless --force. One that was interrupted or died, with its checkpoint:
// resumed (`train --resume`, which continues the same log). Else (failed,
// unreadable, no checkpoint) run again over it.
Plan plan_for(const std::string& log, bool force) {
  if (!boost::filesystem::exists(log)) return Plan::kFresh;
  if (force) return Plan::kOverwrite;
  bool finished = false;
  const std::string st = log_status(log, finished);
  if (finished && (st == "completed" || st == "stopped_early" || st == "early_stopped")) return Plan::kSkip;
  const bool resumable = !finished || st == "interrupted" || st.rfind("stopped_at", 0) == 0;
  if (resumable && boost::filesystem::exists(log + ".ckpt")) return Plan::kResume;
  return Plan::kOverwrite;
}

// One line about a finished run: status, best metric, time.
std::string outcome(const Config& c, const ChildExit& e, double seconds) {
  char buf[256];
  std::string what;
  try {
    auto log = std::make_shared<RunLogReader>(RunLogReader::open(c.log));
    Row row = row_of_run(log, c.log);
    what = row.get("status").format();
    if (!row.get("best").missing()) {
      std::snprintf(buf, sizeof buf, ", best %s %.4f", row.get("metric").format().c_str(), row.get("best").number);
      what += buf;
    }
  } catch (const std::exception&) {
  }
  std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  if (e.status == 0) return (what.empty() ? "finished, but its log cannot be read" : what) + ", " + buf;
  std::string why = tail_of_file(c.out, 2);
  std::snprintf(buf, sizeof buf, "FAILED (%s %d) after %.0f s", e.signaled ? "signal" : "exit status",
                e.signaled ? e.status - 128 : e.status, seconds);
  if (e.status == 130 || e.status == 143)  // the trainer stopped on SIGINT/SIGTERM with a checkpoint
    std::snprintf(buf, sizeof buf, "interrupted (exit status %d) after %.0f s; running the sweep again resumes it",
                  e.status, seconds);
  return std::string(buf) + (what.empty() ? "" : " [" + what + "]") +
         (why.empty() || e.status == 130 || e.status == 143 ? "" : ": " + why) + " (output: " + c.out + ")";
}

volatile sig_atomic_t g_stop_signal = 0;
void on_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

std::string sweep_help() {
  return "ssmhost sweep --layer A,B --disc X,Y --seq-len 256,512 --task T [train options] --out DIR\n"
         "              [--jobs N | --index I] [--dry-run] [--count] [--force]\n\n"
         "Train every combination of the comma-separated values as a separate run: any training\n"
         "option (`ssmhost help train`, plugin options, --set K=V1,V2) given a list becomes an axis;\n"
         "the first varies slowest (--fixed K=V1,V2 passes a list as it is, as --eval-seq-len is).\n"
         "Each run writes DIR/<values>.h5 (its run log, e.g. sweeps/x/s4d-zoh-seq_len256.h5) and\n"
         "DIR/<values>.out (its output). Running a sweep again skips the runs whose log is complete\n"
         "(--force runs them again), resumes those that were interrupted (Ctrl-C, SIGTERM from Slurm)\n"
         "or killed from their checkpoint, and runs the failed ones again. At the end the runs are\n"
         "printed as `ssmhost report` prints them.\n\n"
         "Options:\n"
         "  --out DIR    where the logs go (created if missing); required\n"
         "  --jobs N     run N at a time on this machine; without --threads each gets cores / N threads\n"
         "  --index I    run only configuration I (0-based): one task of a Slurm job array\n"
         "               (--index $SLURM_ARRAY_TASK_ID) or of GNU parallel; out of range is an error\n"
         "  --dry-run    list the configurations and their commands, run nothing\n"
         "  --count      print the number of configurations, run nothing\n"
         "  --force      run configurations whose log is already complete\n"
         "  --format F   the final table: table (default), csv, json, markdown\n\n"
         "Examples (docs/analysis.md has a Slurm array script):\n"
         "  ssmhost sweep --layer s4d --disc zoh,bilinear --task copy --steps 500 --out sweeps/disc --jobs 2\n"
         "  seq 0 $(( $(ssmhost sweep ARGS --count) - 1 )) | parallel -j 4 ssmhost sweep ARGS --index {}\n";
}

int run_sweep(const std::vector<std::string>& args) {
  SweepOptions so;
  std::vector<std::pair<std::string, std::string>> fixed;                 // forwarded as they are
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;     // swept
  std::vector<std::string> plugin_paths;
  bool threads_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.size() < 3)
      throw UsageError("unexpected argument '" + a + "'; options look like --name value (`ssmhost help sweep`)");
    std::string key = a.substr(2), value;
    const size_t eq = key.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    }
    key = underscores(key);
    const bool flag = key == "dry_run" || key == "count" || key == "force" || key == "quiet" || key == "prenorm";
    if (!has_value) {
      if (flag) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) throw UsageError("option --" + dashes(key) + " needs a value");
        value = args[++i];
      }
    }
    if (key == "out") so.out = value;
    else if (key == "jobs") so.jobs = as_int({{"jobs", value}}, "jobs", 1);
    else if (key == "index") so.index = as_int({{"index", value}}, "index", 0);
    else if (key == "dry_run") so.dry_run = as_bool({{"dry_run", value}}, "dry_run");
    else if (key == "count") so.count = as_bool({{"count", value}}, "count");
    else if (key == "force") so.force = as_bool({{"force", value}}, "force");
    else if (key == "format") so.format = value;
    else if (key == "plugin_path") plugin_paths.push_back(value);
    else if (key == "log") throw UsageError("sweep names each run's log itself (in --out DIR); drop --log");
    else if (key == "resume") throw UsageError("sweep cannot --resume; resume one run with `ssmhost train --resume`");
    else {
      // --fixed K=V passes V as it is, commas included; so do options whose
      // value is itself a list (--eval-seq-len 256,1024).
      bool literal = key == "fixed" || key == "eval_seq_len";
      if (key == "set" || key == "fixed") {
        auto kv = parse_key_value(value, key);
        key = underscores(kv.first);
        value = kv.second;
        literal |= key == "eval_seq_len";
      }
      threads_given |= key == "threads";
      for (auto& f : fixed)
        if (f.first == key) throw UsageError("option --" + dashes(key) + " is given twice");
      for (auto& x : axes)
        if (x.first == key) throw UsageError("option --" + dashes(key) + " is given twice");
      std::vector<std::string> values = split_list(value);
      if (literal)
        fixed.push_back({key, value});
      else if (value.find(',') != std::string::npos && values.size() > 1) {
        std::vector<std::string> unique;
        for (const std::string& v : values)
          if (std::find(unique.begin(), unique.end(), v) == unique.end()) unique.push_back(v);
        axes.push_back({key, unique});
      }
      else
        fixed.push_back({key, values.empty() ? value : values[0]});
    }
  }
  if (so.out.empty() && !so.count) throw UsageError("sweep needs --out DIR, the folder for the runs' logs");
  if (so.format != "table" && so.format != "csv" && so.format != "json" && so.format != "markdown")
    throw UsageError("--format must be table, csv, json or markdown, got '" + so.format + "'");
  if (so.index >= 0 && so.jobs > 1) throw UsageError("--index runs one configuration: --jobs does not apply");

  // The cross product, first axis slowest.
  std::vector<std::vector<std::pair<std::string, std::string>>> points(1);
  for (const auto& [key, values] : axes) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& p : points)
      for (const std::string& v : values) {
        auto q = p;
        q.push_back({key, v});
        next.push_back(q);
      }
    points = next;
  }
  if (so.count) {
    std::printf("%zu\n", points.size());
    return 0;
  }
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t jobs = std::min<int64_t>(so.jobs, static_cast<int64_t>(points.size()));
  const std::string threads_each = std::to_string(std::max<int64_t>(1, hw / std::max<int64_t>(1, jobs)));
  const int width = static_cast<int>(std::to_string(points.size() - 1).size());
  std::vector<Config> configs;
  for (size_t i = 0; i < points.size(); ++i) {
    Config c;
    c.index = i;
    c.axes = points[i];
    // Named by its values, not its index: adding a value to a list (a new
    // plugin) keeps every other run's name, so it is still skipped or resumed.
    for (const auto& [k, v] : c.axes) c.name += (c.name.empty() ? "" : "-") + file_part(k, v);
    if (c.name.empty()) c.name = "run";
    const std::string base = (boost::filesystem::path(so.out) / c.name).string();
    for (const Config& other : configs)  // two values that read the same in a file name
      if (other.name == c.name) throw UsageError("--out: configurations " + std::to_string(other.index) + " and " +
                                                 std::to_string(i) + " would both be named '" + c.name +
                                                 "'; give values that differ in letters or digits");
    c.log = base + ".h5";
    c.out = base + ".out";
    c.train_args = {"train"};
    for (const std::string& p : plugin_paths) c.train_args.insert(c.train_args.end(), {"--plugin-path", p});
    for (const auto& [k, v] : fixed) c.train_args.insert(c.train_args.end(), {"--" + dashes(k), v});
    for (const auto& [k, v] : c.axes) c.train_args.insert(c.train_args.end(), {"--" + dashes(k), v});
    if (!threads_given) c.train_args.insert(c.train_args.end(), {"--threads", threads_each});
    c.train_args.insert(c.train_args.end(), {"--log", c.log});
    configs.push_back(c);
  }
  if (so.index >= static_cast<int64_t>(configs.size()))
    throw UsageError("--index " + std::to_string(so.index) + " is out of range: this sweep has " +
                     std::to_string(configs.size()) + " configuration" + (configs.size() == 1 ? "" : "s") +
                     " (0.." + std::to_string(configs.size() - 1) + "; `--dry-run` lists them)");
  std::vector<Config> todo;
  if (so.index >= 0)
    todo.push_back(configs[static_cast<size_t>(so.index)]);
  else
    todo = configs;

  if (so.dry_run) {
    std::printf("%zu configuration%s; logs in %s\n", configs.size(), configs.size() == 1 ? "" : "s", so.out.c_str());
    for (const Config& c : todo) {
      std::string cmd = "ssmhost";
      for (const std::string& a : c.train_args) cmd += " " + shell_quote(a);
      std::printf("%*zu  %s\n", width, c.index, cmd.c_str());
    }
    return 0;
  }

  boost::system::error_code ec;
  boost::filesystem::create_directories(so.out, ec);
  if (ec) throw Error("--out " + so.out + ": cannot create the directory: " + ec.message());

  const std::string exe = self_executable();
  const size_t n = configs.size();
  std::map<pid_t, std::pair<const Config*, Clock::time_point>> running;
  size_t next = 0, failed = 0, skipped = 0, resumed = 0;
  std::vector<std::string> logs;
  // Ctrl-C reaches the runs by itself (same process group) and they stop
  // with a checkpoint; a SIGTERM or SIGINT to the sweep alone stops it from
  // starting more, and it waits for the runs under way.
  struct sigaction stop {}, old_int {}, old_term {};
  stop.sa_handler = on_stop_signal;
  sigaction(SIGINT, &stop, &old_int);
  sigaction(SIGTERM, &stop, &old_term);
  auto reap_one = [&]() {
    ChildExit e = wait_process(-1);
    auto it = running.find(e.pid);
    if (it == running.end()) return;
    const Config& c = *it->second.first;
    const double secs = std::chrono::duration<double>(Clock::now() - it->second.second).count();
    if (e.status != 0) ++failed;
    std::fprintf(stderr, "[%zu/%zu] %s: %s\n", c.index + 1, n, c.name.c_str(), outcome(c, e, secs).c_str());
    running.erase(it);
  };
  while ((next < todo.size() && !g_stop_signal) || !running.empty()) {
    while (next < todo.size() && !g_stop_signal &&
           static_cast<int64_t>(running.size()) < std::max<int64_t>(1, jobs)) {
      const Config& c = todo[next++];
      logs.push_back(c.log);
      const Plan plan = plan_for(c.log, so.force);
      if (plan == Plan::kSkip) {
        ++skipped;
        std::fprintf(stderr, "[%zu/%zu] %s: already complete, skipped (--force runs it again)\n", c.index + 1, n,
                     c.name.c_str());
        continue;
      }
      std::vector<std::string> args = c.train_args;
      if (plan == Plan::kResume) {
        args = {"train"};
        for (const std::string& p : plugin_paths) args.insert(args.end(), {"--plugin-path", p});
        args.insert(args.end(), {"--resume", c.log + ".ckpt"});
        ++resumed;
      } else if (plan == Plan::kOverwrite) {
        args.push_back("--overwrite");
      }
      if (plan != Plan::kResume) std::remove(c.out.c_str());
      pid_t pid = spawn_process(exe, args, c.out, c.out);
      running[pid] = {&c, Clock::now()};
      std::string what;
      for (const auto& [k, v] : c.axes) what += (what.empty() ? "" : " ") + k + "=" + v;
      std::fprintf(stderr, "[%zu/%zu] %s: %s (%s)\n", c.index + 1, n, c.name.c_str(),
                   plan == Plan::kResume ? "resumed from its checkpoint" : plan == Plan::kOverwrite ? "started again" : "started",
                   what.empty() ? "no swept options" : what.c_str());
    }
    if (!running.empty()) reap_one();
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);

  std::vector<std::string> present, names;
  for (const std::string& l : logs)
    if (boost::filesystem::exists(l)) {
      present.push_back(l);
      names.push_back(boost::filesystem::path(l).filename().string());
    }
  LoadResult loaded = load_rows(present, names);
  for (const LoadProblem& p : loaded.problems) std::fprintf(stderr, "ssmhost: sweep: %s\n", p.message.c_str());
  if (!loaded.rows.empty()) std::cout << format_table(loaded.rows, table_columns(loaded.rows), so.format);
  std::fprintf(stderr, "sweep: %zu run%s, %zu failed, %zu skipped, %zu resumed%s; `ssmhost report %s` shows them again\n",
               todo.size(), todo.size() == 1 ? "" : "s", failed, skipped, resumed,
               g_stop_signal ? (", stopped by signal " + std::to_string(g_stop_signal) + " before " +
                                std::to_string(todo.size() - next) + " more").c_str()
                             : "",
               so.out.c_str());
  if (g_stop_signal) return 128 + g_stop_signal;
  return failed ? 1 : 0;
}

}  // namespace ssmhost
