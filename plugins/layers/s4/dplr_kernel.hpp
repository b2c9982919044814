// The S4 (DPLR) convolution kernel for the generalised bilinear family
// (docs/math.md §1): its generating function through the Cauchy kernel and
// the Woodbury identity, evaluated at the roots of unity, and its backward.
//
// Per channel (dropping h) the state matrix is, over the full N = 2 N2
// complex state (every mode with its conjugate),
//
//   A = diag(Lambda, conj Lambda) - sum_r p_r p_r^*,   p_r = [P_r; conj P_r]
//
// and the scheme of parameter alpha (ssm/ext/disc_gbt.h) gives
// Abar = (I - alpha dt A)^{-1} (I + (1 - alpha) dt A), Bbar = dt (I - alpha dt A)^{-1} B.
// The kernel K[j] = C Abar^j Bbar (j < l) has, with C~ = C (I - Abar^l) and
// omega^l = 1, the generating function
//
//   K^(omega) = sum_{j<l} K[j] omega^j = C~ (I - omega Abar)^{-1} Bbar
//             = kappa [r00 - r01 (I + r11)^{-1} r10],
//   r_ab = sum_{n<N} dt a_n b_n / (z - dt Lambda_n),   z = (1 - omega) / (alpha + (1 - alpha) omega),
//   kappa = 1 / (alpha + (1 - alpha) omega),   a in {C~, Q_r = conj P_r},  b in {B, P_r}
//
// (for alpha = 1/2: z = 2(1 - omega)/(1 + omega), kappa = 2/(1 + omega), the
// official code). The Nyquist bin omega = -1 (even l) is taken in the form
// K^ = (1/2) [r'00 - h r'01 (I + h r'11)^{-1} r'10] with
// r'_ab = sum dt a b / (1 - h dt Lambda), h = (2 alpha - 1)/2, which is
// finite for every alpha; at alpha = 1/2 it is (dt/2) C~ B, the analytic
// limit (z and kappa are infinite there). Every bin is one case of
//
//   r_ab = sum_n dt a_n b_n / (sigma - rho dt Lambda_n),   K^ = kappa [r00 - tau r01 (I + tau r11)^{-1} r10]
//
// with (sigma, rho, tau, kappa) = (z, 1, 1, kappa) or (1, h, h, 1/2). The
// sum over the full state is the half with its conjugate in closed form:
// v/(s - rho w) + conj(v)/(s - rho conj w) = (2 s Re v - 2 rho Re(v conj w)) / ((s - rho w)(s - rho conj w)).
// K = irfft(K^, l)[0 : L].
//
// Everything runs in double whatever the parameters' dtype.
#pragma once

