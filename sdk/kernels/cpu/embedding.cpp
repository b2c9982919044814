// Embedding gather / scatter-add.
#include "ssm/kernels/embedding.hpp"

#include <omp.h>

#include <algorithm>
#include <string>

#include "common.hpp"
#include "ssm/sdk.hpp"

namespace ssm::kernels {

namespace {
// Checked before the parallel loops: an exception must not leave an OpenMP region.
void check_ids(const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0)
      fail("embedding id " + std::to_string(ids[i]) + " at position " + std::to_string(i) + " is negative");
}
}  // namespace

template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* y, int64_t n, int64_t dim) {
  check_ids(ids, n);
#pragma omp parallel for schedule(static) if (n * dim >= detail::kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* row = table + static_cast<int64_t>(ids[i]) * dim;
    std::copy(row, row + dim, y + i * dim);
  }
}

template <typename T>
void embedding_backward(const int32_t* ids, const T* dy, T* dtable, int64_t n, int64_t dim) {
  check_ids(ids, n);
#pragma omp parallel if (n * dim >= detail::kParallelMin)
  {
    // Contiguous column slice per thread; the slices partition [0, dim) in
    // blocks of 16 values so that two threads rarely share a cache line.
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t blocks = (dim + 15) / 16;
    const int64_t c0 = std::min(dim, 16 * (blocks * t / nt)), c1 = std::min(dim, 16 * (blocks * (t + 1) / nt));
    for (int64_t i = 0; i < n; ++i) {
      const T* g = dy + i * dim;
      T* row = dtable + static_cast<int64_t>(ids[i]) * dim;
      for (int64_t c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

template void embedding_forward<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_forward<double>(const int32_t*, const double*, double*, int64_t, int64_t);
template void embedding_backward<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int32_t*, const double*, double*, int64_t, int64_t);

}  // namespace ssm::kernels
