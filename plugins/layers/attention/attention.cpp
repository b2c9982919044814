// attention: causal multi-head softmax self-attention (Vaswani et al. 2017; docs/math.md §6),
// the seeds' Transformer baseline as one sequence-mixing layer, channel-last
// (B, L, H) -> (B, L, H); the host's model adds the residual and the norm.
//
//   [q | k | v] = W_in x + b_in                 W_in (3H, H), b_in (3H): PyTorch's in_proj
//   q, k <- RoPE(q, k) at their positions      (option rope, default on; see below)
//   per head h of n_heads, dh = H / n_heads channels [h dh, (h+1) dh):
//     s_ts = q_t · k_s / sqrt(dh)  for s <= t  (causal: s > t never seen)
//     p_t = softmax_s(s_t),   o_t = Σ_{s<=t} p_ts v_s
//   y = W_out o + b_out                          W_out (H, H), b_out (H)
//
// Softmax is evaluated stably: m_t = max_s s_ts, p_ts = exp(s_ts - m_t) / Σ exp(...);
// the forward keeps only lse_t = m_t + log Σ_s exp(s_ts - m_t) per (b, head, t)
// and the backward recomputes p_ts = exp(s_ts - lse_t) (FlashAttention's
// organisation: memory O(B L H) besides a scratch of scores per thread, never
// B x heads x L x L; the scratch holds one block of 32 query rows against
// the keys before them).
//
// Backward per (b, head), do = W_outᵀ dy:
//   dv_s = Σ_t p_ts do_t,   dp_ts = do_t · v_s,   ds_ts = p_ts (dp_ts - do_t · o_t),
//   dq_t = Σ_s ds_ts k_s / sqrt(dh),   dk_s = Σ_t ds_ts q_t / sqrt(dh)
// (Σ_s p_ts dp_ts = do_t · o_t), then back through RoPE (its transpose
// rotation) and the in-projection.
//
// RoPE (Su et al. 2021, rotary position embedding): channel pairs (2j, 2j+1)
// of every head of q and k are rotated by the angle t θ_j, θ_j = base^(-2j/dh),
// t the token's position (0-based). Then q_t · k_s depends on t - s only: the
// layer knows relative positions (without it, causal attention sees its input
// as a set up to the mask, the seed's nn.Transformer without positions that
// stays near chance on copying). rope=false gives plain attention; it needs dh even.
//
// Recurrent mode: a key/value cache that grows by one token per step; each
// step attends its query to every cached position (O(t) per token).
//
// Initialisation as PyTorch's nn.MultiheadAttention: W_in Xavier-uniform
// (U(±sqrt(6 / (H + 3H)))), b_in = 0, W_out U(±1/sqrt(H)), b_out = 0.
#include <Eigen/Core>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace attention {

enum Param : size_t { kWIn, kBIn, kWOut, kBOut, kParamCount };

// Query rows per block: the scores of a block (kBlock x t1, a few MB at L = 16k) are the only
// quadratic buffer, one per thread.
constexpr int64_t kBlock = 32;

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Strided = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStrided = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;

template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  std::vector<T> x;    // the input (B, L, H)
  std::vector<T> qkv;  // the in-projection, q and k rotated (B, L, 3H)
  std::vector<T> o;    // the heads' outputs (B, L, H): W_out's input
  std::vector<T> lse;  // log-sum-exp of every softmax row (B, heads, L)
};

struct State : ssm::LayerState {
  int64_t batch = 0, t = 0;
  std::vector<std::vector<double>> k, v;  // per (b, head): (t, dh), growing
};

