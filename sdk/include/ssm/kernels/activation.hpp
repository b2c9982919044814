// Elementwise activations and their gradients on dense arrays. T = float or double.
// Forward outputs and dx are overwritten. exp and erf are Eigen's vectorized
// versions (float erf: a rational approximation within a few ulp; double erf: std::erf).
// In place is fine: y may be x, and dx may be x or dy.
#pragma once

#include <cstdint>

namespace ssm::kernels {

// y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): the exact GELU (PyTorch nn.GELU default).
template <typename T>
void gelu_forward(const T* x, T* y, int64_t n);
// dx = dy * (Phi(x) + x * phi(x)), phi the standard normal density.
template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n);
// y = GELU(x) and its derivative dydx = Phi(x) + x * phi(x) in one pass, for a
// backward that then needs neither x nor an erf: dx = dy * dydx. dydx may be x.
template <typename T>
void gelu_forward_grad(const T* x, T* y, T* dydx, int64_t n);

// y = x * sigmoid(x) (SiLU / swish).
template <typename T>
void silu_forward(const T* x, T* y, int64_t n);
// dx = dy * s (1 + x (1 - s)), s = sigmoid(x).
template <typename T>
void silu_backward(const T* x, const T* dy, T* dx, int64_t n);

// x is (rows, 2*dim): a = x[:, :dim], b = x[:, dim:]; y (rows, dim) = a * sigmoid(b)
// (PyTorch nn.GLU on the last dimension).
template <typename T>
void glu_forward(const T* x, T* y, int64_t rows, int64_t dim);
// dx (rows, 2*dim): da = dy * sigmoid(b), db = dy * a * s (1 - s).
template <typename T>
void glu_backward(const T* x, const T* dy, T* dx, int64_t rows, int64_t dim);
// glu_forward that also overwrites b with sigmoid(b), all that glu_backward_kept
// needs: the backward then computes no exponential.
template <typename T>
void glu_forward_keep(T* x, T* y, int64_t rows, int64_t dim);
// glu_backward from x as glu_forward_keep left it. dx may be x.
template <typename T>
void glu_backward_kept(const T* x, const T* dy, T* dx, int64_t rows, int64_t dim);

}  // namespace ssm::kernels
