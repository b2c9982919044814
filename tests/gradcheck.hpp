// The gradient check every backward test uses (the Caffe habit): central
// finite differences in float64 against a hand-written gradient. A thin
// Catch2 wrapper over ssm/gradcheck.hpp, the checker `ssmhost validate` uses.
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
#include <ssm/gradcheck.hpp>

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

// Checks analytic[i] against central finite differences of `loss` for every
// i (or `max_checks` evenly spread indices) with the SDK's checker
// (ssm/gradcheck.hpp): step h * max(1, |w[i]|), error relative to the largest
// of |fd|, |analytic| and `abs_floor`, so tiny gradients are compared
// absolutely.
inline void check_gradient(const std::string& what, std::vector<double>& w, const std::vector<double>& analytic,
                           const std::function<double()>& loss, double tol = 1e-6, double h = 1e-6,
                           size_t max_checks = 200, double abs_floor = 1e-3) {
  REQUIRE(w.size() == analytic.size());
  ssm::gradcheck::Options opt;
  opt.step = h;
  opt.floor = abs_floor;
  opt.coords = ssm::gradcheck::Coords::spread(max_checks);
  const ssm::gradcheck::Result r = ssm::gradcheck::check(w, analytic, loss, opt);
  INFO(what << ": worst relative error " << r.error << " at index " << r.index << " of " << r.size << " ("
            << r.checked << " checked; finite difference " << r.fd << ", analytic " << r.analytic << ")");
  CHECK(r.passed(tol));
}

// Sum of y[i] * probe[i]: a scalar loss whose gradient wrt y is `probe`.
inline double dot(const std::vector<double>& y, const std::vector<double>& probe) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * probe[i];
  return s;
}

}  // namespace ssm_test
