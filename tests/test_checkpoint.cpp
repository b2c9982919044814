// Checkpoints: bit-exact round trip, atomic replacement, and clear errors
// (naming the file) for every kind of bad input.
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_support.hpp"
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "checkpoint.hpp"
#include "error.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using ssmhost::CheckpointData;
using ssmhost::NamedArray;

namespace {

struct TempDir : ssm_test::TempDir {
  TempDir() : ssm_test::TempDir("ssm_test_checkpoint") {}
};

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ssmhost::Error& e) {
    return e.what();
  }
  return "";
}

float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Names out of alphabetical order, nested names, a scalar, an empty array,
// and values that a lossy path would change (NaN payload, -0, denormals).
CheckpointData example_checkpoint(uint32_t seed) {
  CheckpointData data;
  data.step = 123456789012LL;
  data.epoch = -1;
  data.seed = std::numeric_limits<uint64_t>::max();
  data.data_index = (1ULL << 40) + seed;
  data.config = {{"layer", "s4d"}, {"lr", "0.001"}, {"empty", ""}};

  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-3.0f, 3.0f);
  NamedArray weights{"param/3/log_dt", {4, 3, 2}, {}};
  for (int i = 0; i < 24; ++i) weights.data.push_back(uniform(random));
  weights.data[0] = float_from_bits(0x7fc01234u);  // NaN with a payload
  weights.data[1] = -0.0f;
  weights.data[2] = std::numeric_limits<float>::denorm_min();
  weights.data[3] = -std::numeric_limits<float>::infinity();
  NamedArray moments{"adam_m/3/log_dt", {4, 3, 2}, std::vector<float>(24, 1e-30f)};
  NamedArray scalar{"param/0/scale", {}, {uniform(random)}};
  NamedArray empty{"param/1/none", {0, 3}, {}};
  data.arrays = {weights, moments, scalar, empty};
  return data;
}

void check_equal_bits(const CheckpointData& a, const CheckpointData& b) {
  CHECK(a.step == b.step);
  CHECK(a.epoch == b.epoch);
  CHECK(a.seed == b.seed);
  CHECK(a.data_index == b.data_index);
  CHECK(a.config == b.config);
  REQUIRE(a.arrays.size() == b.arrays.size());
  for (size_t i = 0; i < a.arrays.size(); ++i) {
    INFO("array " << a.arrays[i].name);
    CHECK(a.arrays[i].name == b.arrays[i].name);
    CHECK(a.arrays[i].shape == b.arrays[i].shape);
    REQUIRE(a.arrays[i].data.size() == b.arrays[i].data.size());
    CHECK(std::memcmp(a.arrays[i].data.data(), b.arrays[i].data.data(), a.arrays[i].data.size() * sizeof(float)) ==
          0);
  }
}

// Files in `dir` whose names contain ".tmp-": what a failed save must not leave.
int temp_files_in(const fs::path& dir) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) ++count;
  return count;
}

// What `action` writes to stderr (fd 2): HDF5 must not print its error stack.
std::string stderr_of(const std::function<void()>& action) {
  std::fflush(stderr);
  char name[] = "/tmp/ssm_test_stderr_XXXXXX";
  int capture = mkstemp(name);
  REQUIRE(capture >= 0);
  int saved = dup(2);
  dup2(capture, 2);
  action();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(capture);
  std::ifstream in(name);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(name);
  return text;
}

}  // namespace

TEST_CASE("checkpoint: save and load round-trip bit for bit", "[checkpoint]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5.ckpt").string();
  CheckpointData saved = example_checkpoint(1);
  ssmhost::save_checkpoint(path, saved);
  check_equal_bits(saved, ssmhost::load_checkpoint(path));
  CHECK(temp_files_in(dir.path) == 0);

  CheckpointData nothing;  // no arrays, no config
  ssmhost::save_checkpoint(path, nothing);
  check_equal_bits(nothing, ssmhost::load_checkpoint(path));
}

