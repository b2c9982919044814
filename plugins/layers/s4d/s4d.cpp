// S4D on the CPU (the class is declared in s4d.hpp) and the plugin's
// registration.
#include "s4d.hpp"

#include <ssm/sdk.hpp>

#include <cmath>
#include <variant>

namespace s4d {

S4D::S4D(const ssm::Config& cfg)
    : H_(cfg.i64_at_least("d_model", 1)),
      N_(cfg.i64_at_least("d_state", 2)),
      init_(cfg.str("init")),
      dt_min_(cfg.f64_positive("dt_min")),
      dt_max_(cfg.f64_positive("dt_max")),
      lr_ssm_(cfg.f64("lr_ssm")),
      dropout_(cfg.f64("dropout")) {
  if (N_ % 2) ssm::fail("option 'd_state' must be even (N/2 complex conjugate pairs), got " + std::to_string(N_));
  if (init_ != "lin" && init_ != "inv" && init_ != "real")
    ssm::fail("option 'init' must be lin, inv or real, got '" + init_ + "'");
  if (dt_max_ < dt_min_)
    ssm::fail("option 'dt_max' (" + cfg.str("dt_max") + ") must be >= 'dt_min' (" + cfg.str("dt_min") + ")");
  if (!(lr_ssm_ >= 0)) ssm::fail("option 'lr_ssm' must be >= 0, got " + cfg.str("lr_ssm"));
  if (!(dropout_ >= 0 && dropout_ < 1)) ssm::fail("option 'dropout' must be in [0, 1), got " + cfg.str("dropout"));
  N2_ = N_ / 2;
  disc_ = ssm::DiscChild(cfg.str("disc"), cfg);  // the scheme gets our options too (--tau)
}

// ------------------------------------------------------------ the entry points

void S4D::init_params(ssm::Context& ctx, ssm::Params p) {
  ssm::dispatch_real(p[0], "s4d: parameters", [&](auto tag) { init_typed<decltype(tag)>(ctx, p); });
}

void S4D::forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  ssm::dispatch_real(x, "s4d: x", [&](auto tag) { forward_typed<decltype(tag)>(ctx, p, x, y); });
}

void S4D::backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  ssm::dispatch_real(dy, "s4d: dy", [&](auto tag) { backward_typed<decltype(tag)>(p, dy, dx, dp); });
}

std::unique_ptr<ssm::LayerState> S4D::state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) {
  if (batch < 1) ssm::fail("s4d: state_create needs batch >= 1, got " + std::to_string(batch));
  Modes m;
  ssm::dispatch_real(p[0], "s4d: parameters",
                     [&](auto tag) { discretize<decltype(tag)>(ctx, p, m, /*derivatives=*/false); });
  auto st = std::make_unique<State>();
  st->batch = batch;
  st->H = H_;
  st->N2 = N2_;
  st->h.assign(static_cast<size_t>(batch * H_ * N2_), cd(0));
  st->Abar = m.a;
  st->Bbar = m.Bbar;
  st->C = m.C;
  return st;
}

void S4D::step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) {
  auto& st = dynamic_cast<State&>(state);
  ssm::dispatch_real(x, "s4d: x_t", [&](auto tag) { step_typed<decltype(tag)>(p, st, x, y); });
}

// ------------------------------------------------------ parameters and the SSM

std::vector<ssm::ParamSpec> S4D::specs() const {
  // dt, A and B: SSM parameters (lr cap, no weight decay), kept in float32
  // under mixed precision (the kernel's exp(dt A) loses too much in half).
  const uint32_t ssm_flags = SSM_PARAM_SSM | SSM_PARAM_NO_WEIGHT_DECAY | SSM_PARAM_KEEP_FP32;
  auto ssm_param = [&](const char* name, std::vector<int64_t> shape) {
    return ssm::ParamSpec{name, std::move(shape), ssm_flags, lr_ssm_, 0.0};
  };
  auto param = [](const char* name, std::vector<int64_t> shape) { return ssm::ParamSpec{name, std::move(shape)}; };
  return {ssm_param("log_dt", {H_}),      ssm_param("A_real_log", {H_, N2_}),
          ssm_param("A_imag", {H_, N2_}), ssm_param("B", {H_, N2_, 2}),
          param("C", {H_, N2_, 2}),       param("D", {H_}),
          param("W_out", {2 * H_, H_}),   param("b_out", {2 * H_})};
}

