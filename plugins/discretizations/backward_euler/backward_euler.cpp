// Backward Euler: a = beta = 1/(1 - z) (docs/math.md §0).
// The generalized bilinear family with alpha = 1 (ssm/ext/disc_gbt.h).
#include <ssm/ext/disc_gbt.h>
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <complex>
#include <cstring>

namespace {

constexpr double kAlpha = 1.0;

class BackwardEuler : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "i";
  static std::vector<ssm::Option> options() { return {}; }
  explicit BackwardEuler(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta,
                                   [](std::complex<double> zi) { return ssm::kernels::gbt_point(zi, kAlpha); });
  }
  const void* extension(const char* id) override {
    static const ssm_disc_gbt gbt{sizeof(ssm_disc_gbt), kAlpha};
    return id && std::strcmp(id, SSM_EXT_DISC_GBT) == 0 ? &gbt : nullptr;
  }
};

}  // namespace

SSM_PLUGIN_DISC(BackwardEuler, "backward_euler", "1.0.0", "Backward Euler: a = beta = 1/(1 - z)")
