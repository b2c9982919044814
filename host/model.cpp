#include "model.hpp"

#include <ssm/kernels/channel_dropout.hpp>
#include <ssm/kernels/embedding.hpp>
#include <ssm/kernels/linear.hpp>
#include <ssm/kernels/norm.hpp>
#include <ssm/kernels/philox.hpp>
#include <ssm/kernels/readout.hpp>

#include <cmath>

namespace ssmhost {

namespace k = ssm::kernels;

// Philox streams of the host's own randomness (plugins get their own seed).
static constexpr uint64_t kInitStream = 1ull << 40;
static constexpr uint64_t kDropoutStream = 2ull << 40;
static constexpr double kNormEps = 1e-5;

struct Model::Block {
  std::unique_ptr<LayerObject> layer;
  std::vector<DLTensor*> values, grads;  // the layer's parameters, ABI views
  size_t norm_gamma = 0, norm_beta = 0;
  uint64_t seed = 0;                     // this layer's own seed
  Tensor normed, z, zdrop, sum, mean, rstd, scale;  // scale: channel dropout (B, H)
  Tensor dz, dlayer_in;
};

// A seed per layer so that identical plugins initialise differently.
static uint64_t mix_seed(uint64_t seed, uint64_t salt) {
  auto r = k::philox4x32(seed, 0x5eed, salt);
  return (static_cast<uint64_t>(r[0]) << 32) | r[1];
}

static void fill_uniform(Tensor& t, double bound, uint64_t seed, uint64_t stream) {
  float* d = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    d[i] = static_cast<float>((2 * k::philox_uniform(seed, stream, i) - 1) * bound);
}
static void fill_normal(Tensor& t, double stddev, uint64_t seed, uint64_t stream) {
  float* d = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = static_cast<float>(k::philox_normal(seed, stream, i) * stddev);
}
static void fill_value(Tensor& t, float v) {
  float* d = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = v;
}

void Model::add_param(const std::string& name, std::vector<int64_t> shape, uint32_t flags, double lr_max,
                      double weight_decay) {
  Parameter p;
  p.name = name;
  p.value = Tensor::of<float>(shape);
  p.grad = Tensor::of<float>(shape);
  p.flags = flags;
  p.lr_max = lr_max;
  p.weight_decay = weight_decay;
  params_.push_back(std::move(p));
}

Model::Model(Registry& reg, const ModelConfig& cfg) : cfg_(cfg), host_(reg.host()) {
  const ssm_task_info& t = cfg.task;
  const int64_t H = cfg.d_model;
  if (H <= 0) throw Error("--d-model must be >= 1, got " + std::to_string(H));
  if (cfg.n_layers < 1) throw Error("--n-layers must be >= 1, got " + std::to_string(cfg.n_layers));
  if (cfg.norm != "layer" && cfg.norm != "rms") throw Error("--norm must be 'layer' or 'rms', got '" + cfg.norm + "'");
  if (t.n_out < 1) throw Error("the task reports " + std::to_string(t.n_out) + " outputs; expected >= 1");

  // Encoder: token embedding (N(0,1), as nn.Embedding) or a linear map of the
  // input channels (U(+-1/sqrt(C)), as nn.Linear).
  if (t.input_kind == SSM_INPUT_TOKENS) {
    add_param("encoder.embedding", {t.vocab_size, H});
    enc_w_ = 0;
    fill_normal(params_[enc_w_].value, 1.0, cfg.seed, kInitStream + 0);
    enc_b_ = SIZE_MAX;
  } else {
    add_param("encoder.weight", {H, t.in_channels});
    add_param("encoder.bias", {H});
    enc_w_ = 0, enc_b_ = 1;
    double bound = 1.0 / std::sqrt(static_cast<double>(t.in_channels));
    fill_uniform(params_[enc_w_].value, bound, cfg.seed, kInitStream + 0);
    fill_uniform(params_[enc_b_].value, bound, cfg.seed, kInitStream + 1);
  }

  for (int64_t i = 0; i < cfg.n_layers; ++i) {
    auto b = std::make_unique<Block>();
    std::string prefix = "block" + std::to_string(i) + ".";
    b->seed = mix_seed(cfg.seed, static_cast<uint64_t>(i));
    b->layer = reg.create_layer(cfg.layer, cfg.layer_config);
    size_t first = params_.size();
    for (const ParamInfo& pi : b->layer->params())
      add_param(prefix + "layer." + pi.name, pi.shape, pi.flags, pi.lr_max, pi.weight_decay);
    for (size_t j = first; j < params_.size(); ++j) {
      b->values.push_back(params_[j].value.dl());
      b->grads.push_back(params_[j].grad.dl());
    }
    b->norm_gamma = params_.size();
    add_param(prefix + "norm.weight", {H});
    fill_value(params_[b->norm_gamma].value, 1.0f);
    b->norm_beta = SIZE_MAX;
    if (cfg.norm == "layer") {
      b->norm_beta = params_.size();
      add_param(prefix + "norm.bias", {H});
    }
    blocks_.push_back(std::move(b));
  }
  // Pointers into params_ are stable from here on (no more push_back before
  // the views are taken below), so refresh the views after the last add.
  if (cfg.prenorm) {
    final_norm_ = params_.size();
    add_param("final_norm.weight", {H});
    fill_value(params_[final_norm_].value, 1.0f);
    if (cfg.norm == "layer") add_param("final_norm.bias", {H});
  }
  dec_w_ = params_.size();
  add_param("decoder.weight", {t.n_out, H});
  dec_b_ = params_.size();
  add_param("decoder.bias", {t.n_out});
  double bound = 1.0 / std::sqrt(static_cast<double>(H));
  fill_uniform(params_[dec_w_].value, bound, cfg.seed, kInitStream + 2);
  fill_uniform(params_[dec_b_].value, bound, cfg.seed, kInitStream + 3);

  // params_ has reallocated while growing: take the ABI views now, then let
  // every layer initialise its own parameters.
  size_t j = t.input_kind == SSM_INPUT_TOKENS ? 1 : 2;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    for (size_t q = 0; q < b.values.size(); ++q, ++j) {
      b.values[q] = params_[j].value.dl();
      b.grads[q] = params_[j].grad.dl();
    }
    j += cfg.norm == "layer" ? 2 : 1;
    ssm_ctx ctx = make_ctx(host_, false, cfg.threads, b.seed, 0);
    b.layer->param_init(&ctx, b.values.data());
  }
}

