// The dense (N x N, real, float64) side of S4's DPLR layer (docs/math.md §1):
// what cannot go through the Cauchy kernel, each piece with its backward.
//
// - The real form of one channel. The full complex state [y; conj y] of the
//   DPLR system is carried by the real state s = (Re y, Im y) (N = 2 N2):
//     A_r = [[diag Re L, -diag Im L], [diag Im L, diag Re L]] - 2 sum_r u_r u_r^T,  u_r = (Re P_r, Im P_r)
//     b_r = (Re B, Im B),   c_r = 2 (Re C, -Im C)          (the kernel is c_r^T Abar^j Bbar)
// - Dense discretisation: the generalised bilinear family
//     Abar = (I - alpha X)^{-1} (I + (1 - alpha) X),  Bbar = dt (I - alpha X)^{-1} b,   X = dt A_r
//   and the exponential family (zoh, async)
//     Abar = e^{tau X},  Bbar = dt phi(X) b, the last column of exp([[X, dt b], [0, 0]]),
//   whose backward is the adjoint Frechet derivative of the matrix
//   exponential, L(X^T, G) (expm_frechet: the top-right block of
//   exp([[X^T, G], [0, X^T]]), by Al-Mohy and Higham's algorithm).
// - Abar^l by repeated squaring; the official length doubling
//   C~_{2l} = C~_l (I + Abar^l); the recovery C = C~ (I - Abar^l)^{-1}.
// - The exponential family's kernel in the time domain, exact:
//   K[j] = C Abar^j Bbar (a Krylov sequence), and its adjoint recurrence.
#pragma once

#include <Eigen/Core>
#include <Eigen/LU>
#include <unsupported/Eigen/MatrixFunctions>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dplr_kernel.hpp"

