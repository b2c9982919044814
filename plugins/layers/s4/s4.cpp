// S4 on the CPU (the class is declared in s4.hpp) and the plugin's
// registration: `s4`, or `s4lr` when built with S4_VARIANT_LR.
#include "s4.hpp"

#include <ssm/ext/disc_exp.h>
#include <ssm/ext/disc_gbt.h>
#include <ssm/sdk.hpp>

#include <cmath>
#include <cstddef>
#include <variant>

#include "nplr.hpp"

namespace s4 {

namespace {

constexpr int64_t kMaxKernelLength = int64_t(1) << 40;

template <class Ext>
const Ext* read_extension(const ssm::DiscChild& disc, const char* id, size_t last_field_end) {
  const auto* e = static_cast<const Ext*>(disc.extension(id));
  if (!e || e->struct_size < last_field_end) return nullptr;
  return e;
}

}  // namespace

std::vector<ssm::Option> S4::options_with(const char* default_init) {
  return {
      ssm::Option::integer("d_model", "64", "channels H"),
      ssm::Option::integer("d_state", "64", "state size N per channel (even: N/2 complex conjugate pairs)"),
      ssm::Option::integer("rank", "1", "rank of the low-rank part P of A = Lambda - P P* (dplr mode)"),
      ssm::Option::string("mode", "dplr",
                          "dplr: the full S4 kernel (A = Lambda - P P*); diag: Lambda alone (S4D-LegS), any --disc"),
      ssm::Option::string(
          "init", default_init,
          "legs: the NPLR form of HiPPO-LegS; random: Re Lambda = -1/2, Im Lambda = -exp(N(0,1)), B = 1, P random"),
      ssm::Option::integer("l_max", "1024",
                           "kernel length C~ = C (I - Abar^l_max) is attuned to; shorter inputs truncate the kernel, "
                           "longer ones double it (as the official S4)"),
      ssm::Option::real("dt_min", "0.001", "smallest initial step dt (log-uniform in [dt_min, dt_max])"),
      ssm::Option::real("dt_max", "0.1", "largest initial step dt"),
      ssm::Option::disc("disc", "bilinear",
                        "discretization: dplr mode takes bilinear, dirac, backward_euler (Cauchy kernel), zoh, async "
                        "(dense exponential); diag mode any"),
      ssm::Option::real("lr_ssm", "0.001", "learning-rate cap of log_dt, A, P and B (no weight decay); 0: none"),
      ssm::Option::real("dropout", "0.0", "dropout after the GELU, one mask per (batch, channel)"),
  };
}

S4::S4(const ssm::Config& cfg)
    : H_(cfg.i64_at_least("d_model", 1)),
      N_(cfg.i64_at_least("d_state", 2)),
      N2_(0),
      R_(cfg.i64_at_least("rank", 1)),
      l_max_(cfg.i64_at_least("l_max", 1)),
      mode_(Mode::kDplr),
      init_(cfg.str("init")),
      disc_name_(cfg.str("disc")),
      dt_min_(cfg.f64_positive("dt_min")),
      dt_max_(cfg.f64_positive("dt_max")),
      lr_ssm_(cfg.f64("lr_ssm")),
      dropout_(cfg.f64("dropout")) {
  if (N_ % 2) ssm::fail("option 'd_state' must be even (N/2 complex conjugate pairs), got " + std::to_string(N_));
  const std::string mode = cfg.str("mode");
  if (mode == "diag")
    mode_ = Mode::kDiag;
  else if (mode != "dplr")
    ssm::fail("option 'mode' must be dplr or diag, got '" + mode + "'");
  if (init_ != "legs" && init_ != "random") ssm::fail("option 'init' must be legs or random, got '" + init_ + "'");
  if (dt_max_ < dt_min_)
    ssm::fail("option 'dt_max' (" + cfg.str("dt_max") + ") must be >= 'dt_min' (" + cfg.str("dt_min") + ")");
  if (!(lr_ssm_ >= 0)) ssm::fail("option 'lr_ssm' must be >= 0, got " + cfg.str("lr_ssm"));
  if (!(dropout_ >= 0 && dropout_ < 1)) ssm::fail("option 'dropout' must be in [0, 1), got " + cfg.str("dropout"));
  if (l_max_ > kMaxKernelLength) ssm::fail("option 'l_max' must be <= 2^40, got " + cfg.str("l_max"));
  N2_ = N_ / 2;
  disc_ = ssm::DiscChild(disc_name_, cfg);  // the scheme gets our options too (--tau)
  if (mode_ == Mode::kDplr) {
    if (const auto* g = read_extension<ssm_disc_gbt>(disc_, SSM_EXT_DISC_GBT, offsetof(ssm_disc_gbt, alpha) + 8)) {
      scheme_.kind = Scheme::kGbt;
      scheme_.alpha = g->alpha;
    } else if (const auto* e =
                   read_extension<ssm_disc_exp>(disc_, SSM_EXT_DISC_EXP, offsetof(ssm_disc_exp, tau) + 8)) {
      scheme_.kind = Scheme::kExp;
      scheme_.tau = e->tau;
    } else {
      ssm::fail("s4 (--mode dplr) takes a discretization of the generalised bilinear family (" SSM_EXT_DISC_GBT
                ": bilinear, dirac, backward_euler) or of the exponential family (" SSM_EXT_DISC_EXP
                ": zoh, async); '" +
                disc_name_ + "' declares neither. --mode diag takes every discretization.");
    }
    if (!(scheme_.alpha >= 0 && scheme_.alpha <= 1) || !(scheme_.tau > 0 && std::isfinite(scheme_.tau)))
      ssm::fail("s4: discretization '" + disc_name_ + "' declares an invalid alpha or tau");
  }
}

// ------------------------------------------------------------ the entry points

void S4::init_params(ssm::Context& ctx, ssm::Params p) {
  ssm::dispatch_real(p[0], "s4: parameters", [&](auto tag) { init_typed<decltype(tag)>(ctx, p); });
}

void S4::forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  ssm::dispatch_real(x, "s4: x", [&](auto tag) { forward_typed<decltype(tag)>(ctx, p, x, y); });
}

