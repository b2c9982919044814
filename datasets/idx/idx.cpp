// IDX files (the MNIST format, http://yann.lecun.com/exdb/mnist/): a
// big-endian header (magic, then one uint32 per dimension) and uint8 data.
// Reads MNIST and Fashion-MNIST: four files per folder, raw or gzip-compressed.
#include <ssm/sdk.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // uint8 data, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // uint8 data, 1 dimension

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// One open IDX file; zlib reads gzip and raw files alike (transparent mode).
class IdxReader {
 public:
  explicit IdxReader(std::string path) : path_(std::move(path)) {
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) ssm::fail("cannot open '" + path_ + "'", SSM_ERR_IO);
  }
  ~IdxReader() { gzclose(file_); }
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  // Up to `want` bytes; fewer only at the end of the data.
  std::vector<uint8_t> read(uint64_t want) {
    std::vector<uint8_t> out;
    constexpr uint64_t kChunk = 1 << 20;  // grow as data arrives: a bad header must not allocate gigabytes
    while (out.size() < want) {
      const size_t old = out.size();
      const unsigned n = static_cast<unsigned>(std::min<uint64_t>(kChunk, want - old));
      out.resize(old + n);
      const int got = gzread(file_, out.data() + old, n);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        ssm::fail("cannot read '" + path_ + "': " + (msg ? msg : "zlib error"), SSM_ERR_IO);
      }
      out.resize(old + static_cast<size_t>(got));
      if (static_cast<unsigned>(got) < n) break;
    }
    return out;
  }

  // The header: checks the magic and returns the dimensions.
  std::vector<uint32_t> header(uint32_t magic, const char* kind) {
    const int ndim = static_cast<int>(magic & 0xff);
    std::vector<uint8_t> bytes = read(4 * (1 + static_cast<uint64_t>(ndim)));
    if (bytes.size() < 4) ssm::fail("'" + path_ + "' is truncated: it ends inside the 4-byte magic number", SSM_ERR_IO);
    const uint32_t got = be32(bytes.data());
    if (got != magic)
      ssm::fail("'" + path_ + "' has magic number " + hex(got) + ", expected " + hex(magic) + " (IDX " + kind + ")",
                SSM_ERR_INVALID_ARGUMENT);
    if (bytes.size() < 4 * (1 + static_cast<size_t>(ndim)))
      ssm::fail("'" + path_ + "' is truncated: it ends inside the header (" + std::to_string(bytes.size()) + " of " +
                    std::to_string(4 * (1 + ndim)) + " bytes)",
                SSM_ERR_IO);
    std::vector<uint32_t> dims;
    for (int d = 0; d < ndim; ++d) dims.push_back(be32(bytes.data() + 4 * (1 + d)));
    return dims;
  }

  // Exactly `count` data bytes, or an error saying how many there were.
  std::vector<uint8_t> data(uint64_t count, const std::string& what) {
    std::vector<uint8_t> bytes = read(count);
    if (bytes.size() < count)
      ssm::fail("'" + path_ + "' is truncated: the header says " + what + " (" + std::to_string(count) +
                    " bytes) but only " + std::to_string(bytes.size()) + " bytes follow",
                SSM_ERR_IO);
    return bytes;
  }

 private:
  static uint32_t be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  }
  static std::string hex(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
  }

  std::string path_;
  gzFile file_ = nullptr;
};

struct Split {
  std::string images_path, labels_path;
  int64_t n = 0;
  std::vector<uint8_t> images;  // (n, rows, cols)
  std::vector<uint8_t> labels;  // (n)
};

class Idx : public ssm::Dataset {
 public:
  static std::vector<std::string> aliases() { return {"mnist", "fashion-mnist"}; }
  static std::vector<ssm::Option> options() {
    return {ssm::Option::string("dataset_dir", "",
                                "folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; default for "
                                "fashion-mnist: /usr/share/datasets/fashion-mnist, for mnist: /usr/share/datasets/mnist"),
            ssm::Option::integer("n_classes", "0",
                                 "number of classes; every label must be below it (0: 10 for mnist and "
                                 "fashion-mnist, else inferred from the training labels)")};
  }

