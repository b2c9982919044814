// LayerNorm and RMSNorm: forward against plain loops, backward against finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/norm.hpp"
#include "ssm/kernels/parallel.hpp"

using namespace ssm::kernels;
using ssm_test::check_gradient;
using ssm_test::dot;
using ssm_test::random_vector;

namespace {
const int64_t kRows = 9, kDim = 13;
const double kEps = 1e-5;

// Rows with an offset and different scales, so mean and variance matter.
std::vector<double> test_input(uint32_t seed) {
  auto x = random_vector(kRows * kDim, seed, 2.0);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t i = 0; i < kDim; ++i) x[r * kDim + i] = x[r * kDim + i] * (1 + r) + 0.7 * r;
  return x;
}
}  // namespace

TEST_CASE("layernorm_forward matches a plain loop", "[norm]") {
  auto x = test_input(1), gamma = random_vector(kDim, 2), beta = random_vector(kDim, 3);
  std::vector<double> y(kRows * kDim), mean(kRows), rstd(kRows);
  layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), kRows, kDim, kEps);
  for (int64_t r = 0; r < kRows; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < kDim; ++i) mu += x[r * kDim + i] / kDim;
    for (int64_t i = 0; i < kDim; ++i) var += (x[r * kDim + i] - mu) * (x[r * kDim + i] - mu) / kDim;
    REQUIRE(mean[r] == Approx(mu).margin(1e-12));
    REQUIRE(rstd[r] == Approx(1 / std::sqrt(var + kEps)).epsilon(1e-12));
    for (int64_t i = 0; i < kDim; ++i)
      REQUIRE(y[r * kDim + i] ==
              Approx((x[r * kDim + i] - mu) / std::sqrt(var + kEps) * gamma[i] + beta[i]).margin(1e-12));
  }
  // float agrees to float precision.
  std::vector<float> xf(x.begin(), x.end()), gf(gamma.begin(), gamma.end()), bf(beta.begin(), beta.end());
  std::vector<float> yf(kRows * kDim), mf(kRows), rf(kRows);
  layernorm_forward(xf.data(), gf.data(), bf.data(), yf.data(), mf.data(), rf.data(), kRows, kDim, kEps);
  for (size_t i = 0; i < y.size(); ++i) REQUIRE(yf[i] == Approx(y[i]).margin(1e-5));
}

TEST_CASE("layernorm_backward matches finite differences", "[norm]") {
  auto x = test_input(4), gamma = random_vector(kDim, 5), beta = random_vector(kDim, 6);
  auto probe = random_vector(kRows * kDim, 7);
  std::vector<double> y(kRows * kDim), mean(kRows), rstd(kRows);
  auto loss = [&] {
    layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), kRows, kDim, kEps);
    return dot(y, probe);
  };
  loss();
  std::vector<double> dx(kRows * kDim, 9.0), dgamma(kDim, 1.0), dbeta(kDim, -2.0);
  layernorm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), probe.data(), dx.data(), dgamma.data(),
                     dbeta.data(), kRows, kDim);
  for (int64_t i = 0; i < kDim; ++i) {  // accumulated onto 1 and -2
    dgamma[i] -= 1.0;
    dbeta[i] += 2.0;
  }
  check_gradient("layernorm dx", x, dx, loss);
  check_gradient("layernorm dgamma", gamma, dgamma, loss);
  check_gradient("layernorm dbeta", beta, dbeta, loss);
}

TEST_CASE("rmsnorm_forward matches a plain loop, with and without gamma", "[norm]") {
  auto x = test_input(8), gamma = random_vector(kDim, 9);
  std::vector<double> y(kRows * kDim), rstd(kRows), y1(kRows * kDim);
  rmsnorm_forward(x.data(), gamma.data(), y.data(), rstd.data(), kRows, kDim, kEps);
  rmsnorm_forward(x.data(), nullptr, y1.data(), rstd.data(), kRows, kDim, kEps);
  for (int64_t r = 0; r < kRows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < kDim; ++i) ms += x[r * kDim + i] * x[r * kDim + i] / kDim;
    const double rs = 1 / std::sqrt(ms + kEps);
    REQUIRE(rstd[r] == Approx(rs).epsilon(1e-12));
    for (int64_t i = 0; i < kDim; ++i) {
      REQUIRE(y[r * kDim + i] == Approx(x[r * kDim + i] * rs * gamma[i]).margin(1e-12));
      REQUIRE(y1[r * kDim + i] == Approx(x[r * kDim + i] * rs).margin(1e-12));
    }
  }
}

TEST_CASE("rmsnorm_backward matches finite differences", "[norm]") {
  auto x = test_input(10), gamma = random_vector(kDim, 11), probe = random_vector(kRows * kDim, 12);
  std::vector<double> y(kRows * kDim), rstd(kRows);
  SECTION("with gamma") {
    auto loss = [&] {
      rmsnorm_forward(x.data(), gamma.data(), y.data(), rstd.data(), kRows, kDim, kEps);
      return dot(y, probe);
    };
    loss();
    std::vector<double> dx(kRows * kDim), dgamma(kDim, 0.0);
    rmsnorm_backward(x.data(), gamma.data(), rstd.data(), probe.data(), dx.data(), dgamma.data(), kRows, kDim);
    check_gradient("rmsnorm dx", x, dx, loss);
    check_gradient("rmsnorm dgamma", gamma, dgamma, loss);
  }
  SECTION("without gamma") {
    auto loss = [&] {
      rmsnorm_forward(x.data(), nullptr, y.data(), rstd.data(), kRows, kDim, kEps);
      return dot(y, probe);
    };
    loss();
    std::vector<double> dx(kRows * kDim);
    rmsnorm_backward(x.data(), nullptr, rstd.data(), probe.data(), dx.data(),
                     nullptr, kRows, kDim);
    // h = 1e-5: at the default 1e-6 the rounding of the O(1) loss (~1e-9
    // after dividing by 2h) swamps the 1e-4-sized gradients of the large rows.
    check_gradient("rmsnorm dx (no gamma)", x, dx, loss, 1e-6, 1e-5);
  }
}

TEST_CASE("norm parameter gradients do not depend on the thread count", "[norm]") {
  // More rows than one reduction chunk, so the chunked reduction is exercised.
  const int64_t rows = 3000, dim = 32;
  auto xd = random_vector(rows * dim, 13), dyd = random_vector(rows * dim, 14);
  std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end()), gamma(dim, 1.5f), beta(dim, 0.f);
  auto run = [&] {
    std::vector<float> y(rows * dim), mean(rows), rstd(rows), dx(rows * dim), dg(dim, 0.f), db(dim, 0.f);
    layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, dim, 1e-5);
    layernorm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dg.data(), db.data(),
                       rows, dim);
    dx.insert(dx.end(), dg.begin(), dg.end());
    dx.insert(dx.end(), db.begin(), db.end());
    return dx;
  };
  set_threads(1);
  auto one = run();
  set_threads(2);
  CHECK(one == run());
}
