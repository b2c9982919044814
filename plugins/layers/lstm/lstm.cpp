// lstm: one LSTM layer (Hochreiter & Schmidhuber 1997, with a forget gate; docs/math.md §6),
// channel-last (B, L, H) -> (B, L, H): the hidden state h_t is the output.
// The seeds' LSTM baseline (the FilippoOlivo seed's torch.nn.LSTM), one layer
// per block; the host's model adds the residual and the norm around it.
//
// Per token, with PyTorch's gate order (i, f, g, o):
//
//   z_t = W_ih x_t + W_hh h_{t-1} + b             W_ih, W_hh (4H, H), b (4H)
//   i = σ(z_i), f = σ(z_f), g = tanh(z_g), o = σ(z_o)
//   c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t),   h_{-1} = c_{-1} = 0
//
// PyTorch's two biases b_ih + b_hh are one tensor b here (the same function).
// Initialisation: PyTorch's, U(±1/sqrt(H)) for W_ih, W_hh and b, plus
// `forget_bias` (default 1, Gers et al. 2000 / Jozefowicz et al. 2015; 0
// gives PyTorch's init exactly) added to the forget gate's bias.
//
// Backward, through time (BPTT), from t = L-1 down to 0, with dh_L = dc_L = 0:
//   dh = dy_t + dh_next,  do = dh ⊙ tanh(c_t),  dc = dc_next + dh ⊙ o ⊙ (1 - tanh²(c_t))
//   dz_i = dc ⊙ g ⊙ i(1-i),  dz_f = dc ⊙ c_{t-1} ⊙ f(1-f),  dz_g = dc ⊙ i ⊙ (1-g²),  dz_o = do ⊙ o(1-o)
//   dc_next = dc ⊙ f,  dh_next = W_hhᵀ dz_t
// then, over all tokens at once, dx = W_ihᵀ dz, dW_ih += dz xᵀ, dW_hh += dz h_{t-1}ᵀ, db += dz.
// The input projection W_ih x + b is one GEMM over all B*L tokens; only the
// (B, H) x (H, 4H) product with W_hh runs token by token. The recurrent mode
// is the cell itself, with the state (h, c).
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

namespace lstm {

enum Param : size_t { kWih, kWhh, kB, kParamCount };

// Sequences per block of the recurrence (blocks run in parallel).
constexpr int64_t kRows = 16;

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using Strided = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStrided = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstMat = Eigen::Map<const RowMat<T>>;

template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  std::vector<T> x;   // the input (B, L, H)
  std::vector<T> z;   // the gates after their activations (B, L, 4H): i, f, g, o
  std::vector<T> c;   // cell states (B, L, H)
  std::vector<T> tc;  // tanh(c)
  std::vector<T> h;   // hidden states = the output (B, L, H)
};

struct State : ssm::LayerState {
  int64_t batch = 0;
  std::vector<double> h, c;  // (batch, H)
};

// The cell on one token of one sequence: z (4H) holds the gates'
// pre-activations and becomes i, f, g, o; c_prev (nullptr: zero) gives c,
// tanh(c) and h. Forward and step share it. The math runs on Eigen arrays
// (vectorised exp and tanh) in buffers aligned by Eigen's allocator: Eigen
// takes its scalar path (which may differ in the last bit) for the elements
// before the first aligned address, so computing in place in the caller's
// memory would make the result depend on where that memory lies.
template <typename T>
struct Cell {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  Arr z, c, tc;
  void run(T* zio, const T* c_prev, T* c_out, T* tc_out, T* h_out, int64_t H) {
    z = Eigen::Map<const Arr>(zio, 4 * H);
    auto i = z.segment(0, H), f = z.segment(H, H), g = z.segment(2 * H, H), o = z.segment(3 * H, H);
    i = (T(1) + (-i).exp()).inverse();
    f = (T(1) + (-f).exp()).inverse();
    o = (T(1) + (-o).exp()).inverse();
    g = g.tanh();
    if (c_prev) {
      c = Eigen::Map<const Arr>(c_prev, H);
      c = f * c + i * g;
    } else {
      c = i * g;
    }
    tc = c.tanh();
    Eigen::Map<Arr>(zio, 4 * H) = z;
    Eigen::Map<Arr>(c_out, H) = c;
    Eigen::Map<Arr>(tc_out, H) = tc;
    c = o * tc;  // h
    Eigen::Map<Arr>(h_out, H) = c;
  }
};

