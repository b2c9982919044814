// Mean-pool and last-M read-outs: forward against loops, backward against finite differences.
#include <catch2/catch.hpp>

#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/readout.hpp"
#include "ssm/sdk.hpp"

using namespace ssm::kernels;
using ssm_test::random_vector;

namespace {
const int64_t B = 3, L = 7, H = 4;
}

TEST_CASE("mean_pool forward and backward", "[readout]") {
  auto x = random_vector(B * L * H, 1), probe = random_vector(B * H, 2);
  std::vector<double> y(B * H), dx(B * L * H, 9.0);
  mean_pool_forward(x.data(), y.data(), B, L, H);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      double s = 0;
      for (int64_t l = 0; l < L; ++l) s += x[(b * L + l) * H + h];
      REQUIRE(y[b * H + h] == Approx(s / L).margin(1e-15));
    }
  auto loss = [&] {
    mean_pool_forward(x.data(), y.data(), B, L, H);
    return ssm_test::dot(y, probe);
  };
  mean_pool_backward(probe.data(), dx.data(), B, L, H);
  ssm_test::check_gradient("mean_pool dx", x, dx, loss);
}

TEST_CASE("last_m forward and backward", "[readout]") {
  for (int64_t M : {int64_t(1), int64_t(3), L}) {
    INFO("M = " << M);
    auto x = random_vector(B * L * H, 3), probe = random_vector(B * M * H, 4);
    std::vector<double> y(B * M * H), dx(B * L * H, 9.0);
    last_m_forward(x.data(), y.data(), B, L, H, M);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t h = 0; h < H; ++h) REQUIRE(y[(b * M + m) * H + h] == x[(b * L + L - M + m) * H + h]);
    auto loss = [&] {
      last_m_forward(x.data(), y.data(), B, L, H, M);
      return ssm_test::dot(y, probe);
    };
    last_m_backward(probe.data(), dx.data(), B, L, H, M);
    ssm_test::check_gradient("last_m dx", x, dx, loss);  // includes the zeros before the last M
  }
  std::vector<float> x(B * L * H), y(B * (L + 1) * H);
  CHECK_THROWS_AS(last_m_forward(x.data(), y.data(), B, L, H, int64_t(0)), ssm::Error);
  CHECK_THROWS_WITH(last_m_forward(x.data(), y.data(), B, L, H, L + 1), Catch::Contains("M = 8"));
  CHECK_THROWS_AS(last_m_backward(y.data(), x.data(), B, L, H, L + 1), ssm::Error);
}

TEST_CASE("mean_pool in float on the parallel path agrees with double", "[readout]") {
  const int64_t b = 3, l = 1000, h = 100;  // h: one full and one partial block of channels
  auto xd = random_vector(b * l * h, 5);
  std::vector<float> x(xd.begin(), xd.end()), y(b * h), dx(b * l * h);
  std::vector<double> yd(b * h);
  mean_pool_forward(x.data(), y.data(), b, l, h);
  mean_pool_forward(xd.data(), yd.data(), b, l, h);
  for (int64_t i = 0; i < b * h; ++i) REQUIRE(y[i] == Approx(yd[i]).margin(1e-6));
  std::vector<float> dy(b * h, 2.f);
  mean_pool_backward(dy.data(), dx.data(), b, l, h);
  for (float v : dx) REQUIRE(v == 2.f / l);
}
