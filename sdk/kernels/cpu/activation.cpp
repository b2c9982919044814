// GELU, SiLU, GLU: elementwise loops, OpenMP over elements (rows for GLU).
#include "ssm/kernels/activation.hpp"

#include <cmath>

#include "reduce.hpp"

namespace ssm::kernels {

namespace {
template <typename T>
T sigmoid(T x) {
  // exp(-x) overflows to inf for very negative x, giving exactly 0: no NaN.
  return T(1) / (T(1) + std::exp(-x));
}
template <typename T>
T normal_cdf(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
}
}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * normal_cdf(x[i]);
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  const T inv_sqrt_2pi = T(0.39894228040143267794);
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    dx[i] = dy[i] * (normal_cdf(v) + v * inv_sqrt_2pi * std::exp(T(-0.5) * v * v));
  }
}

template <typename T>
void silu_forward(const T* x, T* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid(x[i]);
}

template <typename T>
void silu_backward(const T* x, const T* dy, T* dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(x[i]);
    dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <typename T>
void glu_forward(const T* x, T* y, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = x + r * 2 * dim;
    const T* b = a + dim;
    T* yr = y + r * dim;
    for (int64_t i = 0; i < dim; ++i) yr[i] = a[i] * sigmoid(b[i]);
  }
}

template <typename T>
void glu_backward(const T* x, const T* dy, T* dx, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = x + r * 2 * dim;
    const T* b = a + dim;
    const T* g = dy + r * dim;
    T* da = dx + r * 2 * dim;
    T* db = da + dim;
    for (int64_t i = 0; i < dim; ++i) {
      const T s = sigmoid(b[i]);
      da[i] = g[i] * s;
      db[i] = g[i] * a[i] * s * (T(1) - s);
    }
  }
}

#define SSM_INSTANTIATE_ACTIVATION(T)                                  \
  template void gelu_forward<T>(const T*, T*, int64_t);                \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t);     \
  template void silu_forward<T>(const T*, T*, int64_t);                \
  template void silu_backward<T>(const T*, const T*, T*, int64_t);     \
  template void glu_forward<T>(const T*, T*, int64_t, int64_t);        \
  template void glu_backward<T>(const T*, const T*, T*, int64_t, int64_t);
SSM_INSTANTIATE_ACTIVATION(float)
SSM_INSTANTIATE_ACTIVATION(double)
#undef SSM_INSTANTIATE_ACTIVATION

}  // namespace ssm::kernels
