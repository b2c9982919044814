// Mamba on the CPU (the class is declared in mamba.hpp) and the plugin's
// registration.
#include "mamba.hpp"

#include <ssm/kernels/activation.hpp>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <type_traits>
#include <variant>

namespace mamba {

namespace {

// Runs f(i) for i in [0, n) on up to `threads` threads; the first exception
// is rethrown after the loop.
template <class F>
void parallel_for(int64_t n, int threads, F&& f) {
  std::exception_ptr error;
  std::mutex m;
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1 && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// f(i) for i in [0, n): elementwise work, SIMD, on up to `threads` threads
// when it is large enough to pay for them.
template <class F>
void elementwise(int64_t n, int threads, F&& f) {
  constexpr int64_t kSpan = 16384;
  const int64_t spans = (n + kSpan - 1) / kSpan;
  parallel_for(spans, n >= 4 * kSpan ? threads : 1, [&](int64_t s) {
    const int64_t hi = std::min(n, (s + 1) * kSpan);
#pragma omp simd
    for (int64_t i = s * kSpan; i < hi; ++i) f(i);
  });
}

// The causal depthwise convolution (PyTorch's Conv1d(groups=Di, padding=K-1)
// keeping the first L outputs), channel-last:
//   c[b, t, d] = cb[d] + sum_k w[d, k] xin(b, t - (K - 1) + k, d)
// where xin(b, s, d) is xc[b, s, d] for s >= 0, and before the sequence the
// history hist[b, K - 1 + s, d] (the recurrent mode) or 0.
template <typename T>
void conv_forward(const T* xc, const T* hist, const T* w, const T* cb, T* c, int64_t B, int64_t L, int64_t Di,
                  int64_t K, int threads) {
  std::vector<T> wT(static_cast<size_t>(K * Di));  // (K, Di): SIMD over channels
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t k = 0; k < K; ++k) wT[k * Di + d] = w[d * K + k];
  parallel_for(B, threads, [&](int64_t b) {
    for (int64_t t = 0; t < L; ++t) {
      T* out = c + (b * L + t) * Di;
      std::copy_n(cb, Di, out);
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = t - (K - 1) + k;
        const T* src = s >= 0 ? xc + (b * L + s) * Di : hist ? hist + (b * (K - 1) + (K - 1 + s)) * Di : nullptr;
        if (!src) continue;
        const T* wk = wT.data() + k * Di;
#pragma omp simd
        for (int64_t d = 0; d < Di; ++d) out[d] += wk[d] * src[d];
      }
    }
  });
}

// Backward of conv_forward without history: dxc overwritten; dw (Di, K) and
// dcb (Di) added to, reduced per batch element and then over b in order.
template <typename T>
void conv_backward(const T* xc, const T* w, const T* dc, T* dxc, T* dw, T* dcb, int64_t B, int64_t L, int64_t Di,
                   int64_t K, int threads) {
  std::vector<T> wT(static_cast<size_t>(K * Di));
  for (int64_t d = 0; d < Di; ++d)
    for (int64_t k = 0; k < K; ++k) wT[k * Di + d] = w[d * K + k];
  std::vector<T> dwT_b(static_cast<size_t>(B * K * Di), T(0)), dcb_b(static_cast<size_t>(B * Di), T(0));
  parallel_for(B, threads, [&](int64_t b) {
    T* dwT = dwT_b.data() + b * K * Di;
    T* dcbb = dcb_b.data() + b * Di;
    for (int64_t s = 0; s < L; ++s) {
      // dxc[s] = sum_k w[k] dc[s + K - 1 - k]
      T* out = dxc + (b * L + s) * Di;
      std::fill_n(out, Di, T(0));
      for (int64_t k = 0; k < K; ++k) {
        const int64_t t = s + (K - 1) - k;
        if (t >= L) continue;
        const T* g = dc + (b * L + t) * Di;
        const T* wk = wT.data() + k * Di;
#pragma omp simd
        for (int64_t d = 0; d < Di; ++d) out[d] += wk[d] * g[d];
      }
    }
    for (int64_t t = 0; t < L; ++t) {
      const T* g = dc + (b * L + t) * Di;
#pragma omp simd
      for (int64_t d = 0; d < Di; ++d) dcbb[d] += g[d];
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = t - (K - 1) + k;
        if (s < 0) continue;
        const T* src = xc + (b * L + s) * Di;
        T* dk = dwT + k * Di;
#pragma omp simd
        for (int64_t d = 0; d < Di; ++d) dk[d] += g[d] * src[d];
      }
    }
  });
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < Di; ++d) {
      dcb[d] += dcb_b[b * Di + d];
      for (int64_t k = 0; k < K; ++k) dw[d * K + k] += dwT_b[(b * K + k) * Di + d];
    }
}

}  // namespace

