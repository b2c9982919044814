// `ssmhost report RUN.h5|DIR ...`: one run's configuration, summary and
// evaluation curve; or many runs (and `ssmhost bench` files) as one table
// with --sort, --filter and --format; or --follow a live run until it ends.
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include "analysis.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runlock.hpp"
#include "runlog.hpp"

namespace po = boost::program_options;

namespace ssmhost {

namespace {

po::options_description report_options() {
  po::options_description d("Options");
  d.add_options()("format", po::value<std::string>(), "table (default), csv, json or markdown")(
      "sort", po::value<std::string>(), "sort by KEY[,KEY...]; -KEY for descending, e.g. --sort -best")(
      "filter", po::value<std::vector<std::string>>()->composing(),
      "keep rows where KEY=V (V1,V2: any of them), KEY!=V, KEY<V, KEY>V, KEY<=V, KEY>=V; KEY is a column or "
      "any option of the run; repeatable (all must hold)")(
      "columns", po::value<std::string>(), "show exactly these columns (comma-separated keys, options included)")(
      "table", "a table even for a single run log")(
      "follow", "watch one live run log: print progress until the run ends")(
      "interval", po::value<double>()->default_value(2.0), "--follow: seconds between looks at the file")(
      "stale", po::value<double>()->default_value(600.0),
      "--follow: give up after this many seconds without new rows (a crashed run never ends)")(
      "path", po::value<std::vector<std::string>>()->composing(), "run logs, bench files or directories");
  return d;
}

void report_one(const RunLogReader& r) {
  std::printf("== %s (schema v%lld)\nstatus: %s\n", r.path().c_str(), static_cast<long long>(r.schema_version()),
              describe_run_state(r).c_str());
  for (const auto& kv : r.root_attrs()) std::printf("  %-16s %s\n", kv.first.c_str(), kv.second.c_str());
  std::printf("plugins:\n");
  if (r.plugin_records().empty())
    for (const auto& kv : r.plugins()) std::printf("  %-16s %s\n", kv.first.c_str(), kv.second.c_str());
  for (const PluginRecord& p : r.plugin_records())
    std::printf("  %-16s %-8s %-7s ABI %-4s sha256 %.12s  %s\n", p.id.c_str(), p.version.c_str(), p.kind.c_str(),
                p.abi.c_str(), p.sha256.c_str(), p.path.c_str());
  std::printf("config:\n");
  for (const auto& kv : r.config()) std::printf("  %-16s %s\n", kv.first.c_str(), kv.second.c_str());
  std::printf("summary:\n");
  for (const auto& kv : r.summary_text()) std::printf("  %-18s %s\n", kv.first.c_str(), kv.second.c_str());
  for (const auto& kv : r.summary_numbers()) std::printf("  %-18s %.6g\n", kv.first.c_str(), kv.second);
  for (const RunEvent& e : r.events())  // a resume, ...
    std::printf("event: %s %s at step %lld: %s\n", e.time.c_str(), e.kind.c_str(), static_cast<long long>(e.step),
                e.detail.c_str());
  std::printf("train: %zu steps logged", r.rows("train"));
  if (r.rows("train") > 0) {
    std::printf(", median step %.1f ms, median %.0f tokens/s, last loss %.4f", median_of(r.column("train", "step_ms")),
                median_of(r.column("train", "tokens_per_s")), r.column("train", "loss").back());
  }
  // The eval table, with the task's extra columns (e.g. accuracy_L1024 of
  // --eval-seq-len) after the fixed ones.
  const std::vector<std::string> extra = r.eval_extra_metrics();
  std::printf("\neval (%s):\n  %8s %6s %10s %10s", r.metric_name().c_str(), "step", "epoch", "loss",
              r.metric_name().c_str());
  for (const std::string& e : extra) std::printf(" %*s", static_cast<int>(std::max<size_t>(10, e.size())), e.c_str());
  std::printf("\n");
  const size_t n = r.rows("eval");
  for (size_t i = 0; i < n; ++i) {
    std::printf("  %8.0f %6.0f %10.4f %10.4f", r.column("eval", "step")[i], r.column("eval", "epoch")[i],
                r.column("eval", "loss")[i], r.column("eval", "metric")[i]);
    for (const std::string& e : extra)
      std::printf(" %*.4f", static_cast<int>(std::max<size_t>(10, e.size())), r.column("eval", e)[i]);
    std::printf("\n");
  }
}

std::string duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
  return buf;
}

// One progress line of a (live) run log.
std::string progress_line(const RunLogReader& r) {
  std::ostringstream o;
  const size_t n = r.rows("train");
  char buf[256];
  double total = NAN;
  if (auto it = r.config().find("steps_total"); it != r.config().end())
    if (auto v = to_double(it->second)) total = *v;
  if (n == 0) {
    o << "no steps yet";
  } else {
    const double step = r.column("train", "step").back();
    std::snprintf(buf, sizeof buf, "step %.0f", step);
    o << buf;
    if (std::isfinite(total)) {
      std::snprintf(buf, sizeof buf, "/%.0f", total);
      o << buf;
    }
    // The training loss over the last (up to) 50 rows, and the step time.
    const size_t from = n > 50 ? n - 50 : 0;
    const auto& loss = r.column("train", "loss");
    const auto& ms = r.column("train", "step_ms");
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = from; i < n; ++i)
      if (std::isfinite(loss[i])) sum += loss[i], ++cnt;
    std::vector<double> recent(ms.begin() + static_cast<long>(from), ms.end());
    const double med = median_of(recent);
    std::snprintf(buf, sizeof buf, " | loss %.4f | %.1f ms/step", cnt ? sum / cnt : NAN, med);
    o << buf;
    if (std::isfinite(total) && std::isfinite(med)) o << " | ETA " << duration((total - step) * med / 1000.0);
  }
  if (r.rows("eval") > 0) {
    Row row = row_of_run(std::make_shared<RunLogReader>(r), r.path());
    std::snprintf(buf, sizeof buf, " | eval %s %.4f (best %.4f)", r.metric_name().c_str(),
                  r.column("eval", "metric").back(), row.get("best").number);
    o << buf;
  }
  return o.str();
}

