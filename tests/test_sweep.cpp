// `ssmhost sweep`: the cross product as separate runs with their own logs
// (named by their values: zoh-seq_len8.h5),
// --jobs, --index (Slurm arrays, GNU parallel), --dry-run/--count, skipping
// completed runs, and a failing configuration that does not stop the rest.
#include <catch2/catch.hpp>
#include <filesystem>
#include <sstream>

#include "runlog.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssm_test::run_ssmhost;

namespace {

const std::string kSweep =
    "sweep --layer s4d --disc zoh,bilinear --seq-len 8,16 --task copy --n-tokens 2 --vocab 5 --eval-size 32"
    " --d-model 8 --n-layers 1 --d-state 4 --batch-size 4 --steps 10 --eval-every 5 --threads 1";

size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("sweep: every combination a run with its own log; report reads the folder", "[sweep]") {
  ssm_test::TempDir tmp("ssm_test_sweep");
  ssm_test::Run r = run_ssmhost(tmp.path, kSweep + " --out out --jobs 2 --format csv");
  INFO(r.out << "\n---\n" << r.err);
  REQUIRE(r.status == 0);
  const char* names[] = {"zoh-seq_len8", "zoh-seq_len16", "bilinear-seq_len8", "bilinear-seq_len16"};
  for (const char* n : names) {
    REQUIRE(fs::exists(tmp.path / "out" / (std::string(n) + ".h5")));
    CHECK(fs::exists(tmp.path / "out" / (std::string(n) + ".out")));
  }
  ssmhost::RunLogReader third = ssmhost::RunLogReader::open((tmp.path / "out/bilinear-seq_len8.h5").string());
  CHECK(third.config().at("disc") == "bilinear");
  CHECK(third.config().at("seq_len") == "8");
  CHECK(third.finished());
  CHECK(lines(r.out) == 5);  // the final table: header + 4 rows
  r = run_ssmhost(tmp.path, "report out --format csv");
  REQUIRE(r.status == 0);
  CHECK(lines(r.out) == 5);
  // Again: every run is complete, nothing runs.
  r = run_ssmhost(tmp.path, kSweep + " --out out");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("already complete, skipped"));
  CHECK_THAT(r.err, Contains("4 skipped"));
}

TEST_CASE("sweep --count, --dry-run and --index (job arrays)", "[sweep]") {
  ssm_test::TempDir tmp("ssm_test_sweep_index");
  ssm_test::Run r = run_ssmhost(tmp.path, kSweep + " --count");
  REQUIRE(r.status == 0);
  CHECK(r.out == "4\n");
  r = run_ssmhost(tmp.path, kSweep + " --out out --dry-run");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("4 configurations"));
  CHECK_THAT(r.out, Contains("--disc bilinear --seq-len 16"));
  CHECK_THAT(r.out, Contains("--log out/bilinear-seq_len16.h5"));
  CHECK(!fs::exists(tmp.path / "out"));
  // A list-valued option, or --fixed K=V, is passed as it is, not swept.
  r = run_ssmhost(tmp.path, kSweep + " --out out --dry-run --eval-seq-len 16,32 --fixed init=inv,x");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("4 configurations"));
  CHECK_THAT(r.out, Contains("--eval-seq-len 16,32"));
  CHECK_THAT(r.out, Contains("--init inv,x"));
  r = run_ssmhost(tmp.path, kSweep + " --out out --index 2");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(fs::exists(tmp.path / "out/bilinear-seq_len8.h5"));
  CHECK(!fs::exists(tmp.path / "out/zoh-seq_len8.h5"));
  r = run_ssmhost(tmp.path, kSweep + " --out out --index 4");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--index 4 is out of range: this sweep has 4 configurations (0..3"));
  r = run_ssmhost(tmp.path, kSweep);
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--out"));
  // A value given twice is one configuration.
  r = run_ssmhost(tmp.path, kSweep + " --seed 1,1,2 --count");
  CHECK(r.out == "8\n");
}

TEST_CASE("sweep: a failing configuration is reported, the others run", "[sweep]") {
  ssm_test::TempDir tmp("ssm_test_sweep_fail");
  ssm_test::Run r = run_ssmhost(
      tmp.path, "sweep --layer s4d --task copy --n-tokens 2 --vocab 5 --eval-size 32 --d-model 8 --n-layers 1"
                " --batch-size 4 --steps 5 --eval-every 5 --threads 1 --d-state 3,4 --out out");
  INFO(r.out << "\n---\n" << r.err);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("d_state3: FAILED (exit status 1)"));
  CHECK_THAT(r.err, Contains("must be even"));
  CHECK_THAT(r.err, Contains("1 failed"));
  CHECK(fs::exists(tmp.path / "out/d_state4.h5"));
  CHECK(ssmhost::RunLogReader::open((tmp.path / "out/d_state4.h5").string()).finished());
}

TEST_CASE("sweep again: interrupted runs resume from their checkpoints, --force starts over", "[sweep]") {
  ssm_test::TempDir tmp("ssm_test_sweep_resume");
  const std::string sweep =
      "sweep --layer s4d --disc zoh,bilinear --task copy --n-tokens 2 --vocab 5 --eval-size 32 --d-model 8"
      " --n-layers 1 --d-state 4 --batch-size 4 --steps 10 --eval-every 5 --threads 1 --out out";
  ssm_test::Run r = run_ssmhost(tmp.path, sweep + " --stop-at 5 --format csv");  // as if Slurm stopped them
  INFO(r.out << "\n---\n" << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("interrupted"));
  r = run_ssmhost(tmp.path, sweep + " --format csv");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("zoh: resumed from its checkpoint"));
  CHECK_THAT(r.err, Contains("2 resumed"));
  ssmhost::RunLogReader log = ssmhost::RunLogReader::open((tmp.path / "out/zoh.h5").string());
  CHECK(log.finished());
  CHECK(log.rows("train") == 10);  // one log: the first 5 steps and the resumed 5
  CHECK(log.summary_text().at("status") == "completed");
  r = run_ssmhost(tmp.path, sweep + " --force");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("zoh: started again"));
}
