#include "optimizer.hpp"

#include <algorithm>
#include <cmath>

namespace ssmhost {

AdamW::AdamW(std::vector<Parameter>& params, const OptimizerConfig& cfg) : params_(params), cfg_(cfg) {
  if (!(cfg.lr > 0)) throw Error("--lr must be > 0, got " + std::to_string(cfg.lr));
  if (cfg.weight_decay < 0) throw Error("--weight-decay must be >= 0, got " + std::to_string(cfg.weight_decay));
  if (cfg.schedule != "cosine" && cfg.schedule != "constant")
    throw Error("--schedule must be 'cosine' or 'constant', got '" + cfg.schedule + "'");
  for (Parameter& p : params_) {
    m_.push_back(Tensor::of<float>(p.value.shape()));
    v_.push_back(Tensor::of<float>(p.value.shape()));
  }
}

double AdamW::lr_at(int64_t step) const {
  if (cfg_.warmup > 0 && step < cfg_.warmup) return cfg_.lr * static_cast<double>(step + 1) / cfg_.warmup;
  if (cfg_.schedule == "constant") return cfg_.lr;
  int64_t span = std::max<int64_t>(1, cfg_.total_steps - cfg_.warmup);
  double t = std::min(1.0, static_cast<double>(step - cfg_.warmup) / span);
  return cfg_.lr * 0.5 * (1 + std::cos(M_PI * t));
}

// The official S4 recipe: SSM parameters get min(lr, their cap) and no weight
// decay; the schedule scales every group alike.
double AdamW::param_lr(const Parameter& p, double run_lr) const {
  if (p.lr_max > 0 && p.lr_max < cfg_.lr) return run_lr * (p.lr_max / cfg_.lr);
  return run_lr;
}

double AdamW::param_weight_decay(const Parameter& p) const {
  if (p.flags & SSM_PARAM_NO_WEIGHT_DECAY) return 0;
  return p.weight_decay >= 0 ? p.weight_decay : cfg_.weight_decay;
}

double AdamW::grad_norm() const {
  double s = 0;  // fixed order: the same norm bit for bit on every run
  for (const Parameter& p : params_) {
    const float* g = p.grad.data<float>();
    double ps = 0;
    for (int64_t i = 0; i < p.grad.numel(); ++i) ps += static_cast<double>(g[i]) * g[i];
    s += ps;
  }
  return std::sqrt(s);
}

double AdamW::step(int64_t step) {
  const double norm = grad_norm();
  if (!std::isfinite(norm)) throw Error("the gradient norm is " + std::to_string(norm) + " at step " +
                                        std::to_string(step) + "; lower --lr or set --clip");
  const double scale = cfg_.clip > 0 && norm > cfg_.clip ? cfg_.clip / norm : 1.0;
  const double run_lr = lr_at(step);
  const double t = static_cast<double>(step + 1);
  const double bc1 = 1 - std::pow(cfg_.beta1, t), bc2 = 1 - std::pow(cfg_.beta2, t);
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = params_[i];
    const float lr = static_cast<float>(param_lr(p, run_lr));
    const float decay = static_cast<float>(1 - param_lr(p, run_lr) * param_weight_decay(p));
    const float step_size = static_cast<float>(lr / bc1);
    const float inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(bc2));
    const float eps = static_cast<float>(cfg_.eps), gs = static_cast<float>(scale);
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    float* m = m_[i].data<float>();
    float* v = v_[i].data<float>();
    const int64_t n = p.value.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; ++j) {
      const float gj = g[j] * gs;
      m[j] = b1 * m[j] + (1 - b1) * gj;
      v[j] = b2 * v[j] + (1 - b2) * gj * gj;
      w[j] = w[j] * decay - step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + eps);
    }
  }
  return norm;
}

}  // namespace ssmhost
