// The h3 layer plugin through the host registry: forward against a direct
// evaluation (in-projection, the shift SSM as an explicit FIR, the per-head
// outer product laid out for the inner layer, the contraction with q, the
// output Linear) with the inner layer run on its own; every gradient against
// finite differences (float64) with several inner layers and head sizes;
// step mode against forward; float32 against float64; parameters, hints and
// the inner layer's width; option errors; and a small model that learns the
// copy task.
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



// Moves every parameter of h3 itself off its initial value (B = e_1, zero
// biases would hide terms), leaving the inner layer's as initialised.
void perturb(Harness<double>& hs, uint32_t seed) {
  for (const char* name : {"W_qkv", "b_qkv", "shift_B", "shift_C", "D_k", "W_out", "b_out"}) {
    auto& v = hs.param(name);
    const auto noise = ssm_test::random_vector(v.size(), seed++, 0.3);
    for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
  }
}

// h3's y computed step by step from its definition, with the inner layer a
// separate instance of `inner` (d_model H dh) given h3's inner.* values.
std::vector<double> reference(Harness<double>& hs, const std::string& inner, int64_t N, int64_t dh,
                              const std::vector<double>& x, int64_t B, int64_t L) {
  const int64_t H = hs.H, nh = H / dh, Hi = H * dh;
  const auto &W = hs.param("W_qkv"), &bw = hs.param("b_qkv"), &Bs = hs.param("shift_B"), &Cs = hs.param("shift_C"),
             &Dk = hs.param("D_k"), &Wo = hs.param("W_out"), &bo = hs.param("b_out");
  std::vector<double> q(B * L * H), k(B * L * H), v(B * L * H);
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t j = 0; j < 3 * H; ++j) {
      double a = bw[j];
      for (int64_t m = 0; m < H; ++m) a += W[j * H + m] * x[r * H + m];
      (j < H ? q : j < 2 * H ? k : v)[r * H + j % H] = a;
    }
  // The shift SSM as its recurrence: state (N), x <- shift_right(x) + B k, k~ = C x + D k.
  std::vector<double> kt(B * L * H);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> s(N, 0.0);
      for (int64_t t = 0; t < L; ++t) {
        const double u = k[(b * L + t) * H + h];
        for (int64_t n = N - 1; n > 0; --n) s[n] = s[n - 1];
        s[0] = 0;
        double out = Dk[h] * u;
        for (int64_t n = 0; n < N; ++n) {
          s[n] += Bs[h * N + n] * u;
          out += Cs[h * N + n] * s[n];
        }
        kt[(b * L + t) * H + h] = out;
      }
    }
  std::vector<double> kv(B * L * Hi), sv(B * L * Hi);
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t i = 0; i < dh; ++i)
        for (int64_t j = 0; j < dh; ++j) kv[r * Hi + (h * dh + i) * dh + j] = kt[r * H + h * dh + i] * v[r * H + h * dh + j];
  // The inner layer alone, with h3's inner.* parameters.
  auto layer = ssm_test::plugin_registry().create_layer(inner, {{"d_model", std::to_string(Hi)}, {"d_state", std::to_string(N)}});
  const auto info = layer->params();
  std::vector<ssm::View> views;
  std::vector<DLTensor*> ptrs;
  const size_t first = hs.index("inner." + info[0].name);
  REQUIRE(hs.info.size() == first + info.size());
  for (size_t i = 0; i < info.size(); ++i) {
    REQUIRE(hs.info[first + i].name == "inner." + info[i].name);
    REQUIRE(hs.info[first + i].shape == info[i].shape);
    views.emplace_back(hs.values[first + i].data(), info[i].shape);
  }
  for (auto& vw : views) ptrs.push_back(vw.get());
  ssm::View vkv(kv.data(), {B, L, Hi}), vs(sv.data(), {B, L, Hi});
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 7, 0);
  layer->forward(&ctx, ptrs.data(), vkv.get(), vs.get());
  std::vector<double> o(B * L * H), y(B * L * H);
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t j = 0; j < dh; ++j) {
        double a = 0;
        for (int64_t i = 0; i < dh; ++i) a += q[r * H + h * dh + i] * sv[r * Hi + (h * dh + i) * dh + j];
        o[r * H + j * nh + h] = a;
      }
  for (int64_t r = 0; r < B * L; ++r)
    for (int64_t j = 0; j < H; ++j) {
      double a = bo[j];
      for (int64_t m = 0; m < H; ++m) a += Wo[j * H + m] * o[r * H + m];
      y[r * H + j] = a;
    }
  return y;
}

}  // namespace

TEST_CASE("h3 forward: projections, shift SSM, per-head outer product through the inner layer, q, output",
          "[h3]") {
  const int64_t B = 2, L = 11;
  for (std::string inner : {"s4db", "lstm"}) {
    for (int64_t dh : {1, 2, 4}) {
      for (int64_t N : {4, 16}) {  // a FIR shorter and longer than the sequence
        Harness<double> hs("h3", {{"d_model", "4"}, {"d_state", std::to_string(N)}, {"head_dim", std::to_string(dh)},
                                  {"inner", inner}});
        perturb(hs, 3);
        std::vector<double> x = ssm_test::random_vector(B * L * 4, 5);
        INFO(inner << " head_dim " << dh << " d_state " << N);
        CHECK(max_rel_diff(hs.forward(x, B, L, false), reference(hs, inner, N, dh, x, B, L)) < 1e-12);
        CHECK(max_rel_diff(hs.forward(x, B, L, true), reference(hs, inner, N, dh, x, B, L)) < 1e-12);
      }
    }
  }
}

