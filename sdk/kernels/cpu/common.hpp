// Private helpers of the CPU kernels (not installed): the size below which
// OpenMP is not worth starting, deterministic reductions over rows, and
// vectorized Eigen math whose result does not depend on pointer alignment.
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ssm::kernels::detail {

// Elementwise work below this many elements runs on one thread.
constexpr int64_t kParallelMin = 1 << 15;

// Rows per chunk of a column reduction. Fixed, so that the summation order (and
// therefore every bit of the result) does not depend on the thread count.
constexpr int64_t kReduceChunk = 256;

// Column sums over rows, reproducible bit for bit for any thread count.
//
// The rows are cut into chunks of kReduceChunk; `add_rows(r0, r1, partial)`
// adds rows [r0, r1) into `partial` (width doubles, zeroed) and may also write
// per-row outputs; chunks run in parallel and their partials are summed in
// chunk order. `row_cost` (values touched per row) decides whether threads
// pay. Returns the width column totals.
template <typename AddRows>
std::vector<double> reduce_rows(int64_t rows, int64_t width, int64_t row_cost, AddRows add_rows) {
  const int64_t chunks = (rows + kReduceChunk - 1) / kReduceChunk;
  std::vector<double> partial(static_cast<size_t>(chunks * width), 0.0);
#pragma omp parallel for schedule(static) if (rows * row_cost >= kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t r0 = c * kReduceChunk;
    add_rows(r0, std::min(rows, r0 + kReduceChunk), partial.data() + c * width);
  }
  std::vector<double> total(static_cast<size_t>(width), 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    const double* p = partial.data() + c * width;
    for (int64_t j = 0; j < width; ++j) total[j] += p[j];
  }
  return total;
}

// Eigen's scalar and vector exp can differ in the last bit, and Eigen takes
// the scalar path for the elements before the first aligned address of the
// destination and after its last full packet. Elementwise math is therefore
// evaluated into an aligned buffer over blocks of at most kBlock values cut at
// fixed positions: which elements take the scalar path depends neither on the
// thread count nor on the caller's pointers.
constexpr int64_t kBlock = 4096;

template <typename T>
using ConstVec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// out[0, e.size()) = e (at most kBlock values), through an aligned buffer. e may read from out.
template <typename T, typename Expr>
void store_block(T* out, const Expr& e) {
  alignas(64) T buf[kBlock];
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>(buf, e.size()) = e;
  std::copy(buf, buf + e.size(), out);
}

}  // namespace ssm::kernels::detail
