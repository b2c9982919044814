// Philox-4x32-10 against the Random123 known-answer vectors, the moments of
// its uniform and normal helpers, and the counter-based fill contract.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "ssm/kernels/parallel.hpp"
#include "ssm/kernels/philox.hpp"

using namespace ssm::kernels;

namespace {
uint64_t join(uint32_t hi, uint32_t lo) { return (static_cast<uint64_t>(hi) << 32) | lo; }
}  // namespace

TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[philox]") {
  using R = std::array<uint32_t, 4>;
  // Random123 kat_vectors: "philox4x32 10 ctr0 ctr1 ctr2 ctr3 key0 key1 -> out0..out3".
  CHECK(philox4x32(0, 0, 0) == R{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32(~0ull, ~0ull, ~0ull) == R{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  // counter words 243f6a88 85a308d3 13198a2e 03707344, key words a4093822 299f31d0.
  CHECK(philox4x32(join(0x299f31d0u, 0xa4093822u), join(0x03707344u, 0x13198a2eu), join(0x85a308d3u, 0x243f6a88u)) ==
        R{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("philox_uniform lies in [0,1) with the moments of U(0,1)", "[philox]") {
  const int n = 200000;
  double sum = 0, sum_sq = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; ++i) {
    const double u = philox_uniform(42, 7, static_cast<uint64_t>(i));
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    sum_sq += u * u;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  const double mean = sum / n, var = sum_sq / n - mean * mean;
  // Standard error of the mean is sqrt(1/12/n) = 6.5e-4: these are ~5 sigma.
  CHECK(mean == Approx(0.5).margin(3e-3));
  CHECK(var == Approx(1.0 / 12).margin(2e-3));
  CHECK(lo < 1e-4);
  CHECK(hi > 1 - 1e-4);
  CHECK(philox_uniform(42, 7, 3) == philox_uniform(42, 7, 3));
  CHECK(philox_uniform(42, 7, 3) != philox_uniform(42, 8, 3));
  CHECK(philox_uniform(42, 7, 3) != philox_uniform(43, 7, 3));
  CHECK(philox_uniform(1, 2, 3) == static_cast<double>(philox_uniform_bits(1, 2, 3)) * 0x1p-53);
}

TEST_CASE("philox_normal has the moments of N(0,1)", "[philox]") {
  const int n = 200000;
  double s1 = 0, s2 = 0, s4 = 0;
  int within_one = 0;
  for (int i = 0; i < n; ++i) {
    const double z = philox_normal(2024, 1, static_cast<uint64_t>(i));
    REQUIRE(std::isfinite(z));
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
    within_one += std::abs(z) < 1.0;
  }
  const double mean = s1 / n, var = s2 / n - mean * mean;
  CHECK(mean == Approx(0.0).margin(0.012));
  CHECK(var == Approx(1.0).margin(0.02));
  CHECK(s4 / n == Approx(3.0).margin(0.08));
  CHECK(static_cast<double>(within_one) / n == Approx(0.682689).margin(0.005));
}

TEST_CASE("philox fills depend only on (seed, stream, offset + i)", "[philox]") {
  const int64_t n = 100000;  // large enough for the OpenMP path
  std::vector<double> a(n), b(n - 10);
  philox_fill_uniform(a.data(), n, 5, 3, 0);
  philox_fill_uniform(b.data(), n - 10, 5, 3, 10);
  for (int64_t i = 0; i < n; i += 997) REQUIRE(a[i] == philox_uniform(5, 3, i));
  for (int64_t i = 0; i < n - 10; ++i) REQUIRE(b[i] == a[i + 10]);

  std::vector<double> z1(n), z2(n);
  set_threads(1);
  philox_fill_normal(z1.data(), n, 5, 4, 0);
  set_threads(2);
  philox_fill_normal(z2.data(), n, 5, 4, 0);
  CHECK(z1 == z2);
  CHECK(z1[17] == philox_normal(5, 4, 17));

  std::vector<float> f(n), fz(n);
  philox_fill_uniform(f.data(), n, 5, 3, 0);
  philox_fill_normal(fz.data(), n, 5, 4, 0);
  for (int64_t i = 0; i < n; ++i) {
    REQUIRE(f[i] >= 0.0f);
    REQUIRE(f[i] < 1.0f);
    REQUIRE(std::abs(f[i] - a[i]) < 1e-7);  // the top 24 of the same 53 bits
    REQUIRE(fz[i] == static_cast<float>(z1[i]));
  }
}
