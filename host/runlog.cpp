#include "runlog.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <set>
#include <sstream>

#include "error.hpp"
#include "h5util.hpp"

namespace ssmhost {

namespace {

const char* const kFormatName = "ssmhost-runlog";

// Rows per chunk: small enough that a short run's file stays small, large
// enough that a long run does not drown in chunk index entries.
constexpr hsize_t kTrainChunkRows = 1024;
constexpr hsize_t kEvalChunkRows = 64;

// The fixed columns, in schema order (docs/runlog.md).
template <class Row>
struct IntField {
  const char* name;
  int64_t Row::*member;
};
template <class Row>
struct RealField {
  const char* name;
  double Row::*member;
};

const IntField<TrainRow> kTrainInts[] = {{"step", &TrainRow::step}, {"epoch", &TrainRow::epoch}};
const RealField<TrainRow> kTrainReals[] = {
    {"loss", &TrainRow::loss},       {"metric", &TrainRow::metric},
    {"lr", &TrainRow::lr},           {"grad_norm", &TrainRow::grad_norm},
    {"step_ms", &TrainRow::step_ms}, {"tokens_per_s", &TrainRow::tokens_per_s},
    {"peak_rss_mb", &TrainRow::peak_rss_mb}};
const IntField<EvalRow> kEvalInts[] = {{"step", &EvalRow::step}, {"epoch", &EvalRow::epoch}};
const RealField<EvalRow> kEvalReals[] = {{"loss", &EvalRow::loss}, {"metric", &EvalRow::metric}};

std::string where_of(const std::string& path) { return "run log '" + path + "'"; }

std::string parent_directory(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool is_directory(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool file_exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

std::string format_number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

// Extra eval metric names become dataset names: they must be valid HDF5
// names and must not clash with the fixed columns or with each other.
void check_extra_metrics(const std::vector<std::string>& names, const std::string& where) {
  std::set<std::string> seen;
  for (const auto& field : kEvalInts) seen.insert(field.name);
  for (const auto& field : kEvalReals) seen.insert(field.name);
  for (const auto& name : names) {
    if (name.empty() || name == "." || name.find('/') != std::string::npos)
      throw Error(where + ": eval metric name '" + name + "' is not usable as a column name");
    if (!seen.insert(name).second)
      throw Error(where + ": eval metric name '" + name + "' is given twice or clashes with a fixed column");
  }
}

void check_root_attr_names(const std::map<std::string, std::string>& attrs, const std::string& where) {
  for (const char* reserved : {"schema_version", "format", "end_time"})
    if (attrs.count(reserved) != 0)
      throw Error(where + ": root attribute '" + std::string(reserved) + "' is written by the run log itself");
}

}  // namespace

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm utc {};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// ---------------------------------------------------------------- RunLog

struct RunLog::Impl {
  std::string path;
  std::string where;
  bool open = false;

  h5::Handle file;
  std::map<std::string, h5::Handle> train_columns;  // name -> dataset
  std::map<std::string, h5::Handle> eval_columns;
  std::vector<std::string> eval_extra_metrics;

  std::vector<TrainRow> pending_train;
  std::vector<EvalRow> pending_eval;
  double flush_interval_s = 10.0;
  std::chrono::steady_clock::time_point last_flush;

  std::map<std::string, double> summary_numbers;
  std::map<std::string, std::string> summary_text;

  void build(const RunLogSetup& setup);
  void write_pending();
  void close_swmr_file();
  void write_closing_attrs();
};

void RunLog::Impl::build(const RunLogSetup& setup) {
  hid_t root = file.get();
  h5::set_attr_int64(root, "schema_version", kRunLogSchemaVersion, where);
  h5::set_attr_string(root, "format", kFormatName, where);
  for (const auto& [name, value] : setup.root_attrs) h5::set_attr_string(root, name, value, where);

  h5::Handle config = h5::create_group(root, "config", where);
  for (const auto& [name, value] : setup.config) h5::set_attr_string(config.get(), name, value, where);
  h5::Handle plugins = h5::create_group(config.get(), "plugins", where);
  for (const PluginRecord& p : setup.plugins) {
    h5::set_attr_string(plugins.get(), p.id, p.version, where);  // id = version, as schema 1 began
    h5::Handle g = h5::create_group(plugins.get(), p.id, where);
    for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"kind", p.kind},
                                      {"version", p.version},
                                      {"abi", p.abi},
                                      {"path", p.path},
                                      {"sha256", p.sha256}})
      h5::set_attr_string(g.get(), name, value, where);
  }

