// `ssmhost bench`: every combination measured in its own process, written
// to a bench file that `report` and `plot` read; a failing combination is
// recorded with its error while the others still run.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssm_test::run_ssmhost;

namespace {

const std::string kSmall =
    "bench --seq-len 16,32 --batch-size 2 --d-model 8 --d-state 4 --n-layers 1 --threads 1 --steps 2 --warmup 0";

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("bench: training step, inference and memory per combination, in a bench file", "[bench]") {
  ssm_test::TempDir tmp("ssm_test_bench");
  ssm_test::Run r = run_ssmhost(tmp.path, kSmall + " --layer s4d,s4db --out b.h5 --format csv");
  INFO(r.out << "\n---\n" << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("[4/4]"));
  CHECK_THAT(r.out, Contains("infer_ms"));
  ssmhost::LoadResult got = ssmhost::load_rows({(tmp.path / "b.h5").string()});
  REQUIRE(got.problems.empty());
  REQUIRE(got.rows.size() == 4);
  const char* layers[] = {"s4d", "s4d", "s4db", "s4db"};
  const char* lengths[] = {"16", "32", "16", "32"};
  for (size_t i = 0; i < 4; ++i) {
    const ssmhost::Row& row = got.rows[i];
    CHECK(row.kind == "bench");
    CHECK(row.get("layer").format() == layers[i]);
    CHECK(row.get("seq_len").format() == lengths[i]);
    CHECK(row.get("status").format() == "bench");
    CHECK(row.get("step_ms").number > 0);
    CHECK(row.get("infer_ms").number > 0);
    CHECK(row.get("tokens_per_s").number > 0);
    CHECK(row.get("peak_mb").number > 1);
    CHECK(row.get("params").number > 100);
    CHECK(row.get("steps").number == 2);
  }
  // report reads it (with run logs too), plot draws time against length, one line per layer.
  r = run_ssmhost(tmp.path, "report b.h5 --sort -seq_len --format csv");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("b.h5#1,s4d"));
  r = run_ssmhost(tmp.path, "plot b.h5 --out t.svg");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string svg = read(tmp.path / "t.svg");
  size_t paths = 0;
  for (size_t p = 0; (p = svg.find("<path ", p)) != std::string::npos; ++p) ++paths;
  CHECK(paths == 2);
  CHECK_THAT(svg, Contains("training step (ms)"));
  CHECK_THAT(svg, Contains("layer=s4db"));
  r = run_ssmhost(tmp.path, "plot b.h5 --metric peak_mb --out m.svg");
  CHECK(r.status == 0);
  CHECK_THAT(read(tmp.path / "m.svg"), Contains("peak memory (MiB)"));
}

TEST_CASE("bench: a failing combination is recorded, the others still measured", "[bench]") {
  ssm_test::TempDir tmp("ssm_test_bench_fail");
  // d_state 3 is refused by s4d (it must be even); 4 works.
  ssm_test::Run r = run_ssmhost(
      tmp.path, "bench --layer s4d --seq-len 16 --d-state 3,4 --batch-size 2 --d-model 8 --n-layers 1 --steps 1 "
                "--warmup 0 --threads 1 --out f.h5 --quiet");
  INFO(r.out << "\n---\n" << r.err);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("d_state"));  // the reason, from the measuring process
  ssmhost::LoadResult got = ssmhost::load_rows({(tmp.path / "f.h5").string()});
  REQUIRE(got.rows.size() == 2);
  CHECK(got.rows[0].get("status").format() == "failed");
  CHECK(got.rows[1].get("status").format() == "bench");
  REQUIRE(got.problems.size() == 1);
  CHECK_THAT(got.problems[0].message, Contains("must be even"));
  // Bad arguments fail before anything runs.
  r = run_ssmhost(tmp.path, "bench --layer nosuchlayer --out g.h5");
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("nosuchlayer"));
  CHECK(!fs::exists(tmp.path / "g.h5"));
  r = run_ssmhost(tmp.path, "bench --seq-len 0 --out g.h5");
  CHECK(r.status == 2);
  r = run_ssmhost(tmp.path, "bench --colour red");
  CHECK(r.status == 2);
}
