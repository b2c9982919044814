// HiPPO-LegS and its normal-plus-low-rank (NPLR) form, in float64
// (docs/math.md §1; state-spaces/s4 `transition('legs')`, `rank_correction`,
// `nplr`).
//
//   A[n,k] = -sqrt(2n+1) sqrt(2k+1) (n > k),  -(n+1) (n = k),  0 (n < k);   B[n] = sqrt(2n+1)
//   P[n]   = sqrt(n + 1/2)
//   S = A + P P^T = -I/2 + (skew-symmetric)                    normal by construction
//
// S is diagonalised through the Hermitian -i (S + I/2) (eigh, exact
// orthonormal eigenvectors V), Lambda = -1/2 + i mu. The N eigenvalues come
// in conjugate pairs; the N/2 with Im < 0 are kept, with their eigenvectors
// V (N x N/2), and
//
//   Lambda (N/2),   P~ = V* P,   B~ = V* B (Im clipped to [-2, 2], the official B_clip)
//
// so that A = V_full (diag(Lambda, conj Lambda) - p p*) V_full* with
// p = [P~; conj P~] (V_full = [V, conj V] is unitary).
#pragma once

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <numeric>
#include <vector>

namespace s4 {

using cd = std::complex<double>;

// The HiPPO-LegS state matrix A (N x N) and input vector B (N).
inline Eigen::MatrixXd legs_A(int64_t N) {
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(N, N);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k <= n; ++k)
      A(n, k) = n == k ? -double(n + 1) : -std::sqrt(double(2 * n + 1)) * std::sqrt(double(2 * k + 1));
  return A;
}
inline Eigen::VectorXd legs_B(int64_t N) {
  Eigen::VectorXd B(N);
  for (int64_t n = 0; n < N; ++n) B(n) = std::sqrt(double(2 * n + 1));
  return B;
}
// The rank-1 correction P (N): A + P P^T is normal.
inline Eigen::VectorXd legs_P(int64_t N) {
  Eigen::VectorXd P(N);
  for (int64_t n = 0; n < N; ++n) P(n) = std::sqrt(double(n) + 0.5);
  return P;
}

struct Nplr {
  std::vector<cd> Lambda, P, B;  // (N/2) each; B clipped
  std::vector<cd> B_unclipped;   // V* B before the clip
  Eigen::MatrixXcd V;            // (N, N/2): the kept eigenvectors, orthonormal columns
};

// N even. B_clip <= 0: no clip.
inline Nplr legs_nplr(int64_t N, double B_clip = 2.0) {
  const Eigen::MatrixXd A = legs_A(N);
  const Eigen::VectorXd P = legs_P(N), B = legs_B(N);
  const Eigen::MatrixXd S = A + P * P.transpose();
  // S = -1/2 I + K with K skew: eigh of the Hermitian -i K.
  const double re = S.diagonal().mean();
  Eigen::MatrixXd K = S;
  K.diagonal().array() -= re;
  K = 0.5 * (K - K.transpose());  // exactly skew (it is, up to rounding)
  const Eigen::MatrixXcd Hm = cd(0, -1) * K.cast<cd>();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXcd> eig(Hm);
  // K v = i mu v  ->  S v = (re + i mu) v. Eigen sorts mu ascending: the
  // first N/2 are the negative ones (Im Lambda < 0).
  const Eigen::VectorXd mu = eig.eigenvalues();
  const int64_t N2 = N / 2;
  Nplr out;
  out.V = eig.eigenvectors().leftCols(N2);
  const Eigen::VectorXcd Pt = out.V.adjoint() * P.cast<cd>();
  const Eigen::VectorXcd Bt = out.V.adjoint() * B.cast<cd>();
  for (int64_t n = 0; n < N2; ++n) {
    out.Lambda.push_back(cd(re, mu(n)));
    out.P.push_back(Pt(n));
    out.B_unclipped.push_back(Bt(n));
    double im = Bt(n).imag();
    if (B_clip > 0) im = std::clamp(im, -B_clip, B_clip);
    out.B.push_back(cd(Bt(n).real(), im));
  }
  return out;
}

}  // namespace s4
