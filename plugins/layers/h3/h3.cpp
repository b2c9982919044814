// h3: the H3 layer (Fu, Dao et al. 2023, "Hungry Hungry Hippos";
// HazyResearch/H3 src/models/ssm/h3.py; docs/math.md §5), channel-last
// (B, L, H) -> (B, L, H), with its inner SSM any layer plugin (--inner,
// default s4db: s4d with the bilinear discretization, as H3's default
// `disc='bilinear'`).
//
//   [q | k | v] = W_qkv x + b_qkv        W_qkv (3H, H), b_qkv (3H): H3's q_proj, k_proj, v_proj
//   k~ = K_shift * k + D_k ⊙ k           the shift SSM on k (a causal FIR, below)
//   kv[(h,i,j)] = k~[h dh + i] v[h dh + j]      heads h < nh = H/dh, i, j < dh = head_dim
//   s = inner(kv)                        the inner layer on H' = nh dh² = H dh channels
//   o[j nh + h] = Σ_i q[h dh + i] s[(h,i,j)]
//   y = W_out o + b_out                  W_out (H, H), b_out (H)
//
// The shift SSM: a discrete SSM with A the shift matrix (ones below the
// diagonal), B (H, N) and C (H, N) trained, N = d_state. Its state is the
// last N inputs, x_t = shift_right(x_{t-1}) + B k_t, k~_t = C x_t, so its
// kernel is the cross-correlation K_shift[h, l] = Σ_m B[h,m] C[h,m+l] for
// l < N, 0 beyond (H3's irfft(conj(rfft B) rfft C, 2N)[:N]): a learned FIR
// of length N. It runs as a long convolution (the SDK's fftconv) with D_k
// folded into lag 0, like s4d's D. Initialisation as H3's: B = e_1,
// C ~ U(±1/sqrt(N)) (PyTorch's Conv1d init), D_k ~ N(0, 1); B is an SSM
// parameter (lr capped at lr_ssm, no weight decay).
//
// How the inner layer is fed (the mapping of H3's per-head state). H3 runs
// one diagonal SSM per head h, shared by the head's dh x dh entries
// kv[(h,i,j)] (the outer product k~ v^T of the head, a state of dh² values),
// plus its own skip D_h kv. An inner *layer* maps (B, L, H') -> (B, L, H')
// channel by channel, so the outer product is laid out as H' = nh dh²
// channels, channel index c = (h dh + i) dh + j (head-major, then i, then j),
// and handed to the inner layer created with d_model = H' (every other
// option is this layer's, so --d-state, --disc, --init reach it). Each
// (h, i, j) gets its own SSM channel where H3 ties one kernel across the
// dh² entries of a head: the tied model is the special case of equal
// channels. With head_dim = 1 (H3's default) H' = H and the two agree
// channel for channel. The inner layer brings its own skip term (s4d's D)
// and whatever it adds around its SSM: the default s4d is the S4D block
// (the SSM, D, GELU, Linear H'->2H', GLU), not H3's bare kernel.
//
// Backward: do = W_outᵀ dy; ds[(h,i,j)] = q[h dh+i] do[j nh+h] and
// dq[h dh+i] = Σ_j s[(h,i,j)] do[j nh+h]; the inner layer's backward gives
// dkv; dk~[h dh+i] = Σ_j dkv[(h,i,j)] v[h dh+j], dv[h dh+j] = Σ_i dkv[(h,i,j)] k~[h dh+i];
// the convolution's backward gives dk and dK_shift, whose lag 0 is dD_k and
// dB[h,m] = Σ_l dK[h,l] C[h,m+l], dC[h,n] = Σ_{l<=n} dK[h,l] B[h,n-l];
// then the in-projection.
//
// Recurrent mode: the shift SSM's state (B, H, N), the inner layer's state,
// and per token the same products.
#include <ssm/kernels/fftconv.hpp>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace h3 {

enum Param : size_t { kWqkv, kBqkv, kShiftB, kShiftC, kDk, kWOut, kBOut, kOwnCount };

template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  std::vector<T> x;    // the input (B, L, H)
  std::vector<T> qkv;  // the in-projection (B, L, 3H)
  std::vector<T> K;    // the shift kernel (H, L), D_k on lag 0
  std::vector<T> kt;   // k~ (B, L, H)
  std::vector<T> s;    // the inner layer's output (B, L, H')
  std::vector<T> o;    // W_out's input (B, L, H)
  ssm::kernels::FftConvSpectra<T> k_spectra;
};

