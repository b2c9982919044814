// Causal long convolution along the sequence by FFT (FFTW), for channel-last
// data: y[b,l,h] = sum_{j<=l} k[h,j] u[b,l-j,h]. T = float or double.
//
// u, y, du, dy are (B, L, H) dense row-major; k and dk are (H, L). The FFT
// length is fftconv_size(L) >= 2L-1, so the circular convolution does not
// wrap around. Plans are made once per size (FFTW_ESTIMATE: the same
// algorithm in every process, so results are reproducible bit for bit) and
// cached. Work is split over fixed blocks of channels (OpenMP), each looping
// over the batch in order, so results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace ssm::kernels {

// The FFT length used for sequences of length L: the smallest even n >= 2L-1
// whose only prime factors are 2, 3, 5 and 7 (2L when L has only those).
int64_t fftconv_size(int64_t L);

// y = k * u along L (overwritten).
template <typename T>
void fftconv_forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H);

// Given dy = dloss/dy of fftconv_forward:
//   du[b,m,h] = sum_{l>=m} k[h,l-m] dy[b,l,h]          (overwritten; skipped if du is nullptr)
//   dk[h,j]  += sum_b sum_{l>=j} u[b,l-j,h] dy[b,l,h]  (accumulated)
template <typename T>
void fftconv_backward(const T* u, const T* k, const T* dy, T* du, T* dk, int64_t B, int64_t L, int64_t H);

}  // namespace ssm::kernels