namespace s4 {

using Vec = Eigen::VectorXd;

// The discretization family of the layer's scheme.
struct Scheme {
  enum Kind { kGbt, kExp } kind = kGbt;
  double alpha = 0.5;  // kGbt
  double tau = 1;      // kExp
};

// ---------------------------------------------------------------- real form

inline RMat real_A(const Dplr& m, int64_t h) {
  const int64_t N2 = m.N2, N = 2 * N2;
  RMat A = RMat::Zero(N, N);
  const cd* lam = m.lam(h);
  for (int64_t n = 0; n < N2; ++n) {
    A(n, n) = A(N2 + n, N2 + n) = lam[n].real();
    A(n, N2 + n) = -lam[n].imag();
    A(N2 + n, n) = lam[n].imag();
  }
  for (int64_t r = 0; r < m.R; ++r) {
    Vec u(N);
    for (int64_t n = 0; n < N2; ++n) u(n) = m.p(r, h)[n].real(), u(N2 + n) = m.p(r, h)[n].imag();
    A.noalias() -= 2 * u * u.transpose();
  }
  return A;
}
inline Vec real_b(const Dplr& m, int64_t h) {
  Vec b(2 * m.N2);
  for (int64_t n = 0; n < m.N2; ++n) b(n) = m.b(h)[n].real(), b(m.N2 + n) = m.b(h)[n].imag();
  return b;
}
inline Vec real_c(const cd* C, int64_t N2) {
  Vec c(2 * N2);
  for (int64_t n = 0; n < N2; ++n) c(n) = 2 * C[n].real(), c(N2 + n) = -2 * C[n].imag();
  return c;
}
// The inverse of real_c, and its backward (gradient pairs -> gradient of c).
inline void complex_c(const Vec& c, cd* C, int64_t N2) {
  for (int64_t n = 0; n < N2; ++n) C[n] = cd(c(n) / 2, -c(N2 + n) / 2);
}
inline Vec complex_c_backward(const cd* gC, int64_t N2) {
  Vec g(2 * N2);
  for (int64_t n = 0; n < N2; ++n) g(n) = gC[n].real() / 2, g(N2 + n) = -gC[n].imag() / 2;
  return g;
}

// Gradients of the real form back to the channel's parameters (+=, DplrGrad's convention).
inline void real_A_backward(const Dplr& m, int64_t h, const RMat& G, DplrGrad& g) {
  const int64_t N2 = m.N2, N = 2 * N2;
  for (int64_t n = 0; n < N2; ++n)
    g.Lam[h * N2 + n] += cd(G(n, n) + G(N2 + n, N2 + n), G(N2 + n, n) - G(n, N2 + n));
  const RMat Gs = G + G.transpose();
  for (int64_t r = 0; r < m.R; ++r) {
    Vec u(N);
    for (int64_t n = 0; n < N2; ++n) u(n) = m.p(r, h)[n].real(), u(N2 + n) = m.p(r, h)[n].imag();
    const Vec gu = -2 * (Gs * u);
    for (int64_t n = 0; n < N2; ++n) g.P[(r * m.H + h) * N2 + n] += cd(gu(n), gu(N2 + n));
  }
}
inline void real_b_backward(const Dplr& m, int64_t h, const Vec& Gb, DplrGrad& g) {
  for (int64_t n = 0; n < m.N2; ++n) g.B[h * m.N2 + n] += cd(Gb(n), Gb(m.N2 + n));
}
inline void real_c_backward(int64_t N2, const Vec& Gc, cd* gC) {
  for (int64_t n = 0; n < N2; ++n) gC[n] += cd(2 * Gc(n), -2 * Gc(N2 + n));
}

// ------------------------------------------------------- matrix exponential

// The Frechet derivative of the matrix exponential, L(A, E) = d/dt exp(A + t E)
// at t = 0, with exp(A) (into X): Al-Mohy and Higham, "Computing the Frechet
// derivative of the matrix exponential" (SIAM J. Matrix Anal. Appl. 30, 2009),
// Algorithm 6.4 with the [13/13] Pade approximant: scale A and E by 2^-s
// (||A / 2^s||_1 <= theta_13), evaluate the approximant and its derivative
// together, then square s times (L <- X L + L X, X <- X^2). About 3x cheaper
// than the exponential of the block matrix [[A, E], [0, A]] it equals.
inline void expm_frechet(const RMat& A_in, const RMat& E_in, RMat& X, RMat& L) {
  static const double b[14] = {64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
                               129060195264000.0,   10559470521600.0,    670442572800.0,     33522128640.0,
                               1323241920.0,        40840800.0,          960960.0,           16380.0,
                               182.0,               1.0};
  const double theta13 = 5.371920351148152;
  const int64_t n = A_in.rows();
  const double norm = A_in.cwiseAbs().colwise().sum().maxCoeff();
  int s = 0;
  if (norm > theta13) s = std::max(0, static_cast<int>(std::ceil(std::log2(norm / theta13))));
  const double scale = std::ldexp(1.0, -s);
  const RMat A = A_in * scale, E = E_in * scale;
  const RMat I = RMat::Identity(n, n);
  const RMat A2 = A * A, A4 = A2 * A2, A6 = A2 * A4;
  const RMat M2 = A * E + E * A, M4 = A2 * M2 + M2 * A2, M6 = A4 * M2 + M4 * A2;
  const RMat W1 = b[13] * A6 + b[11] * A4 + b[9] * A2;
  const RMat W2 = b[7] * A6 + b[5] * A4 + b[3] * A2 + b[1] * I;
  const RMat Z1 = b[12] * A6 + b[10] * A4 + b[8] * A2;
  const RMat Z2 = b[6] * A6 + b[4] * A4 + b[2] * A2 + b[0] * I;
  const RMat W = A6 * W1 + W2;
  const RMat U = A * W;
  const RMat V = A6 * Z1 + Z2;
  const RMat Lw1 = b[13] * M6 + b[11] * M4 + b[9] * M2;
  const RMat Lw2 = b[7] * M6 + b[5] * M4 + b[3] * M2;
  const RMat Lz1 = b[12] * M6 + b[10] * M4 + b[8] * M2;
  const RMat Lz2 = b[6] * M6 + b[4] * M4 + b[2] * M2;
  const RMat Lw = A6 * Lw1 + M6 * W1 + Lw2;
  const RMat Lu = A * Lw + E * W;
  const RMat Lv = A6 * Lz1 + M6 * Z1 + Lz2;
  const Eigen::PartialPivLU<RMat> lu(V - U);
  X = lu.solve(U + V);
  L = lu.solve(Lu + Lv + (Lu - Lv) * X);
  for (int k = 0; k < s; ++k) {
    L = X * L + L * X;
    X = X * X;
  }
}

// dloss/dX of F = exp(X) given G = dloss/dF: L(X^T, G), the adjoint Frechet
// derivative (<G, L(X, E)> = <L(X^T, G), E>).
inline RMat expm_frechet_adjoint(const RMat& X, const RMat& G) {
  const int64_t n = X.rows();
  if (!(G.cwiseAbs().maxCoeff() > 0)) return RMat::Zero(n, n);
  RMat F, L;
  expm_frechet(X.transpose(), G, F, L);
  return L;
}

// ------------------------------------------------------ dense discretization

struct DenseDisc {
  Scheme sc;
  double dt = 0;
  RMat A, X, Abar, Xa;
  Vec b, Bbar;
  Eigen::PartialPivLU<RMat> lu;  // gbt: I - alpha X