TEST_CASE("checkpoint: a save replaces the old checkpoint only when complete", "[checkpoint]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5.ckpt").string();
  CheckpointData first = example_checkpoint(1);
  ssmhost::save_checkpoint(path, first);

  SECTION("a second save replaces it") {
    CheckpointData second = example_checkpoint(2);
    second.step = 7;
    ssmhost::save_checkpoint(path, second);
    check_equal_bits(second, ssmhost::load_checkpoint(path));
  }
  SECTION("a save that fails half-way leaves the old one and no temporary file") {
    // Only HDF5 refuses an empty attribute name, while writing /config: the
    // temporary file exists by then.
    CheckpointData broken = example_checkpoint(2);
    broken.config[""] = "x";
    std::string message = error_of([&] { ssmhost::save_checkpoint(path, broken); });
    CHECK_THAT(message, Catch::Contains(path) && Catch::Contains("cannot write attribute"));
    check_equal_bits(first, ssmhost::load_checkpoint(path));
  }
  SECTION("inconsistent data is refused before anything is written") {
    CheckpointData bad_shape = example_checkpoint(2);
    bad_shape.arrays[0].shape = {5, 5};
    CHECK_THAT(error_of([&] { ssmhost::save_checkpoint(path, bad_shape); }),
               Catch::Contains(path) && Catch::Contains("param/3/log_dt"));
    CheckpointData bad_name = example_checkpoint(2);
    bad_name.arrays[0].name = "param//x";
    CHECK_THAT(error_of([&] { ssmhost::save_checkpoint(path, bad_name); }), Catch::Contains("param//x"));
    CheckpointData nested = example_checkpoint(2);
    nested.arrays.push_back({"param/3/log_dt/x", {1}, {1.0f}});
    CHECK_THAT(error_of([&] { ssmhost::save_checkpoint(path, nested); }),
               Catch::Contains("param/3/log_dt/x") && Catch::Contains("inside array 'param/3/log_dt'"));
    CheckpointData twice = example_checkpoint(2);
    twice.arrays.push_back(twice.arrays[0]);
    CHECK_THAT(error_of([&] { ssmhost::save_checkpoint(path, twice); }), Catch::Contains("given twice"));
    check_equal_bits(first, ssmhost::load_checkpoint(path));
  }
  SECTION("a save whose rename fails leaves no temporary file") {
    const std::string directory_path = (dir.path / "a_directory").string();
    fs::create_directory(directory_path);  // rename() cannot put a file in place of a directory
    CHECK_THAT(error_of([&] { ssmhost::save_checkpoint(directory_path, first); }), Catch::Contains(directory_path));
    check_equal_bits(first, ssmhost::load_checkpoint(path));
  }
  CHECK(temp_files_in(dir.path) == 0);
}

TEST_CASE("checkpoint: a save to an impossible path throws and changes nothing", "[checkpoint]") {
  TempDir dir;
  const std::string good = (dir.path / "run.h5.ckpt").string();
  ssmhost::save_checkpoint(good, example_checkpoint(1));
  const std::string impossible = (dir.path / "missing_dir" / "run.h5.ckpt").string();
  std::string message;
  std::string printed = stderr_of([&] { message = error_of([&] { ssmhost::save_checkpoint(impossible, example_checkpoint(2)); }); });
  CHECK_THAT(message, Catch::Contains(impossible));
  CHECK(printed.empty());
  check_equal_bits(example_checkpoint(1), ssmhost::load_checkpoint(good));
  CHECK(temp_files_in(dir.path) == 0);
}

