// FFT long convolution (FFTW): one block of channels per task, the batch in
// order inside it, plans cached per (length, channels in a block, dtype). A
// forward may keep the spectra of u so that its backward does not redo them.
#include "ssm/kernels/fftconv.hpp"

#include <fftw3.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <map>
#include <mutex>
#include <utility>

#include "ssm/sdk.hpp"

namespace ssm::kernels {

namespace {

// Channels per task. Fixed, so that the split of the work and therefore every
// bit of the result is the same for any thread count.
constexpr int64_t kBlock = 16;

// FFTW's double and float APIs under one name. Every plan transforms `count`
// rows of length n stored one after another (real rows n apart, complex rows
// n/2+1 apart), out of place.
template <typename T>
struct Fftw;

template <>
struct Fftw<double> {
  using Plan = fftw_plan;
  using Complex = fftw_complex;
  static Plan plan_r2c(int n, int count, double* in, Complex* out) {
    return fftw_plan_many_dft_r2c(1, &n, count, in, nullptr, 1, n, out, nullptr, 1, n / 2 + 1, FFTW_ESTIMATE);
  }
  static Plan plan_c2r(int n, int count, Complex* in, double* out) {
    return fftw_plan_many_dft_c2r(1, &n, count, in, nullptr, 1, n / 2 + 1, out, nullptr, 1, n, FFTW_ESTIMATE);
  }
  static void run(Plan p, double* in, Complex* out) { fftw_execute_dft_r2c(p, in, out); }
  static void run(Plan p, Complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
  static void* alloc(size_t bytes) { return fftw_malloc(bytes); }
  static void release(void* p) { fftw_free(p); }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
};

template <>
struct Fftw<float> {
  using Plan = fftwf_plan;
  using Complex = fftwf_complex;
  static Plan plan_r2c(int n, int count, float* in, Complex* out) {
    return fftwf_plan_many_dft_r2c(1, &n, count, in, nullptr, 1, n, out, nullptr, 1, n / 2 + 1, FFTW_ESTIMATE);
  }
  static Plan plan_c2r(int n, int count, Complex* in, float* out) {
    return fftwf_plan_many_dft_c2r(1, &n, count, in, nullptr, 1, n / 2 + 1, out, nullptr, 1, n, FFTW_ESTIMATE);
  }
  static void run(Plan p, float* in, Complex* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void run(Plan p, Complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
  static void* alloc(size_t bytes) { return fftwf_malloc(bytes); }
  static void release(void* p) { fftwf_free(p); }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
};

// Per-thread scratch arrays that outlive a call (OpenMP keeps its threads):
// fresh allocations would cost page faults and heap trimming on every call,
// a sizeable part of a convolution. They come from fftw_malloc, whose
// alignment the plans were made with (the new-array execute functions need it).
template <typename T>
class Scratch {
 public:
  enum Slot { kIn, kOut, kSpec, kKernel, kSpec2, kSpec3, kSlots };
  ~Scratch() {
    for (void* p : ptr_) Fftw<T>::release(p);
  }
  template <typename E>
  E* get(Slot slot, int64_t count) {
    const size_t bytes = sizeof(E) * static_cast<size_t>(count);
    if (bytes > size_[slot]) {
      Fftw<T>::release(ptr_[slot]);
      ptr_[slot] = Fftw<T>::alloc(bytes);
      size_[slot] = ptr_[slot] ? bytes : 0;
      if (!ptr_[slot]) fail("fftconv: out of memory", SSM_ERR_INTERNAL);
    }
    return static_cast<E*>(ptr_[slot]);
  }
  static Scratch& of_this_thread() {
    thread_local Scratch s;
    return s;
  }

 private:
  void* ptr_[kSlots] = {};
  size_t size_[kSlots] = {};
};

template <typename T>
struct Plans {
  typename Fftw<T>::Plan r2c, c2r;
};

// FFTW's planner is not thread safe (execution is): one lock for both dtypes.
std::mutex& planner_mutex() {
  static std::mutex m;
  return m;
}

// The cached plans for `count` rows of length n (made on first use).
template <typename T>
Plans<T> plans_for(int64_t n, int64_t count) {
  struct Cache {
    std::map<std::pair<int64_t, int64_t>, Plans<T>> plans;
    ~Cache() {
      for (auto& kv : plans) {
        Fftw<T>::destroy(kv.second.r2c);
        Fftw<T>::destroy(kv.second.c2r);
      }
    }
  };
  static Cache cache;
  std::lock_guard<std::mutex> lock(planner_mutex());
  auto it = cache.plans.find({n, count});
  if (it != cache.plans.end()) return it->second;
  if (n > INT_MAX || count > INT_MAX)
    fail("fftconv: sequence too long for FFTW (FFT length " + std::to_string(n) + ")");
  // FFTW_ESTIMATE does not touch the arrays; they only fix the alignment.
  T* real = static_cast<T*>(Fftw<T>::alloc(sizeof(T) * static_cast<size_t>(count * n)));
  auto* spec = static_cast<typename Fftw<T>::Complex*>(
      Fftw<T>::alloc(sizeof(typename Fftw<T>::Complex) * static_cast<size_t>(count * (n / 2 + 1))));
  Plans<T> p{};
  if (real && spec) {
    p.r2c = Fftw<T>::plan_r2c(static_cast<int>(n), static_cast<int>(count), real, spec);
    p.c2r = Fftw<T>::plan_c2r(static_cast<int>(n), static_cast<int>(count), spec, real);
  }
  Fftw<T>::release(real);
  Fftw<T>::release(spec);
  if (!p.r2c || !p.c2r)
    fail("fftconv: FFTW could not plan a transform of length " + std::to_string(n), SSM_ERR_INTERNAL);
  cache.plans.emplace(std::make_pair(n, count), p);
  return p;
}

// out[i] = a[i] * b[i] over n complex values (interleaved re, im).
template <typename T>
void multiply(const T (*a)[2], const T (*b)[2], T (*out)[2], int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T re = a[i][0] * b[i][0] - a[i][1] * b[i][1];
    const T im = a[i][0] * b[i][1] + a[i][1] * b[i][0];
    out[i][0] = re;
    out[i][1] = im;
  }
}

// acc[i] += conj(a[i]) * b[i]: the spectrum of a cross-correlation.
template <typename T>
void add_conj_product(const T (*a)[2], const T (*b)[2], T (*acc)[2], int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i][0] += a[i][0] * b[i][0] + a[i][1] * b[i][1];
    acc[i][1] += a[i][0] * b[i][1] - a[i][1] * b[i][0];
  }
}

// The work on channels [h0, h0 + count) of one call: zero-padded rows of
// length n in `in`, their spectra, and the kernel's spectrum.
template <typename T>
class ChannelBlock {
 public:
  using Complex = typename Fftw<T>::Complex;

