// The attention layer plugin through the host registry: forward against a
// direct evaluation (heads, RoPE, causal softmax), every gradient against
// finite differences (float64) over several blocks of queries, the
// key/value-cache step mode against forward, causality, a stable softmax at
// huge logits, float32 against float64, initial values, option errors; and
// a small model that learns the copy task.
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



// y of causal multi-head attention evaluated directly from the parameters.
std::vector<double> reference(Harness<double>& hs, const std::vector<double>& x, int64_t B, int64_t L, int64_t heads,
                              bool rope, double base = 10000) {
  const int64_t H = hs.H, dh = H / heads;
  const auto &Win = hs.param("W_in"), &bin = hs.param("b_in"), &Wout = hs.param("W_out"), &bout = hs.param("b_out");
  std::vector<double> qkv(B * L * 3 * H), o(B * L * H), y(B * L * H);
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t j = 0; j < 3 * H; ++j) {
      double v = bin[j];
      for (int64_t k = 0; k < H; ++k) v += Win[j * H + k] * x[r * H + k];
      qkv[r * 3 * H + j] = v;
    }
  if (rope)
    for (int64_t r = 0; r < B * L; ++r)
      for (int64_t part = 0; part < 2; ++part)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < dh / 2; ++j) {
            const double angle = double(r % L) * std::pow(base, -2.0 * j / dh);
            double* v = &qkv[r * 3 * H + part * H + h * dh + 2 * j];
            const double a = v[0], b = v[1];
            v[0] = a * std::cos(angle) - b * std::sin(angle);
            v[1] = a * std::sin(angle) + b * std::cos(angle);
          }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < L; ++t) {
        std::vector<double> w(t + 1);
        double total = 0;
        for (int64_t s = 0; s <= t; ++s) {
          double d = 0;
          for (int64_t e = 0; e < dh; ++e) d += qkv[(b * L + t) * 3 * H + h * dh + e] * qkv[(b * L + s) * 3 * H + H + h * dh + e];
          w[s] = std::exp(d / std::sqrt(double(dh)));
          total += w[s];
        }
        for (int64_t e = 0; e < dh; ++e) {
          double v = 0;
          for (int64_t s = 0; s <= t; ++s) v += w[s] / total * qkv[(b * L + s) * 3 * H + 2 * H + h * dh + e];
          o[(b * L + t) * H + h * dh + e] = v;
        }
      }
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t j = 0; j < H; ++j) {
      double v = bout[j];
      for (int64_t k = 0; k < H; ++k) v += Wout[j * H + k] * o[r * H + k];
      y[r * H + j] = v;
    }
  return y;
}

// Biases off zero, so that their gradients and the reference see them.
template <typename T>
void perturb(Harness<T>& hs, uint32_t seed) {
  for (const char* name : {"b_in", "b_out"}) {
    auto& v = hs.param(name);
    const auto noise = ssm_test::random_vector(v.size(), seed++, 0.3);
    for (size_t i = 0; i < v.size(); ++i) v[i] += static_cast<T>(noise[i]);
  }
}

}  // namespace

TEST_CASE("attention forward is causal multi-head softmax attention (with and without RoPE)", "[attention]") {
  const int64_t B = 2, L = 45, H = 8;  // L > 32: several blocks of queries
  for (int heads : {1, 2, 4}) {
    for (bool rope : {true, false}) {
      Harness<double> hs("attention", {{"d_model", "8"}, {"n_heads", std::to_string(heads)},
                                        {"rope", rope ? "true" : "false"}, {"rope_base", "100"}});
      perturb(hs, 5);
      std::vector<double> x = ssm_test::random_vector(B * L * H, 3);
      INFO("heads " << heads << " rope " << rope);
      CHECK(max_rel_diff(hs.forward(x, B, L, false), reference(hs, x, B, L, heads, rope, 100)) < 1e-12);
      CHECK(max_rel_diff(hs.forward(x, B, L, true), reference(hs, x, B, L, heads, rope, 100)) < 1e-12);
    }
  }
}

TEST_CASE("attention gradients match finite differences (float64)", "[attention]") {
  for (std::string spec : {"1 true", "2 true", "2 false", "4 true"}) {
    SECTION(spec) {
      const std::string heads = spec.substr(0, 1), rope = spec.substr(2);
      Harness<double> hs("attention", {{"d_model", "8"}, {"n_heads", heads}, {"rope", rope}});
      perturb(hs, 9);
      // Two blocks of queries. Step 1e-5: with 1e-6 the rounding of the loss
      // (a sum of B L H terms) reaches 1e-6 of the smallest gradients.
      hs.check_all_gradients(2, 37, 41, "attention " + spec, 1e-5);
    }
  }
}

TEST_CASE("attention step mode (a growing key/value cache) equals forward", "[attention]") {
  const int64_t B = 2, L = 70, H = 8;
  for (bool rope : {true, false}) {
    Harness<double> hs("attention", {{"d_model", "8"}, {"n_heads", "2"}, {"rope", rope ? "true" : "false"}});
    perturb(hs, 13);
    std::vector<double> x = ssm_test::random_vector(B * L * H, 4);
    INFO("rope " << rope);
    CHECK(max_rel_diff(hs.steps(x, B, L), hs.forward(x, B, L, false)) < 1e-12);
  }
}

