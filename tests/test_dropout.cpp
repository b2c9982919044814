// Inverted dropout: the Philox mask contract, scaling, edge probabilities, gradient.
#include <catch2/catch.hpp>

#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/dropout.hpp"
#include "ssm/kernels/parallel.hpp"
#include "ssm/kernels/philox.hpp"
#include "ssm/sdk.hpp"

using namespace ssm::kernels;
using ssm_test::random_vector;

TEST_CASE("dropout keeps exactly where philox_uniform >= p and scales by 1/(1-p)", "[dropout]") {
  const int64_t n = 100000;
  const double p = 0.3;
  auto xd = random_vector(n, 1);
  std::vector<float> x(xd.begin(), xd.end()), y(n);
  std::vector<uint8_t> keep(n);
  dropout_forward(x.data(), y.data(), keep.data(), n, p, 11, 2, 1000);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool k = philox_uniform(11, 2, 1000 + i) >= p;
    REQUIRE(keep[i] == (k ? 1 : 0));
    REQUIRE(y[i] == (k ? x[i] * static_cast<float>(1 / (1 - p)) : 0.f));
    kept += k;
  }
  CHECK(static_cast<double>(kept) / n == Approx(0.7).margin(0.005));
}

TEST_CASE("dropout masks depend only on (seed, stream, offset + i)", "[dropout]") {
  const int64_t n = 50000;
  std::vector<double> x(n, 1.0), y(n);
  std::vector<uint8_t> a(n), b(n), c(n), d(n);
  set_threads(1);
  dropout_forward(x.data(), y.data(), a.data(), n, 0.5, 3, 0, 0);
  set_threads(2);
  dropout_forward(x.data(), y.data(), b.data(), n, 0.5, 3, 0, 0);
  CHECK(a == b);
  dropout_forward(x.data(), y.data(), c.data(), n, 0.5, 3, 0, 100);  // shifted offset
  CHECK(std::equal(c.begin(), c.end() - 100, a.begin() + 100));
  dropout_forward(x.data(), y.data(), d.data(), n, 0.5, 3, 1, 0);  // another stream
  CHECK(a != d);
}

TEST_CASE("dropout edge probabilities and errors", "[dropout]") {
  std::vector<double> x = {1.5, -2.0, 3.0}, y(3);
  std::vector<uint8_t> keep(3, 7);
  dropout_forward(x.data(), y.data(), keep.data(), 3, 0.0, 1, 0, 0);
  CHECK(y == x);
  CHECK(keep == std::vector<uint8_t>{1, 1, 1});
  dropout_forward(x.data(), y.data(), keep.data(), 3, 1.0, 1, 0, 0);
  CHECK(y == std::vector<double>{0, 0, 0});
  CHECK(keep == std::vector<uint8_t>{0, 0, 0});
  CHECK_THROWS_AS(dropout_forward(x.data(), y.data(), keep.data(), 3, 1.5, 1, 0, 0), ssm::Error);
  CHECK_THROWS_WITH(dropout_forward(x.data(), y.data(), keep.data(), 3, -0.1, 1, 0, 0),
                    Catch::Contains("-0.1"));
}

TEST_CASE("dropout_backward matches finite differences", "[dropout]") {
  const int64_t n = 200;
  const double p = 0.4;
  auto x = random_vector(n, 2), probe = random_vector(n, 3);
  std::vector<double> y(n), dx(n);
  std::vector<uint8_t> keep(n);
  auto loss = [&] {
    dropout_forward(x.data(), y.data(), keep.data(), n, p, 9, 4, 0);
    return ssm_test::dot(y, probe);
  };
  loss();
  dropout_backward(probe.data(), keep.data(), dx.data(), n, p);
  ssm_test::check_gradient("dropout dx", x, dx, loss);
}
