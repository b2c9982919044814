// S6 on the CPU (the class is declared in s6.hpp, the scan is
// selective_scan.hpp) and the plugin's registration.
#include "s6.hpp"

#include <ssm/ext/disc_exp_euler.h>
#include <ssm/kernels/activation.hpp>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <complex>
#include <variant>

namespace s6 {

namespace {

// f(lo, hi) over [0, n) in blocks of fixed positions, on up to `threads`
// threads.
template <class F>
void for_blocks(int64_t n, int threads, F&& f) {
  constexpr int64_t kSpan = 16384;
  const int64_t spans = (n + kSpan - 1) / kSpan;
  detail::parallel_for(spans, threads, [&](int64_t i) { f(i * kSpan, std::min(n, (i + 1) * kSpan)); });
}

// delta = softplus(pre) (selective_scan.hpp: vectorised, the same bits in
// every lane, so independent of threads and pointers).
template <typename T>
void softplus_forward(const T* pre, T* delta, int64_t n, int threads) {
  for_blocks(n, threads, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) delta[i] = softplus(pre[i]);
  });
}

// g *= softplus'(pre) = sigmoid(pre).
template <typename T>
void softplus_backward(const T* pre, T* g, int64_t n, int threads) {
  for_blocks(n, threads, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) g[i] *= softplus_grad(pre[i]);
  });
}

}  // namespace

S6::S6(const ssm::Config& cfg)
    : D_(cfg.i64_at_least("d_model", 1)),
      N_(cfg.i64_at_least("d_state", 1)),
      R_(cfg.i64_at_least("dt_rank", 0)),
      chunk_(cfg.i64_at_least("chunk", 1)),
      dt_min_(cfg.f64_positive("dt_min")),
      dt_max_(cfg.f64_positive("dt_max")),
      dt_floor_(cfg.f64_positive("dt_floor")),
      lr_ssm_(cfg.f64("lr_ssm")) {
  if (R_ == 0) R_ = (D_ + 15) / 16;  // Mamba's dt_rank="auto": ceil(d_model / 16)
  const std::string block = cfg.str("block");
  if (block != "linear" && block != "none") ssm::fail("option 'block' must be linear or none, got '" + block + "'");
  block_ = block == "linear";
  if (dt_max_ < dt_min_)
    ssm::fail("option 'dt_max' (" + cfg.str("dt_max") + ") must be >= 'dt_min' (" + cfg.str("dt_min") + ")");
  if (!(lr_ssm_ >= 0)) ssm::fail("option 'lr_ssm' must be >= 0, got " + cfg.str("lr_ssm"));
  disc_ = ssm::DiscChild(cfg.str("disc"), cfg);
  fast_ = disc_.extension(SSM_EXT_DISC_EXP_EULER) != nullptr;
}

// ------------------------------------------------------------ the entry points

void S6::init_params(ssm::Context& ctx, ssm::Params p) {
  ssm::dispatch_real(p[0], "s6: parameters", [&](auto tag) { init_typed<decltype(tag)>(ctx, p); });
}

void S6::forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  ssm::check_shape(x, {-1, -1, D_}, "x");
  ssm::check_shape(y, {x.shape[0], x.shape[1], D_}, "y");
  if (x.shape[1] < 1) ssm::fail("s6: x has shape " + ssm::shape_str(x) + ", expected L >= 1");
  ssm::dispatch_real(x, "s6: x", [&](auto tag) {
    using T = decltype(tag);
    forward_impl<T>(ctx, p, ssm::data<T>(x, "x"), ssm::data<T>(y, "y"), x.shape[0], x.shape[1], nullptr);
  });
}

void S6::backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  ssm::dispatch_real(dy, "s6: dy", [&](auto tag) { backward_typed<decltype(tag)>(ctx, p, dy, dx, dp); });
}

std::unique_ptr<ssm::LayerState> S6::state_create(ssm::Context&, ssm::Params, int64_t batch) {
  if (batch < 1) ssm::fail("s6: state_create needs batch >= 1, got " + std::to_string(batch));
  auto st = std::make_unique<State>();
  st->batch = batch;
  return st;
}

void S6::step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) {
  auto& st = dynamic_cast<State&>(state);
  ssm::check_shape(x, {st.batch, D_}, "x_t");
  ssm::check_shape(y, {st.batch, D_}, "y_t");
  ssm::dispatch_real(x, "s6: x_t", [&](auto tag) {
    using T = decltype(tag);
    std::vector<T>* h = nullptr;
    if constexpr (std::is_same_v<T, float>) h = &st.hf;
    else h = &st.hd;
    if (h->empty()) h->assign(static_cast<size_t>(st.batch * D_ * N_), T(0));
    // The recurrent mode is forward on one token, carrying the scan's state.
    forward_impl<T>(ctx, p, ssm::data<T>(x, "x_t"), ssm::data<T>(y, "y_t"), st.batch, 1, h->data());
  });
}

