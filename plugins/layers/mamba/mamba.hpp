// Mamba: the block of Gu & Dao 2023 (state-spaces/mamba mamba_simple.py)
// with any inner sequence layer, channel-last (B, L, H) -> (B, L, H),
// H = d_model, E = expand, Di = E * H:
//
//   [xc | z] = in_proj(x)                              (2 Di outputs, no bias)
//   u = SiLU(causal depthwise conv1d(xc))              (kernel d_conv = 4, with bias)
//   v = inner(u)                                       (any layer, width Di; default s6)
//   y = out_proj(v * SiLU(z))                          (H outputs, no bias)
//
// The inner layer is a child plugin (ssm::LayerChild, --inner, default s6),
// created with d_model = Di, block = none (the convention for "the bare
// mixer: the composite brings its own projections"; s6 then is the selective
// SSM alone, D skip included, as in Mamba's selective_scan_fn) and, for s6,
// Mamba's dt_rank = ceil(H / 16) of this block. Its parameters follow ours
// under "inner.".
//
// Initialisation (Mamba's): in_proj U(+-1/sqrt(H)); conv1d weight and bias
// PyTorch's Conv1d default U(+-1/sqrt(d_conv)) (Mamba's _init_weights zeroes
// only Linear biases); out_proj U(+-1/sqrt(Di)) / sqrt(n_layers) (its
// prenorm-residual rescale, one residual per layer); the optional Linear
// biases (--bias true) zero; the inner layer its own (s6: Mamba's dt, A, D).
//
// Recurrent mode: the conv state (the last d_conv - 1 inputs of the conv,
// per channel) and the inner layer's state.
#pragma once

#include <ssm/kernels/buffer.hpp>
#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace mamba {

using ssm::Buf;  // uninitialised scratch (ssm/kernels/buffer.hpp)

// What backward needs from the most recent training forward (the inner
// layer keeps its own; the conv's output is recomputed from xc, 4 FMAs per
// element, rather than kept).
template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  Buf<T> x;   // the input (B, L, H)
  Buf<T> xc;  // the conv's input (B, L, Di)
  Buf<T> z;   // the gate's input (B, L, Di)
  Buf<T> v;   // the inner layer's output (B, L, Di)
};

// Recurrent state: the conv's last d_conv - 1 inputs (batch, d_conv - 1, Di)
// and the inner layer's state.
struct State : ssm::LayerState {
  int64_t batch = 0;
  std::vector<float> hist_f;
  std::vector<double> hist_d;
  ssm::ChildState inner;
};

class Mamba : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels H of the block's input and output"),
        ssm::Option::integer("expand", "2", "E: the inner layer's width is E * d_model"),
        ssm::Option::integer("d_conv", "4", "kernel of the causal depthwise convolution"),
        ssm::Option::layer("inner", "s6", "the inner sequence layer, any layer plugin (s6, s4d, s4dz, s4, ...)"),
        ssm::Option::integer("n_layers", "1",
                             "layers of the model: out_proj is initialised / sqrt(n_layers) (a run passes its "
                             "--n-layers)"),
        ssm::Option::integer("dt_rank", "0", "the inner s6's dt rank; 0: ceil(d_model / 16) of this block (Mamba's)"),
        ssm::Option::boolean("bias", "false", "biases in in_proj and out_proj (zero-initialised)"),
    };
  }

  explicit Mamba(const ssm::Config& cfg);

  std::vector<ssm::ParamSpec> params() override;
  void init_params(ssm::Context& ctx, ssm::Params p) override;
  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override;
  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override;
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override;
  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) override;
  bool supports(DLDevice device, DLDataType dtype) override {
    return ssm::Layer::supports(device, dtype) && inner_.supports(device, dtype);
  }

 private:
  std::vector<ssm::ParamSpec> own_specs() const;
  template <typename T>
  void init_typed(ssm::Context& ctx, ssm::Params p);
  template <typename T>
  void check_own_shapes(ssm::Params p) const;
  template <typename T>
  Cache<T>& training_cache();
  // Forward on (B, L, H). With a state (the recurrent mode, L = 1): the conv
  // reads and updates its history, the inner layer steps.
  template <typename T>
  void forward_impl(ssm::Context& ctx, ssm::Params p, const T* x, T* y, int64_t B, int64_t L, State* st);
  template <typename T>
  void backward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp);

  int64_t H_, E_, Di_, K_, n_layers_, dt_rank_;
  bool bias_;
  // Indices of our parameters (the biases only with bias=true).
  size_t kInW_ = 0, kConvW_ = 1, kConvB_ = 2, kOutW_ = 3, kInB_ = 0, kOutB_ = 0, n_own_ = 4;
  ssm::LayerChild inner_;
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace mamba
