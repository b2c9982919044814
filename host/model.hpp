// The model the trainer runs: encoder -> n_layers x residual block around a
// layer plugin (pre- or post-norm, LayerNorm or RMSNorm, dropout) -> final
// norm (pre-norm only) -> read-out -> decoder. Hand-written backward, float32.
#pragma once

#include <ssm/abi.h>

#include <memory>
#include <string>
#include <vector>

#include "registry.hpp"
#include "tensor.hpp"

namespace ssmhost {

struct Parameter {
  std::string name;  // e.g. "block2.layer.log_dt"
  Tensor value, grad;
  uint32_t flags = 0;        // SSM_PARAM_*
  double lr_max = 0;         // > 0: lr = min(run lr, lr_max)
  double weight_decay = -1;  // >= 0: own weight decay
};

struct ModelConfig {
  std::string layer;  // layer plugin name, possibly with a disc suffix
  KV layer_config;    // passed to every layer plugin (d_model, d_state, dropout, disc, ...)
  int64_t d_model = 64;
  int64_t n_layers = 2;
  double dropout = 0;
  bool prenorm = false;
  std::string norm = "layer";  // "layer" or "rms"
  ssm_task_info task{};
  uint64_t seed = 0;
  int threads = 1;
};

class Model {
 public:
  Model(Registry& reg, const ModelConfig& cfg);
  ~Model();

  // x: (B, L) int32 tokens or (B, L, C) float32. Returns the logits as
  // (rows, n_out), rows = B (mean/last) or B*M (last M) or B*L (all).
  const Tensor& forward(const Tensor& x, bool training, uint64_t step);
  // dlogits like forward's result; accumulates every parameter's gradient.
  void backward(const Tensor& dlogits);
  void zero_grad();

  std::vector<Parameter>& params() { return params_; }
  int64_t n_params() const;
  const ModelConfig& config() const { return cfg_; }
  // Layer plugin id/version and discretization, for the run log.
  std::string layer_id() const;
  std::string layer_version() const;
  // Rows of targets the logits correspond to per example (1, M or L).
  int64_t targets_per_example() const;
  // The convolution kernels of the blocks' layers (ssm/ext/layer_kernel.h):
  // per block, the first `channels` channels x `length` lags, row-major; an
  // empty vector for a block whose layer has no kernel. Empty when none has.
  std::vector<std::vector<double>> conv_kernels(int64_t length, int64_t channels) const;

  // Recurrent mode, one position at a time, for tasks that score every
  // position (read-out 'all'): generation. step_reset(B) starts B fresh
  // sequences (each layer's state_create); step(x_t) takes x_t as (B) int32
  // tokens or (B, C) float32 and returns that position's logits (B, n_out),
  // equal to forward's row for it. Inference only: no dropout, and a
  // backward needs a training forward after it.
  void step_reset(int64_t batch);
  const Tensor& step(const Tensor& x_t);

 private:
  struct Block;
  void add_param(const std::string& name, std::vector<int64_t> shape, uint32_t flags = 0, double lr_max = 0,
                 double weight_decay = -1);
  float* p(size_t i) { return params_[i].value.data<float>(); }
  float* g(size_t i) { return params_[i].grad.data<float>(); }
  void norm_forward(size_t block, const float* x, float* y, int64_t rows);
  void norm_backward(size_t block, const float* x, const float* dy, float* dx, int64_t rows);
  void encode(const Tensor& x, float* out, int64_t rows);
  void free_states();

  ModelConfig cfg_;
  const ssm_host* host_;  // the registry's table, so layers can create children through ctx->host
  std::vector<Parameter> params_;
  std::vector<std::unique_ptr<Block>> blocks_;
  size_t enc_w_ = 0, enc_b_ = 0, dec_w_ = 0, dec_b_ = 0, final_norm_ = 0;
  bool training_ = false;
  uint64_t step_ = 0;
  int64_t B_ = 0, L_ = 0;
  Tensor x_in_;                   // the last input (tokens or reals)
  std::vector<Tensor> acts_;      // acts_[i]: input of block i; acts_[n]: output of the last block
  Tensor final_in_, final_out_;   // pre-norm: final norm input/output
  Tensor final_mean_, final_rstd_;
  Tensor pooled_, logits_;
  Tensor grad_a_, grad_b_, grad_pooled_;
  // step mode
  std::vector<void*> states_;  // one per block, from its layer's state_create
  int64_t step_B_ = 0;
  Tensor step_h_, step_logits_;
};

}  // namespace ssmhost
