// Token embedding lookup and its gradient. T = float or double.
// ids must lie in [0, vocab) of the table; the caller checks the upper bound
// (the table's row count is not passed), a negative id is an ssm::Error.
#pragma once

#include <cstdint>

namespace ssm::kernels {

// y[i, :] = table[ids[i], :] for i < n; y (n, dim) is overwritten.
template <typename T>
void embedding_forward(const int32_t* ids, const T* table, T* y, int64_t n, int64_t dim);

// dtable[ids[i], :] += dy[i, :]. Threads split the columns, and every thread
// adds the rows in order i = 0..n-1: no races, and the result does not depend
// on the thread count.
template <typename T>
void embedding_backward(const int32_t* ids, const T* dy, T* dtable, int64_t n, int64_t dim);

}  // namespace ssm::kernels
