// tools/ssmlog.py (pandas DataFrames through h5py) on real run logs and a
// bench file: tests/python/check_ssmlog.py compares what it reads with what
// `ssmhost report --format json` says.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace fs = std::filesystem;
using ssm_test::run_ssmhost;

namespace {
std::string python() {
  if (const char* p = std::getenv("SSM_PYTHON")) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}
}  // namespace

TEST_CASE("ssmlog.py reads runs and bench files into DataFrames that agree with report", "[ssmlog]") {
  const std::string py = python();
  if (std::system((py + " -c 'import h5py, pandas' 2>/dev/null").c_str()) != 0)
    FAIL(py + " cannot import h5py and pandas: install python3-h5py and python3-pandas (bash .ci/setup.sh)");
  ssm_test::TempDir tmp("ssm_test_ssmlog");
  fs::create_directories(tmp.path / "runs");
  const std::string tiny =
      "--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 32 --d-model 8 --n-layers 1"
      " --d-state 4 --batch-size 4 --steps 20 --eval-every 10 --threads 1 --quiet";
  for (const char* disc : {"zoh", "bilinear"}) {
    ssm_test::Run r = run_ssmhost(tmp.path, tiny + " --disc " + disc + " --log runs/" + disc + ".h5");
    REQUIRE(r.status == 0);
  }
  ssm_test::Run r = run_ssmhost(tmp.path, "bench --layer s4d --seq-len 8,16 --batch-size 2 --d-model 8 --d-state 4 "
                                          "--n-layers 1 --steps 1 --warmup 0 --threads 1 --quiet --out runs/bench.h5");
  REQUIRE(r.status == 0);
  std::ofstream(tmp.path / "runs" / "junk.h5") << "junk";
  r = run_ssmhost(tmp.path, "report runs --format json");
  REQUIRE(r.status == 1);  // junk.h5
  std::ofstream(tmp.path / "report.json") << r.out;
  const std::string cmd = "cd '" + tmp.path.string() + "' && " + py + " '" SSM_TEST_SOURCE_DIR
                          "/tests/python/check_ssmlog.py' '" SSM_TEST_SOURCE_DIR "/tools' runs report.json";
  CHECK(std::system(cmd.c_str()) == 0);
}
