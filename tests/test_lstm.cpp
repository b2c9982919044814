// The lstm layer plugin through the host registry: forward against a direct
// evaluation of the cell, every gradient against finite differences
// (float64), step mode against forward, causality, float32 against float64,
// initial values and hints, option errors; and a small model that learns
// the copy task.
#include <catch2/catch.hpp>

#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "registry.hpp"
#include "runlog.hpp"
#include "layer_harness.hpp"
#include "test_support.hpp"

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

using ssm_test::Harness;
using ssm_test::max_rel_diff;
using ssm_test::widen;



double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

}  // namespace

TEST_CASE("lstm forward is the LSTM cell run over the sequence", "[lstm]") {
  const int64_t B = 2, L = 6, H = 3;
  Harness<double> hs("lstm", {{"d_model", "3"}});
  std::vector<double> x = ssm_test::random_vector(B * L * H, 3);
  const std::vector<double> y = hs.forward(x, B, L, false);
  const auto &Wih = hs.param("W_ih"), &Whh = hs.param("W_hh"), &bias = hs.param("b");
  std::vector<double> want(y.size());
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> h(H, 0.0), c(H, 0.0);
    for (int64_t t = 0; t < L; ++t) {
      std::vector<double> z(4 * H);
      for (int64_t g = 0; g < 4 * H; ++g) {
        z[g] = bias[g];
        for (int64_t k = 0; k < H; ++k) z[g] += Wih[g * H + k] * x[(b * L + t) * H + k] + Whh[g * H + k] * h[k];
      }
      for (int64_t k = 0; k < H; ++k) {
        const double i = sigmoid(z[k]), f = sigmoid(z[H + k]), g = std::tanh(z[2 * H + k]), o = sigmoid(z[3 * H + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * std::tanh(c[k]);
        want[(b * L + t) * H + k] = h[k];
      }
    }
  }
  CHECK(max_rel_diff(y, want) < 1e-13);
}

TEST_CASE("lstm gradients match finite differences (float64)", "[lstm]") {
  for (std::string forget_bias : {"0", "1"}) {
    SECTION("forget_bias " + forget_bias) {
      Harness<double> hs("lstm", {{"d_model", "4"}, {"forget_bias", forget_bias}});
      hs.check_all_gradients(3, 9, 21, "lstm");
    }
  }
  SECTION("one token, one sequence") {
    Harness<double> hs("lstm", {{"d_model", "2"}});
    hs.check_all_gradients(1, 1, 31, "lstm L=1");
  }
}

TEST_CASE("lstm step mode equals forward; float32 agrees with float64", "[lstm]") {
  const int64_t B = 3, L = 40, H = 5;
  const ssmhost::KV cfg{{"d_model", "5"}};
  Harness<double> hd("lstm", cfg);
  std::vector<double> x = ssm_test::random_vector(B * L * H, 4), dy = ssm_test::random_vector(B * L * H, 5);
  CHECK(max_rel_diff(hd.steps(x, B, L), hd.forward(x, B, L, false)) < 1e-13);

  Harness<float> hf("lstm", cfg);
  for (size_t i = 0; i < hd.values.size(); ++i) std::copy(hd.values[i].begin(), hd.values[i].end(), hf.values[i].begin());
  for (size_t i = 0; i < hd.values.size(); ++i) std::copy(hf.values[i].begin(), hf.values[i].end(), hd.values[i].begin());
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
  CHECK(max_rel_diff(widen(hf.forward(xf, B, L, true)), hd.forward(x, B, L, true)) < 1e-5);
  CHECK(max_rel_diff(widen(hf.backward(dyf, B, L)), hd.backward(dy, B, L)) < 1e-4);
  for (size_t i = 0; i < hd.grads.size(); ++i) {
    INFO(hd.info[i].name);
    CHECK(max_rel_diff(widen(hf.grads[i]), hd.grads[i]) < 1e-4);
  }
}

TEST_CASE("lstm is causal: y_t depends on x_s for s <= t only", "[lstm]") {
  const int64_t B = 1, L = 12, H = 4;
  Harness<double> hs("lstm", {{"d_model", "4"}});
  std::vector<double> x = ssm_test::random_vector(B * L * H, 6);
  const std::vector<double> y = hs.forward(x, B, L, false);
  x[7 * H + 2] += 1.0;
  const std::vector<double> y2 = hs.forward(x, B, L, false);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t h = 0; h < H; ++h) {
      INFO("t " << t << " h " << h);
      if (t < 7) CHECK(y2[t * H + h] == y[t * H + h]);
    }
  CHECK(y2[7 * H] != y[7 * H]);
}

TEST_CASE("lstm parameters: shapes, PyTorch's init plus the forget bias", "[lstm]") {
  Harness<double> hs("lstm", {{"d_model", "32"}, {"forget_bias", "1.5"}});
  REQUIRE(hs.info.size() == 3);
  CHECK(hs.info[0].name == "W_ih");
  CHECK(hs.info[0].shape == std::vector<int64_t>{128, 32});
  CHECK(hs.info[1].name == "W_hh");
  CHECK(hs.info[1].shape == std::vector<int64_t>{128, 32});
  CHECK(hs.info[2].name == "b");
  CHECK(hs.info[2].shape == std::vector<int64_t>{128});
  CHECK(hs.info[2].flags == SSM_PARAM_NO_WEIGHT_DECAY);
  const double bound = 1 / std::sqrt(32.0);
  for (const char* name : {"W_ih", "W_hh"}) {
    const auto& w = hs.param(name);
    CHECK(*std::max_element(w.begin(), w.end()) <= bound);
    CHECK(*std::min_element(w.begin(), w.end()) >= -bound);
  }
  const auto& b = hs.param("b");
  for (int64_t k = 0; k < 128; ++k) {
    const double shift = (k >= 32 && k < 64) ? 1.5 : 0.0;  // gate order i, f, g, o
    CHECK(std::abs(b[k] - shift) <= bound);
  }
}

TEST_CASE("lstm rejects misuse with clear messages", "[lstm]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(registry().create_layer("lstm", {{"d_model", "0"}}), Contains("d_model"));
  Harness<double> hs("lstm", {{"d_model", "3"}});
  std::vector<double> dy(2 * 4 * 3);
  CHECK_THROWS_WITH(hs.backward(dy, 2, 4), Contains("training forward"));
  std::vector<double> x(2 * 4 * 5);
  ssm::View vx(x.data(), {2, 4, 5}), vy(x.data(), {2, 4, 5});
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 7, 0);
  CHECK_THROWS_WITH(hs.layer->forward(&ctx, hs.value_ptrs.data(), vx.get(), vy.get()), Contains("x"));
}

TEST_CASE("a small LSTM model learns the copy task", "[lstm][learning]") {
  ssm_test::TempDir dir("ssm_test_lstm");
  // Chance is 1/(V-2) = 0.25; seeds 0-5 reach 0.89-1.0 by step 1200 (about 1.5 s).
  auto r = ssm_test::run_ssmhost(dir.path,
                                 "--layer lstm --task copy --copy-len 8 --n-tokens 4 --vocab 6 --d-model 32 "
                                 "--n-layers 1 --batch-size 16 --lr 0.01 --warmup 20 --steps 1200 --eval-every 400 "
                                 "--threads 1 --quiet --log copy.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto log = ssmhost::RunLogReader::open((dir.path / "copy.h5").string());
  CHECK(log.summary_numbers().at("best_metric") >= 0.7);
  CHECK(log.column("train", "loss").back() < 0.5 * log.column("train", "loss").front());
}
