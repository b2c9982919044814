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
#include "test_support.hpp"

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

// One layer with its parameters and gradients in host buffers of type T.
template <typename T>
struct Harness {
  std::unique_ptr<ssmhost::LayerObject> layer;
  std::vector<ssmhost::ParamInfo> info;
  std::vector<std::vector<T>> values, grads;
  std::vector<ssm::View> value_views, grad_views;
  std::vector<DLTensor*> value_ptrs, grad_ptrs;
  int64_t H;

  Harness(const std::string& id, ssmhost::KV cfg, uint64_t seed = 1) : H(std::stoll(cfg.at("d_model"))) {
    layer = registry().create_layer(id, cfg);
    info = layer->params();
    values.reserve(info.size());
    grads.reserve(info.size());
    for (const auto& p : info) {
      values.emplace_back(static_cast<size_t>(p.numel()));
      grads.emplace_back(static_cast<size_t>(p.numel()));
      value_views.emplace_back(values.back().data(), p.shape);
      grad_views.emplace_back(grads.back().data(), p.shape);
    }
    for (size_t i = 0; i < info.size(); ++i) {
      value_ptrs.push_back(value_views[i].get());
      grad_ptrs.push_back(grad_views[i].get());
    }
    ssm_ctx ctx = ssmhost::make_ctx(false, 1, seed, 0);
    layer->param_init(&ctx, value_ptrs.data());
  }

  std::vector<T>& param(const std::string& name) { return values[index(name)]; }
  size_t index(const std::string& name) const {
    for (size_t i = 0; i < info.size(); ++i)
      if (info[i].name == name) return i;
    FAIL("no parameter " << name);
    return 0;
  }

  std::vector<T> forward(std::vector<T>& x, int64_t B, int64_t L, bool training) {
    std::vector<T> y(x.size());
    ssm::View vx(x.data(), {B, L, H}), vy(y.data(), {B, L, H});
    ssm_ctx ctx = ssmhost::make_ctx(training, 1, 7, 0);
    layer->forward(&ctx, value_ptrs.data(), vx.get(), vy.get());
    return y;
  }

  // Zeroes the gradients, then runs backward of the last training forward.
  std::vector<T> backward(std::vector<T>& dy, int64_t B, int64_t L) {
    for (auto& g : grads) std::fill(g.begin(), g.end(), T(0));
    std::vector<T> dx(dy.size());
    ssm::View vdy(dy.data(), {B, L, H}), vdx(dx.data(), {B, L, H});
    ssm_ctx ctx = ssmhost::make_ctx(true, 1, 7, 0);
    layer->backward(&ctx, value_ptrs.data(), vdy.get(), vdx.get(), grad_ptrs.data());
    return dx;
  }

  // The recurrent mode token by token over x (B, L, H).
  std::vector<T> steps(const std::vector<T>& x, int64_t B, int64_t L) {
    ssm_ctx ctx = ssmhost::make_ctx(false, 1, 7, 0);
    void* state = layer->state_create(&ctx, value_ptrs.data(), B);
    std::vector<T> y(x.size()), xt(B * H), yt(B * H);
    ssm::View vx(xt.data(), {B, H}), vy(yt.data(), {B, H});
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t b = 0; b < B; ++b) std::copy_n(x.begin() + (b * L + t) * H, H, xt.begin() + b * H);
      layer->step(&ctx, value_ptrs.data(), state, vx.get(), vy.get());
      for (int64_t b = 0; b < B; ++b) std::copy_n(yt.begin() + b * H, H, y.begin() + (b * L + t) * H);
    }
    layer->state_destroy(state);
    return y;
  }

  // Checks dx and every parameter gradient of sum(y * probe) against finite
  // differences (step h; the checker's defaults otherwise).
  void check_all_gradients(int64_t B, int64_t L, uint32_t seed, const std::string& what, double h = 1e-6) {
    static_assert(std::is_same_v<T, double>);
    std::vector<double> x = ssm_test::random_vector(B * L * H, seed);
    std::vector<double> probe = ssm_test::random_vector(B * L * H, seed + 1);
    auto loss = [&] { return ssm_test::dot(forward(x, B, L, true), probe); };
    loss();
    const std::vector<double> dx = backward(probe, B, L);
    ssm_test::check_gradient(what + " dx", x, dx, loss, 1e-6, h);
    for (size_t i = 0; i < info.size(); ++i)
      ssm_test::check_gradient(what + " d" + info[i].name, values[i], grads[i], loss, 1e-6, h);
  }
};

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

std::vector<double> widen(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

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
