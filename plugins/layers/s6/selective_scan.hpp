// The selective scan of S6 (README.md here; discretisations: docs/math.md §0) on the
// CPU, chunked along L, channel-last:
//
//   h_t[d, n] = a(z) h_{t-1}[d, n] + delta_t[d] beta(z) B_t[n] u_t[d],   z = delta_t[d] A[d, n]
//   y_t[d]    = sum_n C_t[n] h_t[d, n] + Dskip[d] u_t[d]
//
// a and beta are the discretization's map: Mamba's own (a = e^z, beta = 1)
// on the fast path, computed here; any other through a callback (the layer's
// discretization plugin) evaluated once per chunk of a tile of channels.
//
// Memory. The forward keeps nothing of size B*L*D*N: when asked, it saves
// the state at the start of every chunk, (B, ceil(L/chunk), D, N). The
// backward walks the chunks last to first and recomputes the states inside
// each chunk from its saved start (the CUDA kernel's organisation): its
// scratch is one chunk of one tile of channels per thread, (chunk + 1, N,
// kDTile) states and (chunk, N, kDTile) coefficients, whatever B and L.
//
// Work is split into (batch element, tile of kDTile channels). Inside a tile
// the state is (N, kDTile), channels contiguous, and every inner loop runs
// SIMD over the channels (omp simd); on the fast path e^z is computed in the
// same loop (fast_exp, a polynomial the compiler vectorises), so the forward
// touches no coefficient buffer at all.
//
// Determinism: every sum has a fixed order that does not depend on the
// number of threads (dA is reduced per batch element, then over b in order),
// and fast_exp gives the same bits in SIMD lanes and scalar tails.
#pragma once

#include <ssm/kernels/buffer.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

namespace s6 {

using ssm::Buf;  // uninitialised scratch (ssm/kernels/buffer.hpp)

// Channels per work item: the state of a tile, kDTile * N values, stays in L1.
constexpr int64_t kDTile = 64;

// e^x with plain arithmetic, so that `omp simd` loops vectorise it and the
// result has the same bits in every lane: x = n ln2 + r, |r| <= ln2/2 (ln2 in
// two parts), e^r by Cephes' polynomial (float, ~1 ulp) or Pade form
// (double, ~1 ulp), times 2^n built in the exponent bits. x is clamped to the
// normal range: below it the result is the smallest normal-range value
// instead of a subnormal or 0 (a state decaying by 1e-38 per step).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // n = round(x / ln2): it lands in the low mantissa bits of t (1.5 * 2^23).
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n: shift n (the low bits of t) into the exponent.
  const uint32_t k = __builtin_bit_cast(uint32_t, t);
  return p * __builtin_bit_cast(float, (k + 127u) << 23);
}

inline double fast_exp(double x) {
  x = x < -708.0 ? -708.0 : x;
  x = x > 709.0 ? 709.0 : x;
  const double t = x * 1.4426950408889634073599 + 6755399441055744.0;  // n in the low bits of 1.5 * 2^52
  const double n = t - 6755399441055744.0;
  const double r = (x - n * 6.93145751953125e-1) - n * 1.42860682030941723212e-6;
  const double rr = r * r;
  const double px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr + 9.99999999999999999910e-1);
  const double qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr + 2.27265548208155028766e-1) * rr +
                    2.00000000000000000009e0;
  const double e = 1.0 + 2.0 * px / (qx - px);
  const uint64_t k = __builtin_bit_cast(uint64_t, t);
  return e * __builtin_bit_cast(double, (k + 1023u) << 52);
}

// log1p(e) for e in [0, 1] with plain arithmetic (vectorisable):
// 2 atanh(s), s = e / (2 + e) in [0, 1/3], by its odd series, to terms below
// the precision of T (s^2 <= 1/9 per term).
template <typename T>
inline T fast_log1p01(T e) {
  const T s = e / (T(2) + e), s2 = s * s;
  constexpr int kTerms = sizeof(T) == 4 ? 8 : 17;  // 1/3, 1/5, ...: (1/9)^k below eps
  T p = T(1) / T(2 * kTerms + 1);
  for (int k = kTerms - 1; k >= 1; --k) p = p * s2 + T(1) / T(2 * k + 1);
  return T(2) * s * (p * s2 + T(1));
}

