// Discretizations that clash with the built-in ones, built three times:
//   shadow_zoh/zoh.so          id "zoh", suffix "z": shadows the built-in zoh by id
//   suffix_clash/clash_z.so    id "test_clash_z", suffix "z": claims zoh's suffix
//   bad_suffix/bad_suffix.so   id "test_bad_suffix", suffix "zz": refused (not one letter)
// Each computes forward Euler (a = 1 + z, beta = 1), so a test can tell it from zoh.
#include <ssm/sdk.hpp>

#include <complex>

class ClashDisc : public ssm::Discretization {
 public:
  static constexpr const char* suffix = SSM_TEST_DISC_SUFFIX;
  static std::vector<ssm::Option> options() { return {}; }
  explicit ClashDisc(const ssm::Config&) {}
  void eval(ssm::Context&, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) override {
    using c = std::complex<double>;
    const c* zin = ssm::data<c>(z, "z");
    for (int64_t i = 0; i < ssm::numel(z); ++i) {
      if (a) ssm::data<c>(*a, "a")[i] = 1.0 + zin[i];
      if (beta) ssm::data<c>(*beta, "beta")[i] = 1.0;
      if (da) ssm::data<c>(*da, "da")[i] = 1.0;
      if (dbeta) ssm::data<c>(*dbeta, "dbeta")[i] = 0.0;
    }
  }
};

SSM_PLUGIN_DISC(ClashDisc, SSM_TEST_DISC_ID, "0.1.0", "test-only forward Euler that clashes with a built-in")
