#include "analysis.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "commands.hpp"
#include "h5util.hpp"
#include "options.hpp"
#include "runlock.hpp"

namespace fs = std::filesystem;

namespace ssmhost {

// ------------------------------------------------------------------ cells

Cell Cell::num(double v) {
  Cell c;
  if (std::isfinite(v)) {
    c.kind = kNumber;
    c.number = v;
  }
  return c;
}

Cell Cell::str(const std::string& s) {
  Cell c;
  if (!s.empty()) {
    c.kind = kText;
    c.text = s;
  }
  return c;
}

std::string Cell::format(int digits) const {
  if (kind == kText) return text;
  if (kind == kNone) return "";
  char buf[64];
  if (number == std::floor(number) && std::fabs(number) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", number);
  else
    std::snprintf(buf, sizeof buf, "%.*g", digits, number);
  return buf;
}

Cell Row::get(const std::string& key) const {
  auto c = cells.find(key);
  if (c != cells.end()) return c->second;
  auto o = config.find(key);
  if (o != config.end()) return Cell::str(o->second);
  return Cell{};
}

// ---------------------------------------------------------------- columns

const std::vector<ColumnInfo>& fixed_columns() {
  static const std::vector<ColumnInfo> all = {
      {"run", "the log file (bench files: FILE#N, the N-th combination)"},
      {"layer", "layer plugin"},
      {"inner", "inner layer of a composite layer"},
      {"disc", "discretization"},
      {"task", "task plugin"},
      {"seq_len", "sequence length (--seq-len; else the input length the model saw)"},
      {"params", "trained parameters"},
      {"steps", "optimizer steps done"},
      {"metric", "what best and final are (accuracy, bpc, mse, ...)"},
      {"best", "best evaluation metric"},
      {"final", "last evaluation metric"},
      {"step_ms", "median training step, milliseconds"},
      {"infer_ms", "median inference forward pass, milliseconds (bench)"},
      {"tokens_per_s", "median training throughput, tokens (time steps x batch) per second"},
      {"peak_mb", "peak resident memory of the process, MiB"},
      {"wall_s", "run time, seconds"},
      {"status", "/summary's status (completed, stopped_early, interrupted, failed); without end_time: "
                 "running or crashed; bench"},
  };
  return all;
}

bool is_noise_option(const std::string& key) {
  static const std::set<std::string> noise = {"log",   "quiet",  "resume", "steps_total", "checkpoint_every",
                                              "layer", "inner",  "disc",   "task",        "seq_len",
                                              "steps", "device", "config", "preset"};
  return noise.count(key) != 0;
}

// ------------------------------------------------------------------ paths

std::vector<std::string> expand_paths(const std::vector<std::string>& args, std::vector<LoadProblem>& problems,
                                      std::vector<std::string>* names) {
  std::vector<std::string> files;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(a, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && it->path().extension() == ".h5") {
          std::string p = it->path().string();
          if (p.rfind("./", 0) == 0) p = p.substr(2);
          found.push_back(p);
        }
      if (ec) problems.push_back({a, "'" + a + "': cannot list the directory: " + ec.message()});
      std::sort(found.begin(), found.end());
      if (found.empty() && !ec) problems.push_back({a, "'" + a + "': no run logs (*.h5) in this directory"});
      files.insert(files.end(), found.begin(), found.end());
      if (names)
        for (const std::string& f : found) names->push_back(fs::path(f).lexically_relative(a).string());
    } else if (fs::exists(a, ec)) {
      files.push_back(a);
      if (names) names->push_back(a);
    } else {
      problems.push_back({a, "'" + a + "': no such file or directory"});
    }
  }
  return files;
}

// ----------------------------------------------------------------- values