// ------------------------------------------------------ parameters and scheme

std::vector<ssm::ParamSpec> S6::specs() const {
  // Mamba's hints: A_log, D and the dt bias get no weight decay and stay in
  // float32 (its README, "Precision"); A_log and the dt projection are the
  // SSM's parameters (learning-rate cap lr_ssm, none by default as Mamba).
  const uint32_t keep = SSM_PARAM_NO_WEIGHT_DECAY | SSM_PARAM_KEEP_FP32;
  std::vector<ssm::ParamSpec> s = {
      {"x_proj.weight", {R_ + 2 * N_, D_}},
      {"dt_proj.weight", {D_, R_}, SSM_PARAM_SSM, lr_ssm_, -1},
      {"dt_proj.bias", {D_}, SSM_PARAM_SSM | keep, lr_ssm_, 0.0},
      {"A_log", {D_, N_}, SSM_PARAM_SSM | keep, lr_ssm_, 0.0},
      {"D", {D_}, keep, 0.0, 0.0},
  };
  if (block_) {
    s.push_back({"out_proj.weight", {D_, D_}});
    s.push_back({"out_proj.bias", {D_}});
  }
  return s;
}

template <typename T>
void S6::init_typed(ssm::Context& ctx, ssm::Params p) {
  check_param_shapes<T>(p);
  auto uniform = [&](size_t i, double bound) {
    ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
    T* w = p.data<T>(i);
    for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
  };
  // PyTorch's nn.Linear default, U(+-1/sqrt(fan_in)), as Mamba leaves x_proj.
  uniform(kXProj, 1.0 / std::sqrt(double(D_)));
  // dt_proj.weight ~ U(+-dt_rank^-1/2) (Mamba's dt_init="random", dt_scale 1).
  uniform(kDtW, 1.0 / std::sqrt(double(R_)));
  // dt bias: dt = exp(U [log dt_min, log dt_max]) clamped to >= dt_floor, then
  // the inverse softplus, so that softplus(bias) = dt.
  ctx.rng_fill(kDtB, ctx.rng_offset(), SSM_RNG_UNIFORM, p[kDtB]);
  T* bias = p.data<T>(kDtB);
  const double lo = std::log(dt_min_), hi = std::log(dt_max_);
  for (int64_t d = 0; d < D_; ++d) {
    const double dt = std::max(std::exp(lo + double(bias[d]) * (hi - lo)), dt_floor_);
    bias[d] = static_cast<T>(dt + std::log(-std::expm1(-dt)));
  }
  // S4D-Real: A = -(n + 1), stored as A_log = log(n + 1); D = 1.
  T* A_log = p.data<T>(kALog);
  for (int64_t d = 0; d < D_; ++d)
    for (int64_t n = 0; n < N_; ++n) A_log[d * N_ + n] = static_cast<T>(std::log(double(n + 1)));
  std::fill_n(p.data<T>(kD), D_, T(1));
  if (block_) {
    uniform(kOutW, 1.0 / std::sqrt(double(D_)));
    uniform(kOutB, 1.0 / std::sqrt(double(D_)));
  }
}

template <typename T>
void S6::check_param_shapes(ssm::Params p) const {
  if (p.size() != param_count())
    ssm::fail("s6: expected " + std::to_string(param_count()) + " parameter tensors, got " + std::to_string(p.size()));
  const std::vector<ssm::ParamSpec> specs = this->specs();
  for (size_t i = 0; i < specs.size(); ++i) {
    const DLTensor& t = p[i];
    bool ok = t.ndim == static_cast<int32_t>(specs[i].shape.size());
    for (int k = 0; ok && k < t.ndim; ++k) ok = t.shape[k] == specs[i].shape[k];
    if (!ok) {
      std::string want = "(";
      for (size_t k = 0; k < specs[i].shape.size(); ++k) want += (k ? ", " : "") + std::to_string(specs[i].shape[k]);
      ssm::fail("s6: parameter '" + specs[i].name + "' has shape " + ssm::shape_str(t) + ", expected " + want +
                ") for d_model=" + std::to_string(D_) + ", d_state=" + std::to_string(N_) +
                ", dt_rank=" + std::to_string(R_));
    }
    ssm::data<T>(t, specs[i].name.c_str());  // checks dtype and density
  }
}

