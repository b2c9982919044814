// Linear layer through Eigen GEMM on row-major maps of the caller's buffers.
#include "ssm/kernels/linear.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <vector>

#include "reduce.hpp"

namespace ssm::kernels {

namespace {
template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMajor<T>>;
template <typename T>
using MutMap = Eigen::Map<RowMajor<T>>;
}  // namespace

template <typename T>
void linear_forward(const T* x, const T* W, const T* b, T* y, int64_t rows, int64_t in, int64_t out) {
  ConstMap<T> X(x, rows, in), Wm(W, out, in);
  MutMap<T> Y(y, rows, out);
  if (!b) {
    Y.noalias() = X * Wm.transpose();
    return;
  }
  // Start from the bias and let the GEMM accumulate: Eigen's GEMM adds into
  // its destination anyway, so this saves the separate pass of a "+ b".
#pragma omp parallel for schedule(static) if (rows * out >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r) std::copy(b, b + out, y + r * out);
  Y.noalias() += X * Wm.transpose();
}

template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t rows, int64_t in,
                     int64_t out) {
  ConstMap<T> X(x, rows, in), Wm(W, out, in), dY(dy, rows, out);
  if (dx) {
    MutMap<T> dX(dx, rows, in);
    dX.noalias() = dY * Wm;
  }
  MutMap<T> dWm(dW, out, in);
  dWm.noalias() += dY.transpose() * X;
  if (!db) return;
  const std::vector<double> sums = detail::reduce_rows(rows, out, out, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* g = dy + r * out;
      for (int64_t o = 0; o < out; ++o) acc[o] += g[o];
    }
  });
  for (int64_t o = 0; o < out; ++o) db[o] += static_cast<T>(sums[o]);
}

template void linear_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void linear_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                     int64_t);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, float*, int64_t,
                                     int64_t, int64_t);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, double*,
                                      int64_t, int64_t, int64_t);

}  // namespace ssm::kernels
