// Inverted dropout with a Philox mask.
#include "ssm/kernels/dropout.hpp"

#include <cmath>
#include <string>

#include "reduce.hpp"
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
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
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
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin / 16)
  for (int64_t i = 0; i < n; ++i) {
    const bool k = philox_uniform_bits(seed, stream, offset + static_cast<uint64_t>(i)) >= threshold;
    keep[i] = k;
    y[i] = k ? x[i] * scale : T(0);
  }
}

template <typename T>
void dropout_backward(const T* dy, const uint8_t* keep, T* dx, int64_t n, double p) {
  check_p(p);
  const T scale = static_cast<T>(keep_scale(p));
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = keep[i] ? dy[i] * scale : T(0);
}

template void dropout_forward<float>(const float*, float*, uint8_t*, int64_t, double, uint64_t, uint64_t, uint64_t);
template void dropout_forward<double>(const double*, double*, uint8_t*, int64_t, double, uint64_t, uint64_t,
                                      uint64_t);
template void dropout_backward<float>(const float*, const uint8_t*, float*, int64_t, double);
template void dropout_backward<double>(const double*, const uint8_t*, double*, int64_t, double);

}  // namespace ssm::kernels
