// Linear layer: forward against a plain loop, backward against finite differences.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/linear.hpp"
#include "ssm/kernels/parallel.hpp"

using namespace ssm::kernels;
using ssm_test::check_gradient;
using ssm_test::dot;
using ssm_test::random_vector;

namespace {
std::vector<double> linear_reference(const std::vector<double>& x, const std::vector<double>& W, const double* b,
                                     int64_t rows, int64_t in, int64_t out) {
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? b[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}
}  // namespace

TEST_CASE("linear_forward matches a plain loop", "[linear]") {
  const int64_t rows = 37, in = 19, out = 23;
  auto x = random_vector(rows * in, 1), W = random_vector(out * in, 2), b = random_vector(out, 3);
  std::vector<double> y(rows * out);
  for (bool bias : {true, false}) {
    linear_forward(x.data(), W.data(), bias ? b.data() : nullptr, y.data(), rows, in, out);
    auto ref = linear_reference(x, W, bias ? b.data() : nullptr, rows, in, out);
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == Approx(ref[i]).margin(1e-12));
  }
  // float agrees with the double reference to float precision.
  std::vector<float> xf(x.begin(), x.end()), Wf(W.begin(), W.end()), bf(b.begin(), b.end()), yf(rows * out);
  linear_forward(xf.data(), Wf.data(), bf.data(), yf.data(), rows, in, out);
  auto ref = linear_reference(x, W, b.data(), rows, in, out);
  for (size_t i = 0; i < yf.size(); ++i) REQUIRE(yf[i] == Approx(ref[i]).margin(1e-5));
}

TEST_CASE("linear_backward matches finite differences and accumulates", "[linear]") {
  const int64_t rows = 11, in = 7, out = 5;
  auto x = random_vector(rows * in, 4), W = random_vector(out * in, 5), b = random_vector(out, 6);
  auto probe = random_vector(rows * out, 7);
  std::vector<double> y(rows * out);
  auto loss = [&] {
    linear_forward(x.data(), W.data(), b.data(), y.data(), rows, in, out);
    return dot(y, probe);
  };
  // Parameter gradients start non-zero: the kernel must add, not overwrite.
  auto dW0 = random_vector(out * in, 8), db0 = random_vector(out, 9);
  std::vector<double> dx(rows * in, 123.0), dW = dW0, db = db0;
  linear_backward(x.data(), W.data(), probe.data(), dx.data(), dW.data(), db.data(), rows, in, out);
  for (size_t i = 0; i < dW.size(); ++i) dW[i] -= dW0[i];
  for (size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
  check_gradient("linear dx", x, dx, loss);
  check_gradient("linear dW", W, dW, loss);
  check_gradient("linear db", b, db, loss);

  // Nullable dx and db: dW is the same, nothing else is touched.
  std::vector<double> dW2(out * in, 0.0);
  linear_backward(x.data(), W.data(), probe.data(), nullptr, dW2.data(),
                  nullptr, rows, in, out);
  for (size_t i = 0; i < dW.size(); ++i) REQUIRE(dW2[i] == Approx(dW[i]).margin(1e-12));
}

TEST_CASE("linear is bit-identical run to run", "[linear]") {
  const int64_t rows = 3000, in = 64, out = 96;
  auto xd = random_vector(rows * in, 10), Wd = random_vector(out * in, 11), dyd = random_vector(rows * out, 12);
  std::vector<float> x(xd.begin(), xd.end()), W(Wd.begin(), Wd.end()), dy(dyd.begin(), dyd.end());
  std::vector<float> b(out, 0.5f);
  auto run = [&] {
    std::vector<float> y(rows * out), dx(rows * in), dW(out * in, 0.f), db(out, 0.f);
    linear_forward(x.data(), W.data(), b.data(), y.data(), rows, in, out);
    linear_backward(x.data(), W.data(), dy.data(), dx.data(), dW.data(), db.data(), rows, in, out);
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dW.begin(), dW.end());
    y.insert(y.end(), db.begin(), db.end());
    return y;
  };
  set_threads(2);
  auto first = run();
  CHECK(first == run());

  // With 2 threads and this many rows dW is reduced per row slice: check it
  // against a plain double loop.
  const float* dW = first.data() + rows * out + rows * in;
  double worst = 0;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += double(dy[r * out + o]) * x[r * in + i];
      worst = std::max(worst, std::abs(dW[o * in + i] - s));
    }
  CHECK(worst < 1e-3);  // sums of 3000 O(1) products in float
}
