// A user's own arrays in an HDF5 file (docs/tasks.md, "hdf5"):
//   /train/x  real inputs (N, L, C) or (N, L) of any float or integer type,
//             or token ids (N, L) of an integer type (attribute vocab_size,
//             or the largest id + 1)
//   /train/y  integer labels (N), or integer classes per step (N, L), -1 where
//             a step has no target (attribute n_classes, or the largest + 1)
//   /test/x, /test/y  optional; without them the last valid_fraction of the
//             training examples is the test split.
// Integer (N, L) inputs are tokens unless option `inputs` says real.
// Everything is read into memory at creation and checked then: a file that is
// not HDF5, a missing array, shapes that disagree, labels or tokens out of
// range are errors that name the file and the array.
#include <ssm/ext/seq_targets.h>
#include <ssm/sdk.hpp>

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

// HDF5's own error printing off while we look (it would print to stderr for
// every probe); restored after.
class Quiet {
 public:
  Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Quiet() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Closes an HDF5 handle with the right function.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

struct Array {
  std::string name;
  std::vector<int64_t> dims;
  bool is_float = false;
  std::vector<double> values;  // every element, converted (exact for integers below 2^53)
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

struct Split {
  int64_t n = 0;
  std::vector<float> xf;    // real inputs (n, L, C)
  std::vector<int32_t> xi;  // tokens (n, L)
  std::vector<int32_t> y;   // labels (n) or classes (n, L)
};

class Hdf5Dataset : public ssm::Dataset {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::string("data_file", "", "the HDF5 file: /train/x, /train/y, optionally /test/x, /test/y (docs/tasks.md)"),
        ssm::Option::string("inputs", "auto", "auto: integer (N, L) inputs are tokens, the rest real; tokens; real"),
        ssm::Option::real("valid_fraction", "0.1", "without /test: the last fraction of the training examples is the test split"),
    };
  }

