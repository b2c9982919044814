// The hdf5 dataset (a user's own arrays) and the arrays task: real and token
// inputs, labels and per-step classes, the held-out tail when /test is
// absent, every error case, a fuzz of the reader in a child process, and a
// small model that learns from such a file.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <hdf5.h>
#include <ssm/ext/seq_targets.h>
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

// A little writer: datasets of doubles or int64s under groups, with attributes.
class H5Writer {
 public:
  explicit H5Writer(const fs::path& p) { f_ = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); REQUIRE(f_ >= 0); }
  ~H5Writer() { H5Fclose(f_); }
  template <class T>
  void put(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<T>& v, const char* attr = nullptr,
           long long attr_value = 0) {
    group(name);
    const hid_t type = std::is_floating_point<T>::value ? H5T_NATIVE_DOUBLE : H5T_NATIVE_LLONG;
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t d = H5Dcreate2(f_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(d >= 0);
    REQUIRE(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
    if (attr) {
      const hid_t as = H5Screate(H5S_SCALAR);
      const hid_t a = H5Acreate2(d, attr, H5T_NATIVE_LLONG, as, H5P_DEFAULT, H5P_DEFAULT);
      H5Awrite(a, H5T_NATIVE_LLONG, &attr_value);
      H5Aclose(a);
      H5Sclose(as);
    }
    H5Dclose(d);
    H5Sclose(space);
  }

 private:
  void group(const std::string& name) {
    const std::string g = name.substr(0, name.find('/', 1));
    if (H5Lexists(f_, g.c_str(), H5P_DEFAULT) <= 0) H5Gclose(H5Gcreate2(f_, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  }
  hid_t f_;
};

using D = std::vector<double>;
using I = std::vector<long long>;

D ramp(size_t n, double scale) {
  D v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<double>(i);
  return v;
}

// Real (N=6, L=4, C=2) inputs, labels i % 3; a test split of 2.
void write_real(const fs::path& p) {
  H5Writer w(p);
  w.put("/train/x", {6, 4, 2}, ramp(48, 0.5));
  w.put("/train/y", {6}, I{0, 1, 2, 0, 1, 2});
  w.put("/test/x", {2, 4, 2}, ramp(16, -1.0));
  w.put("/test/y", {2}, I{2, 0});
}

// Tokens (N=10, L=5) with classes per step (-1: no target); no test split.
void write_tokens(const fs::path& p, const char* attr = nullptr, long long value = 0) {
  H5Writer w(p);
  I x(50), y(50);
  for (int i = 0; i < 50; ++i) x[i] = (i * 7) % 9, y[i] = i % 5 == 0 ? -1 : (i * 3) % 4;
  w.put("/train/x", {10, 5}, x, attr, value);
  w.put("/train/y", {10, 5}, y);
}

}  // namespace

TEST_CASE("hdf5: real inputs and labels, read back with the test split", "[hdf5]") {
  ssm_test::TempDir dir("ssm_h5");
  const fs::path f = dir.path / "real.h5";
  write_real(f);
  auto ds = registry().create_dataset("hdf5", {{"data_file", f.string()}});
  const ssm_dataset_info i = ds->info();
  CHECK(i.n_train == 6);
  CHECK(i.n_test == 2);
  CHECK(i.example_ndim == 2);
  CHECK(i.example_shape[0] == 4);
  CHECK(i.example_shape[1] == 2);
  CHECK(ssm::same_dtype(i.example_dtype, ssm::dtype_of<float>::value));
  CHECK(i.n_classes == 3);
  std::vector<float> x(8);
  std::vector<int64_t> l(1);
  ssm::View vx(x.data(), {1, 4, 2}), vl(l.data(), {1});
  const int64_t one = 1;
  ds->read(SSM_SPLIT_TEST, &one, 1, vx.get(), vl.get());
  CHECK(l[0] == 0);
  for (int k = 0; k < 8; ++k) CHECK(x[k] == float(-(8 + k)));

  auto task = registry().create_task("arrays", {{"data_file", f.string()}, {"readout", "last"}});
  const ssm_task_info t = task->info();
  CHECK(t.input_kind == SSM_INPUT_REAL);
  CHECK(t.in_channels == 2);
  CHECK(t.seq_len == 4);
  CHECK(t.n_out == 3);
  CHECK(t.readout == SSM_READOUT_LAST);
  CHECK(t.has_mask == 0);
  CHECK(t.n_train == 6);
  CHECK(t.n_eval == 2);
  std::vector<float> bx(2 * 8);
  std::vector<int32_t> by(2);
  ssm::View vbx(bx.data(), {2, 4, 2}), vby(by.data(), {2, 1});
  task->batch(SSM_SPLIT_TEST, 0, 0, 2, vbx.get(), vby.get(), nullptr);
  CHECK(by == std::vector<int32_t>{2, 0});
  CHECK(registry().create_task("arrays", {{"data_file", f.string()}})->info().readout == SSM_READOUT_MEAN);
}

TEST_CASE("hdf5: tokens with a class per step; the tail held out without /test", "[hdf5]") {
  ssm_test::TempDir dir("ssm_h5");
  const fs::path f = dir.path / "tok.h5";
  write_tokens(f);
  auto ds = registry().create_dataset("hdf5", {{"data_file", f.string()}, {"valid_fraction", "0.2"}});
  const ssm_dataset_info i = ds->info();
  CHECK(i.n_train == 8);
  CHECK(i.n_test == 2);
  CHECK(i.example_ndim == 1);
  CHECK(ssm::same_dtype(i.example_dtype, ssm::dtype_of<int32_t>::value));
  CHECK(i.n_classes == 0);  // per step: the extension's
  const auto* e = static_cast<const ssm_seq_targets*>(ds->f().get_extension(ds->instance(), SSM_EXT_SEQ_TARGETS));
  REQUIRE(e != nullptr);
  CHECK(e->vocab_size == 9);
  CHECK(e->per_step == 1);
  CHECK(e->n_classes == 4);

  auto task = registry().create_task("arrays", {{"data_file", f.string()}, {"valid_fraction", "0.2"}});
  const ssm_task_info t = task->info();
  CHECK(t.input_kind == SSM_INPUT_TOKENS);
  CHECK(t.vocab_size == 9);
  CHECK(t.readout == SSM_READOUT_ALL);
  CHECK(t.has_mask == 1);
  CHECK(t.n_out == 4);
  std::vector<int32_t> x(2 * 5), y(2 * 5);
  std::vector<float> m(2 * 5);
  ssm::View vx(x.data(), {2, 5}), vy(y.data(), {2, 5}), vm(m.data(), {2, 5});
  task->batch(SSM_SPLIT_TEST, 0, 0, 2, vx.get(), vy.get(), vm.get());  // examples 8 and 9 of the file
  for (int k = 0; k < 10; ++k) {
    const int g = 40 + k;
    CHECK(x[k] == (g * 7) % 9);
    CHECK(m[k] == (g % 5 == 0 ? 0.0f : 1.0f));
    if (g % 5) CHECK(y[k] == (g * 3) % 4);
  }
  // A vocab_size attribute widens the vocabulary; one below the largest id is an error.
  write_tokens(f, "vocab_size", 32);
  CHECK(registry().create_task("arrays", {{"data_file", f.string()}})->info().vocab_size == 32);
  write_tokens(f, "vocab_size", 5);
  CHECK_THROWS_WITH(registry().create_dataset("hdf5", {{"data_file", f.string()}}),
                    Contains("token id 8") && Contains("vocab_size"));
  // The same integers as real inputs.
  write_tokens(f);
  auto real = registry().create_dataset("hdf5", {{"data_file", f.string()}, {"inputs", "real"}});
  CHECK(real->info().example_ndim == 2);
  CHECK(real->info().example_shape[1] == 1);
}

TEST_CASE("hdf5: errors name the file and the array", "[hdf5][errors]") {
  ssm_test::TempDir dir("ssm_h5");
  const fs::path f = dir.path / "bad.h5";
  auto open = [&] { return registry().create_dataset("hdf5", {{"data_file", f.string()}}); };
  SECTION("no file option, no file, not HDF5") {
    CHECK_THROWS_WITH(registry().create_dataset("hdf5", {}), Contains("data_file"));
    CHECK_THROWS_WITH(open(), Contains("bad.h5") && Contains("does not exist"));
    std::ofstream(f) << "x,y\n1,2\n";
    CHECK_THROWS_WITH(open(), Contains("bad.h5") && Contains("not an HDF5 file"));
  }
  SECTION("missing array") {
    H5Writer(f).put("/train/x", {2, 3}, I{1, 2, 3, 4, 5, 6});
    CHECK_THROWS_WITH(open(), Contains("bad.h5") && Contains("/train/y"));
  }
  SECTION("counts disagree") {
    {
      H5Writer w(f);
      w.put("/train/x", {3, 2, 1}, ramp(6, 1));
      w.put("/train/y", {2}, I{0, 1});
    }
    CHECK_THROWS_WITH(open(), Contains("/train/y is (2)") && Contains("3 examples"));
  }
  SECTION("per-step targets of another length") {
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 1}, ramp(6, 1));
      w.put("/train/y", {2, 4}, I{0, 1, 0, 1, 0, 1, 0, 1});
    }
    CHECK_THROWS_WITH(open(), Contains("/train/y is (2, 4)") && Contains("(N, 3)"));
  }
  SECTION("float labels") {
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 1}, ramp(6, 1));
      w.put("/train/y", {2}, D{0.0, 1.0});
    }
    CHECK_THROWS_WITH(open(), Contains("/train/y") && Contains("integer"));
  }
  SECTION("a label out of range, a negative label") {
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 1}, ramp(6, 1));
      w.put("/train/y", {2}, I{0, 5}, "n_classes", 3);
    }
    CHECK_THROWS_WITH(open(), Contains("class 5") && Contains("n_classes"));
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 1}, ramp(6, 1));
      w.put("/train/y", {2}, I{0, -1});
    }
    CHECK_THROWS_WITH(open(), Contains("class -1") && Contains(">= 0"));
  }
  SECTION("a test split that does not match") {
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 2}, ramp(12, 1));
      w.put("/train/y", {2}, I{0, 1});
      w.put("/test/x", {2, 3, 1}, ramp(6, 1));
      w.put("/test/y", {2}, I{0, 1});
    }
    CHECK_THROWS_WITH(open(), Contains("/test/x is (2, 3, 1)"));
    {
      H5Writer w(f);
      w.put("/train/x", {2, 3, 2}, ramp(12, 1));
      w.put("/train/y", {2}, I{0, 1});
      w.put("/test/x", {2, 3, 2}, ramp(12, 1));
    }
    CHECK_THROWS_WITH(open(), Contains("/test/x but no /test/y"));
  }
  SECTION("NaN inputs, negative tokens, too few examples") {
    {
      H5Writer w(f);
      w.put("/train/x", {2, 1, 1}, D{0.0, std::nan("")});
      w.put("/train/y", {2}, I{0, 1});
    }
    CHECK_THROWS_WITH(open(), Contains("/train/x") && Contains("NaN"));
    {
      H5Writer w(f);
      w.put("/train/x", {2, 2}, I{0, -3, 1, 1});
      w.put("/train/y", {2}, I{0, 1});
    }
    CHECK_THROWS_WITH(open(), Contains("token id -3"));
    {
      H5Writer w(f);
      w.put("/train/x", {1, 2}, I{0, 1});
      w.put("/train/y", {1}, I{1}, "n_classes", 2);
    }
    CHECK_THROWS_WITH(open(), Contains("1 examples") && Contains("no /test"));
  }
  SECTION("reads out of range") {
    write_real(f);
    auto ds = open();
    std::vector<float> x(8);
    ssm::View vx(x.data(), {1, 4, 2});
    const int64_t six = 6, zero = 0;
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &six, 1, vx.get(), nullptr), Contains("index 6") && Contains("bad.h5"));
    CHECK_THROWS_WITH(ds->read(2, &zero, 1, vx.get(), nullptr), Contains("split"));
  }
}

