// Small helpers over the HDF5 C API shared by the run log and checkpoints:
// an owning handle for hid_t, error checks that name the file, attributes,
// and 1-D datasets. Every function takes `where` (e.g. "run log 'a.h5'")
// and puts it at the start of any error message it throws.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error.hpp"

namespace ssmhost::h5 {

// Owns one hid_t and closes it with the matching H5?close when it goes away.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  // Closes now and returns HDF5's status (H5Fclose can fail: a caller that
  // must know whether the file reached the disk checks this).
  herr_t close();
  void reset() { close(); }
  // Gives the id up without closing it (a file whose writes failed is left
  // alone rather than closed: closing would write to it again).
  hid_t release() {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Turns HDF5's automatic error printing off for the current thread while it
// lives and restores what was there before: our own messages say what went
// wrong, HDF5's stack trace on stderr would only confuse a user.
class SilenceErrors {
 public:
  SilenceErrors();
  ~SilenceErrors();
  SilenceErrors(const SilenceErrors&) = delete;
  SilenceErrors& operator=(const SilenceErrors&) = delete;

 private:
  H5E_auto2_t old_func_ = nullptr;
  void* old_data_ = nullptr;
};

// The innermost message on HDF5's current error stack ("" if none), to give
// a thrown error the low-level reason (errno text, "truncated file", ...).
std::string last_error_detail();

// Throws Error("<where>: <what> (HDF5: <detail>)").
[[noreturn]] void fail(const std::string& where, const std::string& what);

// Wrap a freshly returned id: throws through fail() when it is negative.
Handle check_id(hid_t id, Handle::Closer closer, const std::string& where, const std::string& what);
void check_status(herr_t status, const std::string& where, const std::string& what);

// Typed constructors of Handle for ids that are already checked.
inline Handle file_handle(hid_t id) { return Handle(id, H5Fclose); }
inline Handle group_handle(hid_t id) { return Handle(id, H5Gclose); }
inline Handle dataset_handle(hid_t id) { return Handle(id, H5Dclose); }
inline Handle space_handle(hid_t id) { return Handle(id, H5Sclose); }
inline Handle type_handle(hid_t id) { return Handle(id, H5Tclose); }
inline Handle attr_handle(hid_t id) { return Handle(id, H5Aclose); }
inline Handle plist_handle(hid_t id) { return Handle(id, H5Pclose); }

// File access properties with the given library-version bounds.
Handle file_access(H5F_libver_t low, H5F_libver_t high, const std::string& where);

// --- groups
Handle create_group(hid_t loc, const std::string& name, const std::string& where);
Handle open_group(hid_t loc, const std::string& name, const std::string& where);
bool has_link(hid_t loc, const std::string& name);
// Names of the links directly in a group, in alphabetical order.
std::vector<std::string> link_names(hid_t group, const std::string& where);

// --- attributes (scalars; strings are variable-length UTF-8, which h5py
// reads as str). Setting an existing attribute replaces it.
void set_attr_string(hid_t obj, const std::string& name, const std::string& value, const std::string& where);
void set_attr_int64(hid_t obj, const std::string& name, int64_t value, const std::string& where);
void set_attr_uint64(hid_t obj, const std::string& name, uint64_t value, const std::string& where);
void set_attr_double(hid_t obj, const std::string& name, double value, const std::string& where);

bool has_attr(hid_t obj, const std::string& name);
std::vector<std::string> attr_names(hid_t obj, const std::string& where);
H5T_class_t attr_class(hid_t obj, const std::string& name, const std::string& where);
// Strings: variable- or fixed-length. Numbers: any integer or float type,
// converted by HDF5 (a value that does not fit is an error).
std::string get_attr_string(hid_t obj, const std::string& name, const std::string& where);
int64_t get_attr_int64(hid_t obj, const std::string& name, const std::string& where);
uint64_t get_attr_uint64(hid_t obj, const std::string& name, const std::string& where);
double get_attr_double(hid_t obj, const std::string& name, const std::string& where);

// --- 1-D datasets
// An empty, chunked dataset of `file_type` that can grow without limit.
Handle create_column(hid_t group, const std::string& name, hid_t file_type, hsize_t chunk_rows,
                     const std::string& where);
// Grows a 1-D dataset by n elements of `mem_type` at `values`.
void append_to_column(hid_t dataset, hid_t mem_type, const void* values, size_t n, const std::string& where);
// Reads a whole 1-D numeric dataset, converted to double by HDF5.
std::vector<double> read_column(hid_t loc, const std::string& name, const std::string& where);
// Fixed-size 1-D datasets written at once: int64 and UTF-8 strings.
void write_int64s(hid_t loc, const std::string& name, const std::vector<int64_t>& values, const std::string& where);
void write_doubles(hid_t loc, const std::string& name, const std::vector<double>& values, const std::string& where);
void write_strings(hid_t loc, const std::string& name, const std::vector<std::string>& values,
                   const std::string& where);
std::vector<std::string> read_strings(hid_t loc, const std::string& name, const std::string& where);

// ssmhost closes every HDF5 object it opens. HDF5's own exit-time cleanup
// (H5close from atexit) is turned off when this library is loaded: after a
// failed write (a full disk) a file can stay open in the library, and that
// cleanup would then crash the process on its way out (HDF5 1.10).

}  // namespace ssmhost::h5
