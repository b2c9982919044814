// Cross-entropy and MSE with per-row weights.
#include "ssm/kernels/loss.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common.hpp"
#include "ssm/sdk.hpp"

namespace ssm::kernels {

namespace {
// Sum of the row weights (rows when there are none), checking each is >= 0.
// Serial and before any parallel region: errors must not leave an OpenMP region.
template <typename T>
double total_weight(const T* weight, int64_t rows) {
  if (!weight) return static_cast<double>(rows);
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (!(weight[r] >= T(0)))
      fail("loss weight of row " + std::to_string(r) + " is " + std::to_string(static_cast<double>(weight[r])) +
           ", must be >= 0");
    total += weight[r];
  }
  return total;
}
// One row: returns -log softmax(z)[t], sets *argmax (the first maximum), and
// when dz is not nullptr writes dz = scale * (softmax(z) - onehot(t)).
// exp runs vectorized over fixed blocks (detail::store_block); the shift by the
// maximum avoids overflow, and softmax = exp(z - max) / sum keeps full relative
// precision even for huge logits.
template <typename T>
double cross_entropy_row(const T* z, int64_t classes, int32_t t, double scale, T* dz, int64_t* argmax) {
  using detail::kBlock;
  int64_t best = 0;
  for (int64_t c = 1; c < classes; ++c)
    if (z[c] > z[best]) best = c;
  *argmax = best;
  const T zmax = z[best];
  alignas(64) T e[kBlock];
  double sum_exp = 0;
  for (int64_t c0 = 0; c0 < classes; c0 += kBlock) {
    const int64_t m = std::min(kBlock, classes - c0);
    detail::store_block(e, (detail::ConstVec<T>(z + c0, m) - zmax).exp());
#pragma omp simd reduction(+ : sum_exp)
    for (int64_t c = 0; c < m; ++c) sum_exp += e[c];
  }
  if (dz) {
    const T factor = static_cast<T>(scale / sum_exp);
    for (int64_t c0 = 0; c0 < classes; c0 += kBlock) {
      const int64_t m = std::min(kBlock, classes - c0);
      detail::store_block(dz + c0, (detail::ConstVec<T>(z + c0, m) - zmax).exp() * factor);
    }
    dz[t] -= static_cast<T>(scale);
  }
  return std::log(sum_exp) + (static_cast<double>(zmax) - z[t]);
}
}  // namespace

template <typename T>
T cross_entropy(const T* logits, const int32_t* target, std::add_pointer_t<const T> weight, int64_t rows,
                int64_t classes, std::add_pointer_t<T> dlogits, int64_t* correct) {
  const double wsum = total_weight(weight, rows);
  for (int64_t r = 0; r < rows; ++r) {
    if (weight && weight[r] == T(0)) continue;
    if (target[r] < 0 || target[r] >= classes)
      fail("cross-entropy target " + std::to_string(target[r]) + " at row " + std::to_string(r) +
           " is outside [0, " + std::to_string(classes) + ")");
  }
  if (correct) *correct = 0;
  if (wsum == 0) {
    if (dlogits) std::fill(dlogits, dlogits + rows * classes, T(0));
    return T(0);
  }
  // acc[0]: sum w * nll; acc[1]: number of correct weighted rows.
  const std::vector<double> sums = detail::reduce_rows(rows, 2, classes, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* z = logits + r * classes;
      T* dz = dlogits ? dlogits + r * classes : nullptr;
      const double w = weight ? static_cast<double>(weight[r]) : 1.0;
      if (w == 0) {
        if (dz) std::fill(dz, dz + classes, T(0));
        continue;
      }
      int64_t argmax = 0;
      acc[0] += w * cross_entropy_row(z, classes, target[r], w / wsum, dz, &argmax);
      acc[1] += argmax == target[r] ? 1.0 : 0.0;
    }
  });
  if (correct) *correct = static_cast<int64_t>(sums[1]);
  return static_cast<T>(sums[0] / wsum);
}

template <typename T>
T mse(const T* pred, const T* target, std::add_pointer_t<const T> weight, int64_t rows, int64_t dim,
      std::add_pointer_t<T> dpred) {
  const double wsum = total_weight(weight, rows);
  if (wsum == 0) {
    if (dpred) std::fill(dpred, dpred + rows * dim, T(0));
    return T(0);
  }
  const double denom = wsum * static_cast<double>(dim);
  const std::vector<double> sums = detail::reduce_rows(rows, 1, dim, [&](int64_t r0, int64_t r1, double* acc) {
    for (int64_t r = r0; r < r1; ++r) {
      const double w = weight ? static_cast<double>(weight[r]) : 1.0;
      const T* p = pred + r * dim;
      const T* t = target + r * dim;
      double sq = 0;
      for (int64_t c = 0; c < dim; ++c) {
        const double d = static_cast<double>(p[c]) - t[c];
        sq += d * d;
        if (dpred) dpred[r * dim + c] = static_cast<T>(2.0 * w * d / denom);
      }
      acc[0] += w * sq;
    }
  });
  return static_cast<T>(sums[0] / denom);
}

template float cross_entropy<float>(const float*, const int32_t*, const float*, int64_t, int64_t, float*, int64_t*);
template double cross_entropy<double>(const double*, const int32_t*, const double*, int64_t, int64_t, double*,
                                      int64_t*);
template float mse<float>(const float*, const float*, const float*, int64_t, int64_t, float*);
template double mse<double>(const double*, const double*, const double*, int64_t, int64_t, double*);

}  // namespace ssm::kernels