Model::~Model() { free_states(); }

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += p.value.numel();
  return n;
}

std::string Model::layer_id() const { return blocks_.front()->layer->plugin().id; }
std::string Model::layer_version() const { return blocks_.front()->layer->plugin().version; }

int64_t Model::targets_per_example() const {
  switch (cfg_.task.readout) {
    case SSM_READOUT_LAST_M: return cfg_.task.readout_m;
    case SSM_READOUT_ALL: return L_ > 0 ? L_ : cfg_.task.seq_len;
    default: return 1;
  }
}

void Model::zero_grad() {
  for (Parameter& p : params_) p.grad.zero();
}

void Model::norm_forward(size_t bi, const float* x, float* y, int64_t rows) {
  Block& b = *blocks_[bi];
  const int64_t H = cfg_.d_model;
  b.mean.resize({rows});
  b.rstd.resize({rows});
  if (cfg_.norm == "layer")
    k::layernorm_forward(x, p(b.norm_gamma), p(b.norm_beta), y, b.mean.data<float>(), b.rstd.data<float>(), rows, H,
                         kNormEps);
  else
    k::rmsnorm_forward(x, p(b.norm_gamma), y, b.rstd.data<float>(), rows, H, kNormEps);
}

void Model::norm_backward(size_t bi, const float* x, const float* dy, float* dx, int64_t rows) {
  Block& b = *blocks_[bi];
  const int64_t H = cfg_.d_model;
  if (cfg_.norm == "layer")
    k::layernorm_backward(x, p(b.norm_gamma), b.mean.data<float>(), b.rstd.data<float>(), dy, dx, g(b.norm_gamma),
                          g(b.norm_beta), rows, H);
  else
    k::rmsnorm_backward(x, p(b.norm_gamma), b.rstd.data<float>(), dy, dx, g(b.norm_gamma), rows, H);
}

