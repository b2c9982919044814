// Mamba's discretization ("S6"; the table of docs/math.md §0 has the
// others, plugins/layers/s6/README.md this one): a = e^z, beta = 1, i.e.
// Abar = exp(dt A) (exact for A) and Bbar = dt B (Euler for B), as in the
// selective scan's reference and its CUDA kernel. The default scheme of the
// s6 layer, which recognises it by the ssm/ext/disc_exp_euler.h extension and
// then takes its own vectorised path instead of calling eval.
//
// No layer suffix: none of the free letters reads as "S6"; select it with
// --disc s6disc (e.g. an s4d with S6's scheme: --layer s4d --disc s6disc).
#include <ssm/ext/disc_exp_euler.h>
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <complex>
#include <cstring>

namespace {

class S6Disc : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "";
  static std::vector<ssm::Option> options() { return {}; }
  explicit S6Disc(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta, [](std::complex<double> zi) {
      const std::complex<double> ez = std::exp(zi);
      return ssm::kernels::DiscPoint{ez, 1.0, ez, 0.0};
    });
  }
  const void* extension(const char* id) override {
    static const ssm_disc_exp_euler ext{sizeof(ssm_disc_exp_euler)};
    return id && std::strcmp(id, SSM_EXT_DISC_EXP_EULER) == 0 ? &ext : nullptr;
  }
};

}  // namespace

SSM_PLUGIN_DISC(S6Disc, "s6disc", "1.0.0",
                "S6 / Mamba: a = e^z (exact for A), beta = 1 (Euler for B: Bbar = dt B)")
