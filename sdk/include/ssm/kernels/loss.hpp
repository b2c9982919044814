// Losses with optional per-row weights (masks). Sums run in double over a
// fixed partition of the rows, so results are bit-identical for any thread
// count. T = float or double.
//
// Nullable pointer parameters are spelled std::add_pointer_t<...>: the same
// pointer type, kept out of template deduction so that a bare nullptr compiles.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ssm::kernels {

// Softmax cross-entropy of logits (rows, classes) against integer targets.
// Returns sum_r w_r * nll_r / sum_r w_r (a plain mean when weight is nullptr);
// 0 when every weight is 0. If dlogits is not nullptr it receives the gradient
// of the returned value: w_r / sum w * (softmax_r - onehot(target_r)).
// If correct is not nullptr, *correct = number of rows with w_r > 0 whose
// argmax (first maximum on ties) equals the target.
// Rows with w_r == 0 are skipped entirely (their target is never read, so a
// padding value such as -100 is fine there). Errors (ssm::Error): a target
// outside [0, classes) on a weighted row, a negative weight.
template <typename T>
T cross_entropy(const T* logits, const int32_t* target, std::add_pointer_t<const T> weight, int64_t rows,
                int64_t classes, std::add_pointer_t<T> dlogits, int64_t* correct);

// Weighted mean squared error over rows*dim values:
// sum_r w_r * sum_c (pred - target)^2 / (dim * sum_r w_r) (weight nullptr: all 1;
// 0 when every weight is 0). If dpred is not nullptr it is overwritten with the
// gradient of the returned value. A negative weight is an ssm::Error.
template <typename T>
T mse(const T* pred, const T* target, std::add_pointer_t<const T> weight, int64_t rows, int64_t dim,
      std::add_pointer_t<T> dpred);

}  // namespace ssm::kernels
