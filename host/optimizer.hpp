// AdamW with per-parameter groups from the layers' hints, a linear warm-up
// then cosine schedule, and gradient-norm clipping.
#pragma once

#include <string>
#include <vector>

#include "model.hpp"

namespace ssmhost {

struct OptimizerConfig {
  double lr = 1e-3;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t warmup = 0;       // steps of linear warm-up from 0
  int64_t total_steps = 1;  // the cosine reaches 0 here
  std::string schedule = "cosine";  // "cosine" or "constant" (after warm-up)
  double clip = 0;          // > 0: clip the global gradient norm to this
};

class AdamW {
 public:
  AdamW(std::vector<Parameter>& params, const OptimizerConfig& cfg);

  // The schedule's factor in [0, 1] at `step` (0-based), times the run lr.
  double lr_at(int64_t step) const;
  // The learning rate and weight decay a parameter gets at a given run lr.
  double param_lr(const Parameter& p, double run_lr) const;
  double param_weight_decay(const Parameter& p) const;

  // Global L2 norm of every gradient (before clipping).
  double grad_norm() const;
  // One update at `step` (0-based); returns the gradient norm before clipping.
  double step(int64_t step);

  // Moments, for checkpoints: m then v per parameter, in params order.
  std::vector<Tensor>& moments_m() { return m_; }
  std::vector<Tensor>& moments_v() { return v_; }

 private:
  std::vector<Parameter>& params_;
  OptimizerConfig cfg_;
  std::vector<Tensor> m_, v_;
};

}  // namespace ssmhost