template <typename T>
void S4D::init_typed(ssm::Context& ctx, ssm::Params p) {
  check_param_shapes<T>(p);
  auto fill = [&](size_t i, ssm_rng_dist dist) { ctx.rng_fill(i, ctx.rng_offset(), dist, p[i]); };
  T* log_dt = p.data<T>(kLogDt);
  fill(kLogDt, SSM_RNG_UNIFORM);
  const double lo = std::log(dt_min_), hi = std::log(dt_max_);
  for (int64_t h = 0; h < H_; ++h) log_dt[h] = static_cast<T>(lo + double(log_dt[h]) * (hi - lo));

  T* A_real_log = p.data<T>(kARealLog);
  T* A_imag = p.data<T>(kAImag);
  T* B = p.data<T>(kB);
  const double pi = 3.14159265358979323846, N = double(N_);
  for (int64_t h = 0; h < H_; ++h)
    for (int64_t n = 0; n < N2_; ++n) {
      // Stored form (docs/math.md §0): A = -exp(A_real_log) - i A_imag, so
      // A_real_log = log(-Re A) and A_imag = -Im A.
      double minus_re_A = 0.5, minus_im_A = 0;
      if (init_ == "lin")
        minus_im_A = pi * double(n);
      else if (init_ == "inv")
        minus_im_A = (N / pi) * (N / double(2 * n + 1) - 1);
      else
        minus_re_A = double(n + 1);
      A_real_log[h * N2_ + n] = static_cast<T>(std::log(minus_re_A));
      A_imag[h * N2_ + n] = static_cast<T>(minus_im_A);
      B[2 * (h * N2_ + n)] = T(1);
      B[2 * (h * N2_ + n) + 1] = T(0);
    }

  // C ~ complex standard normal: re and im each N(0, 1/2), E|C|^2 = 1.
  fill(kC, SSM_RNG_NORMAL);
  T* C = p.data<T>(kC);
  for (int64_t i = 0; i < ssm::numel(p[kC]); ++i) C[i] = static_cast<T>(double(C[i]) * std::sqrt(0.5));
  fill(kD, SSM_RNG_NORMAL);

  // PyTorch's Conv1d/Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(double(H_));
  for (size_t i : {size_t(kWOut), size_t(kBOut)}) {
    fill(i, SSM_RNG_UNIFORM);
    T* w = p.data<T>(i);
    for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
  }
}

template <typename T>
void S4D::discretize(ssm::Context& ctx, ssm::Params p, Modes& m, bool derivatives) {
  check_param_shapes<T>(p);
  m.load(p.data<T>(kLogDt), p.data<T>(kARealLog), p.data<T>(kAImag), p.data<T>(kB), p.data<T>(kC), H_, N2_);
  auto view = [&](std::vector<cd>& v) { return ssm::View(v.data(), {H_, N2_}); };
  ssm::View z = view(m.z), a = view(m.a), beta = view(m.beta), da = view(m.da), dbeta = view(m.dbeta);
  disc_.eval(ctx.raw(), z, a.get(), beta.get(), derivatives ? da.get() : nullptr,
             derivatives ? dbeta.get() : nullptr);
  m.derive();
}

template <typename T>
void S4D::check_param_shapes(ssm::Params p) const {
  if (p.size() != kParamCount) ssm::fail("s4d: expected " + std::to_string(kParamCount) + " parameter tensors");
  const std::vector<ssm::ParamSpec> specs = this->specs();
  for (size_t i = 0; i < kParamCount; ++i) {
    const DLTensor& t = p[i];
    bool ok = t.ndim == static_cast<int32_t>(specs[i].shape.size());
    for (int k = 0; ok && k < t.ndim; ++k) ok = t.shape[k] == specs[i].shape[k];
    if (!ok) {
      std::string want = "(";
      for (size_t k = 0; k < specs[i].shape.size(); ++k) want += (k ? ", " : "") + std::to_string(specs[i].shape[k]);
      ssm::fail("s4d: parameter '" + specs[i].name + "' has shape " + ssm::shape_str(t) + ", expected " + want +
                ") for d_model=" + std::to_string(H_) + ", d_state=" + std::to_string(N_));
    }
    ssm::data<T>(t, specs[i].name.c_str());  // checks dtype and density
  }
}

std::pair<int64_t, int64_t> S4D::sequence_shape(const DLTensor& t, const char* what) const {
  if (t.ndim != 3 || t.shape[2] != H_ || t.shape[1] < 1)
    ssm::fail(std::string("s4d: ") + what + " has shape " + ssm::shape_str(t) +
              ", expected (B, L >= 1, d_model=" + std::to_string(H_) + ")");
  return {t.shape[0], t.shape[1]};
}

// ------------------------------------------------- the convolution mode (CPU)

void S4D::conv_kernel(ssm::Context& ctx, ssm::Params p, int64_t length, DLTensor& out) {
  if (length < 1) ssm::fail("s4d: kernel length must be >= 1, got " + std::to_string(length));
  ssm::check_shape(out, {H_, length}, "kernel");
  double* K = ssm::data<double>(out, "kernel");
  ssm::dispatch_real(p[0], "s4d: parameters", [&](auto tag) {
    using T = decltype(tag);
    Modes m;
    Powers pw;
    discretize<T>(ctx, p, m, /*derivatives=*/false);
    pw.build(m, length);
    std::vector<T> k(static_cast<size_t>(H_ * length));
    kernel_forward(m, pw, k.data());
    std::copy(k.begin(), k.end(), K);
  });
}

