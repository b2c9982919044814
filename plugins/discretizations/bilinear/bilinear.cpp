// Bilinear (Tustin): a = (1 + z/2)/(1 - z/2), beta = 1/(1 - z/2) (docs/math.md §0).
#include <ssm/kernels/elementwise.hpp>
#include <ssm/sdk.hpp>

#include <complex>

namespace {

using cd = std::complex<double>;

ssm::kernels::DiscPoint bilinear_point(cd z) {
  const cd beta = 1.0 / (1.0 - z / 2.0);
  const cd beta2 = beta * beta;
  return {(1.0 + z / 2.0) * beta, beta, beta2, 0.5 * beta2};
}

class Bilinear : public ssm::Discretization {
 public:
  static constexpr const char* suffix = "b";
  static std::vector<ssm::Option> options() { return {}; }
  explicit Bilinear(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    ssm::kernels::disc_elementwise(z, a, beta, da, dbeta, bilinear_point);
  }
};

}  // namespace

SSM_PLUGIN_DISC(Bilinear, "bilinear", "1.0.0", "Bilinear (Tustin): a = (1 + z/2)/(1 - z/2), beta = 1/(1 - z/2)")