void S4::backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  ssm::dispatch_real(dy, "s4: dy", [&](auto tag) { backward_typed<decltype(tag)>(p, dy, dx, dp); });
}

std::unique_ptr<ssm::LayerState> S4::state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) {
  if (batch < 1) ssm::fail("s4: state_create needs batch >= 1, got " + std::to_string(batch));
  auto st = std::make_unique<State>();
  st->batch = batch;
  st->H = H_;
  if (mode_ == Mode::kDiag) {
    s4d::Modes m;
    ssm::dispatch_real(p[0], "s4: parameters",
                       [&](auto tag) { diag_modes<decltype(tag)>(ctx, p, m, /*derivatives=*/false); });
    st->diag = true;
    st->N2 = N2_;
    st->h.assign(static_cast<size_t>(batch * H_ * N2_), cd(0));
    st->Abar = m.a;
    st->Bbar = m.Bbar;
    st->C = m.C;
    return st;
  }
  // The dense discretised system of every channel, and C recovered from C~.
  Dplr m;
  ssm::dispatch_real(p[0], "s4: parameters", [&](auto tag) {
    using T = decltype(tag);
    check_param_shapes<T>(p);
    m = load_dplr<T>(p);
  });
  st->N = N_;
  st->x.assign(static_cast<size_t>(batch * H_ * N_), 0.0);
  step_system(m, scheme_, l_max_, st->Abar_r, st->Bbar_r, st->C_r);
  return st;
}

void S4::step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) {
  auto& st = dynamic_cast<State&>(state);
  ssm::dispatch_real(x, "s4: x_t", [&](auto tag) { step_typed<decltype(tag)>(p, st, x, y); });
}

// ------------------------------------------------------ parameters and the SSM

std::vector<ssm::ParamSpec> S4::specs() const {
  // dt, A (Lambda), P and B: SSM parameters (lr cap, no weight decay), kept
  // in float32 under mixed precision.
  const uint32_t ssm_flags = SSM_PARAM_SSM | SSM_PARAM_NO_WEIGHT_DECAY | SSM_PARAM_KEEP_FP32;
  auto ssm_param = [&](const char* name, std::vector<int64_t> shape) {
    return ssm::ParamSpec{name, std::move(shape), ssm_flags, lr_ssm_, 0.0};
  };
  auto param = [](const char* name, std::vector<int64_t> shape) { return ssm::ParamSpec{name, std::move(shape)}; };
  std::vector<ssm::ParamSpec> s = {ssm_param("log_dt", {H_}), ssm_param("A_real_log", {H_, N2_}),
                                   ssm_param("A_imag", {H_, N2_})};
  if (mode_ == Mode::kDplr) s.push_back(ssm_param("P", {R_, H_, N2_, 2}));
  s.push_back(ssm_param("B", {H_, N2_, 2}));
  s.push_back(param("C", {H_, N2_, 2}));
  s.push_back(param("D", {H_}));
  s.push_back(param("W_out", {2 * H_, H_}));
  s.push_back(param("b_out", {2 * H_}));
  return s;
}

