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

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ssm::kernels {

// The FFT length used for sequences of length L: the smallest even n >= 2L-1
// whose only prime factors are 2, 3, 5 and 7 (2L when L has only those).
int64_t fftconv_size(int64_t L);

template <typename T>
class FftConvSpectra;

// y = k * u along L (overwritten).
template <typename T>
void fftconv_forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H);

// The same, also keeping the spectra of u in `keep` for the backward below.
template <typename T>
void fftconv_forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H, FftConvSpectra<T>& keep);

// Given dy = dloss/dy of fftconv_forward:
//   du[b,m,h] = sum_{l>=m} k[h,l-m] dy[b,l,h]          (overwritten; skipped if du is nullptr; du may be dy)
//   dk[h,j]  += sum_b sum_{l>=j} u[b,l-j,h] dy[b,l,h]  (accumulated)
template <typename T>
void fftconv_backward(const T* u, const T* k, const T* dy, T* du, T* dk, int64_t B, int64_t L, int64_t H);

// The same from the spectra a forward kept (u itself is not needed): one FFT
// per sequence and channel less. The shape must be that forward's.
template <typename T>
void fftconv_backward(const FftConvSpectra<T>& u_spectra, const T* k, const T* dy, T* du, T* dk, int64_t B, int64_t L,
                      int64_t H);

// The FFTs of u that a forward computed, kept for its backward (about twice
// the size of u). The memory is reused by later forwards of the same or a
// smaller size. Filled and read only by the functions above.
template <typename T>
class FftConvSpectra {
 public:
  bool holds(int64_t B, int64_t L, int64_t H) const { return B == B_ && L == L_ && H == H_; }

 private:
  struct Free {
    void operator()(void* p) const;  // fftw_free: the memory is FFTW-aligned, as the plans need
  };
  friend void fftconv_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, FftConvSpectra<T>&);
  friend void fftconv_backward<T>(const FftConvSpectra<T>&, const T*, const T*, T*, T*, int64_t, int64_t, int64_t);
  std::unique_ptr<void, Free> data_;
  size_t bytes_ = 0;
  int64_t B_ = 0, L_ = 0, H_ = 0;  // the shape of the forward they came from (H_ = 0: none)
};

}  // namespace ssm::kernels
