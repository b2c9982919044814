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
// Every GEMM here runs Eigen single-threaded on blocks cut at fixed positions,
// the blocks in parallel: each output value is summed in an order that does
// not depend on the thread count, so --threads 1 and --threads 2 give the same
// bits (Eigen's own threading picks its blocking from the thread count).
constexpr int64_t kRowBlock = 256;     // rows of x / dy per block of y = x W^T and dx = dy W
constexpr int64_t kRowsPerSlice = 1024;  // rows of the dW reduction per partial sum
constexpr int64_t kMaxSlices = 16;
constexpr int64_t kOutBlock = 64;      // rows of dW per work item
constexpr int64_t kMaxPartialValues = int64_t(1) << 22;

void eigen_single_threaded() {
  static const bool once = (Eigen::setNbThreads(1), true);
  (void)once;
}

// f(r0, r1) for the fixed row blocks of [0, rows), in parallel when it pays.
template <typename F>
void for_row_blocks(int64_t rows, int64_t values_per_row, F f) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && rows * values_per_row >= detail::kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) f(b * kRowBlock, std::min(rows, (b + 1) * kRowBlock));
}

// dW += dy^T x. The depth (rows, e.g. B*L) is long and the output (out, in)
// small: the rows are cut into a fixed number of slices (from the sizes alone),
// each slice reduced into its own buffer in blocks of kOutBlock output rows,
// and the buffers added in slice order.
template <typename T>
void add_weight_grad(const T* x, const T* dy, T* dW, int64_t rows, int64_t in, int64_t out) {
  const int64_t n = out * in;
  const int64_t slices = std::max<int64_t>(1, std::min({kMaxSlices, rows / kRowsPerSlice, kMaxPartialValues / n}));
  const int64_t out_blocks = (out + kOutBlock - 1) / kOutBlock;
  std::vector<T> partial(static_cast<size_t>(slices * n));
#pragma omp parallel for schedule(static) collapse(2) if (rows * n >= detail::kParallelMin)
  for (int64_t s = 0; s < slices; ++s)
    for (int64_t ob = 0; ob < out_blocks; ++ob) {
      const int64_t r0 = rows * s / slices, r1 = rows * (s + 1) / slices;
      const int64_t o0 = ob * kOutBlock, o1 = std::min(out, o0 + kOutBlock);
      Eigen::Map<RowMajor<T>, 0, Eigen::OuterStride<>> P(partial.data() + s * n + o0 * in, o1 - o0, in,
                                                         Eigen::OuterStride<>(in));
      Eigen::Map<const RowMajor<T>, 0, Eigen::OuterStride<>> G(dy + r0 * out + o0, r1 - r0, o1 - o0,
                                                               Eigen::OuterStride<>(out));
      P.noalias() = G.transpose() * ConstMap<T>(x + r0 * in, r1 - r0, in);
    }
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
  eigen_single_threaded();
  ConstMap<T> Wm(W, out, in);
  for_row_blocks(rows, in + out, [&](int64_t r0, int64_t r1) {
    MutMap<T> Y(y + r0 * out, r1 - r0, out);
    ConstMap<T> X(x + r0 * in, r1 - r0, in);
    if (!b) {
      Y.noalias() = X * Wm.transpose();
      return;
    }
    // Start from the bias and let the GEMM accumulate: Eigen's GEMM adds into
    // its destination anyway, so this saves the separate pass of a "+ b".
    for (int64_t r = r0; r < r1; ++r) std::copy(b, b + out, y + r * out);
    Y.noalias() += X * Wm.transpose();
  });
}

template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, std::add_pointer_t<T> dx, T* dW, std::add_pointer_t<T> db,
                     int64_t rows, int64_t in, int64_t out) {
  eigen_single_threaded();
  ConstMap<T> Wm(W, out, in);
  if (dx)
    for_row_blocks(rows, in + out, [&](int64_t r0, int64_t r1) {
      MutMap<T>(dx + r0 * in, r1 - r0, in).noalias() = ConstMap<T>(dy + r0 * out, r1 - r0, out) * Wm;
    });
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