int follow(const std::string& path, double interval, double stale) {
  using Clock = std::chrono::steady_clock;
  const bool tty = isatty(STDOUT_FILENO);
  auto last_change = Clock::now();
  std::string last_line, last_error;
  size_t last_rows = static_cast<size_t>(-1), last_evals = 0;
  for (;;) {
    try {
      RunLogReader r = RunLogReader::open(path);
      last_error.clear();
      const size_t rows = r.rows("train"), evals = r.rows("eval");
      if (rows != last_rows || evals != last_evals || r.finished()) {
        last_change = Clock::now();
        std::string line = progress_line(r);
        if (tty)
          std::printf("\r\033[K%s%s", line.c_str(), evals != last_evals || r.finished() ? "\n" : "");
        else if (line != last_line)
          std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        last_line = line;
        last_rows = rows;
        last_evals = evals;
      }
      if (r.finished()) {
        std::printf("\n");
        report_one(r);
        return 0;
      }
      // No writer holds the log's lock: the run's process is gone. Look once
      // more (it may have closed the log just now), then say so.
      if (!RunLock::holder(path) && !RunLogReader::open(path).finished()) {
        if (tty) std::printf("\n");
        std::fprintf(stderr,
                     "ssmhost: report --follow: '%s' has no end_time and no process writes it any more: the run "
                     "crashed or was killed; `ssmhost report %s` shows what it logged\n",
                     path.c_str(), path.c_str());
        return 1;
      }
    } catch (const std::exception& e) {
      // Not there yet (the run is starting), or unreadable: retried until stale.
      if (e.what() != last_error) std::fprintf(stderr, "ssmhost: report --follow: %s (retrying)\n", e.what());
      last_error = e.what();
    }
    const double idle = std::chrono::duration<double>(Clock::now() - last_change).count();
    if (idle >= stale) {
      if (tty) std::printf("\n");
      std::fprintf(stderr,
                   "ssmhost: report --follow: '%s': nothing new for %.0f s and no end_time: the run has probably "
                   "crashed or been killed (or is stuck); `ssmhost report %s` shows what it logged\n",
                   path.c_str(), idle, path.c_str());
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(interval, std::max(0.0, stale - idle))));
  }
}

}  // namespace