TEST_CASE("hdf5: damaged files are refused with a message, never a crash", "[hdf5][fuzz]") {
  ssm_test::TempDir dir("ssm_h5");
  const fs::path good = dir.path / "good.h5", bad = dir.path / "fuzz.h5";
  write_real(good);
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(bytes.size() > 100);
  int refused = 0;
  for (uint64_t trial = 0; trial < 40; ++trial) {
    std::string b = bytes;
    const uint64_t r = ssm::kernels::philox_uniform_bits(31, trial, 0);
    if (trial % 2) b.resize(r % b.size());                                 // truncated
    else for (int k = 0; k < 8; ++k) b[(r >> (k * 4)) % b.size()] ^= static_cast<char>(0x5a + k);  // flipped bytes
    std::ofstream(bad, std::ios::binary) << b;
    const ssm_test::Run v = ssm_test::run_ssmhost(dir.path, "validate hdf5 --set data_file=" + bad.string());
    INFO("trial " << trial << ": " << v.out << v.err);
    CHECK(v.status < 128);  // no signal: no crash
    if (v.status != 0) {
      ++refused;
      CHECK_THAT(v.out + v.err, Contains("fuzz.h5"));
    }
  }
  CHECK(refused > 0);
}

TEST_CASE("a small S4D model learns from an HDF5 file of sequences (arrays task)", "[hdf5][learning]") {
  ssm_test::TempDir dir("ssm_h5");
  // 512 sequences of 32 steps, 2 channels of noise; the label says whether channel 0 rises or falls.
  const int64_t N = 512, L = 32;
  D x(N * L * 2);
  I y(N);
  for (int64_t n = 0; n < N; ++n) {
    y[n] = n % 2;
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < 2; ++c) {
        const double noise = ssm::kernels::philox_uniform(5, n, t * 2 + c) - 0.5;
        x[(n * L + t) * 2 + c] = noise + (c == 0 ? (y[n] ? 1 : -1) * (t - L / 2.0) / L : 0.0);
      }
  }
  {
    H5Writer w(dir.path / "seq.h5");
    w.put("/train/x", {static_cast<hsize_t>(N), static_cast<hsize_t>(L), 2}, x);
    w.put("/train/y", {static_cast<hsize_t>(N)}, y);
  }
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task arrays --data-file seq.h5 --d-model 16 --n-layers 1 --d-state 8 --batch-size 16"
                " --lr 0.01 --epochs 3 --eval-every 50 --threads 1 --quiet --log a.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "a.h5").string());
  CHECK(log.summary_numbers().at("final_metric") >= 0.8);  // chance 0.5
}
