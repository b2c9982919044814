// GELU, SiLU, GLU: forward against the formulas, backward against finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/activation.hpp"
#include "ssm/kernels/parallel.hpp"

using namespace ssm::kernels;
using ssm_test::check_gradient;
using ssm_test::dot;
using ssm_test::random_vector;

TEST_CASE("gelu is the exact erf GELU", "[activation]") {
  auto x = random_vector(200, 1, 5.0);
  std::vector<double> y(x.size());
  gelu_forward(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i)
    REQUIRE(y[i] == Approx(0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)))).margin(1e-15));
  // torch.nn.GELU()(torch.tensor([1., -2.], dtype=torch.float64))
  double v[2] = {1.0, -2.0}, out[2];
  gelu_forward(v, out, 2);
  CHECK(out[0] == Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(out[1] == Approx(-0.04550026389635842).epsilon(1e-13));
  // The tanh approximation differs from this at 1e-4: make sure it is not what we compute.
  CHECK(std::abs(out[0] - 0.5 * (1 + std::tanh(std::sqrt(2 / 3.141592653589793) * (1 + 0.044715)))) > 1e-5);
}

TEST_CASE("silu and glu forward match their formulas", "[activation]") {
  const int64_t rows = 6, dim = 5;
  auto x = random_vector(rows * 2 * dim, 2, 4.0);
  std::vector<double> s(x.size()), g(rows * dim);
  silu_forward(x.data(), s.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(s[i] == Approx(x[i] / (1 + std::exp(-x[i]))).margin(1e-15));
  glu_forward(x.data(), g.data(), rows, dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) {
      const double a = x[r * 2 * dim + i], b = x[r * 2 * dim + dim + i];
      REQUIRE(g[r * dim + i] == Approx(a / (1 + std::exp(-b))).margin(1e-15));
    }
}

TEST_CASE("activations stay finite at extreme inputs", "[activation]") {
  std::vector<float> x = {-1000.f, -90.f, 90.f, 1000.f}, y(4), dx(4), dy(4, 1.f);
  silu_forward(x.data(), y.data(), 4);
  silu_backward(x.data(), dy.data(), dx.data(), 4);
  for (int i = 0; i < 4; ++i) REQUIRE((std::isfinite(y[i]) && std::isfinite(dx[i])));
  CHECK(y[3] == 1000.f);
  CHECK(dx[3] == 1.f);
  CHECK(dx[0] == 0.f);
  gelu_forward(x.data(), y.data(), 4);
  gelu_backward(x.data(), dy.data(), dx.data(), 4);
  for (int i = 0; i < 4; ++i) REQUIRE((std::isfinite(y[i]) && std::isfinite(dx[i])));
  CHECK(y[0] == 0.f);
  CHECK(dx[3] == 1.f);
}

TEST_CASE("activation backward matches finite differences", "[activation]") {
  // h = 1e-5 below: with 84 O(1) terms in the loss, rounding at h = 1e-6 is
  // ~1e-9 per finite difference, the size of the tolerance on small gradients.
  const double h = 1e-5;
  const int64_t rows = 7, dim = 6, n = rows * 2 * dim;
  auto x = random_vector(n, 3, 4.0), probe = random_vector(n, 4), probe_glu = random_vector(rows * dim, 5);
  std::vector<double> y(n), yg(rows * dim), dx(n);

  auto gelu_loss = [&] {
    gelu_forward(x.data(), y.data(), n);
    return dot(y, probe);
  };
  gelu_backward(x.data(), probe.data(), dx.data(), n);
  check_gradient("gelu dx", x, dx, gelu_loss, 1e-6, h);

  auto silu_loss = [&] {
    silu_forward(x.data(), y.data(), n);
    return dot(y, probe);
  };
  silu_backward(x.data(), probe.data(), dx.data(), n);
  check_gradient("silu dx", x, dx, silu_loss, 1e-6, h);

  auto glu_loss = [&] {
    glu_forward(x.data(), yg.data(), rows, dim);
    return dot(yg, probe_glu);
  };
  glu_backward(x.data(), probe_glu.data(), dx.data(), rows, dim);
  check_gradient("glu dx", x, dx, glu_loss, 1e-6, h);
}

TEST_CASE("float activations agree with double on the parallel path", "[activation]") {
  // Above the OpenMP threshold, not a multiple of the kernels' block size.
  const int64_t rows = 1001, dim = 50, n = rows * 2 * dim;
  auto xd = random_vector(n, 6, 12.0), dyd = random_vector(n, 7);
  std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end()), y(n), dx(n);
  std::vector<double> xr(x.begin(), x.end()), dyr(dy.begin(), dy.end()), yr(n), dxr(n);  // the float inputs, exactly
  auto expect_close = [&](const char* what, int64_t count) {
    INFO(what);
    for (int64_t i = 0; i < count; ++i) {
      REQUIRE(y[i] == Approx(yr[i]).margin(2e-5).epsilon(1e-5));
      REQUIRE(dx[i] == Approx(dxr[i]).margin(2e-5).epsilon(1e-5));
    }
  };
  gelu_forward(x.data(), y.data(), n);
  gelu_backward(x.data(), dy.data(), dx.data(), n);
  gelu_forward(xr.data(), yr.data(), n);
  gelu_backward(xr.data(), dyr.data(), dxr.data(), n);
  expect_close("gelu", n);
  silu_forward(x.data(), y.data(), n);
  silu_backward(x.data(), dy.data(), dx.data(), n);
  silu_forward(xr.data(), yr.data(), n);
  silu_backward(xr.data(), dyr.data(), dxr.data(), n);
  expect_close("silu", n);
  glu_forward(x.data(), y.data(), rows, dim);
  glu_backward(x.data(), dy.data(), dx.data(), rows, dim);
  glu_forward(xr.data(), yr.data(), rows, dim);
  glu_backward(xr.data(), dyr.data(), dxr.data(), rows, dim);
  expect_close("glu", rows * dim);
}