class LSTM : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H: input and hidden size"),
        ssm::Option::real("forget_bias", "1.0", "added to the forget gate's initial bias (0: PyTorch's init)"),
    };
  }

  // Eigen runs single-threaded here (this library's copy of Eigen): the
  // parallelism is over fixed blocks of sequences, and Eigen's own threading
  // would pick its blocking, and so the bits, from the thread count.
  explicit LSTM(const ssm::Config& cfg) : H_(cfg.i64_at_least("d_model", 1)), forget_bias_(cfg.f64("forget_bias")) {
    Eigen::setNbThreads(1);
  }

  std::vector<ssm::ParamSpec> params() override {
    return {{"W_ih", {4 * H_, H_}}, {"W_hh", {4 * H_, H_}}, {"b", {4 * H_}, SSM_PARAM_NO_WEIGHT_DECAY, 0.0, 0.0}};
  }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "lstm: parameters", [&](auto tag) {
      using T = decltype(tag);
      check_params<T>(p);
      const double bound = 1.0 / std::sqrt(double(H_));
      for (size_t i = 0; i < kParamCount; ++i) {
        ctx.rng_fill(i, ctx.rng_offset(), SSM_RNG_UNIFORM, p[i]);
        T* w = p.data<T>(i);
        for (int64_t k = 0; k < ssm::numel(p[i]); ++k) w[k] = static_cast<T>((2 * double(w[k]) - 1) * bound);
      }
      T* b = p.data<T>(kB);
      for (int64_t k = H_; k < 2 * H_; ++k) b[k] += static_cast<T>(forget_bias_);
    });
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    ssm::check_shape(x, {-1, -1, H_}, "lstm: x");
    ssm::check_shape(y, {x.shape[0], x.shape[1], H_}, "lstm: y");
    ssm::dispatch_real(x, "lstm: x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
  }

  void backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    ssm::dispatch_real(dy, "lstm: dy", [&](auto tag) { backward_as<decltype(tag)>(p, dy, dx, dp); });
  }

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context&, ssm::Params, int64_t batch) override {
    if (batch < 1) ssm::fail("lstm: state_create needs batch >= 1, got " + std::to_string(batch));
    auto s = std::make_unique<State>();
    s->batch = batch;
    s->h.assign(static_cast<size_t>(batch * H_), 0.0);
    s->c.assign(static_cast<size_t>(batch * H_), 0.0);
    return s;
  }

  // The cell on one token: the same operations as forward, in T.
  void step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    ssm::check_shape(x_t, {s.batch, H_}, "lstm: x_t");
    ssm::check_shape(y_t, {s.batch, H_}, "lstm: y_t");
    ssm::dispatch_real(x_t, "lstm: x_t", [&](auto tag) {
      using T = decltype(tag);
      check_params<T>(p);
      const int64_t B = s.batch, G = 4 * H_;
      std::vector<T> z(static_cast<size_t>(B * G)), h(s.h.begin(), s.h.end());
      ssm::kernels::linear_forward(ssm::data<T>(x_t, "lstm: x_t"), p.data<T>(kWih), p.data<T>(kB), z.data(), B, H_, G);
      Eigen::Map<RowMat<T>>(z.data(), B, G).noalias() +=
          ConstMat<T>(h.data(), B, H_) * ConstMat<T>(p.data<T>(kWhh), G, H_).transpose();
      T* y = ssm::data<T>(y_t, "lstm: y_t");
      std::vector<T> c_prev(s.c.begin(), s.c.end()), c(static_cast<size_t>(B * H_)), tc(c.size());
      Cell<T> cell;
      for (int64_t b = 0; b < B; ++b)
        cell.run(z.data() + b * G, c_prev.data() + b * H_, c.data() + b * H_, tc.data() + b * H_, y + b * H_, H_);
      std::copy(c.begin(), c.end(), s.c.begin());
      std::copy(y, y + B * H_, s.h.begin());
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
    ssm::check_params<T>(p, const_cast<LSTM*>(this)->params(), kParamCount, "lstm", "for d_model=" + std::to_string(H_));
  }


  template <typename T>
  void forward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
    check_params<T>(p);
    const bool training = ctx.training();
    if (training) training_ok_ = false;
    Cache<T> local;
    Cache<T>& c = training ? cache<T>() : local;
    const int64_t B = x.shape[0], L = x.shape[1], G = 4 * H_, rows = B * L;
    c.B = B;
    c.L = L;
    const T* xp = ssm::data<T>(x, "lstm: x");
    T* yp = ssm::data<T>(y, "lstm: y");
    if (training) c.x.assign(xp, xp + rows * H_);
    c.z.resize(static_cast<size_t>(rows * G));
    c.c.resize(static_cast<size_t>(rows * H_));
    c.tc.resize(static_cast<size_t>(rows * H_));
    // The input projection of every token at once.
    ssm::kernels::linear_forward(xp, p.data<T>(kWih), p.data<T>(kB), c.z.data(), rows, H_, G);
    ConstMat<T> Whh(p.data<T>(kWhh), G, H_);
    // Sequences are independent: fixed blocks of kRows sequences run the whole
    // recurrence in parallel (the same bits for any thread count).
    const int64_t blocks = (B + kRows - 1) / kRows;
#pragma omp parallel for schedule(static) if (blocks > 1 && rows * G * H_ >= (1 << 18))
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t b0 = blk * kRows, nb = std::min(kRows, B - b0);
      Cell<T> cell;
      for (int64_t t = 0; t < L; ++t) {
        if (t > 0) {
          // z_t += h_{t-1} W_hhᵀ for the block's sequences (rows b*L + t, strided).
          Strided<T> Zt(c.z.data() + (b0 * L + t) * G, nb, G, Eigen::OuterStride<>(L * G));
          ConstStrided<T> Hp(yp + (b0 * L + t - 1) * H_, nb, H_, Eigen::OuterStride<>(L * H_));
          Zt.noalias() += Hp * Whh.transpose();
        }
        for (int64_t b = b0; b < b0 + nb; ++b) {
          const int64_t r = b * L + t;
          cell.run(c.z.data() + r * G, t > 0 ? c.c.data() + (r - 1) * H_ : nullptr, c.c.data() + r * H_,
                   c.tc.data() + r * H_, yp + r * H_, H_);
        }
      }
    }
    if (training) {
      c.h.assign(yp, yp + rows * H_);
      training_ok_ = true;
    }
  }

  template <typename T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    Cache<T>* c = std::get_if<Cache<T>>(&cache_);
    if (!training_ok_ || !c)
      ssm::fail("lstm: backward needs a training forward of the same dtype (" + ssm::dtype_name(dy.dtype) + ") first");
    ssm::check_shape(dy, {c->B, c->L, H_}, "lstm: dy (the shape of the last training forward's x)");
    ssm::check_shape(dx, {c->B, c->L, H_}, "lstm: dx (the shape of the last training forward's x)");
    check_params<T>(p);
    check_params<T>(dp);
    const int64_t B = c->B, L = c->L, G = 4 * H_, rows = B * L;
    const T* g_out = ssm::data<T>(dy, "lstm: dy");
    T* dxp = ssm::data<T>(dx, "lstm: dx");
    std::vector<T> dz(static_cast<size_t>(rows * G));
    std::vector<T> dh_next(static_cast<size_t>(B * H_), T(0)), dc_next(static_cast<size_t>(B * H_), T(0));
    ConstMat<T> Whh(p.data<T>(kWhh), G, H_);
    const int64_t blocks = (B + kRows - 1) / kRows;