  h5::Handle train = h5::create_group(root, "train", where);
  h5::set_attr_string(train.get(), "metric_name", setup.metric_name, where);
  for (const auto& field : kTrainInts)
    train_columns[field.name] = h5::create_column(train.get(), field.name, H5T_STD_I64LE, kTrainChunkRows, where);
  for (const auto& field : kTrainReals)
    train_columns[field.name] = h5::create_column(train.get(), field.name, H5T_IEEE_F64LE, kTrainChunkRows, where);

  h5::Handle eval = h5::create_group(root, "eval", where);
  h5::set_attr_string(eval.get(), "metric_name", setup.metric_name, where);
  for (const auto& field : kEvalInts)
    eval_columns[field.name] = h5::create_column(eval.get(), field.name, H5T_STD_I64LE, kEvalChunkRows, where);
  for (const auto& field : kEvalReals)
    eval_columns[field.name] = h5::create_column(eval.get(), field.name, H5T_IEEE_F64LE, kEvalChunkRows, where);
  for (const auto& name : eval_extra_metrics)
    eval_columns[name] = h5::create_column(eval.get(), name, H5T_IEEE_F64LE, kEvalChunkRows, where);

  // Exists from the start so that every run log has it; filled by close().
  h5::create_group(root, "summary", where);
}

namespace {

template <class Row>
void append_ints(const h5::Handle& dataset, const std::vector<Row>& rows, int64_t Row::*member,
                 const std::string& where) {
  std::vector<int64_t> values;
  values.reserve(rows.size());
  for (const auto& row : rows) values.push_back(row.*member);
  h5::append_to_column(dataset.get(), H5T_NATIVE_INT64, values.data(), values.size(), where);
}

void append_reals(const h5::Handle& dataset, const std::vector<double>& values, const std::string& where) {
  h5::append_to_column(dataset.get(), H5T_NATIVE_DOUBLE, values.data(), values.size(), where);
}

template <class Row>
void append_reals(const h5::Handle& dataset, const std::vector<Row>& rows, double Row::*member,
                  const std::string& where) {
  std::vector<double> values;
  values.reserve(rows.size());
  for (const auto& row : rows) values.push_back(row.*member);
  append_reals(dataset, values, where);
}

}  // namespace

void RunLog::Impl::write_pending() {
  // Taken out of the buffers first: a failed write must not be repeated
  // (and duplicated) by the next flush.
  std::vector<TrainRow> train = std::move(pending_train);
  std::vector<EvalRow> eval = std::move(pending_eval);
  pending_train.clear();
  pending_eval.clear();
  last_flush = std::chrono::steady_clock::now();

  if (!train.empty()) {
    for (const auto& field : kTrainInts) append_ints(train_columns.at(field.name), train, field.member, where);
    for (const auto& field : kTrainReals) append_reals(train_columns.at(field.name), train, field.member, where);
  }
  if (!eval.empty()) {
    for (const auto& field : kEvalInts) append_ints(eval_columns.at(field.name), eval, field.member, where);
    for (const auto& field : kEvalReals) append_reals(eval_columns.at(field.name), eval, field.member, where);
    for (const auto& name : eval_extra_metrics) {
      std::vector<double> values;
      for (const auto& row : eval) {
        auto found = row.extra.find(name);
        values.push_back(found != row.extra.end() ? found->second
                                                  : std::numeric_limits<double>::quiet_NaN());
      }
      append_reals(eval_columns.at(name), values, where);
    }
  }
  // One flush of the whole file makes the new extents and data visible to
  // SWMR readers and puts them on disk for a crash.
  h5::check_status(H5Fflush(file.get(), H5F_SCOPE_LOCAL), where, "cannot flush the file");
}

