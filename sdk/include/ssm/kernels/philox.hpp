// Counter-based random numbers: Philox-4x32-10 (Salmon et al., "Parallel
// random numbers: as easy as 1, 2, 3", SC'11; the Random123 reference).
//
// Value `index` of stream `stream` under `seed` is a pure function of the
// three, so fills are reproducible whatever the thread count, and a resumed
// run regenerates exactly what an uninterrupted one would have drawn.
//   key     = seed            (key[0] = low 32 bits, key[1] = high 32 bits)
//   counter = (stream, index) (ctr[0..1] = index low/high, ctr[2..3] = stream low/high)
//
// philox_uniform and philox_normal of the same (seed, stream, index) share
// bits: use different streams for draws that must be independent.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace ssm::kernels {

namespace detail {
inline void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
  constexpr uint64_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  const uint64_t p0 = kM0 * ctr[0];
  const uint64_t p1 = kM1 * ctr[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  ctr[0] = hi1 ^ ctr[1] ^ key[0];
  ctr[1] = lo1;
  ctr[2] = hi0 ^ ctr[3] ^ key[1];
  ctr[3] = lo0;
}
}  // namespace detail

// The 128 random bits of one counter value under one key.
inline std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo) {
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
  uint32_t k[2] = {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)};
  uint32_t c[4] = {static_cast<uint32_t>(counter_lo), static_cast<uint32_t>(counter_lo >> 32),
                   static_cast<uint32_t>(counter_hi), static_cast<uint32_t>(counter_hi >> 32)};
  detail::philox_round(c, k);
#pragma GCC unroll 9
  for (int round = 1; round < 10; ++round) {  // branch-free and unrolled, so fill loops vectorize
    k[0] += kW0;
    k[1] += kW1;
    detail::philox_round(c, k);
  }
  return {c[0], c[1], c[2], c[3]};
}

// 53 uniform random bits: philox_uniform(...) == philox_uniform_bits(...) * 2^-53.
// Integer comparisons against it (dropout) avoid floating-point rounding.
inline uint64_t philox_uniform_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  const std::array<uint32_t, 4> r = philox4x32(seed, stream, index);
  return ((static_cast<uint64_t>(r[0]) << 32) | r[1]) >> 11;
}

// Uniform in [0, 1), every multiple of 2^-53 equally likely.
inline double philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<double>(philox_uniform_bits(seed, stream, index)) * 0x1p-53;
}

// Standard normal by Box-Muller on the two 64-bit halves of one Philox block.
inline double philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const std::array<uint32_t, 4> r = philox4x32(seed, stream, index);
  const uint64_t a = ((static_cast<uint64_t>(r[0]) << 32) | r[1]) >> 11;
  const uint64_t b = ((static_cast<uint64_t>(r[2]) << 32) | r[3]) >> 11;
  const double u1 = 1.0 - static_cast<double>(a) * 0x1p-53;  // (0, 1]: log(u1) is finite
  const double u2 = static_cast<double>(b) * 0x1p-53;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

// out[i] = philox_uniform(seed, stream, offset + i), i < n (OpenMP over i).
// float keeps the top 24 of the 53 bits (truncated, so never rounds up to 1).
template <typename T>
void philox_fill_uniform(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset);

// out[i] = philox_normal(seed, stream, offset + i), i < n (OpenMP over i).
template <typename T>
void philox_fill_normal(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset);

}  // namespace ssm::kernels
