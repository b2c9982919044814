// The idx dataset plugin: small IDX files (raw and gzip) written to a temp
// folder and read back, every error case, and Debian's Fashion-MNIST when
// it is installed.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/sdk.hpp>

#include <boost/filesystem.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "registry.hpp"

namespace fs = boost::filesystem;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

using Bytes = std::vector<uint8_t>;

void put_be32(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// An IDX file: magic, dimensions, data.
Bytes idx_file(uint32_t magic, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b;
  put_be32(b, magic);
  for (uint32_t d : dims) put_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

uint32_t crc32(const Bytes& data) {
  uint32_t c = 0xffffffffu;
  for (uint8_t byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A gzip file (RFC 1952) whose deflate stream uses stored blocks only: a
// real .gz that zlib reads, without the test needing zlib.
Bytes gzip_stored(const Bytes& data) {
  Bytes g = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, data.size() - pos);
    const bool last = pos + len == data.size();
    g.push_back(last ? 1 : 0);  // BFINAL, BTYPE=00 (stored)
    g.push_back(static_cast<uint8_t>(len));
    g.push_back(static_cast<uint8_t>(len >> 8));
    g.push_back(static_cast<uint8_t>(~len));
    g.push_back(static_cast<uint8_t>(~len >> 8));
    g.insert(g.end(), data.begin() + pos, data.begin() + pos + len);
    pos += len;
  } while (pos < data.size());
  const uint32_t crc = crc32(data), size = static_cast<uint32_t>(data.size());
  for (int k = 0; k < 4; ++k) g.push_back(static_cast<uint8_t>(crc >> (8 * k)));
  for (int k = 0; k < 4; ++k) g.push_back(static_cast<uint8_t>(size >> (8 * k)));
  return g;
}

void write(const fs::path& path, const Bytes& b) {
  std::ofstream f(path.string(), std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

// A temp folder removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() : path(fs::temp_directory_path() / fs::unique_path("ssm-idx-test-%%%%-%%%%")) { fs::create_directories(path); }
  ~TempDir() {
    boost::system::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// A tiny dataset: n images of rows x cols with pixel (i, r, c) = i*31 + r*7 + c and label i % 3.
struct Tiny {
  int64_t n, rows, cols;
  Bytes images() const {
    Bytes b;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) b.push_back(static_cast<uint8_t>(i * 31 + r * 7 + c));
    return b;
  }
  Bytes labels() const {
    Bytes b;
    for (int64_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i % 3));
    return b;
  }
  Bytes images_file() const {
    return idx_file(0x803, {uint32_t(n), uint32_t(rows), uint32_t(cols)}, images());
  }
  Bytes labels_file() const { return idx_file(0x801, {uint32_t(n)}, labels()); }
};

const Tiny kTrain{5, 3, 4}, kTest{2, 3, 4};

// Writes the four files, gzip-compressed or raw.
void write_dataset(const TempDir& dir, bool gz) {
  auto put = [&](const std::string& name, const Bytes& b) {
    write(dir.path / (gz ? name + ".gz" : name), gz ? gzip_stored(b) : b);
  };
  put("train-images-idx3-ubyte", kTrain.images_file());
  put("train-labels-idx1-ubyte", kTrain.labels_file());
  put("t10k-images-idx3-ubyte", kTest.images_file());
  put("t10k-labels-idx1-ubyte", kTest.labels_file());
}

std::unique_ptr<ssmhost::DatasetObject> open(const TempDir& dir) {
  return registry().create_dataset("idx", {{"dataset_dir", dir.str()}});
}

}  // namespace

TEST_CASE("idx reads raw and gzip files", "[idx]") {
  for (bool gz : {false, true}) {
    INFO((gz ? "gzip" : "raw"));
    TempDir dir;
    write_dataset(dir, gz);
    auto ds = open(dir);
    const ssm_dataset_info info = ds->info();
    CHECK(info.n_train == 5);
    CHECK(info.n_test == 2);
    CHECK(info.example_ndim == 2);
    CHECK(info.example_shape[0] == 3);
    CHECK(info.example_shape[1] == 4);
    CHECK(ssm::same_dtype(info.example_dtype, ssm::dtype_of<uint8_t>::value));
    CHECK(info.n_classes == 3);

    const std::vector<int64_t> idx = {4, 0, 2};
    Bytes x(3 * 12);
    std::vector<int64_t> labels(3);
    ssm::View vx(x.data(), {3, 3, 4}), vl(labels.data(), {3});
    ds->read(SSM_SPLIT_TRAIN, idx.data(), 3, vx.get(), vl.get());
    const Bytes all = kTrain.images();
    for (size_t k = 0; k < idx.size(); ++k) {
      CHECK(Bytes(x.begin() + k * 12, x.begin() + (k + 1) * 12) ==
            Bytes(all.begin() + idx[k] * 12, all.begin() + (idx[k] + 1) * 12));
      CHECK(labels[k] == idx[k] % 3);
    }

    // Test split, labels not wanted.
    const int64_t one = 1;
    ssm::View vx1(x.data(), {1, 3, 4});
    ds->read(SSM_SPLIT_TEST, &one, 1, vx1.get(), nullptr);
    const Bytes test = kTest.images();
    CHECK(Bytes(x.begin(), x.begin() + 12) == Bytes(test.begin() + 12, test.begin() + 24));
  }
}

TEST_CASE("idx errors name the file", "[idx][errors]") {
  SECTION("missing dataset_dir for plain idx") {
    CHECK_THROWS_WITH(registry().create_dataset("idx", {}), Catch::Contains("dataset_dir"));
  }
  SECTION("dataset_dir that does not exist") {
    CHECK_THROWS_WITH(registry().create_dataset("idx", {{"dataset_dir", "/nonexistent/ssm-idx"}}),
                      Catch::Contains("/nonexistent/ssm-idx") && Catch::Contains("dataset_dir"));
  }
  SECTION("missing file") {
    TempDir dir;
    write_dataset(dir, false);
    fs::remove(dir.path / "t10k-labels-idx1-ubyte");
    CHECK_THROWS_WITH(open(dir), Catch::Contains("t10k-labels-idx1-ubyte") && Catch::Contains("missing"));
  }
  SECTION("bad magic") {
    TempDir dir;
    write_dataset(dir, false);
    write(dir.path / "train-labels-idx1-ubyte", idx_file(0x803, {5}, kTrain.labels()));
    CHECK_THROWS_WITH(open(dir), Catch::Contains("train-labels-idx1-ubyte") && Catch::Contains("0x00000803") &&
                                     Catch::Contains("0x00000801"));
  }
  SECTION("truncated images, raw") {
    TempDir dir;
    write_dataset(dir, false);
    Bytes images = kTrain.images_file();
    images.resize(images.size() - 5);
    write(dir.path / "train-images-idx3-ubyte", images);
    CHECK_THROWS_WITH(open(dir), Catch::Contains("train-images-idx3-ubyte") && Catch::Contains("truncated") &&
                                     Catch::Contains("60 bytes") && Catch::Contains("55 bytes"));
  }
  SECTION("truncated labels, gzip (the header claims more than the stream holds)") {
    TempDir dir;
    write_dataset(dir, true);
    write(dir.path / "t10k-labels-idx1-ubyte.gz", gzip_stored(idx_file(0x801, {2}, {1})));
    CHECK_THROWS_WITH(open(dir), Catch::Contains("t10k-labels-idx1-ubyte.gz") && Catch::Contains("truncated"));
  }
  SECTION("gzip file cut short") {
    TempDir dir;
    write_dataset(dir, true);
    Bytes gz = gzip_stored(kTrain.images_file());
    gz.resize(gz.size() / 2);
    write(dir.path / "train-images-idx3-ubyte.gz", gz);
    CHECK_THROWS_WITH(open(dir), Catch::Contains("train-images-idx3-ubyte.gz"));
  }
  SECTION("truncated header") {
    TempDir dir;
    write_dataset(dir, false);
    write(dir.path / "t10k-images-idx3-ubyte", Bytes{0, 0, 8, 3, 0, 0});
    CHECK_THROWS_WITH(open(dir), Catch::Contains("t10k-images-idx3-ubyte") && Catch::Contains("truncated"));
  }
  SECTION("images and labels counts differ") {
    TempDir dir;
    write_dataset(dir, false);
    write(dir.path / "train-labels-idx1-ubyte", idx_file(0x801, {4}, {0, 1, 2, 0}));
    CHECK_THROWS_WITH(open(dir), Catch::Contains("train-labels-idx1-ubyte") && Catch::Contains("4 labels") &&
                                     Catch::Contains("5 images"));
  }
  SECTION("test images of another size than train") {
    TempDir dir;
    write_dataset(dir, false);
    write(dir.path / "t10k-images-idx3-ubyte", Tiny{2, 4, 4}.images_file());
    CHECK_THROWS_WITH(open(dir), Catch::Contains("t10k-images-idx3-ubyte") && Catch::Contains("4x4"));
  }
  SECTION("index out of range, bad split, bad tensors") {
    TempDir dir;
    write_dataset(dir, false);
    auto ds = open(dir);
    Bytes x(12);
    std::vector<float> xf(12);
    ssm::View vx(x.data(), {1, 3, 4}), vxf(xf.data(), {1, 3, 4}), vx_bad(x.data(), {1, 4, 3});
    const int64_t five = 5, minus = -1, zero = 0;
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &five, 1, vx.get(), nullptr),
                      Catch::Contains("index 5") && Catch::Contains("train-images-idx3-ubyte"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TEST, &five, 1, vx.get(), nullptr),
                      Catch::Contains("index 5") && Catch::Contains("t10k-images-idx3-ubyte"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &minus, 1, vx.get(), nullptr), Catch::Contains("index -1"));
    CHECK_THROWS_WITH(ds->read(7, &zero, 1, vx.get(), nullptr), Catch::Contains("split"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vxf.get(), nullptr),
                      Catch::Contains("x") && Catch::Contains("float32") && Catch::Contains("uint8"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vx_bad.get(), nullptr), Catch::Contains("(1, 3, 4)"));
  }
}