template <typename T>
void S4::init_typed(ssm::Context& ctx, ssm::Params p) {
  check_param_shapes<T>(p);
  auto fill = [&](size_t i, ssm_rng_dist dist) { ctx.rng_fill(i, ctx.rng_offset(), dist, p[i]); };
  T* log_dt = p.data<T>(iLogDt());
  fill(iLogDt(), SSM_RNG_UNIFORM);
  const double lo = std::log(dt_min_), hi = std::log(dt_max_);
  for (int64_t h = 0; h < H_; ++h) log_dt[h] = static_cast<T>(lo + double(log_dt[h]) * (hi - lo));

  // Stored form: Lambda = -exp(A_real_log) - i A_imag.
  T* A_real_log = p.data<T>(iARealLog());
  T* A_imag = p.data<T>(iAImag());
  T* B = p.data<T>(iB());
  T* P = mode_ == Mode::kDplr ? p.data<T>(iP()) : nullptr;
  const int64_t n = H_ * N2_;
  if (init_ == "legs") {
    // Every channel the same NPLR of HiPPO-LegS; ranks beyond the first are 0
    // (the official rank_correction pads with zeros).
    const Nplr nplr = legs_nplr(N_);
    for (int64_t h = 0; h < H_; ++h)
      for (int64_t k = 0; k < N2_; ++k) {
        const int64_t i = h * N2_ + k;
        A_real_log[i] = static_cast<T>(std::log(-nplr.Lambda[k].real()));
        A_imag[i] = static_cast<T>(-nplr.Lambda[k].imag());
        B[2 * i] = static_cast<T>(nplr.B[k].real());
        B[2 * i + 1] = static_cast<T>(nplr.B[k].imag());
        if (P)
          for (int64_t r = 0; r < R_; ++r) {
            const cd v = r == 0 ? nplr.P[k] : cd(0);
            P[2 * (r * n + i)] = static_cast<T>(v.real());
            P[2 * (r * n + i) + 1] = static_cast<T>(v.imag());
          }
      }
  } else {
    // The official dplr(init='random'): Re Lambda = -1/2, Im Lambda =
    // -exp(N(0, 1)), B = 1, P complex standard normal.
    fill(iAImag(), SSM_RNG_NORMAL);
    for (int64_t i = 0; i < n; ++i) {
      A_real_log[i] = static_cast<T>(std::log(0.5));
      A_imag[i] = static_cast<T>(std::exp(double(A_imag[i])));
      B[2 * i] = T(1);
      B[2 * i + 1] = T(0);
    }
    if (P) {
      fill(iP(), SSM_RNG_NORMAL);
      for (int64_t i = 0; i < ssm::numel(p[iP()]); ++i) P[i] = static_cast<T>(double(P[i]) * std::sqrt(0.5));
    }
  }

  // C (C~ in dplr mode) ~ complex standard normal: re and im each N(0, 1/2).
  fill(iC(), SSM_RNG_NORMAL);
  T* C = p.data<T>(iC());
  for (int64_t i = 0; i < ssm::numel(p[iC()]); ++i) C[i] = static_cast<T>(double(C[i]) * std::sqrt(0.5));
  fill(iD(), SSM_RNG_NORMAL);

  // PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  const double bound = 1.0 / std::sqrt(double(H_));
  for (size_t i : {iWOut(), iBOut()}) {
    fill(i, SSM_RNG_UNIFORM);
    T* w = p.data<T>(i);
    for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
  }
}