std::string report_help() {
  std::ostringstream o;
  o << "ssmhost report RUN.h5|DIR ... [--sort KEY] [--filter KEY=V]... [--format table|csv|json|markdown]\n"
       "ssmhost report --follow RUN.h5 [--interval S]\n\n"
       "One run log: its attributes, configuration, plugins, summary and evaluation curve.\n"
       "Several (or a directory, searched for *.h5 recursively, or --table/--format/--sort/--filter):\n"
       "one row per run, the fixed columns below, then every option whose value differs between\n"
       "the runs. Bench files (`ssmhost bench --out`) give one row per measured combination.\n"
       "A file that cannot be read is named on stderr with the reason, the others are still shown;\n"
       "the exit status is then 1. The schema is in docs/runlog.md, examples in docs/analysis.md.\n\n"
       "Columns (keys for --sort, --filter and --columns; any option of a run works too):\n";
  for (const ColumnInfo& c : fixed_columns()) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-13s %s\n", c.key, c.meaning);
    o << line;
  }
  o << "\nExamples:\n"
       "  ssmhost report runs/                                  every run below runs/\n"
       "  ssmhost report sweep/ --sort -best --format markdown  best first, as a Markdown table\n"
       "  ssmhost report sweep/ --filter disc=zoh,bilinear --filter seq_len>=512\n"
       "  ssmhost report --follow runs/live.h5                  progress until the run ends\n\n"
    << report_options();
  return o.str();
}

int run_report(const std::vector<std::string>& args) {
  po::positional_options_description pos;
  pos.add("path", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(report_options()).positional(pos).run(), vm);
  po::notify(vm);
  std::vector<std::string> paths = vm.count("path") ? vm["path"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (paths.empty())
    throw UsageError("report needs run logs or directories, e.g. `ssmhost report runs/x.h5` or `ssmhost report runs/`");

  if (vm.count("follow")) {
    if (paths.size() != 1) throw UsageError("--follow watches one run log, got " + std::to_string(paths.size()));
    const double interval = vm["interval"].as<double>(), stale = vm["stale"].as<double>();
    if (!(interval > 0)) throw UsageError("--interval must be > 0");
    if (!(stale > 0)) throw UsageError("--stale must be > 0");
    return follow(paths[0], interval, stale);
  }

  std::string format = vm.count("format") ? vm["format"].as<std::string>() : "table";
  if (format != "table" && format != "csv" && format != "json" && format != "markdown")
    throw UsageError("--format must be table, csv, json or markdown, got '" + format + "'");
  std::vector<Filter> filters;
  if (vm.count("filter"))
    for (const std::string& f : vm["filter"].as<std::vector<std::string>>()) filters.push_back(Filter::parse(f));

  std::vector<LoadProblem> problems;
  std::vector<std::string> names;
  std::vector<std::string> files = expand_paths(paths, problems, &names);
  const bool single = paths.size() == 1 && files.size() == 1 && problems.empty() && files[0] == paths[0] &&
                      !vm.count("format") && !vm.count("sort") && !vm.count("filter") && !vm.count("columns") &&
                      !vm.count("table");
  LoadResult loaded = load_rows(files, names);
  for (auto& p : loaded.problems) problems.push_back(p);
  for (const LoadProblem& p : problems) std::fprintf(stderr, "ssmhost: report: %s\n", p.message.c_str());

  std::vector<Row>& rows = loaded.rows;
  if (single && rows.size() == 1 && rows[0].kind == "run") {
    report_one(*rows[0].log);
    return problems.empty() ? 0 : 1;
  }
  for (const Filter& f : filters) {
    bool known = false;
    for (const Row& r : rows) known |= !r.get(f.key).missing();
    bool fixed = false;
    for (const ColumnInfo& c : fixed_columns()) fixed |= f.key == c.key;
    if (!known && !fixed && !rows.empty())
      throw UsageError("--filter: no run has a column or option '" + f.key + "' (`ssmhost help report` lists columns)");
    rows.erase(std::remove_if(rows.begin(), rows.end(), [&](const Row& r) { return !f.matches(r); }), rows.end());
  }
  if (vm.count("sort")) sort_rows(rows, vm["sort"].as<std::string>());
  std::vector<std::string> columns;
  if (vm.count("columns")) {
    std::stringstream ss(vm["columns"].as<std::string>());
    std::string c;
    while (std::getline(ss, c, ','))
      if (!c.empty()) columns.push_back(underscores(c));
  } else {
    columns = table_columns(rows);
  }
  if (rows.empty() && !loaded.rows.empty() && format == "table") {
    std::fprintf(stderr, "ssmhost: report: no run matches the filters\n");
  } else if (rows.empty() && format == "table") {
    std::fprintf(stderr, "ssmhost: report: nothing to show\n");
    return 1;
  } else {
    std::cout << format_table(rows, columns, format);
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace ssmhost
