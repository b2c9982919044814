// `ssmhost plot`: SVG written directly (parses, one <path> per run, labels,
// legend), PNG through gnuplot (expected size, not blank), curves against
// step and time, results against an option, bad input, missing gnuplot.
// The charts are checked by tests/python/check_chart.py where python3 is
// there, and by plain text checks always.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "chart.hpp"
#include "runlog.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssm_test::run_ssmhost;

namespace {

const std::string kTiny =
    "--layer s4d --task copy --n-tokens 2 --vocab 5 --eval-size 64"
    " --d-model 16 --n-layers 1 --d-state 8 --batch-size 8 --quiet --threads 1 --steps 30 --eval-every 10";

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = 0; (p = s.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

// Debian's python3 (h5py, pandas live there), else whatever python3 is on PATH.
std::string python() {
  if (const char* p = std::getenv("SSM_PYTHON")) return p;
  return fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

int check_chart(const std::string& args) {
  const std::string cmd = python() + " '" SSM_TEST_SOURCE_DIR "/tests/python/check_chart.py' " + args;
  return std::system(cmd.c_str());
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Four runs: zoh and bilinear at two sequence lengths.
struct Runs {
  ssm_test::TempDir tmp{"ssm_test_plot"};
  Runs() {
    fs::create_directories(tmp.path / "runs");
    for (const char* disc : {"zoh", "bilinear"})
      for (const char* L : {"8", "16"}) {
        ssm_test::Run r = run_ssmhost(tmp.path, kTiny + " --disc " + disc + " --seq-len " + L + " --log runs/" +
                                                    disc + "-" + L + ".h5");
        INFO(r.err);
        REQUIRE(r.status == 0);
      }
  }
};

Runs& runs() {
  static Runs r;
  return r;
}

}  // namespace

TEST_CASE("plot --out FILE.svg: one path per run, axis labels, a legend from what differs", "[plot]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "plot runs --metric loss --smooth 5 --out loss.svg");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string svg = read(R.tmp.path / "loss.svg");
  CHECK(svg.rfind("<?xml", 0) == 0);
  CHECK(count(svg, "<path ") == 4);
  CHECK_THAT(svg, Contains("train loss (moving average of 5)"));
  CHECK_THAT(svg, Contains(">step</text>"));
  CHECK_THAT(svg, Contains("disc=bilinear seq_len=16"));  // legend: the options that differ
  CHECK_THAT(svg, !Contains("lr="));                      // not those that are the same
  CHECK(check_chart("svg '" + (R.tmp.path / "loss.svg").string() + "' 4") == 0);
}

TEST_CASE("plot: eval accuracy against training time, with units", "[plot]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "plot runs/zoh-8.h5 runs/bilinear-8.h5 --metric accuracy --x time --out acc.svg");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string svg = read(R.tmp.path / "acc.svg");
  CHECK(count(svg, "<path ") == 2);
  CHECK_THAT(svg, Contains("eval accuracy"));
  CHECK_THAT(svg, Contains("training time (s)"));
  CHECK_THAT(svg, Contains("disc=zoh"));
  CHECK(check_chart("svg '" + (R.tmp.path / "acc.svg").string() + "' 2") == 0);
  for (const char* m : {"lr", "grad_norm"}) {
    r = run_ssmhost(R.tmp.path, std::string("plot runs --metric ") + m + " --out m.svg");
    CHECK(r.status == 0);
    CHECK(count(read(R.tmp.path / "m.svg"), "<path ") == 4);
  }
}

TEST_CASE("plot --x seq_len: results against an option, one line per group", "[plot]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "plot runs --x seq_len --metric best --out best.svg");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string svg = read(R.tmp.path / "best.svg");
  CHECK(count(svg, "<path ") == 2);  // zoh and bilinear
  CHECK(count(svg, "<circle ") == 4);
  CHECK_THAT(svg, Contains("sequence length L"));
  CHECK_THAT(svg, Contains("best eval accuracy"));
  CHECK(check_chart("svg '" + (R.tmp.path / "best.svg").string() + "' 2") == 0);
}

TEST_CASE("plot --out FILE.png through gnuplot: the expected size, not blank", "[plot]") {
  Runs& R = runs();
  if (!have_gnuplot()) {
    WARN("gnuplot is not installed (Debian: gnuplot-nox; .ci/setup.sh installs it): PNG not checked");
    return;
  }
  ssm_test::Run r = run_ssmhost(R.tmp.path, "plot runs --metric accuracy --size 640x400 --title 'eval accuracy' --out acc.png");
  INFO(r.err);
  REQUIRE(r.status == 0);
  REQUIRE(fs::file_size(R.tmp.path / "acc.png") > 1000);
  const std::string png = read(R.tmp.path / "acc.png");
  REQUIRE(png.size() > 24);
  CHECK(png.compare(1, 3, "PNG") == 0);
  auto be32 = [&](size_t at) {
    return (static_cast<unsigned char>(png[at]) << 24) | (static_cast<unsigned char>(png[at + 1]) << 16) |
           (static_cast<unsigned char>(png[at + 2]) << 8) | static_cast<unsigned char>(png[at + 3]);
  };
  CHECK(be32(16) == 640);  // IHDR width, height
  CHECK(be32(20) == 400);
  CHECK(check_chart("png '" + (R.tmp.path / "acc.png").string() + "' 640 400") == 0);
}

TEST_CASE("plot: without gnuplot a PNG is a clear error; a run without the metric is named", "[plot]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "plot runs --out x.png");
  if (!have_gnuplot()) CHECK_THAT(r.err, Contains("gnuplot-nox"));
  setenv("SSM_GNUPLOT", "/nonexistent/gnuplot", 1);
  r = run_ssmhost(R.tmp.path, "plot runs --out y.png");
  unsetenv("SSM_GNUPLOT");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("gnuplot-nox"));
  CHECK(!fs::exists(R.tmp.path / "y.png"));
  // bpc: the copy task has none; every run is named, nothing to draw.
  r = run_ssmhost(R.tmp.path, "plot runs --metric bpc --out bpc.svg");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("zoh-8.h5: no bpc"));
  CHECK_THAT(r.err, Contains("nothing to draw"));
  // A bad file among good ones: named, the rest drawn, status 1.
  std::ofstream(R.tmp.path / "junk.h5") << "junk";
  r = run_ssmhost(R.tmp.path, "plot runs junk.h5 --out some.svg");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("junk.h5': not an HDF5 file"));
  CHECK(count(read(R.tmp.path / "some.svg"), "<path ") == 4);
  r = run_ssmhost(R.tmp.path, "plot runs --out chart.pdf");
  CHECK(r.status == 2);
  r = run_ssmhost(R.tmp.path, "plot --kernels runs/zoh-8.h5 --out k.svg");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("--log-kernels"));
}