void RunLog::Impl::close_swmr_file() {
  train_columns.clear();
  eval_columns.clear();
  h5::check_status(file.close(), where, "cannot close the file");
}

void RunLog::Impl::write_closing_attrs() {
  // Normal (non-SWMR) write access: the only way to add attributes now.
  h5::Handle fapl = h5::file_access(H5F_LIBVER_LATEST, H5F_LIBVER_LATEST, where);
  h5::Handle reopened(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
#if H5_VERSION_GE(1, 10, 7)
  if (!reopened) {
    // A live SWMR reader (h5py swmr=True, ssmhost report) holds a shared
    // lock that a normal writer cannot get. This process is the run log's
    // only writer, so reopening without the lock cannot harm the file; the
    // reader sees the summary once it reopens the file.
    H5Eclear2(H5E_DEFAULT);
    h5::check_status(H5Pset_file_locking(fapl.get(), false, true), where, "cannot turn file locking off");
    reopened = h5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
  }
#endif
  if (!reopened) h5::fail(where, "cannot reopen the file to write the summary");
  {
    h5::Handle summary = h5::open_group(reopened.get(), "summary", where);
    for (const auto& [name, value] : summary_numbers) h5::set_attr_double(summary.get(), name, value, where);
    for (const auto& [name, value] : summary_text) h5::set_attr_string(summary.get(), name, value, where);
  }
  h5::set_attr_string(reopened.get(), "end_time", utc_timestamp(), where);
  h5::check_status(reopened.close(), where, "cannot close the file after writing the summary");
}

RunLog::RunLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RunLog::RunLog(RunLog&&) noexcept = default;

RunLog& RunLog::operator=(RunLog&& other) noexcept {
  if (this != &other) {
    try {
      close();
    } catch (const std::exception& e) {
      std::cerr << "warning: " << e.what() << "\n";
    }
    impl_ = std::move(other.impl_);
  }
  return *this;
}

RunLog::~RunLog() {
  try {
    close();
  } catch (const std::exception& e) {
    std::cerr << "warning: " << e.what() << "\n";
  }
}

RunLog RunLog::create(const std::string& path, const RunLogSetup& setup) {
  h5::SilenceErrors quiet;
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->where = where_of(path);
  impl->eval_extra_metrics = setup.eval_extra_metrics;
  impl->flush_interval_s = setup.flush_interval_s;
  const std::string& where = impl->where;

  check_extra_metrics(setup.eval_extra_metrics, where);
  check_root_attr_names(setup.root_attrs, where);
  const std::string directory = parent_directory(path);
  if (!is_directory(directory))
    throw Error(where + ": cannot create it, directory '" + directory + "' does not exist");

  // SWMR needs the latest file format (checksummed metadata).
  h5::Handle fapl = h5::file_access(H5F_LIBVER_LATEST, H5F_LIBVER_LATEST, where);
  impl->file = h5::check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, where,
                            "cannot create the file");
  try {
    impl->build(setup);
    h5::check_status(H5Fstart_swmr_write(impl->file.get()), where, "cannot start SWMR writing");
  } catch (...) {
    // No half-made run log left behind.
    impl->train_columns.clear();
    impl->eval_columns.clear();
    impl->file.close();
    std::remove(path.c_str());
    throw;
  }
  impl->open = true;
  impl->last_flush = std::chrono::steady_clock::now();
  return RunLog(std::move(impl));
}

const std::string& RunLog::path() const {
  static const std::string none;
  return impl_ ? impl_->path : none;
}

bool RunLog::is_open() const { return impl_ && impl_->open; }

void RunLog::append_train(const TrainRow& row) {
  if (!is_open()) throw Error(where_of(path()) + ": append_train after close");
  impl_->pending_train.push_back(row);
  std::chrono::duration<double> age = std::chrono::steady_clock::now() - impl_->last_flush;
  if (age.count() >= impl_->flush_interval_s) flush();
}