  void build(const Scheme& s, const RMat& A_, const Vec& b_, double dt_, bool with_B = true) {
    sc = s, A = A_, b = b_, dt = dt_;
    const int64_t N = A.rows();
    X = dt * A;
    const RMat I = RMat::Identity(N, N);
    if (sc.kind == Scheme::kGbt) {
      lu.compute(I - sc.alpha * X);
      Abar = lu.solve(I + (1 - sc.alpha) * X);
      if (with_B) Bbar = dt * lu.solve(b);
      return;
    }
    if (with_B || sc.tau == 1) {
      Xa = RMat::Zero(N + 1, N + 1);
      Xa.topLeftCorner(N, N) = X;
      Xa.topRightCorner(N, 1) = dt * b;
      const RMat Fa = Xa.exp();
      Bbar = Fa.topRightCorner(N, 1);
      if (sc.tau == 1) Abar = Fa.topLeftCorner(N, N);
    }
    if (sc.tau != 1) Abar = (sc.tau * X).exp();
  }

  // Given dloss/dAbar and dloss/dBbar (either may be null): GA, Gb, Gdt (+=).
  void backward(const RMat* GAbar, const Vec* GBbar, RMat& GA, Vec& Gb, double& Gdt) const {
    const int64_t N = A.rows();
    RMat GX = RMat::Zero(N, N);
    if (sc.kind == Scheme::kGbt) {
      // Abar = M^{-1} (I + (1-a) X), M = I - a X: dAbar = M^{-1} dX ((1-a) I + a Abar).
      if (GAbar) {
        const RMat Y = lu.transpose().solve(*GAbar);
        GX.noalias() += Y * ((1 - sc.alpha) * RMat::Identity(N, N) + sc.alpha * Abar).transpose();
      }
      // Bbar = dt M^{-1} b: dBbar = a M^{-1} dX Bbar + ddt M^{-1} b + dt M^{-1} db.
      if (GBbar) {
        const Vec y = lu.transpose().solve(*GBbar);
        GX.noalias() += sc.alpha * y * Bbar.transpose();
        Gb += dt * y;
        Gdt += y.dot(b);
      }
    } else {
      RMat GFa = RMat::Zero(N + 1, N + 1);
      bool any = false;
      if (GAbar && sc.tau == 1) GFa.topLeftCorner(N, N) = *GAbar, any = true;
      if (GBbar) GFa.topRightCorner(N, 1) = *GBbar, any = true;
      if (any) {
        const RMat GXa = expm_frechet_adjoint(Xa, GFa);
        GX += GXa.topLeftCorner(N, N);
        const Vec gdb = GXa.topRightCorner(N, 1);  // the gradient of dt b
        Gb += dt * gdb;
        Gdt += gdb.dot(b);
      }
      if (GAbar && sc.tau != 1) GX += sc.tau * expm_frechet_adjoint(sc.tau * X, *GAbar);
    }
    // X = dt A.
    GA += dt * GX;
    Gdt += A.cwiseProduct(GX).sum();
  }
};

// ------------------------------------------------------------------ powers

// Abar^l (l >= 1) by repeated squaring, keeping what the backward needs.
struct PowerChain {
  std::vector<RMat> sq;    // sq[i] = Abar^(2^i)
  std::vector<RMat> prod;  // partial products of the squares the bits of l select
  std::vector<size_t> which;

  void build(const RMat& A, int64_t l) {
    sq.assign(1, A), prod.clear(), which.clear();
    for (size_t i = 0;; ++i) {
      if (l & 1) {
        prod.push_back(prod.empty() ? sq[i] : RMat(prod.back() * sq[i]));
        which.push_back(i);
      }
      l >>= 1;
      if (!l) break;
      sq.push_back(sq[i] * sq[i]);
    }
  }
  const RMat& result() const { return prod.back(); }

