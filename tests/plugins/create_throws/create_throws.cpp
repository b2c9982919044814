// Layers that throw: built as test_ctor_throws (THROW_IN_ctor: the constructor
// throws std::runtime_error) and test_forward_throws (THROW_IN_forward:
// forward throws ssm::Error).
#include <ssm/sdk.hpp>

#include <stdexcept>

class ThrowingLayer : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() { return {}; }
  explicit ThrowingLayer(const ssm::Config&) {
#ifdef THROW_IN_ctor
    throw std::runtime_error("boom from constructor");
#endif
  }
  std::vector<ssm::ParamSpec> params() override { return {}; }
  void init_params(ssm::Context&, ssm::Params) override {}
  void forward(ssm::Context&, ssm::Params, const DLTensor&, DLTensor&) override {
    throw ssm::Error(SSM_ERR_INVALID_ARGUMENT, "boom from forward: x is not what this layer expects");
  }
  void backward(ssm::Context&, ssm::Params, const DLTensor&, DLTensor&, ssm::Params) override {}
};

#ifdef THROW_IN_ctor
SSM_PLUGIN_LAYER(ThrowingLayer, "test_ctor_throws", "0.1.0", "test-only layer whose constructor throws")
#else
SSM_PLUGIN_LAYER(ThrowingLayer, "test_forward_throws", "0.1.0", "test-only layer whose forward throws")
#endif
