// Sequence read-outs: (B, L, H) -> (B, H) mean over L, or (B, M, H) last M tokens.
// Dense row-major arrays; outputs and dx are overwritten. T = float or double.
#pragma once

#include <cstdint>

namespace ssm::kernels {

// y[b, h] = mean_l x[b, l, h].
template <typename T>
void mean_pool_forward(const T* x, T* y, int64_t B, int64_t L, int64_t H);
// dx[b, l, h] = dy[b, h] / L.
template <typename T>
void mean_pool_backward(const T* dy, T* dx, int64_t B, int64_t L, int64_t H);

// y[b, m, h] = x[b, L - M + m, h] for m < M (M = 1: the last token).
// M outside [1, L] is an ssm::Error.
template <typename T>
void last_m_forward(const T* x, T* y, int64_t B, int64_t L, int64_t H, int64_t M);
// dx[b, L - M + m, h] = dy[b, m, h]; every other dx is 0.
template <typename T>
void last_m_backward(const T* dy, T* dx, int64_t B, int64_t L, int64_t H, int64_t M);

}  // namespace ssm::kernels