template <typename T>
Cache<T>& S4D::training_cache() {
  if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
  return std::get<Cache<T>>(cache_);
}

template <typename T>
void S4D::forward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  const auto [B, L] = sequence_shape(x, "x");
  if (sequence_shape(y, "y") != std::make_pair(B, L))
    ssm::fail("s4d: y has shape " + ssm::shape_str(y) + ", expected that of x");
  const bool training = ctx.training();
  if (training) training_ok_ = false;  // until this forward has filled the cache
  Cache<T> local;
  Cache<T>& c = training ? training_cache<T>() : local;
  discretize<T>(ctx, p, c.modes, /*derivatives=*/training);
  c.powers.build(c.modes, L);
  c.K.resize(static_cast<size_t>(H_ * L));
  kernel_forward(c.modes, c.powers, c.K.data());
  // K * u + D u = (K + D delta_0) * u: the skip term rides on lag 0 of the kernel.
  const T* D = p.data<T>(kD);
  for (int64_t h = 0; h < H_; ++h) c.K[h * L] += D[h];

  s4block::forward(ctx, c, ssm::data<T>(x, "x"), ssm::data<T>(y, "y"), p.data<T>(kWOut), p.data<T>(kBOut), B, L, H_,
                   dropout_, kDropoutStream);
  if (training) training_ok_ = true;
}

template <typename T>
void S4D::backward_typed(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  Cache<T>* c = std::get_if<Cache<T>>(&cache_);
  if (!training_ok_ || !c)
    ssm::fail("s4d: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
  const int64_t B = c->B, L = c->L;
  if (sequence_shape(dy, "dy") != std::make_pair(B, L) || sequence_shape(dx, "dx") != std::make_pair(B, L))
    ssm::fail("s4d: dy and dx must have the shape of the last training forward's x, (" + std::to_string(B) + ", " +
              std::to_string(L) + ", " + std::to_string(H_) + ")");
  if (dp.size() != kParamCount) ssm::fail("s4d: expected " + std::to_string(kParamCount) + " gradient tensors");
  check_param_shapes<T>(dp);

  // The block (s4_block.hpp): dx, dW_out, db_out, and dK, whose lag 0 carries
  // D's gradient (D rides on lag 0).
  s4block::backward(*c, ssm::data<T>(dy, "dy"), ssm::data<T>(dx, "dx"), p.data<T>(kWOut), dp.data<T>(kWOut),
                    dp.data<T>(kBOut), H_);
  const std::vector<T>& dK = c->dK;
  T* dD = dp.data<T>(kD);
  for (int64_t h = 0; h < H_; ++h) dD[h] += dK[h * L];
  kernel_backward(c->modes, c->powers, dK.data(),
                  KernelGrads<T>{dp.data<T>(kLogDt), dp.data<T>(kARealLog), dp.data<T>(kAImag), dp.data<T>(kB),
                                 dp.data<T>(kC)});
}

// -------------------------------------------------- the recurrent mode (CPU)

template <typename T>
void S4D::step_typed(ssm::Params p, State& st, const DLTensor& x, DLTensor& y) {
  const int64_t B = st.batch;
  for (const DLTensor* t : {&x, static_cast<const DLTensor*>(&y)})
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != H_)
      ssm::fail("s4d: step tensors must be (batch=" + std::to_string(B) + ", d_model=" + std::to_string(H_) +
                "), got " + ssm::shape_str(*t));
  check_param_shapes<T>(p);
  const T* u = ssm::data<T>(x, "x_t");
  const T* D = p.data<T>(kD);
  std::vector<T> v(static_cast<size_t>(B * H_));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H_; ++h) {
      const double ut = double(u[b * H_ + h]);
      cd* state = st.h.data() + (b * H_ + h) * N2_;
      const int64_t m = h * N2_;
      double out = 0;
      for (int64_t k = 0; k < N2_; ++k) {
        state[k] = st.Abar[m + k] * state[k] + st.Bbar[m + k] * ut;
        out += (st.C[m + k] * state[k]).real();
      }
      v[b * H_ + h] = static_cast<T>(2 * out + double(D[h]) * ut);
    }
  s4block::step_output(v.data(), p.data<T>(kWOut), p.data<T>(kBOut), ssm::data<T>(y, "y_t"), B, H_);
}

}  // namespace s4d

SSM_PLUGIN_LAYER(s4d::S4D, "s4d", "1.0.0",
                 "S4D block: diagonal SSM convolution (any --disc), GELU, dropout, Linear H->2H and GLU")
