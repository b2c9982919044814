// example_residual_wrapper: a composite layer, the SDK's example of a layer
// that owns another one (the pattern of Mamba's --inner s6 and H3's inner SSM).
//
//   y[b, l, h] = x[b, l, h] + alpha[h] * inner(x)[b, l, h]
//
// `inner` is any layer plugin, named at run time: --inner s4d, --inner s4dz
// (with a discretization suffix), --inner example_moving_average, ...
//
// What it shows: an option that names a plugin (ssm::Option::layer, so the
// host checks the name and records the inner plugin in the run log), an
// ssm::LayerChild whose parameters appear in this layer's list as "inner.*"
// with their own optimizer hints, the child's share of the parameters and
// gradients, the child's own seed (its initialisation and dropout never
// collide with ours), nested recurrent state, and supports() that asks the child.
#include <ssm/sdk.hpp>

#include <memory>
#include <string>
#include <vector>

namespace {

class ResidualWrapper : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "H: channels of the (B, L, H) input and output"),
        ssm::Option::layer("inner", "s4d", "the wrapped layer, any layer plugin (a suffix picks its discretization)"),
        ssm::Option::real("alpha_init", "1.0", "initial gain of the inner branch, every channel"),
    };
  }

  // The child gets every option this layer got (d_model, d_state, --disc,
  // ...), so the user configures the inner layer with its own flags.
  explicit ResidualWrapper(const ssm::Config& cfg)
      : channels_(cfg.i64_at_least("d_model", 1)),
        alpha_init_(cfg.f64("alpha_init")),
        inner_(cfg.str("inner"), cfg, "inner.") {}

  // alpha (H), then the inner layer's parameters under "inner.".
  std::vector<ssm::ParamSpec> params() override {
    std::vector<ssm::ParamSpec> p = {{"alpha", {channels_}}};
    p[0].flags = SSM_PARAM_NO_WEIGHT_DECAY;
    inner_.append_params(p);
    return p;
  }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "alpha", [&](auto tag) {
      using T = decltype(tag);
      T* alpha = p.data<T>(0);
      for (int64_t h = 0; h < channels_; ++h) alpha[h] = static_cast<T>(alpha_init_);
    });
    inner_.init_params(ctx, p);  // the child's share, with the child's seed
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    ssm::check_shape(x, {-1, -1, channels_}, "x");
    ssm::check_shape(y, {x.shape[0], x.shape[1], channels_}, "y");
    ssm::dispatch_real(x, "x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
  }

  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    ssm::dispatch_real(dy, "dy", [&](auto tag) { backward_as<decltype(tag)>(ctx, p, dy, dx, dp); });
  }

  // Our state is the inner layer's state: y_t = x_t + alpha * inner_step(x_t).
  struct State : ssm::LayerState {
    ssm::ChildState inner;
    int64_t batch = 0;
  };

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override {
    auto s = std::make_unique<State>();
    s->inner = inner_.state_create(ctx, p, batch);
    s->batch = batch;
    return s;
  }

  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    ssm::check_shape(x_t, {s.batch, channels_}, "x_t");
    ssm::check_shape(y_t, {s.batch, channels_}, "y_t");
    ssm::dispatch_real(x_t, "x_t", [&](auto tag) {
      using T = decltype(tag);
      std::vector<T> u(static_cast<size_t>(s.batch * channels_));
      ssm::View uv(u.data(), {s.batch, channels_});
      inner_.step(ctx, p, s.inner, x_t, uv);
      combine<T>(p, ssm::data<T>(x_t, "x_t"), u.data(), ssm::data<T>(y_t, "y_t"), s.batch);
    });
  }

  // We serve what we and the inner layer both serve.
  bool supports(DLDevice device, DLDataType dtype) override {
    return ssm::Layer::supports(device, dtype) && inner_.supports(device, dtype);
  }

 private:
  template <class T>
  void combine(ssm::Params p, const T* x, const T* u, T* y, int64_t rows) const {
    const T* alpha = p.data<T>(0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < channels_; ++h) y[r * channels_ + h] = x[r * channels_ + h] + alpha[h] * u[r * channels_ + h];
  }

  template <class T>
  void forward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
    const int64_t rows = x.shape[0] * x.shape[1];
    std::vector<T> u(static_cast<size_t>(rows * channels_));
    ssm::View uv(u.data(), {x.shape[0], x.shape[1], channels_});
    inner_.forward(ctx, p, x, uv);
    combine<T>(p, ssm::data<T>(x, "x"), u.data(), ssm::data<T>(y, "y"), rows);
    if (ctx.training()) saved_u_.assign(u.begin(), u.end());  // dalpha needs inner(x)
  }

  // dy -> du = alpha * dy (into the inner layer's backward) and dx = dy + dx_inner.
  template <class T>
  void backward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    ssm::check_shape(dy, {-1, -1, channels_}, "dy");
    ssm::check_shape(dx, {dy.shape[0], dy.shape[1], channels_}, "dx");
    const int64_t rows = dy.shape[0] * dy.shape[1], n = rows * channels_;
    if (static_cast<int64_t>(saved_u_.size()) != n)
      ssm::fail("backward needs a training forward (ctx.training = 1) of the same shape first");
    const T* alpha = p.data<T>(0);
    const T* g = ssm::data<T>(dy, "dy");
    T* dalpha = dp.data<T>(0);
    std::vector<T> du(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t h = 0; h < channels_; ++h) {
        du[r * channels_ + h] = alpha[h] * g[r * channels_ + h];
        dalpha[h] += static_cast<T>(double(g[r * channels_ + h]) * saved_u_[r * channels_ + h]);
      }
    ssm::View duv(du.data(), {dy.shape[0], dy.shape[1], channels_});
    inner_.backward(ctx, p, duv, dx, dp);  // dx = d inner / dx, inner's dparams accumulate
    T* dxp = ssm::data<T>(dx, "dx");
    for (int64_t i = 0; i < n; ++i) dxp[i] += g[i];
  }

  int64_t channels_;
  double alpha_init_;
  ssm::LayerChild inner_;
  std::vector<double> saved_u_;  // inner(x) of the last training forward
};

}  // namespace

SSM_PLUGIN_LAYER(ResidualWrapper, "example_residual_wrapper", "1.0.0",
                 "Example composite layer: y = x + alpha * inner(x), any --inner layer (the SDK's composite example)")