TEST_CASE("--log-kernels records the layers' kernels; plot --kernels draws one line per block and channel", "[plot]") {
  ssm_test::TempDir tmp("ssm_test_kernels");
  // 2 blocks, d_model 16 (8 channels recorded), seq_len 12 (12 lags), evaluations at 10, 20, 30.
  ssm_test::Run r = run_ssmhost(tmp.path, "--layer s4dz --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 32"
                                          " --d-model 16 --n-layers 2 --d-state 8 --batch-size 8 --quiet --threads 1"
                                          " --steps 30 --eval-every 10 --log-kernels --log k.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  ssmhost::RunLogReader log = ssmhost::RunLogReader::open((tmp.path / "k.h5").string());
  const ssmhost::KernelHistory& k = log.kernels();
  CHECK(k.steps == std::vector<int64_t>{10, 20, 30});
  CHECK(k.layers == 2);
  CHECK(k.channels == 8);
  REQUIRE(k.length >= 1);
  REQUIRE(k.values.size() == 3u * 2 * 8 * static_cast<size_t>(k.length));
  for (double v : k.values) CHECK(std::isfinite(v));
  // The kernels train: step 10's differ from step 30's.
  const size_t per_step = k.values.size() / 3;
  CHECK(!std::equal(k.values.begin(), k.values.begin() + per_step, k.values.begin() + 2 * per_step));

  r = run_ssmhost(tmp.path, "plot --kernels k.h5 --out k.svg");
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string svg = read(tmp.path / "k.svg");
  CHECK(count(svg, "<path ") == 16);
  CHECK_THAT(svg, Contains("lag (tokens)") && Contains("block 1, channel 7") && Contains("at step 30"));
  r = run_ssmhost(tmp.path, "plot --kernels k.h5 --step 20 --out k20.svg");
  CHECK(r.status == 0);
  CHECK_THAT(read(tmp.path / "k20.svg"), Contains("at step 20"));
  r = run_ssmhost(tmp.path, "plot --kernels k.h5 --step 25 --out k25.svg");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("steps 10, 20, 30"));
  // A layer without a kernel: a warning, and no /kernels.
  r = run_ssmhost(tmp.path, "--layer lstm --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 32 --d-model 8"
                            " --n-layers 1 --batch-size 8 --quiet --threads 1 --steps 10 --eval-every 10 --log-kernels"
                            " --log l.h5");
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Contains("'lstm' has no convolution kernel"));
  CHECK(ssmhost::RunLogReader::open((tmp.path / "l.h5").string()).kernels().empty());
}

TEST_CASE("chart: nice ticks", "[plot]") {
  auto t = ssmhost::nice_ticks(0.03, 0.97, false);
  REQUIRE(t.size() >= 4);
  CHECK(t.front() == Approx(0.2));
  CHECK(t[1] - t[0] == Approx(0.2));
  auto l = ssmhost::nice_ticks(3, 4000, true);
  CHECK(l == std::vector<double>{10, 100, 1000});
  ssmhost::Chart c;
  c.series.push_back({"a", {1, 2, 3}, {1, NAN, 3}, false});
  const std::string svg = ssmhost::render_svg(c);
  CHECK(count(svg, "<path ") == 1);
  CHECK(count(svg, " M") == 1);  // the NaN broke the line in two pieces
}