TEST_CASE("checkpoint: bad inputs give an error naming the file", "[checkpoint]") {
  TempDir dir;
  auto load_error = [](const std::string& path) {
    std::string message;
    std::string printed = stderr_of([&] { message = error_of([&] { ssmhost::load_checkpoint(path); }); });
    CHECK(printed.empty());  // our message only, no HDF5 error stack
    CHECK_THAT(message, Catch::Contains(path));
    return message;
  };

  SECTION("missing file") {
    CHECK_THAT(load_error((dir.path / "missing.ckpt").string()), Catch::Contains("no such file"));
  }
  SECTION("random bytes") {
    const std::string path = (dir.path / "random.ckpt").string();
    std::mt19937 random(3);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(random()));
    out.close();
    CHECK_THAT(load_error(path), Catch::Contains("not an HDF5 file"));
  }
  SECTION("an empty file") {
    const std::string path = (dir.path / "empty.ckpt").string();
    std::ofstream(path).close();
    CHECK_THAT(load_error(path), Catch::Contains("not an HDF5 file"));
  }
  SECTION("an empty HDF5 file") {
    const std::string path = (dir.path / "empty.h5").string();
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(file >= 0);
    H5Fclose(file);
    CHECK_THAT(load_error(path), Catch::Contains("not an ssmhost checkpoint"));
  }
  SECTION("a run log") {
    const std::string path = (dir.path / "run.h5").string();
    ssmhost::RunLog log = ssmhost::RunLog::create(path, {});
    log.close();
    CHECK_THAT(load_error(path), Catch::Contains("not an ssmhost checkpoint"));
  }
  SECTION("a truncated checkpoint") {
    const std::string whole = (dir.path / "whole.ckpt").string();
    ssmhost::save_checkpoint(whole, example_checkpoint(1));
    std::ifstream in(whole, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string path = (dir.path / "truncated.ckpt").string();
    std::ofstream(path, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    CHECK_THAT(load_error(path), Catch::Contains("truncated"));
  }
  SECTION("a directory") {
    CHECK_THAT(load_error(dir.path.string()), Catch::Contains("directory"));
  }
}

namespace {

std::string load_error(const std::string& path) {
  return error_of([&] { ssmhost::load_checkpoint(path); });
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Where a contiguous dataset's values start in the file.
size_t data_offset(const std::string& path, const std::string& dataset) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);
  hid_t d = H5Dopen2(file, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(file);
  REQUIRE(offset != HADDR_UNDEF);
  return static_cast<size_t>(offset);
}

}  // namespace

TEST_CASE("checkpoint: flipped bits are refused, naming the damaged array", "[checkpoint][integrity]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5.ckpt").string();
  ssmhost::save_checkpoint(path, example_checkpoint(3));
  const std::string good = read_bytes(path);

  SECTION("in an array's values") {
    for (const std::string name : {"param/3/log_dt", "adam_m/3/log_dt"}) {
      std::string bad = good;
      bad[data_offset(path, "arrays/" + name) + 9] ^= 0x04;
      const std::string damaged = (dir.path / "damaged.ckpt").string();
      write_bytes(damaged, bad);
      const std::string error = load_error(damaged);
      CHECK_THAT(error, Catch::Contains("damaged.ckpt") && Catch::Contains("array '" + name + "'") &&
                            Catch::Contains("checksum"));
    }
  }
  SECTION("in the options (kept where HDF5 checks nothing)") {
    const std::string changed = (dir.path / "changed.ckpt").string();
    write_bytes(changed, good);
    hid_t file = H5Fopen(changed.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(file >= 0);
    hid_t config = H5Gopen2(file, "config", H5P_DEFAULT);
    hid_t attr = H5Aopen(config, "lr", H5P_DEFAULT);
    hid_t type = H5Aget_type(attr);
    REQUIRE(H5Tget_size(type) == 5);  // "0.001", fixed-length
    REQUIRE(H5Awrite(attr, type, "0.101") >= 0);
    H5Tclose(type);
    H5Aclose(attr);
    H5Gclose(config);
    H5Fclose(file);
    CHECK_THAT(load_error(changed), Catch::Contains("changed.ckpt") && Catch::Contains("checksum"));
  }
  SECTION("anywhere: every single-bit flip is an error naming the file, or changes nothing") {
    const CheckpointData original = ssmhost::load_checkpoint(path);
    std::mt19937 random(5);
    const std::string flipped = (dir.path / "flipped.ckpt").string();
    int refused = 0, harmless = 0;
    const char* env = std::getenv("SSM_FLIP_TRIALS");  // more for a longer hunt
    const int trials = env ? std::atoi(env) : 300;
    for (int trial = 0; trial < trials; ++trial) {
      std::string bad = good;
      const size_t at = random() % bad.size();
      bad[at] ^= static_cast<char>(1 << (random() % 8));
      write_bytes(flipped, bad);
      try {
        CheckpointData loaded = ssmhost::load_checkpoint(flipped);
        INFO("bit flipped at byte " << at << " of " << bad.size());
        check_equal_bits(original, loaded);
        ++harmless;
      } catch (const ssmhost::Error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("flipped.ckpt"));
        ++refused;
      }
    }
    CHECK(refused > trials / 3);
    WARN(refused << " of " << trials << " single-bit flips refused, " << harmless << " in unused bytes");
  }
}

TEST_CASE("checkpoint: temporary files of killed saves are removed by the next save", "[checkpoint]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5.ckpt").string();
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  int status = 0;
  REQUIRE(waitpid(dead, &status, 0) == dead);
  const std::string left = path + ".tmp-" + std::to_string(dead);
  std::ofstream(left) << "half a checkpoint";
  const std::string alive = path + ".tmp-1";  // init's: a live process, left alone
  std::ofstream(alive) << "someone else's";
  ssmhost::save_checkpoint(path, example_checkpoint(1));
  CHECK_FALSE(fs::exists(left));
  CHECK(fs::exists(alive));
  fs::remove(alive);
}