  ChannelBlock(int64_t n, int64_t L, int64_t H, int64_t h0, int64_t count)
      : n_(n), nc_(n / 2 + 1), L_(L), H_(H), h0_(h0), count_(count), plans_(plans_for<T>(n, count)) {
    Scratch<T>& s = Scratch<T>::of_this_thread();
    in_ = s.template get<T>(Scratch<T>::kIn, count * n);
    out_ = s.template get<T>(Scratch<T>::kOut, count * n);
    spec_ = s.template get<Complex>(Scratch<T>::kSpec, count * nc_);
    kernel_ = s.template get<Complex>(Scratch<T>::kKernel, count * nc_);
    // The padding [L, n) of every row stays zero: loads write only [0, L).
    for (int64_t c = 0; c < count; ++c) std::fill(in_ + c * n + L, in_ + (c + 1) * n, T(0));
  }

  int64_t spectrum_size() const { return count_ * nc_; }

  // kernel_ = rfft(k rows) / n, conjugated for the backward (correlation).
  void transform_kernel(const T* k, bool conjugate) {
    for (int64_t c = 0; c < count_; ++c) std::copy(k + (h0_ + c) * L_, k + (h0_ + c + 1) * L_, in_ + c * n_);
    Fftw<T>::run(plans_.r2c, in_, kernel_);
    const T scale = T(1) / static_cast<T>(n_);
    const T im_sign = conjugate ? -scale : scale;
    for (int64_t i = 0; i < count_ * nc_; ++i) {
      kernel_[i][0] *= scale;
      kernel_[i][1] *= im_sign;
    }
  }

  // spectrum = rfft of sequence b of x (B, L, H), this block's channels.
  void transform_sequence(const T* x, int64_t b, Complex* spectrum) {
    T* in = in_;
    for (int64_t l = 0; l < L_; ++l) {
      const T* row = x + (b * L_ + l) * H_ + h0_;
      for (int64_t c = 0; c < count_; ++c) in[c * n_ + l] = row[c];
    }
    Fftw<T>::run(plans_.r2c, in, spectrum);
  }