#pragma omp parallel for schedule(static) if (blocks > 1 && rows * G * H_ >= (1 << 18))
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t b0 = blk * kRows, nb = std::min(kRows, B - b0);
      for (int64_t t = L - 1; t >= 0; --t) {
        for (int64_t b = b0; b < b0 + nb; ++b) {
          const int64_t r = b * L + t;
          const T* zr = c->z.data() + r * G;
          T* dzr = dz.data() + r * G;
          for (int64_t k = 0; k < H_; ++k) {
            const T i = zr[k], f = zr[H_ + k], g = zr[2 * H_ + k], o = zr[3 * H_ + k];
            const T tcv = c->tc[r * H_ + k];
            const T dh = g_out[r * H_ + k] + dh_next[b * H_ + k];
            const T dc = dc_next[b * H_ + k] + dh * o * (T(1) - tcv * tcv);
            const T c_prev = t > 0 ? c->c[(r - 1) * H_ + k] : T(0);
            dzr[k] = dc * g * i * (T(1) - i);
            dzr[H_ + k] = dc * c_prev * f * (T(1) - f);
            dzr[2 * H_ + k] = dc * i * (T(1) - g * g);
            dzr[3 * H_ + k] = dh * tcv * o * (T(1) - o);
            dc_next[b * H_ + k] = dc * f;
          }
        }
        if (t > 0) {
          ConstStrided<T> dZt(dz.data() + (b0 * L + t) * G, nb, G, Eigen::OuterStride<>(L * G));
          Eigen::Map<RowMat<T>>(dh_next.data() + b0 * H_, nb, H_).noalias() = dZt * Whh;
        }
      }
    }
    // dW_hh += Σ_t dz_tᵀ h_{t-1}: h shifted by one token (zero at t = 0).
    std::vector<T> h_prev(static_cast<size_t>(rows * H_), T(0));
    for (int64_t b = 0; b < B; ++b)
      std::copy(c->h.begin() + b * L * H_, c->h.begin() + (b * L + L - 1) * H_, h_prev.begin() + (b * L + 1) * H_);
    ssm::kernels::linear_backward<T>(h_prev.data(), p.data<T>(kWhh), dz.data(), nullptr, dp.data<T>(kWhh), nullptr,
                                     rows, H_, G);
    ssm::kernels::linear_backward<T>(c->x.data(), p.data<T>(kWih), dz.data(), dxp, dp.data<T>(kWih), dp.data<T>(kB),
                                     rows, H_, G);
  }

  int64_t H_;
  double forget_bias_;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace lstm

SSM_PLUGIN_LAYER(lstm::LSTM, "lstm", "1.0.0",
                 "LSTM baseline: one layer, hidden size d_model, its output the hidden state; recurrent mode is the cell")
