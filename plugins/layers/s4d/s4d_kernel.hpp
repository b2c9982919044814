// The S4D convolution kernel and its backward (docs/math.md §2):
//
//   K[h,l] = 2 Re sum_n C[h,n] Bbar[h,n] Abar[h,n]^l,   Bbar = dt beta(z) B,  Abar = a(z),  z = dt A
//
// for H channels of N2 = N/2 complex modes each (2 Re counts the conjugate
// half of every pair). Parameters come in as T (float or double) in their
// stored form (docs/math.md §0): A = -exp(A_real_log) - i A_imag, dt =
// exp(log_dt), B and C as (re, im) pairs. Everything inside runs in double:
// the work is O(H N2 L), small next to the convolution, and in float32
// log(Abar) of an Abar = 1 + O(dt |A|) would lose the decay rate.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

namespace s4d {

using cd = std::complex<double>;

// Per-mode quantities, each (H, N2) row-major, except dt (H).
struct Modes {
  int64_t H = 0, N2 = 0;
  std::vector<double> dt;
  std::vector<cd> A, B, C, z;          // from the parameters; z = dt A
  std::vector<cd> a, beta, da, dbeta;  // the discretization at z: filled by the caller
  std::vector<cd> Bbar, W, log_a;      // from derive(): Bbar = dt beta B, W = C Bbar

  template <typename T>
  void load(const T* log_dt, const T* A_real_log, const T* A_imag, const T* B_pairs, const T* C_pairs, int64_t H_,
            int64_t N2_) {
    H = H_;
    N2 = N2_;
    const size_t n = static_cast<size_t>(H * N2);
    dt.resize(static_cast<size_t>(H));
    for (auto* v : {&A, &B, &C, &z, &a, &beta, &da, &dbeta, &Bbar, &W, &log_a}) v->assign(n, cd(0));
    for (int64_t h = 0; h < H; ++h) dt[h] = std::exp(double(log_dt[h]));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < N2; ++k) {
        const int64_t i = h * N2 + k;
        A[i] = cd(-std::exp(double(A_real_log[i])), -double(A_imag[i]));
        B[i] = cd(B_pairs[2 * i], B_pairs[2 * i + 1]);
        C[i] = cd(C_pairs[2 * i], C_pairs[2 * i + 1]);
        z[i] = dt[h] * A[i];
      }
  }

  // After a, beta (and da, dbeta for a backward) hold the discretization of z.
  void derive() {
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < N2; ++k) {
        const int64_t i = h * N2 + k;
        Bbar[i] = dt[h] * beta[i] * B[i];
        W[i] = C[i] * Bbar[i];
        // The principal log is enough: exp(l (log a + 2 pi i k)) = a^l for integer l.
        log_a[i] = std::log(a[i]);
      }
  }
};

// Abar^l for l < L, each power exact to a few ulps whatever l: with l = m*blk + j,
// Abar^l = exp(m*blk log Abar) * exp(j log Abar) = Q[m] * P[j], both computed
// directly (never by repeated products). blk ~ sqrt(L), so a mode costs
// ~2 sqrt(L) exps, and the kernel and its backward become small matrix products.
class Powers {
 public:
  void build(const Modes& m, int64_t L) {
    H_ = m.H;
    N2_ = m.N2;
    L_ = L;
    blk_ = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(double(L)))));
    nblk_ = (L + blk_ - 1) / blk_;
    P_.assign(static_cast<size_t>(H_ * 2 * N2_ * blk_), 0.0);
    Q_.assign(static_cast<size_t>(H_ * nblk_ * N2_), cd(0));
#pragma omp parallel for schedule(static)
    for (int64_t h = 0; h < H_; ++h) {
      for (int64_t k = 0; k < N2_; ++k) {
        const cd la = m.log_a[h * N2_ + k];
        double* re = P(h) + k * blk_;
        double* im = re + N2_ * blk_;
        re[0] = 1;  // exactly, also when Abar = 0 (log = -inf)
        for (int64_t j = 1; j < blk_; ++j) {
          const cd p = std::exp(double(j) * la);
          re[j] = p.real();
          im[j] = p.imag();
        }
        cd* q = Q(h) + k;
        q[0] = 1;
        for (int64_t b = 1; b < nblk_; ++b) q[b * N2_] = std::exp(double(b * blk_) * la);
      }
    }
  }

  int64_t L() const { return L_; }
  int64_t blk() const { return blk_; }
  int64_t nblk() const { return nblk_; }
  // Channel h: (2 N2, blk) row-major, rows Re(Abar_n^j) for every n, then Im.
  const double* P(int64_t h) const { return P_.data() + h * 2 * N2_ * blk_; }
  // Channel h: (nblk, N2) row-major, Abar_n^(m blk).
  const cd* Q(int64_t h) const { return Q_.data() + h * nblk_ * N2_; }

 private:
  double* P(int64_t h) { return P_.data() + h * 2 * N2_ * blk_; }
  cd* Q(int64_t h) { return Q_.data() + h * nblk_ * N2_; }
  int64_t H_ = 0, N2_ = 0, L_ = 0, blk_ = 1, nblk_ = 0;
  std::vector<double> P_;
  std::vector<cd> Q_;
};

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;

