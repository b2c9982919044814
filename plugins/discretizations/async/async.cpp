// "async" (the SAiDL seed's s4a): A stepped by tau*dt, B held by ZOH over dt:
// a = e^{tau z}, beta = phi(z) = (e^z - 1)/z, not tau-scaled (docs/math.md §0).
// The exponential family with tau = the option (ssm/ext/disc_exp.h); phi by
// the stable forms of ssm/kernels/phi.hpp, as zoh.
#include <ssm/ext/disc_exp.h>
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <complex>
#include <cstring>

namespace {

double tau_option(const ssm::Config& cfg) {
  const double tau = cfg.f64_positive("tau");
  if (!std::isfinite(tau)) ssm::fail("option 'tau' must be finite, got " + cfg.str("tau"));
  return tau;
}

class Async : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "a";
  static std::vector<ssm::Option> options() {
    return {ssm::Option::real("tau", "0.1",
                              "A is stepped by tau*dt (a = e^{tau z}), B by ZOH over dt (beta = phi(z)); > 0")};
  }
  explicit Async(const ssm::Config& cfg) : ext_{sizeof(ssm_disc_exp), tau_option(cfg)} {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    const double tau = ext_.tau;
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta,
                                   [tau](std::complex<double> zi) { return ssm::kernels::exp_point(zi, tau); });
  }
  const void* extension(const char* id) override {
    return id && std::strcmp(id, SSM_EXT_DISC_EXP) == 0 ? &ext_ : nullptr;
  }

 private:
  ssm_disc_exp ext_;
};

}  // namespace

SSM_PLUGIN_DISC(Async, "async", "1.0.0", "async: a = e^{tau z} (A stepped by tau*dt), beta = (e^z - 1)/z (ZOH over dt)")