static void add_into(const float* a, const float* b, float* out, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// The encoder: rows tokens (embedding) or rows x C reals (linear) -> rows x H.
void Model::encode(const Tensor& x, float* out, int64_t rows) {
  const ssm_task_info& t = cfg_.task;
  const int64_t H = cfg_.d_model;
  if (t.input_kind == SSM_INPUT_TOKENS) {
    const int32_t* ids = x.data<int32_t>();
    for (int64_t i = 0; i < rows; ++i)
      if (ids[i] < 0 || ids[i] >= t.vocab_size)
        throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                    std::to_string(t.vocab_size) + ")");
    k::embedding_forward(ids, p(enc_w_), out, rows, H);
  } else {
    k::linear_forward(x.data<float>(), p(enc_w_), p(enc_b_), out, rows, t.in_channels, H);
  }
}

const Tensor& Model::forward(const Tensor& x, bool training, uint64_t step) {
  const ssm_task_info& t = cfg_.task;
  const int64_t H = cfg_.d_model;
  training_ = training;
  step_ = step;
  B_ = x.dim(0);
  L_ = x.dim(1);
  const int64_t rows = B_ * L_, n = rows * H;
  x_in_ = x;
  acts_.resize(blocks_.size() + 1);
  for (Tensor& a : acts_) a.resize({B_, L_, H});

  encode(x, acts_[0].data<float>(), rows);

  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    const float* in = acts_[i].data<float>();
    float* out = acts_[i + 1].data<float>();
    b.z.resize({B_, L_, H});
    ssm_ctx ctx = make_ctx(host_, training, cfg_.threads, b.seed, step << 32);
    if (cfg_.prenorm) {
      b.normed.resize({B_, L_, H});
      norm_forward(i, in, b.normed.data<float>(), rows);
      b.layer->forward(&ctx, b.values.data(), b.normed.dl(), b.z.dl());
    } else {
      b.layer->forward(&ctx, b.values.data(), acts_[i].dl(), b.z.dl());
    }
    const float* zd = b.z.data<float>();
    if (training && cfg_.dropout > 0) {  // channel dropout, as the official S4 example's blocks
      b.zdrop.resize({B_, L_, H});
      b.scale.resize({B_, H});
      k::channel_dropout_mask(b.scale.data<float>(), B_, H, cfg_.dropout, cfg_.seed, kDropoutStream + i,
                              step * static_cast<uint64_t>(B_ * H));
      k::scale_channels(zd, b.scale.data<float>(), b.zdrop.data<float>(), B_, L_, H);
      zd = b.zdrop.data<float>();
    }
    if (cfg_.prenorm) {
      add_into(in, zd, out, n);
    } else {
      b.sum.resize({B_, L_, H});
      add_into(in, zd, b.sum.data<float>(), n);
      norm_forward(i, b.sum.data<float>(), out, rows);
    }
  }

  // Final norm (pre-norm models only), then the read-out.
  const Tensor* top = &acts_.back();
  if (cfg_.prenorm) {
    final_out_.resize({B_, L_, H});
    final_mean_.resize({rows});
    final_rstd_.resize({rows});
    const float* xin = acts_.back().data<float>();
    if (cfg_.norm == "layer")
      k::layernorm_forward(xin, p(final_norm_), p(final_norm_ + 1), final_out_.data<float>(),
                           final_mean_.data<float>(), final_rstd_.data<float>(), rows, H, kNormEps);
    else
      k::rmsnorm_forward(xin, p(final_norm_), final_out_.data<float>(), final_rstd_.data<float>(), rows, H, kNormEps);
    top = &final_out_;
  }
  const int64_t T = targets_per_example();
  pooled_.resize({B_ * T, H});
  switch (t.readout) {
    case SSM_READOUT_MEAN: k::mean_pool_forward(top->data<float>(), pooled_.data<float>(), B_, L_, H); break;
    case SSM_READOUT_LAST: k::last_m_forward(top->data<float>(), pooled_.data<float>(), B_, L_, H, 1); break;
    case SSM_READOUT_LAST_M: k::last_m_forward(top->data<float>(), pooled_.data<float>(), B_, L_, H, T); break;
    case SSM_READOUT_ALL: std::copy(top->data<float>(), top->data<float>() + n, pooled_.data<float>()); break;
    default: throw Error("the task asked for unknown read-out " + std::to_string(t.readout));
  }
  logits_.resize({B_ * T, t.n_out});
  k::linear_forward(pooled_.data<float>(), p(dec_w_), p(dec_b_), logits_.data<float>(), B_ * T, H, t.n_out);
  return logits_;
}

