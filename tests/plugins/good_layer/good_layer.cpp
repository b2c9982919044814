// test_good: y = gain * x, no parameters. The smallest layer the registry
// accepts; the loader tests use it to show the registry still works next to
// broken plugin files.
#include <ssm/sdk.hpp>

class GoodLayer : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {ssm::Option::real("gain", "2.0", "output = gain * input"),
            ssm::Option::integer("d_model", "4", "channels H")};
  }
  explicit GoodLayer(const ssm::Config& cfg) : gain_(cfg.f64("gain")) {}

  std::vector<ssm::ParamSpec> params() override { return {}; }
  void init_params(ssm::Context&, ssm::Params) override {}
  void forward(ssm::Context&, ssm::Params, const DLTensor& x, DLTensor& y) override {
    scale(x, y, "x", "y");
  }
  void backward(ssm::Context&, ssm::Params, const DLTensor& dy, DLTensor& dx, ssm::Params) override {
    scale(dy, dx, "dy", "dx");
  }

 private:
  void scale(const DLTensor& in, DLTensor& out, const char* in_name, const char* out_name) const {
    if (ssm::numel(in) != ssm::numel(out)) ssm::fail(std::string(out_name) + " must have as many elements as " + in_name);
    const float* a = ssm::data<float>(in, in_name);
    float* b = ssm::data<float>(out, out_name);
    for (int64_t i = 0; i < ssm::numel(in); ++i) b[i] = static_cast<float>(gain_) * a[i];
  }
  double gain_;
};

SSM_PLUGIN_LAYER(GoodLayer, "test_good", "0.1.0", "test-only layer: y = gain * x")