// The discretization for the scan: empty (the scan's exp-Euler fast path)
// for Mamba's scheme, else the plugin's map on complex copies of the real
// points z = delta A, keeping the real parts (A and delta are real, so every
// scheme of the family gives real coefficients).
template <typename T>
Scheme<T> S6::scheme(ssm::Context& ctx) const {
  Scheme<T> s;
  if (fast_) return s;
  const ssm_ctx* c = ctx.raw();
  const ssm::DiscChild* disc = &disc_;
  s.eval = [c, disc](const T* z, int64_t n, T* a, T* beta, T* da, T* dbeta) {
    using C = std::complex<T>;
    std::vector<C> buf(static_cast<size_t>(n * (da ? 5 : 3)));
    C *zc = buf.data(), *ac = zc + n, *bc = ac + n, *dac = da ? bc + n : nullptr, *dbc = da ? dac + n : nullptr;
    for (int64_t i = 0; i < n; ++i) zc[i] = C(z[i], T(0));
    ssm::View zv(zc, {n}), av(ac, {n}), bv(bc, {n}), dav(dac, {n}), dbv(dbc, {n});
    disc->eval(c, zv, av.get(), bv.get(), da ? dav.get() : nullptr, da ? dbv.get() : nullptr);
    for (int64_t i = 0; i < n; ++i) {
      a[i] = ac[i].real();
      beta[i] = bc[i].real();
    }
    if (da)
      for (int64_t i = 0; i < n; ++i) {
        da[i] = dac[i].real();
        dbeta[i] = dbc[i].real();
      }
  };
  return s;
}

// -------------------------------------------------------- forward (CPU)

template <typename T>
Cache<T>& S6::training_cache() {
  if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
  return std::get<Cache<T>>(cache_);
}

template <typename T>
void S6::forward_impl(ssm::Context& ctx, ssm::Params p, const T* x, T* y, int64_t B, int64_t L, T* state) {
  namespace k = ssm::kernels;
  check_param_shapes<T>(p);
  const bool training = ctx.training() && !state;
  const int threads = ctx.threads();
  if (training) training_ok_ = false;  // until this forward has filled the cache
  Cache<T> local;
  Cache<T>& c = training ? training_cache<T>() : local;
  const int64_t rows = B * L, W = R_ + 2 * N_;
  c.B = B;
  c.L = L;
  const T* u = x;
  if (training) {
    c.u.assign(x, x + rows * D_);
    u = c.u.data();
  }
  // [dt_low | B | C] = x_proj(u), split into contiguous arrays.
  {
    Buf<T> xdbl(static_cast<size_t>(rows * W));
    k::linear_forward(u, p.data<T>(kXProj), nullptr, xdbl.data(), rows, D_, W);
    c.dtl.resize(static_cast<size_t>(rows * R_));
    c.Bm.resize(static_cast<size_t>(rows * N_));
    c.Cm.resize(static_cast<size_t>(rows * N_));
    for (int64_t r = 0; r < rows; ++r) {
      const T* src = xdbl.data() + r * W;
      std::copy_n(src, R_, c.dtl.data() + r * R_);
      std::copy_n(src + R_, N_, c.Bm.data() + r * N_);
      std::copy_n(src + R_ + N_, N_, c.Cm.data() + r * N_);
    }
  }
  // delta = softplus(dt_proj(dt_low) + dt bias); the cache keeps the
  // pre-activation (backward recomputes delta, and softplus' from it).
  c.pre.resize(static_cast<size_t>(rows * D_));
  k::linear_forward(c.dtl.data(), p.data<T>(kDtW), p.data<T>(kDtB), c.pre.data(), rows, R_, D_);
  Buf<T> delta(static_cast<size_t>(rows * D_));
  softplus_forward(c.pre.data(), delta.data(), rows * D_, threads);
  // A = -exp(A_log).
  c.A.resize(static_cast<size_t>(D_ * N_));
  const T* A_log = p.data<T>(kALog);
  for (int64_t i = 0; i < D_ * N_; ++i) c.A[i] = -std::exp(A_log[i]);

  const Shape s{B, L, D_, N_, chunk_};
  const Inputs<T> in{u, delta.data(), c.A.data(), c.Bm.data(), c.Cm.data(), p.data<T>(kD)};
  if (training) c.bounds.resize(static_cast<size_t>(s.saved_states()));
  // With the block, the scan's output goes into dact, then GELU in place.
  if (block_) c.dact.resize(static_cast<size_t>(rows * D_));
  T* sout = block_ ? c.dact.data() : y;
  scan_forward(s, in, scheme<T>(ctx), sout, training ? c.bounds.data() : nullptr, state, threads);
  if (block_) {
    c.act.resize(static_cast<size_t>(rows * D_));
    if (training)
      k::gelu_forward_grad(c.dact.data(), c.act.data(), c.dact.data(), rows * D_);
    else
      k::gelu_forward(c.dact.data(), c.act.data(), rows * D_);
    k::linear_forward(c.act.data(), p.data<T>(kOutW), p.data<T>(kOutB), y, rows, D_, D_);
  }
  if (training) training_ok_ = true;
}

