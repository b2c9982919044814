// example_moving_average: a learnable causal moving average, the example
// third-party layer plugin of the ssmhost SDK. Copy this folder to start your own.
//
//   y[b, l, h] = bias[h] + sum_{j < W} taps[h, j] * x[b, l - j, h]     (x[b, l < 0, h] = 0)
//
// Each channel h has its own W taps (a causal FIR filter, a depthwise
// convolution). It starts as a plain moving average (taps = 1/W) and learns.
//
// What it shows: options, parameters with optimizer hints, initialisation
// from the host's RNG, forward (caching its input for backward), backward
// (dx overwritten, parameter gradients accumulated), a recurrent mode (a ring
// buffer of the last W inputs), float32 and float64. It uses only ssm/sdk.hpp.
#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace {

class MovingAverage : public ssm::Layer {
 public:
  // The options the layer accepts, shown by `ssmhost info example_moving_average`.
  // d_model is set by the host for every layer of a model (--d-model).
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "H: channels of the (B, L, H) input and output"),
        ssm::Option::integer("window", "4", "W: how many past tokens (the current one included) each output sees"),
    };
  }

  // Reads and checks the options; a bad value throws with a message naming it.
  explicit MovingAverage(const ssm::Config& cfg)
      : channels_(cfg.i64_at_least("d_model", 1)), window_(cfg.i64_at_least("window", 1)) {}

  // Parameter 0: taps (H, W). Parameter 1: bias (H), kept out of weight decay.
  // The host allocates both (and their gradients) in this order and hands
  // them to every call.
  std::vector<ssm::ParamSpec> params() override {
    ssm::ParamSpec taps{"taps", {channels_, window_}};
    ssm::ParamSpec bias{"bias", {channels_}};
    bias.flags = SSM_PARAM_NO_WEIGHT_DECAY;
    bias.weight_decay = 0.0;
    return {taps, bias};
  }

  // A moving average plus a little noise (so channels differ), bias 0. The
  // noise comes from the host's counter-based RNG: same seed, same weights.
  void init_params(ssm::Context& ctx, ssm::Params p) override {
    ssm::dispatch_real(p[0], "taps", [&](auto tag) { init_as<decltype(tag)>(ctx, p); });
  }

  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
    check_io(x, y, "x", "y");
    ssm::dispatch_real(x, "x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
  }

  void backward(ssm::Context&, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override {
    check_io(dy, dx, "dy", "dx");
    ssm::dispatch_real(dy, "dy", [&](auto tag) { backward_as<decltype(tag)>(p, dy, dx, dp); });
  }

  // Recurrent mode: the last W inputs of every (sequence, channel).
  struct State : ssm::LayerState {
    std::vector<double> history;  // (batch, H, W) ring buffer, zero before the first token
    int64_t batch = 0;
    int64_t t = 0;  // tokens seen so far
  };

  std::unique_ptr<ssm::LayerState> state_create(ssm::Context&, ssm::Params, int64_t batch) override {
    if (batch < 1) ssm::fail("state_create: batch must be >= 1, got " + std::to_string(batch));
    auto s = std::make_unique<State>();
    s->batch = batch;
    s->history.assign(static_cast<size_t>(batch * channels_ * window_), 0.0);
    return s;
  }

  void step(ssm::Context&, ssm::Params p, ssm::LayerState& state, const DLTensor& x_t, DLTensor& y_t) override {
    State& s = static_cast<State&>(state);
    ssm::check_shape(x_t, {s.batch, channels_}, "x_t");
    ssm::check_shape(y_t, {s.batch, channels_}, "y_t");
    if (!ssm::same_dtype(x_t.dtype, y_t.dtype)) ssm::fail("x_t and y_t must have the same dtype");
    ssm::dispatch_real(x_t, "x_t", [&](auto tag) { step_as<decltype(tag)>(p, s, x_t, y_t); });
  }

 private:
  // x and y (or dy and dx): (B, L, H), same shape, same dtype (dispatch_real
  // then turns that dtype, float32 or float64, into T, or refuses it).
  void check_io(const DLTensor& in, const DLTensor& out, const char* in_name, const char* out_name) const {
    ssm::check_shape(in, {-1, -1, channels_}, in_name);
    ssm::check_shape(out, {in.shape[0], in.shape[1], channels_}, out_name);
    if (!ssm::same_dtype(in.dtype, out.dtype)) ssm::fail(std::string(out_name) + " must have " + in_name + "'s dtype");
  }

  template <class T>
  void init_as(ssm::Context& ctx, ssm::Params p) {
    T* taps = p.data<T>(0);
    T* bias = p.data<T>(1);
    ctx.rng_fill(/*stream=*/0, /*offset=*/0, SSM_RNG_NORMAL, p[0]);
    const double mean = 1.0 / static_cast<double>(window_);
    for (int64_t i = 0; i < channels_ * window_; ++i) taps[i] = static_cast<T>(mean + 0.1 * mean * taps[i]);
    for (int64_t h = 0; h < channels_; ++h) bias[h] = T(0);
  }

  // Sums in double in both forward and step, in the same order, so that the
  // recurrent mode reproduces forward exactly.
  template <class T>
  void forward_as(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) {
    const T* xp = ssm::data<T>(x, "x");
    T* yp = ssm::data<T>(y, "y");
    const T* taps = p.data<T>(0);
    const T* bias = p.data<T>(1);
    const int64_t B = x.shape[0], L = x.shape[1], H = channels_, W = window_;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < H; ++h) {
          double acc = 0;
          for (int64_t j = 0; j < W && j <= l; ++j) acc += double(taps[h * W + j]) * double(xp[(b * L + l - j) * H + h]);
          yp[(b * L + l) * H + h] = static_cast<T>(acc + double(bias[h]));
        }
    // Backward needs x: keep a copy, but only when training (inference must
    // not pay for it).
    if (ctx.training()) {
      saved_x_.assign(xp, xp + B * L * H);
      saved_batch_ = B;
      saved_len_ = L;
    }
  }

  // dx is overwritten; dtaps and dbias are accumulated (+=), because the host
  // may sum gradients over several calls before an optimizer step.
  template <class T>
  void backward_as(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) {
    const int64_t B = dy.shape[0], L = dy.shape[1], H = channels_, W = window_;
    if (saved_x_.empty() || B != saved_batch_ || L != saved_len_)
      ssm::fail("backward needs a training forward (ctx.training = 1) of the same shape first");
    const T* dyp = ssm::data<T>(dy, "dy");
    T* dxp = ssm::data<T>(dx, "dx");
    const T* taps = p.data<T>(0);
    T* dtaps = dp.data<T>(0);
    T* dbias = dp.data<T>(1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t l = 0; l < L; ++l)
        for (int64_t h = 0; h < H; ++h) {
          // x[b, l, h] reaches y[b, l + j, h] through taps[h, j].
          double acc = 0;
          for (int64_t j = 0; j < W && l + j < L; ++j) acc += double(taps[h * W + j]) * double(dyp[(b * L + l + j) * H + h]);
          dxp[(b * L + l) * H + h] = static_cast<T>(acc);
        }
    for (int64_t h = 0; h < H; ++h) {
      double db = 0;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t l = 0; l < L; ++l) db += double(dyp[(b * L + l) * H + h]);
      dbias[h] += static_cast<T>(db);
      for (int64_t j = 0; j < W; ++j) {
        double dw = 0;
        for (int64_t b = 0; b < B; ++b)
          for (int64_t l = j; l < L; ++l) dw += double(dyp[(b * L + l) * H + h]) * saved_x_[(b * L + l - j) * H + h];
        dtaps[h * W + j] += static_cast<T>(dw);
      }
    }
  }

  template <class T>
  void step_as(ssm::Params p, State& s, const DLTensor& x_t, DLTensor& y_t) {
    const T* xp = ssm::data<T>(x_t, "x_t");
    T* yp = ssm::data<T>(y_t, "y_t");
    const T* taps = p.data<T>(0);
    const T* bias = p.data<T>(1);
    const int64_t H = channels_, W = window_;
    const int64_t slot = s.t % W;  // where x_t goes; x_{t-j} sits j slots back
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t h = 0; h < H; ++h) {
        double* ring = &s.history[static_cast<size_t>((b * H + h) * W)];
        ring[slot] = double(xp[b * H + h]);
        double acc = 0;
        for (int64_t j = 0; j < W && j <= s.t; ++j) acc += double(taps[h * W + j]) * ring[(slot - j + W) % W];
        yp[b * H + h] = static_cast<T>(acc + double(bias[h]));
      }
    ++s.t;
  }

  int64_t channels_, window_;
  std::vector<double> saved_x_;  // the last training forward's x, for backward
  int64_t saved_batch_ = 0, saved_len_ = 0;
};

}  // namespace

// Defines ssm_plugin_entry, the library's one exported symbol.
SSM_PLUGIN_LAYER(MovingAverage, "example_moving_average", "1.0.0",
                 "Example: learnable causal moving average y = bias + sum_j taps[j] x[l-j] (the SDK's example plugin)")