void Model::backward(const Tensor& dlogits) {
  if (!training_) throw Error("Model::backward needs a training forward first");
  const ssm_task_info& t = cfg_.task;
  const int64_t H = cfg_.d_model, rows = B_ * L_, n = rows * H, T = targets_per_example();
  grad_pooled_.resize({B_ * T, H});
  k::linear_backward(pooled_.data<float>(), p(dec_w_), dlogits.data<float>(), grad_pooled_.data<float>(), g(dec_w_),
                     g(dec_b_), B_ * T, H, t.n_out);
  grad_a_.resize({B_, L_, H});
  grad_b_.resize({B_, L_, H});
  float* dtop = grad_a_.data<float>();
  switch (t.readout) {
    case SSM_READOUT_MEAN: k::mean_pool_backward(grad_pooled_.data<float>(), dtop, B_, L_, H); break;
    case SSM_READOUT_LAST: k::last_m_backward(grad_pooled_.data<float>(), dtop, B_, L_, H, 1); break;
    case SSM_READOUT_LAST_M: k::last_m_backward(grad_pooled_.data<float>(), dtop, B_, L_, H, T); break;
    default: std::copy(grad_pooled_.data<float>(), grad_pooled_.data<float>() + n, dtop); break;
  }
  Tensor* dy = &grad_a_;
  Tensor* dx = &grad_b_;
  if (cfg_.prenorm) {
    const float* xin = acts_.back().data<float>();
    if (cfg_.norm == "layer")
      k::layernorm_backward(xin, p(final_norm_), final_mean_.data<float>(), final_rstd_.data<float>(),
                            dy->data<float>(), dx->data<float>(), g(final_norm_), g(final_norm_ + 1), rows, H);
    else
      k::rmsnorm_backward(xin, p(final_norm_), final_rstd_.data<float>(), dy->data<float>(), dx->data<float>(),
                          g(final_norm_), rows, H);
    std::swap(dy, dx);
  }

  for (size_t ii = blocks_.size(); ii-- > 0;) {
    Block& b = *blocks_[ii];
    b.dz.resize({B_, L_, H});
    b.dlayer_in.resize({B_, L_, H});
    ssm_ctx ctx = make_ctx(host_, true, cfg_.threads, b.seed, step_ << 32);
    // ds: the gradient at the residual sum (post-norm: through the norm first).
    const float* ds = dy->data<float>();
    if (!cfg_.prenorm) {
      norm_backward(ii, b.sum.data<float>(), dy->data<float>(), dx->data<float>(), rows);
      std::swap(dy, dx);
      ds = dy->data<float>();
    }
    if (cfg_.dropout > 0)
      k::scale_channels(ds, b.scale.data<float>(), b.dz.data<float>(), B_, L_, H);
    else
      std::copy(ds, ds + n, b.dz.data<float>());
    b.layer->backward(&ctx, b.values.data(), b.dz.dl(), b.dlayer_in.dl(), b.grads.data());
    float* out = dx->data<float>();
    if (cfg_.prenorm) {
      // dx = ds + norm_backward(x_in, dlayer_in)
      norm_backward(ii, acts_[ii].data<float>(), b.dlayer_in.data<float>(), b.dz.data<float>(), rows);
      add_into(ds, b.dz.data<float>(), out, n);
    } else {
      add_into(ds, b.dlayer_in.data<float>(), out, n);
    }
    std::swap(dy, dx);
  }

  if (t.input_kind == SSM_INPUT_TOKENS)
    k::embedding_backward(x_in_.data<int32_t>(), dy->data<float>(), g(enc_w_), rows, H);
  else
    k::linear_backward(x_in_.data<float>(), p(enc_w_), dy->data<float>(), static_cast<float*>(nullptr), g(enc_w_), g(enc_b_), rows,
                       t.in_channels, H);
}

