// The one gradient checker every backward test uses (the Caffe habit):
// central finite differences in float64 against a hand-written gradient.
//
//   std::vector<double> w = ...;                  // the inputs being checked
//   auto loss = [&] { forward(...); return sum(y * probe); };
//   std::vector<double> g = analytic gradient of loss wrt w;
//   ssm_test::check_gradient("linear dW", w, g, loss);
//
// `loss` must read `w` each time it is called; the checker perturbs w[i] in
// place and restores it.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace ssm_test {

// Deterministic pseudo-random values in [-scale, scale) for test inputs.
inline std::vector<double> random_vector(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> d(-scale, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// Checks analytic[i] against (loss(w+h e_i) - loss(w-h e_i)) / 2h for every i
// (or `max_checks` evenly spread indices). The error is relative to the
// larger of |fd| and `abs_floor`, so tiny gradients are compared absolutely.
inline void check_gradient(const std::string& what, std::vector<double>& w, const std::vector<double>& analytic,
                           const std::function<double()>& loss, double tol = 1e-6, double h = 1e-6,
                           size_t max_checks = 200, double abs_floor = 1e-3) {
  REQUIRE(w.size() == analytic.size());
  size_t n = w.size();
  size_t stride = n > max_checks ? (n + max_checks - 1) / max_checks : 1;
  double worst = 0;
  size_t worst_i = 0;
  double worst_fd = 0;
  for (size_t i = 0; i < n; i += stride) {
    double saved = w[i];
    w[i] = saved + h;
    double lp = loss();
    w[i] = saved - h;
    double lm = loss();
    w[i] = saved;
    double fd = (lp - lm) / (2 * h);
    double err = std::abs(fd - analytic[i]) / std::max(std::abs(fd), abs_floor);
    if (err > worst) {
      worst = err;
      worst_i = i;
      worst_fd = fd;
    }
  }
  INFO(what << ": worst relative error " << worst << " at index " << worst_i << " (finite difference " << worst_fd
            << ", analytic " << analytic[worst_i] << ")");
  CHECK(worst <= tol);
}

// Sum of y[i] * probe[i]: a scalar loss whose gradient wrt y is `probe`.
inline double dot(const std::vector<double>& y, const std::vector<double>& probe) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * probe[i];
  return s;
}

}  // namespace ssm_test
