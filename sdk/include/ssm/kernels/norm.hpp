// LayerNorm and RMSNorm over the last dimension of dense row-major (rows, dim)
// arrays. Row statistics are computed in double; parameter gradients are
// reduced in a fixed order (bit-identical for any thread count). T = float or double.
//
// Nullable pointer parameters are spelled std::add_pointer_t<...>: the same
// pointer type, kept out of template deduction so that a bare nullptr compiles.
#pragma once

#include <cstdint>
#include <type_traits>

namespace ssm::kernels {

// y = (x - mean) * rstd * gamma + beta per row, rstd = 1/sqrt(var + eps) with
// the biased variance (PyTorch nn.LayerNorm). Writes y (rows, dim) and the
// per-row mean and rstd (rows) that layernorm_backward needs.
template <typename T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, int64_t rows,
                       int64_t dim, double eps);

// dx (overwritten), dgamma += sum_rows dy * xhat, dbeta += sum_rows dy.
template <typename T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, int64_t rows, int64_t dim);

// y = x * rstd * gamma per row, rstd = 1/sqrt(mean(x^2) + eps); gamma may be
// nullptr (no scale). Writes y and the per-row rstd.
template <typename T>
void rmsnorm_forward(const T* x, std::add_pointer_t<const T> gamma, T* y, T* rstd, int64_t rows, int64_t dim,
                     double eps);

// dx (overwritten), dgamma += sum_rows dy * x * rstd (gamma and dgamma may be nullptr).
template <typename T>
void rmsnorm_backward(const T* x, std::add_pointer_t<const T> gamma, const T* rstd, const T* dy, T* dx,
                      std::add_pointer_t<T> dgamma, int64_t rows, int64_t dim);

}  // namespace ssm::kernels
