// The run log: one HDF5 file per run, schema v1 (docs/runlog.md).
//
// RunLog writes it. The file is in SWMR mode from the end of create() until
// close(), so a reader can watch a live run and a crash loses only the rows
// appended since the last flush. SWMR forbids creating objects or attributes,
// so create() makes the whole structure up front (that is why it takes the
// config and the column names), and close() closes the SWMR file and reopens
// it normally for the only late additions: /summary attributes and end_time.
//
// create() writes the whole file under a temporary name beside the log and
// renames it into place only once it is complete and in SWMR mode: an
// existing file at that path is replaced by a whole new run log or not at
// all. That is also how a resumed run continues its log: the rows up to the
// checkpoint go into the new file (RunLogSetup::train_rows/eval_rows) with
// the history of events, and the result replaces the old file atomically.
//
// RunLogReader reads a finished, crashed or live run log into memory.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ssmhost {

inline constexpr int64_t kRunLogSchemaVersion = 1;

// One training step. Values a caller does not measure stay NaN.
struct TrainRow {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = std::numeric_limits<double>::quiet_NaN();
  double metric = std::numeric_limits<double>::quiet_NaN();
  double lr = std::numeric_limits<double>::quiet_NaN();
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  double step_ms = std::numeric_limits<double>::quiet_NaN();
  double tokens_per_s = std::numeric_limits<double>::quiet_NaN();
  double peak_rss_mb = std::numeric_limits<double>::quiet_NaN();
};

// One evaluation. `extra` holds values for RunLogSetup::eval_extra_metrics
// (by name); a declared metric missing here is written as NaN.
struct EvalRow {
  int64_t step = 0;
  int64_t epoch = 0;
  double loss = std::numeric_limits<double>::quiet_NaN();
  double metric = std::numeric_limits<double>::quiet_NaN();
  std::map<std::string, double> extra;
};

// Something that happened to the run as a whole: "resume" (step = the
// checkpoint's step), ... Written to /events when the file is created.
struct RunEvent {
  int64_t step = 0;
  std::string time;    // UTC, ISO 8601
  std::string kind;    // e.g. "resume"
  std::string detail;  // free text for people
};

// One plugin that took part in a run (children included): its identity.
struct PluginRecord {
  std::string id, kind, version, abi, path, sha256;
};

// Convolution kernels of the model's layers recorded at evaluations
// (--log-kernels; ssm/ext/layer_kernel.h), written to /kernels when the log
// is closed (SWMR writing cannot create objects mid-run).
struct KernelHistory {
  int64_t layers = 0, channels = 0, length = 0;
  std::vector<int64_t> steps;
  // (steps, layers, channels, length) row-major; NaN for a layer without a kernel.
  std::vector<double> values;
  bool empty() const { return steps.empty(); }
  // Appends one evaluation's kernels (Model::conv_kernels' layout).
  void append(int64_t step, const std::vector<std::vector<double>>& per_layer);
};

// Everything that must exist in the file before SWMR writing starts.
struct RunLogSetup {
  // Root attributes, written as strings: ssmhost_version, git_commit,
  // command_line, start_time, host, device, threads, ... The names
  // schema_version, format and end_time are the run log's own.
  std::map<std::string, std::string> root_attrs;
  std::map<std::string, std::string> config;   // every resolved option -> /config
  std::vector<PluginRecord> plugins;            // -> /config/plugins (attribute id = version, group id)
  std::string metric_name;                     // what TrainRow/EvalRow::metric is, e.g. "accuracy"
  std::vector<std::string> eval_extra_metrics; // more /eval columns, e.g. {"bpc"}
  // append_train() flushes by itself once the last flush is this old, so a
  // crash loses at most this much of the training curve.
  double flush_interval_s = 10.0;
  // The file starts with these: a resumed run's history and its rows.
  std::vector<RunEvent> events;
  std::vector<TrainRow> train_rows;
  std::vector<EvalRow> eval_rows;
};

class RunLog {
 public:
  // Writes a new run log as `path + ".tmp-<pid>"`, starts SWMR writing, then
  // renames it over `path` (replacing a file there). Throws ssmhost::Error
  // naming the path if it cannot; `path` is untouched and no temporary file
  // is left then. Temporary files of dead processes beside it are removed.
  static RunLog create(const std::string& path, const RunLogSetup& setup);