struct State : ssm::LayerState {
  int64_t batch = 0;
  std::vector<double> shift;  // (batch, H, N): the shift SSM's state
  ssm::ChildState inner;
};

class H3 : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H"),
        ssm::Option::integer("d_state", "64", "N: the shift SSM's state (its FIR length); also the inner layer's"),
        ssm::Option::integer("head_dim", "1", "dh: channels per head (divides d_model); the inner layer gets H*dh"),
        ssm::Option::layer("inner", "s4db", "the inner diagonal SSM: any layer plugin, on H*head_dim channels"),
        ssm::Option::real("lr_ssm", "0.001", "learning-rate cap of the shift SSM's B (no weight decay); 0: none"),
    };
  }

  explicit H3(const ssm::Config& cfg)
      : H_(cfg.i64_at_least("d_model", 1)),
        N_(cfg.i64_at_least("d_state", 1)),
        dh_(cfg.i64_at_least("head_dim", 1)),
        lr_ssm_(cfg.f64("lr_ssm")) {
    if (H_ % dh_)
      ssm::fail("option 'head_dim' (" + std::to_string(dh_) + ") must divide d_model (" + std::to_string(H_) + ")");
    if (!(lr_ssm_ >= 0)) ssm::fail("option 'lr_ssm' must be >= 0, got " + cfg.str("lr_ssm"));
    nh_ = H_ / dh_;
    Hi_ = H_ * dh_;
    inner_ = ssm::LayerChild(cfg.str("inner"), cfg, "inner.", {{"d_model", std::to_string(Hi_)}});
  }

  std::vector<ssm::ParamSpec> params() override {
    auto bias = [](const char* name, int64_t n) {
      return ssm::ParamSpec{name, {n}, SSM_PARAM_NO_WEIGHT_DECAY, 0.0, 0.0};
    };
    std::vector<ssm::ParamSpec> p = {
        {"W_qkv", {3 * H_, H_}},
        bias("b_qkv", 3 * H_),
        {"shift_B", {H_, N_}, SSM_PARAM_SSM | SSM_PARAM_NO_WEIGHT_DECAY, lr_ssm_, 0.0},
        {"shift_C", {H_, N_}},
        bias("D_k", H_),
        {"W_out", {H_, H_}},
        bias("b_out", H_),
    };
    inner_.append_params(p);
    return p;
  }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "h3: parameters", [&](auto tag) {
      using T = decltype(tag);
      check_params<T>(p);
      auto uniform = [&](size_t i, double bound) {
        ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
        T* w = p.data<T>(i);
        for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
      };
      const double lin = 1.0 / std::sqrt(double(H_));  // nn.Linear's default
      for (size_t i : {size_t(kWqkv), size_t(kBqkv), size_t(kWOut), size_t(kBOut)}) uniform(i, lin);
      T* Bs = p.data<T>(kShiftB);
      std::fill_n(Bs, H_ * N_, T(0));
      for (int64_t h = 0; h < H_; ++h) Bs[h * N_] = T(1);  // e_1
      uniform(kShiftC, 1.0 / std::sqrt(double(N_)));
      ctx.rng_fill(kDk, ctx.rng_offset(), SSM_RNG_NORMAL, p[kDk]);
    });
    inner_.init_params(ctx, p);
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    ssm::check_shape(x, {-1, -1, H_}, "h3: x");
    ssm::check_shape(y, {x.shape[0], x.shape[1], H_}, "h3: y");
    if (x.shape[1] < 1) ssm::fail("h3: x has shape " + ssm::shape_str(x) + ", expected L >= 1");
    ssm::dispatch_real(x, "h3: x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
  }

  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    ssm::dispatch_real(dy, "h3: dy", [&](auto tag) { backward_as<decltype(tag)>(ctx, p, dy, dx, dp); });
  }

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override {
    if (batch < 1) ssm::fail("h3: state_create needs batch >= 1, got " + std::to_string(batch));
    auto s = std::make_unique<State>();
    s->batch = batch;
    s->shift.assign(static_cast<size_t>(batch * H_ * N_), 0.0);
    s->inner = inner_.state_create(ctx, p, batch);
    return s;
  }

  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    ssm::check_shape(x_t, {s.batch, H_}, "h3: x_t");
    ssm::check_shape(y_t, {s.batch, H_}, "h3: y_t");
    ssm::dispatch_real(x_t, "h3: x_t", [&](auto tag) { step_as<decltype(tag)>(ctx, p, s, x_t, y_t); });
  }

  // What this layer and its inner layer both serve.
  bool supports(DLDevice device, DLDataType dtype) override {
    return ssm::Layer::supports(device, dtype) && inner_.supports(device, dtype);
  }

 private:
  template <typename T>
  Cache<T>& cache() {
    if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
    return std::get<Cache<T>>(cache_);
  }

  // Checks this layer's own tensors (the inner layer checks its share).
  template <typename T>
  void check_params(ssm::Params p) const {
    static const char* names[kOwnCount] = {"W_qkv", "b_qkv", "shift_B", "shift_C", "D_k", "W_out", "b_out"};
    const std::vector<int64_t> shapes[kOwnCount] = {{3 * H_, H_}, {3 * H_}, {H_, N_}, {H_, N_}, {H_}, {H_, H_}, {H_}};
    std::vector<ssm::ParamSpec> own;
    for (size_t i = 0; i < kOwnCount; ++i) own.push_back({names[i], shapes[i]});
    ssm::check_params<T>(p, own, kOwnCount + inner_.param_count(), "h3",
                         "for d_model=" + std::to_string(H_) + ", d_state=" + std::to_string(N_));
  }

  // The shift kernel (H, L) with D_k on lag 0: K[h,l] = Σ_m B[h,m] C[h,m+l], l < min(N, L).
  template <typename T>
  void shift_kernel(ssm::Params p, int64_t L, std::vector<T>& K) const {
    const T* Bs = p.data<T>(kShiftB);
    const T* Cs = p.data<T>(kShiftC);
    const T* D = p.data<T>(kDk);
    K.assign(static_cast<size_t>(H_ * L), T(0));
    for (int64_t h = 0; h < H_; ++h)
      for (int64_t l = 0; l < std::min(N_, L); ++l) {
        double acc = 0;
        for (int64_t m = 0; m + l < N_; ++m) acc += double(Bs[h * N_ + m]) * double(Cs[h * N_ + m + l]);
        K[h * L + l] = static_cast<T>(acc);
      }
    for (int64_t h = 0; h < H_; ++h) K[h * L] += D[h];
  }

  // kv (rows, H') from k~ and v (rows of stride ld).
  template <typename T>
  void outer(const T* kt, int64_t ldk, const T* v, int64_t ldv, T* kv, int64_t rows) const {
#pragma omp parallel for schedule(static) if (rows * Hi_ >= (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const T* kr = kt + r * ldk;
      const T* vr = v + r * ldv;
      T* out = kv + r * Hi_;
      for (int64_t h = 0; h < nh_; ++h)
        for (int64_t i = 0; i < dh_; ++i)
          for (int64_t j = 0; j < dh_; ++j) out[(h * dh_ + i) * dh_ + j] = kr[h * dh_ + i] * vr[h * dh_ + j];
    }
  }

  // o[j nh + h] = Σ_i q[h dh + i] s[(h,i,j)] for rows tokens (q of stride ldq).
  template <typename T>
  void contract(const T* q, int64_t ldq, const T* s, T* o, int64_t rows) const {
#pragma omp parallel for schedule(static) if (rows * Hi_ >= (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const T* qr = q + r * ldq;
      const T* sr = s + r * Hi_;
      T* out = o + r * H_;
      for (int64_t h = 0; h < nh_; ++h)
        for (int64_t j = 0; j < dh_; ++j) {
          T acc = 0;
          for (int64_t i = 0; i < dh_; ++i) acc += qr[h * dh_ + i] * sr[(h * dh_ + i) * dh_ + j];
          out[j * nh_ + h] = acc;
        }
    }
  }

  template <typename T>
  void forward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
    check_params<T>(p);
    const bool training = ctx.training();
    if (training) training_ok_ = false;
    Cache<T> local;
    Cache<T>& c = training ? cache<T>() : local;
    const int64_t B = x.shape[0], L = x.shape[1], rows = B * L, ld = 3 * H_;
    c.B = B;
    c.L = L;
    const T* xp = ssm::data<T>(x, "h3: x");
    if (training) c.x.assign(xp, xp + rows * H_);
    c.qkv.resize(static_cast<size_t>(rows * ld));
    ssm::kernels::linear_forward(xp, p.data<T>(kWqkv), p.data<T>(kBqkv), c.qkv.data(), rows, H_, ld);

    // The shift SSM on k (gathered into a dense (B, L, H) for the convolution).
    std::vector<T> k(static_cast<size_t>(rows * H_));
    for (int64_t r = 0; r < rows; ++r) std::copy_n(c.qkv.data() + r * ld + H_, H_, k.data() + r * H_);
    shift_kernel<T>(p, L, c.K);
    c.kt.resize(static_cast<size_t>(rows * H_));
    if (training)
      ssm::kernels::fftconv_forward(k.data(), c.K.data(), c.kt.data(), B, L, H_, c.k_spectra);
    else
      ssm::kernels::fftconv_forward(k.data(), c.K.data(), c.kt.data(), B, L, H_);

    // The outer product per head, through the inner layer.
    std::vector<T> kv(static_cast<size_t>(rows * Hi_));
    outer(c.kt.data(), H_, c.qkv.data() + 2 * H_, ld, kv.data(), rows);
    c.s.resize(static_cast<size_t>(rows * Hi_));
    ssm::View kv_view(kv.data(), {B, L, Hi_}), s_view(c.s.data(), {B, L, Hi_});
    inner_.forward(ctx, p, kv_view, s_view);

    c.o.resize(static_cast<size_t>(rows * H_));
    contract(c.qkv.data(), ld, c.s.data(), c.o.data(), rows);
    ssm::kernels::linear_forward(c.o.data(), p.data<T>(kWOut), p.data<T>(kBOut), ssm::data<T>(y, "h3: y"), rows, H_,
                                 H_);
    if (training) training_ok_ = true;
  }

  template <typename T>
  void backward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    Cache<T>* c = std::get_if<Cache<T>>(&cache_);
    if (!training_ok_ || !c)
      ssm::fail("h3: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
    ssm::check_shape(dy, {c->B, c->L, H_}, "h3: dy (the shape of the last training forward's x)");
    ssm::check_shape(dx, {c->B, c->L, H_}, "h3: dx (the shape of the last training forward's x)");
    check_params<T>(p);
    check_params<T>(dp);
    const int64_t B = c->B, L = c->L, rows = B * L, ld = 3 * H_;
    std::vector<T> dqkv(static_cast<size_t>(rows * ld));
    std::vector<T> d_o(static_cast<size_t>(rows * H_));
    ssm::kernels::linear_backward(c->o.data(), p.data<T>(kWOut), ssm::data<T>(dy, "h3: dy"), d_o.data(),
                                  dp.data<T>(kWOut), dp.data<T>(kBOut), rows, H_, H_);

    // Through o = Σ_i q s: ds and dq.
    std::vector<T> ds(static_cast<size_t>(rows * Hi_));
#pragma omp parallel for schedule(static) if (rows * Hi_ >= (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const T* q = c->qkv.data() + r * ld;
      const T* s = c->s.data() + r * Hi_;
      const T* g = d_o.data() + r * H_;
      T* dq = dqkv.data() + r * ld;
      T* dsr = ds.data() + r * Hi_;
      for (int64_t h = 0; h < nh_; ++h)
        for (int64_t i = 0; i < dh_; ++i) {
          T acc = 0;
          for (int64_t j = 0; j < dh_; ++j) {
            const T gj = g[j * nh_ + h];
            dsr[(h * dh_ + i) * dh_ + j] = q[h * dh_ + i] * gj;
            acc += s[(h * dh_ + i) * dh_ + j] * gj;
          }
          dq[h * dh_ + i] = acc;
        }
    }

    // The inner layer: ds -> dkv (its parameter gradients accumulate).
    std::vector<T> dkv(static_cast<size_t>(rows * Hi_));
    ssm::View ds_view(ds.data(), {B, L, Hi_}), dkv_view(dkv.data(), {B, L, Hi_});
    inner_.backward(ctx, p, ds_view, dkv_view, dp);

    // Through kv = k~ v^T: dk~ (dense, for the convolution) and dv.
    std::vector<T> dkt(static_cast<size_t>(rows * H_));