double median_of(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

bool higher_is_better_metric(const std::string& m) { return m == "accuracy" || m == "acc"; }

namespace {

double summary_number(const RunLogReader& r, const std::string& key) {
  auto it = r.summary_numbers().find(key);
  return it == r.summary_numbers().end() ? NAN : it->second;
}

std::string option(const std::map<std::string, std::string>& config, const std::string& key) {
  auto it = config.find(key);
  return it == config.end() ? "" : it->second;
}

}  // namespace

Row row_of_run(std::shared_ptr<const RunLogReader> log, const std::string& name) {
  const RunLogReader& r = *log;
  Row row;
  row.source = r.path();
  row.name = name;
  row.kind = "run";
  row.config = r.config();
  auto& c = row.cells;
  c["run"] = Cell::str(name);
  for (const char* key : {"layer", "inner", "disc", "task"}) c[key] = Cell::str(option(row.config, key));
  // The schemes that took part (an h3 or mamba run's inner layer may use
  // another than the run-wide --disc key says), where the log records them.
  if (!r.plugin_records().empty()) {
    std::string discs;
    for (const PluginRecord& p : r.plugin_records())
      if (p.kind == "disc") discs += (discs.empty() ? "" : "+") + p.id;
    c["disc"] = Cell::str(discs);
  }

  const size_t n_train = r.rows("train"), n_eval = r.rows("eval");
  auto col = [&](const char* group, const char* name) -> const std::vector<double>* {
    for (const std::string& have : r.columns(group))
      if (have == name) return &r.column(group, name);
    return nullptr;
  };
  const std::vector<double>* step_ms = n_train ? col("train", "step_ms") : nullptr;
  const std::vector<double>* tps = n_train ? col("train", "tokens_per_s") : nullptr;

  // seq_len: the option when the run was given one; else the length of the
  // model's input, which is tokens/s x step time / batch size.
  if (auto v = to_int(option(row.config, "seq_len"))) {
    c["seq_len"] = Cell::num(static_cast<double>(*v));
  } else if (step_ms && tps) {
    auto batch = to_double(option(row.config, "batch_size"));
    for (size_t i = 0; i < n_train && batch && *batch > 0; ++i)
      if (std::isfinite((*step_ms)[i]) && std::isfinite((*tps)[i]) && (*step_ms)[i] > 0) {
        c["seq_len"] = Cell::num(std::round((*tps)[i] * (*step_ms)[i] / 1000.0 / *batch));
        break;
      }
  }
  c["params"] = Cell::num(summary_number(r, "n_params"));
  double steps = summary_number(r, "steps");
  if (!std::isfinite(steps) && n_train) steps = r.column("train", "step").back();
  c["steps"] = Cell::num(steps);
  c["metric"] = Cell::str(r.metric_name());

  double best = summary_number(r, "best_metric"), final = summary_number(r, "final_metric");
  if (n_eval && (!std::isfinite(best) || !std::isfinite(final))) {  // a live or crashed run: from /eval
    const std::vector<double>& m = r.column("eval", "metric");
    const bool high = higher_is_better_metric(r.metric_name());
    double b = NAN;
    for (double v : m)
      if (std::isfinite(v) && (!std::isfinite(b) || (high ? v > b : v < b))) b = v;
    if (!std::isfinite(best)) best = b;
    if (!std::isfinite(final)) final = m.back();
  }
  c["best"] = Cell::num(best);
  c["final"] = Cell::num(final);
  if (step_ms) c["step_ms"] = Cell::num(median_of(*step_ms));
  if (tps) c["tokens_per_s"] = Cell::num(median_of(*tps));

  double peak = summary_number(r, "peak_rss_mb");
  if (!std::isfinite(peak) && n_train)
    if (const std::vector<double>* p = col("train", "peak_rss_mb"))
      for (double v : *p)
        if (std::isfinite(v)) peak = std::isfinite(peak) ? std::max(peak, v) : v;
  c["peak_mb"] = Cell::num(peak);

  double wall = summary_number(r, "wall_time_s");
  if (!std::isfinite(wall) && step_ms) {  // not finished: the training time so far
    wall = 0;
    for (double v : *step_ms)
      if (std::isfinite(v)) wall += v / 1000.0;
  }
  c["wall_s"] = Cell::num(wall);

  std::string status;
  if (!r.finished()) {
    // No end_time: still being written (its writer holds the lock), or its
    // process died before it could close the log.
    status = RunLock::holder(r.path()) ? "running" : "crashed";
  } else {
    auto it = r.summary_text().find("status");
    status = it != r.summary_text().end() && !it->second.empty() ? it->second : "finished";
  }
  c["status"] = Cell::str(status);
  row.log = std::move(log);
  return row;
}

namespace {

// The rows of a bench file (docs/analysis.md, "Benchmark files").
void load_bench(const std::string& path, const std::string& display, hid_t root, LoadResult& out) {
  const std::string where = "bench file '" + path + "'";
  const int64_t version = h5::get_attr_int64(root, "schema_version", where);
  if (version < 1 || version > kBenchSchemaVersion)
    throw Error(where + ": bench schema version " + std::to_string(version) +
                " is not supported (this ssmhost reads up to " + std::to_string(kBenchSchemaVersion) + ")");
  if (!h5::has_link(root, "results")) throw Error(where + ": no /results group (damaged?)");
  h5::Handle results = h5::open_group(root, "results", where);
  const std::vector<std::string> names = h5::link_names(results.get(), where);
  if (names.empty()) throw Error(where + ": no results in the file (the benchmark was stopped before the first)");
  const std::string stem = display;
  for (const std::string& id : names) {
    h5::Handle g = h5::open_group(results.get(), id, where);
    Row row;
    row.source = path;
    row.name = stem + "#" + id;
    row.kind = "bench";
    if (h5::has_link(g.get(), "config")) {
      h5::Handle cg = h5::open_group(g.get(), "config", where);
      for (const std::string& a : h5::attr_names(cg.get(), where))
        row.config[a] = h5::get_attr_string(cg.get(), a, where);
    }
    std::map<std::string, double> s;
    if (h5::has_link(g.get(), "summary")) {
      h5::Handle sg = h5::open_group(g.get(), "summary", where);
      for (const std::string& a : h5::attr_names(sg.get(), where))
        if (h5::attr_class(sg.get(), a, where) == H5T_FLOAT || h5::attr_class(sg.get(), a, where) == H5T_INTEGER)
          s[a] = h5::get_attr_double(sg.get(), a, where);
    }
    auto num = [&](const char* k) { return s.count(k) ? s[k] : NAN; };
    auto& c = row.cells;
    c["run"] = Cell::str(row.name);
    for (const char* key : {"layer", "inner", "disc", "task"}) c[key] = Cell::str(option(row.config, key));
    if (auto v = to_int(option(row.config, "seq_len"))) c["seq_len"] = Cell::num(static_cast<double>(*v));
    c["params"] = Cell::num(num("n_params"));
    c["steps"] = Cell::num(num("steps"));
    c["step_ms"] = Cell::num(num("train_step_ms"));
    c["infer_ms"] = Cell::num(num("infer_ms"));
    c["tokens_per_s"] = Cell::num(num("tokens_per_s"));
    c["peak_mb"] = Cell::num(num("peak_rss_mb"));
    c["wall_s"] = Cell::num(num("wall_time_s"));
    std::string status = h5::has_attr(g.get(), "status") ? h5::get_attr_string(g.get(), "status", where) : "";
    c["status"] = Cell::str(status == "ok" ? "bench" : status.empty() ? "unknown" : status);
    if (status != "ok" && h5::has_attr(g.get(), "error")) {
      std::string label;
      for (const char* k : {"layer", "disc", "seq_len", "batch_size", "d_model", "d_state", "threads"})
        if (row.config.count(k)) label += std::string(label.empty() ? "" : " ") + k + "=" + row.config[k];
      out.problems.push_back({path, row.name + " (" + label + "): " + h5::get_attr_string(g.get(), "error", where)});
    }
    out.rows.push_back(std::move(row));
  }
}

}  // namespace

LoadResult load_rows(const std::vector<std::string>& files, const std::vector<std::string>& names) {
  LoadResult out;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& path = files[i];
    const std::string name = i < names.size() && !names[i].empty() ? names[i] : path;
    try {
      // Bench files are told apart by their format attribute; everything else
      // goes to the run log reader, whose messages say what is wrong.
      bool bench = false;
      {
        h5::SilenceErrors quiet;
        if (H5Fis_hdf5(path.c_str()) > 0) {
          h5::Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
          if (f && h5::has_attr(f.get(), "format") &&
              h5::attr_class(f.get(), "format", "'" + path + "'") == H5T_STRING &&
              h5::get_attr_string(f.get(), "format", "'" + path + "'") == kBenchFormat) {
            bench = true;
            load_bench(path, name, f.get(), out);
          }
          H5Eclear2(H5E_DEFAULT);
        }
      }
      if (bench) continue;
      auto log = std::make_shared<RunLogReader>(RunLogReader::open(path));
      out.rows.push_back(row_of_run(std::move(log), name));
    } catch (const std::exception& e) {
      out.problems.push_back({path, e.what()});
    }
  }
  return out;
}

