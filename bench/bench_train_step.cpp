// Times full training steps (forward, backward, AdamW) of a model built
// exactly as `ssmhost train` builds it, on random data of the task's shape.
//
//   bench_train_step --layer s4d --d-model 128 --n-layers 4 --d-state 64 \
//       --seq-len 784 --batch 64 --threads 2 --steps 5 --warmup 2 [--json out.json]
//
// Defaults are the official S4D example on sequential images (one input
// channel, 10 classes, mean pooling, post-norm LayerNorm, dropout 0.1).
#include <ssm/kernels/loss.hpp>
#include <ssm/kernels/parallel.hpp>
#include <ssm/kernels/philox.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "model.hpp"
#include "optimizer.hpp"
#include "process.hpp"
#include "registry.hpp"

using namespace ssmhost;

int main(int argc, char** argv) {
  tune_process();
  std::map<std::string, std::string> a = {{"layer", "s4d"}, {"d-model", "128"}, {"n-layers", "4"},
                                          {"d-state", "64"}, {"seq-len", "784"}, {"batch", "64"},
                                          {"threads", "2"},  {"steps", "5"},     {"warmup", "2"},
                                          {"dropout", "0.1"}, {"json", ""}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      std::fprintf(stderr, "bench_train_step: unknown option %s\n", argv[i]);
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  const int64_t H = std::stoll(a["d-model"]), L = std::stoll(a["seq-len"]), B = std::stoll(a["batch"]);
  const int threads = std::stoi(a["threads"]), steps = std::stoi(a["steps"]), warmup = std::stoi(a["warmup"]);
  ssm::kernels::set_threads(threads);

  Registry reg;
  reg.add_default_paths();
  reg.load();
  ModelConfig mc;
  mc.layer = a["layer"];
  mc.d_model = H;
  mc.n_layers = std::stoll(a["n-layers"]);
  mc.dropout = std::stod(a["dropout"]);
  mc.layer_config = {{"d_model", a["d-model"]}, {"d_state", a["d-state"]}, {"dropout", a["dropout"]},
                     {"lr_ssm", "0.001"}};
  mc.threads = threads;
  mc.seed = 1;
  mc.task.input_kind = SSM_INPUT_REAL;
  mc.task.in_channels = 1;
  mc.task.seq_len = L;
  mc.task.n_out = 10;
  mc.task.readout = SSM_READOUT_MEAN;
  mc.task.loss = SSM_LOSS_CROSS_ENTROPY;
  Model model(reg, mc);
  OptimizerConfig oc;
  oc.lr = 0.01;
  oc.total_steps = steps + warmup;
  AdamW adam(model.params(), oc);

  Tensor x = Tensor::of<float>({B, L, 1});
  std::vector<int32_t> y(static_cast<size_t>(B));
  for (int64_t i = 0; i < B * L; ++i) x.data<float>()[i] = static_cast<float>(ssm::kernels::philox_normal(7, 0, i));
  for (int64_t i = 0; i < B; ++i) y[i] = static_cast<int32_t>(ssm::kernels::philox_uniform(7, 1, i) * 10);
  Tensor dlogits = Tensor::of<float>({B, 10});

  std::vector<double> times;
  for (int s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    const Tensor& logits = model.forward(x, true, static_cast<uint64_t>(s));
    ssm::kernels::cross_entropy(logits.data<float>(), y.data(), static_cast<const float*>(nullptr), B, 10,
                                dlogits.data<float>(), static_cast<int64_t*>(nullptr));
    model.zero_grad();
    model.backward(dlogits);
    adam.step(s);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) times.push_back(dt);
    std::printf("step %d: %.3f s%s\n", s, dt, s < warmup ? " (warm-up)" : "");
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  double median = sorted[sorted.size() / 2];
  if (sorted.size() % 2 == 0) median = (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
  std::printf("ssmhost: median training step %.3f s (B=%lld L=%lld H=%lld layers=%s N=%s threads=%d, %lld params)\n",
              median, (long long)B, (long long)L, (long long)H, a["n-layers"].c_str(), a["d-state"].c_str(), threads,
              (long long)model.n_params());
  if (!a["json"].empty()) {
    std::ofstream o(a["json"]);
    o << "{\"impl\": \"ssmhost\", \"threads\": " << threads << ", \"batch\": " << B << ", \"seq_len\": " << L
      << ", \"d_model\": " << H << ", \"n_layers\": " << a["n-layers"] << ", \"d_state\": " << a["d-state"]
      << ", \"n_params\": " << model.n_params() << ", \"step_s_median\": " << median << ", \"step_s\": [";
    for (size_t i = 0; i < times.size(); ++i) o << (i ? ", " : "") << times[i];
    o << "]}\n";
  }
  return 0;
}