  explicit Idx(const ssm::Config& cfg) {
    const std::string dir = resolve_dir(cfg);
    load(dir, "train", splits_[SSM_SPLIT_TRAIN]);
    load(dir, "t10k", splits_[SSM_SPLIT_TEST]);
    const std::string name = cfg.str("plugin_name", "idx");
    n_classes_ = cfg.i64_at_least("n_classes", 0);
    if (n_classes_ > 256) ssm::fail("option 'n_classes' must be at most 256 (labels are bytes), got " +
                                    std::to_string(n_classes_));
    const bool declared = n_classes_ > 0 || name == "mnist" || name == "fashion-mnist";
    if (n_classes_ == 0 && declared) n_classes_ = 10;
    if (!declared) n_classes_ = infer_classes(splits_[SSM_SPLIT_TRAIN]);
    // A label outside the classes is an error, not a bigger model.
    for (const Split& s : splits_)
      for (size_t i = 0; i < s.labels.size(); ++i)
        if (s.labels[i] >= n_classes_)
          ssm::fail("'" + s.labels_path + "': label " + std::to_string(s.labels[i]) + " at index " + std::to_string(i) +
                        " is outside the " + std::to_string(n_classes_) + " classes 0.." +
                        std::to_string(n_classes_ - 1) +
                        (declared ? std::string(name == "idx" ? " (option 'n_classes')" : " of " + name)
                                  : " the training labels suggest") +
                        "; fix the file or set --n-classes",
                    SSM_ERR_INVALID_ARGUMENT);
  }

  ssm_dataset_info info() override {
    ssm_dataset_info i{};
    i.n_train = splits_[SSM_SPLIT_TRAIN].n;
    i.n_test = splits_[SSM_SPLIT_TEST].n;
    i.example_ndim = 2;
    i.example_shape[0] = rows_;
    i.example_shape[1] = cols_;
    i.example_dtype = ssm::dtype_of<uint8_t>::value;
    i.n_classes = n_classes_;
    return i;
  }

