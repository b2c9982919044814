// The sine forecasting task (seed 004, docs/tasks.md): the waves as defined,
// determinism, option errors, and a small S4D model that forecasts far
// better than predicting zero.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/sdk.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"

using Catch::Matchers::Contains;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

struct Batch {
  std::vector<float> x, y;
};

Batch fetch(const ssmhost::TaskObject& t, int split, uint64_t seed, uint64_t index, int64_t B) {
  const ssm_task_info i = t.info();
  Batch b{std::vector<float>(B * i.seq_len), std::vector<float>(B * i.n_out)};
  ssm::View vx(b.x.data(), {B, i.seq_len, 1}), vy(b.y.data(), {B, 1, i.n_out});
  t.batch(split, seed, index, B, vx.get(), vy.get(), nullptr);
  return b;
}

}  // namespace

TEST_CASE("sine: noisy samples in, the clean continuation out", "[sine]") {
  auto task = registry().create_task("sine", {{"sine_len", "40"}, {"horizon", "5"}, {"noise", "0"}});
  const ssm_task_info i = task->info();
  CHECK(i.input_kind == SSM_INPUT_REAL);
  CHECK(i.in_channels == 1);
  CHECK(i.seq_len == 40);
  CHECK(i.n_out == 5);
  CHECK(i.readout == SSM_READOUT_LAST);
  CHECK(i.loss == SSM_LOSS_MSE);
  CHECK(i.metric == SSM_METRIC_MSE);
  const Batch b = fetch(*task, SSM_SPLIT_TRAIN, 1, 0, 64);
  for (int64_t r = 0; r < 64; ++r) {
    const float* x = b.x.data() + r * 40;
    const float* y = b.y.data() + r * 5;
    // Without noise, s(t+1) = 2 cos(w) s(t) - s(t-1) for every t: one sine, continued by y.
    std::vector<double> s(x, x + 40);
    s.insert(s.end(), y, y + 5);
    const double c = (s[2] + s[0]) / (2 * s[1]);
    for (size_t t = 2; t < s.size(); ++t) CHECK(s[t] == Approx(2 * c * s[t - 1] - s[t - 2]).margin(1e-4));
    double peak = 0;
    for (double v : s) peak = std::max(peak, std::fabs(v));
    CHECK(peak <= 1.5 + 1e-6);
  }
  // Noise goes on the input only.
  auto noisy = registry().create_task("sine", {{"sine_len", "40"}, {"horizon", "5"}, {"noise", "0.5"}});
  const Batch n = fetch(*noisy, SSM_SPLIT_TRAIN, 1, 0, 64);
  CHECK(n.y == b.y);
  CHECK(n.x != b.x);
  // Pure, batch-size independent, other seeds other waves.
  CHECK(fetch(*task, SSM_SPLIT_TEST, 4, 3, 8).x == fetch(*task, SSM_SPLIT_TEST, 4, 3, 8).x);
  CHECK(fetch(*task, SSM_SPLIT_TEST, 4, 3, 8).x != fetch(*task, SSM_SPLIT_TEST, 5, 3, 8).x);
  const Batch big = fetch(*task, SSM_SPLIT_TRAIN, 4, 1, 8), small = fetch(*task, SSM_SPLIT_TRAIN, 4, 3, 4);
  CHECK(std::vector<float>(big.x.begin() + 4 * 40, big.x.end()) == small.x);
  CHECK(registry().create_task("sine", {{"seq_len", "20"}})->info().seq_len == 20);
}

TEST_CASE("sine: bad options are errors naming them", "[sine][errors]") {
  CHECK_THROWS_WITH(registry().create_task("sine", {{"horizon", "0"}}), Contains("horizon"));
  CHECK_THROWS_WITH(registry().create_task("sine", {{"freq_max", "0.6"}}), Contains("freq_max"));
  CHECK_THROWS_WITH(registry().create_task("sine", {{"freq_min", "0.2"}, {"freq_max", "0.1"}}), Contains("freq_min"));
  CHECK_THROWS_WITH(registry().create_task("sine", {{"amp_min", "2"}}), Contains("amp_min"));
  CHECK_THROWS_WITH(registry().create_task("sine", {{"noise", "-1"}}), Contains("noise"));
  auto task = registry().create_task("sine", {{"sine_len", "8"}, {"horizon", "2"}});
  std::vector<float> x(16), y(4);
  ssm::View vx(x.data(), {2, 8, 1}), vy(y.data(), {2, 1, 3});
  CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 2, vx.get(), vy.get(), nullptr), Contains("(2, 1, 2)"));
}

TEST_CASE("a small S4D model forecasts sine waves", "[sine][learning]") {
  ssm_test::TempDir dir("ssm_sine");
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task sine --sine-len 64 --horizon 8 --d-model 32 --n-layers 2 --d-state 16"
                " --batch-size 32 --lr 0.005 --steps 400 --eval-every 200 --threads 1 --quiet --log s.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "s.h5").string());
  // Predicting zero scores the mean square of the targets, about 0.54 here.
  auto task = registry().create_task("sine", {{"sine_len", "64"}, {"horizon", "8"}});
  const Batch b = fetch(*task, SSM_SPLIT_TEST, 1234, 0, 512);
  double zero = 0;
  for (float v : b.y) zero += double(v) * v;
  zero /= static_cast<double>(b.y.size());
  const double mse = log.summary_numbers().at("final_metric");
  INFO("model MSE " << mse << ", predicting zero " << zero);
  CHECK(log.metric_name() == "mse");
  CHECK(mse < 0.25 * zero);
}