TEST_CASE("the aliases choose Debian's folders", "[idx]") {
  const ssmhost::PluginInfo* info = registry().find(SSM_KIND_DATASET, "fashion-mnist");
  REQUIRE(info != nullptr);
  CHECK(info->id == "idx");
  REQUIRE(registry().find(SSM_KIND_DATASET, "mnist") != nullptr);
  if (!fs::is_directory("/usr/share/datasets/mnist"))
    CHECK_THROWS_WITH(registry().create_dataset("mnist", {}),
                      Catch::Contains("/usr/share/datasets/mnist") && Catch::Contains("dataset_dir"));
}

TEST_CASE("Debian's Fashion-MNIST", "[idx][fashion-mnist]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    WARN("SKIPPED: " << dir << " does not exist (install Debian's dataset-fashion-mnist package to run this test)");
    return;
  }
  auto ds = registry().create_dataset("fashion-mnist", {});
  const ssm_dataset_info info = ds->info();
  CHECK(info.n_train == 60000);
  CHECK(info.n_test == 10000);
  CHECK(info.example_shape[0] == 28);
  CHECK(info.example_shape[1] == 28);
  CHECK(info.n_classes == 10);

  for (int split : {SSM_SPLIT_TRAIN, SSM_SPLIT_TEST}) {
    const int64_t n = split == SSM_SPLIT_TRAIN ? info.n_train : info.n_test;
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
    Bytes x(static_cast<size_t>(n * 28 * 28));
    std::vector<int64_t> labels(static_cast<size_t>(n), -1);
    ssm::View vx(x.data(), {n, 28, 28}), vl(labels.data(), {n});
    ds->read(split, idx.data(), n, vx.get(), vl.get());
    std::vector<int64_t> per_class(10, 0);
    int64_t out_of_range = 0;
    for (int64_t l : labels) {
      if (l < 0 || l >= 10) ++out_of_range;
      else ++per_class[static_cast<size_t>(l)];
    }
    CHECK(out_of_range == 0);
    CHECK(per_class == std::vector<int64_t>(10, n / 10));  // Fashion-MNIST is balanced
    CHECK(std::any_of(x.begin(), x.end(), [](uint8_t v) { return v != 0; }));
  }
}

