// The S4 kernel of --mode dplr for every channel, both scheme families, and
// its backward (docs/math.md §1), in double:
//
//   K[h, j] = C Abar^j Bbar,  j < L,  C = C~ (I - Abar^l_max)^{-1}
//
// Generalised bilinear schemes: the Cauchy kernel at the lk roots of unity
// (dplr_kernel.hpp), lk = l_max doubled until >= L, with C~ doubled as the
// official code does (C~_{2l} = C~_l (I + Abar^l), dense.hpp) when lk > l_max;
// then irfft and the first L lags. Exponential schemes: the dense exponential
// and the Krylov sequence (dense.hpp), exact for any L.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dense.hpp"
#include "dplr_kernel.hpp"

namespace s4 {

class DplrKernel {
 public:
  // K (H, L). With keep, keeps what backward needs (a copy of m included).
  void forward(const Dplr& m, const Scheme& sc, int64_t l_max, int64_t L, RowFft& fft, double* K, bool keep) {
    m_ = m, sc_ = sc, l_max_ = l_max, L_ = L;
    lk_ = l_max, doublings_ = 0;
    while (lk_ < L) lk_ *= 2, ++doublings_;
    const int64_t H = m.H, N2 = m.N2;

    if (sc.kind == Scheme::kExp) {
#pragma omp parallel for schedule(dynamic)
      for (int64_t h = 0; h < H; ++h) {
        DenseDisc dd;
        dd.build(sc, real_A(m, h), real_b(m, h), m.dt[h]);
        PowerChain pc;
        pc.build(dd.Abar, l_max);
        Recover rc;
        rc.build(pc.result(), real_c(m.c(h), N2));
        krylov_forward(dd.Abar, dd.Bbar, rc.w, L, K + h * L, nullptr);
      }
      return;
    }
    // C~ doubled to lk (dense, only when L > l_max) ...
    Ct_ = m.C;
    if (doublings_ > 0) {
#pragma omp parallel for schedule(dynamic)
      for (int64_t h = 0; h < H; ++h) {
        DenseDisc dd;
        dd.build(sc, real_A(m, h), real_b(m, h), m.dt[h], /*with_B=*/false);
        PowerChain pc;
        pc.build(dd.Abar, l_max);
        Doubling db;
        db.build(pc.result(), real_c(m.c(h), N2), doublings_);
        complex_c(db.result(), Ct_.data() + h * N2, N2);
      }
    }
    // ... then the Cauchy kernel at the lk roots of unity and one inverse FFT.
    nodes_.build(lk_, sc.alpha);
    fft.shape(lk_, H);
    cauchy_forward(m, Ct_.data(), nodes_, fft.spec(), keep ? &Rs_ : nullptr);
    fft.c2r();
    const double* k = fft.real();
    const double inv = 1.0 / double(lk_);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < L; ++j) K[h * L + j] = k[h * lk_ + j] * inv;
  }

  const Dplr& params() const { return m_; }
  int64_t length() const { return lk_; }  // the kernel's length before truncation (generalised bilinear)
  int doublings() const { return doublings_; }