// Mamba's softplus, as its CUDA kernel: x <= 20 ? log1p(e^x) : x, here
// max(x, 0) + log1p(e^-|x|) below the threshold (no overflow, no cancellation).
template <typename T>
inline T softplus(T x) {
  const T ax = x < T(0) ? -x : x;
  const T sp = (x > T(0) ? x : T(0)) + fast_log1p01(fast_exp(-ax));
  return x > T(20) ? x : sp;
}

// softplus'(x) = sigmoid(x) (1 above the threshold).
template <typename T>
inline T softplus_grad(T x) {
  const T s = T(1) / (T(1) + fast_exp(-x));
  return x > T(20) ? T(1) : s;
}

// The discretization's map at real points z (z = delta * A < 0).
template <typename T>
struct Scheme {
  // Empty: Mamba's a = e^z, beta = 1 (a' = e^z, beta' = 0), computed here.
  // Otherwise: evaluates n points z into a and beta, and into da = a'(z),
  // dbeta = beta'(z) when they are not nullptr. Called from several threads
  // at once, each on its own buffers.
  std::function<void(const T* z, int64_t n, T* a, T* beta, T* da, T* dbeta)> eval;
  bool fast() const { return !eval; }
};

struct Shape {
  int64_t B = 0, L = 0, D = 0, N = 0, chunk = 64;
  int64_t n_chunks() const { return (L + chunk - 1) / chunk; }
  int64_t n_tiles() const { return (D + kDTile - 1) / kDTile; }
  // Elements of the chunk-start states forward saves for backward.
  int64_t saved_states() const { return B * n_chunks() * D * N; }
};

// The scan's inputs, row-major, channel-last.
template <typename T>
struct Inputs {
  const T* u = nullptr;      // (B, L, D)
  const T* delta = nullptr;  // (B, L, D), > 0 (after softplus)
  const T* A = nullptr;      // (D, N)
  const T* Bm = nullptr;     // (B, L, N)
  const T* Cm = nullptr;     // (B, L, N)
  const T* Dskip = nullptr;  // (D)
};

// What backward writes. du, ddelta, dB, dC are overwritten; dA, dD added to.
template <typename T>
struct Grads {
  T* du = nullptr;      // (B, L, D), the skip term D * dy included
  T* ddelta = nullptr;  // (B, L, D)
  T* dB = nullptr;      // (B, L, N)
  T* dC = nullptr;      // (B, L, N)
  T* dA = nullptr;      // (D, N), +=
  T* dD = nullptr;      // (D), +=
};

