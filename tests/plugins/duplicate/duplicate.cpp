// test_dup: built twice (dup_a.so, dup_b.so) so that two files claim one id.
#include <ssm/sdk.hpp>

class DupLayer : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() { return {}; }
  explicit DupLayer(const ssm::Config&) {}
  std::vector<ssm::ParamSpec> params() override { return {}; }
  void init_params(ssm::Context&, ssm::Params) override {}
  void forward(ssm::Context&, ssm::Params, const DLTensor&, DLTensor&) override {}
  void backward(ssm::Context&, ssm::Params, const DLTensor&, DLTensor&, ssm::Params) override {}
};

SSM_PLUGIN_LAYER(DupLayer, "test_dup", "0.1.0", "test-only layer whose id is claimed twice")
