// Zero-order hold: a = e^z, beta = phi(z) = (e^z - 1)/z (docs/math.md §0).
// The exponential family with tau = 1 (ssm/ext/disc_exp.h); phi by the stable
// forms of ssm/kernels/phi.hpp.
#include <ssm/ext/disc_exp.h>
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <complex>
#include <cstring>

namespace {

class Zoh : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "z";
  static std::vector<ssm::Option> options() { return {}; }
  explicit Zoh(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta,
                                   [](std::complex<double> zi) { return ssm::kernels::exp_point(zi, 1.0); });
  }
  const void* extension(const char* id) override {
    static const ssm_disc_exp exp_ext{sizeof(ssm_disc_exp), 1.0};
    return id && std::strcmp(id, SSM_EXT_DISC_EXP) == 0 ? &exp_ext : nullptr;
  }
};

}  // namespace

SSM_PLUGIN_DISC(Zoh, "zoh", "1.0.0", "Zero-order hold: a = e^z, beta = (e^z - 1)/z, with stable small-|z| series")
