// FFT long convolution: against a direct O(L^2) convolution, the backward
// against finite differences in float64, and bit-identical results for any
// thread count.
#include <ssm/kernels/fftconv.hpp>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "gradcheck.hpp"

namespace {

// y[b,l,h] = sum_{j<=l} k[h,j] u[b,l-j,h], accumulated in double.
template <typename T>
std::vector<T> direct_conv(const std::vector<T>& u, const std::vector<T>& k, int64_t B, int64_t L, int64_t H) {
  std::vector<T> y(u.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l)
      for (int64_t h = 0; h < H; ++h) {
        double s = 0;
        for (int64_t j = 0; j <= l; ++j) s += double(k[h * L + j]) * double(u[(b * L + l - j) * H + h]);
        y[(b * L + l) * H + h] = static_cast<T>(s);
      }
  return y;
}

template <typename T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

template <typename T>
void check_against_direct(int64_t B, int64_t L, int64_t H, double tol) {
  const auto u = as<T>(ssm_test::random_vector(B * L * H, 1));
  const auto k = as<T>(ssm_test::random_vector(H * L, 2));
  std::vector<T> y(u.size());
  ssm::kernels::fftconv_forward(u.data(), k.data(), y.data(), B, L, H);
  const auto ref = direct_conv(u, k, B, L, H);
  double err = 0, scale = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::abs(double(y[i]) - double(ref[i])));
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  INFO("B=" << B << " L=" << L << " H=" << H << " max error " << err << " of max |y| " << scale);
  CHECK(err <= tol * scale);
}

}  // namespace

TEST_CASE("fftconv_size is >= 2L-1 and 7-smooth", "[fftconv]") {
  CHECK(ssm::kernels::fftconv_size(784) == 1568);
  CHECK(ssm::kernels::fftconv_size(1) == 2);
  CHECK(ssm::kernels::fftconv_size(37) == 80);  // 74 = 2*37 would need a prime-37 FFT
  for (int64_t L = 1; L < 300; ++L) CHECK(ssm::kernels::fftconv_size(L) >= 2 * L - 1);
}

TEST_CASE("fftconv forward equals the direct causal convolution", "[fftconv]") {
  for (auto [B, L, H] : {std::tuple<int64_t, int64_t, int64_t>{2, 37, 3}, {3, 64, 9}, {1, 1, 1}, {2, 100, 17}}) {
    check_against_direct<double>(B, L, H, 1e-13);
    check_against_direct<float>(B, L, H, 2e-6);
  }
}

TEST_CASE("fftconv backward matches finite differences (float64)", "[fftconv]") {
  const int64_t B = 2, L = 13, H = 10;  // H > one block of channels, L not 7-smooth
  std::vector<double> u = ssm_test::random_vector(B * L * H, 3);
  std::vector<double> k = ssm_test::random_vector(H * L, 4);
  const std::vector<double> probe = ssm_test::random_vector(B * L * H, 5);
  std::vector<double> y(u.size());
  auto loss = [&] {
    ssm::kernels::fftconv_forward(u.data(), k.data(), y.data(), B, L, H);
    return ssm_test::dot(y, probe);
  };
  std::vector<double> du(u.size(), 7.0), dk(k.size(), 0.5);  // du overwritten, dk accumulated
  ssm::kernels::fftconv_backward(u.data(), k.data(), probe.data(), du.data(), dk.data(), B, L, H);
  for (double& g : dk) g -= 0.5;
  ssm_test::check_gradient("fftconv du", u, du, loss, 1e-7);
  ssm_test::check_gradient("fftconv dk", k, dk, loss, 1e-7);

  // du == nullptr skips du and still accumulates dk.
  std::vector<double> dk2(k.size(), 0.5);
  ssm::kernels::fftconv_backward<double>(u.data(), k.data(), probe.data(), nullptr, dk2.data(), B, L, H);
  for (size_t i = 0; i < dk.size(); ++i) CHECK(dk2[i] - 0.5 == dk[i]);
}

TEST_CASE("fftconv is bit-identical for any thread count", "[fftconv]") {
  const int64_t B = 5, L = 50, H = 33;
  const auto u = as<float>(ssm_test::random_vector(B * L * H, 6));
  const auto k = as<float>(ssm_test::random_vector(H * L, 7));
  const auto dy = as<float>(ssm_test::random_vector(B * L * H, 8));
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> y(u.size()), du(u.size()), dk(k.size(), 0.f);
    ssm::kernels::fftconv_forward(u.data(), k.data(), y.data(), B, L, H);
    ssm::kernels::fftconv_backward(u.data(), k.data(), dy.data(), du.data(), dk.data(), B, L, H);
    omp_set_num_threads(saved);
    y.insert(y.end(), du.begin(), du.end());
    y.insert(y.end(), dk.begin(), dk.end());
    return y;
  };
  const std::vector<float> one = run(1), two = run(2), three = run(3);
  CHECK(one == two);
  CHECK(one == three);
}

TEST_CASE("fftconv backward from kept spectra equals the plain backward, also in place", "[fftconv]") {
  // H = 21: a partial last block of channels; L = 13 gives odd spectrum lengths.
  auto check = [](auto zero, int64_t B, int64_t L, int64_t H) {
    using T = decltype(zero);
    const auto u = as<T>(ssm_test::random_vector(B * L * H, 11));
    const auto k = as<T>(ssm_test::random_vector(H * L, 12));
    const auto dy = as<T>(ssm_test::random_vector(B * L * H, 13));
    std::vector<T> y(u.size()), y2(u.size()), du(u.size()), dk(k.size(), T(1)), dk2(k.size(), T(1));
    ssm::kernels::fftconv_forward(u.data(), k.data(), y.data(), B, L, H);
    ssm::kernels::fftconv_backward(u.data(), k.data(), dy.data(), du.data(), dk.data(), B, L, H);
    ssm::kernels::FftConvSpectra<T> kept;
    ssm::kernels::fftconv_forward(u.data(), k.data(), y2.data(), B, L, H, kept);
    CHECK(y2 == y);
    std::vector<T> g = dy;  // du == dy
    ssm::kernels::fftconv_backward(kept, k.data(), g.data(), g.data(), dk2.data(), B, L, H);
    CHECK(g == du);
    CHECK(dk2 == dk);
    CHECK_THROWS(ssm::kernels::fftconv_backward(kept, k.data(), g.data(), g.data(), dk2.data(), B, L + 1, H));
  };
  check(0.0, 3, 13, 21);
  check(0.f, 3, 13, 21);
  check(0.f, 2, 784, 128);
}