  // GA += dloss/dAbar given G = dloss/dAbar^l.
  void backward(const RMat& G, RMat& GA) const {
    const int64_t N = G.rows();
    std::vector<RMat> Gsq(sq.size(), RMat::Zero(N, N));
    RMat Gp = G;
    for (size_t k = which.size() - 1; k >= 1; --k) {  // prod[k] = prod[k-1] sq[which[k]]
      Gsq[which[k]].noalias() += prod[k - 1].transpose() * Gp;
      Gp = Gp * sq[which[k]].transpose();
    }
    Gsq[which[0]] += Gp;
    for (size_t i = sq.size() - 1; i >= 1; --i) {  // sq[i] = sq[i-1]^2
      Gsq[i - 1].noalias() += Gsq[i] * sq[i - 1].transpose();
      Gsq[i - 1].noalias() += sq[i - 1].transpose() * Gsq[i];
    }
    GA += Gsq[0];
  }
};

// The official length doubling, k times: c' = prod_{i<k} (I + F_i)^T c with
// F_0 = E = Abar^l, F_{i+1} = F_i^2 (row vector C~ times (I + Abar^(2^i l))).
struct Doubling {
  std::vector<RMat> F;
  std::vector<Vec> v;  // v[0] = c, v[i+1] = v[i] + F_i^T v[i]

  void build(const RMat& E, const Vec& c, int k) {
    F.assign(1, E), v.assign(1, c);
    for (int i = 0; i < k; ++i) {
      if (i > 0) F.push_back(F[i - 1] * F[i - 1]);
      v.push_back(v[i] + F[i].transpose() * v[i]);
    }
  }
  const Vec& result() const { return v.back(); }

  // Given G = dloss/dc': Gc, GE (+=).
  void backward(const Vec& G, Vec& Gc, RMat& GE) const {
    const int k = static_cast<int>(v.size()) - 1;
    const int64_t N = G.size();
    std::vector<RMat> GF(static_cast<size_t>(std::max(k, 1)), RMat::Zero(N, N));
    Vec g = G;
    for (int i = k - 1; i >= 0; --i) {
      GF[i].noalias() += v[i] * g.transpose();
      g += F[i] * g;
    }
    for (int i = k - 1; i >= 1; --i) {
      GF[i - 1].noalias() += GF[i] * F[i - 1].transpose();
      GF[i - 1].noalias() += F[i - 1].transpose() * GF[i];
    }
    if (k > 0) GE += GF[0];
    Gc += g;
  }
};

// C = C~ (I - Abar^l)^{-1}, as the column w = (I - E)^{-T} c.
struct Recover {
  Eigen::PartialPivLU<RMat> lu;
  Vec w;
  void build(const RMat& E, const Vec& c) {
    lu.compute(RMat::Identity(E.rows(), E.cols()) - E);
    w = lu.transpose().solve(c);
  }
  // Given Gw: Gc, GE (+=).
  void backward(const Vec& Gw, Vec& Gc, RMat& GE) const {
    const Vec y = lu.solve(Gw);
    Gc += y;
    GE.noalias() += w * y.transpose();
  }
};

// ------------------------------------------------- exponential family kernel

// K[j] = w^T Abar^j Bbar for j < L; the Krylov vectors go into Xk (N, L) when given.
inline void krylov_forward(const RMat& Abar, const Vec& Bbar, const Vec& w, int64_t L, double* K, RMat* Xk) {
  Vec x = Bbar, next(x.size());
  if (Xk) Xk->resize(x.size(), L);
  for (int64_t j = 0; j < L; ++j) {
    K[j] = w.dot(x);
    if (Xk) Xk->col(j) = x;
    if (j + 1 < L) next.noalias() = Abar * x, x.swap(next);
  }
}

// Given g = dloss/dK (L): Gw, GBbar, GAbar (+=), by the adjoint recurrence
// mu_{L-1} = g_{L-1} w, mu_j = g_j w + Abar^T mu_{j+1}:
// GAbar = sum_{j>=1} mu_j x_{j-1}^T, GBbar = mu_0, Gw = sum_j g_j x_j.
inline void krylov_backward(const RMat& Abar, const RMat& Xk, const Vec& w, const double* g, int64_t L, Vec& Gw,
                            Vec& GBbar, RMat& GAbar) {
  const int64_t N = Abar.rows();
  Gw.noalias() += Xk * Eigen::Map<const Vec>(g, L);
  RMat Mu(N, L);
  const RMat At = Abar.transpose();
  Vec mu = g[L - 1] * w, next(N);
  Mu.col(L - 1) = mu;
  for (int64_t j = L - 2; j >= 0; --j) {
    next.noalias() = At * mu;
    mu = next + g[j] * w;
    Mu.col(j) = mu;
  }
  if (L > 1) GAbar.noalias() += Mu.rightCols(L - 1) * Xk.leftCols(L - 1).transpose();
  GBbar += Mu.col(0);
}

}  // namespace s4
