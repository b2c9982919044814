// The cifar10 dataset on small files in the exact CIFAR-10 binary format
// that the tests write (reading, every error case, a fuzz of the reader),
// and seq_image's sCIFAR (3 channels or --grayscale) and permuted pixels
// (psMNIST's --permute, its seed in the run's config), with a small model
// that learns colour classes from a synthetic CIFAR-format set.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Bytes = std::vector<uint8_t>;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

constexpr int64_t kImage = 3072, kRecord = 3073;

// Pixel (c, p) of image `id`: a pattern that differs per image and channel.
uint8_t pixel(int64_t id, int64_t c, int64_t p) { return static_cast<uint8_t>((id * 31 + c * 101 + p * 7) & 0xff); }

// n records with ids first..first+n-1, labels id % 10.
Bytes batch_file(int64_t first, int64_t n) {
  Bytes b;
  for (int64_t id = first; id < first + n; ++id) {
    b.push_back(static_cast<uint8_t>(id % 10));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 1024; ++p) b.push_back(pixel(id, c, p));
  }
  return b;
}

void write(const fs::path& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

// data_batch_i.bin: 2 records each (ids 0..9), test_batch.bin: 3 (ids 100..102).
void write_cifar(const fs::path& dir) {
  fs::create_directories(dir);
  for (int i = 1; i <= 5; ++i) write(dir / ("data_batch_" + std::to_string(i) + ".bin"), batch_file(2 * (i - 1), 2));
  write(dir / "test_batch.bin", batch_file(100, 3));
}

}  // namespace

TEST_CASE("cifar10 reads the binary batches in order", "[cifar10]") {
  ssm_test::TempDir dir("ssm_cifar");
  write_cifar(dir.path / "cifar-10-batches-bin");
  // The folder itself, or the one it was unpacked in.
  for (const fs::path& d : {dir.path / "cifar-10-batches-bin", dir.path}) {
    auto ds = registry().create_dataset("cifar10", {{"dataset_dir", d.string()}});
    const ssm_dataset_info info = ds->info();
    CHECK(info.n_train == 10);
    CHECK(info.n_test == 3);
    CHECK(info.example_ndim == 3);
    CHECK(info.example_shape[0] == 3);
    CHECK(info.example_shape[1] == 32);
    CHECK(info.example_shape[2] == 32);
    CHECK(info.n_classes == 10);
    const std::vector<int64_t> idx = {7, 0, 9};
    Bytes x(3 * kImage);
    std::vector<int64_t> labels(3);
    ssm::View vx(x.data(), {3, 3, 32, 32}), vl(labels.data(), {3});
    ds->read(SSM_SPLIT_TRAIN, idx.data(), 3, vx.get(), vl.get());
    for (size_t k = 0; k < 3; ++k) {
      CHECK(labels[k] == idx[k] % 10);
      bool same = true;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t p = 0; p < 1024; ++p) same &= x[k * kImage + c * 1024 + p] == pixel(idx[k], c, p);
      CHECK(same);
    }
    const int64_t two = 2;
    ssm::View vx1(x.data(), {1, 3, 32, 32}), vl1(labels.data(), {1});
    ds->read(SSM_SPLIT_TEST, &two, 1, vx1.get(), vl1.get());
    CHECK(labels[0] == 102 % 10);
    CHECK(x[5] == pixel(102, 0, 5));
  }
  CHECK(registry().find(SSM_KIND_DATASET, "cifar") != nullptr);
}

TEST_CASE("cifar10 errors name the file and the problem", "[cifar10][errors]") {
  ssm_test::TempDir dir("ssm_cifar");
  write_cifar(dir.path);
  auto open = [&] { return registry().create_dataset("cifar10", {{"dataset_dir", dir.path.string()}}); };
  SECTION("no folder: where to get the files") {
    CHECK_THROWS_WITH(registry().create_dataset("cifar10", {}),
                      Contains("dataset_dir") && Contains("cifar-10-binary.tar.gz") && Contains("cs.toronto.edu"));
    CHECK_THROWS_WITH(registry().create_dataset("cifar10", {{"dataset_dir", "/nonexistent/cifar"}}),
                      Contains("/nonexistent/cifar"));
  }
  SECTION("missing batch") {
    fs::remove(dir.path / "data_batch_4.bin");
    CHECK_THROWS_WITH(open(), Contains("data_batch_4.bin") && Contains("missing"));
  }
  SECTION("truncated batch") {
    Bytes b = batch_file(0, 2);
    b.resize(b.size() - 100);
    write(dir.path / "data_batch_2.bin", b);
    CHECK_THROWS_WITH(open(), Contains("data_batch_2.bin") && Contains("6046 bytes") && Contains("3073"));
  }
  SECTION("empty batch") {
    write(dir.path / "test_batch.bin", {});
    CHECK_THROWS_WITH(open(), Contains("test_batch.bin") && Contains("empty"));
  }
  SECTION("label out of range") {
    Bytes b = batch_file(0, 2);
    b[kRecord] = 17;  // the second record's label
    write(dir.path / "data_batch_5.bin", b);
    CHECK_THROWS_WITH(open(), Contains("data_batch_5.bin") && Contains("record 1") && Contains("label 17") &&
                                  Contains("0..9"));
  }
  SECTION("index out of range, bad split, bad tensors") {
    auto ds = open();
    Bytes x(kImage);
    std::vector<float> xf(kImage);
    ssm::View vx(x.data(), {1, 3, 32, 32}), vxf(xf.data(), {1, 3, 32, 32}), vbad(x.data(), {1, 32, 32, 3});
    const int64_t ten = 10, three = 3, zero = 0;
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &ten, 1, vx.get(), nullptr), Contains("index 10") && Contains("data_batch"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TEST, &three, 1, vx.get(), nullptr), Contains("index 3") && Contains("test_batch"));
    CHECK_THROWS_WITH(ds->read(4, &zero, 1, vx.get(), nullptr), Contains("split"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vxf.get(), nullptr), Contains("float32"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vbad.get(), nullptr), Contains("(1, 3, 32, 32)"));
  }
}

