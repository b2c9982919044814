// The host's model assembly (encoder, residual blocks with pre/post-norm,
// LayerNorm/RMSNorm, read-outs, decoder) against finite differences. The
// model runs in float32, so the step is large and the tolerance loose: this
// checks how the modules are wired together (each module's own backward is
// checked in float64 in its kernel test).
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.hpp"
#include "model.hpp"
#include "test_support.hpp"

namespace {

ssmhost::Registry& registry_with_test_layer() {
  static ssmhost::Registry reg;
  static const bool loaded = [] {
    reg.add_path(SSM_TEST_PLUGIN_DIR);
    reg.add_path(std::string(SSM_TEST_ERROR_PLUGIN_DIR) + "/good_layer");
    reg.load();
    return true;
  }();
  (void)loaded;
  return reg;
}

ssm_task_info token_task(int32_t readout, int64_t m) {
  ssm_task_info t{};
  t.input_kind = SSM_INPUT_TOKENS;
  t.vocab_size = 5;
  t.seq_len = 6;
  t.n_out = 3;
  t.readout = readout;
  t.readout_m = m;
  t.loss = SSM_LOSS_CROSS_ENTROPY;
  return t;
}

ssm_task_info real_task() {
  ssm_task_info t{};
  t.input_kind = SSM_INPUT_REAL;
  t.in_channels = 2;
  t.seq_len = 7;
  t.n_out = 3;
  t.readout = SSM_READOUT_MEAN;
  t.loss = SSM_LOSS_CROSS_ENTROPY;
  return t;
}

// loss = sum(logits * probe), in double; checks every parameter's gradient
// at a spread of entries against central differences.
void check_model(ssmhost::ModelConfig cfg, double tol) {
  cfg.d_model = 4;
  cfg.threads = 1;
  cfg.seed = 3;
  cfg.layer_config["d_model"] = "4";
  cfg.layer_config["d_state"] = "4";
  ssmhost::Model model(registry_with_test_layer(), cfg);
  const int64_t B = 2, L = cfg.task.seq_len;
  ssmhost::Tensor x;
  if (cfg.task.input_kind == SSM_INPUT_TOKENS) {
    x = ssmhost::Tensor::of<int32_t>({B, L});
    for (int64_t i = 0; i < B * L; ++i) x.data<int32_t>()[i] = static_cast<int32_t>((i * 7 + 1) % 5);
  } else {
    x = ssmhost::Tensor::of<float>({B, L, cfg.task.in_channels});
    auto v = ssm_test::random_vector(static_cast<size_t>(x.numel()), 11);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(v[i]);
  }
  const ssmhost::Tensor& first = model.forward(x, true, 0);
  const std::vector<double> probe = ssm_test::random_vector(static_cast<size_t>(first.numel()), 5);
  ssmhost::Tensor dlogits = ssmhost::Tensor::of<float>(first.shape());
  for (int64_t i = 0; i < dlogits.numel(); ++i) dlogits.data<float>()[i] = static_cast<float>(probe[i]);
  model.zero_grad();
  model.backward(dlogits);

  auto loss = [&] {
    const ssmhost::Tensor& y = model.forward(x, true, 0);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += y.data<float>()[i] * probe[i];
    return s;
  };
  for (ssmhost::Parameter& p : model.params()) {
    // Compare through a float64 copy that the loss writes back before each call.
    float* w = p.value.data<float>();
    std::vector<double> wd(w, w + p.value.numel());
    std::vector<double> g(p.grad.data<float>(), p.grad.data<float>() + p.grad.numel());
    auto loss_from_copy = [&] {
      for (size_t i = 0; i < wd.size(); ++i) w[i] = static_cast<float>(wd[i]);
      return loss();
    };
    ssm_test::check_gradient(p.name, wd, g, loss_from_copy, tol, 1e-2, 24, 1e-2);
    for (size_t i = 0; i < wd.size(); ++i) w[i] = static_cast<float>(wd[i]);
  }
}

}  // namespace

TEST_CASE("model gradient: post-norm LayerNorm, tokens, last-M read-out") {
  ssmhost::ModelConfig cfg;
  cfg.layer = "test_good";
  cfg.n_layers = 2;
  cfg.task = token_task(SSM_READOUT_LAST_M, 2);
  check_model(cfg, 2e-2);
}

TEST_CASE("model gradient: pre-norm RMSNorm with final norm, tokens, every-token read-out") {
  ssmhost::ModelConfig cfg;
  cfg.layer = "test_good";
  cfg.n_layers = 2;
  cfg.prenorm = true;
  cfg.norm = "rms";
  cfg.task = token_task(SSM_READOUT_ALL, 0);
  check_model(cfg, 2e-2);
}