template <typename T>
void S4::check_param_shapes(ssm::Params p) const {
  if (p.size() != count()) ssm::fail("s4: expected " + std::to_string(count()) + " parameter tensors");
  const std::vector<ssm::ParamSpec> specs = this->specs();
  for (size_t i = 0; i < count(); ++i) {
    const DLTensor& t = p[i];
    bool ok = t.ndim == static_cast<int32_t>(specs[i].shape.size());
    for (int k = 0; ok && k < t.ndim; ++k) ok = t.shape[k] == specs[i].shape[k];
    if (!ok) {
      std::string want = "(";
      for (size_t k = 0; k < specs[i].shape.size(); ++k) want += (k ? ", " : "") + std::to_string(specs[i].shape[k]);
      ssm::fail("s4: parameter '" + specs[i].name + "' has shape " + ssm::shape_str(t) + ", expected " + want +
                ") for d_model=" + std::to_string(H_) + ", d_state=" + std::to_string(N_) +
                (mode_ == Mode::kDplr ? ", rank=" + std::to_string(R_) : std::string(", mode=diag")));
    }
    ssm::data<T>(t, specs[i].name.c_str());  // checks dtype and density
  }
}

std::pair<int64_t, int64_t> S4::sequence_shape(const DLTensor& t, const char* what) const {
  if (t.ndim != 3 || t.shape[2] != H_ || t.shape[1] < 1)
    ssm::fail(std::string("s4: ") + what + " has shape " + ssm::shape_str(t) +
              ", expected (B, L >= 1, d_model=" + std::to_string(H_) + ")");
  return {t.shape[0], t.shape[1]};
}

// ------------------------------------------------- the convolution mode (CPU)

template <typename T>
Cache<T>& S4::training_cache() {
  if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
  return std::get<Cache<T>>(cache_);
}

template <typename T>
void S4::forward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
  const auto [B, L] = sequence_shape(x, "x");
  if (sequence_shape(y, "y") != std::make_pair(B, L))
    ssm::fail("s4: y has shape " + ssm::shape_str(y) + ", expected that of x");
  check_param_shapes<T>(p);
  const bool training = ctx.training();
  if (training) training_ok_ = false;  // until this forward has filled the cache
  Cache<T> local;
  Cache<T>& c = training ? training_cache<T>() : local;

  c.K.resize(static_cast<size_t>(H_ * L));
  if (mode_ == Mode::kDiag)
    kernel_diag<T>(ctx, p, c, L, training);
  else
    kernel_dplr<T>(p, c, L, training);
  // K * u + D u = (K + D delta_0) * u: the skip term rides on lag 0 of the kernel.
  const T* D = p.data<T>(iD());
  for (int64_t h = 0; h < H_; ++h) c.K[h * L] += D[h];

  s4block::forward(ctx, c, ssm::data<T>(x, "x"), ssm::data<T>(y, "y"), p.data<T>(iWOut()), p.data<T>(iBOut()), B, L,
                   H_, dropout_, dropout_stream());
  if (training) training_ok_ = true;
}