TEST_CASE("activations do not depend on the thread count", "[activation]") {
  const int64_t n = 100003;
  auto xd = random_vector(n, 8, 6.0);
  std::vector<float> x(xd.begin(), xd.end()), dy(n, 1.f);
  auto run = [&] {
    std::vector<float> out(2 * n);
    gelu_forward(x.data(), out.data(), n);
    silu_backward(x.data(), dy.data(), out.data() + n, n);
    return out;
  };
  set_threads(1);
  auto one = run();
  set_threads(3);
  auto three = run();
  set_threads(2);
  CHECK(one == three);
}

TEST_CASE("activations work in place", "[activation]") {
  const int64_t rows = 300, dim = 40, n = rows * 2 * dim;  // several blocks
  auto xd = random_vector(n, 9, 3.0), dyd = random_vector(n, 10);
  std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end()), y(n), dx(n), dxg(n);
  gelu_forward(x.data(), y.data(), n);
  gelu_backward(x.data(), dy.data(), dx.data(), n);
  silu_backward(x.data(), dy.data(), dxg.data(), n);
  std::vector<float> inplace = x;
  gelu_forward(inplace.data(), inplace.data(), n);
  CHECK(inplace == y);
  inplace = dy;
  gelu_backward(x.data(), inplace.data(), inplace.data(), n);  // dx == dy
  CHECK(inplace == dx);
  inplace = x;
  silu_backward(inplace.data(), dy.data(), inplace.data(), n);  // dx == x
  CHECK(inplace == dxg);
  glu_backward(x.data(), dy.data(), dx.data(), rows, dim);
  inplace = x;
  glu_backward(inplace.data(), dy.data(), inplace.data(), rows, dim);  // dx == x
  CHECK(inplace == dx);
}

TEST_CASE("gelu_forward_grad gives GELU and its derivative, also in place", "[activation]") {
  const int64_t n = 10007;  // several blocks and a partial one
  auto xd = random_vector(n, 12, 6.0);
  std::vector<float> x(xd.begin(), xd.end()), ones(n, 1.f), y(n), dydx(n), y_ref(n), dydx_ref(n);
  gelu_forward(x.data(), y_ref.data(), n);
  gelu_backward(x.data(), ones.data(), dydx_ref.data(), n);
  gelu_forward_grad(x.data(), y.data(), dydx.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(y[i] == Approx(y_ref[i]).margin(1e-6).epsilon(1e-6));
    REQUIRE(dydx[i] == Approx(dydx_ref[i]).margin(1e-6).epsilon(1e-6));
  }
  std::vector<float> inplace = x, y2(n);
  gelu_forward_grad(inplace.data(), y2.data(), inplace.data(), n);  // dydx == x
  CHECK(y2 == y);
  CHECK(inplace == dydx);
}

TEST_CASE("glu_forward_keep and glu_backward_kept equal glu_forward and glu_backward", "[activation]") {
  const int64_t rows = 30, dim = 5000, n = rows * 2 * dim;  // dim > one block
  auto xd = random_vector(n, 13, 4.0), dyd = random_vector(rows * dim, 14);
  std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end()), y(rows * dim), dx(n);
  glu_forward(x.data(), y.data(), rows, dim);
  glu_backward(x.data(), dy.data(), dx.data(), rows, dim);
  std::vector<float> kept = x, y2(rows * dim);
  glu_forward_keep(kept.data(), y2.data(), rows, dim);
  CHECK(y2 == y);
  glu_backward_kept(kept.data(), dy.data(), kept.data(), rows, dim);  // dx == x
  CHECK(kept == dx);
}