class Attention : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H"),
        ssm::Option::integer("n_heads", "4", "attention heads (must divide d_model)"),
        ssm::Option::boolean("rope", "true", "rotary position embedding of q and k (false: no positions)"),
        ssm::Option::real("rope_base", "10000", "RoPE's base: theta_j = base^(-2j/head_dim)"),
    };
  }

  explicit Attention(const ssm::Config& cfg)
      : H_(cfg.i64_at_least("d_model", 1)),
        heads_(cfg.i64_at_least("n_heads", 1)),
        rope_(cfg.flag("rope")),
        rope_base_(cfg.f64_positive("rope_base")) {
    // Eigen single-threaded (this library's copy): the parallelism is over
    // (sequence, head) pairs, each done by one thread, so the bits do not
    // depend on the thread count (Eigen's own threading would).
    Eigen::setNbThreads(1);
    if (H_ % heads_)
      ssm::fail("option 'n_heads' (" + std::to_string(heads_) + ") must divide d_model (" + std::to_string(H_) + ")");
    dh_ = H_ / heads_;
    if (rope_ && dh_ % 2)
      ssm::fail("rope needs an even head dimension d_model/n_heads, got " + std::to_string(dh_) +
                " (set rope=false or change n_heads)");
  }

  std::vector<ssm::ParamSpec> params() override {
    auto bias = [](const char* name, int64_t n) {
      return ssm::ParamSpec{name, {n}, SSM_PARAM_NO_WEIGHT_DECAY, 0.0, 0.0};
    };
    return {{"W_in", {3 * H_, H_}}, bias("b_in", 3 * H_), {"W_out", {H_, H_}}, bias("b_out", H_)};
  }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "attention: parameters", [&](auto tag) {
      using T = decltype(tag);
      check_params<T>(p);
      const double bounds[] = {std::sqrt(6.0 / double(4 * H_)), 1.0 / std::sqrt(double(H_))};
      for (size_t i : {size_t(kWIn), size_t(kWOut)}) {
        ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
        T* w = p.data<T>(i);
        const double bound = bounds[i == kWIn ? 0 : 1];
        for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
      }
      for (size_t i : {size_t(kBIn), size_t(kBOut)}) std::fill_n(p.data<T>(i), ssm::numel(p[i]), T(0));
    });
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    ssm::check_shape(x, {-1, -1, H_}, "attention: x");
    ssm::check_shape(y, {x.shape[0], x.shape[1], H_}, "attention: y");
    ssm::dispatch_real(x, "attention: x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
  }

  void backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    ssm::dispatch_real(dy, "attention: dy", [&](auto tag) { backward_as<decltype(tag)>(p, dy, dx, dp); });
  }

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context&, ssm::Params, int64_t batch) override {
    if (batch < 1) ssm::fail("attention: state_create needs batch >= 1, got " + std::to_string(batch));
    auto s = std::make_unique<State>();
    s->batch = batch;
    s->k.resize(static_cast<size_t>(batch * heads_));
    s->v.resize(static_cast<size_t>(batch * heads_));
    return s;
  }

  void step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    ssm::check_shape(x_t, {s.batch, H_}, "attention: x_t");
    ssm::check_shape(y_t, {s.batch, H_}, "attention: y_t");
    ssm::dispatch_real(x_t, "attention: x_t", [&](auto tag) { step_as<decltype(tag)>(p, s, x_t, y_t); });
  }

 private:
  template <typename T>
  Cache<T>& cache() {
    if (!std::holds_alternative<Cache<T>>(cache_)) cache_.template emplace<Cache<T>>();
    return std::get<Cache<T>>(cache_);
  }

  template <typename T>
  void check_params(ssm::Params p) const {
    ssm::check_params<T>(p, const_cast<Attention*>(this)->params(), kParamCount, "attention", "for d_model=" + std::to_string(H_));
  }


  // cos and sin of t θ_j for t < L, j < dh/2: (L, dh/2) each.
  void rope_table(int64_t t0, int64_t L, std::vector<double>& cs, std::vector<double>& sn) const {
    const int64_t half = dh_ / 2;
    cs.resize(static_cast<size_t>(L * half));
    sn.resize(static_cast<size_t>(L * half));
    for (int64_t j = 0; j < half; ++j) {
      const double theta = std::pow(rope_base_, -2.0 * double(j) / double(dh_));
      for (int64_t t = 0; t < L; ++t) {
        const double a = double(t0 + t) * theta;
        cs[t * half + j] = std::cos(a);
        sn[t * half + j] = std::sin(a);
      }
    }
  }

  // Rotates q and k of `rows` tokens (row r at position r % L of its sequence,
  // stride 3H) by +angle (sign 1) or by -angle (sign -1, the transpose).
  template <typename T>
  void rope_apply(T* qkv, int64_t rows, int64_t L, const std::vector<double>& cs, const std::vector<double>& sn,
                  double sign) const {
    const int64_t half = dh_ / 2;
#pragma omp parallel for schedule(static) if (rows * H_ >= (1 << 15))
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t t = r % L;
      T* row = qkv + r * 3 * H_;
      for (int64_t part = 0; part < 2; ++part)  // q, then k
        for (int64_t h = 0; h < heads_; ++h) {
          T* v = row + part * H_ + h * dh_;
          for (int64_t j = 0; j < half; ++j) {
            const double c = cs[t * half + j], s = sign * sn[t * half + j];
            const double a = double(v[2 * j]), b = double(v[2 * j + 1]);
            v[2 * j] = static_cast<T>(a * c - b * s);
            v[2 * j + 1] = static_cast<T>(a * s + b * c);
          }
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
    const int64_t B = x.shape[0], L = x.shape[1], rows = B * L;
    c.B = B;
    c.L = L;
    const T* xp = ssm::data<T>(x, "attention: x");
    if (training) c.x.assign(xp, xp + rows * H_);
    c.qkv.resize(static_cast<size_t>(rows * 3 * H_));
    c.o.resize(static_cast<size_t>(rows * H_));
    c.lse.resize(static_cast<size_t>(B * heads_ * L));
    ssm::kernels::linear_forward(xp, p.data<T>(kWIn), p.data<T>(kBIn), c.qkv.data(), rows, H_, 3 * H_);
    if (rope_) {
      std::vector<double> cs, sn;
      rope_table(0, L, cs, sn);
      rope_apply(c.qkv.data(), rows, L, cs, sn, 1.0);
    }
    const T scale = static_cast<T>(1.0 / std::sqrt(double(dh_)));
    const int64_t ld = 3 * H_;
#pragma omp parallel
    {
      RowMat<T> S;
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < B * heads_; ++bh) {
        const int64_t b = bh / heads_, h = bh % heads_;
        const T* base = c.qkv.data() + b * L * ld + h * dh_;
        T* lse = c.lse.data() + bh * L;
        // Query rows in blocks [t0, t1), each against keys [0, t1).
        for (int64_t t0 = 0; t0 < L; t0 += kBlock) {
          const int64_t t1 = std::min(L, t0 + kBlock), nq = t1 - t0;
          ConstStrided<T> Q(base + t0 * ld, nq, dh_, Eigen::OuterStride<>(ld)),
              K(base + H_, t1, dh_, Eigen::OuterStride<>(ld)), V(base + 2 * H_, t1, dh_, Eigen::OuterStride<>(ld));
          Strided<T> O(c.o.data() + (b * L + t0) * H_ + h * dh_, nq, dh_, Eigen::OuterStride<>(H_));
          S.resize(nq, t1);
          S.noalias() = (scale * Q) * K.transpose();
          for (int64_t i = 0; i < nq; ++i) {
            const int64_t t = t0 + i;
            // Stable softmax over s <= t (Eigen's vectorised exp).
            auto r = S.row(i).head(t + 1).array();
            const T m = r.maxCoeff();
            r = (r - m).exp();
            const T sum = r.sum();
            r *= T(1) / sum;
            S.row(i).tail(t1 - t - 1).setZero();
            lse[t] = m + std::log(sum);
          }
          O.noalias() = S * V;
        }
      }
    }
    ssm::kernels::linear_forward(c.o.data(), p.data<T>(kWOut), p.data<T>(kBOut), ssm::data<T>(y, "attention: y"), rows,
                                 H_, H_);
    if (training) training_ok_ = true;
  }

  template <typename T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    Cache<T>* c = std::get_if<Cache<T>>(&cache_);
    if (!training_ok_ || !c)
      ssm::fail("attention: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) +
                ") first");
    ssm::check_shape(dy, {c->B, c->L, H_}, "attention: dy (the shape of the last training forward's x)");
    ssm::check_shape(dx, {c->B, c->L, H_}, "attention: dx (the shape of the last training forward's x)");
    check_params<T>(p);
    check_params<T>(dp);
    const int64_t B = c->B, L = c->L, rows = B * L, ld = 3 * H_;
    std::vector<T> dO(static_cast<size_t>(rows * H_)), dqkv(static_cast<size_t>(rows * ld));
    ssm::kernels::linear_backward(c->o.data(), p.data<T>(kWOut), ssm::data<T>(dy, "attention: dy"), dO.data(),
                                  dp.data<T>(kWOut), dp.data<T>(kBOut), rows, H_, H_);
    const T scale = static_cast<T>(1.0 / std::sqrt(double(dh_)));
