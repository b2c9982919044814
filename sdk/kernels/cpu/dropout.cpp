// Inverted dropout with a Philox mask.
#include "ssm/kernels/dropout.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "common.hpp"
#include "ssm/kernels/philox.hpp"
#include "ssm/sdk.hpp"

namespace ssm::kernels {

namespace {
void check_p(double p) {
  if (!(p >= 0.0 && p <= 1.0)) fail("dropout probability must be in [0, 1], got " + std::to_string(p));
}
// What a kept element is multiplied by; p == 1 keeps nothing, so 0 avoids inf.
double keep_scale(double p) { return p < 1.0 ? 1.0 / (1.0 - p) : 0.0; }
}  // namespace

template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* keep, int64_t n, double p, uint64_t seed, uint64_t stream,
                     uint64_t offset) {
  check_p(p);
  if (p == 0.0) {
#pragma omp parallel for simd schedule(static) if (n >= detail::kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      y[i] = x[i];
      keep[i] = 1;
    }
    return;
  }
  // uniform >= p  <=>  bits >= p * 2^53 (exact: p * 2^53 is an exact double),
  // so the test is done on the integer bits without rounding.
  const uint64_t threshold = static_cast<uint64_t>(std::ceil(std::ldexp(p, 53)));
  const T scale = static_cast<T>(keep_scale(p));
  // Blocks of two simple loops: the mask loop (integers only) vectorizes the
  // Philox rounds, which a single mixed-type loop does not.
  constexpr int64_t kBlock = 1024;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin / 8)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t i0 = blk * kBlock, i1 = std::min(n, i0 + kBlock);
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i)
      keep[i] = philox_uniform_bits(seed, stream, offset + static_cast<uint64_t>(i)) >= threshold;
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) y[i] = x[i] * (static_cast<T>(keep[i]) * scale);
  }
}

template <typename T>
void dropout_backward(const T* dy, const uint8_t* keep, T* dx, int64_t n, double p) {
  check_p(p);
  const T scale = static_cast<T>(keep_scale(p));
#pragma omp parallel for simd schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (static_cast<T>(keep[i]) * scale);
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t, uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t, uint64_t,
                                      uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double);

}  // namespace ssm::kernels
