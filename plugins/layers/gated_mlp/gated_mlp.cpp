// gated_mlp: the Gated MLP block of the FilippoOlivo/SSM seed
// (ssm/model/block/gated_mlp_block.py; docs/math.md §6), channel-last
// (B, L, H) -> (B, L, H), applied to every token on its own:
//
//   a = W1 x + b1,   c = W2 x + b2          W1, W2 (F, H), b1, b2 (F), F = expand * H
//   m = a ⊙ act(c)                          act = SiLU, or Swish_beta(c) = c σ(beta c)
//   y = W_o m + b_o                         W_o (H, F), b_o (H)
//
// exactly the seed's block (its three nn.Linear keep their biases; SiLU is
// Swish with beta = 1). It has no token mixing: stacked alone (the host adds
// the residual and the norm around it) a model of it sees one token at a
// time, so it stays at chance on the copying tasks (the seed reports 0.07,
// about 1/14, at V = 16); it is the seed's lower bound, not a sequence model.
//
// Backward (s = act(c), σ = σ(beta c), act'(c) = σ (1 + beta c (1 - σ))):
//   dm = W_oᵀ dy,  da = dm ⊙ s,  dc = dm ⊙ a ⊙ act'(c),  dx = W1ᵀ da + W2ᵀ dc,
//   dW1 += da xᵀ, db1 += da, dW2 += dc xᵀ, db2 += dc, dW_o += dy mᵀ, db_o += dy.
// The recurrent mode is the same map on one token (no state).
//
// Initialisation: PyTorch's nn.Linear default, U(±1/sqrt(fan_in)) for every
// weight and bias (fan_in H for W1, W2, b1, b2; F for W_o, b_o).
#include <Eigen/Core>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace gated_mlp {

enum Param : size_t { kW1, kB1, kW2, kB2, kWo, kBo, kParamCount };

// Elementwise work runs in blocks of this many values (see run_forward).
constexpr int64_t kBlock = 2048;

template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  std::vector<T> x;    // the input (B*L, H)
  std::vector<T> a;    // W1 x + b1 (B*L, F)
  std::vector<T> c;    // W2 x + b2 (B*L, F)
  std::vector<T> sig;  // σ(beta c)
  std::vector<T> m;    // a ⊙ act(c): W_o's input
};

struct State : ssm::LayerState {
  int64_t batch = 0;
};