TEST_CASE("model gradient: linear encoder, mean pooling, last-token read-out") {
  ssmhost::ModelConfig cfg;
  cfg.layer = "test_good";
  cfg.n_layers = 1;
  cfg.prenorm = true;
  cfg.task = real_task();
  check_model(cfg, 2e-2);
  cfg.task.readout = SSM_READOUT_LAST;
  check_model(cfg, 2e-2);
}

TEST_CASE("model gradient: s4d blocks (float32 end to end)") {
  ssmhost::ModelConfig cfg;
  cfg.layer = "s4dz";
  cfg.n_layers = 2;
  cfg.task = real_task();
  check_model(cfg, 5e-2);
}

// Step mode (generation) against the convolution/parallel forward: the
// logits of every position, for each kind of layer, both norm placements.
TEST_CASE("model step mode: every position's logits equal forward's") {
  struct Case {
    const char* layer;
    bool prenorm;
    const char* norm;
  };
  const Case cases[] = {{"s4dz", false, "layer"}, {"s4db", true, "rms"},       {"s4", false, "layer"},
                        {"s6", true, "layer"},    {"mamba", true, "rms"},      {"h3", false, "layer"},
                        {"lstm", false, "layer"}, {"attention", true, "layer"}, {"gated_mlp", false, "layer"}};
  for (const Case& c : cases) {
    INFO("layer " << c.layer << (c.prenorm ? ", pre-norm " : ", post-norm ") << c.norm);
    ssmhost::ModelConfig cfg;
    cfg.layer = c.layer;
    cfg.n_layers = 2;
    cfg.d_model = 8;
    cfg.prenorm = c.prenorm;
    cfg.norm = c.norm;
    cfg.seed = 5;
    cfg.layer_config = {{"d_model", "8"}, {"d_state", "4"}, {"l_max", "32"}};
    cfg.task = token_task(SSM_READOUT_ALL, 0);
    const int64_t B = 2, L = 13, V = cfg.task.n_out;
    ssmhost::Model model(ssm_test::plugin_registry(), cfg);
    ssmhost::Tensor x = ssmhost::Tensor::of<int32_t>({B, L});
    for (int64_t i = 0; i < B * L; ++i) x.data<int32_t>()[i] = static_cast<int32_t>((i * 3 + i / 5) % 5);
    const ssmhost::Tensor full = model.forward(x, false, 0);  // (B*L, V), row b*L + t
    model.step_reset(B);
    ssmhost::Tensor xt = ssmhost::Tensor::of<int32_t>({B});
    double worst = 0;
    for (int64_t t = 0; t < L; ++t) {
      for (int64_t b = 0; b < B; ++b) xt.data<int32_t>()[b] = x.data<int32_t>()[b * L + t];
      const ssmhost::Tensor& y = model.step(xt);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t v = 0; v < V; ++v)
          worst = std::max(worst, std::abs(static_cast<double>(y.data<float>()[b * V + v]) -
                                           full.data<float>()[(b * L + t) * V + v]));
    }
    CHECK(worst < 2e-4);
    // A fresh start gives the first position again.
    model.step_reset(B);
    for (int64_t b = 0; b < B; ++b) xt.data<int32_t>()[b] = x.data<int32_t>()[b * L];
    CHECK(std::abs(model.step(xt).data<float>()[0] - full.data<float>()[0]) < 2e-4);
  }
}

TEST_CASE("model step mode: refused for a pooled read-out, and backward needs a training forward after it") {
  ssmhost::ModelConfig cfg;
  cfg.layer = "s4dz";
  cfg.d_model = 4;
  cfg.layer_config = {{"d_model", "4"}, {"d_state", "4"}};
  cfg.task = real_task();
  ssmhost::Model pooled(ssm_test::plugin_registry(), cfg);
  CHECK_THROWS_WITH(pooled.step_reset(1), Catch::Contains("read-out"));
  cfg.task = token_task(SSM_READOUT_ALL, 0);
  ssmhost::Model model(ssm_test::plugin_registry(), cfg);
  ssmhost::Tensor x = ssmhost::Tensor::of<int32_t>({1, 6});
  for (int64_t i = 0; i < 6; ++i) x.data<int32_t>()[i] = static_cast<int32_t>(i % 5);
  const ssmhost::Tensor& y = model.forward(x, true, 0);
  ssmhost::Tensor dy = ssmhost::Tensor::of<float>(y.shape());
  model.step_reset(1);
  CHECK_THROWS_WITH(model.backward(dy), Catch::Contains("training forward"));
  ssmhost::Tensor wrong = ssmhost::Tensor::of<int32_t>({3});
  CHECK_THROWS_WITH(model.step(wrong), Catch::Contains("x_t must be"));
}
