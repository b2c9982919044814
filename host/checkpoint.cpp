#include "checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <array>
#include <algorithm>
#include <set>
#include <sstream>

#include "error.hpp"
#include "h5util.hpp"
#include "runlock.hpp"

namespace ssmhost {

namespace {

// File layout (docs/runlog.md, "Checkpoint files").
const char* const kFormatAttr = "ssmhost_checkpoint";
const char* const kNamesDataset = "array_names";  // the arrays' names, in order
const char* const kArraysGroup = "arrays";        // arrays/<name> per array

const char* const kChecksumAttr = "crc32";       // on each array: CRC-32 of its float32 values
const char* const kMetaChecksumAttr = "meta_crc32";  // at the root: CRC-32 of everything else

std::string where_of(const std::string& path) { return "checkpoint '" + path + "'"; }

// CRC-32 (IEEE 802.3, as zlib's crc32), over little-endian bytes.
uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t array_checksum(const NamedArray& array) {
  static_assert(sizeof(float) == 4, "float32");
  return crc32_update(0, array.data.data(), array.data.size() * sizeof(float));  // x86-64, aarch64: little-endian
}

// Everything but the arrays' values, in a fixed text form: the root
// attributes, /config, /trainer_state, the names and shapes of the arrays.
// (HDF5 checksums its own metadata, but not the strings of /config nor the
// list of names, which it keeps in unchecked heaps and datasets.)
uint32_t meta_checksum(const CheckpointData& data) {
  std::ostringstream text;
  text.precision(17);
  text << "step=" << data.step << "\nepoch=" << data.epoch << "\nseed=" << data.seed
       << "\ndata_index=" << data.data_index << "\n";
  for (const auto& [name, value] : data.config) text << "config:" << name << "=" << value << "\n";
  for (const auto& [name, value] : data.trainer_state) text << "state:" << name << "=" << value << "\n";
  for (const auto& array : data.arrays) {
    text << "array:" << array.name << "(";
    for (int64_t d : array.shape) text << d << ",";
    text << ")\n";
  }
  const std::string s = text.str();
  return crc32_update(0, s.data(), s.size());
}

// Removes the temporary file unless the save got as far as the rename.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!committed_) std::remove(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  void commit() { committed_ = true; }

 private:
  std::string path_;
  bool committed_ = false;
};

// HDF5 names: components separated by '/', none empty or ".".
void check_array_name(const std::string& name, const std::string& where) {
  bool ok = !name.empty() && name.front() != '/' && name.back() != '/' && name.find("//") == std::string::npos;
  size_t start = 0;
  while (ok && start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    std::string part = name.substr(start, end - start);
    ok = part != "." && part != "..";
    start = end + 1;
  }
  if (!ok) throw Error(where + ": array name '" + name + "' is not valid (use a/b/c with non-empty parts)");
}

void check_array(const NamedArray& array, const std::string& where) {
  check_array_name(array.name, where);
  uint64_t count = 1;
  for (int64_t dim : array.shape) {
    if (dim < 0) throw Error(where + ": array '" + array.name + "' has a negative dimension");
    count *= static_cast<uint64_t>(dim);
  }
  if (count != array.data.size())
    throw Error(where + ": array '" + array.name + "' has " + std::to_string(array.data.size()) +
                " values but its shape holds " + std::to_string(count));
}

// Each name is a dataset, so no name may repeat or be a group on the way to
// another ("a/b" and "a/b/c"). Checked here because HDF5's own error for it
// is cryptic ("message type not found").
void check_names_distinct(const std::vector<NamedArray>& arrays, const std::string& where) {
  std::set<std::string> names;
  for (const auto& array : arrays)
    if (!names.insert(array.name).second) throw Error(where + ": array name '" + array.name + "' is given twice");
  for (const auto& name : names)
    for (size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
      if (names.count(name.substr(0, slash)) != 0)
        throw Error(where + ": array '" + name + "' would be inside array '" + name.substr(0, slash) + "'");
}

h5::Handle dataspace_for(const std::vector<int64_t>& shape, const std::string& where) {
  if (shape.empty()) return h5::check_id(H5Screate(H5S_SCALAR), H5Sclose, where, "cannot create a dataspace");
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  return h5::check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose, where,
                      "cannot create a dataspace");
}

h5::Handle vlen_string_type(const std::string& where) {
  h5::Handle type = h5::check_id(H5Tcopy(H5T_C_S1), H5Tclose, where, "cannot create a string type");
  h5::check_status(H5Tset_size(type.get(), H5T_VARIABLE), where, "cannot create a string type");
  h5::check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), where, "cannot create a string type");
  return type;
}

