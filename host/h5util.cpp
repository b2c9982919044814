#include "h5util.hpp"

namespace ssmhost::h5 {

namespace {
// Before any other HDF5 call (a static initializer): see h5util.hpp.
[[maybe_unused]] const herr_t g_dont_atexit = H5dont_atexit();
}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

herr_t Handle::close() {
  herr_t status = 0;
  if (id_ >= 0 && closer_ != nullptr) status = closer_(id_);
  id_ = H5I_INVALID_HID;
  return status;
}

SilenceErrors::SilenceErrors() {
  H5Eget_auto2(H5E_DEFAULT, &old_func_, &old_data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

SilenceErrors::~SilenceErrors() { H5Eset_auto2(H5E_DEFAULT, old_func_, old_data_); }

namespace {
// Walking upward visits the innermost (most specific) entry first.
herr_t keep_first_description(unsigned n, const H5E_error2_t* entry, void* out) {
  if (n == 0 && entry->desc != nullptr) *static_cast<std::string*>(out) = entry->desc;
  return 0;
}
}  // namespace

std::string last_error_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_first_description, &detail);
  // The sec2 driver's I/O errors are long ("file write failed: time = ...,
  // filename = ..., errno = 28, error message = 'No space left on device',
  // buf = ..."): keep what went wrong and the system's reason.
  const std::string key = "error message = '";
  const size_t at = detail.find(key);
  if (at != std::string::npos) {
    const size_t end = detail.find('\'', at + key.size());
    const size_t colon = detail.find(':');
    if (end != std::string::npos && colon != std::string::npos && colon < at)
      detail = detail.substr(0, colon) + ": " + detail.substr(at + key.size(), end - at - key.size());
  }
  return detail;
}

void fail(const std::string& where, const std::string& what) {
  std::string detail = last_error_detail();
  H5Eclear2(H5E_DEFAULT);
  if (detail.empty()) throw Error(where + ": " + what);
  throw Error(where + ": " + what + " (HDF5: " + detail + ")");
}

Handle check_id(hid_t id, Handle::Closer closer, const std::string& where, const std::string& what) {
  if (id < 0) fail(where, what);
  return Handle(id, closer);
}

void check_status(herr_t status, const std::string& where, const std::string& what) {
  if (status < 0) fail(where, what);
}

Handle file_access(H5F_libver_t low, H5F_libver_t high, const std::string& where) {
  Handle fapl = check_id(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, where, "cannot create file access properties");
  check_status(H5Pset_libver_bounds(fapl.get(), low, high), where, "cannot set HDF5 format version bounds");
  return fapl;
}

Handle create_group(hid_t loc, const std::string& name, const std::string& where) {
  return check_id(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose, where,
                  "cannot create group '" + name + "'");
}

Handle open_group(hid_t loc, const std::string& name, const std::string& where) {
  return check_id(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), H5Gclose, where, "cannot open group '" + name + "'");
}

bool has_link(hid_t loc, const std::string& name) { return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0; }

namespace {
herr_t collect_link_name(hid_t, const char* name, const H5L_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> link_names(hid_t group, const std::string& where) {
  std::vector<std::string> names;
  hsize_t index = 0;
  check_status(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &index, collect_link_name, &names), where,
               "cannot list the members of a group");
  return names;
}

// ---------------------------------------------------------------- attributes

namespace {

Handle utf8_string_type(const std::string& where) {
  Handle type = check_id(H5Tcopy(H5T_C_S1), H5Tclose, where, "cannot create a string type");
  check_status(H5Tset_size(type.get(), H5T_VARIABLE), where, "cannot make a variable-length string type");
  check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), where, "cannot make a UTF-8 string type");
  return type;
}

// Writes one scalar attribute of `file_type` from `value` (given as `mem_type`).
void set_scalar_attr(hid_t obj, const std::string& name, hid_t file_type, hid_t mem_type, const void* value,
                     const std::string& where) {
  const std::string what = "cannot write attribute '" + name + "'";
  if (has_attr(obj, name)) check_status(H5Adelete(obj, name.c_str()), where, what);
  Handle space = check_id(H5Screate(H5S_SCALAR), H5Sclose, where, what);
  Handle attr =
      check_id(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose, where, what);
  check_status(H5Awrite(attr.get(), mem_type, value), where, what);
}