Mamba::Mamba(const ssm::Config& cfg)
    : H_(cfg.i64_at_least("d_model", 1)),
      E_(cfg.i64_at_least("expand", 1)),
      Di_(E_ * H_),
      K_(cfg.i64_at_least("d_conv", 1)),
      n_layers_(cfg.i64_at_least("n_layers", 1)),
      dt_rank_(cfg.i64_at_least("dt_rank", 0)),
      bias_(cfg.flag("bias")) {
  if (dt_rank_ == 0) dt_rank_ = (H_ + 15) / 16;  // Mamba's dt_rank="auto", of the block's d_model
  if (bias_) kInB_ = 4, kOutB_ = 5, n_own_ = 6;
  // The inner layer gets our options (--d-state, --disc, ... reach it) with
  // its width, the bare-mixer convention and Mamba's dt rank.
  inner_ = ssm::LayerChild(cfg.str("inner"), cfg, "inner.",
                           {{"d_model", std::to_string(Di_)}, {"block", "none"}, {"dt_rank", std::to_string(dt_rank_)}});
}

// ------------------------------------------------------------ the entry points

std::vector<ssm::ParamSpec> Mamba::own_specs() const {
  std::vector<ssm::ParamSpec> s = {{"in_proj.weight", {2 * Di_, H_}},
                                   {"conv1d.weight", {Di_, K_}},
                                   {"conv1d.bias", {Di_}},
                                   {"out_proj.weight", {H_, Di_}}};
  if (bias_) {
    s.push_back({"in_proj.bias", {2 * Di_}});
    s.push_back({"out_proj.bias", {H_}});
  }
  return s;
}

std::vector<ssm::ParamSpec> Mamba::params() {
  std::vector<ssm::ParamSpec> p = own_specs();
  inner_.append_params(p);
  return p;
}

void Mamba::init_params(ssm::Context& ctx, ssm::Params p) {
  ssm::dispatch_real(p[0], "mamba: parameters", [&](auto tag) { init_typed<decltype(tag)>(ctx, p); });
  inner_.init_params(ctx, p);  // the child's share, with the child's seed
}

void Mamba::forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  ssm::check_shape(x, {-1, -1, H_}, "x");
  ssm::check_shape(y, {x.shape[0], x.shape[1], H_}, "y");
  if (x.shape[1] < 1) ssm::fail("mamba: x has shape " + ssm::shape_str(x) + ", expected L >= 1");
  ssm::dispatch_real(x, "mamba: x", [&](auto tag) {
    using T = decltype(tag);
    forward_impl<T>(ctx, p, ssm::data<T>(x, "x"), ssm::data<T>(y, "y"), x.shape[0], x.shape[1], nullptr);
  });
}

void Mamba::backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  ssm::dispatch_real(dy, "mamba: dy", [&](auto tag) { backward_typed<decltype(tag)>(ctx, p, dy, dx, dp); });
}

std::unique_ptr<ssm::LayerState> Mamba::state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) {
  if (batch < 1) ssm::fail("mamba: state_create needs batch >= 1, got " + std::to_string(batch));
  auto st = std::make_unique<State>();
  st->batch = batch;
  st->inner = inner_.state_create(ctx, p, batch);
  return st;
}

void Mamba::step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) {
  auto& st = dynamic_cast<State&>(state);
  ssm::check_shape(x, {st.batch, H_}, "x_t");
  ssm::check_shape(y, {st.batch, H_}, "y_t");
  ssm::dispatch_real(x, "mamba: x_t", [&](auto tag) {
    using T = decltype(tag);
    forward_impl<T>(ctx, p, ssm::data<T>(x, "x_t"), ssm::data<T>(y, "y_t"), st.batch, 1, &st);
  });
}

// ------------------------------------------------------------------ parameters