// K (H, L), overwritten: K[h, m blk + j] = sum_n Re(2 W_n Q[m,n]) Re(P[n,j]) - Im(2 W_n Q[m,n]) Im(P[n,j]).
template <typename T>
void kernel_forward(const Modes& m, const Powers& pw, T* K) {
  const int64_t N2 = m.N2, L = pw.L(), blk = pw.blk(), nblk = pw.nblk();
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < m.H; ++h) {
    RowMatrix X(nblk, 2 * N2);
    const cd* Q = pw.Q(h);
    for (int64_t b = 0; b < nblk; ++b)
      for (int64_t k = 0; k < N2; ++k) {
        const cd x = 2.0 * m.W[h * N2 + k] * Q[b * N2 + k];
        X(b, k) = x.real();
        X(b, N2 + k) = -x.imag();
      }
    const RowMatrix Kh = X * ConstRowMap(pw.P(h), 2 * N2, blk);
    for (int64_t l = 0; l < L; ++l) K[h * L + l] = static_cast<T>(Kh(l / blk, l % blk));
  }
}

// Gradients of the stored parameters, accumulated (+=); B and C as (re, im) pairs.
template <typename T>
struct KernelGrads {
  T *log_dt, *A_real_log, *A_imag, *B, *C;
};

// Given dK = dloss/dK (H, L): the two transposed-Vandermonde passes
//   S0 = sum_l dK[l] Abar^l,  S1 = sum_l dK[l] l Abar^(l-1) = sum_l (l+1) dK[l+1] Abar^l,
// then the chain rule of docs/math.md §2 through Bbar = dt beta(z) B and
// Abar = a(z), with a'(z) and beta'(z) from the discretization (any scheme).
// Sensitivities s_X are holomorphic: dloss = 2 Re(s_X dX); the gradient of a
// complex X stored as (re, im) is then 2 conj(s_X).
template <typename T>
void kernel_backward(const Modes& m, const Powers& pw, const T* dK, KernelGrads<T> g) {
  const int64_t N2 = m.N2, L = pw.L(), blk = pw.blk(), nblk = pw.nblk();
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < m.H; ++h) {
    // Rows [0, nblk): dK by blocks; rows [nblk, 2 nblk): the weights of S1.
    RowMatrix G = RowMatrix::Zero(2 * nblk, blk);
    for (int64_t l = 0; l < L; ++l) G(l / blk, l % blk) = double(dK[h * L + l]);
    for (int64_t l = 0; l + 1 < L; ++l) G(nblk + l / blk, l % blk) = double(l + 1) * double(dK[h * L + l + 1]);
    const RowMatrix S = G * ConstRowMap(pw.P(h), 2 * N2, blk).transpose();  // (2 nblk, 2 N2)
    const cd* Q = pw.Q(h);
    double dlog_dt = 0;
    for (int64_t k = 0; k < N2; ++k) {
      cd S0 = 0, S1 = 0;
      for (int64_t b = 0; b < nblk; ++b) {
        S0 += Q[b * N2 + k] * cd(S(b, k), S(b, N2 + k));
        S1 += Q[b * N2 + k] * cd(S(nblk + b, k), S(nblk + b, N2 + k));
      }
      const int64_t i = h * N2 + k;
      const double dt = m.dt[h];
      const cd s_Bbar = m.C[i] * S0;
      const cd s_Abar = m.W[i] * S1;
      const cd s_z = s_Bbar * dt * m.dbeta[i] * m.B[i] + s_Abar * m.da[i];
      const cd gC = 2.0 * std::conj(S0 * m.Bbar[i]);
      const cd gB = 2.0 * std::conj(s_Bbar * dt * m.beta[i]);
      g.C[2 * i] += static_cast<T>(gC.real());
      g.C[2 * i + 1] += static_cast<T>(gC.imag());
      g.B[2 * i] += static_cast<T>(gB.real());
      g.B[2 * i + 1] += static_cast<T>(gB.imag());
      // Re A = -exp(A_real_log): d Re A / d A_real_log = Re A. Im A = -A_imag.
      g.A_real_log[i] += static_cast<T>(2.0 * (s_z * dt).real() * m.A[i].real());
      g.A_imag[i] += static_cast<T>(2.0 * (s_z * dt).imag());
      // dt enters through z = dt A and through the dt factor of Bbar.
      dlog_dt += 2.0 * (dt * (s_Bbar * m.beta[i] * m.B[i] + s_z * m.A[i])).real();
    }
    g.log_dt[h] += static_cast<T>(dlog_dt);
  }
}

}  // namespace s4d