// -------------------------------------------------------- backward (CPU)

template <typename T>
void S6::backward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  namespace k = ssm::kernels;
  Cache<T>* c = std::get_if<Cache<T>>(&cache_);
  if (!training_ok_ || !c)
    ssm::fail("s6: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
  const int64_t B = c->B, L = c->L, rows = B * L, W = R_ + 2 * N_;
  ssm::check_shape(dy, {B, L, D_}, "dy (the shape of the last training forward's x)");
  ssm::check_shape(dx, {B, L, D_}, "dx (the shape of the last training forward's x)");
  check_param_shapes<T>(p);
  check_param_shapes<T>(dp);
  const int threads = ctx.threads();
  const T* g = ssm::data<T>(dy, "dy");
  T* dxp = ssm::data<T>(dx, "dx");

  // The block: ds = GELU'(s) * (dy W_out); dW_out, db_out.
  Buf<T> ds;
  if (block_) {
    ds.resize(static_cast<size_t>(rows * D_));
    k::linear_backward(c->act.data(), p.data<T>(kOutW), g, ds.data(), dp.data<T>(kOutW), dp.data<T>(kOutB), rows, D_,
                       D_);
    for_blocks(rows * D_, threads, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) ds[i] *= c->dact[i];
    });
    g = ds.data();
  }

  // The scan: du (into dx), ddelta, dB, dC, dA, dD.
  const Shape s{B, L, D_, N_, chunk_};
  Buf<T> delta(static_cast<size_t>(rows * D_));
  softplus_forward(c->pre.data(), delta.data(), rows * D_, threads);
  const Inputs<T> in{c->u.data(), delta.data(), c->A.data(), c->Bm.data(), c->Cm.data(), p.data<T>(kD)};
  Buf<T> ddelta(static_cast<size_t>(rows * D_)), dxdbl(static_cast<size_t>(rows * W));
  Buf<T> dB(static_cast<size_t>(rows * N_)), dC(static_cast<size_t>(rows * N_));
  std::vector<T> dA(static_cast<size_t>(D_ * N_), T(0));
  scan_backward(s, in, scheme<T>(ctx), c->bounds.data(), g,
                Grads<T>{dxp, ddelta.data(), dB.data(), dC.data(), dA.data(), dp.data<T>(kD)}, threads);
  // A = -exp(A_log): dA_log = dA * A.
  T* dA_log = dp.data<T>(kALog);
  for (int64_t i = 0; i < D_ * N_; ++i) dA_log[i] += dA[i] * c->A[i];

  // delta = softplus(dt_proj(dt_low)): the dt projection's gradients, then
  // x_proj's, whose input gradient adds to dx.
  softplus_backward(c->pre.data(), ddelta.data(), rows * D_, threads);
  Buf<T> ddtl(static_cast<size_t>(rows * R_));
  k::linear_backward(c->dtl.data(), p.data<T>(kDtW), ddelta.data(), ddtl.data(), dp.data<T>(kDtW),
                     dp.data<T>(kDtB), rows, R_, D_);
  for (int64_t r = 0; r < rows; ++r) {
    T* dst = dxdbl.data() + r * W;
    std::copy_n(ddtl.data() + r * R_, R_, dst);
    std::copy_n(dB.data() + r * N_, N_, dst + R_);
    std::copy_n(dC.data() + r * N_, N_, dst + R_ + N_);
  }
  Buf<T>& du = delta;  // delta is spent
  k::linear_backward(c->u.data(), p.data<T>(kXProj), dxdbl.data(), du.data(), dp.data<T>(kXProj), nullptr, rows, D_,
                     W);
  for_blocks(rows * D_, threads, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) dxp[i] += du[i];
  });
}

}  // namespace s6

SSM_PLUGIN_LAYER(s6::S6, "s6", "1.0.0",
                 "S6: Mamba's selective SSM (input-dependent dt, B, C; chunked scan, any --disc), GELU and Linear "
                 "D->D without gate (--block none: the bare SSM)")
