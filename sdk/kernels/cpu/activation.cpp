// GELU, SiLU, GLU. The math runs on Eigen arrays so that exp and erf are
// vectorized (std::erf and std::exp are scalar calls, which made GELU cost
// more than the GEMM of the same size), in fixed blocks through
// detail::store_block: bit-identical for any thread count.
#include "ssm/kernels/activation.hpp"

#include <unsupported/Eigen/SpecialFunctions>

#include <algorithm>

#include "common.hpp"

namespace ssm::kernels {

namespace {
using detail::ConstVec;
using detail::kBlock;
using detail::store_block;

// Calls f(begin, count) for consecutive blocks of [0, n), in parallel.
template <typename F>
void for_blocks(int64_t n, F f) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= detail::kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) f(b * kBlock, std::min(kBlock, n - b * kBlock));
}

// 1 / (1 + exp(-x)); exp(-x) saturates for very negative x, giving ~0, never NaN.
template <typename Expr>
auto sigmoid(const Expr& x) {
  using T = typename Expr::Scalar;
  return (T(1) + (-x).exp()).inverse();
}

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)), the standard normal CDF.
template <typename Expr>
auto normal_cdf(const Expr& x) {
  using T = typename Expr::Scalar;
  return T(0.5) * (T(1) + (x * T(0.70710678118654752440)).erf());
}
}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
  for_blocks(n, [&](int64_t i, int64_t m) {
    ConstVec<T> X(x + i, m);
    store_block(y + i, X * normal_cdf(X));
  });
}

// GELU'(x) = Phi(x) + x phi(x), given cdf = Phi(x).
template <typename Expr, typename Cdf>
auto gelu_grad(const Expr& x, const Cdf& cdf) {
  using T = typename Expr::Scalar;
  return cdf + x * T(0.39894228040143267794) * (T(-0.5) * x.square()).exp();
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  for_blocks(n, [&](int64_t i, int64_t m) {
    ConstVec<T> X(x + i, m), dY(dy + i, m);
    store_block(dx + i, dY * gelu_grad(X, normal_cdf(X)));
  });
}

template <typename T>
void gelu_forward_grad(const T* x, T* y, T* dydx, int64_t n) {
  for_blocks(n, [&](int64_t i, int64_t m) {
    ConstVec<T> X(x + i, m);
    alignas(64) T cdf_buf[kBlock];
    store_block(cdf_buf, normal_cdf(X));
    ConstVec<T> cdf(cdf_buf, m);
    store_block(y + i, X * cdf);
    store_block(dydx + i, gelu_grad(X, cdf));  // last: it may overwrite x
  });
}

template <typename T>
void silu_forward(const T* x, T* y, int64_t n) {
  for_blocks(n, [&](int64_t i, int64_t m) {
    ConstVec<T> X(x + i, m);
    store_block(y + i, X * sigmoid(X));
  });
}

template <typename T>
void silu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  for_blocks(n, [&](int64_t i, int64_t m) {
    ConstVec<T> X(x + i, m), dY(dy + i, m);
    alignas(64) T s_buf[kBlock];
    store_block(s_buf, sigmoid(X));
    ConstVec<T> s(s_buf, m);
    store_block(dx + i, dY * s * (T(1) + X * (T(1) - s)));
  });
}

// Calls f(r, c, m) for the blocks [c, c + m) of every row r of a GLU's (rows, dim)
// output, in parallel.
template <typename F>
void for_glu_blocks(int64_t rows, int64_t dim, F f) {
#pragma omp parallel for schedule(static) if (rows * dim >= detail::kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < dim; c += kBlock) f(r, c, std::min(kBlock, dim - c));
}

// The GLU backward of one block given s = sigmoid(b). db is stored last, as
// a and s (which may be b) are read until then: dx may be x.
template <typename T>
void glu_backward_block(const ConstVec<T>& a, const ConstVec<T>& s, const ConstVec<T>& g, T* da, T* db) {
  alignas(64) T db_buf[kBlock];
  store_block(db_buf, g * a * s * (T(1) - s));
  store_block(da, g * s);
  std::copy(db_buf, db_buf + a.size(), db);
}

template <typename T>
void glu_forward(const T* x, T* y, int64_t rows, int64_t dim) {
  for_glu_blocks(rows, dim, [&](int64_t r, int64_t c, int64_t m) {
    ConstVec<T> a(x + r * 2 * dim + c, m), b(x + r * 2 * dim + dim + c, m);
    store_block(y + r * dim + c, a * sigmoid(b));
  });
}

template <typename T>
void glu_forward_keep(T* x, T* y, int64_t rows, int64_t dim) {
  for_glu_blocks(rows, dim, [&](int64_t r, int64_t c, int64_t m) {
    T* b = x + r * 2 * dim + dim + c;
    store_block(b, sigmoid(ConstVec<T>(b, m)));
    store_block(y + r * dim + c, ConstVec<T>(x + r * 2 * dim + c, m) * ConstVec<T>(b, m));
  });
}

template <typename T>
void glu_backward(const T* x, const T* dy, T* dx, int64_t rows, int64_t dim) {
  for_glu_blocks(rows, dim, [&](int64_t r, int64_t c, int64_t m) {
    alignas(64) T s_buf[kBlock];
    store_block(s_buf, sigmoid(ConstVec<T>(x + r * 2 * dim + dim + c, m)));
    glu_backward_block<T>(ConstVec<T>(x + r * 2 * dim + c, m), ConstVec<T>(s_buf, m), ConstVec<T>(dy + r * dim + c, m),
                          dx + r * 2 * dim + c, dx + r * 2 * dim + dim + c);
  });
}

template <typename T>
void glu_backward_kept(const T* x, const T* dy, T* dx, int64_t rows, int64_t dim) {
  for_glu_blocks(rows, dim, [&](int64_t r, int64_t c, int64_t m) {
    glu_backward_block<T>(ConstVec<T>(x + r * 2 * dim + c, m), ConstVec<T>(x + r * 2 * dim + dim + c, m),
                          ConstVec<T>(dy + r * dim + c, m), dx + r * 2 * dim + c, dx + r * 2 * dim + dim + c);
  });
}

#define SSM_INSTANTIATE_ACTIVATION(T)                              \
  template void gelu_forward<T>(const T*, T*, int64_t);            \
  template void gelu_backward<T>(const T*, const T*, T*, int64_t); \
  template void gelu_forward_grad<T>(const T*, T*, T*, int64_t);   \
  template void silu_forward<T>(const T*, T*, int64_t);            \
  template void silu_backward<T>(const T*, const T*, T*, int64_t); \
  template void glu_forward<T>(const T*, T*, int64_t, int64_t);    \
  template void glu_forward_keep<T>(T*, T*, int64_t, int64_t);     \
  template void glu_backward<T>(const T*, const T*, T*, int64_t, int64_t); \
  template void glu_backward_kept<T>(const T*, const T*, T*, int64_t, int64_t);
SSM_INSTANTIATE_ACTIVATION(float)
SSM_INSTANTIATE_ACTIVATION(double)
#undef SSM_INSTANTIATE_ACTIVATION

}  // namespace ssm::kernels