template <typename T>
void Mamba::init_typed(ssm::Context& ctx, ssm::Params p) {
  check_own_shapes<T>(p);
  auto uniform = [&](size_t i, double bound) {
    ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
    T* w = p.data<T>(i);
    for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
  };
  uniform(kInW_, 1.0 / std::sqrt(double(H_)));
  uniform(kConvW_, 1.0 / std::sqrt(double(K_)));  // Conv1d default: fan_in = (Di / groups) * K = K
  uniform(kConvB_, 1.0 / std::sqrt(double(K_)));
  uniform(kOutW_, 1.0 / std::sqrt(double(Di_)) / std::sqrt(double(n_layers_)));
  if (bias_) {
    std::fill_n(p.data<T>(kInB_), 2 * Di_, T(0));
    std::fill_n(p.data<T>(kOutB_), H_, T(0));
  }
}

template <typename T>
void Mamba::check_own_shapes(ssm::Params p) const {
  const std::vector<ssm::ParamSpec> specs = own_specs();
  if (p.size() != specs.size() + inner_.param_count())
    ssm::fail("mamba: expected " + std::to_string(specs.size() + inner_.param_count()) + " parameter tensors, got " +
              std::to_string(p.size()));
  for (size_t i = 0; i < specs.size(); ++i) {
    const DLTensor& t = p[i];
    bool ok = t.ndim == static_cast<int32_t>(specs[i].shape.size());
    for (int k = 0; ok && k < t.ndim; ++k) ok = t.shape[k] == specs[i].shape[k];
    if (!ok)
      ssm::fail("mamba: parameter '" + specs[i].name + "' has shape " + ssm::shape_str(t) + " for d_model=" +
                std::to_string(H_) + ", expand=" + std::to_string(E_) + ", d_conv=" + std::to_string(K_));
    ssm::data<T>(t, specs[i].name.c_str());  // checks dtype and density
  }
}

// ----------------------------------------------------------- forward (CPU)

template <typename T>
Cache<T>& Mamba::training_cache() {
  if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
  return std::get<Cache<T>>(cache_);
}

template <typename T>
void Mamba::forward_impl(ssm::Context& ctx, ssm::Params p, const T* x, T* y, int64_t B, int64_t L, State* st) {
  namespace k = ssm::kernels;
  check_own_shapes<T>(p);
  const bool training = ctx.training() && !st;
  const int threads = ctx.threads();
  if (training) training_ok_ = false;
  Cache<T> local;
  Cache<T>& c = training ? training_cache<T>() : local;
  const int64_t rows = B * L, n = rows * Di_;
  c.B = B;
  c.L = L;
  if (training) c.x.assign(x, x + rows * H_);

  // [xc | z] = in_proj(x): the weight's two halves of rows are two
  // contiguous (Di, H) matrices, so two GEMMs write xc and z directly.
  c.xc.resize(static_cast<size_t>(n));
  c.z.resize(static_cast<size_t>(n));
  const T* W_in = p.data<T>(kInW_);
  const T* b_in = bias_ ? p.data<T>(kInB_) : nullptr;
  k::linear_forward(x, W_in, b_in, c.xc.data(), rows, H_, Di_);
  k::linear_forward(x, W_in + Di_ * H_, b_in ? b_in + Di_ : nullptr, c.z.data(), rows, H_, Di_);
  // u = SiLU(conv(xc)), the conv reading the recurrent history when stepping.
  std::vector<T>* hist = nullptr;
  if (st) {
    if constexpr (std::is_same_v<T, float>) hist = &st->hist_f;
    else hist = &st->hist_d;
    if (hist->empty()) hist->assign(static_cast<size_t>(B * (K_ - 1) * Di_), T(0));
  }
  Buf<T> u(static_cast<size_t>(n));
  conv_forward(c.xc.data(), hist ? hist->data() : static_cast<const T*>(nullptr), p.data<T>(kConvW_),
               p.data<T>(kConvB_), u.data(), B, L, Di_, K_, threads);
  k::silu_forward(u.data(), u.data(), n);  // backward recomputes the conv's output

  // v = inner(u).
  c.v.resize(static_cast<size_t>(n));
  if (st) {
    ssm::View uv(u.data(), {B, Di_}), vv(c.v.data(), {B, Di_});
    inner_.step(ctx, p, st->inner, uv, vv);
    // The history keeps the last K - 1 conv inputs: shift by one token.
    const int64_t K1 = K_ - 1;
    for (int64_t b = 0; b < B && K1 > 0; ++b) {
      T* hb = hist->data() + b * K1 * Di_;
      std::copy(hb + Di_, hb + K1 * Di_, hb);
      std::copy_n(c.xc.data() + b * Di_, Di_, hb + (K1 - 1) * Di_);
    }
  } else {
    ssm::View uv(u.data(), {B, L, Di_}), vv(c.v.data(), {B, L, Di_});
    inner_.forward(ctx, p, uv, vv);
  }

  // y = out_proj(v * SiLU(z)).
  Buf<T>& g = u;  // u is spent
  k::silu_forward(c.z.data(), g.data(), n);
  elementwise(n, threads, [&](int64_t i) { g[i] *= c.v[i]; });
  k::linear_forward(g.data(), p.data<T>(kOutW_), bias_ ? p.data<T>(kOutB_) : nullptr, y, rows, Di_, H_);
  if (training) training_ok_ = true;
}