TEST_CASE("cifar10: mutated files load or fail with a message, never crash", "[cifar10][fuzz]") {
  ssm_test::TempDir dir("ssm_cifar");
  write_cifar(dir.path);
  const Bytes good = batch_file(0, 2);
  int loaded = 0, refused = 0;
  for (uint64_t trial = 0; trial < 120; ++trial) {
    Bytes b = good;
    const uint64_t r = ssm::kernels::philox_uniform_bits(21, trial, 0);
    switch (trial % 4) {
      case 0: b[r % b.size()] = static_cast<uint8_t>(r >> 40); break;             // any byte, labels included
      case 1: b.resize(r % b.size()); break;                                       // truncated
      case 2: b.insert(b.end(), static_cast<size_t>(1 + r % 5000), uint8_t(3)); break;  // trailing bytes
      default: b[(r % 2) * kRecord] = static_cast<uint8_t>(10 + (r >> 40) % 246); break;  // a bad label
    }
    write(dir.path / "data_batch_3.bin", b);
    try {
      auto ds = registry().create_dataset("cifar10", {{"dataset_dir", dir.path.string()}});
      CHECK(ds->info().n_train * kRecord == 4 * 2 * kRecord + static_cast<int64_t>(b.size()));
      ++loaded;
    } catch (const ssmhost::Error& e) {
      CHECK_THAT(std::string(e.what()), Contains("data_batch_3.bin"));
      ++refused;
    }
  }
  CHECK(loaded > 0);
  CHECK(refused > 0);
}

TEST_CASE("seq_image on cifar10: 1024 steps of 3 channels, or 1 with --grayscale", "[seq_image][scifar]") {
  ssm_test::TempDir dir("ssm_cifar");
  write_cifar(dir.path);
  const std::string d = dir.path.string();
  auto task = registry().create_task("scifar", {{"dataset_dir", d}});
  const ssm_task_info i = task->info();
  CHECK(i.input_kind == SSM_INPUT_REAL);
  CHECK(i.in_channels == 3);
  CHECK(i.seq_len == 1024);
  CHECK(i.n_out == 10);
  CHECK(i.n_train == 10);
  CHECK(i.n_eval == 3);
  // Per-channel mean and standard deviation of the training pixels.
  double mean[3], sd[3];
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, q = 0;
    for (int64_t id = 0; id < 10; ++id)
      for (int64_t p = 0; p < 1024; ++p) {
        const double v = pixel(id, c, p) / 255.0;
        s += v, q += v * v;
      }
    mean[c] = s / 10240, sd[c] = std::sqrt(q / 10240 - mean[c] * mean[c]);
  }
  std::vector<float> x(3 * 1024 * 3);
  std::vector<int32_t> y(3);
  ssm::View vx(x.data(), {3, 1024, 3}), vy(y.data(), {3, 1});
  task->batch(SSM_SPLIT_TEST, 0, 0, 3, vx.get(), vy.get(), nullptr);
  for (int64_t b = 0; b < 3; ++b) {
    CHECK(y[b] == (100 + b) % 10);
    for (int64_t t : {0, 1, 500, 1023})
      for (int64_t c = 0; c < 3; ++c)
        CHECK(x[(b * 1024 + t) * 3 + c] == Approx((pixel(100 + b, c, t) / 255.0 - mean[c]) / sd[c]).epsilon(1e-5));
  }
  auto gray = registry().create_task("scifar", {{"dataset_dir", d}, {"grayscale", "true"}});
  CHECK(gray->info().in_channels == 1);
  std::vector<float> g(3 * 1024);
  ssm::View vg(g.data(), {3, 1024, 1});
  gray->batch(SSM_SPLIT_TEST, 0, 0, 3, vg.get(), vy.get(), nullptr);
  auto luma = [](int64_t id, int64_t p) {
    return (0.299 * pixel(id, 0, p) + 0.587 * pixel(id, 1, p) + 0.114 * pixel(id, 2, p)) / 255.0;
  };
  double s = 0, q = 0;
  for (int64_t id = 0; id < 10; ++id)
    for (int64_t p = 0; p < 1024; ++p) s += luma(id, p), q += luma(id, p) * luma(id, p);
  const double gm = s / 10240, gs = std::sqrt(q / 10240 - gm * gm);
  for (int64_t t : {0, 77, 1023}) CHECK(g[1024 + t] == Approx((luma(101, t) - gm) / gs).epsilon(1e-5));
  CHECK_THROWS_WITH(registry().create_task("scifar", {}), Contains("cifar10") && Contains("dataset_dir"));
}

