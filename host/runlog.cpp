#include "runlog.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <set>
#include <sstream>

#include "error.hpp"
#include "h5util.hpp"
#include "runlock.hpp"

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

// Makes a rename durable. Best effort: some file systems refuse it.
void sync_directory_of(const std::string& path) {
  int fd = ::open(parent_directory(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
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
  bool failed = false;  // a write failed: the file is left as the last good flush made it

  h5::Handle file;
  std::map<std::string, h5::Handle> train_columns;  // name -> dataset
  std::map<std::string, h5::Handle> eval_columns;
  std::vector<std::string> eval_extra_metrics;

  std::vector<TrainRow> pending_train;  // appended since the last good flush
  std::vector<EvalRow> pending_eval;
  hsize_t train_flushed = 0, eval_flushed = 0;  // rows in the file as of the last good flush
  double flush_interval_s = 10.0;
  std::chrono::steady_clock::time_point last_flush;

  std::map<std::string, double> summary_numbers;
  std::map<std::string, std::string> summary_text;
  KernelHistory kernels;

  void build(const RunLogSetup& setup);
  void write_pending();
  void abandon();
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

  // What happened to the run as a whole (a resume), known when the file is made.
  h5::Handle events = h5::create_group(root, "events", where);
  std::vector<int64_t> steps;
  std::vector<std::string> times, kinds, details;
  for (const RunEvent& e : setup.events) {
    steps.push_back(e.step);
    times.push_back(e.time);
    kinds.push_back(e.kind);
    details.push_back(e.detail);
  }
  h5::write_int64s(events.get(), "step", steps, where);
  h5::write_strings(events.get(), "time", times, where);
  h5::write_strings(events.get(), "kind", kinds, where);
  h5::write_strings(events.get(), "detail", details, where);
}

namespace {

// Appends to a 1-D dataset what it lacks of `values`, the rows pending since
// the last good flush (`flushed` rows before them): a flush that failed half
// way (some columns extended, others not) is redone without duplicates.
void append_missing(const h5::Handle& dataset, hid_t mem_type, const void* values, size_t elem_size, size_t n,
                    hsize_t flushed, const std::string& where) {
  hsize_t size = 0;
  {
    h5::Handle space = h5::check_id(H5Dget_space(dataset.get()), H5Sclose, where, "cannot append to a dataset");
    h5::check_status(H5Sget_simple_extent_dims(space.get(), &size, nullptr), where, "cannot append to a dataset");
  }
  if (size < flushed) throw Error(where + ": a column is shorter than the rows already flushed");
  const size_t done = static_cast<size_t>(size - flushed);
  if (done >= n) return;
  h5::append_to_column(dataset.get(), mem_type, static_cast<const char*>(values) + done * elem_size, n - done, where);
}

template <class Row>
void append_ints(const h5::Handle& dataset, const std::vector<Row>& rows, int64_t Row::*member, hsize_t flushed,
                 const std::string& where) {
  std::vector<int64_t> values;
  values.reserve(rows.size());
  for (const auto& row : rows) values.push_back(row.*member);
  append_missing(dataset, H5T_NATIVE_INT64, values.data(), sizeof(int64_t), values.size(), flushed, where);
}

void append_reals(const h5::Handle& dataset, const std::vector<double>& values, hsize_t flushed,
                  const std::string& where) {
  append_missing(dataset, H5T_NATIVE_DOUBLE, values.data(), sizeof(double), values.size(), flushed, where);
}

template <class Row>
void append_reals(const h5::Handle& dataset, const std::vector<Row>& rows, double Row::*member, hsize_t flushed,
                  const std::string& where) {
  std::vector<double> values;
  values.reserve(rows.size());
  for (const auto& row : rows) values.push_back(row.*member);
  append_reals(dataset, values, flushed, where);
}

}  // namespace

// Appends the pending rows and flushes the file. They stay pending until the
// flush succeeded, so after a failure (a full disk) a later call writes them
// again, each column only what it lacks.
void RunLog::Impl::write_pending() {
  last_flush = std::chrono::steady_clock::now();
  const std::vector<TrainRow>& train = pending_train;
  const std::vector<EvalRow>& eval = pending_eval;
  if (!train.empty()) {
    for (const auto& field : kTrainInts)
      append_ints(train_columns.at(field.name), train, field.member, train_flushed, where);
    for (const auto& field : kTrainReals)
      append_reals(train_columns.at(field.name), train, field.member, train_flushed, where);
  }
  if (!eval.empty()) {
    for (const auto& field : kEvalInts)
      append_ints(eval_columns.at(field.name), eval, field.member, eval_flushed, where);
    for (const auto& field : kEvalReals)
      append_reals(eval_columns.at(field.name), eval, field.member, eval_flushed, where);
    for (const auto& name : eval_extra_metrics) {
      std::vector<double> values;
      for (const auto& row : eval) {
        auto found = row.extra.find(name);
        values.push_back(found != row.extra.end() ? found->second
                                                  : std::numeric_limits<double>::quiet_NaN());
      }
      append_reals(eval_columns.at(name), values, eval_flushed, where);
    }
  }
  // One flush of the whole file makes the new extents and data visible to
  // SWMR readers and puts them on disk for a crash.
  h5::check_status(H5Fflush(file.get(), H5F_SCOPE_LOCAL), where, "cannot flush the file");
  train_flushed += train.size();
  eval_flushed += eval.size();
  pending_train.clear();
  pending_eval.clear();
}

// After a failed write the file is not touched again: closing it would make
// HDF5 write (and fail) once more, and could leave it half-updated. Its ids
// are given up; the file on disk keeps the state of its last good flush.
void RunLog::Impl::abandon() {
  for (auto& entry : train_columns) entry.second.release();
  for (auto& entry : eval_columns) entry.second.release();
  train_columns.clear();
  eval_columns.clear();
  file.release();
}

void RunLog::Impl::close_swmr_file() {
  train_columns.clear();
  eval_columns.clear();
  h5::check_status(file.close(), where, "cannot close the file");
}

void RunLog::Impl::write_closing_attrs() {
  // A reopened file whose writes fail half way stays marked as open and
  // half-updated; on a disk that is (nearly) full the summary is not tried.
  struct statvfs fs {};
  if (statvfs(parent_directory(path).c_str(), &fs) == 0) {
    const double free_bytes = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    if (free_bytes < 256.0 * 1024)
      throw Error(where + ": the disk is full (" + std::to_string(static_cast<long>(free_bytes / 1024)) +
                  " KiB free): the log is closed with all its rows but without its summary");
  }
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
  if (!kernels.empty()) {
    h5::Handle g = h5::create_group(reopened.get(), "kernels", where);
    h5::set_attr_int64(g.get(), "layers", kernels.layers, where);
    h5::set_attr_int64(g.get(), "channels", kernels.channels, where);
    h5::set_attr_int64(g.get(), "length", kernels.length, where);
    h5::write_int64s(g.get(), "step", kernels.steps, where);
    h5::write_doubles(g.get(), "values", kernels.values, where);
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
  if (is_directory(path)) throw Error(where + ": is a directory");
  remove_stale_temp_files(path);

  // The whole file is made under a temporary name and renamed into place
  // once complete, so a failure here leaves whatever was at `path` as it was.
  const std::string temp = path + ".tmp-" + std::to_string(getpid());
  // SWMR needs the latest file format (checksummed metadata).
  h5::Handle fapl = h5::file_access(H5F_LIBVER_LATEST, H5F_LIBVER_LATEST, where);
  try {
    impl->file = h5::check_id(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, where,
                              "cannot create the file");
    impl->build(setup);
    impl->pending_train = setup.train_rows;
    impl->pending_eval = setup.eval_rows;
    impl->write_pending();
    h5::check_status(H5Fstart_swmr_write(impl->file.get()), where, "cannot start SWMR writing");
    if (std::rename(temp.c_str(), path.c_str()) != 0)
      throw Error(where + ": cannot rename '" + temp + "' over it: " + std::strerror(errno));
  } catch (...) {
    // No half-made run log left behind; the file at `path` was not touched.
    impl->abandon();
    std::remove(temp.c_str());
    throw;
  }
  sync_directory_of(path);
  impl->open = true;
  impl->last_flush = std::chrono::steady_clock::now();
  return RunLog(std::move(impl));
}

const std::string& RunLog::path() const {
  static const std::string none;
  return impl_ ? impl_->path : none;
}

bool RunLog::is_open() const { return impl_ && impl_->open; }

bool RunLog::failed() const { return impl_ && impl_->failed; }

bool RunLog::retry() {
  if (!is_open()) return false;
  if (!impl_->failed) return true;
  h5::SilenceErrors quiet;
  try {
    impl_->write_pending();
  } catch (const std::exception&) {
    return false;
  }
  impl_->failed = false;
  return true;
}

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
  if (impl_->failed) throw Error(impl_->where + ": an earlier write failed; the log takes no more rows");
  h5::SilenceErrors quiet;
  try {
    impl_->write_pending();
  } catch (...) {
    impl_->failed = true;
    throw;
  }
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

void KernelHistory::append(int64_t step, const std::vector<std::vector<double>>& per_layer) {
  steps.push_back(step);
  for (const auto& k : per_layer) {
    if (k.empty())
      values.insert(values.end(), static_cast<size_t>(channels * length), std::nan(""));
    else
      values.insert(values.end(), k.begin(), k.end());
  }
}

void RunLog::write_kernels(const KernelHistory& kernels) {
  if (!is_open()) throw Error(where_of(path()) + ": write_kernels after close");
  impl_->kernels = kernels;
}

void RunLog::close() {
  if (!is_open()) return;
  h5::SilenceErrors quiet;
  impl_->open = false;  // whatever happens below, a second close() does nothing
  if (impl_->failed) {
    impl_->abandon();
    return;
  }
  try {
    impl_->write_pending();
  } catch (...) {
    impl_->failed = true;
    impl_->abandon();
    throw;
  }
  impl_->close_swmr_file();
  impl_->write_closing_attrs();
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

namespace {

// A copy of the file in $TMPDIR, opened with HDF5's "clear_status_flags"
// (what h5clear uses), then unlinked: the open handle keeps it readable.
h5::Handle open_through_copy(const std::string& path, const std::string& where) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string name = std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/ssmhost-read-XXXXXX";
  int out = mkstemp(name.data());
  if (out < 0) return {};
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = in >= 0;
  char buf[1 << 16];
  while (ok) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n == 0) break;
    ok = n > 0 && ::write(out, buf, static_cast<size_t>(n)) == n;
  }
  if (in >= 0) ::close(in);
  ::close(out);
  h5::Handle file;
  if (ok) {
    h5::Handle fapl = h5::file_access(H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST, where);
    hbool_t clear = 1;
    if (H5Pexist(fapl.get(), "clear_status_flags") > 0 && H5Pset(fapl.get(), "clear_status_flags", &clear) >= 0)
      file = h5::Handle(H5Fopen(name.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
  }
  ::unlink(name.c_str());
  return file;
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
    file = h5::Handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
  }
  if (!file) {
    // Still marked as open for (non-SWMR) writing: its writer died while it
    // wrote the summary (a full disk). Read a copy with the mark cleared, as
    // `h5clear -s` would, leaving the file itself as it is.
    const std::string reason = h5::last_error_detail();
    H5Eclear2(H5E_DEFAULT);
    file = open_through_copy(path, where);
    if (!file) throw Error(where + ": cannot open the file (damaged or truncated?) (HDF5: " + reason + ")");
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
    // A live writer may have extended some columns and not yet the others;
    // a writer that failed on a full disk may have left rows it could not
    // fill (their step is 0, steps only grow): both are cut off.
    if (columns.count("step")) {
      const auto& step = columns["step"];
      for (size_t i = 0; i < std::min(rows, step.size()); ++i)
        if (!(step[i] >= 1) || (i > 0 && !(step[i] > step[i - 1]))) {
          rows = i;
          break;
        }
    }
    for (auto& entry : columns) entry.second.resize(rows);
    reader.column_order_[group_name] = ordered_columns(h5::link_names(group.get(), where), *schema_order);
  }

  if (h5::has_link(root, "events")) {
    h5::Handle events = h5::open_group(root, "events", where);
    std::vector<double> steps = h5::read_column(events.get(), "step", where);
    std::vector<std::string> times = h5::read_strings(events.get(), "time", where);
    std::vector<std::string> kinds = h5::read_strings(events.get(), "kind", where);
    std::vector<std::string> details = h5::read_strings(events.get(), "detail", where);
    const size_t n = std::min({steps.size(), times.size(), kinds.size(), details.size()});
    for (size_t i = 0; i < n; ++i)
      reader.events_.push_back({static_cast<int64_t>(steps[i]), times[i], kinds[i], details[i]});
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

  if (h5::has_link(root, "kernels")) {
    h5::Handle g = h5::open_group(root, "kernels", where);
    KernelHistory& k = reader.kernels_;
    k.layers = h5::get_attr_int64(g.get(), "layers", where);
    k.channels = h5::get_attr_int64(g.get(), "channels", where);
    k.length = h5::get_attr_int64(g.get(), "length", where);
    for (double s : h5::read_column(g.get(), "step", where)) k.steps.push_back(static_cast<int64_t>(s));
    k.values = h5::read_column(g.get(), "values", where);
    if (k.layers < 1 || k.channels < 1 || k.length < 1 ||
        k.values.size() != k.steps.size() * static_cast<size_t>(k.layers * k.channels * k.length))
      throw Error(where + ": /kernels does not have steps x layers x channels x length values");
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

std::string RunLogReader::status() const {
  auto found = summary_text_.find("status");
  return found == summary_text_.end() ? std::string() : found->second;
}

std::vector<std::string> RunLogReader::eval_extra_metrics() const {
  std::vector<std::string> extra;
  for (const std::string& name : columns("eval")) {
    bool fixed = false;
    for (const auto& field : kEvalInts) fixed |= name == field.name;
    for (const auto& field : kEvalReals) fixed |= name == field.name;
    if (!fixed) extra.push_back(name);
  }
  // HDF5 lists links by name; order numbers by value (accuracy_L64 before
  // accuracy_L128), the rest as text.
  std::stable_sort(extra.begin(), extra.end(), [](const std::string& a, const std::string& b) {
    size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
      if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
        size_t ie = i, je = j;
        while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
        while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
        const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
        if (na.size() != nb.size()) return na.size() < nb.size();  // no leading zeros in these names
        if (na != nb) return na < nb;
        i = ie, j = je;
      } else {
        if (a[i] != b[j]) return a[i] < b[j];
        ++i, ++j;
      }
    }
    return a.size() - i < b.size() - j;
  });
  return extra;
}

std::vector<TrainRow> RunLogReader::train_rows() const {
  std::vector<TrainRow> out(rows("train"));
  for (const auto& field : kTrainInts) {
    const auto& values = column("train", field.name);
    for (size_t i = 0; i < out.size(); ++i) out[i].*field.member = static_cast<int64_t>(values[i]);
  }
  for (const auto& field : kTrainReals) {
    const auto& values = column("train", field.name);
    for (size_t i = 0; i < out.size(); ++i) out[i].*field.member = values[i];
  }
  return out;
}

std::vector<EvalRow> RunLogReader::eval_rows() const {
  std::vector<EvalRow> out(rows("eval"));
  for (const auto& field : kEvalInts) {
    const auto& values = column("eval", field.name);
    for (size_t i = 0; i < out.size(); ++i) out[i].*field.member = static_cast<int64_t>(values[i]);
  }
  for (const auto& field : kEvalReals) {
    const auto& values = column("eval", field.name);
    for (size_t i = 0; i < out.size(); ++i) out[i].*field.member = values[i];
  }
  for (const std::string& name : eval_extra_metrics()) {
    const auto& values = column("eval", name);
    for (size_t i = 0; i < out.size(); ++i) out[i].extra[name] = values[i];
  }
  return out;
}

size_t RunLogReader::rows(const std::string& group) const {
  auto found_group = columns_.find(group);
  if (found_group == columns_.end() || found_group->second.empty()) return 0;
  return found_group->second.begin()->second.size();
}

}  // namespace ssmhost
