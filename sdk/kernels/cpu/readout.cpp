// Mean pooling and last-M-token read-outs.
#include "ssm/kernels/readout.hpp"

#include <algorithm>
#include <string>

#include "common.hpp"
#include "ssm/sdk.hpp"

namespace ssm::kernels {

namespace {
void check_m(int64_t L, int64_t M) {
  if (M < 1 || M > L)
    fail("last-M read-out needs 1 <= M <= L, got M = " + std::to_string(M) + " with L = " + std::to_string(L));
}
}  // namespace

template <typename T>
void mean_pool_forward(const T* x, T* y, int64_t B, int64_t L, int64_t H) {
  // Work items are (batch, block of channels), so one long sequence still
  // spreads over the threads; each channel sums over l in order.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (H + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static) if (B * L * H >= detail::kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t h0 = blk * kBlock, n = std::min(kBlock, H - h0);
      double sum[kBlock] = {};
      for (int64_t l = 0; l < L; ++l) {
        const T* xl = x + (b * L + l) * H + h0;
        for (int64_t h = 0; h < n; ++h) sum[h] += xl[h];
      }
      for (int64_t h = 0; h < n; ++h) y[b * H + h0 + h] = static_cast<T>(sum[h] / static_cast<double>(L));
    }
}

template <typename T>
void mean_pool_backward(const T* dy, T* dx, int64_t B, int64_t L, int64_t H) {
  const T inv_l = static_cast<T>(1.0 / static_cast<double>(L));
#pragma omp parallel for collapse(2) schedule(static) if (B * L * H >= detail::kParallelMin)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      T* d = dx + (b * L + l) * H;
      for (int64_t h = 0; h < H; ++h) d[h] = dy[b * H + h] * inv_l;
    }
}

template <typename T>
void last_m_forward(const T* x, T* y, int64_t B, int64_t L, int64_t H, int64_t M) {
  check_m(L, M);
  for (int64_t b = 0; b < B; ++b) {
    const T* src = x + (b * L + (L - M)) * H;
    std::copy(src, src + M * H, y + b * M * H);
  }
}

template <typename T>
void last_m_backward(const T* dy, T* dx, int64_t B, int64_t L, int64_t H, int64_t M) {
  check_m(L, M);
  for (int64_t b = 0; b < B; ++b) {
    T* dst = dx + b * L * H;
    std::fill(dst, dst + (L - M) * H, T(0));
    std::copy(dy + b * M * H, dy + (b + 1) * M * H, dst + (L - M) * H);
  }
}

#define SSM_INSTANTIATE_READOUT(T)                                                    \
  template void mean_pool_forward<T>(const T*, T*, int64_t, int64_t, int64_t);        \
  template void mean_pool_backward<T>(const T*, T*, int64_t, int64_t, int64_t);       \
  template void last_m_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t);  \
  template void last_m_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t);
SSM_INSTANTIATE_READOUT(float)
SSM_INSTANTIATE_READOUT(double)
#undef SSM_INSTANTIATE_READOUT

}  // namespace ssm::kernels
