// Linear layer through Eigen GEMM on row-major maps of the caller's buffers.
#include "ssm/kernels/linear.hpp"

#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "common.hpp"

namespace ssm::kernels {

namespace {
template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMajor<T>>;
template <typename T>
using MutMap = Eigen::Map<RowMajor<T>>;
// Fewer rows than this per thread, or private buffers larger than this (a
// large (out, in) output gives Eigen enough to split): leave dW to Eigen.
constexpr int64_t kMinRowsPerSlice = 1024;
constexpr int64_t kMaxPartialValues = int64_t(1) << 22;

// dW += dy^T x. Here the GEMM depth (rows, e.g. B*L) is long and the output
// (out, in) small; Eigen's threading splits the output and synchronises the
// threads once per depth block, which scales badly (and collapses when cores
// are shared). Instead each thread reduces one contiguous slice of rows into
// its own buffer, and the buffers are added in slice order: bit-identical run
// to run for a given thread count.
template <typename T>
void add_weight_grad(const T* x, const T* dy, T* dW, int64_t rows, int64_t in, int64_t out) {
  MutMap<T> dWm(dW, out, in);
  const int64_t slices = std::min<int64_t>(omp_get_max_threads(), rows / kMinRowsPerSlice);
  if (slices <= 1 || slices * out * in > kMaxPartialValues || omp_in_parallel()) {
    dWm.noalias() += ConstMap<T>(dy, rows, out).transpose() * ConstMap<T>(x, rows, in);
    return;
  }
  std::vector<T> partial(static_cast<size_t>(slices * out * in));
  // Inside this region Eigen sees a team of threads and runs single-threaded.
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(slices))
  for (int64_t s = 0; s < slices; ++s) {
    const int64_t r0 = rows * s / slices, r1 = rows * (s + 1) / slices;
    MutMap<T> P(partial.data() + s * out * in, out, in);
    P.noalias() = ConstMap<T>(dy + r0 * out, r1 - r0, out).transpose() * ConstMap<T>(x + r0 * in, r1 - r0, in);
  }
  const int64_t n = out * in;
#pragma omp parallel for schedule(static) if (n * slices >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T sum = partial[i];
    for (int64_t s = 1; s < slices; ++s) sum += partial[s * n + i];
    dW[i] += sum;
  }
}
}  // namespace

template <typename T>
void linear_forward(const T* x, const T* W, std::add_pointer_t<const T> b, T* y, int64_t rows, int64_t in,
                    int64_t out) {
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
void linear_backward(const T* x, const T* W, const T* dy, std::add_pointer_t<T> dx, T* dW, std::add_pointer_t<T> db,
                     int64_t rows, int64_t in, int64_t out) {
  ConstMap<T> X(x, rows, in), Wm(W, out, in), dY(dy, rows, out);
  if (dx) {
    MutMap<T> dX(dx, rows, in);
    dX.noalias() = dY * Wm;
  }
  add_weight_grad(x, dy, dW, rows, in, out);
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
