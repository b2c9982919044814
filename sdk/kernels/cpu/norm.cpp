// LayerNorm / RMSNorm: one row per iteration, stats in double.
#include "ssm/kernels/norm.hpp"

#include <cmath>
#include <vector>

#include "reduce.hpp"

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
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mu = sum / static_cast<double>(dim);
    double sq = 0;
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

template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, int64_t rows, int64_t dim) {
  // partial[0, dim): sum dy * xhat (dgamma); partial[dim, 2 dim): sum dy (dbeta).
  const std::vector<double> sums = detail::reduce_rows(rows, 2 * dim, dim, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      const T* gr = dy + r * dim;
      T* dxr = dx + r * dim;
      const double mu = mean[r], rs = rstd[r];
      // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma.
      double sum_g = 0, sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const double xhat = (xr[i] - mu) * rs;
        const double g = static_cast<double>(gr[i]) * gamma[i];
        sum_g += g;
        sum_gx += g * xhat;
        acc[i] += gr[i] * xhat;
        acc[dim + i] += gr[i];
      }
      const double mean_g = sum_g / static_cast<double>(dim), mean_gx = sum_gx / static_cast<double>(dim);
      for (int64_t i = 0; i < dim; ++i) {
        const double xhat = (xr[i] - mu) * rs;
        dxr[i] = static_cast<T>(rs * (static_cast<double>(gr[i]) * gamma[i] - mean_g - xhat * mean_gx));
      }
    }
  });
  for (int64_t i = 0; i < dim; ++i) {
    dgamma[i] += static_cast<T>(sums[i]);
    dbeta[i] += static_cast<T>(sums[dim + i]);
  }
}

template <typename T>
void rmsnorm_forward(const T* x, const T* gamma, T* y, T* rstd, int64_t rows, int64_t dim, double eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    double sq = 0;
    for (int64_t i = 0; i < dim; ++i) sq += static_cast<double>(xr[i]) * xr[i];
    const double rs = 1.0 / std::sqrt(sq / static_cast<double>(dim) + eps);
    rstd[r] = static_cast<T>(rs);
    for (int64_t i = 0; i < dim; ++i) {
      const T xhat = static_cast<T>(xr[i] * rs);
      yr[i] = gamma ? xhat * gamma[i] : xhat;
    }
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* gamma, const T* rstd, const T* dy, T* dx, T* dgamma, int64_t rows,
                      int64_t dim) {
  // With no dgamma the reduction has width 0 and only writes dx.
  const int64_t width = dgamma ? dim : 0;
  const std::vector<double> sums = detail::reduce_rows(rows, width, dim, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * dim;
      const T* gr = dy + r * dim;
      T* dxr = dx + r * dim;
      const double rs = rstd[r];
      // dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * gamma.
      double sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        const double xhat = xr[i] * rs;
        const double g = gamma ? static_cast<double>(gr[i]) * gamma[i] : static_cast<double>(gr[i]);
        sum_gx += g * xhat;
        if (width) acc[i] += gr[i] * xhat;
      }
      const double mean_gx = sum_gx / static_cast<double>(dim);
      for (int64_t i = 0; i < dim; ++i) {
        const double xhat = xr[i] * rs;
        const double g = gamma ? static_cast<double>(gr[i]) * gamma[i] : static_cast<double>(gr[i]);
        dxr[i] = static_cast<T>(rs * (g - xhat * mean_gx));
      }
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