std::vector<std::vector<double>> Model::conv_kernels(int64_t length, int64_t channels) const {
  std::vector<std::vector<double>> out;
  bool any = false;
  const int64_t H = cfg_.d_model, C = std::min(channels, H);
  for (const auto& b : blocks_) {
    std::vector<double> k, first;
    ssm_ctx ctx = make_ctx(host_, false, cfg_.threads, b->seed, 0);
    if (b->layer->conv_kernel(&ctx, b->values.data(), length, H, k)) {
      first.assign(k.begin(), k.begin() + C * length);  // channels are the rows
      any = true;
    }
    out.push_back(std::move(first));
  }
  if (!any) out.clear();
  return out;
}

void Model::free_states() {
  for (size_t i = 0; i < states_.size(); ++i)
    if (states_[i]) blocks_[i]->layer->state_destroy(states_[i]);
  states_.clear();
  step_B_ = 0;
}

void Model::step_reset(int64_t batch) {
  if (cfg_.task.readout != SSM_READOUT_ALL)
    throw Error("step mode needs a task that scores every position (read-out 'all'); this task's read-out pools "
                "the sequence, so there is nothing to emit per step");
  if (batch < 1) throw Error("step mode needs a batch of at least 1, got " + std::to_string(batch));
  free_states();
  training_ = false;  // the norms' caches are overwritten below: no backward until a training forward
  states_.assign(blocks_.size(), nullptr);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    ssm_ctx ctx = make_ctx(host_, false, cfg_.threads, blocks_[i]->seed, 0);
    states_[i] = blocks_[i]->layer->state_create(&ctx, blocks_[i]->values.data(), batch);
  }
  step_B_ = batch;
}

const Tensor& Model::step(const Tensor& x_t) {
  const ssm_task_info& t = cfg_.task;
  const int64_t H = cfg_.d_model, B = step_B_;
  if (states_.empty()) throw Error("Model::step before step_reset");
  const bool tokens = t.input_kind == SSM_INPUT_TOKENS;
  if (x_t.dim(0) != B || (tokens ? x_t.ndim() != 1 : x_t.ndim() != 2 || x_t.dim(1) != t.in_channels))
    throw Error("Model::step: x_t must be (" + std::to_string(B) + (tokens ? ")" : ", C)") + ", as step_reset's batch");
  step_h_.resize({B, H});
  encode(x_t, step_h_.data<float>(), B);
  float* h = step_h_.data<float>();
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    b.z.resize({B, H});
    ssm_ctx ctx = make_ctx(host_, false, cfg_.threads, b.seed, 0);
    if (cfg_.prenorm) {
      b.normed.resize({B, H});
      norm_forward(i, h, b.normed.data<float>(), B);
      b.layer->step(&ctx, b.values.data(), states_[i], b.normed.dl(), b.z.dl());
      add_into(h, b.z.data<float>(), h, B * H);
    } else {
      b.layer->step(&ctx, b.values.data(), states_[i], step_h_.dl(), b.z.dl());
      b.sum.resize({B, H});
      add_into(h, b.z.data<float>(), b.sum.data<float>(), B * H);
      norm_forward(i, b.sum.data<float>(), h, B);
    }
  }
  const float* top = h;
  if (cfg_.prenorm) {
    final_out_.resize({B, H});
    final_mean_.resize({B});
    final_rstd_.resize({B});
    if (cfg_.norm == "layer")
      k::layernorm_forward(h, p(final_norm_), p(final_norm_ + 1), final_out_.data<float>(), final_mean_.data<float>(),
                           final_rstd_.data<float>(), B, H, kNormEps);
    else
      k::rmsnorm_forward(h, p(final_norm_), final_out_.data<float>(), final_rstd_.data<float>(), B, H, kNormEps);
    top = final_out_.data<float>();
  }
  step_logits_.resize({B, t.n_out});
  k::linear_forward(top, p(dec_w_), p(dec_b_), step_logits_.data<float>(), B, H, t.n_out);
  return step_logits_;
}

}  // namespace ssmhost
