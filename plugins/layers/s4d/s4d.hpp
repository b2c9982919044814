// S4D: the diagonal state space block of the official S4D example (state-spaces/s4
// models/s4/s4d.py), channel-last (B, L, H) -> (B, L, H):
//
//   y = GLU(Linear_{H->2H}(dropout(GELU(K * u + D u))))
//
// K is the S4D kernel of s4d_kernel.hpp, discretized by a child plugin
// (--disc, zoh by default). Dropout is tied over the sequence (one mask per
// batch element and channel), as the official DropoutNd. Recurrent mode runs
// h <- Abar h + Bbar u_t per token.
//
// Files: this header (the class, its options, parameters and state),
// s4d.cpp (the CPU implementation and the plugin's registration),
// s4d_kernel.hpp (the kernel K and its backward); a CUDA implementation
// goes into s4d.cu beside them (see CMakeLists.txt).
#pragma once

#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "s4_block.hpp"
#include "s4d_kernel.hpp"

namespace s4d {

// Parameter order (param_describe, params, dparams).
enum Param : size_t { kLogDt, kARealLog, kAImag, kB, kC, kD, kWOut, kBOut, kParamCount };

// RNG streams of this layer (under the layer's seed): one per parameter
// (its index) and one for dropout. The counter starts at the call's
// rng_offset, which the host spaces so that calls never overlap.
constexpr uint64_t kDropoutStream = kParamCount;

// What backward needs from the most recent training forward (kept between
// steps so its buffers are not reallocated every step): the SSM's modes and
// powers, and the block's activations (s4_block.hpp, shared with s4).
template <typename T>
struct Cache : s4block::Activations<T> {
  Modes modes;
  Powers powers;
};

// Recurrent state: the modes' states of every (sequence, channel).
struct State : ssm::LayerState {
  int64_t batch = 0, H = 0, N2 = 0;
  std::vector<cd> h;              // (batch, H, N2)
  std::vector<cd> Abar, Bbar, C;  // (H, N2), from the parameters at state_create
};

class S4D : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H"),
        ssm::Option::integer("d_state", "64", "state size N per channel (even: N/2 complex conjugate pairs)"),
        ssm::Option::string("init", "lin", "initial A: lin (S4D-Lin), inv (S4D-Inv) or real (S4D-Real)"),
        ssm::Option::real("dt_min", "0.001", "smallest initial step dt (log-uniform in [dt_min, dt_max])"),
        ssm::Option::real("dt_max", "0.1", "largest initial step dt"),
        ssm::Option::disc("disc", "zoh", "discretization plugin, e.g. zoh or bilinear"),
        ssm::Option::real("lr_ssm", "0.001", "learning-rate cap of log_dt, A and B (no weight decay); 0: none"),
        ssm::Option::real("dropout", "0.0", "dropout after the GELU, one mask per (batch, channel)"),
    };
  }

  explicit S4D(const ssm::Config& cfg);

  std::vector<ssm::ParamSpec> params() override { return specs(); }
  void init_params(ssm::Context& ctx, ssm::Params p) override;
  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override;
  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override;
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override;
  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) override;
  // The SSM convolution kernel K (H, length), without D: `--log-kernels`.
  static constexpr bool has_conv_kernel = true;
  void conv_kernel(ssm::Context& ctx, ssm::Params p, int64_t length, DLTensor& out) override;
  // CUDA (s4d.cu, later): has_cuda and the *_cuda overrides go here.

 private:
  std::vector<ssm::ParamSpec> specs() const;
  template <typename T>
  void init_typed(ssm::Context& ctx, ssm::Params p);
  // The SSM of the parameters: A, B, C, z = dt A and the discretization at z
  // (with a'(z), beta'(z) when `derivatives`), then Bbar, W = C Bbar, log Abar.
  template <typename T>
  void discretize(ssm::Context& ctx, ssm::Params p, Modes& m, bool derivatives);
  template <typename T>
  void check_param_shapes(ssm::Params p) const;
  // (B, L) of a (B, L, H) tensor; `what` names it in errors.
  std::pair<int64_t, int64_t> sequence_shape(const DLTensor& t, const char* what) const;
  template <typename T>
  Cache<T>& training_cache();
  template <typename T>
  void forward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y);
  template <typename T>
  void backward_typed(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp);
  template <typename T>
  void step_typed(ssm::Params p, State& st, const DLTensor& x, DLTensor& y);

  int64_t H_, N_, N2_ = 0;
  std::string init_;
  double dt_min_, dt_max_, lr_ssm_, dropout_;
  ssm::DiscChild disc_;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;  // cache_ holds a complete training forward
};

}  // namespace s4d