  // Given dK = dloss/dK (H, L) of the last forward with keep: the gradients
  // of the parameters into g (+=, DplrGrad's convention).
  template <typename T>
  void backward(const T* dK, RowFft& fft, DplrGrad& g) const {
    const Dplr& m = m_;
    const int64_t H = m.H, N2 = m.N2, N = 2 * N2, L = L_;
    if (sc_.kind == Scheme::kExp) {
#pragma omp parallel for schedule(dynamic)
      for (int64_t h = 0; h < H; ++h) {
        DenseDisc dd;
        dd.build(sc_, real_A(m, h), real_b(m, h), m.dt[h]);
        PowerChain pc;
        pc.build(dd.Abar, l_max_);
        Recover rc;
        rc.build(pc.result(), real_c(m.c(h), N2));
        std::vector<double> K(static_cast<size_t>(L)), gK(static_cast<size_t>(L));
        RMat Xk;
        krylov_forward(dd.Abar, dd.Bbar, rc.w, L, K.data(), &Xk);
        for (int64_t j = 0; j < L; ++j) gK[j] = double(dK[h * L + j]);
        Vec Gw = Vec::Zero(N), GBbar = Vec::Zero(N), Gc = Vec::Zero(N), Gb = Vec::Zero(N);
        RMat GAbar = RMat::Zero(N, N), GE = RMat::Zero(N, N), GA = RMat::Zero(N, N);
        krylov_backward(dd.Abar, Xk, rc.w, gK.data(), L, Gw, GBbar, GAbar);
        rc.backward(Gw, Gc, GE);
        pc.backward(GE, GAbar);
        double Gdt = 0;
        dd.backward(&GAbar, &GBbar, GA, Gb, Gdt);
        real_A_backward(m, h, GA, g);
        real_b_backward(m, h, Gb, g);
        real_c_backward(N2, Gc, g.C.data() + h * N2);
        g.dt[h] += Gdt;
      }
      return;
    }
    // dK -> the sensitivities of K^: s_k = (c_k / (2 lk)) conj(rfft(dK, lk)_k),
    // c_k = 1 at k = 0 and at the Nyquist bin, 2 elsewhere.
    const int64_t lk = lk_, nb = nodes_.nbins;
    fft.shape(lk, H);
    double* r = fft.real();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < lk; ++j) r[h * lk + j] = j < L ? double(dK[h * L + j]) : 0.0;
    fft.r2c();
    std::vector<cd> s_K(static_cast<size_t>(H * nb));
    const cd* G = fft.spec();
    for (int64_t h = 0; h < H; ++h)
      for (int64_t k = 0; k < nb; ++k) {
        const double ck = (k == 0 || (lk % 2 == 0 && k == lk / 2)) ? 1.0 : 2.0;
        s_K[h * nb + k] = (ck / (2.0 * double(lk))) * std::conj(G[h * nb + k]);
      }
    std::vector<cd> gCt(static_cast<size_t>(H * N2), cd(0));
    cauchy_backward(m, Ct_.data(), nodes_, s_K.data(), Rs_, g, gCt.data());
    if (doublings_ == 0) {
      for (size_t i = 0; i < gCt.size(); ++i) g.C[i] += gCt[i];
      return;
    }
#pragma omp parallel for schedule(dynamic)
    for (int64_t h = 0; h < H; ++h) {
      DenseDisc dd;
      dd.build(sc_, real_A(m, h), real_b(m, h), m.dt[h], /*with_B=*/false);
      PowerChain pc;
      pc.build(dd.Abar, l_max_);
      Doubling db;
      db.build(pc.result(), real_c(m.c(h), N2), doublings_);
      Vec Gc = Vec::Zero(N), Gb = Vec::Zero(N);
      RMat GE = RMat::Zero(N, N), GAbar = RMat::Zero(N, N), GA = RMat::Zero(N, N);
      db.backward(complex_c_backward(gCt.data() + h * N2, N2), Gc, GE);
      pc.backward(GE, GAbar);
      double Gdt = 0;
      dd.backward(&GAbar, nullptr, GA, Gb, Gdt);
      real_A_backward(m, h, GA, g);
      real_c_backward(N2, Gc, g.C.data() + h * N2);
      g.dt[h] += Gdt;
    }
  }

 private:
  Dplr m_;
  Scheme sc_;
  int64_t l_max_ = 0, L_ = 0, lk_ = 0;
  int doublings_ = 0;
  std::vector<cd> Ct_;  // (H, N2): the C~ the Cauchy kernel used (doubled when lk > l_max)
  Nodes nodes_;
  std::vector<cd> Rs_;  // the Cauchy sums (H, nbins, (R+1)^2)
};

// The dense discretised system of every channel for the recurrent mode:
// Abar, Bbar and C = C~ (I - Abar^l_max)^{-1}.
inline void step_system(const Dplr& m, const Scheme& sc, int64_t l_max, std::vector<RMat>& Abar,
                        std::vector<Vec>& Bbar, std::vector<Vec>& C) {
  Abar.resize(static_cast<size_t>(m.H));
  Bbar.resize(static_cast<size_t>(m.H));
  C.resize(static_cast<size_t>(m.H));
#pragma omp parallel for schedule(dynamic)
  for (int64_t h = 0; h < m.H; ++h) {
    DenseDisc dd;
    dd.build(sc, real_A(m, h), real_b(m, h), m.dt[h]);
    PowerChain pc;
    pc.build(dd.Abar, l_max);
    Recover rc;
    rc.build(pc.result(), real_c(m.c(h), m.N2));
    Abar[h] = dd.Abar;
    Bbar[h] = dd.Bbar;
    C[h] = rc.w;
  }
}

}  // namespace s4