void RunLog::append_eval(const EvalRow& row) {
  if (!is_open()) throw Error(where_of(path()) + ": append_eval after close");
  for (const auto& entry : row.extra) {
    const auto& declared = impl_->eval_extra_metrics;
    if (std::find(declared.begin(), declared.end(), entry.first) == declared.end())
      throw Error(impl_->where + ": eval metric '" + entry.first + "' was not declared when the run log was created");
  }
  impl_->pending_eval.push_back(row);
  flush();
}

void RunLog::flush() {
  if (!is_open()) throw Error(where_of(path()) + ": flush after close");
  h5::SilenceErrors quiet;
  impl_->write_pending();
}

void RunLog::write_summary(const std::map<std::string, double>& numbers,
                           const std::map<std::string, std::string>& text) {
  if (!is_open()) throw Error(where_of(path()) + ": write_summary after close");
  for (const auto& [name, value] : numbers) {
    if (text.count(name) != 0) throw Error(impl_->where + ": summary key '" + name + "' given as number and as text");
    impl_->summary_text.erase(name);
    impl_->summary_numbers[name] = value;
  }
  for (const auto& [name, value] : text) {
    impl_->summary_numbers.erase(name);
    impl_->summary_text[name] = value;
  }
}

void RunLog::close() {
  if (!is_open()) return;
  h5::SilenceErrors quiet;
  impl_->open = false;  // whatever happens below, a second close() does nothing
  // Each step runs even if an earlier one failed; the first error is rethrown.
  std::exception_ptr first_error;
  try {
    impl_->write_pending();
  } catch (...) {
    first_error = std::current_exception();
  }
  try {
    impl_->close_swmr_file();
    impl_->write_closing_attrs();
  } catch (...) {
    if (!first_error) first_error = std::current_exception();
  }
  if (first_error) std::rethrow_exception(first_error);
}

// ---------------------------------------------------------------- RunLogReader

namespace {

// Schema order first, then whatever else the group holds (extra metrics).
std::vector<std::string> ordered_columns(const std::vector<std::string>& present,
                                         const std::vector<std::string>& schema_order) {
  std::vector<std::string> ordered;
  for (const auto& name : schema_order)
    if (std::find(present.begin(), present.end(), name) != present.end()) ordered.push_back(name);
  for (const auto& name : present)
    if (std::find(schema_order.begin(), schema_order.end(), name) == schema_order.end()) ordered.push_back(name);
  return ordered;
}

std::string attr_as_text(hid_t obj, const std::string& name, const std::string& where) {
  switch (h5::attr_class(obj, name, where)) {
    case H5T_STRING: return h5::get_attr_string(obj, name, where);
    case H5T_INTEGER: return std::to_string(h5::get_attr_int64(obj, name, where));
    case H5T_FLOAT: return format_number(h5::get_attr_double(obj, name, where));
    default: return "";  // not written by ssmhost; nothing sensible to show
  }
}

std::map<std::string, std::string> string_attrs(hid_t obj, const std::string& where) {
  std::map<std::string, std::string> attrs;
  for (const auto& name : h5::attr_names(obj, where)) attrs[name] = attr_as_text(obj, name, where);
  return attrs;
}

}  // namespace