namespace detail {

// Runs f(i) for i in [0, n) on `threads` threads (static schedule); the
// first exception thrown in any iteration is rethrown after the loop.
template <class F>
void parallel_for(int64_t n, int threads, F&& f) {
  std::exception_ptr error;
  std::mutex m;
#pragma omp parallel for schedule(static) num_threads(std::max(1, threads)) if (threads > 1 && n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// The same with f(i, scratch): one Scratch per thread for the whole loop,
// so that buffers are allocated (and their pages touched) once per call,
// not once per item.
template <class Scratch, class F>
void parallel_for_scratch(int64_t n, int threads, F&& f) {
  std::exception_ptr error;
  std::mutex m;
#pragma omp parallel num_threads(std::max(1, threads)) if (threads > 1 && n > 1)
  {
    Scratch scratch;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      try {
        f(i, scratch);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// Per-thread buffers of the scan (sized by the first item that needs them).
template <typename T>
struct Scratch {
  Buf<T> h, a, beta, da, dbeta, z, hs, gc;
};

// A transposed, (N, D): the scan runs SIMD over channels.
template <typename T>
std::vector<T> transpose_A(const T* A, int64_t D, int64_t N) {
  std::vector<T> At(static_cast<size_t>(N * D));
  for (int64_t d = 0; d < D; ++d)
    for (int64_t q = 0; q < N; ++q) At[q * D + d] = A[d * N + q];
  return At;
}

// A general scheme's coefficients for one chunk [t0, t0 + lc) of one tile of
// channels [d0, d0 + dn) of batch element b, one call of the scheme: a and
// beta (and with derivatives da, dbeta), each (lc, N, dn).
template <typename T>
void coefficients(const Shape& s, const Inputs<T>& in, const T* At, const Scheme<T>& sch, int64_t b, int64_t t0,
                  int64_t lc, int64_t d0, int64_t dn, T* a, T* beta, T* da, T* dbeta, Buf<T>& z) {
  const int64_t N = s.N, m = dn * N;
  z.resize(static_cast<size_t>(lc * m));
  for (int64_t k = 0; k < lc; ++k) {
    const T* dl = in.delta + ((b * s.L + t0 + k) * s.D + d0);
    for (int64_t q = 0; q < N; ++q) {
      const T* Aq = At + q * s.D + d0;
      T* zk = z.data() + k * m + q * dn;
#pragma omp simd
      for (int64_t j = 0; j < dn; ++j) zk[j] = dl[j] * Aq[j];
    }
  }
  sch.eval(z.data(), lc * m, a, beta, da, dbeta);
}

}  // namespace detail

// y (B, L, D) overwritten. bounds: the state at the start of every chunk,
// (B, n_chunks, D * N), written when not nullptr (training). state (B, D * N):
// the state before t = 0, replaced by the state after t = L - 1, when not
// nullptr (the recurrent mode); zero otherwise. (Nullable pointers are kept
// out of template deduction, so a bare nullptr compiles.) Inside a row of
// D * N, the tile of channels [d0, d0 + dn) holds its (N, dn) block at d0 * N:
// states are the scan's own business.
template <typename T>
void scan_forward(const Shape& s, const Inputs<T>& in, const Scheme<T>& sch, T* y, std::add_pointer_t<T> bounds,
                  std::add_pointer_t<T> state, int threads) {
  const int64_t N = s.N, D = s.D, L = s.L, nC = s.n_chunks(), nT = s.n_tiles();
  const int64_t cmax = std::min(s.chunk, L);
  const bool fast = sch.fast();
  const std::vector<T> At = detail::transpose_A(in.A, D, N);
  detail::parallel_for_scratch<detail::Scratch<T>>(s.B * nT, threads, [&](int64_t item, detail::Scratch<T>& sc) {
    const int64_t b = item / nT, d0 = (item % nT) * kDTile, dn = std::min(kDTile, D - d0), m = dn * N;
    Buf<T>&h = sc.h, &a = sc.a, &beta = sc.beta, &z = sc.z;
    h.assign(static_cast<size_t>(m), T(0));
    if (!fast) {
      a.resize(static_cast<size_t>(cmax * m));
      beta.resize(a.size());
    }
    if (state) std::copy_n(state + b * D * N + d0 * N, m, h.data());
    T* hp = h.data();
    T sd[kDTile], acc[kDTile];
    for (int64_t c = 0; c < nC; ++c) {
      const int64_t t0 = c * s.chunk, lc = std::min(s.chunk, L - t0);
      if (bounds) std::copy_n(hp, m, bounds + (b * nC + c) * D * N + d0 * N);
      if (!fast)
        detail::coefficients<T>(s, in, At.data(), sch, b, t0, lc, d0, dn, a.data(), beta.data(), nullptr, nullptr, z);
      for (int64_t k = 0; k < lc; ++k) {
        const int64_t row = b * L + t0 + k, i0 = row * D + d0;
        const T* Bt = in.Bm + row * N;
        const T* Ct = in.Cm + row * N;
        const T* dl = in.delta + i0;
        for (int64_t j = 0; j < dn; ++j) {
          sd[j] = dl[j] * in.u[i0 + j];
          acc[j] = in.Dskip[d0 + j] * in.u[i0 + j];
        }
        for (int64_t q = 0; q < N; ++q) {
          const T bq = Bt[q], cq = Ct[q];
          T* hq = hp + q * dn;
          if (fast) {
            const T* Aq = At.data() + q * D + d0;
#pragma omp simd
            for (int64_t j = 0; j < dn; ++j) {
              hq[j] = fast_exp(dl[j] * Aq[j]) * hq[j] + sd[j] * bq;
              acc[j] += cq * hq[j];
            }
          } else {
            const T* aq = a.data() + k * m + q * dn;
            const T* betaq = beta.data() + k * m + q * dn;
#pragma omp simd
            for (int64_t j = 0; j < dn; ++j) {
              hq[j] = aq[j] * hq[j] + sd[j] * betaq[j] * bq;
              acc[j] += cq * hq[j];
            }
          }
        }
        for (int64_t j = 0; j < dn; ++j) y[i0 + j] = acc[j];
      }
    }
    if (state) std::copy_n(hp, m, state + b * D * N + d0 * N);
  });
}

// Backward of scan_forward from dy (B, L, D), with the chunk-start states
// `bounds` it saved (the initial state was zero).
template <typename T>
void scan_backward(const Shape& s, const Inputs<T>& in, const Scheme<T>& sch, const T* bounds, const T* dy,
                   const Grads<T>& g, int threads) {
  const int64_t N = s.N, D = s.D, L = s.L, B = s.B, nC = s.n_chunks(), nT = s.n_tiles();
  const int64_t cmax = std::min(s.chunk, L);
  const bool fast = sch.fast();
  const std::vector<T> At = detail::transpose_A(in.A, D, N);
  // dA, transposed (N, D), and dD per batch element; reduced over b in order below.
  std::vector<T> dAt_b(static_cast<size_t>(B * N * D), T(0)), dD_b(static_cast<size_t>(B * D), T(0));
  detail::parallel_for_scratch<detail::Scratch<T>>(B, threads, [&](int64_t b, detail::Scratch<T>& sc) {
    const int64_t tile_max = std::min(kDTile, D) * N;
    Buf<T>&a = sc.a, &hs = sc.hs, &gc = sc.gc, &z = sc.z, &beta = sc.beta, &da = sc.da, &dbeta = sc.dbeta;
    a.resize(static_cast<size_t>(cmax * tile_max));
    hs.resize(static_cast<size_t>((cmax + 1) * tile_max));
    gc.resize(static_cast<size_t>(tile_max));
    if (!fast) {
      beta.resize(a.size());
      da.resize(a.size());
      dbeta.resize(a.size());
    }
    std::fill_n(g.dB + b * L * N, L * N, T(0));
    std::fill_n(g.dC + b * L * N, L * N, T(0));
    T* dAt = dAt_b.data() + b * N * D;
    T sd[kDTile], dyv[kDTile], wB[kDTile], dzA[kDTile];
    for (int64_t tile = 0; tile < nT; ++tile) {
      const int64_t d0 = tile * kDTile, dn = std::min(kDTile, D - d0), m = dn * N;
      std::fill_n(gc.data(), m, T(0));  // a_{t+1} g_{t+1}, carried backwards across chunks
      for (int64_t c = nC - 1; c >= 0; --c) {
        const int64_t t0 = c * s.chunk, lc = std::min(s.chunk, L - t0);
        if (!fast)
          detail::coefficients<T>(s, in, At.data(), sch, b, t0, lc, d0, dn, a.data(), beta.data(), da.data(),
                                  dbeta.data(), z);
        // The states of the chunk from its saved start, hs[k] = h_{t0 + k - 1}
        // (and on the fast path the coefficients a, for the reverse pass).
        std::copy_n(bounds + (b * nC + c) * D * N + d0 * N, m, hs.data());
        for (int64_t k = 0; k < lc; ++k) {
          const int64_t row = b * L + t0 + k, i0 = row * D + d0;
          const T* Bt = in.Bm + row * N;
          const T* dl = in.delta + i0;
          for (int64_t j = 0; j < dn; ++j) sd[j] = dl[j] * in.u[i0 + j];
          for (int64_t q = 0; q < N; ++q) {
            const T bq = Bt[q];
            const T* hprev = hs.data() + k * m + q * dn;
            T* hcur = hs.data() + (k + 1) * m + q * dn;
            T* aq = a.data() + k * m + q * dn;
            if (fast) {
              const T* Aq = At.data() + q * D + d0;
#pragma omp simd
              for (int64_t j = 0; j < dn; ++j) {
                aq[j] = fast_exp(dl[j] * Aq[j]);
                hcur[j] = aq[j] * hprev[j] + sd[j] * bq;
              }
            } else {
              const T* betaq = beta.data() + k * m + q * dn;
#pragma omp simd
              for (int64_t j = 0; j < dn; ++j) hcur[j] = aq[j] * hprev[j] + sd[j] * betaq[j] * bq;
            }
          }
        }
        // Reverse: g_t = C_t dy_t + a_{t+1} g_{t+1}.
        for (int64_t k = lc - 1; k >= 0; --k) {
          const int64_t row = b * L + t0 + k, i0 = row * D + d0;
          const T* Bt = in.Bm + row * N;
          const T* Ct = in.Cm + row * N;
          const T* dl = in.delta + i0;
          T* dBt = g.dB + row * N;
          T* dCt = g.dC + row * N;
          for (int64_t j = 0; j < dn; ++j) {
            dyv[j] = dy[i0 + j];
            sd[j] = dl[j] * in.u[i0 + j];
            wB[j] = 0;
            dzA[j] = 0;
          }
          for (int64_t q = 0; q < N; ++q) {
            const T bq = Bt[q], cq = Ct[q];
            const T* hprev = hs.data() + k * m + q * dn;
            const T* hcur = hs.data() + (k + 1) * m + q * dn;
            const T* aq = a.data() + k * m + q * dn;
            const T* Aq = At.data() + q * D + d0;
            T* gq = gc.data() + q * dn;
            T* dAq = dAt + q * D + d0;
            T sC = 0, sB = 0;
            if (fast) {
#pragma omp simd reduction(+ : sC, sB)
              for (int64_t j = 0; j < dn; ++j) {
                const T gj = gq[j] + cq * dyv[j];
                sC += dyv[j] * hcur[j];
                sB += gj * sd[j];
                wB[j] += gj * bq;
                const T dz = gj * aq[j] * hprev[j];  // a' = a, beta' = 0
                dzA[j] += dz * Aq[j];
                dAq[j] += dz * dl[j];
                gq[j] = aq[j] * gj;
              }
            } else {
              const T* betaq = beta.data() + k * m + q * dn;
              const T* daq = da.data() + k * m + q * dn;
              const T* dbq = dbeta.data() + k * m + q * dn;
#pragma omp simd reduction(+ : sC, sB)
              for (int64_t j = 0; j < dn; ++j) {
                const T gj = gq[j] + cq * dyv[j];
                sC += dyv[j] * hcur[j];
                const T w = gj * betaq[j];
                sB += w * sd[j];
                wB[j] += w * bq;
                const T dz = gj * (daq[j] * hprev[j] + sd[j] * dbq[j] * bq);
                dzA[j] += dz * Aq[j];
                dAq[j] += dz * dl[j];
                gq[j] = aq[j] * gj;
              }
            }
            dCt[q] += sC;
            dBt[q] += sB;
          }
          T* dDb = dD_b.data() + b * D + d0;
          for (int64_t j = 0; j < dn; ++j) {
            g.du[i0 + j] = in.Dskip[d0 + j] * dyv[j] + dl[j] * wB[j];
            g.ddelta[i0 + j] = in.u[i0 + j] * wB[j] + dzA[j];
            dDb[j] += dyv[j] * in.u[i0 + j];
          }
        }
      }
    }
  });
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t q = 0; q < N; ++q) g.dA[d * N + q] += dAt_b[(b * N + q) * D + d];
      g.dD[d] += dD_b[b * D + d];  // dD = sum over (b, t) of dy u
    }
}

// The plain recurrence over the whole sequence, every state materialised:
// what the tests compare the chunked scan with (float64, any scheme given as
// a function of z returning {a, beta}).
template <typename F>
std::vector<double> reference_scan(const Shape& s, const Inputs<double>& in, F scheme) {
  std::vector<double> y(static_cast<size_t>(s.B * s.L * s.D));
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t d = 0; d < s.D; ++d) {
      std::vector<double> h(static_cast<size_t>(s.N), 0.0);
      for (int64_t t = 0; t < s.L; ++t) {
        const int64_t row = b * s.L + t, i = row * s.D + d;
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) {
          const double z = in.delta[i] * in.A[d * s.N + n];
          const auto ab = scheme(z);
          h[n] = ab.first * h[n] + in.delta[i] * ab.second * in.Bm[row * s.N + n] * in.u[i];
          acc += in.Cm[row * s.N + n] * h[n];
        }
        y[i] = acc + in.Dskip[d] * in.u[i];
      }
    }
  return y;
}

}  // namespace s6