// Fixed-length UTF-8 strings of `size` bytes (NUL-padded). Checkpoints hold
// no variable-length strings: those live in HDF5's global heap, which has no
// checksum, and HDF5 1.10 crashes (memcpy past the heap) on some flipped
// bits there. Everything HDF5 parses in a checkpoint is then in checksummed
// metadata (format 1.8+), and the rest is covered by our own checksums.
h5::Handle fixed_string_type(size_t size, const std::string& where) {
  h5::Handle type = h5::check_id(H5Tcopy(H5T_C_S1), H5Tclose, where, "cannot create a string type");
  h5::check_status(H5Tset_size(type.get(), std::max<size_t>(size, 1)), where, "cannot create a string type");
  h5::check_status(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), where, "cannot create a string type");
  h5::check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), where, "cannot create a string type");
  return type;
}

void set_fixed_string_attr(hid_t obj, const std::string& name, const std::string& value, const std::string& where) {
  const std::string what = "cannot write attribute '" + name + "'";
  h5::Handle type = fixed_string_type(value.size(), where);
  h5::Handle space = h5::check_id(H5Screate(H5S_SCALAR), H5Sclose, where, what);
  h5::Handle attr = h5::check_id(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                 H5Aclose, where, what);
  std::string padded = value;
  padded.resize(std::max<size_t>(value.size(), 1), '\0');
  h5::check_status(H5Awrite(attr.get(), type.get(), padded.data()), where, what);
}

void write_names(hid_t file, const std::vector<NamedArray>& arrays, const std::string& where) {
  size_t width = 1;
  for (const auto& array : arrays) width = std::max(width, array.name.size());
  std::string packed(arrays.size() * width, '\0');
  for (size_t i = 0; i < arrays.size(); ++i) packed.replace(i * width, arrays[i].name.size(), arrays[i].name);
  h5::Handle type = fixed_string_type(width, where);
  h5::Handle space = dataspace_for({static_cast<int64_t>(arrays.size())}, where);
  h5::Handle dataset = h5::check_id(
      H5Dcreate2(file, kNamesDataset, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
      where, "cannot create dataset '" + std::string(kNamesDataset) + "'");
  if (!arrays.empty())
    h5::check_status(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), where,
                     "cannot write dataset '" + std::string(kNamesDataset) + "'");
}

std::vector<std::string> read_names(hid_t file, const std::string& where) {
  const std::string what = "cannot read dataset '" + std::string(kNamesDataset) + "'";
  if (!h5::has_link(file, kNamesDataset)) throw Error(where + ": damaged checkpoint (no '" + kNamesDataset + "')");
  h5::Handle dataset = h5::check_id(H5Dopen2(file, kNamesDataset, H5P_DEFAULT), H5Dclose, where, what);
  h5::Handle space = h5::check_id(H5Dget_space(dataset.get()), H5Sclose, where, what);
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw Error(where + ": damaged checkpoint ('" +
                                                                std::string(kNamesDataset) + "' is not 1-D)");
  hsize_t count = 0;
  h5::check_status(H5Sget_simple_extent_dims(space.get(), &count, nullptr), where, what);
  if (count == 0) return {};
  h5::Handle file_type = h5::check_id(H5Dget_type(dataset.get()), H5Tclose, where, what);
  if (H5Tget_class(file_type.get()) != H5T_STRING)
    throw Error(where + ": damaged checkpoint ('" + std::string(kNamesDataset) + "' does not hold strings)");
  std::vector<std::string> names;
  if (H5Tis_variable_str(file_type.get()) > 0) {  // checkpoints of ssmhost 0.2
    h5::Handle type = vlen_string_type(where);
    std::vector<char*> raw(count, nullptr);
    h5::check_status(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()), where, what);
    for (char* name : raw) names.push_back(name != nullptr ? name : "");
    H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, raw.data());
    return names;
  }
  const size_t width = H5Tget_size(file_type.get());
  if (width == 0 || width > 65536) throw Error(where + ": damaged checkpoint (array names of " +
                                               std::to_string(width) + " bytes)");
  h5::Handle type = fixed_string_type(width, where);
  std::string packed(count * width, '\0');
  h5::check_status(H5Dread(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed.data()), where, what);
  for (size_t i = 0; i < count; ++i) names.push_back(std::string(packed.c_str() + i * width, strnlen(packed.c_str() + i * width, width)));
  return names;
}