TEST_CASE("attention is causal, and its softmax stays finite at huge logits", "[attention]") {
  const int64_t B = 1, L = 40, H = 8;
  Harness<double> hs("attention", {{"d_model", "8"}, {"n_heads", "2"}});
  std::vector<double> x = ssm_test::random_vector(B * L * H, 6);
  const std::vector<double> y = hs.forward(x, B, L, false);
  x[33 * H + 1] += 1.0;
  const std::vector<double> y2 = hs.forward(x, B, L, false);
  for (int64_t i = 0; i < 33 * H; ++i) CHECK(y2[i] == y[i]);
  CHECK(y2[33 * H] != y[33 * H]);

  // q and k scaled by 1e4: logits of order 1e8, where exp overflows without
  // the max subtraction. The softmax becomes a hard max; forward, backward
  // and step stay finite and agree.
  auto& Win = hs.param("W_in");
  for (int64_t i = 0; i < 2 * H * H; ++i) Win[i] *= 1e4;
  for (bool training : {false, true}) {
    const std::vector<double> yh = hs.forward(x, B, L, training);
    for (double v : yh) REQUIRE(std::isfinite(v));
    CHECK(max_rel_diff(hs.steps(x, B, L), yh) < 1e-9);
  }
  std::vector<double> dy = ssm_test::random_vector(B * L * H, 7);
  const std::vector<double> dx = hs.backward(dy, B, L);
  for (double v : dx) CHECK(std::isfinite(v));
  for (const auto& g : hs.grads)
    for (double v : g) CHECK(std::isfinite(v));
}

TEST_CASE("attention float32 agrees with float64", "[attention]") {
  const int64_t B = 2, L = 50, H = 8;
  const ssmhost::KV cfg{{"d_model", "8"}, {"n_heads", "2"}};
  Harness<double> hd("attention", cfg);
  Harness<float> hf("attention", cfg);
  perturb(hd, 3);
  for (size_t i = 0; i < hd.values.size(); ++i) std::copy(hd.values[i].begin(), hd.values[i].end(), hf.values[i].begin());
  for (size_t i = 0; i < hd.values.size(); ++i) std::copy(hf.values[i].begin(), hf.values[i].end(), hd.values[i].begin());
  std::vector<double> x = ssm_test::random_vector(B * L * H, 5), dy = ssm_test::random_vector(B * L * H, 6);
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
  CHECK(max_rel_diff(widen(hf.forward(xf, B, L, true)), hd.forward(x, B, L, true)) < 1e-5);
  CHECK(max_rel_diff(widen(hf.backward(dyf, B, L)), hd.backward(dy, B, L)) < 1e-4);
  for (size_t i = 0; i < hd.grads.size(); ++i) {
    INFO(hd.info[i].name);
    CHECK(max_rel_diff(widen(hf.grads[i]), hd.grads[i]) < 1e-4);
  }
  CHECK(max_rel_diff(widen(hf.steps(xf, B, L)), hd.forward(x, B, L, false)) < 1e-5);
}

TEST_CASE("attention parameters: PyTorch's MultiheadAttention init", "[attention]") {
  Harness<double> hs("attention", {{"d_model", "32"}, {"n_heads", "4"}});
  REQUIRE(hs.info.size() == 4);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expect{
      {"W_in", {96, 32}}, {"b_in", {96}}, {"W_out", {32, 32}}, {"b_out", {32}}};
  for (size_t i = 0; i < 4; ++i) {
    CHECK(hs.info[i].name == expect[i].first);
    CHECK(hs.info[i].shape == expect[i].second);
  }
  const auto& Win = hs.param("W_in");
  const double xavier = std::sqrt(6.0 / (32 + 96));
  CHECK(*std::max_element(Win.begin(), Win.end()) <= xavier);
  CHECK(*std::max_element(Win.begin(), Win.end()) > 0.8 * xavier);
  CHECK(*std::min_element(Win.begin(), Win.end()) >= -xavier);
  for (const char* b : {"b_in", "b_out"})
    for (double v : hs.param(b)) CHECK(v == 0.0);
}

TEST_CASE("attention rejects bad options", "[attention]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(registry().create_layer("attention", {{"d_model", "8"}, {"n_heads", "3"}}), Contains("n_heads"));
  CHECK_THROWS_WITH(registry().create_layer("attention", {{"d_model", "6"}, {"n_heads", "2"}}), Contains("rope"));
  CHECK_NOTHROW(registry().create_layer("attention", {{"d_model", "6"}, {"n_heads", "2"}, {"rope", "false"}}));
  Harness<double> hs("attention", {{"d_model", "4"}, {"n_heads", "2"}});
  std::vector<double> dy(2 * 4 * 4);
  CHECK_THROWS_WITH(hs.backward(dy, 2, 4), Contains("training forward"));
}

TEST_CASE("a small attention model learns the copy task", "[attention][learning]") {
  ssm_test::TempDir dir("ssm_test_attention");
  // Chance is 0.25; seeds 0-5 reach 1.0 by step 100 (RoPE gives the fixed
  // lag of plain copying as a relative position).
  auto r = ssm_test::run_ssmhost(dir.path,
                                 "--layer attention --task copy --copy-len 16 --n-tokens 4 --vocab 6 --d-model 32 "
                                 "--n-layers 1 --batch-size 16 --lr 0.01 --warmup 20 --steps 300 --eval-every 100 "
                                 "--threads 1 --quiet --log copy.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto log = ssmhost::RunLogReader::open((dir.path / "copy.h5").string());
  CHECK(log.summary_numbers().at("best_metric") >= 0.9);
}