#include <Eigen/Core>
#include <Eigen/LU>
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace s4 {

using cd = std::complex<double>;
using CMat = Eigen::Matrix<cd, Eigen::Dynamic, Eigen::Dynamic>;
using RMat = Eigen::MatrixXd;

// The DPLR parameters of all channels in double, from their stored form:
// Lambda = -exp(A_real_log) - i A_imag, dt = exp(log_dt), P, B, C as (re, im) pairs.
struct Dplr {
  int64_t H = 0, N2 = 0, R = 0;
  std::vector<double> dt;      // (H)
  std::vector<cd> Lam, B, C;   // (H, N2); C is C~
  std::vector<cd> P;           // (R, H, N2)

  const cd* lam(int64_t h) const { return Lam.data() + h * N2; }
  const cd* b(int64_t h) const { return B.data() + h * N2; }
  const cd* c(int64_t h) const { return C.data() + h * N2; }
  const cd* p(int64_t r, int64_t h) const { return P.data() + (r * H + h) * N2; }

  template <typename T>
  void load(const T* log_dt, const T* A_real_log, const T* A_imag, const T* P_pairs, const T* B_pairs,
            const T* C_pairs, int64_t H_, int64_t N2_, int64_t R_) {
    H = H_, N2 = N2_, R = R_;
    const size_t n = static_cast<size_t>(H * N2);
    dt.resize(static_cast<size_t>(H));
    Lam.resize(n), B.resize(n), C.resize(n), P.resize(static_cast<size_t>(R) * n);
    for (int64_t h = 0; h < H; ++h) dt[h] = std::exp(double(log_dt[h]));
    for (size_t i = 0; i < n; ++i) {
      Lam[i] = cd(-std::exp(double(A_real_log[i])), -double(A_imag[i]));
      B[i] = cd(B_pairs[2 * i], B_pairs[2 * i + 1]);
      C[i] = cd(C_pairs[2 * i], C_pairs[2 * i + 1]);
    }
    for (size_t i = 0; i < P.size(); ++i) P[i] = cd(P_pairs[2 * i], P_pairs[2 * i + 1]);
  }
};

// Gradients in double, accumulated: for a complex parameter X the pair
// (dloss/dRe X, dloss/dIm X) as one complex number (2 conj(s_X) in the
// sensitivity notation of docs/math.md); dt: dloss/ddt.
struct DplrGrad {
  std::vector<double> dt;
  std::vector<cd> Lam, B, C, P;
  void zero(const Dplr& m) {
    dt.assign(m.dt.size(), 0.0);
    Lam.assign(m.Lam.size(), cd(0));
    B.assign(m.B.size(), cd(0));
    C.assign(m.C.size(), cd(0));
    P.assign(m.P.size(), cd(0));
  }
  // Adds them to the gradients of the stored parameters (+=).
  template <typename T>
  void write(const Dplr& m, T* g_log_dt, T* g_A_real_log, T* g_A_imag, T* g_P, T* g_B, T* g_C) const {
    for (int64_t h = 0; h < m.H; ++h) g_log_dt[h] += static_cast<T>(dt[h] * m.dt[h]);  // dt = exp(log_dt)
    for (size_t i = 0; i < Lam.size(); ++i) {
      // Re Lambda = -exp(A_real_log): d/dA_real_log = Re Lambda; Im Lambda = -A_imag.
      g_A_real_log[i] += static_cast<T>(Lam[i].real() * m.Lam[i].real());
      g_A_imag[i] += static_cast<T>(-Lam[i].imag());
      g_B[2 * i] += static_cast<T>(B[i].real());
      g_B[2 * i + 1] += static_cast<T>(B[i].imag());
      g_C[2 * i] += static_cast<T>(C[i].real());
      g_C[2 * i + 1] += static_cast<T>(C[i].imag());
    }
    for (size_t i = 0; i < P.size(); ++i) {
      g_P[2 * i] += static_cast<T>(P[i].real());
      g_P[2 * i + 1] += static_cast<T>(P[i].imag());
    }
  }
};

// The frequency nodes of a kernel of length l for the scheme alpha: bins
// k = 0 .. l/2 (rfft layout), each (sigma, rho, tau, kappa) as above.
struct Nodes {
  int64_t l = 0, nbins = 0;
  double alpha = 0;
  std::vector<cd> sigma, kappa;
  std::vector<double> rho, tau;
  std::vector<double> sigma_re, sigma_im, sigma2_re, sigma2_im;  // sigma and sigma^2, split

  void build(int64_t l_, double alpha_) {
    if (l_ == l && alpha_ == alpha && nbins) return;
    l = l_, alpha = alpha_, nbins = l / 2 + 1;
    sigma.resize(nbins), kappa.resize(nbins), rho.resize(nbins), tau.resize(nbins);
    const double pi = 3.14159265358979323846;
    for (int64_t k = 0; k < nbins; ++k) {
      if (l % 2 == 0 && k == l / 2) {  // omega = -1
        const double h = (2 * alpha - 1) / 2;
        sigma[k] = 1, rho[k] = h, tau[k] = h, kappa[k] = 0.5;
        continue;
      }
      // omega = exp(-i theta); 1 - omega = 2 sin^2(theta/2) + i sin(theta), free of cancellation.
      const double theta = 2 * pi * double(k) / double(l), s = std::sin(theta / 2);
      const cd omega(std::cos(theta), -std::sin(theta));
      const cd one_minus(2 * s * s, std::sin(theta));
      const cd den = alpha + (1 - alpha) * omega;
      sigma[k] = one_minus / den, rho[k] = 1, tau[k] = 1, kappa[k] = 1.0 / den;
    }
    sigma_re.resize(nbins), sigma_im.resize(nbins), sigma2_re.resize(nbins), sigma2_im.resize(nbins);
    for (int64_t k = 0; k < nbins; ++k) {
      sigma_re[k] = sigma[k].real(), sigma_im[k] = sigma[k].imag();
      const cd s2 = sigma[k] * sigma[k];
      sigma2_re[k] = s2.real(), sigma2_im[k] = s2.imag();
    }
  }
};

// Batched real FFTs of `count` rows of length n (double, FFTW), plans made
// once per size with FFTW_ESTIMATE (the same algorithm in every process).
// Call from one thread at a time (FFTW's planner is not thread safe).
class RowFft {
 public:
  RowFft() = default;
  RowFft(const RowFft&) = delete;
  RowFft& operator=(const RowFft&) = delete;
  ~RowFft() {
    for (auto& kv : plans_) {
      fftw_destroy_plan(kv.second.first);
      fftw_destroy_plan(kv.second.second);
    }
    fftw_free(real_);
    fftw_free(spec_);
  }
  // Buffers for `count` rows of length n: real (count, n), spectra (count, n/2 + 1).
  void shape(int64_t n, int64_t count) {
    n_ = n, count_ = count;
    const size_t rb = sizeof(double) * static_cast<size_t>(n * count);
    const size_t sb = sizeof(fftw_complex) * static_cast<size_t>((n / 2 + 1) * count);
    if (rb > real_bytes_) fftw_free(real_), real_ = static_cast<double*>(fftw_malloc(rb)), real_bytes_ = rb;
    if (sb > spec_bytes_) fftw_free(spec_), spec_ = static_cast<fftw_complex*>(fftw_malloc(sb)), spec_bytes_ = sb;
    if (!real_ || !spec_) throw std::bad_alloc();
    auto it = plans_.find({n, count});
    if (it == plans_.end()) {
      const int ni = static_cast<int>(n), c = static_cast<int>(count), nc = static_cast<int>(n / 2 + 1);
      fftw_plan r2c = fftw_plan_many_dft_r2c(1, &ni, c, real_, nullptr, 1, ni, spec_, nullptr, 1, nc, FFTW_ESTIMATE);
      fftw_plan c2r = fftw_plan_many_dft_c2r(1, &ni, c, spec_, nullptr, 1, nc, real_, nullptr, 1, ni, FFTW_ESTIMATE);
      if (!r2c || !c2r) throw std::runtime_error("s4: FFTW could not plan a transform of length " + std::to_string(n));
      it = plans_.emplace(std::make_pair(n, count), std::make_pair(r2c, c2r)).first;
    }
    plan_ = it->second;
  }
  double* real() { return real_; }
  cd* spec() { return reinterpret_cast<cd*>(spec_); }
  void r2c() { fftw_execute_dft_r2c(plan_.first, real_, spec_); }
  void c2r() { fftw_execute_dft_c2r(plan_.second, spec_, real_); }  // unnormalised; spends spec

 private:
  std::map<std::pair<int64_t, int64_t>, std::pair<fftw_plan, fftw_plan>> plans_;
  std::pair<fftw_plan, fftw_plan> plan_{};
  double* real_ = nullptr;
  fftw_complex* spec_ = nullptr;
  size_t real_bytes_ = 0, spec_bytes_ = 0;
  int64_t n_ = 0, count_ = 0;
};

namespace detail {

// a_i: C~ (i = 0) or conj P_{i-1}; b_j: B (j = 0) or P_{j-1}; v_ij = dt a_i b_j,
// pair index i (R+1) + j. V (N2, np).
inline CMat cauchy_weights(const Dplr& m, const cd* Ct, int64_t h) {
  const int64_t N2 = m.N2, R1 = m.R + 1;
  CMat V(N2, R1 * R1);
  const double dt = m.dt[h];
  for (int64_t n = 0; n < N2; ++n)
    for (int64_t i = 0; i < R1; ++i) {
      const cd a = i == 0 ? Ct[n] : std::conj(m.p(i - 1, h)[n]);
      for (int64_t j = 0; j < R1; ++j) {
        const cd b = j == 0 ? m.b(h)[n] : m.p(j - 1, h)[n];
        V(n, i * R1 + j) = dt * a * b;
      }
    }
  return V;
}

// u = 1/d with d = (sigma - rho w)(sigma - rho conj w) = sigma^2 - 2 rho Re(w) sigma + rho^2 |w|^2,
// w = dt Lambda_n, for every (bin, mode), as real and imaginary parts (nbins, N2);
// with U2r, U2i also u^2.
inline void cauchy_u(const Nodes& nd, const cd* lam, double dt, int64_t N2, RMat& Ur, RMat& Ui, RMat* U2r = nullptr,
                     RMat* U2i = nullptr) {
  const int64_t nb = nd.nbins;
  Ur.resize(nb, N2), Ui.resize(nb, N2);
  if (U2r) U2r->resize(nb, N2), U2i->resize(nb, N2);
  const double *s2r = nd.sigma2_re.data(), *s2i = nd.sigma2_im.data(), *sr = nd.sigma_re.data(),
               *si = nd.sigma_im.data(), *rho = nd.rho.data();
  for (int64_t n = 0; n < N2; ++n) {
    const cd w = dt * lam[n];
    const double wr = w.real(), w2 = std::norm(w);
    double* ur = Ur.col(n).data();
    double* ui = Ui.col(n).data();
    for (int64_t k = 0; k < nb; ++k) {
      const double c1 = 2 * rho[k] * wr, c0 = rho[k] * rho[k] * w2;
      const double dr = s2r[k] - c1 * sr[k] + c0, di = s2i[k] - c1 * si[k];
      const double inv = 1.0 / (dr * dr + di * di);
      ur[k] = dr * inv;
      ui[k] = -di * inv;
    }
    if (U2r) {
      double* u2r = U2r->col(n).data();
      double* u2i = U2i->col(n).data();
      for (int64_t k = 0; k < nb; ++k) {
        u2r[k] = ur[k] * ur[k] - ui[k] * ui[k];
        u2i[k] = 2 * ur[k] * ui[k];
      }
    }
  }
}

// Woodbury at one bin: K^ = kappa [r00 - tau r01 (I + tau r11)^{-1} r10]; r is
// one row of (R+1)^2 Cauchy sums (pair i (R+1) + j). With s_K (the
// sensitivity of K^), also the sensitivities of the sums, into s_r (the map
// is holomorphic in the sums).
inline cd woodbury(const cd* r, int64_t R, cd kappa, double tau, const cd* s_K = nullptr, cd* s_r = nullptr) {
  const int64_t R1 = R + 1;
  if (R == 1) {
    const cd den = 1.0 + tau * r[3];
    const cd K = kappa * (r[0] - tau * r[1] * r[2] / den);
    if (s_K) {
      const cd s = *s_K * kappa;
      s_r[0] = s;
      s_r[1] = -s * tau * r[2] / den;
      s_r[2] = -s * tau * r[1] / den;
      s_r[3] = s * tau * tau * r[1] * r[2] / (den * den);
    }
    return K;
  }
  using CVec = Eigen::Matrix<cd, Eigen::Dynamic, 1>;
  CMat M(R, R);
  CVec r01(R), r10(R);
  for (int64_t i = 0; i < R; ++i) {
    r01(i) = r[1 + i];         // pair (0, 1+i)
    r10(i) = r[(1 + i) * R1];  // pair (1+i, 0)
    for (int64_t j = 0; j < R; ++j) M(i, j) = (i == j ? 1.0 : 0.0) + tau * r[(1 + i) * R1 + 1 + j];
  }
  Eigen::PartialPivLU<CMat> lu(M);
  const CVec bv = lu.solve(r10);              // M^{-1} r10
  const CVec av = lu.transpose().solve(r01);  // (r01^T M^{-1})^T
  const cd K = kappa * (r[0] - tau * (r01.transpose() * bv)(0));
  if (s_K) {
    const cd s = *s_K * kappa;
    s_r[0] = s;
    for (int64_t i = 0; i < R; ++i) {
      s_r[1 + i] = -s * tau * bv(i);
      s_r[(1 + i) * R1] = -s * tau * av(i);
      for (int64_t j = 0; j < R; ++j) s_r[(1 + i) * R1 + 1 + j] = s * tau * tau * av(i) * bv(j);
    }
  }
  return K;
}

}  // namespace detail

// K^ (H, nbins) of every channel at the nodes; Ct (H, N2) is the C~ to use
// (the parameter, or its doubled form). Keeps the Cauchy sums Rs (H, nbins,
// (R+1)^2) for the backward when Rs is not null.
//
// With u = 1/d: r_p = sigma sum_n u 2 Re v_p - rho sum_n u 2 Re(v_p conj w):
// two real matrix products (nbins, N2) x (N2, 2 np) per channel.
inline void cauchy_forward(const Dplr& m, const cd* Ct, const Nodes& nd, cd* Khat, std::vector<cd>* Rs) {
  const int64_t N2 = m.N2, R = m.R, np = (R + 1) * (R + 1), nb = nd.nbins;
  if (Rs) Rs->resize(static_cast<size_t>(m.H * nb * np));
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < m.H; ++h) {
    const cd* lam = m.lam(h);
    const double dt = m.dt[h];
    const CMat V = detail::cauchy_weights(m, Ct + h * N2, h);
    RMat AB(N2, 2 * np);
    for (int64_t n = 0; n < N2; ++n) {
      const cd wc = std::conj(dt * lam[n]);
      for (int64_t q = 0; q < np; ++q) {
        AB(n, q) = 2 * V(n, q).real();
        AB(n, np + q) = 2 * (V(n, q) * wc).real();
      }
    }
    RMat Ur, Ui;
    detail::cauchy_u(nd, lam, dt, N2, Ur, Ui);
    const RMat Xr = Ur * AB, Xi = Ui * AB;  // (nb, 2 np)
    std::vector<cd> r(static_cast<size_t>(np));
    for (int64_t k = 0; k < nb; ++k) {
      for (int64_t q = 0; q < np; ++q)
        r[q] = nd.sigma[k] * cd(Xr(k, q), Xi(k, q)) - nd.rho[k] * cd(Xr(k, np + q), Xi(k, np + q));
      Khat[h * nb + k] = detail::woodbury(r.data(), R, nd.kappa[k], nd.tau[k]);
      if (Rs) std::copy(r.begin(), r.end(), Rs->begin() + (h * nb + k) * np);
    }
  }
}

