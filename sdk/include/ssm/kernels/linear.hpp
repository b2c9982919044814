// Fully connected layer y = x W^T + b on dense row-major arrays (CPU, Eigen GEMM).
//
// x (rows, in), W (out, in) as in PyTorch's nn.Linear, b (out), y (rows, out);
// rows is every leading dimension flattened (e.g. B*L). T = float or double.
// GEMMs run on Eigen's OpenMP threads (ssm::kernels::set_threads); results are
// bit-identical run to run for the same thread count.
//
// Nullable pointer parameters are spelled std::add_pointer_t<...>: the same
// pointer type, kept out of template deduction so that a bare nullptr compiles.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ssm::kernels {

// y = x W^T + b (b may be nullptr: no bias). y is overwritten.
template <typename T>
void linear_forward(const T* x, const T* W, std::add_pointer_t<const T> b, T* y, int64_t rows, int64_t in,
                    int64_t out);

// Given dy = dL/dy: dx = dy W (overwritten; skipped when dx is nullptr),
// dW += dy^T x, db += column sums of dy (skipped when db is nullptr).
template <typename T>
void linear_backward(const T* x, const T* W, const T* dy, std::add_pointer_t<T> dx, T* dW, std::add_pointer_t<T> db,
                     int64_t rows, int64_t in, int64_t out);

}  // namespace ssm::kernels