TEST_CASE("seq_image --permute: one fixed pixel order from the seed, recorded in the run's config",
          "[seq_image][psmnist]") {
  ssm_test::TempDir dir("ssm_cifar");
  write_cifar(dir.path);
  const ssmhost::KV base = {{"dataset", "cifar10"}, {"dataset_dir", dir.path.string()}, {"grayscale", "true"}};
  auto plain = registry().create_task("seq_image", base);
  ssmhost::KV p = base;
  p["permutation_seed"] = "5";
  auto perm = registry().create_task("psmnist", p);  // psmnist permutes whatever the dataset
  p["permute"] = "true";
  auto perm2 = registry().create_task("seq_image", p);
  p["permutation_seed"] = "6";
  auto other = registry().create_task("seq_image", p);

  // The documented order: Fisher-Yates on Philox(seed, 0x9e3a7e11, i), i = L-1 .. 1.
  std::vector<int64_t> order(1024);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = 1023; i > 0; --i)
    std::swap(order[i], order[ssm::kernels::philox_uniform_bits(5, 0x9e3a7e11ull, i) % (i + 1)]);

  auto fetch = [](const ssmhost::TaskObject& t, int split) {
    std::vector<float> x(2 * 1024);
    std::vector<int32_t> y(2);
    ssm::View vx(x.data(), {2, 1024, 1}), vy(y.data(), {2, 1});
    t.batch(split, 3, 0, 2, vx.get(), vy.get(), nullptr);
    return x;
  };
  for (int split : {SSM_SPLIT_TRAIN, SSM_SPLIT_TEST}) {
    const std::vector<float> a = fetch(*plain, split), b = fetch(*perm, split);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t t = 0; t < 1024; ++t) CHECK(b[r * 1024 + t] == a[r * 1024 + order[t]]);
    CHECK(fetch(*perm2, split) == b);
    CHECK(fetch(*other, split) != b);
  }
  const ssmhost::KV d = perm->run_defaults();
  CHECK(d.at("permute") == "true");
  CHECK(d.at("permutation_seed") == "5");
  CHECK(plain->run_defaults().count("permute") == 0);
}

TEST_CASE("a small S4D model learns colour classes from CIFAR-format files (sCIFAR, permuted)",
          "[seq_image][scifar][learning]") {
  ssm_test::TempDir dir("ssm_cifar");
  // 4 classes told apart by the mean of one channel, under noise; 64 images per batch file.
  auto make = [](int64_t first, int64_t n) {
    Bytes b;
    for (int64_t id = first; id < first + n; ++id) {
      const int64_t label = id % 4;
      b.push_back(static_cast<uint8_t>(label));
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t p = 0; p < 1024; ++p) {
          const int64_t noise = static_cast<int64_t>(ssm::kernels::philox_uniform_bits(1, id, c * 1024 + p) % 128);
          const int64_t lift = c == label % 3 ? 100 : 0;
          b.push_back(static_cast<uint8_t>(std::min<int64_t>(255, noise + lift + (label == 3 ? 27 : 0))));
        }
    }
    return b;
  };
  for (int i = 1; i <= 5; ++i) write(dir.path / ("data_batch_" + std::to_string(i) + ".bin"), make(64 * i, 64));
  write(dir.path / "test_batch.bin", make(0, 64));
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task scifar --permute true --permutation-seed 3 --dataset-dir " + dir.path.string() +
                    " --d-model 16 --n-layers 1 --d-state 8 --batch-size 16 --lr 0.01 --epochs 3 --eval-every 20"
                    " --threads 1 --quiet --log s.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "s.h5").string());
  CHECK(log.summary_numbers().at("final_metric") >= 0.7);  // chance 0.25
  CHECK(log.config().at("permute") == "true");
  CHECK(log.config().at("permutation_seed") == "3");
}
