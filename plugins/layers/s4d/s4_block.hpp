// The S4/S4D block around an SSM convolution kernel (docs/math.md §1), shared
// by the s4d and s4 layers: channel-last (B, L, H) -> (B, L, H),
//
//   v = K * u + D u,   d = dropout(GELU(v)),   y = GLU(Linear_{H->2H}(d))
//
// The caller computes the kernel K (H, L) with D folded into lag 0
// (K * u + D u = (K + D delta_0) * u) into Activations::K; forward runs the
// rest and keeps in Activations what backward needs; backward leaves
// dloss/dK (H, L) in Activations::dK, whose lag 0 is D's gradient. Dropout is
// tied over the sequence (one mask per batch element and channel), as the
// official DropoutNd. step_output is the recurrent mode's tail (no dropout).
#pragma once

#include <ssm/kernels/activation.hpp>
#include <ssm/kernels/channel_dropout.hpp>
#include <ssm/kernels/fftconv.hpp>
#include <ssm/kernels/linear.hpp>
#include <ssm/sdk.hpp>

#include <cstdint>
#include <vector>

namespace s4block {

// What backward needs from the most recent training forward (kept between
// steps so that its buffers are not reallocated every step).
template <typename T>
struct Activations {
  int64_t B = 0, L = 0;
  ssm::kernels::FftConvSpectra<T> u_spectra;  // the FFTs of the input x (B, L, H)
  std::vector<T> K;      // the kernel (H, L), D folded into lag 0: filled by the caller
  std::vector<T> v;      // GELU'(K * u + D u): the GELU's derivative at its input
  std::vector<T> d;      // after GELU and dropout: the Linear's input
  std::vector<T> z;      // the Linear's output (B, L, 2H), gate replaced by its sigmoid; its gradient in backward
  std::vector<T> scale;  // tied dropout (B, H): 0 or 1/(1-p); empty when off
  std::vector<T> dK;     // backward: dloss/dK (H, L)
};

// d = GELU(v) * scale; when training, v is overwritten with GELU'(v), all
// the backward needs. scale (B, H) is the tied dropout, the same at every
// position (empty: none). One batch element at a time, while it is in cache.
template <typename T>
void gelu_dropout_forward(T* v, T* d, const std::vector<T>& scale, int64_t B, int64_t L, int64_t H, bool training) {
  const int64_t m = L * H;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    T *vb = v + b * m, *db = d + b * m;
    if (training)
      ssm::kernels::gelu_forward_grad(vb, db, vb, m);
    else
      ssm::kernels::gelu_forward(vb, db, m);
    if (!scale.empty())
      for (int64_t i = 0; i < m; i += H)
        for (int64_t h = 0; h < H; ++h) db[i + h] *= scale[b * H + h];
  }
}

// Backward of the above, in place: g *= scale * GELU'(v) (dv holds GELU'(v)).
template <typename T>
void gelu_dropout_backward(const T* dv, T* g, const std::vector<T>& scale, int64_t B, int64_t L, int64_t H) {
  const int64_t m = L * H;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    const T* s = scale.empty() ? nullptr : scale.data() + b * H;
    for (int64_t i = b * m; i < (b + 1) * m; i += H)
      for (int64_t h = 0; h < H; ++h) g[i + h] = (s ? g[i + h] * s[h] : g[i + h]) * dv[i + h];
  }
}

// y (B, L, H) from u and the kernel in c.K (H, L). When training, c keeps
// what backward needs (the FFTs of u instead of u itself); dropout p > 0
// draws its tied mask from (ctx.seed(), dropout_stream, ctx.rng_offset()).
template <typename T>
void forward(ssm::Context& ctx, Activations<T>& c, const T* u, T* y, const T* W_out, const T* b_out, int64_t B,
             int64_t L, int64_t H, double dropout, uint64_t dropout_stream) {
  const bool training = ctx.training();
  const int64_t n = B * L * H, rows = B * L;
  c.B = B;
  c.L = L;
  c.v.resize(static_cast<size_t>(n));
  if (training)
    ssm::kernels::fftconv_forward(u, c.K.data(), c.v.data(), B, L, H, c.u_spectra);
  else
    ssm::kernels::fftconv_forward(u, c.K.data(), c.v.data(), B, L, H);
  c.scale.clear();
  if (training && dropout > 0) {
    c.scale.resize(static_cast<size_t>(B * H));
    ssm::kernels::channel_dropout_mask(c.scale.data(), B, H, dropout, ctx.seed(), dropout_stream, ctx.rng_offset());
  }
  c.d.resize(static_cast<size_t>(n));
  gelu_dropout_forward(c.v.data(), c.d.data(), c.scale, B, L, H, training);
  c.z.resize(static_cast<size_t>(2 * n));
  ssm::kernels::linear_forward(c.d.data(), W_out, b_out, c.z.data(), rows, H, 2 * H);
  // Training keeps sigmoid of the GLU's gate in z: the backward needs no exp.
  if (training)
    ssm::kernels::glu_forward_keep(c.z.data(), y, rows, H);
  else
    ssm::kernels::glu_forward(c.z.data(), y, rows, H);
}

// Given dy: dx (overwritten), dW_out and db_out (+=), and c.dK = dloss/dK
// (H, L), overwritten, lag 0 carrying D's gradient. Spends c.z.
template <typename T>
void backward(Activations<T>& c, const T* dy, T* dx, const T* W_out, T* dW_out, T* db_out, int64_t H) {
  const int64_t B = c.B, L = c.L, rows = B * L;
  // GLU in place (z is spent), then the Linear: its input gradient g goes
  // into dx, which is then carried back in place through dropout, the GELU
  // and the convolution.
  T* dz = c.z.data();
  ssm::kernels::glu_backward_kept(dz, dy, dz, rows, H);
  T* g = dx;
  ssm::kernels::linear_backward(c.d.data(), W_out, dz, g, dW_out, db_out, rows, H, 2 * H);
  gelu_dropout_backward(c.v.data(), g, c.scale, B, L, H);
  c.dK.assign(static_cast<size_t>(H * L), T(0));
  ssm::kernels::fftconv_backward(c.u_spectra, c.K.data(), g, g, c.dK.data(), B, L, H);
}

// The recurrent mode's tail: v (B, H), the SSM's output plus D u, is
// overwritten with GELU(v); y (B, H) = GLU(Linear(GELU(v))).
template <typename T>
void step_output(T* v, const T* W_out, const T* b_out, T* y, int64_t B, int64_t H) {
  std::vector<T> z(static_cast<size_t>(2 * B * H));
  ssm::kernels::gelu_forward(v, v, B * H);
  ssm::kernels::linear_forward(v, W_out, b_out, z.data(), B, H, 2 * H);
  ssm::kernels::glu_forward(z.data(), y, B, H);
}

}  // namespace s4block
