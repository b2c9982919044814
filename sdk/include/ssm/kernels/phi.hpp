// phi(z) = (e^z - 1)/z and its derivative phi'(z) = (e^z - phi(z))/z for
// complex z, without the cancellation of the direct formulas near z = 0
// (docs/math.md §0, "Numerically stable forms near z = 0"). Header-only and
// free of the rest of the SDK, so a layer can use it as well as a
// discretization (ZOH's beta, the "async" scheme's beta).
//
//   const ssm::kernels::PhiPoint p = ssm::kernels::phi_point(z);  // p.phi, p.dphi
#pragma once

#include <cmath>
#include <complex>

namespace ssm::kernels {

// e^z - 1 without the cancellation of exp(z) - 1 near 0:
// expm1(x+iy) = expm1(x) cos y - 2 sin^2(y/2) + i e^x sin y.
inline std::complex<double> expm1_complex(std::complex<double> z) {
  const double x = z.real(), y = z.imag();
  const double s = std::sin(y / 2);
  return {std::expm1(x) * std::cos(y) - 2 * s * s, std::exp(x) * std::sin(y)};
}

// Below this |z| the Taylor series are used: phi' = (e^z - phi)/z loses
// about eps/|z| to cancellation, and the series' first omitted terms
// (z^4/120, z^4/144) stay below 1e-14 here.
inline constexpr double kPhiSeriesBelow = 1e-3;

// phi(z) and phi'(z) at one point.
struct PhiPoint {
  std::complex<double> phi, dphi;
};

// phi and phi' at z; e^z (which phi' needs above the series threshold) is
// passed in when the caller has it already.
inline PhiPoint phi_point(std::complex<double> z, std::complex<double> ez) {
  if (std::abs(z) < kPhiSeriesBelow)
    return {1.0 + z * (1.0 / 2 + z * (1.0 / 6 + z * (1.0 / 24))),
            1.0 / 2 + z * (1.0 / 3 + z * (1.0 / 8 + z * (1.0 / 30)))};
  const std::complex<double> phi = expm1_complex(z) / z;
  return {phi, (ez - phi) / z};
}
inline PhiPoint phi_point(std::complex<double> z) { return phi_point(z, std::exp(z)); }

}  // namespace ssm::kernels
