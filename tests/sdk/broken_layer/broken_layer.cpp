// test_broken_layer: a layer with one deliberate flaw, chosen by the option
// `flaw`, so that the validate_detects_broken_layer test can show that
// `ssmhost validate` catches each one. y[b, l, h] = scale[h] * x[b, l, h].
#include <ssm/sdk.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

class BrokenLayer : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {ssm::Option::integer("d_model", "8", "H"),
            ssm::Option::string("flaw", "none",
                                "none, gradient (dscale doubled), accumulate (dscale overwritten), "
                                "recurrent (step off by one), unwritten (y[last] never written), "
                                "throws (forward fails)")};
  }
  explicit BrokenLayer(const ssm::Config& cfg) : h_(cfg.i64_at_least("d_model", 1)), flaw_(cfg.str("flaw")) {
    static const char* known[] = {"none", "gradient", "accumulate", "recurrent", "unwritten", "throws"};
    bool ok = false;
    for (const char* k : known) ok = ok || flaw_ == k;
    if (!ok) ssm::fail("option 'flaw' must be one of none, gradient, accumulate, recurrent, unwritten, throws");
  }

  std::vector<ssm::ParamSpec> params() override { return {{"scale", {h_}}}; }

  void init_params(ssm::Context&, ssm::Params p) override {
    if (ssm::is<float>(p[0])) init_as<float>(p);
    else init_as<double>(p);
  }
  void forward(ssm::Context&, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    if (flaw_ == "throws") ssm::fail("deliberate failure of test_broken_layer (flaw=throws)");
    if (ssm::is<float>(x)) forward_as<float>(p, x, y);
    else forward_as<double>(p, x, y);
  }
  void backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    if (ssm::is<float>(dy)) backward_as<float>(p, dy, dx, dp);
    else backward_as<double>(p, dy, dx, dp);
  }

  struct State : ssm::LayerState {};
  // Only the `recurrent` flaw has a recurrent mode; otherwise the SDK's
  // default answers "unsupported", which validate reports as SKIP.
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override {
    if (flaw_ != "recurrent") return ssm::Layer::state_create(ctx, p, batch);
    return std::make_unique<State>();
  }
  void step(ssm::Context&, ssm::Params p, ssm::LayerState&, const DLTensor& x_t, DLTensor& y_t) override {
    if (ssm::is<float>(x_t)) step_as<float>(p, x_t, y_t);
    else step_as<double>(p, x_t, y_t);
  }

 private:
  template <class T>
  void init_as(ssm::Params p) {
    for (int64_t h = 0; h < h_; ++h) p.data<T>(0)[h] = T(1) + T(h) / T(h_);
  }
  template <class T>
  void forward_as(ssm::Params p, const DLTensor& x, DLTensor& y) {
    const int64_t n = ssm::numel(x) - (flaw_ == "unwritten" ? 1 : 0);
    const T* xp = ssm::data<T>(x);
    T* yp = ssm::data<T>(y);
    for (int64_t i = 0; i < n; ++i) yp[i] = p.data<T>(0)[i % h_] * xp[i];
    saved_x_.assign(xp, xp + ssm::numel(x));
  }
  template <class T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    const T* dyp = ssm::data<T>(dy);
    T* dxp = ssm::data<T>(dx);
    T* ds = dp.data<T>(0);
    if (flaw_ == "accumulate")
      for (int64_t h = 0; h < h_; ++h) ds[h] = T(0);
    const T factor = flaw_ == "gradient" ? T(2) : T(1);
    for (int64_t i = 0; i < ssm::numel(dy); ++i) {
      dxp[i] = p.data<T>(0)[i % h_] * dyp[i];
      ds[i % h_] += factor * dyp[i] * static_cast<T>(saved_x_[static_cast<size_t>(i)]);
    }
  }
  template <class T>
  void step_as(ssm::Params p, const DLTensor& x_t, DLTensor& y_t) {
    const T* xp = ssm::data<T>(x_t);
    T* yp = ssm::data<T>(y_t);
    for (int64_t i = 0; i < ssm::numel(x_t); ++i) yp[i] = p.data<T>(0)[i % h_] * xp[i] + T(1);
  }

  int64_t h_;
  std::string flaw_;
  std::vector<double> saved_x_;
};

}  // namespace

SSM_PLUGIN_LAYER(BrokenLayer, "test_broken_layer", "1.0.0", "Test only: a layer with a chosen flaw for ssmhost validate")