// Given the sensitivities s_K (H, nbins) of K^ (dloss = 2 Re sum s_K dK^),
// accumulates the gradients of Lambda, P, B, dt into g and that of Ct into
// gCt (H, N2), both as (d/dRe, d/dIm) pairs (DplrGrad's convention).
//
// With t1 = 1/(sigma - rho w) = (sigma - rho conj w) u, t2 = 1/(sigma - rho conj w)
// = (sigma - rho w) u and S the sensitivities of the sums r = sum_n v t1 + conj(v) t2:
//   s_v = sum_k S t1 + conj(S t2) = 2 sum_k Re(sigma S u) - 2 conj(w) sum_k rho Re(S u)
//   s_w = sum_k rho (S v t1^2 + conj(S conj(v) t2^2))
//       = v (M0 - 2 conj(w) M1 + conj(w)^2 M2) + conj(conj(v) (M0 - 2 w M1 + w^2 M2)),
//   M_j = sum_k c_j S u^2,  c = (rho sigma^2, rho^2 sigma, rho^3),
// all real matrix products (N2, nbins) x (nbins, .) per channel; then
// v = dt a b and w = dt Lambda.
inline void cauchy_backward(const Dplr& m, const cd* Ct, const Nodes& nd, const cd* s_K, const std::vector<cd>& Rs,
                            DplrGrad& g, cd* gCt) {
  const int64_t N2 = m.N2, R = m.R, R1 = R + 1, np = R1 * R1, nb = nd.nbins;
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < m.H; ++h) {
    const cd* lam = m.lam(h);
    const double dt = m.dt[h];
    const cd* ct = Ct + h * N2;
    const CMat V = detail::cauchy_weights(m, ct, h);
    // Sensitivities of the sums, then the right-hand sides of the products.
    std::vector<cd> S(static_cast<size_t>(np));
    RMat Z1(nb, 2 * np), Z2(nb, 2 * np), Zc(nb, 6 * np);  // [Re | ...], [Im | ...], [Re c S | Im c S]
    for (int64_t k = 0; k < nb; ++k) {
      detail::woodbury(Rs.data() + (h * nb + k) * np, R, nd.kappa[k], nd.tau[k], s_K + h * nb + k, S.data());
      const cd sg = nd.sigma[k];
      const double rho = nd.rho[k];
      const cd c[3] = {rho * sg * sg, rho * rho * sg, cd(rho * rho * rho)};
      for (int64_t q = 0; q < np; ++q) {
        const cd a = sg * S[q], b = rho * S[q];
        Z1(k, q) = a.real(), Z1(k, np + q) = b.real();
        Z2(k, q) = a.imag(), Z2(k, np + q) = b.imag();
        for (int j = 0; j < 3; ++j) {
          const cd e = c[j] * S[q];
          Zc(k, j * np + q) = e.real();
          Zc(k, 3 * np + j * np + q) = e.imag();
        }
      }
    }
    RMat Ur, Ui, U2r, U2i;
    detail::cauchy_u(nd, lam, dt, N2, Ur, Ui, &U2r, &U2i);
    const RMat P = Ur.transpose() * Z1 - Ui.transpose() * Z2;  // sum_k Re(Z u): (N2, 2 np)
    const RMat A1 = U2r.transpose() * Zc, A2 = U2i.transpose() * Zc;  // (N2, 6 np)
    double s_dt_re = 0;
    for (int64_t n = 0; n < N2; ++n) {
      const cd w = dt * lam[n], wc = std::conj(w);
      cd s_w = 0, y2 = 0, s_dt = 0;
      std::vector<cd> sV(static_cast<size_t>(np));
      for (int64_t q = 0; q < np; ++q) {
        sV[q] = 2.0 * P(n, q) - 2.0 * wc * P(n, np + q);
        cd M[3];
        for (int j = 0; j < 3; ++j)
          M[j] = cd(A1(n, j * np + q) - A2(n, 3 * np + j * np + q), A1(n, 3 * np + j * np + q) + A2(n, j * np + q));
        s_w += V(n, q) * (M[0] - 2.0 * wc * M[1] + wc * wc * M[2]);
        y2 += std::conj(V(n, q)) * (M[0] - 2.0 * w * M[1] + w * w * M[2]);
        s_dt += sV[q] * V(n, q) / dt;
      }
      s_w += std::conj(y2);
      // v_ij = dt a_i b_j: s_a_i = sum_j s_v dt b_j, s_b_j = sum_i s_v dt a_i.
      for (int64_t i = 0; i < R1; ++i) {
        cd s_a = 0;
        for (int64_t j = 0; j < R1; ++j) {
          const cd b = j == 0 ? m.b(h)[n] : m.p(j - 1, h)[n];
          s_a += sV[i * R1 + j] * dt * b;
        }
        // a_0 = C~ (holomorphic); a_{1+r} = conj P_r: s_P += conj(s_a).
        if (i == 0)
          gCt[h * N2 + n] += 2.0 * std::conj(s_a);
        else
          g.P[((i - 1) * m.H + h) * N2 + n] += 2.0 * s_a;  // 2 conj(conj(s_a))
      }
      for (int64_t j = 0; j < R1; ++j) {
        cd s_b = 0;
        for (int64_t i = 0; i < R1; ++i) {
          const cd a = i == 0 ? ct[n] : std::conj(m.p(i - 1, h)[n]);
          s_b += sV[i * R1 + j] * dt * a;
        }
        if (j == 0)
          g.B[h * N2 + n] += 2.0 * std::conj(s_b);
        else
          g.P[((j - 1) * m.H + h) * N2 + n] += 2.0 * std::conj(s_b);
      }
      // w = dt Lambda.
      g.Lam[h * N2 + n] += 2.0 * std::conj(s_w * dt);
      s_dt += s_w * lam[n];
      s_dt_re += 2 * s_dt.real();
    }
    g.dt[h] += s_dt_re;
  }
}

}  // namespace s4
