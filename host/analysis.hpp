// Reading many run logs (and `ssmhost bench` files) as rows of one table:
// what `ssmhost report`, `plot` and `sweep` share (docs/analysis.md).
//
// A Row is one run (or one benchmarked combination): fixed columns (layer,
// disc, task, seq_len, params, steps, best, final, step_ms, tokens_per_s,
// peak_mb, wall_s, status, ...), the run's resolved options (/config), and,
// for run logs, the log itself for plotting. Loading never stops at a bad
// file: each one becomes a LoadProblem naming the file and the reason.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runlog.hpp"

namespace ssmhost {

// The format attribute of a file written by `ssmhost bench`.
inline constexpr const char* kBenchFormat = "ssmhost-bench";
inline constexpr int64_t kBenchSchemaVersion = 1;

// A table cell: a number, a text, or nothing (missing).
struct Cell {
  enum Kind { kNone, kNumber, kText } kind = kNone;
  double number = 0;
  std::string text;

  static Cell num(double v);  // NaN becomes kNone
  static Cell str(const std::string& s);  // "" becomes kNone
  bool missing() const { return kind == kNone; }
  // As written in a table or CSV: numbers with `digits` significant digits
  // (integers in full), missing as "".
  std::string format(int digits = 6) const;
};

struct Row {
  std::string source;  // the file it came from
  std::string name;    // what the table shows in its `run` column
  std::string kind;    // "run" or "bench"
  std::map<std::string, std::string> config;  // resolved options
  std::map<std::string, Cell> cells;          // fixed columns by key
  std::shared_ptr<const RunLogReader> log;    // run logs only
  // The value of a column, else of an option (as text), else missing.
  Cell get(const std::string& key) const;
};

// A file or directory that could not be read (message names it).
struct LoadProblem {
  std::string path, message;
};

struct LoadResult {
  std::vector<Row> rows;
  std::vector<LoadProblem> problems;
};

// The fixed columns, in table order, with what they hold (for help texts).
struct ColumnInfo {
  const char* key;
  const char* meaning;
};
const std::vector<ColumnInfo>& fixed_columns();

// Options that never become "differing" columns or legend entries: where the
// log went, verbosity, and those shown as fixed columns.
bool is_noise_option(const std::string& key);

// Files to read for each argument: a file as it is; a directory, every *.h5
// below it (recursively, sorted). An empty directory or a missing path is a
// problem. The result keeps the arguments' order. `names` (if given) gets
// what a table calls each file: a file argument as written, a file found in
// a directory by its path below that directory.
std::vector<std::string> expand_paths(const std::vector<std::string>& args, std::vector<LoadProblem>& problems,
                                      std::vector<std::string>* names = nullptr);

// Reads run logs and bench files into rows; a bad file is a problem, the
// others are read. Bench files give one row per combination. names[i] (if
// given) is what the run column shows for files[i], else the path.
LoadResult load_rows(const std::vector<std::string>& files, const std::vector<std::string>& names = {});

// One row of a run log (throws ssmhost::Error naming the file).
Row row_of_run(std::shared_ptr<const RunLogReader> log, const std::string& name);

// True when a larger value of this metric is better (accuracy); false for
// loss, bpc, mse, perplexity.
bool higher_is_better_metric(const std::string& metric_name);

// The options whose values are not the same in every row (a missing option
// counts as its own value), noise options excluded, sorted by name.
std::vector<std::string> differing_options(const std::vector<Row>& rows);

// A short label for a row from the given keys: "disc=zoh seq_len=256"; the
// row's name when keys is empty.
std::string label_of(const Row& row, const std::vector<std::string>& keys);

// --filter: KEY=V (V may be a comma list: any of them), KEY!=V, KEY<V,
// KEY>V, KEY<=V, KEY>=V. Numbers compare as numbers. Throws UsageError for a
// malformed filter.
struct Filter {
  std::string key, op;
  std::vector<std::string> values;
  static Filter parse(const std::string& text);
  bool matches(const Row& row) const;
};

// --sort KEY[,KEY...], each optionally prefixed by '-' for descending.
// Missing values sort last; numbers numerically, texts alphabetically.
void sort_rows(std::vector<Row>& rows, const std::string& spec);

// The columns a table shows: the fixed columns that have a value in some
// row, then the differing options.
std::vector<std::string> table_columns(const std::vector<Row>& rows);

// The table in one of: table (aligned text), csv, json, markdown.
std::string format_table(const std::vector<Row>& rows, const std::vector<std::string>& columns,
                         const std::string& format);

// Median of the finite values (NaN when there are none).
double median_of(std::vector<double> values);

}  // namespace ssmhost