TEST_CASE("idx labels outside the classes are errors naming the file and the first bad index", "[idx][errors]") {
  TempDir dir;
  write_dataset(dir, false);  // train labels 0 1 2 0 1, test labels 0 1: three classes
  CHECK(open(dir)->info().n_classes == 3);

  SECTION("a stray label far above the others in the training set") {
    write(dir.path / "train-labels-idx1-ubyte", idx_file(0x801, {5}, {0, 1, 2, 200, 1}));
    CHECK_THROWS_WITH(open(dir), Catch::Contains("train-labels-idx1-ubyte") && Catch::Contains("label 200") &&
                                     Catch::Contains("index 3") && Catch::Contains("--n-classes"));
  }
  SECTION("a test label above the training labels' classes") {
    write(dir.path / "t10k-labels-idx1-ubyte", idx_file(0x801, {2}, {0, 7}));
    CHECK_THROWS_WITH(open(dir), Catch::Contains("t10k-labels-idx1-ubyte") && Catch::Contains("label 7") &&
                                     Catch::Contains("index 1") && Catch::Contains("0..2"));
  }
  SECTION("declared classes: every label must be below them") {
    auto ds = registry().create_dataset("idx", {{"dataset_dir", dir.str()}, {"n_classes", "10"}});
    CHECK(ds->info().n_classes == 10);
    CHECK_THROWS_WITH(registry().create_dataset("idx", {{"dataset_dir", dir.str()}, {"n_classes", "2"}}),
                      Catch::Contains("train-labels-idx1-ubyte") && Catch::Contains("label 2") &&
                          Catch::Contains("index 2") && Catch::Contains("n_classes"));
    // As fashion-mnist (10 classes), a label 200 is refused whatever the others are.
    write(dir.path / "train-labels-idx1-ubyte", idx_file(0x801, {5}, {0, 1, 2, 200, 1}));
    CHECK_THROWS_WITH(registry().create_dataset("fashion-mnist", {{"dataset_dir", dir.str()}}),
                      Catch::Contains("label 200") && Catch::Contains("index 3") && Catch::Contains("fashion-mnist"));
  }
}
