// LayerNorm / RMSNorm: one row per iteration, stats in double.
// Row sums use `omp simd reduction`: vectorized in an order fixed at compile
// time, so still bit-identical run to run.
#include "ssm/kernels/norm.hpp"

#include <cmath>
#include <vector>

#include "common.hpp"

namespace ssm::kernels {

template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t rows,
                       int64_t dim, double eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    // Two passes (mean, then squared deviations): no cancellation for rows far from zero.
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mu = sum / static_cast<double>(dim);
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < dim; ++i) {
      const double d = xr[i] - mu;
      sq += d * d;
    }
    const double rs = 1.0 / std::sqrt(sq / static_cast<double>(dim) + eps);
    mean[r] = static_cast<T>(mu);
    rstd[r] = static_cast<T>(rs);
    for (int64_t i = 0; i < dim; ++i) yr[i] = static_cast<T>((xr[i] - mu) * rs) * gamma[i] + beta[i];
  }
}

namespace {
// One row of the LayerNorm backward: dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
// with g = dy * gamma; adds dy * xhat to dgamma_acc and dy to dbeta_acc.
// Plain pointer arguments (not lambda captures) so that the loops vectorize.
template <typename T>
void layernorm_backward_row(const T* x, const T* gamma, double mu, double rs, const T* dy, T* dx,
                            double* dgamma_acc, double* dbeta_acc, int64_t dim) {
  double sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
  for (int64_t i = 0; i < dim; ++i) {
    const double xhat = (x[i] - mu) * rs;
    const double g = static_cast<double>(dy[i]) * gamma[i];
    sum_g += g;
    sum_gx += g * xhat;
    dgamma_acc[i] += dy[i] * xhat;
    dbeta_acc[i] += dy[i];
  }
  const double mean_g = sum_g / static_cast<double>(dim), mean_gx = sum_gx / static_cast<double>(dim);
#pragma omp simd
  for (int64_t i = 0; i < dim; ++i) {
    const double xhat = (x[i] - mu) * rs;
    dx[i] = static_cast<T>(rs * (static_cast<double>(dy[i]) * gamma[i] - mean_g - xhat * mean_gx));
  }
}
}  // namespace

template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, int64_t rows, int64_t dim) {
  // partial[0, dim): sum dy * xhat (dgamma); partial[dim, 2 dim): sum dy (dbeta).
  const std::vector<double> sums = detail::reduce_rows(rows, 2 * dim, dim, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r)
      layernorm_backward_row(x + r * dim, gamma, mean[r], rstd[r], dy + r * dim, dx + r * dim, acc, acc + dim, dim);
  });
  for (int64_t i = 0; i < dim; ++i) {
    dgamma[i] += static_cast<T>(sums[i]);
    dbeta[i] += static_cast<T>(sums[dim + i]);
  }
}

template <typename T>
void rmsnorm_forward(const T* x, std::add_pointer_t<const T> gamma, T* y, T* rstd, int64_t rows, int64_t dim,
                     double eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < dim; ++i) sq += static_cast<double>(xr[i]) * xr[i];
    const double rs = 1.0 / std::sqrt(sq / static_cast<double>(dim) + eps);
    rstd[r] = static_cast<T>(rs);
    for (int64_t i = 0; i < dim; ++i) {
      const T xhat = static_cast<T>(xr[i] * rs);
      yr[i] = gamma ? xhat * gamma[i] : xhat;
    }
  }
}

namespace {
// One row of the RMSNorm backward: dx = rstd * (g - xhat * mean(g * xhat)) with
// g = dy * gamma (kGamma false: g = dy); adds dy * xhat to dgamma_acc unless nullptr.
// kGamma is a template argument so that no loop tests gamma per element.
template <bool kGamma, typename T>
void rmsnorm_backward_row(const T* x, const T* gamma, double rs, const T* dy, T* dx, double* dgamma_acc,
                          int64_t dim) {
  double sum_gx = 0;
#pragma omp simd reduction(+ : sum_gx)
  for (int64_t i = 0; i < dim; ++i) {
    const double g = kGamma ? static_cast<double>(dy[i]) * gamma[i] : static_cast<double>(dy[i]);
    sum_gx += g * x[i];
  }
  const double c = sum_gx * rs * rs / static_cast<double>(dim);  // mean(g * xhat) * rstd
#pragma omp simd
  for (int64_t i = 0; i < dim; ++i) {
    const double g = kGamma ? static_cast<double>(dy[i]) * gamma[i] : static_cast<double>(dy[i]);
    dx[i] = static_cast<T>(rs * (g - x[i] * c));
  }
  if (dgamma_acc) {
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) dgamma_acc[i] += dy[i] * (x[i] * rs);
  }
}
}  // namespace

template <typename T>
void rmsnorm_backward(const T* x, std::add_pointer_t<const T> gamma, const T* rstd, const T* dy, T* dx,
                      std::add_pointer_t<T> dgamma, int64_t rows, int64_t dim) {
  // With no dgamma the reduction has width 0 and only writes dx.
  const int64_t width = dgamma ? dim : 0;
  const std::vector<double> sums = detail::reduce_rows(rows, width, dim, [&](int64_t r0, int64_t r1, double* acc) {
    double* dgamma_acc = width ? acc : nullptr;
    for (int64_t r = r0; r < r1; ++r) {
      if (gamma)
        rmsnorm_backward_row<true>(x + r * dim, gamma, rstd[r], dy + r * dim, dx + r * dim, dgamma_acc, dim);
      else
        rmsnorm_backward_row<false>(x + r * dim, gamma, rstd[r], dy + r * dim, dx + r * dim, dgamma_acc, dim);
    }
  });
  for (int64_t i = 0; i < width; ++i) dgamma[i] += static_cast<T>(sums[i]);
}

#define SSM_INSTANTIATE_NORM(T)                                                                                 \
  template void layernorm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double);     \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t,  \
                                      int64_t);                                                               \
  template void rmsnorm_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, double);                     \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, T*, T*, int64_t, int64_t);
SSM_INSTANTIATE_NORM(float)
SSM_INSTANTIATE_NORM(double)
#undef SSM_INSTANTIATE_NORM

}  // namespace ssm::kernels