// ---------------------------------------------------------- differing keys

std::vector<std::string> differing_options(const std::vector<Row>& rows) {
  // Within rows of one kind (run logs, bench results) an option that some
  // have and others lack differs; between kinds only options that every row
  // has can differ (a bench result has no --lr, which says nothing).
  auto differing_in = [](const std::vector<const Row*>& group, bool missing_differs) {
    std::set<std::string> keys, out;
    for (const Row* r : group)
      for (const auto& kv : r->config)
        if (!is_noise_option(kv.first)) keys.insert(kv.first);
    for (const std::string& k : keys) {
      std::set<std::string> values;
      bool everywhere = true;
      for (const Row* r : group) {
        auto it = r->config.find(k);
        everywhere &= it != r->config.end();
        values.insert(it == r->config.end() ? std::string("\x01missing") : it->second);
      }
      if (values.size() > 1 && (missing_differs || everywhere)) out.insert(k);
    }
    return out;
  };
  std::map<std::string, std::vector<const Row*>> by_kind;
  std::vector<const Row*> all;
  for (const Row& r : rows) {
    by_kind[r.kind].push_back(&r);
    all.push_back(&r);
  }
  std::set<std::string> keys = differing_in(all, by_kind.size() <= 1);
  if (by_kind.size() > 1)
    for (const auto& kv : by_kind)
      for (const std::string& k : differing_in(kv.second, true)) keys.insert(k);
  return {keys.begin(), keys.end()};
}

