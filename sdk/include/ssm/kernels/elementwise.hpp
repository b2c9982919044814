// Elementwise discretization maps over DLTensors: the checks and the
// complex64 / complex128 dispatch that every discretization plugin shares, so
// a plugin writes only its formula for one point.
//
//   ssm::kernels::disc_elementwise(z, a, beta, da, dbeta,
//       [](std::complex<double> z) { return ssm::kernels::DiscPoint{...}; });
//
// It also holds the two families of schemes the built-in plugins share
// (docs/math.md §0), each also declared to layers through an extension:
//   gbt_point(z, alpha)  generalized bilinear (ssm/ext/disc_gbt.h): forward
//                        Euler (alpha 0), bilinear (1/2), backward Euler (1)
//   exp_point(z, tau)    a = e^{tau z}, beta = phi(z) (ssm/ext/disc_exp.h):
//                        ZOH (tau 1), "async" (tau its option)
#pragma once

#include <ssm/kernels/phi.hpp>
#include <ssm/sdk.hpp>

#include <complex>
#include <string>

namespace ssm::kernels {

// a(z), beta(z) and their derivatives a'(z), beta'(z) at one point.
struct DiscPoint {
  std::complex<double> a, beta, da, dbeta;
};

// The generalized bilinear family, for alpha in [0, 1]:
//   a = (1 + (1 - alpha) z)/(1 - alpha z),  beta = 1/(1 - alpha z),
//   a' = 1/(1 - alpha z)^2,                 beta' = alpha/(1 - alpha z)^2.
// No cancellation anywhere; the only pole, z = 1/alpha, has Re z > 0.
// alpha = 0 gives a = 1 + z, beta = 1, a' = 1, beta' = 0 exactly.
inline DiscPoint gbt_point(std::complex<double> z, double alpha) {
  const std::complex<double> beta = 1.0 / (1.0 - alpha * z);
  const std::complex<double> beta2 = beta * beta;
  return {(1.0 + (1.0 - alpha) * z) * beta, beta, beta2, alpha * beta2};
}

// The exponential family: a = e^{tau z}, a' = tau e^{tau z}, beta = phi(z),
// beta' = phi'(z) (not tau-scaled), phi by the stable forms of phi.hpp.
// tau = 1 is ZOH (a' = a = e^z).
inline DiscPoint exp_point(std::complex<double> z, double tau) {
  const std::complex<double> ez = std::exp(z);
  const PhiPoint p = phi_point(z, ez);
  if (tau == 1.0) return {ez, p.phi, ez, p.dphi};
  const std::complex<double> a = std::exp(tau * z);
  return {a, p.phi, tau * a, p.dphi};
}

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