  explicit Hdf5Dataset(const ssm::Config& cfg) : path_(cfg.str("data_file")) {
    if (path_.empty()) ssm::fail("option 'data_file' is required: the HDF5 file of your arrays (layout in docs/tasks.md)");
    const std::string inputs = cfg.str("inputs");
    if (inputs != "auto" && inputs != "tokens" && inputs != "real")
      ssm::fail("option 'inputs' must be auto, tokens or real, got '" + inputs + "'");
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      ssm::fail("'" + path_ + "' does not exist or is not a file", SSM_ERR_NOT_FOUND);
    Quiet quiet;
    Handle file(H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file.ok()) ssm::fail("'" + path_ + "' is not an HDF5 file, or cannot be read", SSM_ERR_IO);

    Array x = read_array(file.get(), "/train/x"), y = read_array(file.get(), "/train/y");
    const bool has_test_x = exists(file.get(), "/test/x"), has_test_y = exists(file.get(), "/test/y");
    if (has_test_x != has_test_y)
      ssm::fail("'" + path_ + "' has " + (has_test_x ? "/test/x but no /test/y" : "/test/y but no /test/x") +
                "; give both or neither");

    // What the inputs are.
    if (x.dims.size() < 2 || x.dims.size() > 3)
      ssm::fail("'" + path_ + "': /train/x has " + std::to_string(x.dims.size()) +
                " dimensions; expected (N, L) or (N, L, C)");
    tokens_ = inputs == "tokens" || (inputs == "auto" && !x.is_float && x.dims.size() == 2);
    if (tokens_ && x.dims.size() != 2) ssm::fail("'" + path_ + "': token inputs must be (N, L), /train/x is " + dims_text(x.dims));
    if (tokens_ && x.is_float) ssm::fail("'" + path_ + "': token inputs must be integers, /train/x is floating point");
    L_ = x.dims[1];
    C_ = x.dims.size() == 3 ? x.dims[2] : 1;
    // What the targets are.
    if (y.is_float) ssm::fail("'" + path_ + "': /train/y must hold integer class ids, it is floating point");
    if (y.dims.empty() || y.dims[0] != x.dims[0])
      ssm::fail("'" + path_ + "': /train/y is " + dims_text(y.dims) + " but /train/x has " + std::to_string(x.dims[0]) +
                " examples");
    if (y.dims.size() == 1) per_step_ = false;
    else if (y.dims.size() == 2 && y.dims[1] == L_) per_step_ = true;
    else
      ssm::fail("'" + path_ + "': /train/y is " + dims_text(y.dims) + "; expected (N) labels or (N, " +
                std::to_string(L_) + ") classes per step");

    Array tx, ty;
    if (has_test_x) {
      tx = read_array(file.get(), "/test/x");
      ty = read_array(file.get(), "/test/y");
      std::vector<int64_t> want_x = x.dims, want_y = y.dims;
      want_x[0] = want_y[0] = tx.dims.empty() ? 0 : tx.dims[0];
      if (tx.dims != want_x || tx.is_float != x.is_float)
        ssm::fail("'" + path_ + "': /test/x is " + dims_text(tx.dims) + (tx.is_float ? " float" : " integer") +
                  " but /train/x is " + dims_text(x.dims) + (x.is_float ? " float" : " integer") +
                  " (the same but for N)");
      if (ty.dims != want_y || ty.is_float)
        ssm::fail("'" + path_ + "': /test/y is " + dims_text(ty.dims) + "; expected integer " + dims_text(want_y));
    }

    // Vocabulary and classes: attributes, or the largest value + 1.
    int64_t max_token = -1, max_class = -1;
    auto scan = [&](const Array& a, bool token, const char* name) {
      for (double v : a.values) {
        if (token) {
          if (v < 0) ssm::fail("'" + path_ + "': " + name + " has the token id " + std::to_string(static_cast<int64_t>(v)) + "; ids must be >= 0");
          max_token = std::max<int64_t>(max_token, static_cast<int64_t>(v));
        } else {
          if (v < (per_step_ ? -1 : 0))
            ssm::fail("'" + path_ + "': " + name + " has the class " + std::to_string(static_cast<int64_t>(v)) +
                      (per_step_ ? "; classes are >= 0, or -1 for no target" : "; labels must be >= 0"));
          max_class = std::max<int64_t>(max_class, static_cast<int64_t>(v));
        }
      }
    };
    if (tokens_) scan(x, true, "/train/x");
    scan(y, false, "/train/y");
    if (has_test_x) {
      if (tokens_) scan(tx, true, "/test/x");
      scan(ty, false, "/test/y");
    }
    vocab_ = tokens_ ? attribute(file.get(), "/train/x", "vocab_size", max_token + 1) : 0;
    if (tokens_ && max_token >= vocab_)
      ssm::fail("'" + path_ + "': token id " + std::to_string(max_token) + " is not below the vocab_size attribute " +
                std::to_string(vocab_) + " of /train/x");
    constexpr int64_t kMaxIds = int64_t{1} << 24;
    if (vocab_ > kMaxIds) ssm::fail("'" + path_ + "': a vocabulary of " + std::to_string(vocab_) + " tokens is more than 2^24");
    n_classes_ = attribute(file.get(), "/train/y", "n_classes", max_class + 1);
    if (n_classes_ > kMaxIds) ssm::fail("'" + path_ + "': " + std::to_string(n_classes_) + " classes are more than 2^24");
    if (max_class >= n_classes_)
      ssm::fail("'" + path_ + "': class " + std::to_string(max_class) + " is not below the n_classes attribute " +
                std::to_string(n_classes_) + " of /train/y");
    if (n_classes_ < 2) ssm::fail("'" + path_ + "': /train/y has " + std::to_string(n_classes_) + " class; need >= 2");

    if (has_test_x) {
      fill(x, y, 0, x.dims[0], splits_[SSM_SPLIT_TRAIN]);
      fill(tx, ty, 0, tx.dims[0], splits_[SSM_SPLIT_TEST]);
    } else {
      const double frac = cfg.f64("valid_fraction");
      if (!(frac > 0 && frac < 1)) ssm::fail("option 'valid_fraction' must be in (0, 1), got " + cfg.str("valid_fraction"));
      const int64_t n = x.dims[0], n_test = static_cast<int64_t>(static_cast<double>(n) * frac + 0.5);
      if (n_test < 1 || n - n_test < 1)
        ssm::fail("'" + path_ + "' has " + std::to_string(n) + " examples and no /test: too few to hold out " +
                  cfg.str("valid_fraction") + " of them");
      fill(x, y, 0, n - n_test, splits_[SSM_SPLIT_TRAIN]);
      fill(x, y, n - n_test, n, splits_[SSM_SPLIT_TEST]);
    }

    ext_.struct_size = sizeof(ext_);
    ext_.vocab_size = vocab_;
    ext_.per_step = per_step_ ? 1 : 0;
    ext_.n_classes = n_classes_;
    ext_.read_targets = per_step_ ? &Hdf5Dataset::read_targets_thunk : nullptr;
    ext_.self = this;
  }