TEST_CASE("h3 gradients match finite differences (float64)", "[h3]") {
  for (std::string spec : {"s4db 1 4", "s4db 2 4", "s4dz 2 16", "lstm 2 4", "attention 1 4", "s4db 4 2"}) {
    SECTION(spec) {
      const auto sp1 = spec.find(' '), sp2 = spec.rfind(' ');
      const std::string inner = spec.substr(0, sp1), dh = spec.substr(sp1 + 1, sp2 - sp1 - 1), N = spec.substr(sp2 + 1);
      ssmhost::KV cfg{{"d_model", "4"}, {"d_state", N}, {"head_dim", dh}, {"inner", inner}};
      if (inner == "attention") cfg["n_heads"] = "2";
      Harness<double> hs("h3", cfg);
      perturb(hs, 7);
      hs.check_all_gradients(2, 9, 17, "h3 " + spec);
    }
  }
}

TEST_CASE("h3 step mode equals forward, with each inner layer", "[h3]") {
  const int64_t B = 2, L = 30;
  for (std::string spec : {"s4db 1", "s4db 2", "s4dz 4", "s4 1", "lstm 2", "attention 1", "gated_mlp 2"}) {
    const std::string inner = spec.substr(0, spec.find(' ')), dh = spec.substr(spec.find(' ') + 1);
    ssmhost::KV cfg{{"d_model", "4"}, {"d_state", "8"}, {"head_dim", dh}, {"inner", inner}};
    if (inner == "attention") cfg["n_heads"] = "2";
    Harness<double> hs("h3", cfg);
    perturb(hs, 11);
    std::vector<double> x = ssm_test::random_vector(B * L * 4, 4);
    INFO(spec);
    CHECK(max_rel_diff(hs.steps(x, B, L), hs.forward(x, B, L, false)) < 1e-10);
  }
}

TEST_CASE("h3 float32 agrees with float64", "[h3]") {
  const int64_t B = 2, L = 40, H = 8;
  const ssmhost::KV cfg{{"d_model", "8"}, {"d_state", "8"}, {"head_dim", "2"}};
  Harness<double> hd("h3", cfg);
  Harness<float> hf("h3", cfg);
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
}

TEST_CASE("h3 parameters: H3's initialisation, hints, the inner layer on H * head_dim channels", "[h3]") {
  Harness<double> hs("h3", {{"d_model", "16"}, {"d_state", "8"}, {"head_dim", "4"}});
  const std::vector<std::pair<std::string, std::vector<int64_t>>> own{
      {"W_qkv", {48, 16}}, {"b_qkv", {48}}, {"shift_B", {16, 8}}, {"shift_C", {16, 8}},
      {"D_k", {16}},       {"W_out", {16, 16}}, {"b_out", {16}}};
  REQUIRE(hs.info.size() > own.size());
  for (size_t i = 0; i < own.size(); ++i) {
    INFO(own[i].first);
    CHECK(hs.info[i].name == own[i].first);
    CHECK(hs.info[i].shape == own[i].second);
  }
  // shift_B: an SSM parameter (lr cap, no weight decay), initially e_1.
  CHECK(hs.info[2].flags == (SSM_PARAM_SSM | SSM_PARAM_NO_WEIGHT_DECAY));
  CHECK(hs.info[2].lr_max == 0.001);
  const auto& Bs = hs.param("shift_B");
  for (int64_t h = 0; h < 16; ++h)
    for (int64_t n = 0; n < 8; ++n) CHECK(Bs[h * 8 + n] == (n == 0 ? 1.0 : 0.0));
  const auto& Cs = hs.param("shift_C");
  CHECK(*std::max_element(Cs.begin(), Cs.end()) <= 1 / std::sqrt(8.0));
  CHECK(*std::min_element(Cs.begin(), Cs.end()) >= -1 / std::sqrt(8.0));
  // The default inner layer: s4d (bilinear) on 16 * 4 = 64 channels, its hints kept.
  CHECK(hs.info[7].name == "inner.log_dt");
  CHECK(hs.info[7].shape == std::vector<int64_t>{64});
  CHECK(hs.info[7].lr_max == 0.001);
  CHECK(hs.param("inner.W_out").size() == 2 * 64 * 64);
}

TEST_CASE("h3 rejects bad options", "[h3]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(registry().create_layer("h3", {{"d_model", "6"}, {"head_dim", "4"}}), Contains("head_dim"));
  CHECK_THROWS_WITH(registry().create_layer("h3", {{"inner", "no_such_layer"}}), Contains("no_such_layer"));
  CHECK_THROWS_WITH(registry().create_layer("h3", {{"lr_ssm", "-1"}}), Contains("lr_ssm"));
  Harness<double> hs("h3", {{"d_model", "4"}, {"d_state", "4"}});
  std::vector<double> dy(2 * 4 * 4);
  CHECK_THROWS_WITH(hs.backward(dy, 2, 4), Contains("training forward"));
}

TEST_CASE("a small H3 model learns the copy task", "[h3][learning]") {
  ssm_test::TempDir dir("ssm_test_h3");
  // Chance is 0.25; seeds 0-5 reach 0.93-0.99 by step 300 (about 0.5 s).
  auto r = ssm_test::run_ssmhost(dir.path,
                                 "--layer h3 --task copy --copy-len 16 --n-tokens 4 --vocab 6 --d-model 32 --d-state 16 "
                                 "--n-layers 1 --batch-size 16 --lr 0.01 --warmup 20 --steps 300 --eval-every 100 "
                                 "--threads 1 --quiet --log copy.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto log = ssmhost::RunLogReader::open((dir.path / "copy.h5").string());
  CHECK(log.summary_numbers().at("best_metric") >= 0.8);
}
