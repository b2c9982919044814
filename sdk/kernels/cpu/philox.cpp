// Philox fills (the single-value functions are inline in the header).
#include "ssm/kernels/philox.hpp"

#include "common.hpp"

namespace ssm::kernels {

namespace {
// A uniform in [0, 1) as T: double keeps all 53 bits; float truncates to 24 so
// that values just below 1 do not round up to 1.0f.
template <typename T>
T uniform_as(uint64_t bits53) {
  if constexpr (sizeof(T) >= sizeof(double)) return static_cast<T>(bits53) * static_cast<T>(0x1p-53);
  else return static_cast<T>(bits53 >> 29) * static_cast<T>(0x1p-24);
}
}  // namespace

template <typename T>
void philox_fill_uniform(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    out[i] = uniform_as<T>(philox_uniform_bits(seed, stream, offset + static_cast<uint64_t>(i)));
}

template <typename T>
void philox_fill_normal(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin / 8)
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<T>(philox_normal(seed, stream, offset + static_cast<uint64_t>(i)));
}

template void philox_fill_uniform<float>(float*, int64_t, uint64_t, uint64_t, uint64_t);
template void philox_fill_uniform<double>(double*, int64_t, uint64_t, uint64_t, uint64_t);
template void philox_fill_normal<float>(float*, int64_t, uint64_t, uint64_t, uint64_t);
template void philox_fill_normal<double>(double*, int64_t, uint64_t, uint64_t, uint64_t);

}  // namespace ssm::kernels