  void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (test), got " + std::to_string(split));
    const Split& s = splits_[split];
    ssm::check_shape(x, {n, rows_, cols_}, "x");
    uint8_t* xp = ssm::data<uint8_t>(x, "x");
    int64_t* lp = nullptr;
    if (labels) {
      ssm::check_shape(*labels, {n}, "labels");
      lp = ssm::data<int64_t>(*labels, "labels");
    }
    const int64_t size = rows_ * cols_;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = indices[k];
      if (i < 0 || i >= s.n)
        ssm::fail("index " + std::to_string(i) + " is out of range for '" + s.images_path + "' (" +
                  std::to_string(s.n) + " examples, valid 0.." + std::to_string(s.n - 1) + ")");
      std::memcpy(xp + k * size, s.images.data() + i * size, static_cast<size_t>(size));
      if (lp) lp[k] = s.labels[static_cast<size_t>(i)];
    }
  }

 private:
  // dataset_dir, or the Debian location for the name the user asked for.
  static std::string resolve_dir(const ssm::Config& cfg) {
    std::string dir = cfg.str("dataset_dir");
    if (!dir.empty()) {
      if (!is_dir(dir)) ssm::fail("option 'dataset_dir': '" + dir + "' is not a folder", SSM_ERR_NOT_FOUND);
      return dir;
    }
    const std::string name = cfg.str("plugin_name", "idx");
    if (name == "fashion-mnist") {
      dir = "/usr/share/datasets/fashion-mnist";
      if (!is_dir(dir))
        ssm::fail("fashion-mnist: '" + dir + "' does not exist; install Debian's package dataset-fashion-mnist "
                  "(apt install dataset-fashion-mnist) or pass option 'dataset_dir' (--dataset-dir DIR)",
                  SSM_ERR_NOT_FOUND);
      return dir;
    }
    if (name == "mnist") {
      dir = "/usr/share/datasets/mnist";
      if (!is_dir(dir))
        ssm::fail("mnist: '" + dir + "' does not exist and no Debian package provides MNIST; download the four "
                  "files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz into a folder and pass option "
                  "'dataset_dir' (--dataset-dir DIR)",
                  SSM_ERR_NOT_FOUND);
      return dir;
    }
    ssm::fail("option 'dataset_dir' is required: the folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte"
              "[.gz] (or use the dataset names 'mnist' or 'fashion-mnist' for their Debian locations)");
  }

  // Classes 0..max of the training labels, when every one of them has an
  // example: a label far above the others (a stray 200 among 0..9) would
  // otherwise make a 201-class model without a word.
  static int64_t infer_classes(const Split& train) {
    std::vector<int64_t> count(256, 0);
    for (uint8_t l : train.labels) ++count[l];
    int64_t k = 0;
    for (uint8_t l : train.labels) k = std::max<int64_t>(k, int64_t{l} + 1);
    for (int64_t c = 0; c < k; ++c)
      if (count[static_cast<size_t>(c)] == 0) {
        for (size_t i = 0; i < train.labels.size(); ++i)
          if (train.labels[i] > c)
            ssm::fail("'" + train.labels_path + "': label " + std::to_string(train.labels[i]) + " at index " +
                          std::to_string(i) + " is outside the classes 0.." + std::to_string(c - 1) +
                          " the other training labels suggest (no example of class " + std::to_string(c) +
                          "); fix the file or set --n-classes",
                      SSM_ERR_INVALID_ARGUMENT);
      }
    return k;
  }

  // dir/name, or dir/name.gz; the raw file wins when both exist.
  static std::string find_file(const std::string& dir, const std::string& name) {
    const std::string raw = dir + "/" + name;
    if (is_file(raw)) return raw;
    if (is_file(raw + ".gz")) return raw + ".gz";
    ssm::fail("missing file '" + raw + "' (or '" + raw + ".gz') in option 'dataset_dir'", SSM_ERR_NOT_FOUND);
  }

  void load(const std::string& dir, const std::string& prefix, Split& s) {
    s.images_path = find_file(dir, prefix + "-images-idx3-ubyte");
    const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
    s.labels_path = labels_path;

    IdxReader images(s.images_path);
    const std::vector<uint32_t> dims = images.header(kImagesMagic, "images: uint8, 3 dimensions");
    const int64_t n = dims[0], rows = dims[1], cols = dims[2];
    if (rows == 0 || cols == 0)
      ssm::fail("'" + s.images_path + "' has images of " + std::to_string(rows) + "x" + std::to_string(cols) +
                "; rows and columns must be >= 1");
    // rows*cols < 2^64 as both are < 2^32; n*rows*cols could overflow.
    const uint64_t image_bytes = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
    if (static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / image_bytes)
      ssm::fail("'" + s.images_path + "' has an implausible header: " + std::to_string(n) + " images of " +
                std::to_string(rows) + "x" + std::to_string(cols));
    if (rows_ == 0) {
      rows_ = rows;
      cols_ = cols;
    } else if (rows != rows_ || cols != cols_) {
      ssm::fail("'" + s.images_path + "' has " + std::to_string(rows) + "x" + std::to_string(cols) +
                " images but the train split has " + std::to_string(rows_) + "x" + std::to_string(cols_));
    }
    s.images = images.data(static_cast<uint64_t>(n) * image_bytes,
                           std::to_string(n) + " images of " + std::to_string(rows) + "x" + std::to_string(cols));

    IdxReader labels(labels_path);
    const int64_t n_labels = labels.header(kLabelsMagic, "labels: uint8, 1 dimension")[0];
    if (n_labels != n)
      ssm::fail("'" + labels_path + "' has " + std::to_string(n_labels) + " labels but '" + s.images_path + "' has " +
                std::to_string(n) + " images");
    s.labels = labels.data(static_cast<uint64_t>(n), std::to_string(n) + " labels");
    s.n = n;
  }

  Split splits_[2];
  int64_t rows_ = 0, cols_ = 0, n_classes_ = 0;
};

}  // namespace

SSM_PLUGIN_DATASET(Idx, "idx", "1.0.0", "MNIST-format IDX images and labels (MNIST, Fashion-MNIST), raw or .gz")