// Opens an attribute that must hold exactly one value.
Handle open_scalar_attr(hid_t obj, const std::string& name, const std::string& where) {
  Handle attr = check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, where,
                         "cannot open attribute '" + name + "'");
  Handle space = check_id(H5Aget_space(attr.get()), H5Sclose, where, "cannot read attribute '" + name + "'");
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw Error(where + ": attribute '" + name + "' does not hold a single value");
  return attr;
}

void read_number_attr(hid_t obj, const std::string& name, hid_t mem_type, void* out, const std::string& where) {
  H5T_class_t cls = attr_class(obj, name, where);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) throw Error(where + ": attribute '" + name + "' is not a number");
  Handle attr = open_scalar_attr(obj, name, where);
  check_status(H5Aread(attr.get(), mem_type, out), where, "cannot read attribute '" + name + "'");
}

herr_t collect_attr_name(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

}  // namespace

void set_attr_string(hid_t obj, const std::string& name, const std::string& value, const std::string& where) {
  Handle type = utf8_string_type(where);
  const char* text = value.c_str();
  set_scalar_attr(obj, name, type.get(), type.get(), &text, where);
}

void set_attr_int64(hid_t obj, const std::string& name, int64_t value, const std::string& where) {
  set_scalar_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, where);
}

void set_attr_uint64(hid_t obj, const std::string& name, uint64_t value, const std::string& where) {
  set_scalar_attr(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value, where);
}

void set_attr_double(hid_t obj, const std::string& name, double value, const std::string& where) {
  set_scalar_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, where);
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

std::vector<std::string> attr_names(hid_t obj, const std::string& where) {
  std::vector<std::string> names;
  hsize_t index = 0;
  check_status(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &index, collect_attr_name, &names), where,
               "cannot list attributes");
  return names;
}

H5T_class_t attr_class(hid_t obj, const std::string& name, const std::string& where) {
  Handle attr = check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, where,
                         "cannot open attribute '" + name + "'");
  Handle type = check_id(H5Aget_type(attr.get()), H5Tclose, where, "cannot read attribute '" + name + "'");
  return H5Tget_class(type.get());
}

std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where) {
  const std::string what = "cannot read attribute '" + name + "'";
  Handle attr = open_scalar_attr(obj, name, where);
  Handle file_type = check_id(H5Aget_type(attr.get()), H5Tclose, where, what);
  if (H5Tget_class(file_type.get()) != H5T_STRING) throw Error(where + ": attribute '" + name + "' is not a string");

  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle mem_type = utf8_string_type(where);
    char* text = nullptr;
    check_status(H5Aread(attr.get(), mem_type.get(), &text), where, what);
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  // Fixed-length (as written by other tools): read the bytes, drop the padding.
  size_t size = H5Tget_size(file_type.get());
  Handle mem_type = check_id(H5Tcopy(H5T_C_S1), H5Tclose, where, what);
  check_status(H5Tset_size(mem_type.get(), size + 1), where, what);
  check_status(H5Tset_cset(mem_type.get(), H5Tget_cset(file_type.get())), where, what);  // HDF5 converts no cset
  std::vector<char> buffer(size + 1, '\0');
  check_status(H5Aread(attr.get(), mem_type.get(), buffer.data()), where, what);
  std::string value(buffer.data());
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return value;
}

int64_t get_attr_int64(hid_t obj, const std::string& name, const std::string& where) {
  int64_t value = 0;
  read_number_attr(obj, name, H5T_NATIVE_INT64, &value, where);
  return value;
}

uint64_t get_attr_uint64(hid_t obj, const std::string& name, const std::string& where) {
  uint64_t value = 0;
  read_number_attr(obj, name, H5T_NATIVE_UINT64, &value, where);
  return value;
}

double get_attr_double(hid_t obj, const std::string& name, const std::string& where) {
  double value = 0;
  read_number_attr(obj, name, H5T_NATIVE_DOUBLE, &value, where);
  return value;
}

// ---------------------------------------------------------------- 1-D datasets

Handle create_column(hid_t group, const std::string& name, hid_t file_type, hsize_t chunk_rows,
                     const std::string& where) {
  const std::string what = "cannot create dataset '" + name + "'";
  hsize_t dims[1] = {0};
  hsize_t max_dims[1] = {H5S_UNLIMITED};
  Handle space = check_id(H5Screate_simple(1, dims, max_dims), H5Sclose, where, what);
  Handle dcpl = check_id(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, where, what);
  check_status(H5Pset_chunk(dcpl.get(), 1, &chunk_rows), where, what);
  return check_id(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                  H5Dclose, where, what);
}