void write_array(hid_t arrays_group, hid_t lcpl, const NamedArray& array, const std::string& where) {
  const std::string what = "cannot write array '" + array.name + "'";
  h5::Handle space = dataspace_for(array.shape, where);
  h5::Handle dataset = h5::check_id(
      H5Dcreate2(arrays_group, array.name.c_str(), H5T_IEEE_F32LE, space.get(), lcpl, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose, where, what);
  if (!array.data.empty())
    h5::check_status(
        H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, array.data.data()), where, what);
  h5::set_attr_uint64(dataset.get(), kChecksumAttr, array_checksum(array), where);
}

NamedArray read_array(hid_t arrays_group, const std::string& name, const std::string& where) {
  const std::string what = "cannot read array '" + name + "'";
  if (H5Lexists(arrays_group, name.c_str(), H5P_DEFAULT) <= 0)
    throw Error(where + ": damaged checkpoint (array '" + name + "' is listed but missing)");
  h5::Handle dataset = h5::check_id(H5Dopen2(arrays_group, name.c_str(), H5P_DEFAULT), H5Dclose, where, what);
  h5::Handle type = h5::check_id(H5Dget_type(dataset.get()), H5Tclose, where, what);
  if (H5Tget_class(type.get()) != H5T_FLOAT) throw Error(where + ": array '" + name + "' is not floating point");
  h5::Handle space = h5::check_id(H5Dget_space(dataset.get()), H5Sclose, where, what);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) h5::fail(where, what);
  std::vector<hsize_t> dims(rank);
  if (rank > 0) h5::check_status(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), where, what);

  NamedArray array;
  array.name = name;
  size_t count = 1;
  for (hsize_t dim : dims) {
    array.shape.push_back(static_cast<int64_t>(dim));
    count *= dim;
  }
  array.data.resize(count);
  if (count > 0)
    h5::check_status(
        H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, array.data.data()), where, what);
  // Checkpoints written before checksums (ssmhost 0.2) have none to check.
  if (h5::has_attr(dataset.get(), kChecksumAttr) &&
      h5::get_attr_uint64(dataset.get(), kChecksumAttr, where) != array_checksum(array))
    throw Error(where + ": array '" + name + "' is damaged: its values do not match their checksum (flipped bits on "
                "disk?); resume from an older checkpoint or start the run again");
  return array;
}

// Puts the file's bytes on disk before the rename makes it the checkpoint;
// otherwise a power cut right after the rename could leave an empty file.
void sync_file(const std::string& path, const std::string& where) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw Error(where + ": cannot sync '" + path + "' to disk: " + reason);
  }
  ::close(fd);
}

// Makes the rename itself durable. Best effort: some file systems refuse it.
void sync_directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string directory = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_checkpoint_file(const std::string& file_path, const CheckpointData& data, const std::string& where) {
  h5::Handle fapl = h5::file_access(H5F_LIBVER_V18, H5F_LIBVER_LATEST, where);
  // Strong close: H5Fclose closes everything, so the file is complete on return.
  h5::check_status(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG), where, "cannot set file close degree");
  h5::Handle file = h5::check_id(H5Fcreate(file_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose,
                                 where, "cannot create temporary file '" + file_path + "'");
  hid_t root = file.get();
  h5::set_attr_int64(root, kFormatAttr, kCheckpointFormat, where);
  h5::set_attr_int64(root, "step", data.step, where);
  h5::set_attr_int64(root, "epoch", data.epoch, where);
  h5::set_attr_uint64(root, "seed", data.seed, where);
  h5::set_attr_uint64(root, "data_index", data.data_index, where);
  h5::set_attr_uint64(root, kMetaChecksumAttr, meta_checksum(data), where);
  {
    h5::Handle config = h5::create_group(root, "config", where);
    for (const auto& [name, value] : data.config) set_fixed_string_attr(config.get(), name, value, where);
  }
  {
    h5::Handle state = h5::create_group(root, "trainer_state", where);
    for (const auto& [name, value] : data.trainer_state) h5::set_attr_double(state.get(), name, value, where);
  }
  write_names(root, data.arrays, where);
  {
    h5::Handle arrays = h5::create_group(root, kArraysGroup, where);
    h5::Handle lcpl = h5::check_id(H5Pcreate(H5P_LINK_CREATE), H5Pclose, where, "cannot create link properties");
    // "param/3/log_dt" creates the groups param and param/3 on the way.
    h5::check_status(H5Pset_create_intermediate_group(lcpl.get(), 1), where, "cannot set link properties");
    for (const auto& array : data.arrays) write_array(arrays.get(), lcpl.get(), array, where);
  }
  h5::check_status(H5Fflush(root, H5F_SCOPE_LOCAL), where, "cannot flush temporary file '" + file_path + "'");
  h5::check_status(file.close(), where, "cannot close temporary file '" + file_path + "'");
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointData& data) {
  h5::SilenceErrors quiet;
  const std::string where = where_of(path);
  for (const auto& array : data.arrays) check_array(array, where);
  check_names_distinct(data.arrays, where);

  remove_stale_temp_files(path);  // left by runs killed while they saved
  TempFile temp(path + ".tmp-" + std::to_string(::getpid()));
  write_checkpoint_file(temp.path(), data, where);
  sync_file(temp.path(), where);
  if (std::rename(temp.path().c_str(), path.c_str()) != 0)
    throw Error(where + ": cannot rename '" + temp.path() + "' over it: " + std::strerror(errno));
  temp.commit();
  sync_directory_of(path);
}