class GatedMLP : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H"),
        ssm::Option::integer("expand", "2", "hidden width F = expand * d_model (the seed's hid_dim)"),
        ssm::Option::string("activation", "silu", "gate activation: silu, or swish (x sigmoid(beta x))"),
        ssm::Option::real("beta", "1.0", "Swish's beta (> 0); silu is beta = 1"),
    };
  }

  explicit GatedMLP(const ssm::Config& cfg)
      : H_(cfg.i64_at_least("d_model", 1)), F_(H_ * cfg.i64_at_least("expand", 1)), act_(cfg.str("activation")) {
    if (act_ != "silu" && act_ != "swish")
      ssm::fail("option 'activation' must be silu or swish, got '" + act_ + "'");
    beta_ = act_ == "silu" ? 1.0 : cfg.f64_positive("beta");
  }

  std::vector<ssm::ParamSpec> params() override {
    auto bias = [](const char* name, int64_t n) {
      return ssm::ParamSpec{name, {n}, SSM_PARAM_NO_WEIGHT_DECAY, 0.0, 0.0};
    };
    return {{"W1", {F_, H_}}, bias("b1", F_), {"W2", {F_, H_}}, bias("b2", F_), {"W_out", {H_, F_}}, bias("b_out", H_)};
  }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "gated_mlp: parameters", [&](auto tag) {
      using T = decltype(tag);
      check_params<T>(p);
      for (size_t i = 0; i < kParamCount; ++i) {
        ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
        const double bound = 1.0 / std::sqrt(double(i < kWo ? H_ : F_));
        T* w = p.data<T>(i);
        for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
      }
    });
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    ssm::check_shape(x, {-1, -1, H_}, "gated_mlp: x");
    ssm::check_shape(y, {x.shape[0], x.shape[1], H_}, "gated_mlp: y");
    ssm::dispatch_real(x, "gated_mlp: x", [&](auto tag) {
      using T = decltype(tag);
      const bool training = ctx.training();
      if (training) training_ok_ = false;
      Cache<T> local;
      Cache<T>& c = training ? cache<T>() : local;
      c.B = x.shape[0];
      c.L = x.shape[1];
      run_forward<T>(p, ssm::data<T>(x, "gated_mlp: x"), ssm::data<T>(y, "gated_mlp: y"), c.B * c.L, c);
      if (training) training_ok_ = true;
    });
  }

  void backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    ssm::dispatch_real(dy, "gated_mlp: dy", [&](auto tag) { backward_as<decltype(tag)>(p, dy, dx, dp); });
  }

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context&, ssm::Params, int64_t batch) override {
    if (batch < 1) ssm::fail("gated_mlp: state_create needs batch >= 1, got " + std::to_string(batch));
    auto s = std::make_unique<State>();
    s->batch = batch;
    return s;
  }

  // No state: the block on the one token.
  void step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    const int64_t batch = static_cast<State&>(state).batch;
    ssm::check_shape(x_t, {batch, H_}, "gated_mlp: x_t");
    ssm::check_shape(y_t, {batch, H_}, "gated_mlp: y_t");
    ssm::dispatch_real(x_t, "gated_mlp: x_t", [&](auto tag) {
      using T = decltype(tag);
      Cache<T> local;
      run_forward<T>(p, ssm::data<T>(x_t, "gated_mlp: x_t"), ssm::data<T>(y_t, "gated_mlp: y_t"), batch, local);
    });
  }

 private:
  template <typename T>
  Cache<T>& cache() {
    if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
    return std::get<Cache<T>>(cache_);
  }

  template <typename T>
  void check_params(ssm::Params p) const {
    ssm::check_params<T>(p, const_cast<GatedMLP*>(this)->params(), kParamCount, "gated_mlp", "for d_model=" + std::to_string(H_) + ", hidden width " + std::to_string(F_));
  }


  // rows tokens of x (rows, H) -> y (rows, H); c receives the activations.
  template <typename T>
  void run_forward(ssm::Params p, const T* x, T* y, int64_t rows, Cache<T>& c) {
    check_params<T>(p);
    const int64_t n = rows * F_;
    c.x.assign(x, x + rows * H_);
    c.a.resize(static_cast<size_t>(n));
    c.c.resize(static_cast<size_t>(n));
    c.sig.resize(static_cast<size_t>(n));
    c.m.resize(static_cast<size_t>(n));
    ssm::kernels::linear_forward(x, p.data<T>(kW1), p.data<T>(kB1), c.a.data(), rows, H_, F_);
    ssm::kernels::linear_forward(x, p.data<T>(kW2), p.data<T>(kB2), c.c.data(), rows, H_, F_);
    // σ(beta c) and m by Eigen's vectorised exp, in blocks cut at fixed
    // offsets and evaluated in an aligned buffer: Eigen takes its scalar
    // path (which may differ in the last bit) before the first aligned
    // address, so evaluating in place would depend on where the memory lies.
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    const T neg_beta = static_cast<T>(-beta_);
    const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t i = k * kBlock, m = std::min(kBlock, n - i);
      alignas(64) T buf[kBlock];
      Eigen::Map<Arr, Eigen::Aligned64> s(buf, m);
      Eigen::Map<const Arr> cv(c.c.data() + i, m), av(c.a.data() + i, m);
      s = (T(1) + (cv * neg_beta).exp()).inverse();
      std::copy_n(buf, m, c.sig.data() + i);
      for (int64_t j = 0; j < m; ++j) c.m[i + j] = c.a[i + j] * c.c[i + j] * buf[j];
    }
    ssm::kernels::linear_forward(c.m.data(), p.data<T>(kWo), p.data<T>(kBo), y, rows, F_, H_);
  }

  template <typename T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    Cache<T>* c = std::get_if<Cache<T>>(&cache_);
    if (!training_ok_ || !c)
      ssm::fail("gated_mlp: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) +
                ") first");
    ssm::check_shape(dy, {c->B, c->L, H_}, "gated_mlp: dy (the shape of the last training forward's x)");
    ssm::check_shape(dx, {c->B, c->L, H_}, "gated_mlp: dx (the shape of the last training forward's x)");
    check_params<T>(p);
    check_params<T>(dp);
    const int64_t rows = c->B * c->L, n = rows * F_;
    const T* g = ssm::data<T>(dy, "gated_mlp: dy");
    T* dxp = ssm::data<T>(dx, "gated_mlp: dx");
    std::vector<T> dm(static_cast<size_t>(n)), dc(static_cast<size_t>(n));
    ssm::kernels::linear_backward(c->m.data(), p.data<T>(kWo), g, dm.data(), dp.data<T>(kWo), dp.data<T>(kBo), rows,
                                  F_, H_);
    const T beta = static_cast<T>(beta_);
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
      const T s = c->sig[i], cv = c->c[i];
      dc[i] = dm[i] * c->a[i] * s * (T(1) + beta * cv * (T(1) - s));
      dm[i] = dm[i] * cv * s;  // da
    }
    ssm::kernels::linear_backward(c->x.data(), p.data<T>(kW1), dm.data(), dxp, dp.data<T>(kW1), dp.data<T>(kB1), rows,
                                  H_, F_);
    std::vector<T> dx2(static_cast<size_t>(rows * H_));
    ssm::kernels::linear_backward(c->x.data(), p.data<T>(kW2), dc.data(), dx2.data(), dp.data<T>(kW2),
                                  dp.data<T>(kB2), rows, H_, F_);
    for (int64_t i = 0; i < rows * H_; ++i) dxp[i] += dx2[i];
  }

  int64_t H_, F_;
  std::string act_;
  double beta_ = 1.0;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace gated_mlp

SSM_PLUGIN_LAYER(gated_mlp::GatedMLP, "gated_mlp", "1.0.0",
                 "Gated MLP (FilippoOlivo seed): W_o[(W1 x + b1) * act(W2 x + b2)] + b_o per token, no token mixing")