std::string label_of(const Row& row, const std::vector<std::string>& keys) {
  if (keys.empty()) return fs::path(row.name).stem().string();
  std::string s;
  for (const std::string& k : keys) {
    Cell c = row.get(k);
    s += (s.empty() ? "" : " ") + k + "=" + (c.missing() ? "-" : c.format());
  }
  return s;
}

// ----------------------------------------------------------------- filter

Filter Filter::parse(const std::string& text) {
  Filter f;
  size_t pos = text.find_first_of("=!<>");
  if (pos == std::string::npos || pos == 0)
    throw UsageError("--filter needs KEY=VALUE (or KEY!=V, KEY<V, KEY>V, KEY<=V, KEY>=V), got '" + text + "'");
  f.key = underscores(text.substr(0, pos));
  std::string rest = text.substr(pos);
  for (const char* op : {"!=", "<=", ">=", "=", "<", ">"})
    if (rest.rfind(op, 0) == 0) {
      f.op = op;
      break;
    }
  if (f.op.empty()) throw UsageError("--filter '" + text + "': expected =, !=, <, >, <= or >= after the key");
  std::string value = rest.substr(f.op.size());
  if (f.op == "=" || f.op == "!=") {
    std::stringstream ss(value);
    std::string v;
    while (std::getline(ss, v, ',')) f.values.push_back(v);
    if (f.values.empty()) f.values.push_back("");
  } else {
    if (!to_double(value)) throw UsageError("--filter '" + text + "': " + f.op + " needs a number, got '" + value + "'");
    f.values.push_back(value);
  }
  return f;
}