CheckpointData load_checkpoint(const std::string& path) {
  h5::SilenceErrors quiet;
  const std::string where = where_of(path);
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) throw Error(where + ": no such file");
  if (S_ISDIR(info.st_mode)) throw Error(where + ": is a directory, not a checkpoint file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw Error(where + ": not an HDF5 file (or damaged beyond recognition)");

  h5::Handle file = h5::check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, where,
                                 "cannot open the file (truncated or damaged?)");
  hid_t root = file.get();
  if (!h5::has_attr(root, kFormatAttr))
    throw Error(where + ": an HDF5 file but not an ssmhost checkpoint (no '" + kFormatAttr + "' attribute)");
  int64_t format = h5::get_attr_int64(root, kFormatAttr, where);
  if (format != kCheckpointFormat)
    throw Error(where + ": checkpoint format " + std::to_string(format) + " is not supported (this ssmhost reads " +
                std::to_string(kCheckpointFormat) + ")");

  CheckpointData data;
  data.step = h5::get_attr_int64(root, "step", where);
  data.epoch = h5::get_attr_int64(root, "epoch", where);
  data.seed = h5::get_attr_uint64(root, "seed", where);
  data.data_index = h5::get_attr_uint64(root, "data_index", where);
  {
    h5::Handle config = h5::open_group(root, "config", where);
    for (const auto& name : h5::attr_names(config.get(), where))
      data.config[name] = h5::get_attr_string(config.get(), name, where);
  }
  if (H5Lexists(root, "trainer_state", H5P_DEFAULT) > 0) {
    h5::Handle state = h5::open_group(root, "trainer_state", where);
    for (const auto& name : h5::attr_names(state.get(), where))
      data.trainer_state[name] = h5::get_attr_double(state.get(), name, where);
  }
  std::vector<std::string> names = read_names(root, where);
  h5::Handle arrays = h5::open_group(root, kArraysGroup, where);
  for (const auto& name : names) data.arrays.push_back(read_array(arrays.get(), name, where));
  if (h5::has_attr(root, kMetaChecksumAttr) && h5::get_attr_uint64(root, kMetaChecksumAttr, where) != meta_checksum(data))
    throw Error(where + ": damaged: its step, options or list of arrays do not match their checksum (flipped bits on "
                "disk?); resume from an older checkpoint or start the run again");
  return data;
}

void restore_array(const CheckpointData& ck, const std::string& what, const std::string& name,
                   const std::vector<int64_t>& shape, float* dst) {
  for (const NamedArray& a : ck.arrays) {
    if (a.name != name) continue;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (a.shape != shape || static_cast<int64_t>(a.data.size()) != n)
      throw Error(what + ": array '" + name + "' has another shape in the checkpoint (another model?)");
    std::copy(a.data.begin(), a.data.end(), dst);
    return;
  }
  throw Error(what + ": the checkpoint has no array '" + name + "' (another model?)");
}

}  // namespace ssmhost
