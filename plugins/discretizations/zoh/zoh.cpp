// Zero-order hold: a = e^z, beta = phi(z) = (e^z - 1)/z (docs/math.md §0).
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <complex>

namespace {

using cd = std::complex<double>;

// e^z - 1 without the cancellation of exp(z) - 1 near 0:
// expm1(x+iy) = expm1(x) cos y - 2 sin^2(y/2) + i e^x sin y.
cd expm1_complex(cd z) {
  const double x = z.real(), y = z.imag();
  const double s = std::sin(y / 2);
  return {std::expm1(x) * std::cos(y) - 2 * s * s, std::exp(x) * std::sin(y)};
}

// Below this |z| the Taylor series are used: beta' = (e^z - phi)/z loses
// about eps/|z| to cancellation, and the series' first omitted terms
// (z^4/120, z^4/144) stay below 1e-14 here.
constexpr double kSeriesBelow = 1e-3;

ssm::kernels::DiscPoint zoh_point(cd z) {
  const cd ez = std::exp(z);
  cd phi, dphi;
  if (std::abs(z) < kSeriesBelow) {
    phi = 1.0 + z * (1.0 / 2 + z * (1.0 / 6 + z * (1.0 / 24)));
    dphi = 1.0 / 2 + z * (1.0 / 3 + z * (1.0 / 8 + z * (1.0 / 30)));
  } else {
    phi = expm1_complex(z) / z;
    dphi = (ez - phi) / z;
  }
  return {ez, phi, ez, dphi};
}

class Zoh : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "z";
  static std::vector<ssm::Option> options() { return {}; }
  explicit Zoh(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta, zoh_point);
  }
};

}  // namespace

SSM_PLUGIN_DISC(Zoh, "zoh", "1.0.0", "Zero-order hold: a = e^z, beta = (e^z - 1)/z, with stable small-|z| series")