namespace {

bool cell_equals(const Cell& c, const std::string& v) {
  if (c.missing()) return v.empty() || v == "-";
  auto want = to_double(v);
  if (c.kind == Cell::kNumber) return want && *want == c.number;
  if (want) {
    auto have = to_double(c.text);
    if (have) return *have == *want;
  }
  return c.text == v;
}

std::optional<double> cell_number(const Cell& c) {
  if (c.kind == Cell::kNumber) return c.number;
  if (c.kind == Cell::kText) return to_double(c.text);
  return std::nullopt;
}

}  // namespace

bool Filter::matches(const Row& row) const {
  Cell c = row.get(key);
  if (op == "=" || op == "!=") {
    bool any = false;
    for (const std::string& v : values) any |= cell_equals(c, v);
    return op == "=" ? any : !any;
  }
  auto have = cell_number(c);
  if (!have) return false;
  const double want = *to_double(values[0]);
  if (op == "<") return *have < want;
  if (op == ">") return *have > want;
  if (op == "<=") return *have <= want;
  return *have >= want;
}

// ------------------------------------------------------------------- sort

void sort_rows(std::vector<Row>& rows, const std::string& spec) {
  std::vector<std::pair<std::string, bool>> keys;  // key, descending
  std::stringstream ss(spec);
  std::string k;
  while (std::getline(ss, k, ',')) {
    if (k.empty()) continue;
    bool desc = k[0] == '-';
    if (desc || k[0] == '+') k = k.substr(1);
    keys.push_back({underscores(k), desc});
  }
  if (keys.empty()) throw UsageError("--sort needs a column, e.g. --sort best or --sort -tokens_per_s");
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    for (const auto& [key, desc] : keys) {
      Cell x = a.get(key), y = b.get(key);
      if (x.missing() || y.missing()) {
        if (x.missing() != y.missing()) return y.missing();  // missing last
        continue;
      }
      auto nx = cell_number(x), ny = cell_number(y);
      int cmp = 0;
      if (nx && ny)
        cmp = *nx < *ny ? -1 : *nx > *ny ? 1 : 0;
      else
        cmp = x.format().compare(y.format());
      if (cmp != 0) return desc ? cmp > 0 : cmp < 0;
    }
    return false;
  });
}

// ----------------------------------------------------------------- tables

std::vector<std::string> table_columns(const std::vector<Row>& rows) {
  std::vector<std::string> cols;
  for (const ColumnInfo& ci : fixed_columns()) {
    bool any = false;
    for (const Row& r : rows) any |= !r.get(ci.key).missing();
    if (any) cols.push_back(ci.key);
  }
  for (const std::string& k : differing_options(rows)) cols.push_back(k);
  return cols;
}

namespace {

// How the text table writes a fixed column's numbers.
std::string pretty(const std::string& key, const Cell& c) {
  if (c.kind != Cell::kNumber) return c.missing() ? "-" : c.text;
  char buf[64];
  const double v = c.number;
  if (key == "best" || key == "final")
    std::snprintf(buf, sizeof buf, "%.4f", v);
  else if (key == "step_ms" || key == "infer_ms")
    std::snprintf(buf, sizeof buf, v < 10 ? "%.3f" : v < 1000 ? "%.2f" : "%.0f", v);
  else if (key == "tokens_per_s" || key == "params" || key == "steps" || key == "seq_len")
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (key == "peak_mb" || key == "wall_s")
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    return c.format();
  return buf;
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (ch < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", ch);
          o += b;
        } else {
          o += static_cast<char>(ch);
        }
    }
  }
  return o + "\"";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return o + "\"";
}

