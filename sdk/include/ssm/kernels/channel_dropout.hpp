// Channel ("tied") dropout: one keep/drop decision per (batch, channel),
// the same at every position of the sequence, as PyTorch's Dropout1d/2d on a
// (B, H, L) tensor, which the official S4/S4D example uses in its blocks.
// Cheaper than element dropout: B*H random draws instead of B*L*H.
#pragma once

#include <cstdint>

#include "philox.hpp"

namespace ssm::kernels {

// scale[b, h] = 0 with probability p, else 1/(1-p); draw i = b*H + h comes
// from philox (seed, stream, offset + i), so masks are reproducible.
template <typename T>
void channel_dropout_mask(T* scale, int64_t B, int64_t H, double p, uint64_t seed, uint64_t stream, uint64_t offset) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (int64_t i = 0; i < B * H; ++i)
    scale[i] = philox_uniform(seed, stream, offset + static_cast<uint64_t>(i)) >= p ? keep_scale : T(0);
}

// y[b, l, h] = x[b, l, h] * scale[b, h]; y may be x. The backward is the
// same call on the gradient.
template <typename T>
void scale_channels(const T* x, const T* scale, T* y, int64_t B, int64_t L, int64_t H) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const T* s = scale + b * H;
      const T* xi = x + (b * L + l) * H;
      T* yi = y + (b * L + l) * H;
      for (int64_t h = 0; h < H; ++h) yi[h] = xi[h] * s[h];
    }
}

}  // namespace ssm::kernels
