// test_broken_layer: a layer with one deliberate flaw, chosen by the option
// `flaw`, so that the validate_detects_broken_layer test can show that
// `ssmhost validate` catches each one and names the culprit.
//
//   y[b, l, h] = scale[h] * x[b, l, h]
//
// with a recurrent mode (y_t = scale * x_t) unless `recurrent` is false.
#include <ssm/sdk.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace {

// The channel the `channel` flaw gets wrong, the token after which `drift`
// drifts, the position `long_nan` poisons.
constexpr int64_t kBadChannel = 37;
constexpr int64_t kDriftAfter = 100;
constexpr int64_t kNaNPosition = 16000;

const char* const kFlaws[] = {
    "none",       // flawless
    "gradient",   // dscale doubled
    "accumulate", // dscale overwritten instead of added to
    "recurrent",  // step off by one
    "unwritten",  // y[last] never written
    "throws",     // forward fails
    "f32_sign",   // float32 backward only: dscale with the wrong sign
    "channel",    // dx of channel 37 (of 64) off by 1%
    "drift",      // step drifts after token 100
    "long_nan",   // forward writes NaN at position 16000 (only when L > 16000)
    "hidden",     // an offset drawn in init_params kept in the instance, not in the parameters
};

class BrokenLayer : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    std::string flaws;
    for (const char* f : kFlaws) flaws += (flaws.empty() ? "" : ", ") + std::string(f);
    return {ssm::Option::integer("d_model", "8", "H"),
            ssm::Option::string("flaw", "none", "one of " + flaws + " (see broken_layer.cpp)"),
            ssm::Option::boolean("recurrent", "true", "offer a recurrent mode (state_create, step)")};
  }
  explicit BrokenLayer(const ssm::Config& cfg)
      : h_(cfg.i64_at_least("d_model", 1)), flaw_(cfg.str("flaw")), recurrent_(cfg.flag("recurrent")) {
    bool ok = false;
    std::string flaws;
    for (const char* k : kFlaws) {
      ok = ok || flaw_ == k;
      flaws += (flaws.empty() ? "" : ", ") + std::string(k);
    }
    if (!ok) ssm::fail("option 'flaw' must be one of " + flaws + ", got '" + flaw_ + "'");
  }

  std::vector<ssm::ParamSpec> params() override { return {{"scale", {h_}}}; }

  void init_params(ssm::Context& ctx, ssm::Params p) override {
    if (ssm::is<float>(p[0])) init_as<float>(p);
    else init_as<double>(p);
    // flaw=hidden: state that belongs in a parameter, drawn here and kept in
    // the instance; a second instance given the same parameters lacks it.
    if (flaw_ == "hidden") {
      std::vector<double> offset(static_cast<size_t>(h_));
      ssm::View v(offset.data(), {h_});
      ctx.rng_fill(0, 0, SSM_RNG_NORMAL, v);
      hidden_offset_ = offset;
    }
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

  struct State : ssm::LayerState {
    int64_t t = 0;  // tokens seen
  };
  // Without a recurrent mode the SDK's default answers "unsupported", which
  // validate reports as SKIP.
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override {
    if (!recurrent_) return ssm::Layer::state_create(ctx, p, batch);
    return std::make_unique<State>();
  }
  void step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    if (ssm::is<float>(x_t)) step_as<float>(p, s, x_t, y_t);
    else step_as<double>(p, s, x_t, y_t);
    ++s.t;
  }

 private:
  double offset(int64_t h) const {
    return hidden_offset_.empty() ? 0.0 : hidden_offset_[static_cast<size_t>(h)];
  }

  template <class T>
  void init_as(ssm::Params p) {
    for (int64_t h = 0; h < h_; ++h) p.data<T>(0)[h] = T(1) + T(h) / T(h_);
  }
  template <class T>
  void forward_as(ssm::Params p, const DLTensor& x, DLTensor& y) {
    const int64_t n = ssm::numel(x) - (flaw_ == "unwritten" ? 1 : 0);
    const T* xp = ssm::data<T>(x);
    T* yp = ssm::data<T>(y);
    for (int64_t i = 0; i < n; ++i) yp[i] = p.data<T>(0)[i % h_] * xp[i] + static_cast<T>(offset(i % h_));
    const int64_t L = x.ndim == 3 ? x.shape[1] : 0;
    if (flaw_ == "long_nan" && L > kNaNPosition)
      for (int64_t b = 0; b < x.shape[0]; ++b) yp[(b * L + kNaNPosition) * h_] = std::numeric_limits<T>::quiet_NaN();
    saved_x_.assign(xp, xp + ssm::numel(x));
  }
  template <class T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    const T* dyp = ssm::data<T>(dy);
    T* dxp = ssm::data<T>(dx);
    T* ds = dp.data<T>(0);
    if (flaw_ == "accumulate")
      for (int64_t h = 0; h < h_; ++h) ds[h] = T(0);
    T factor = flaw_ == "gradient" ? T(2) : T(1);
    if (flaw_ == "f32_sign" && ssm::is<float>(dy)) factor = T(-1);
    for (int64_t i = 0; i < ssm::numel(dy); ++i) {
      const int64_t h = i % h_;
      dxp[i] = p.data<T>(0)[h] * dyp[i] * (flaw_ == "channel" && h == kBadChannel ? T(1.01) : T(1));
      ds[h] += factor * dyp[i] * static_cast<T>(saved_x_[static_cast<size_t>(i)]);
    }
  }
  template <class T>
  void step_as(ssm::Params p, const State& s, const DLTensor& x_t, DLTensor& y_t) {
    const T* xp = ssm::data<T>(x_t);
    T* yp = ssm::data<T>(y_t);
    T extra = T(0);
    if (flaw_ == "recurrent") extra = T(1);
    if (flaw_ == "drift" && s.t > kDriftAfter) extra = static_cast<T>(1e-3 * static_cast<double>(s.t - kDriftAfter));
    for (int64_t i = 0; i < ssm::numel(x_t); ++i)
      yp[i] = p.data<T>(0)[i % h_] * xp[i] + static_cast<T>(offset(i % h_)) + extra;
  }

  int64_t h_;
  std::string flaw_;
  bool recurrent_;
  std::vector<double> saved_x_;
  std::vector<double> hidden_offset_;
};

}  // namespace

SSM_PLUGIN_LAYER(BrokenLayer, "test_broken_layer", "1.0.0", "Test only: a layer with a chosen flaw for ssmhost validate")
