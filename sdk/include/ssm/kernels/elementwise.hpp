// Elementwise discretization maps over DLTensors: the checks and the
// complex64 / complex128 dispatch that every discretization plugin shares, so
// a plugin writes only its formula for one point.
//
//   ssm::kernels::disc_elementwise(z, a, beta, da, dbeta,
//       [](std::complex<double> z) { return ssm::kernels::DiscPoint{...}; });
#pragma once

#include <ssm/sdk.hpp>

#include <complex>
#include <string>

namespace ssm::kernels {

// a(z), beta(z) and their derivatives a'(z), beta'(z) at one point.
struct DiscPoint {
  std::complex<double> a, beta, da, dbeta;
};

namespace detail {

// Checks one output against z (same dtype, shape, CPU); names it in errors.
// (The host prefixes every message with the plugin's name.)
inline void check_disc_output(const DLTensor& z, const DLTensor& out, const char* name) {
  const std::string who = std::string("output '") + name + "'";
  if (out.device.device_type != kDLCPU) fail(who + " must be on the CPU", SSM_ERR_UNSUPPORTED);
  if (!same_dtype(out.dtype, z.dtype))
    fail(who + " has dtype " + dtype_name(out.dtype) + ", expected " + dtype_name(z.dtype) + " (the dtype of z)");
  bool same_shape = out.ndim == z.ndim;
  for (int i = 0; same_shape && i < z.ndim; ++i) same_shape = out.shape[i] == z.shape[i];
  if (!same_shape) fail(who + " has shape " + shape_str(out) + ", expected " + shape_str(z) + " (the shape of z)");
}

template <class T, class F>
void disc_elementwise_typed(const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta, F& f) {
  using C = std::complex<T>;
  const C* zp = data<C>(z, "input 'z'");
  C* out[4] = {nullptr, nullptr, nullptr, nullptr};
  DLTensor* tensors[4] = {a, beta, da, dbeta};
  const char* names[4] = {"a", "beta", "da", "dbeta"};
  for (int k = 0; k < 4; ++k) {
    if (!tensors[k]) continue;
    check_disc_output(z, *tensors[k], names[k]);
    out[k] = data<C>(*tensors[k], (std::string("output '") + names[k] + "'").c_str());
  }
  const int64_t n = numel(z);
  for (int64_t i = 0; i < n; ++i) {
    // Read z[i] before any write: an output may alias z.
    const DiscPoint p = f(std::complex<double>(zp[i]));
    if (out[0]) out[0][i] = C(p.a);
    if (out[1]) out[1][i] = C(p.beta);
    if (out[2]) out[2][i] = C(p.da);
    if (out[3]) out[3][i] = C(p.dbeta);
  }
}

}  // namespace detail

// Evaluates f (std::complex<double> -> DiscPoint) at every element of z and
// writes the outputs that are not nullptr. z is complex64 or complex128 of any
// shape; complex64 is evaluated in double and rounded once, so one formula
// serves both dtypes and float results carry no cancellation error.
template <class F>
void disc_elementwise(const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta, F f) {
  if (z.device.device_type != kDLCPU) fail("input 'z' must be on the CPU", SSM_ERR_UNSUPPORTED);
  dispatch_complex(z, "input 'z'", [&](auto tag) {
    detail::disc_elementwise_typed<typename decltype(tag)::value_type>(z, a, beta, da, dbeta, f);
  });
}

}  // namespace ssm::kernels