#pragma omp parallel
    {
      RowMat<T> P, dP;
      std::vector<T> delta;
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < B * heads_; ++bh) {
        const int64_t b = bh / heads_, h = bh % heads_;
        const T* base = c->qkv.data() + b * L * ld + h * dh_;
        T* dbase = dqkv.data() + b * L * ld + h * dh_;  // zero: dk, dv accumulate over the blocks
        const T* lse = c->lse.data() + bh * L;
        for (int64_t t0 = 0; t0 < L; t0 += kBlock) {
          const int64_t t1 = std::min(L, t0 + kBlock), nq = t1 - t0;
          ConstStrided<T> Q(base + t0 * ld, nq, dh_, Eigen::OuterStride<>(ld)),
              K(base + H_, t1, dh_, Eigen::OuterStride<>(ld)), V(base + 2 * H_, t1, dh_, Eigen::OuterStride<>(ld));
          ConstStrided<T> O(c->o.data() + (b * L + t0) * H_ + h * dh_, nq, dh_, Eigen::OuterStride<>(H_)),
              G(dO.data() + (b * L + t0) * H_ + h * dh_, nq, dh_, Eigen::OuterStride<>(H_));
          Strided<T> dQ(dbase + t0 * ld, nq, dh_, Eigen::OuterStride<>(ld)),
              dK(dbase + H_, t1, dh_, Eigen::OuterStride<>(ld)), dV(dbase + 2 * H_, t1, dh_, Eigen::OuterStride<>(ld));
          // P again from the scores and the kept log-sum-exp.
          P.resize(nq, t1);
          dP.resize(nq, t1);
          delta.resize(static_cast<size_t>(nq));
          P.noalias() = (scale * Q) * K.transpose();
          for (int64_t i = 0; i < nq; ++i) {
            const int64_t t = t0 + i;
            P.row(i).head(t + 1).array() = (P.row(i).head(t + 1).array() - lse[t]).exp();
            P.row(i).tail(t1 - t - 1).setZero();
            delta[i] = G.row(i).dot(O.row(i));
          }
          dV.noalias() += P.transpose() * G;
          dP.noalias() = G * V.transpose();
          for (int64_t i = 0; i < nq; ++i) {
            const int64_t t = t0 + i;
            // ds / sqrt(dh), in place of p (zero above the diagonal already).
            P.row(i).head(t + 1).array() *= (dP.row(i).head(t + 1).array() - delta[i]) * scale;
          }
          dQ.noalias() = P * K;
          dK.noalias() += P.transpose() * Q;
        }
      }
    }
    if (rope_) {
      std::vector<double> cs, sn;
      rope_table(0, L, cs, sn);
      rope_apply(dqkv.data(), rows, L, cs, sn, -1.0);
    }
    ssm::kernels::linear_backward(c->x.data(), p.data<T>(kWIn), dqkv.data(), ssm::data<T>(dx, "attention: dx"),
                                  dp.data<T>(kWIn), dp.data<T>(kBIn), rows, H_, 3 * H_);
  }

  template <typename T>
  void step_as(ssm::Params p, State& s, const DLTensor& x_t, DLTensor& y_t) {
    check_params<T>(p);
    const int64_t B = s.batch, ld = 3 * H_;
    std::vector<T> qkv(static_cast<size_t>(B * ld)), o(static_cast<size_t>(B * H_));
    ssm::kernels::linear_forward(ssm::data<T>(x_t, "attention: x_t"), p.data<T>(kWIn), p.data<T>(kBIn), qkv.data(), B,
                                 H_, ld);
    if (rope_) {
      std::vector<double> cs, sn;
      rope_table(s.t, 1, cs, sn);
      rope_apply(qkv.data(), B, 1, cs, sn, 1.0);
    }
    const double scale = 1.0 / std::sqrt(double(dh_));
    const int64_t n = s.t + 1;
    std::vector<double> score(static_cast<size_t>(n));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < heads_; ++h) {
        const T* q = qkv.data() + b * ld + h * dh_;
        std::vector<double>& K = s.k[b * heads_ + h];
        std::vector<double>& V = s.v[b * heads_ + h];
        K.insert(K.end(), q + H_, q + H_ + dh_);
        V.insert(V.end(), q + 2 * H_, q + 2 * H_ + dh_);
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          double d = 0;
          for (int64_t e = 0; e < dh_; ++e) d += double(q[e]) * K[j * dh_ + e];
          score[j] = d * scale;
          m = std::max(m, score[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (score[j] = std::exp(score[j] - m));
        for (int64_t e = 0; e < dh_; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) acc += score[j] * V[j * dh_ + e];
          o[b * H_ + h * dh_ + e] = static_cast<T>(acc / sum);
        }
      }
    ++s.t;
    ssm::kernels::linear_forward(o.data(), p.data<T>(kWOut), p.data<T>(kBOut), ssm::data<T>(y_t, "attention: y_t"), B,
                                 H_, H_);
  }

  int64_t H_, heads_, dh_ = 1;
  bool rope_;
  double rope_base_;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace attention

SSM_PLUGIN_LAYER(attention::Attention, "attention", "1.0.0",
                 "Causal multi-head softmax attention (Transformer baseline), RoPE positions, key/value cache step")