  // Sequence b of y (B, L, H) = the first L values of irfft(spectrum * kernel_).
  // The product goes to spec() (c2r destroys its input); `spectrum` may be spec().
  void convolve_into(const Complex* spectrum, T* y, int64_t b) {
    multiply<T>(spectrum, kernel_, spec_, count_ * nc_);
    Fftw<T>::run(plans_.c2r, spec_, out_);
    const T* out = out_;
    for (int64_t l = 0; l < L_; ++l) {
      T* row = y + (b * L_ + l) * H_ + h0_;
      for (int64_t c = 0; c < count_; ++c) row[c] = out[c * n_ + l];
    }
  }

  // dk rows += the first L values of irfft(spectrum) / n. Destroys spectrum.
  void add_rows_into(Complex* spectrum, T* dk) {
    Fftw<T>::run(plans_.c2r, spectrum, out_);
    const T scale = T(1) / static_cast<T>(n_);
    for (int64_t c = 0; c < count_; ++c) {
      const T* out = out_ + c * n_;
      T* row = dk + (h0_ + c) * L_;
      for (int64_t l = 0; l < L_; ++l) row[l] += out[l] * scale;
    }
  }

  Complex* spec() { return spec_; }

 private:
  int64_t n_, nc_, L_, H_, h0_, count_;
  Plans<T> plans_;
  T *in_, *out_;
  Complex *spec_, *kernel_;
};

// Runs task(h0, count) for every block of channels, in parallel. An
// exception (out of memory) must not leave an OpenMP region: the first one is
// rethrown after the loop.
template <typename Task>
void for_each_block(int64_t H, Task task) {
  const int64_t blocks = (H + kBlock - 1) / kBlock;
  // Plans are made before the parallel loop so that no thread waits on the planner.
  task.prepare(std::min(H, kBlock));
  if (H % kBlock) task.prepare(H % kBlock);
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t i = 0; i < blocks; ++i) {
    const int64_t h0 = i * kBlock;
    try {
      task(h0, std::min(kBlock, H - h0));
    } catch (...) {
#pragma omp critical(ssm_fftconv_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Complex values per (block of channels, sequence) slot of FftConvSpectra: a
// multiple of 8, so that every slot keeps fftw_malloc's alignment (the plans
// were made with it).
int64_t spectra_slot(int64_t L) { return (kBlock * (fftconv_size(L) / 2 + 1) + 7) / 8 * 8; }

// The forward; keeps the spectra of u at `keep` (slots by block, then sequence) unless it is null.
template <typename T>
void forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H, typename Fftw<T>::Complex* keep) {
  if (B <= 0 || L <= 0 || H <= 0) return;
  const int64_t n = fftconv_size(L);
  struct Task {
    const T *u, *k;
    T* y;
    typename Fftw<T>::Complex* keep;
    int64_t B, L, H, n, slot;
    void prepare(int64_t count) const { plans_for<T>(n, count); }
    void operator()(int64_t h0, int64_t count) const {
      ChannelBlock<T> blk(n, L, H, h0, count);
      blk.transform_kernel(k, /*conjugate=*/false);
      for (int64_t b = 0; b < B; ++b) {
        auto* spectrum = keep ? keep + (h0 / kBlock * B + b) * slot : blk.spec();
        blk.transform_sequence(u, b, spectrum);
        blk.convolve_into(spectrum, y, b);
      }
    }
  };
  for_each_block(H, Task{u, k, y, keep, B, L, H, n, spectra_slot(L)});
}

// The backward; takes the spectra of u from `u_spectra` (as forward keeps
// them) if it is not null, else transforms u again.
template <typename T>
void backward(const T* u, const typename Fftw<T>::Complex* u_spectra, const T* k, const T* dy, T* du, T* dk,
              int64_t B, int64_t L, int64_t H) {
  if (B <= 0 || L <= 0 || H <= 0) return;
  const int64_t n = fftconv_size(L);
  struct Task {
    const T* u;
    const typename Fftw<T>::Complex* u_spectra;
    const T *k, *dy;
    T *du, *dk;
    int64_t B, L, H, n, slot;
    void prepare(int64_t count) const { plans_for<T>(n, count); }
    void operator()(int64_t h0, int64_t count) const {
      using Complex = typename ChannelBlock<T>::Complex;
      ChannelBlock<T> blk(n, L, H, h0, count);
      // du is the correlation of dy with k: the spectrum of k conjugated.
      blk.transform_kernel(k, /*conjugate=*/true);
      const int64_t m = blk.spectrum_size();
      Scratch<T>& s = Scratch<T>::of_this_thread();
      Complex* dy_spec = s.template get<Complex>(Scratch<T>::kSpec2, m);
      Complex* dk_spec = s.template get<Complex>(Scratch<T>::kSpec3, m);
      std::fill(&dk_spec[0][0], &dk_spec[0][0] + 2 * m, T(0));
      for (int64_t b = 0; b < B; ++b) {
        // Sequence b of dy is read whole before du's is written: du may be dy.
        blk.transform_sequence(dy, b, dy_spec);
        const Complex* u_spec = u_spectra ? u_spectra + (h0 / kBlock * B + b) * slot : blk.spec();
        if (!u_spectra) blk.transform_sequence(u, b, blk.spec());
        // dk is the correlation of dy with u, summed over the batch in order.
        add_conj_product<T>(u_spec, dy_spec, dk_spec, m);
        if (du) blk.convolve_into(dy_spec, du, b);
      }
      blk.add_rows_into(dk_spec, dk);
    }
  };
  for_each_block(H, Task{u, u_spectra, k, dy, du, dk, B, L, H, n, spectra_slot(L)});
}

}  // namespace

int64_t fftconv_size(int64_t L) {
  auto smooth = [](int64_t n) {
    for (int64_t p : {2, 3, 5, 7})
      while (n % p == 0) n /= p;
    return n == 1;
  };
  int64_t n = std::max<int64_t>(2, 2 * L);
  while (!smooth(n)) n += 2;
  return n;
}

template <typename T>
void fftconv_forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H) {
  forward<T>(u, k, y, B, L, H, nullptr);
}

template <typename T>
void fftconv_forward(const T* u, const T* k, T* y, int64_t B, int64_t L, int64_t H, FftConvSpectra<T>& keep) {
  keep.B_ = keep.L_ = keep.H_ = 0;  // until filled
  if (B <= 0 || L <= 0 || H <= 0) return;
  const int64_t blocks = (H + kBlock - 1) / kBlock;
  const size_t bytes = sizeof(typename Fftw<T>::Complex) * static_cast<size_t>(blocks * B * spectra_slot(L));
  if (bytes > keep.bytes_) {
    keep.data_.reset();  // first, so that the old and new memory are never both held
    keep.bytes_ = 0;
    keep.data_.reset(Fftw<T>::alloc(bytes));
    if (!keep.data_) fail("fftconv: out of memory", SSM_ERR_INTERNAL);
    keep.bytes_ = bytes;
  }
  forward<T>(u, k, y, B, L, H, static_cast<typename Fftw<T>::Complex*>(keep.data_.get()));
  keep.B_ = B, keep.L_ = L, keep.H_ = H;
}

template <typename T>
void fftconv_backward(const T* u, const T* k, const T* dy, T* du, T* dk, int64_t B, int64_t L, int64_t H) {
  backward<T>(u, nullptr, k, dy, du, dk, B, L, H);
}

template <typename T>
void fftconv_backward(const FftConvSpectra<T>& u_spectra, const T* k, const T* dy, T* du, T* dk, int64_t B, int64_t L,
                      int64_t H) {
  if (B <= 0 || L <= 0 || H <= 0) return;
  if (!u_spectra.holds(B, L, H))
    fail("fftconv: the kept spectra are not those of a forward of shape (" + std::to_string(B) + ", " +
         std::to_string(L) + ", " + std::to_string(H) + ")");
  backward<T>(nullptr, static_cast<const typename Fftw<T>::Complex*>(u_spectra.data_.get()), k, dy, du, dk, B, L, H);
}

template <>
void FftConvSpectra<float>::Free::operator()(void* p) const {
  fftwf_free(p);
}
template <>
void FftConvSpectra<double>::Free::operator()(void* p) const {
  fftw_free(p);
}

template void fftconv_forward<float>(const float*, const float*, float*, int64_t, int64_t, int64_t);
template void fftconv_forward<double>(const double*, const double*, double*, int64_t, int64_t, int64_t);
template void fftconv_backward<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                      int64_t);
template void fftconv_backward<double>(const double*, const double*, const double*, double*, double*, int64_t, int64_t,
                                       int64_t);
template void fftconv_forward<float>(const float*, const float*, float*, int64_t, int64_t, int64_t,
                                     FftConvSpectra<float>&);
template void fftconv_forward<double>(const double*, const double*, double*, int64_t, int64_t, int64_t,
                                      FftConvSpectra<double>&);
template void fftconv_backward<float>(const FftConvSpectra<float>&, const float*, const float*, float*, float*, int64_t,
                                      int64_t, int64_t);
template void fftconv_backward<double>(const FftConvSpectra<double>&, const double*, const double*, double*, double*,
                                       int64_t, int64_t, int64_t);

}  // namespace ssm::kernels