  ssm_dataset_info info() override {
    ssm_dataset_info i{};
    i.n_train = splits_[SSM_SPLIT_TRAIN].n;
    i.n_test = splits_[SSM_SPLIT_TEST].n;
    if (tokens_) {
      i.example_ndim = 1;
      i.example_shape[0] = L_;
      i.example_dtype = ssm::dtype_of<int32_t>::value;
    } else {
      i.example_ndim = 2;
      i.example_shape[0] = L_;
      i.example_shape[1] = C_;
      i.example_dtype = ssm::dtype_of<float>::value;
    }
    i.n_classes = per_step_ ? 0 : n_classes_;  // per-step classes: the extension's
    return i;
  }

  void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) override {
    const Split& s = split_of(split);
    int64_t* lp = nullptr;
    if (labels) {
      if (per_step_) ssm::fail("'" + path_ + "' has targets per step: read them with the seq_targets extension");
      ssm::check_shape(*labels, {n}, "labels");
      lp = ssm::data<int64_t>(*labels, "labels");
    }
    if (tokens_) ssm::check_shape(x, {n, L_}, "x");
    else ssm::check_shape(x, {n, L_, C_}, "x");
    const int64_t size = tokens_ ? L_ : L_ * C_;
    int32_t* xi = tokens_ ? ssm::data<int32_t>(x, "x") : nullptr;
    float* xf = tokens_ ? nullptr : ssm::data<float>(x, "x");
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = check_index(s, split, indices[k]);
      if (tokens_) std::copy_n(s.xi.data() + i * size, size, xi + k * size);
      else std::copy_n(s.xf.data() + i * size, size, xf + k * size);
      if (lp) lp[k] = s.y[static_cast<size_t>(i)];
    }
  }

  const void* extension(const char* id) override { return std::strcmp(id, SSM_EXT_SEQ_TARGETS) == 0 ? &ext_ : nullptr; }

 private:
  static ssm_status* read_targets_thunk(void* self, int32_t split, const int64_t* indices, int64_t n, DLTensor* y) {
    return ssm::guard([&] {
      auto* d = static_cast<Hdf5Dataset*>(self);
      if (!y) ssm::fail("read_targets: y is NULL");
      const Split& s = d->split_of(split);
      ssm::check_shape(*y, {n, d->L_}, "y");
      int32_t* yp = ssm::data<int32_t>(*y, "y");
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = d->check_index(s, split, indices[k]);
        std::copy_n(s.y.data() + i * d->L_, d->L_, yp + k * d->L_);
      }
    });
  }

  const Split& split_of(int split) const {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (test), got " + std::to_string(split));
    return splits_[split];
  }
  int64_t check_index(const Split& s, int split, int64_t i) const {
    if (i < 0 || i >= s.n)
      ssm::fail("index " + std::to_string(i) + " is out of range for the " + (split == SSM_SPLIT_TRAIN ? "training" : "test") +
                " split of '" + path_ + "' (" + std::to_string(s.n) + " examples)");
    return i;
  }

  static std::string dims_text(const std::vector<int64_t>& d) {
    std::string s = "(";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + ")";
  }

  bool exists(hid_t file, const std::string& name) const {
    const size_t slash = name.find('/', 1);
    if (H5Lexists(file, name.substr(0, slash).c_str(), H5P_DEFAULT) <= 0) return false;
    return H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
  }

  // An integer attribute of a dataset, or `fallback` when it has none.
  int64_t attribute(hid_t file, const std::string& dset, const char* name, int64_t fallback) const {
    if (H5Aexists_by_name(file, dset.c_str(), name, H5P_DEFAULT) <= 0) return fallback;
    Handle a(H5Aopen_by_name(file, dset.c_str(), name, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    long long v = 0;
    if (!a.ok() || H5Aread(a.get(), H5T_NATIVE_LLONG, &v) < 0)
      ssm::fail("'" + path_ + "': cannot read the attribute " + name + " of " + dset + " (it must be one integer)");
    if (v < 1) ssm::fail("'" + path_ + "': the attribute " + std::string(name) + " of " + dset + " is " + std::to_string(v) + "; it must be >= 1");
    return v;
  }

  Array read_array(hid_t file, const std::string& name) const {
    if (!exists(file, name))
      ssm::fail("'" + path_ + "' has no dataset " + name + " (expected /train/x and /train/y, docs/tasks.md)");
    Handle d(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!d.ok()) ssm::fail("'" + path_ + "': " + name + " is not a dataset");
    Handle space(H5Dget_space(d.get()), H5Sclose), type(H5Dget_type(d.get()), H5Tclose);
    if (!space.ok() || !type.ok()) ssm::fail("'" + path_ + "': cannot read the shape or type of " + name, SSM_ERR_IO);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
      ssm::fail("'" + path_ + "': " + name + " must hold numbers (float or integer), it holds another type");
    const int nd = H5Sget_simple_extent_ndims(space.get());
    if (nd < 1 || nd > 3) ssm::fail("'" + path_ + "': " + name + " has " + std::to_string(nd) + " dimensions; expected 1 to 3");
    hsize_t dims[3] = {0, 0, 0};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
    Array a;
    a.name = name;
    a.is_float = cls == H5T_FLOAT;
    for (int i = 0; i < nd; ++i) {
      if (dims[i] == 0) ssm::fail("'" + path_ + "': " + name + " is empty (a dimension of 0)");
      a.dims.push_back(static_cast<int64_t>(dims[i]));
    }
    constexpr int64_t kMaxElements = int64_t{1} << 31;
    if (a.count() > kMaxElements)
      ssm::fail("'" + path_ + "': " + name + " " + dims_text(a.dims) + " is too large to load (more than 2^31 values)");
    try {
      a.values.resize(static_cast<size_t>(a.count()));
    } catch (const std::bad_alloc&) {
      ssm::fail("'" + path_ + "': not enough memory for " + name + " " + dims_text(a.dims));
    }
    if (H5Dread(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()) < 0)
      ssm::fail("'" + path_ + "': cannot read " + name + " (a damaged file, or a filter this HDF5 lacks)", SSM_ERR_IO);
    for (double v : a.values)
      if (!(v == v) || v > 3.0e38 || v < -3.0e38)
        ssm::fail("'" + path_ + "': " + name + " holds a value that is not a finite float32 (NaN or too large)");
    return a;
  }

  void fill(const Array& x, const Array& y, int64_t from, int64_t to, Split& s) const {
    s.n = to - from;
    const int64_t xs = tokens_ ? L_ : L_ * C_, ys = per_step_ ? L_ : 1;
    for (int64_t i = from * xs; i < to * xs; ++i) {
      if (tokens_) s.xi.push_back(static_cast<int32_t>(x.values[static_cast<size_t>(i)]));
      else s.xf.push_back(static_cast<float>(x.values[static_cast<size_t>(i)]));
    }
    for (int64_t i = from * ys; i < to * ys; ++i) s.y.push_back(static_cast<int32_t>(y.values[static_cast<size_t>(i)]));
  }

  std::string path_;
  bool tokens_ = false, per_step_ = false;
  int64_t L_ = 0, C_ = 1, vocab_ = 0, n_classes_ = 0;
  Split splits_[2];
  ssm_seq_targets ext_{};
};

}  // namespace

SSM_PLUGIN_DATASET(Hdf5Dataset, "hdf5", "1.0.0",
                   "Your own arrays from an HDF5 file: real or token sequences, labels or a class per step")