template <typename T>
void S4::backward_typed(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
  Cache<T>* c = std::get_if<Cache<T>>(&cache_);
  if (!training_ok_ || !c)
    ssm::fail("s4: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
  const int64_t B = c->B, L = c->L;
  if (sequence_shape(dy, "dy") != std::make_pair(B, L) || sequence_shape(dx, "dx") != std::make_pair(B, L))
    ssm::fail("s4: dy and dx must have the shape of the last training forward's x, (" + std::to_string(B) + ", " +
              std::to_string(L) + ", " + std::to_string(H_) + ")");
  if (dp.size() != count()) ssm::fail("s4: expected " + std::to_string(count()) + " gradient tensors");
  check_param_shapes<T>(dp);

  s4block::backward(*c, ssm::data<T>(dy, "dy"), ssm::data<T>(dx, "dx"), p.data<T>(iWOut()), dp.data<T>(iWOut()),
                    dp.data<T>(iBOut()), H_);
  T* dD = dp.data<T>(iD());
  for (int64_t h = 0; h < H_; ++h) dD[h] += c->dK[h * L];
  if (mode_ == Mode::kDiag)
    s4d::kernel_backward(c->modes, c->powers, c->dK.data(),
                         s4d::KernelGrads<T>{dp.data<T>(iLogDt()), dp.data<T>(iARealLog()), dp.data<T>(iAImag()),
                                             dp.data<T>(iB()), dp.data<T>(iC())});
  else
    kernel_dplr_backward<T>(*c, dp);
}

// ---------------------------------------------------------- --mode diag

template <typename T>
void S4::diag_modes(ssm::Context& ctx, ssm::Params p, s4d::Modes& m, bool derivatives) {
  check_param_shapes<T>(p);
  m.load(p.data<T>(iLogDt()), p.data<T>(iARealLog()), p.data<T>(iAImag()), p.data<T>(iB()), p.data<T>(iC()), H_, N2_);
  auto view = [&](std::vector<cd>& v) { return ssm::View(v.data(), {H_, N2_}); };
  ssm::View z = view(m.z), a = view(m.a), beta = view(m.beta), da = view(m.da), dbeta = view(m.dbeta);
  disc_.eval(ctx.raw(), z, a.get(), beta.get(), derivatives ? da.get() : nullptr,
             derivatives ? dbeta.get() : nullptr);
  m.derive();
}

template <typename T>
void S4::kernel_diag(ssm::Context& ctx, ssm::Params p, Cache<T>& c, int64_t L, bool training) {
  diag_modes<T>(ctx, p, c.modes, /*derivatives=*/training);
  c.powers.build(c.modes, L);
  s4d::kernel_forward(c.modes, c.powers, c.K.data());
}

// ---------------------------------------------------------- --mode dplr

template <typename T>
Dplr S4::load_dplr(ssm::Params p) const {
  Dplr m;
  m.load(p.data<T>(iLogDt()), p.data<T>(iARealLog()), p.data<T>(iAImag()), p.data<T>(iP()), p.data<T>(iB()),
         p.data<T>(iC()), H_, N2_, R_);
  return m;
}

template <typename T>
void S4::kernel_dplr(ssm::Params p, Cache<T>& c, int64_t L, bool training) {
  int64_t lk = l_max_;
  while (lk < L) lk *= 2;
  if (lk > kMaxKernelLength) ssm::fail("s4: sequence length " + std::to_string(L) + " is too long");
  c.K64.resize(static_cast<size_t>(H_ * L));
  c.kernel.forward(load_dplr<T>(p), scheme_, l_max_, L, fft_, c.K64.data(), training);
  for (size_t i = 0; i < c.K64.size(); ++i) c.K[i] = static_cast<T>(c.K64[i]);
}

template <typename T>
void S4::kernel_dplr_backward(Cache<T>& c, ssm::Params dp) {
  DplrGrad g;
  const Dplr& m = c.kernel.params();
  g.zero(m);
  c.kernel.backward(c.dK.data(), fft_, g);
  g.write(m, dp.data<T>(iLogDt()), dp.data<T>(iARealLog()), dp.data<T>(iAImag()), dp.data<T>(iP()), dp.data<T>(iB()),
          dp.data<T>(iC()));
}

// -------------------------------------------------- the recurrent mode (CPU)

template <typename T>
void S4::step_typed(ssm::Params p, State& st, const DLTensor& x, DLTensor& y) {
  const int64_t B = st.batch;
  for (const DLTensor* t : {&x, static_cast<const DLTensor*>(&y)})
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != H_)
      ssm::fail("s4: step tensors must be (batch=" + std::to_string(B) + ", d_model=" + std::to_string(H_) +
                "), got " + ssm::shape_str(*t));
  check_param_shapes<T>(p);
  const T* u = ssm::data<T>(x, "x_t");
  const T* D = p.data<T>(iD());
  std::vector<T> v(static_cast<size_t>(B * H_));
  if (st.diag) {
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
  } else {
    Vec next(N_);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H_; ++h) {
        const double ut = double(u[b * H_ + h]);
        Eigen::Map<Vec> s(st.x.data() + (b * H_ + h) * N_, N_);
        next.noalias() = st.Abar_r[h] * s;
        s = next + st.Bbar_r[h] * ut;
        v[b * H_ + h] = static_cast<T>(st.C_r[h].dot(s) + double(D[h]) * ut);
      }
  }
  s4block::step_output(v.data(), p.data<T>(iWOut()), p.data<T>(iBOut()), ssm::data<T>(y, "y_t"), B, H_);
}

}  // namespace s4

#ifdef S4_VARIANT_LR
SSM_PLUGIN_LAYER(s4::S4LR, "s4lr", "1.0.0",
                 "S4 with the random DPLR initialisation (the learnable low-rank S4 of the FilippoOlivo seed): "
                 "s4 with --init random")
#else
SSM_PLUGIN_LAYER(s4::S4, "s4", "1.0.0",
                 "S4 block: DPLR SSM convolution (HiPPO-LegS, Cauchy kernel; any --disc in --mode diag), GELU, "
                 "dropout, Linear H->2H and GLU")
#endif