RunLogReader RunLogReader::open(const std::string& path) {
  h5::SilenceErrors quiet;
  const std::string where = where_of(path);
  if (!file_exists(path)) throw Error(where + ": no such file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(where + ": not an HDF5 file");

  // A finished run opens normally. A live or crashed run is still marked as
  // open for SWMR writing, which only a SWMR reader may open.
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file) {
    H5Eclear2(H5E_DEFAULT);
    h5::Handle fapl = h5::file_access(H5F_LIBVER_LATEST, H5F_LIBVER_LATEST, where);
    file = h5::check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose, where,
                        "cannot open the file (damaged or truncated?)");
  }
  hid_t root = file.get();
  if (!h5::has_attr(root, "schema_version"))
    throw Error(where + ": not an ssmhost run log (no 'schema_version' attribute at the root)");

  RunLogReader reader;
  reader.path_ = path;
  reader.schema_version_ = h5::get_attr_int64(root, "schema_version", where);
  if (reader.schema_version_ < 1 || reader.schema_version_ > kRunLogSchemaVersion)
    throw Error(where + ": run log schema version " + std::to_string(reader.schema_version_) +
                " is not supported (this ssmhost reads up to " + std::to_string(kRunLogSchemaVersion) + ")");
  reader.root_attrs_ = string_attrs(root, where);

  if (h5::has_link(root, "config")) {
    h5::Handle config = h5::open_group(root, "config", where);
    reader.config_ = string_attrs(config.get(), where);
    if (h5::has_link(config.get(), "plugins")) {
      h5::Handle plugins = h5::open_group(config.get(), "plugins", where);
      reader.plugins_ = string_attrs(plugins.get(), where);
      for (const std::string& id : h5::link_names(plugins.get(), where)) {
        h5::Handle g = h5::open_group(plugins.get(), id, where);
        std::map<std::string, std::string> a = string_attrs(g.get(), where);
        reader.plugin_records_.push_back({id, a["kind"], a["version"], a["abi"], a["path"], a["sha256"]});
      }
    }
  }

  std::vector<std::string> train_order, eval_order;
  for (const auto& field : kTrainInts) train_order.push_back(field.name);
  for (const auto& field : kTrainReals) train_order.push_back(field.name);
  for (const auto& field : kEvalInts) eval_order.push_back(field.name);
  for (const auto& field : kEvalReals) eval_order.push_back(field.name);
  const std::pair<const char*, const std::vector<std::string>*> groups[] = {{"train", &train_order},
                                                                             {"eval", &eval_order}};
  for (const auto& [group_name, schema_order] : groups) {
    if (!h5::has_link(root, group_name)) throw Error(where + ": not an ssmhost run log (no /" + group_name + ")");
    h5::Handle group = h5::open_group(root, group_name, where);
    if (reader.metric_name_.empty() && h5::has_attr(group.get(), "metric_name"))
      reader.metric_name_ = h5::get_attr_string(group.get(), "metric_name", where);
    auto& columns = reader.columns_[group_name];
    size_t rows = std::numeric_limits<size_t>::max();
    for (const auto& name : h5::link_names(group.get(), where)) {
      columns[name] = h5::read_column(group.get(), name, where);
      rows = std::min(rows, columns[name].size());
    }
    // A live writer may have extended some columns and not yet the others.
    for (auto& entry : columns) entry.second.resize(rows);
    reader.column_order_[group_name] = ordered_columns(h5::link_names(group.get(), where), *schema_order);
  }

  if (h5::has_link(root, "summary")) {
    h5::Handle summary = h5::open_group(root, "summary", where);
    for (const auto& name : h5::attr_names(summary.get(), where)) {
      H5T_class_t cls = h5::attr_class(summary.get(), name, where);
      if (cls == H5T_INTEGER || cls == H5T_FLOAT)
        reader.summary_numbers_[name] = h5::get_attr_double(summary.get(), name, where);
      else
        reader.summary_text_[name] = attr_as_text(summary.get(), name, where);
    }
  }
  return reader;
}

std::vector<std::string> RunLogReader::columns(const std::string& group) const {
  auto found = column_order_.find(group);
  if (found == column_order_.end()) throw Error(where_of(path_) + ": no group '" + group + "' (use train or eval)");
  return found->second;
}

const std::vector<double>& RunLogReader::column(const std::string& group, const std::string& name) const {
  auto found_group = columns_.find(group);
  if (found_group == columns_.end())
    throw Error(where_of(path_) + ": no group '" + group + "' (use train or eval)");
  auto found = found_group->second.find(name);
  if (found == found_group->second.end())
    throw Error(where_of(path_) + ": no column '" + name + "' in /" + group);
  return found->second;
}

size_t RunLogReader::rows(const std::string& group) const {
  auto found_group = columns_.find(group);
  if (found_group == columns_.end() || found_group->second.empty()) return 0;
  return found_group->second.begin()->second.size();
}

}  // namespace ssmhost
