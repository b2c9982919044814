// A layer plugin under test with its parameters and gradients in host
// buffers: the harness the layer tests share (tests/test_<layer>.cpp).
//
//   ssm_test::Harness<double> hs("lstm", {{"d_model", "3"}});
//   std::vector<double> y = hs.forward(x, B, L, /*training=*/true);
//   hs.check_all_gradients(B, L, /*seed=*/1, "lstm");   // every gradient vs finite differences
#pragma once

#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "gradcheck.hpp"
#include "registry.hpp"
#include "test_support.hpp"

namespace ssm_test {

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
    layer = plugin_registry().create_layer(id, cfg);
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
    ssm_ctx ctx = plugin_registry().make_ctx(false, 1, seed, 0);
    layer->param_init(&ctx, value_ptrs.data());
  }

  std::vector<T>& param(const std::string& name) { return values[index(name)]; }
  std::vector<T>& grad(const std::string& name) { return grads[index(name)]; }
  const ssmhost::ParamInfo& spec(const std::string& name) const { return info[index(name)]; }
  bool has(const std::string& name) const {
    for (const auto& p : info)
      if (p.name == name) return true;
    return false;
  }
  size_t index(const std::string& name) const {
    for (size_t i = 0; i < info.size(); ++i)
      if (info[i].name == name) return i;
    FAIL("no parameter " << name);
    return 0;
  }

  // rng_offset: the call's counter (dropout masks differ from one to the next).
  std::vector<T> forward(std::vector<T>& x, int64_t B, int64_t L, bool training, int threads = 1,
                         uint64_t rng_offset = 0) {
    std::vector<T> y(x.size());
    ssm::View vx(x.data(), {B, L, H}), vy(y.data(), {B, L, H});
    ssm_ctx ctx = plugin_registry().make_ctx(training, threads, 7, rng_offset);
    layer->forward(&ctx, value_ptrs.data(), vx.get(), vy.get());
    return y;
  }

  // Zeroes the gradients, then runs backward of the last training forward.
  std::vector<T> backward(std::vector<T>& dy, int64_t B, int64_t L, int threads = 1) {
    for (auto& g : grads) std::fill(g.begin(), g.end(), T(0));
    std::vector<T> dx(dy.size());
    ssm::View vdy(dy.data(), {B, L, H}), vdx(dx.data(), {B, L, H});
    ssm_ctx ctx = plugin_registry().make_ctx(true, threads, 7, 0);
    layer->backward(&ctx, value_ptrs.data(), vdy.get(), vdx.get(), grad_ptrs.data());
    return dx;
  }

  // The recurrent mode token by token over x (B, L, H).
  std::vector<T> steps(const std::vector<T>& x, int64_t B, int64_t L) {
    ssm_ctx ctx = plugin_registry().make_ctx(false, 1, 7, 0);
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

}  // namespace ssm_test