void append_to_column(hid_t dataset, hid_t mem_type, const void* values, size_t n, const std::string& where) {
  if (n == 0) return;
  const std::string what = "cannot append to a dataset";
  hsize_t old_size = 0;
  {
    Handle space = check_id(H5Dget_space(dataset), H5Sclose, where, what);
    check_status(H5Sget_simple_extent_dims(space.get(), &old_size, nullptr), where, what);
  }
  hsize_t new_size = old_size + n;
  check_status(H5Dset_extent(dataset, &new_size), where, what);

  Handle file_space = check_id(H5Dget_space(dataset), H5Sclose, where, what);
  hsize_t start = old_size;
  hsize_t count = n;
  check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr), where, what);
  Handle mem_space = check_id(H5Screate_simple(1, &count, nullptr), H5Sclose, where, what);
  check_status(H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, values), where, what);
}

std::vector<double> read_column(hid_t loc, const std::string& name, const std::string& where) {
  const std::string what = "cannot read dataset '" + name + "'";
  Handle dataset = check_id(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose, where, what);
  Handle space = check_id(H5Dget_space(dataset.get()), H5Sclose, where, what);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw Error(where + ": dataset '" + name + "' is not 1-D");
  hsize_t size = 0;
  check_status(H5Sget_simple_extent_dims(space.get(), &size, nullptr), where, what);
  std::vector<double> values(size);
  if (size > 0)
    check_status(H5Dread(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), where,
                 what);
  return values;
}

}  // namespace ssmhost::h5

namespace ssmhost::h5 {

void write_int64s(hid_t loc, const std::string& name, const std::vector<int64_t>& values, const std::string& where) {
  const std::string what = "cannot write dataset '" + name + "'";
  hsize_t n = values.size();
  Handle space = check_id(H5Screate_simple(1, &n, nullptr), H5Sclose, where, what);
  Handle dataset = check_id(H5Dcreate2(loc, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT),
                            H5Dclose, where, what);
  if (n > 0)
    check_status(H5Dwrite(dataset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), where, what);
}

void write_doubles(hid_t loc, const std::string& name, const std::vector<double>& values, const std::string& where) {
  const std::string what = "cannot write dataset '" + name + "'";
  hsize_t n = values.size();
  Handle space = check_id(H5Screate_simple(1, &n, nullptr), H5Sclose, where, what);
  Handle dataset = check_id(H5Dcreate2(loc, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT),
                            H5Dclose, where, what);
  if (n > 0)
    check_status(H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), where, what);
}

void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where) {
  const std::string what = "cannot write dataset '" + name + "'";
  hsize_t n = values.size();
  Handle type = utf8_string_type(where);
  Handle space = check_id(H5Screate_simple(1, &n, nullptr), H5Sclose, where, what);
  Handle dataset = check_id(H5Dcreate2(loc, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT,
                                       H5P_DEFAULT),
                            H5Dclose, where, what);
  std::vector<const char*> text;
  for (const std::string& v : values) text.push_back(v.c_str());
  if (n > 0)
    check_status(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text.data()), where, what);
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name, const std::string& where) {
  const std::string what = "cannot read dataset '" + name + "'";
  Handle dataset = check_id(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose, where, what);
  Handle space = check_id(H5Dget_space(dataset.get()), H5Sclose, where, what);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw Error(where + ": dataset '" + name + "' is not 1-D");
  hsize_t n = 0;
  check_status(H5Sget_simple_extent_dims(space.get(), &n, nullptr), where, what);
  Handle file_type = check_id(H5Dget_type(dataset.get()), H5Tclose, where, what);
  if (H5Tget_class(file_type.get()) != H5T_STRING || H5Tis_variable_str(file_type.get()) <= 0)
    throw Error(where + ": dataset '" + name + "' does not hold variable-length strings");
  std::vector<std::string> values;
  if (n == 0) return values;
  Handle type = utf8_string_type(where);
  std::vector<char*> raw(n, nullptr);
  check_status(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), where, what);
  for (char* v : raw) values.push_back(v ? v : "");
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, raw.data());
  return values;
}

}  // namespace ssmhost::h5
