// `ssmhost report RUN.h5...`: a run's configuration, plugins and summary,
// and its evaluation curve, read from the run log.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "runlog.hpp"

namespace ssmhost {

std::string report_help() {
  return "ssmhost report RUN.h5 [RUN.h5 ...]\n\n"
         "Print each run log's attributes (version, commit, command line, times, host, device),\n"
         "its resolved configuration and plugins, its summary, and its evaluation curve.\n"
         "A run that is still going (or was killed) is reported up to its last flush.\n"
         "The schema is in docs/runlog.md; h5py and pandas read the same file directly.\n";
}

static void report_one(const std::string& path) {
  RunLogReader r = RunLogReader::open(path);
  std::printf("== %s (schema v%lld, %s)\n", path.c_str(), static_cast<long long>(r.schema_version()),
              r.finished() ? "finished" : "not finished: live or interrupted");
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
  std::printf("train: %zu steps logged", r.rows("train"));
  if (r.rows("train") > 0) {
    const auto& ms = r.column("train", "step_ms");
    std::vector<double> sorted(ms.begin(), ms.end());
    std::sort(sorted.begin(), sorted.end());
    std::printf(", median step %.1f ms, last loss %.4f", sorted[sorted.size() / 2], r.column("train", "loss").back());
  }
  std::printf("\neval (%s):\n  %8s %6s %10s %10s\n", r.metric_name().c_str(), "step", "epoch", "loss",
              r.metric_name().c_str());
  const size_t n = r.rows("eval");
  for (size_t i = 0; i < n; ++i)
    std::printf("  %8.0f %6.0f %10.4f %10.4f\n", r.column("eval", "step")[i], r.column("eval", "epoch")[i],
                r.column("eval", "loss")[i], r.column("eval", "metric")[i]);
}

int run_report(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("report needs at least one run log, e.g. `ssmhost report runs/x.h5`");
  for (const std::string& a : args)
    if (a.rfind("--", 0) == 0) throw UsageError("report takes run log paths only, got option '" + a + "'");
  for (size_t i = 0; i < args.size(); ++i) {
    if (i) std::printf("\n");
    report_one(args[i]);
  }
  return 0;
}

}  // namespace ssmhost