#pragma omp parallel for schedule(static) if (rows * Hi_ >= (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const T* kt = c->kt.data() + r * H_;
      const T* v = c->qkv.data() + r * ld + 2 * H_;
      const T* g = dkv.data() + r * Hi_;
      T* dk = dkt.data() + r * H_;
      T* dv = dqkv.data() + r * ld + 2 * H_;
      for (int64_t h = 0; h < nh_; ++h) {
        for (int64_t i = 0; i < dh_; ++i) {
          T acc = 0;
          for (int64_t j = 0; j < dh_; ++j) acc += g[(h * dh_ + i) * dh_ + j] * v[h * dh_ + j];
          dk[h * dh_ + i] = acc;
        }
        for (int64_t j = 0; j < dh_; ++j) {
          T acc = 0;
          for (int64_t i = 0; i < dh_; ++i) acc += g[(h * dh_ + i) * dh_ + j] * kt[h * dh_ + i];
          dv[h * dh_ + j] = acc;
        }
      }
    }

    // The shift SSM: dk (in place of dk~) and dK, whose lag 0 is dD_k.
    std::vector<T> dK(static_cast<size_t>(H_ * L), T(0));
    ssm::kernels::fftconv_backward(c->k_spectra, c->K.data(), dkt.data(), dkt.data(), dK.data(), B, L, H_);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(dkt.data() + r * H_, H_, dqkv.data() + r * ld + H_);
    const T* Bs = p.data<T>(kShiftB);
    const T* Cs = p.data<T>(kShiftC);
    T* dB = dp.data<T>(kShiftB);
    T* dC = dp.data<T>(kShiftC);
    T* dD = dp.data<T>(kDk);
    const int64_t taps = std::min(N_, L);
    for (int64_t h = 0; h < H_; ++h) {
      const T* g = dK.data() + h * L;
      dD[h] += g[0];
      for (int64_t m = 0; m < N_; ++m) {
        double acc_b = 0, acc_c = 0;
        for (int64_t l = 0; l < taps && m + l < N_; ++l) acc_b += double(g[l]) * double(Cs[h * N_ + m + l]);
        for (int64_t l = 0; l < taps && l <= m; ++l) acc_c += double(g[l]) * double(Bs[h * N_ + m - l]);
        dB[h * N_ + m] += static_cast<T>(acc_b);
        dC[h * N_ + m] += static_cast<T>(acc_c);
      }
    }

    ssm::kernels::linear_backward(c->x.data(), p.data<T>(kWqkv), dqkv.data(), ssm::data<T>(dx, "h3: dx"),
                                  dp.data<T>(kWqkv), dp.data<T>(kBqkv), rows, H_, ld);
  }

  template <typename T>
  void step_as(ssm::Context& ctx, ssm::Params p, State& st, const DLTensor& x_t, DLTensor& y_t) {
    check_params<T>(p);
    const int64_t B = st.batch, ld = 3 * H_;
    std::vector<T> qkv(static_cast<size_t>(B * ld)), kt(static_cast<size_t>(B * H_));
    ssm::kernels::linear_forward(ssm::data<T>(x_t, "h3: x_t"), p.data<T>(kWqkv), p.data<T>(kBqkv), qkv.data(), B, H_,
                                 ld);
    // The shift SSM: x <- shift_right(x) + B k_t, k~ = C x + D_k k_t.
    const T* Bs = p.data<T>(kShiftB);
    const T* Cs = p.data<T>(kShiftC);
    const T* D = p.data<T>(kDk);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H_; ++h) {
        const double u = double(qkv[b * ld + H_ + h]);
        double* xs = st.shift.data() + (b * H_ + h) * N_;
        double acc = double(D[h]) * u;
        for (int64_t n = N_ - 1; n >= 0; --n) {
          xs[n] = (n > 0 ? xs[n - 1] : 0.0) + double(Bs[h * N_ + n]) * u;
          acc += double(Cs[h * N_ + n]) * xs[n];
        }
        kt[b * H_ + h] = static_cast<T>(acc);
      }
    std::vector<T> kv(static_cast<size_t>(B * Hi_)), s(static_cast<size_t>(B * Hi_)), o(static_cast<size_t>(B * H_));
    outer(kt.data(), H_, qkv.data() + 2 * H_, ld, kv.data(), B);
    ssm::View kv_view(kv.data(), {B, Hi_}), s_view(s.data(), {B, Hi_});
    inner_.step(ctx, p, st.inner, kv_view, s_view);
    contract(qkv.data(), ld, s.data(), o.data(), B);
    ssm::kernels::linear_forward(o.data(), p.data<T>(kWOut), p.data<T>(kBOut), ssm::data<T>(y_t, "h3: y_t"), B, H_, H_);
  }

  int64_t H_, N_, dh_, nh_ = 1, Hi_ = 1;
  double lr_ssm_;
  ssm::LayerChild inner_;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace h3

SSM_PLUGIN_LAYER(h3::H3, "h3", "1.0.0",
                 "H3: q, k, v; shift SSM on k; per-head k v^T through an inner SSM layer (--inner, default s4db); q "
                 "times it; output Linear")
