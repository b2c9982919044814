// `ssmhost plot RUN.h5|DIR ... --metric M --x step|time|KEY --out FILE.svg|FILE.png`:
// training curves of several runs on one chart (x = step or time), or the
// runs' (and bench files') results against an option (x = seq_len, ...),
// one line per group of the options that differ. The legend names what
// differs. SVG is written directly, PNG through gnuplot (chart.cpp).
#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "analysis.hpp"
#include "chart.hpp"
#include "commands.hpp"
#include "options.hpp"
#include "runlog.hpp"

namespace po = boost::program_options;

namespace ssmhost {

namespace {

po::options_description plot_options() {
  po::options_description d("Options");
  d.add_options()("out", po::value<std::string>(), "the chart: FILE.svg (written directly) or FILE.png (gnuplot)")(
      "metric", po::value<std::string>(),
      "curves: loss (default), accuracy, bpc, mse, metric (the run's own), lr, grad_norm, step_ms, tokens_per_s, "
      "peak_rss_mb; results (--x KEY): best (default), final, step_ms, infer_ms, tokens_per_s, peak_mb, wall_s, params")(
      "x", po::value<std::string>(),
      "step (default for run logs), time (training time), or any column or option, e.g. seq_len (default for bench "
      "files): then one point per run")(
      "split", po::value<std::string>(), "curves from train or eval rows (default: eval for accuracy/bpc/mse, train else)")(
      "smooth", po::value<int64_t>()->default_value(1), "moving average over N points (curves)")(
      "filter", po::value<std::vector<std::string>>()->composing(), "as in report: KEY=V, KEY<V, ...; repeatable")(
      "label", po::value<std::string>(), "legend from these keys (comma-separated) instead of the differing options")(
      "title", po::value<std::string>(), "chart title")("log-x", "logarithmic x axis")("log-y", "logarithmic y axis")(
      "size", po::value<std::string>()->default_value("900x560"), "WIDTHxHEIGHT in pixels")(
      "kernels", "the convolution kernels an LTI layer learnt: one run log trained with --log-kernels")(
      "step", po::value<int64_t>(), "--kernels: the evaluation step to draw (default: the last)")(
      "path", po::value<std::vector<std::string>>()->composing(), "run logs, bench files or directories");
  return d;
}

bool is_curve_x(const std::string& x) { return x == "step" || x == "time"; }

// What a metric is called on an axis, with its unit.
std::string axis_label(const std::string& m, const std::string& split, const std::string& metric_name) {
  if (m == "loss") return split + " loss";
  if (m == "accuracy") return split + " accuracy";
  if (m == "bpc") return split + " bits per character";
  if (m == "mse") return split + " mean squared error";
  if (m == "metric") return split + " " + (metric_name.empty() ? "metric" : metric_name);
  if (m == "lr") return "learning rate";
  if (m == "grad_norm") return "gradient norm (before clipping)";
  if (m == "step_ms") return "training step (ms)";
  if (m == "infer_ms") return "inference forward pass (ms)";
  if (m == "tokens_per_s") return "training throughput (tokens/s)";
  if (m == "peak_rss_mb" || m == "peak_mb") return "peak memory (MiB)";
  if (m == "wall_s") return "wall time (s)";
  if (m == "params") return "parameters";
  if (m == "best") return "best eval " + (metric_name.empty() ? "metric" : metric_name);
  if (m == "final") return "final eval " + (metric_name.empty() ? "metric" : metric_name);
  return m;
}

std::string x_label_of(const std::string& x) {
  static const std::map<std::string, std::string> names = {
      {"seq_len", "sequence length L"}, {"batch_size", "batch size"},  {"d_model", "model width H"},
      {"d_state", "state size N"},      {"n_layers", "layers"},        {"threads", "threads"},
      {"lr", "learning rate"},          {"params", "parameters"},      {"steps", "steps"}};
  auto it = names.find(x);
  return it == names.end() ? x : it->second;
}

// Trailing moving average over `n` finite points; NaNs stay (they break lines).
std::vector<double> smooth(const std::vector<double>& y, int64_t n) {
  if (n <= 1) return y;
  std::vector<double> out(y.size(), NAN);
  double sum = 0;
  std::vector<double> window;
  size_t head = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    window.push_back(y[i]);
    sum += y[i];
    if (static_cast<int64_t>(window.size() - head) > n) sum -= window[head++];
    out[i] = sum / static_cast<double>(window.size() - head);
  }
  return out;
}

// The keys whose values differ between rows: fixed columns that name what a
// run is (layer, disc, ...), then the differing options, minus `except`.
std::vector<std::string> legend_keys(const std::vector<Row>& rows, const std::string& except) {
  std::vector<std::string> keys;
  for (const char* k : {"layer", "inner", "disc", "task", "seq_len"}) {
    std::set<std::string> values;
    for (const Row& r : rows) values.insert(r.get(k).format());
    if (values.size() > 1 && k != except) keys.push_back(k);
  }
  for (const std::string& k : differing_options(rows))
    if (k != except && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  // Runs that differ in many ways: their file names make a shorter legend.
  if (keys.size() > 4) {
    std::string names;
    for (const std::string& k : keys) names += (names.empty() ? "" : ",") + k;
    std::fprintf(stderr,
                 "plot: %zu options differ between the runs (%s): the legend names the files; --label KEYS "
                 "names some options instead\n",
                 keys.size(), names.c_str());
    keys.clear();
  }
  return keys;
}

// One run's curve; throws Error naming the run when it has no such metric.
Series curve_of(const Row& row, const std::string& metric, std::string split, const std::string& x, int64_t n_smooth,
                std::string& used_split) {
  const RunLogReader& r = *row.log;
  const bool train_only = metric == "lr" || metric == "grad_norm" || metric == "step_ms" ||
                          metric == "tokens_per_s" || metric == "peak_rss_mb";
  const bool is_metric = metric == "accuracy" || metric == "bpc" || metric == "mse" || metric == "metric";
  if (split.empty()) split = is_metric && r.rows("eval") > 0 ? "eval" : "train";
  if (train_only && split == "eval") throw Error(row.name + ": " + metric + " is logged per training step only (--split train)");
  std::string column;
  if (metric == "metric" || (is_metric && metric == r.metric_name())) {
    column = "metric";
  } else {
    for (const std::string& c : r.columns(split))
      if (c == metric) column = c;
  }
  if (column.empty() || (column == "metric" && metric != "metric" && metric != r.metric_name())) {
    std::string have;
    for (const std::string& c : r.columns(split))
      if (c != "step" && c != "epoch") have += (have.empty() ? "" : ", ") + (c == "metric" ? r.metric_name() : c);
    throw Error(row.name + ": no " + metric + " in /" + split + " (this run has " + have + ")");
  }
  used_split = split;
  Series s;
  s.label = row.name;
  const std::vector<double>& steps = r.column(split, "step");
  s.y = smooth(r.column(split, column), n_smooth);
  if (x == "step") {
    s.x = steps;
  } else {  // cumulative training time at each row's step
    const std::vector<double>& tsteps = r.column("train", "step");
    const std::vector<double>& ms = r.column("train", "step_ms");
    std::map<double, double> at;  // step -> seconds so far
    double t = 0;
    for (size_t i = 0; i < tsteps.size(); ++i) {
      if (std::isfinite(ms[i])) t += ms[i] / 1000.0;
      at[tsteps[i]] = t;
    }
    for (double st : steps) {
      auto it = at.upper_bound(st);
      s.x.push_back(it == at.begin() ? NAN : std::prev(it)->second);
    }
  }
  return s;
}

// A default title: what every plotted row shares ("task=copy layer=s4d").
std::string common_title(const std::vector<Row>& rows, const std::vector<std::string>& legend, const std::string& x) {
  std::string title;
  for (const char* k : {"task", "layer", "inner", "disc", "seq_len"}) {
    if (k == x || std::find(legend.begin(), legend.end(), k) != legend.end() || rows.empty()) continue;
    std::set<std::string> values;
    for (const Row& r : rows) values.insert(r.get(k).format());
    if (values.size() == 1 && !values.begin()->empty()) title += (title.empty() ? "" : ", ") + std::string(k) + "=" + *values.begin();
  }
  return title;
}

// --kernels: one line per (layer, channel) of one run's /kernels, at the
// last recorded evaluation or at --step.
void kernel_chart(const std::vector<std::string>& paths, const po::variables_map& vm, Chart& chart) {
  if (paths.size() != 1) throw UsageError("plot --kernels takes one run log, got " + std::to_string(paths.size()));
  RunLogReader r = RunLogReader::open(paths[0]);
  const KernelHistory& k = r.kernels();
  if (k.empty())
    throw Error("plot --kernels: " + paths[0] + " has no /kernels: train with --log-kernels (a layer with a "
                "convolution kernel, e.g. s4d) to record them");
  size_t at = k.steps.size() - 1;
  if (vm.count("step")) {
    const int64_t want = vm["step"].as<int64_t>();
    auto it = std::find(k.steps.begin(), k.steps.end(), want);
    if (it == k.steps.end()) {
      std::string have;
      for (int64_t s : k.steps) have += (have.empty() ? "" : ", ") + std::to_string(s);
      throw UsageError("--step " + std::to_string(want) + ": " + paths[0] + " has kernels at steps " + have);
    }
    at = static_cast<size_t>(it - k.steps.begin());
  }
  const size_t per_layer = static_cast<size_t>(k.channels * k.length);
  const double* base = k.values.data() + at * static_cast<size_t>(k.layers) * per_layer;
  for (int64_t l = 0; l < k.layers; ++l)
    for (int64_t c = 0; c < k.channels; ++c) {
      const double* v = base + l * per_layer + c * k.length;
      if (!std::isfinite(v[0])) continue;  // a layer without a kernel
      Series s;
      s.label = "block " + std::to_string(l) + ", channel " + std::to_string(c);
      for (int64_t t = 0; t < k.length; ++t) s.x.push_back(static_cast<double>(t)), s.y.push_back(v[t]);
      chart.series.push_back(std::move(s));
    }
  const auto& cfg = r.config();
  auto get = [&](const char* key) { return cfg.count(key) ? cfg.at(key) : std::string("?"); };
  if (!vm.count("title"))
    chart.title = "convolution kernels of " + get("layer") + " on " + get("task") + " at step " + std::to_string(k.steps[at]);
  else
    chart.title = vm["title"].as<std::string>();
  chart.x_label = "lag (tokens)";
  chart.y_label = "kernel K[lag] (impulse response, without D)";
}


// Writes the chart as SVG or PNG; exit status 1 when some input had a problem.
int write_chart(const Chart& chart, const std::string& out, bool png, const std::vector<LoadProblem>& problems) {
  for (const LoadProblem& p : problems) std::fprintf(stderr, "ssmhost: plot: %s\n", p.message.c_str());
  if (chart.series.empty()) throw Error("plot: nothing to draw" + std::string(problems.empty() ? "" : " (see above)"));
  if (png) {
    render_png_gnuplot(chart, out);
  } else {
    std::ofstream f(out);
    if (!f) throw Error("--out " + out + ": cannot write the file");
    f << render_svg(chart);
    f.close();
    if (!f) throw Error("--out " + out + ": writing failed");
  }
  std::fprintf(stderr, "plot: %zu line%s -> %s\n", chart.series.size(), chart.series.size() == 1 ? "" : "s", out.c_str());
  return problems.empty() ? 0 : 1;
}

}  // namespace

std::string plot_help() {
  std::ostringstream o;
  o << "ssmhost plot RUN.h5|DIR ... --out FILE.svg|FILE.png [--metric M] [--x step|time|KEY] [--smooth N]\n\n"
       "Curves (--x step or time): one line per run, e.g. the eval accuracy of every run of a sweep.\n"
       "Results (--x KEY, any column or option such as seq_len, d_state, batch_size): one point per\n"
       "run or bench combination, joined into one line per group of the other options that differ,\n"
       "e.g. `ssmhost plot bench.h5 --x seq_len --metric step_ms`.\n"
       "The legend names the options that differ between the runs (or --label KEYS). SVG is written\n"
       "directly; PNG needs gnuplot (Debian: gnuplot-nox). A run without the metric is named on\n"
       "stderr and left out (exit status 1). Examples in docs/analysis.md.\n\n"
    << plot_options();
  return o.str();
}

int run_plot(const std::vector<std::string>& args) {
  po::positional_options_description pos;
  pos.add("path", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(plot_options()).positional(pos).run(), vm);
  po::notify(vm);
  std::vector<std::string> paths = vm.count("path") ? vm["path"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (paths.empty()) throw UsageError("plot needs run logs or directories, e.g. `ssmhost plot runs/ --out loss.svg`");
  if (!vm.count("out")) throw UsageError("plot needs --out FILE.svg or --out FILE.png");
  const std::string out = vm["out"].as<std::string>();
  auto ends_with = [](const std::string& s, const std::string& e) {
    return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
  };
  const bool png = ends_with(out, ".png") || ends_with(out, ".PNG");
  if (!png && !ends_with(out, ".svg") && !ends_with(out, ".SVG"))
    throw UsageError("--out must end in .svg or .png, got '" + out + "'");
  Chart chart;
  {
    const std::string size = vm["size"].as<std::string>();
    const size_t xpos = size.find('x');
    auto w = to_int(size.substr(0, xpos)), h = xpos == std::string::npos ? std::nullopt : to_int(size.substr(xpos + 1));
    if (!w || !h || *w < 200 || *h < 150 || *w > 10000 || *h > 10000)
      throw UsageError("--size must be WIDTHxHEIGHT in pixels (at least 200x150), got '" + size + "'");
    chart.width = static_cast<int>(*w);
    chart.height = static_cast<int>(*h);
  }
  if (vm.count("kernels")) {
    kernel_chart(paths, vm, chart);
    return write_chart(chart, out, png, {});
  }
  const int64_t n_smooth = vm["smooth"].as<int64_t>();
  if (n_smooth < 1) throw UsageError("--smooth must be >= 1");
  std::string split = vm.count("split") ? vm["split"].as<std::string>() : "";
  if (!split.empty() && split != "train" && split != "eval")
    throw UsageError("--split must be train or eval, got '" + split + "'");

  std::vector<LoadProblem> problems;
  std::vector<std::string> names;
  std::vector<std::string> files = expand_paths(paths, problems, &names);
  LoadResult loaded = load_rows(files, names);
  for (auto& p : loaded.problems) problems.push_back(p);
  std::vector<Row> rows = loaded.rows;
  if (vm.count("filter"))
    for (const std::string& f : vm["filter"].as<std::vector<std::string>>()) {
      Filter flt = Filter::parse(f);
      rows.erase(std::remove_if(rows.begin(), rows.end(), [&](const Row& r) { return !flt.matches(r); }), rows.end());
    }
  bool all_bench = !rows.empty();
  for (const Row& r : rows) all_bench &= r.kind == "bench";
  std::string x = vm.count("x") ? underscores(vm["x"].as<std::string>()) : all_bench ? "seq_len" : "step";
  std::string metric = vm.count("metric") ? underscores(vm["metric"].as<std::string>())
                                          : is_curve_x(x) ? "loss" : all_bench ? "step_ms" : "best";
  if (metric == "acc") metric = "accuracy";
  chart.log_x = vm.count("log_x") || vm.count("log-x");
  chart.log_y = vm.count("log_y") || vm.count("log-y");
  if (vm.count("title")) chart.title = vm["title"].as<std::string>();

  std::string metric_name;  // the runs' own metric, when they share one
  {
    std::set<std::string> names;
    for (const Row& r : rows)
      if (r.kind == "run") names.insert(r.get("metric").format());
    if (names.size() == 1) metric_name = *names.begin();
  }
  std::vector<std::string> label_keys;
  if (vm.count("label")) {
    std::stringstream ss(vm["label"].as<std::string>());
    std::string k;
    while (std::getline(ss, k, ','))
      if (!k.empty()) label_keys.push_back(underscores(k));
  }

  if (is_curve_x(x)) {
    std::vector<Row> runs;
    for (const Row& r : rows) {
      if (r.kind == "run")
        runs.push_back(r);
      else
        problems.push_back({r.source, r.name + ": a bench result has no curve; plot bench files with --x seq_len (or "
                                                "another option)"});
    }
    if (!vm.count("label")) label_keys = legend_keys(runs, "");
    if (!vm.count("title")) chart.title = common_title(runs, label_keys, x);
    std::string used_split;
    for (const Row& r : runs) {
      try {
        Series s = curve_of(r, metric, split, x, n_smooth, used_split);
        s.label = label_of(r, label_keys);
        chart.series.push_back(std::move(s));
      } catch (const std::exception& e) {
        problems.push_back({r.source, e.what()});
      }
    }
    chart.x_label = x == "step" ? "step" : "training time (s)";
    chart.y_label = axis_label(metric, used_split.empty() ? "train" : used_split, metric_name);
    if (n_smooth > 1) chart.y_label += " (moving average of " + std::to_string(n_smooth) + ")";
    if (x == "time") {  // minutes or hours when seconds get long
      double tmax = 0;
      for (const Series& s : chart.series)
        for (double v : s.x)
          if (std::isfinite(v)) tmax = std::max(tmax, v);
      const double div = tmax > 3 * 3600 ? 3600 : tmax > 180 ? 60 : 1;
      if (div > 1) {
        for (Series& s : chart.series)
          for (double& v : s.x) v /= div;
        chart.x_label = div == 60 ? "training time (min)" : "training time (h)";
      }
    }
  } else {
    // Results against an option: group rows by the other differing keys.
    std::vector<Row> usable;
    for (const Row& r : rows) {
      Cell xv = r.get(x), yv = r.get(metric == "accuracy" || metric == "bpc" || metric == "mse" ? "best" : metric);
      auto xn = xv.kind == Cell::kNumber ? std::optional<double>(xv.number) : to_double(xv.text);
      if (!xn) {
        problems.push_back({r.source, r.name + ": no numeric '" + x + "' to put on the x axis"});
        continue;
      }
      if (yv.kind != Cell::kNumber) {
        problems.push_back({r.source, r.name + ": no '" + metric + "' value"});
        continue;
      }
      usable.push_back(r);
    }
    if (!vm.count("label")) label_keys = legend_keys(usable, x);
    if (!vm.count("title")) chart.title = common_title(usable, label_keys, x);
    std::map<std::string, std::vector<std::pair<double, double>>> groups;
    std::vector<std::string> order;
    for (const Row& r : usable) {
      Cell xv = r.get(x), yv = r.get(metric == "accuracy" || metric == "bpc" || metric == "mse" ? "best" : metric);
      const double xn = xv.kind == Cell::kNumber ? xv.number : *to_double(xv.text);
      std::string label = label_keys.empty() ? (metric_name.empty() ? metric : metric_name) : label_of(r, label_keys);
      if (!groups.count(label)) order.push_back(label);
      groups[label].push_back({xn, yv.number});
    }
    std::set<double> xs;  // few distinct x values (lengths measured): a tick at each
    for (auto& kv : groups)
      for (auto& pt : kv.second) xs.insert(pt.first);
    if (xs.size() >= 2 && xs.size() <= 12) chart.x_ticks.assign(xs.begin(), xs.end());
    for (const std::string& label : order) {
      auto& pts = groups[label];
      std::stable_sort(pts.begin(), pts.end());
      Series s;
      s.label = label;
      s.markers = true;
      for (auto& [a, b] : pts) {
        s.x.push_back(a);
        s.y.push_back(b);
      }
      chart.series.push_back(std::move(s));
    }
    chart.x_label = x_label_of(x);
    const std::string m = metric == "accuracy" || metric == "bpc" || metric == "mse" ? "best" : metric;
    chart.y_label = axis_label(m, "eval", metric_name);
  }
  return write_chart(chart, out, png, problems);
}

}  // namespace ssmhost
