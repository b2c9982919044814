// Forward Euler ("dirac"): a = 1 + z, beta = 1 (docs/math.md §0).
// The generalized bilinear family with alpha = 0 (ssm/ext/disc_gbt.h). Stable
// only while |1 + z| < 1: with S4D-Lin's large |Im A| keep dt small.
#include <ssm/ext/disc_gbt.h>
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <complex>
#include <cstring>

namespace {

constexpr double kAlpha = 0.0;

class Dirac : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "e";
  static std::vector<ssm::Option> options() { return {}; }
  explicit Dirac(const ssm::Config&) {}
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

SSM_PLUGIN_DISC(Dirac, "dirac", "1.0.0", "Forward Euler: a = 1 + z, beta = 1 (stable only while |1 + z| < 1)")