bool numeric_column(const std::vector<Row>& rows, const std::string& key) {
  bool any = false;
  for (const Row& r : rows) {
    Cell c = r.get(key);
    if (c.kind == Cell::kText && !to_double(c.text)) return false;
    any |= !c.missing();
  }
  return any;
}

}  // namespace

std::string format_table(const std::vector<Row>& rows, const std::vector<std::string>& columns,
                         const std::string& format) {
  std::ostringstream o;
  if (format == "json") {
    o << "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      o << (i ? ",\n " : "\n ") << "{" << json_string("path") << ": " << json_string(rows[i].source);
      for (const std::string& k : columns) {
        Cell c = rows[i].get(k);
        o << ", " << json_string(k) << ": ";
        if (c.kind == Cell::kNumber)
          o << c.format(10);
        else if (c.kind == Cell::kText)
          o << json_string(c.text);
        else
          o << "null";
      }
      o << "}";
    }
    o << (rows.empty() ? "]\n" : "\n]\n");
    return o.str();
  }
  if (format == "csv") {
    for (size_t j = 0; j < columns.size(); ++j) o << (j ? "," : "") << csv_field(columns[j]);
    o << "\n";
    for (const Row& r : rows) {
      for (size_t j = 0; j < columns.size(); ++j) o << (j ? "," : "") << csv_field(r.get(columns[j]).format(10));
      o << "\n";
    }
    return o.str();
  }
  // table and markdown: every cell as text first, then widths.
  std::vector<std::vector<std::string>> text(rows.size(), std::vector<std::string>(columns.size()));
  std::vector<size_t> width(columns.size());
  std::vector<bool> right(columns.size());
  for (size_t j = 0; j < columns.size(); ++j) {
    width[j] = columns[j].size();
    right[j] = numeric_column(rows, columns[j]);
    for (size_t i = 0; i < rows.size(); ++i) {
      text[i][j] = pretty(columns[j], rows[i].get(columns[j]));
      if (format == "markdown") {  // a | would end the cell
        std::string& t = text[i][j];
        for (size_t p = 0; (p = t.find('|', p)) != std::string::npos; p += 2) t.replace(p, 1, "\\|");
      }
      width[j] = std::max(width[j], text[i][j].size());
    }
  }
  auto pad = [&](const std::string& s, size_t j) {
    std::string fill(width[j] - std::min(width[j], s.size()), ' ');
    return right[j] ? fill + s : s + fill;
  };
  if (format == "markdown") {
    o << "|";
    for (size_t j = 0; j < columns.size(); ++j) o << " " << pad(columns[j], j) << " |";
    o << "\n|";
    for (size_t j = 0; j < columns.size(); ++j)
      o << (right[j] ? std::string(width[j] + 1, '-') + ":|" : ":" + std::string(width[j] + 1, '-') + "|");
    o << "\n";
    for (auto& line : text) {
      o << "|";
      for (size_t j = 0; j < columns.size(); ++j) o << " " << pad(line[j], j) << " |";
      o << "\n";
    }
    return o.str();
  }
  std::vector<std::string> header(columns.size()), rule(columns.size());
  for (size_t j = 0; j < columns.size(); ++j) {
    header[j] = columns[j];
    rule[j] = std::string(width[j], '-');
  }
  text.insert(text.begin(), {header, rule});
  for (auto& line : text) {
    std::string s;
    for (size_t j = 0; j < columns.size(); ++j) s += (j ? "  " : "") + pad(line[j], j);
    while (!s.empty() && s.back() == ' ') s.pop_back();
    o << s << "\n";
  }
  return o.str();
}

}  // namespace ssmhost
