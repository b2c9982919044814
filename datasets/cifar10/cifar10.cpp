// CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html,
// cifar-10-binary.tar.gz, unpacked to cifar-10-batches-bin/): the training
// split is data_batch_1.bin .. data_batch_5.bin in that order, the test split
// test_batch.bin. Each file is a sequence of 3073-byte records: the label
// (0..9), then the 32x32 image as 1024 red, 1024 green and 1024 blue bytes,
// rows top to bottom. An example is (3, 32, 32) uint8, channels first.
#include <ssm/sdk.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

constexpr int64_t kPixels = 32 * 32, kImage = 3 * kPixels, kRecord = 1 + kImage;
constexpr const char* kWhere =
    "get the CIFAR-10 binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html), "
    "unpack it, and pass its folder cifar-10-batches-bin with option 'dataset_dir' (--dataset-dir DIR)";

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct Split {
  std::vector<std::string> files;
  int64_t n = 0;
  std::vector<uint8_t> images;  // (n, 3, 32, 32)
  std::vector<uint8_t> labels;  // (n)
};

// Appends every record of `path` to `s`; an error names the file and the problem.
void load_file(const std::string& path, Split& s) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    ssm::fail("missing file '" + path + "' of CIFAR-10 (" + std::strerror(errno) + "); " + kWhere, SSM_ERR_NOT_FOUND);
  if (!S_ISREG(st.st_mode)) ssm::fail("'" + path + "' is not a regular file", SSM_ERR_IO);
  const int64_t size = static_cast<int64_t>(st.st_size);
  if (size == 0) ssm::fail("'" + path + "' is empty: a CIFAR-10 batch holds 3073-byte records", SSM_ERR_IO);
  if (size % kRecord != 0)
    ssm::fail("'" + path + "' has " + std::to_string(size) + " bytes, not a whole number of 3073-byte CIFAR-10 records (" +
                  std::to_string(size / kRecord) + " records and " + std::to_string(size % kRecord) +
                  " bytes more): truncated, or not a CIFAR-10 binary batch",
              SSM_ERR_IO);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) ssm::fail("cannot open '" + path + "': " + std::strerror(errno), SSM_ERR_IO);
  const int64_t n = size / kRecord;
  std::vector<uint8_t> rec(static_cast<size_t>(kRecord));
  s.images.reserve(static_cast<size_t>((s.n + n) * kImage));
  for (int64_t r = 0; r < n; ++r) {
    if (std::fread(rec.data(), 1, rec.size(), f) != rec.size()) {
      std::fclose(f);
      ssm::fail("cannot read '" + path + "': it ends inside record " + std::to_string(r) + " (changed while reading?)", SSM_ERR_IO);
    }
    if (rec[0] > 9) {
      std::fclose(f);
      ssm::fail("'" + path + "': record " + std::to_string(r) + " has label " + std::to_string(rec[0]) +
                    "; CIFAR-10 labels are 0..9 (is this CIFAR-100, or not a CIFAR file?)",
                SSM_ERR_INVALID_ARGUMENT);
    }
    s.labels.push_back(rec[0]);
    s.images.insert(s.images.end(), rec.begin() + 1, rec.end());
  }
  std::fclose(f);
  s.n += n;
  s.files.push_back(path);
}

class Cifar10 : public ssm::Dataset {
 public:
  static std::vector<std::string> aliases() { return {"cifar"}; }
  static std::vector<ssm::Option> options() {
    return {ssm::Option::string("dataset_dir", "",
                                "folder with data_batch_1.bin .. data_batch_5.bin and test_batch.bin: the binary "
                                "version, cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, "
                                "unpacked (cifar-10-batches-bin, or the folder it was unpacked in)")};
  }

  explicit Cifar10(const ssm::Config& cfg) {
    std::string dir = cfg.str("dataset_dir");
    if (dir.empty()) ssm::fail(std::string("cifar10: no data folder; ") + kWhere, SSM_ERR_NOT_FOUND);
    if (!is_dir(dir)) ssm::fail("option 'dataset_dir': '" + dir + "' is not a folder; " + kWhere, SSM_ERR_NOT_FOUND);
    if (is_dir(dir + "/cifar-10-batches-bin")) dir += "/cifar-10-batches-bin";
    for (int i = 1; i <= 5; ++i) load_file(dir + "/data_batch_" + std::to_string(i) + ".bin", splits_[SSM_SPLIT_TRAIN]);
    load_file(dir + "/test_batch.bin", splits_[SSM_SPLIT_TEST]);
  }

  ssm_dataset_info info() override {
    ssm_dataset_info i{};
    i.n_train = splits_[SSM_SPLIT_TRAIN].n;
    i.n_test = splits_[SSM_SPLIT_TEST].n;
    i.example_ndim = 3;
    i.example_shape[0] = 3;
    i.example_shape[1] = 32;
    i.example_shape[2] = 32;
    i.example_dtype = ssm::dtype_of<uint8_t>::value;
    i.n_classes = 10;
    return i;
  }

  void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (test), got " + std::to_string(split));
    const Split& s = splits_[split];
    ssm::check_shape(x, {n, 3, 32, 32}, "x");
    uint8_t* xp = ssm::data<uint8_t>(x, "x");
    int64_t* lp = nullptr;
    if (labels) {
      ssm::check_shape(*labels, {n}, "labels");
      lp = ssm::data<int64_t>(*labels, "labels");
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = indices[k];
      if (i < 0 || i >= s.n)
        ssm::fail("index " + std::to_string(i) + " is out of range for the CIFAR-10 " +
                  (split == SSM_SPLIT_TRAIN ? "training split (" : "test split (") + std::to_string(s.n) +
                  " images in " + (split == SSM_SPLIT_TRAIN ? "data_batch_1..5.bin" : "test_batch.bin") + ")");
      std::memcpy(xp + k * kImage, s.images.data() + i * kImage, static_cast<size_t>(kImage));
      if (lp) lp[k] = s.labels[static_cast<size_t>(i)];
    }
  }

 private:
  Split splits_[2];
};

}  // namespace

SSM_PLUGIN_DATASET(Cifar10, "cifar10", "1.0.0",
                   "CIFAR-10, binary version (data_batch_1..5.bin, test_batch.bin): 32x32 colour images, 10 classes")