  RunLog(RunLog&&) noexcept;
  RunLog& operator=(RunLog&&) noexcept;
  ~RunLog();  // close(); an error there is printed to stderr, not thrown

  const std::string& path() const;
  bool is_open() const;

  // Buffered in memory until the next flush.
  void append_train(const TrainRow& row);
  // Buffered, then flush(): every evaluation reaches the disk.
  void append_eval(const EvalRow& row);
  // Writes the buffered rows and flushes the file, for live readers too.
  void flush();

  // Remembered and written to /kernels by close(); a second call replaces it.
  void write_kernels(const KernelHistory& kernels);

  // Remembered and written by close(); a second call adds or replaces keys.
  void write_summary(const std::map<std::string, double>& numbers,
                     const std::map<std::string, std::string>& text);

  // Flushes, ends SWMR writing, writes /summary and the end_time root
  // attribute. Calling it again does nothing. After a failed write (full
  // disk, I/O error: failed() is true) it writes nothing more and leaves the
  // file as its last good flush made it, which a SWMR reader (RunLogReader,
  // h5py swmr=True) still reads: the rows flushed before are all there.
  void close();

  // Whether a write to the file failed; the log then takes no more rows.
  bool failed() const;
  // After a failure: writes the rows still pending (each column what it
  // lacks) and flushes again, e.g. once disk space was freed. True when the
  // log is whole again (failed() is then false) and can be closed normally.
  bool retry();

 private:
  struct Impl;
  explicit RunLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The run log read into memory, for `ssmhost report`/`plot` and tests.
class RunLogReader {
 public:
  // Throws ssmhost::Error naming the file if it is missing, not HDF5, or not
  // an ssmhost run log (no schema_version), or from a newer schema.
  static RunLogReader open(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t schema_version() const { return schema_version_; }
  // Every root attribute as text (numbers formatted), schema_version included.
  const std::map<std::string, std::string>& root_attrs() const { return root_attrs_; }
  const std::map<std::string, std::string>& config() const { return config_; }
  const std::map<std::string, std::string>& plugins() const { return plugins_; }  // id -> version
  // Full records (kind, ABI, path, SHA-256) where the log has them (since ssmhost 0.2).
  const std::vector<PluginRecord>& plugin_records() const { return plugin_records_; }
  const std::string& metric_name() const { return metric_name_; }
  // True once close() has run (end_time is there); false for a live or crashed run.
  bool finished() const { return root_attrs_.count("end_time") != 0; }
  // The summary's status: completed, stopped_early, interrupted, failed; ""
  // for a live run or one that died before it could close its log.
  std::string status() const;
  // /events, in order (a resume is one); empty for logs written before them.
  const std::vector<RunEvent>& events() const { return events_; }

  // group is "train" or "eval". Column names in schema order, extras last.
  std::vector<std::string> columns(const std::string& group) const;
  // All columns of a group have rows(group) values (a live file is cut to
  // the rows every column has). Throws naming the file if there is no such column.
  const std::vector<double>& column(const std::string& group, const std::string& name) const;
  size_t rows(const std::string& group) const;
  // The rows as written (every column cut to the shortest), and the /eval
  // columns beyond the schema's fixed ones.
  std::vector<TrainRow> train_rows() const;
  std::vector<EvalRow> eval_rows() const;
  std::vector<std::string> eval_extra_metrics() const;

  const std::map<std::string, double>& summary_numbers() const { return summary_numbers_; }
  const std::map<std::string, std::string>& summary_text() const { return summary_text_; }
  // /kernels (runs trained with --log-kernels); empty otherwise.
  const KernelHistory& kernels() const { return kernels_; }

 private:
  KernelHistory kernels_;
  std::string path_;
  int64_t schema_version_ = 0;
  std::map<std::string, std::string> root_attrs_;
  std::map<std::string, std::string> config_;
  std::map<std::string, std::string> plugins_;
  std::vector<PluginRecord> plugin_records_;
  std::string metric_name_;
  std::map<std::string, std::vector<std::string>> column_order_;                        // group -> names
  std::map<std::string, std::map<std::string, std::vector<double>>> columns_;           // group -> name -> values
  std::map<std::string, double> summary_numbers_;
  std::map<std::string, std::string> summary_text_;
  std::vector<RunEvent> events_;
};

// The current time as UTC ISO 8601 ("2024-05-01T12:00:00Z"), the format of
// end_time; callers should use it for start_time too.
std::string utc_timestamp();

}  // namespace ssmhost