// ---------------------------------------------------------- backward (CPU)

template <typename T>
void Mamba::backward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  namespace k = ssm::kernels;
  Cache<T>* c = std::get_if<Cache<T>>(&cache_);
  if (!training_ok_ || !c)
    ssm::fail("mamba: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
  const int64_t B = c->B, L = c->L, rows = B * L, n = rows * Di_;
  ssm::check_shape(dy, {B, L, H_}, "dy (the shape of the last training forward's x)");
  ssm::check_shape(dx, {B, L, H_}, "dx (the shape of the last training forward's x)");
  check_own_shapes<T>(p);
  check_own_shapes<T>(dp);
  const int threads = ctx.threads();

  // Three (B, L, Di) buffers serve the whole backward: g, dg, du.
  // out_proj: dg = dy W_out with g = v * SiLU(z) recomputed.
  Buf<T> g(static_cast<size_t>(n)), dg(static_cast<size_t>(n)), du(static_cast<size_t>(n));
  k::silu_forward(c->z.data(), g.data(), n);
  elementwise(n, threads, [&](int64_t i) { g[i] *= c->v[i]; });
  k::linear_backward(g.data(), p.data<T>(kOutW_), ssm::data<T>(dy, "dy"), dg.data(), dp.data<T>(kOutW_),
                     bias_ ? dp.data<T>(kOutB_) : nullptr, rows, Di_, H_);
  // The gate: dv = dg SiLU(z) (into dg); dz = SiLU'(z) dg v (into g).
  k::silu_forward(c->z.data(), g.data(), n);
  elementwise(n, threads, [&](int64_t i) {
    const T dgv = dg[i] * c->v[i];
    dg[i] *= g[i];
    g[i] = dgv;
  });
  k::silu_backward(c->z.data(), g.data(), g.data(), n);
  const Buf<T>& dz = g;
  // The inner layer: du.
  {
    ssm::View dvv(dg.data(), {B, L, Di_}), duv(du.data(), {B, L, Di_});
    inner_.backward(ctx, p, dvv, duv, dp);
  }
  // SiLU of the conv's output c, recomputed into dg (dv is spent): dc in
  // place of du; then the conv: dxc into dg.
  conv_forward(c->xc.data(), static_cast<const T*>(nullptr), p.data<T>(kConvW_), p.data<T>(kConvB_), dg.data(), B, L,
               Di_, K_, threads);
  k::silu_backward(dg.data(), du.data(), du.data(), n);
  const Buf<T>& dc = du;
  Buf<T>& dxc = dg;
  conv_backward(c->xc.data(), p.data<T>(kConvW_), dc.data(), dxc.data(), dp.data<T>(kConvW_), dp.data<T>(kConvB_), B,
                L, Di_, K_, threads);
  // in_proj, one half of the weight's rows at a time: dx = dxc W_x + dz W_z.
  const T* W_in = p.data<T>(kInW_);
  T* dW_in = dp.data<T>(kInW_);
  T* db_in = bias_ ? dp.data<T>(kInB_) : nullptr;
  T* dxp = ssm::data<T>(dx, "dx");
  Buf<T> dx_z(static_cast<size_t>(rows * H_));
  k::linear_backward(c->x.data(), W_in, dxc.data(), dxp, dW_in, db_in, rows, H_, Di_);
  k::linear_backward(c->x.data(), W_in + Di_ * H_, dz.data(), dx_z.data(), dW_in + Di_ * H_,
                     db_in ? db_in + Di_ : nullptr, rows, H_, Di_);
  elementwise(rows * H_, threads, [&](int64_t i) { dxp[i] += dx_z[i]; });
}

}  // namespace mamba

SSM_PLUGIN_LAYER(mamba::Mamba, "mamba", "1.0.0",
                 "Mamba block: in_proj to (x, z), causal depthwise conv1d and SiLU, any --inner layer (default s6), "
                 "y * SiLU(z), out_proj")
