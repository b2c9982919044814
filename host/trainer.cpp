#include "trainer.hpp"

#include <ssm/kernels/loss.hpp>
#include <ssm/kernels/parallel.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "checkpoint.hpp"
#include "git_commit.h"  // generated: SSMHOST_GIT_COMMIT
#include "model.hpp"
#include "optimizer.hpp"
#include "runlog.hpp"

namespace ssmhost {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double peak_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

std::string duration_text(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

const char* metric_name(int32_t metric) {
  switch (metric) {
    case SSM_METRIC_ACCURACY: return "accuracy";
    case SSM_METRIC_BPC: return "bpc";
    case SSM_METRIC_MSE: return "mse";
  }
  return "metric";
}
bool higher_is_better(int32_t metric) { return metric == SSM_METRIC_ACCURACY; }

// One batch's buffers, shaped from the task's description.
struct Batch {
  Tensor x, y, mask;
  void shape(const ssm_task_info& t, int64_t B, int64_t T) {
    if (t.input_kind == SSM_INPUT_TOKENS)
      x = Tensor::of<int32_t>({B, t.seq_len});
    else
      x = Tensor::of<float>({B, t.seq_len, t.in_channels});
    if (t.loss == SSM_LOSS_CROSS_ENTROPY)
      y = Tensor::of<int32_t>({B, T});
    else
      y = Tensor::of<float>({B, T, t.n_out});
    if (t.has_mask) mask = Tensor::of<float>({B, T});
  }
};

// Loss, its gradient and the metric's numerator for one batch of logits.
struct LossOut {
  double loss = 0;
  double metric_sum = 0;  // correct count (accuracy) or summed error
  double weight = 0;      // rows counted
};

LossOut compute_loss(const ssm_task_info& t, const Tensor& logits, const Batch& b, const float* row_weight,
                     int64_t rows, Tensor* dlogits) {
  LossOut out;
  float* d = dlogits ? dlogits->data<float>() : nullptr;
  if (t.loss == SSM_LOSS_CROSS_ENTROPY) {
    int64_t correct = 0;
    out.loss = ssm::kernels::cross_entropy(logits.data<float>(), b.y.data<int32_t>(), row_weight, rows, t.n_out, d,
                                           &correct);
    out.metric_sum = static_cast<double>(correct);
  } else {
    out.loss = ssm::kernels::mse(logits.data<float>(), b.y.data<float>(), row_weight, rows, t.n_out, d);
  }
  if (row_weight) {
    for (int64_t i = 0; i < rows; ++i) out.weight += row_weight[i] > 0 ? 1 : 0;
  } else {
    out.weight = static_cast<double>(rows);
  }
  if (t.loss == SSM_LOSS_MSE) out.metric_sum = out.loss * out.weight;
  return out;
}

double metric_value(const ssm_task_info& t, double loss, const LossOut& sum_over) {
  switch (t.metric) {
    case SSM_METRIC_ACCURACY: return sum_over.weight > 0 ? sum_over.metric_sum / sum_over.weight : 0;
    case SSM_METRIC_BPC: return loss / std::log(2.0);
    default: return loss;
  }
}

struct Progress {
  bool tty, quiet;
  double last_print = -1;
  void line(const std::string& s, bool final_line) {
    if (quiet) return;
    if (tty) {
      std::printf("\r\033[K%s%s", s.c_str(), final_line ? "\n" : "");
    } else if (final_line) {
      std::printf("%s\n", s.c_str());
    }
    std::fflush(stdout);
  }
};

std::string default_log_path(const RunOptions& o) {
  std::string stamp = utc_timestamp();  // 2024-05-01T12:00:00Z
  for (char& c : stamp)
    if (c == ':') c = '-';
  return "runs/" + o.task + "-" + o.layer + "-" + stamp + ".h5";
}

// The options a resumed run may change; every other one must match the checkpoint.
bool may_change_on_resume(const std::string& key) {
  static const char* keys[] = {"log", "quiet", "stop_at", "threads", "checkpoint_every", "resume", "config",
                               "eval_every", "patience", "plugin_path"};
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

}  // namespace

KV checkpoint_options(const std::string& path) { return load_checkpoint(path).config; }

TrainResult train(Registry& reg, const RunOptions& opt, const std::string& command_line) {
  const auto t_start = Clock::now();
  ssm::kernels::set_threads(opt.threads);

  // --- everything that can fail on bad input happens before any file is written
  auto task = reg.create_task(opt.task, opt.all);
  const ssm_task_info info = task->info();
  if (info.seq_len < 1) throw Error("task '" + opt.task + "' reports sequence length " + std::to_string(info.seq_len));
  if (info.n_eval < 1) throw Error("task '" + opt.task + "' has no evaluation examples");
  if (opt.batch_size < 1) throw Error("--batch-size must be >= 1, got " + std::to_string(opt.batch_size));

  int64_t total_steps = opt.steps;
  int64_t steps_per_epoch = 0;
  if (info.n_train > 0) {
    steps_per_epoch = info.n_train / opt.batch_size;
    if (steps_per_epoch < 1)
      throw Error("--batch-size " + std::to_string(opt.batch_size) + " is larger than the training set (" +
                  std::to_string(info.n_train) + " examples)");
    if (opt.epochs > 0) total_steps = opt.epochs * steps_per_epoch;
  } else if (opt.epochs > 0 && opt.steps <= 0) {
    throw Error("task '" + opt.task + "' generates data without end: give --steps, not --epochs");
  }
  if (total_steps < 1) throw Error("--steps must be >= 1, got " + std::to_string(total_steps));
  if (opt.eval_every < 1) throw Error("--eval-every must be >= 1, got " + std::to_string(opt.eval_every));

  ModelConfig mc;
  mc.layer = opt.layer;
  mc.layer_config = opt.all;
  mc.d_model = opt.d_model;
  mc.n_layers = opt.n_layers;
  mc.dropout = opt.dropout;
  mc.prenorm = opt.prenorm;
  mc.norm = opt.norm;
  mc.task = info;
  mc.seed = opt.seed;
  mc.threads = opt.threads;
  if (opt.dropout < 0 || opt.dropout >= 1) throw Error("--dropout must be in [0, 1), got " + opt.all.at("dropout"));
  Model model(reg, mc);

  OptimizerConfig oc;
  oc.lr = opt.lr;
  oc.weight_decay = opt.weight_decay;
  oc.warmup = opt.warmup;
  oc.total_steps = total_steps;
  oc.schedule = opt.schedule;
  oc.clip = opt.clip;
  AdamW adam(model.params(), oc);

  const bool better_high = higher_is_better(info.metric);
  double best = better_high ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  int64_t best_step = 0, evals_without_gain = 0;
  int64_t start_step = 0;
  if (!opt.resume.empty()) {
    CheckpointData ck = load_checkpoint(opt.resume);
    for (const auto& kv : opt.all) {
      if (may_change_on_resume(kv.first)) continue;
      auto it = ck.config.find(kv.first);
      if (it != ck.config.end() && it->second != kv.second)
        throw Error("--resume " + opt.resume + ": option " + kv.first + " is '" + kv.second +
                    "' here but '" + it->second + "' in the checkpoint; drop it to continue the same run");
    }
    std::map<std::string, const NamedArray*> by_name;
    for (const NamedArray& a : ck.arrays) by_name[a.name] = &a;
    auto restore = [&](const std::string& name, Tensor& t) {
      auto it = by_name.find(name);
      if (it == by_name.end())
        throw Error("--resume " + opt.resume + ": the checkpoint has no array '" + name + "' (another model?)");
      if (it->second->shape != t.shape() || static_cast<int64_t>(it->second->data.size()) != t.numel())
        throw Error("--resume " + opt.resume + ": array '" + name + "' has another shape in the checkpoint");
      std::copy(it->second->data.begin(), it->second->data.end(), t.data<float>());
    };
    auto& ps = model.params();
    for (size_t i = 0; i < ps.size(); ++i) {
      restore("param/" + ps[i].name, ps[i].value);
      restore("adam_m/" + ps[i].name, adam.moments_m()[i]);
      restore("adam_v/" + ps[i].name, adam.moments_v()[i]);
    }
    start_step = ck.step;
    // Early stopping continues where it was (absent in checkpoints of older runs).
    if (ck.trainer_state.count("best_metric")) {
      best = ck.trainer_state.at("best_metric");
      best_step = static_cast<int64_t>(ck.trainer_state.at("best_step"));
      evals_without_gain = static_cast<int64_t>(ck.trainer_state.at("evals_without_gain"));
    }
    if (start_step >= total_steps)
      throw Error("--resume " + opt.resume + ": the checkpoint is at step " + std::to_string(start_step) +
                  ", already the end of this run (" + std::to_string(total_steps) + " steps)");
  }

  // --- the run log (an unwritable path fails here, leaving nothing behind)
  std::string log_path = opt.log_path.empty() ? default_log_path(opt) : opt.log_path;
  if (opt.log_path.empty()) {
    boost::system::error_code ec;
    boost::filesystem::create_directories("runs", ec);
  }
  RunLogSetup setup;
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  setup.root_attrs = {{"ssmhost_version", SSMHOST_VERSION},
                      {"git_commit", SSMHOST_GIT_COMMIT},
                      {"command_line", command_line},
                      {"start_time", utc_timestamp()},
                      {"host", host},
                      {"device", "cpu"},
                      {"threads", std::to_string(opt.threads)},
                      {"resumed_from", opt.resume}};
  setup.config = opt.all;
  setup.config["steps_total"] = std::to_string(total_steps);
  setup.plugins[model.layer_id()] = model.layer_version();
  setup.plugins[task->plugin().id] = task->plugin().version;
  for (const char* key : {"disc", "dataset"})  // the children the run's plugins create by name
    if (opt.all.count(key))
      for (ssm_kind kind : {SSM_KIND_DISC, SSM_KIND_DATASET})
        if (const PluginInfo* p = reg.find(kind, opt.all.at(key))) setup.plugins[p->id] = p->version;
  setup.metric_name = metric_name(info.metric);
  RunLog log = RunLog::create(log_path, setup);
  const std::string ckpt_path = log_path + ".ckpt";

  // --- the loop
  const int64_t B = opt.batch_size, T = model.targets_per_example();
  Batch batch;
  batch.shape(info, B, T);
  Tensor dlogits = Tensor::of<float>({B * T, info.n_out});
  Progress progress{static_cast<bool>(isatty(STDOUT_FILENO)), opt.quiet};
  TrainResult result;
  result.log_path = log_path;
  double last_eval_loss = NAN, last_eval_metric = NAN;
  std::string status = "completed";

  auto evaluate = [&](int64_t step_done) {
    const int64_t n_batches = (info.n_eval + B - 1) / B;
    Batch eb;
    eb.shape(info, B, T);
    std::vector<float> weight(static_cast<size_t>(B * T));
    LossOut total;
    double loss_sum = 0;
    for (int64_t i = 0; i < n_batches; ++i) {
      task->batch(SSM_SPLIT_TEST, opt.eval_seed, static_cast<uint64_t>(i), B, eb.x.dl(), eb.y.dl(),
                  info.has_mask ? eb.mask.dl() : nullptr);
      const int64_t valid = std::min<int64_t>(B, info.n_eval - i * B);  // the last batch may be partial
      for (int64_t r = 0; r < B * T; ++r)
        weight[r] = (r / T < valid ? 1.0f : 0.0f) * (info.has_mask ? eb.mask.data<float>()[r] : 1.0f);
      const Tensor& logits = model.forward(eb.x, false, 0);
      LossOut lo = compute_loss(info, logits, eb, weight.data(), B * T, nullptr);
      loss_sum += lo.loss * lo.weight;
      total.metric_sum += lo.metric_sum;
      total.weight += lo.weight;
    }
    double loss = total.weight > 0 ? loss_sum / total.weight : NAN;
    double metric = metric_value(info, loss, total);
    EvalRow row;
    row.step = step_done;
    row.epoch = steps_per_epoch ? (step_done - 1) / steps_per_epoch : 0;
    row.loss = loss;
    row.metric = metric;
    log.append_eval(row);
    last_eval_loss = loss;
    last_eval_metric = metric;
    bool gain = better_high ? metric > best : metric < best;
    if (gain) {
      best = metric;
      best_step = step_done;
      evals_without_gain = 0;
    } else {
      ++evals_without_gain;
    }
  };

  auto save = [&](int64_t step_done) {
    CheckpointData ck;
    ck.step = step_done;
    ck.epoch = steps_per_epoch ? step_done / steps_per_epoch : 0;
    ck.seed = opt.seed;
    ck.data_index = static_cast<uint64_t>(step_done);  // batch index = step: the data stream's whole state
    ck.config = opt.all;
    ck.trainer_state = {{"best_metric", best},
                        {"best_step", static_cast<double>(best_step)},
                        {"evals_without_gain", static_cast<double>(evals_without_gain)}};
    auto& ps = model.params();
    auto add = [&](const std::string& name, const Tensor& t) {
      const float* d = t.data<float>();
      ck.arrays.push_back({name, t.shape(), std::vector<float>(d, d + t.numel())});
    };
    for (size_t i = 0; i < ps.size(); ++i) {
      add("param/" + ps[i].name, ps[i].value);
      add("adam_m/" + ps[i].name, adam.moments_m()[i]);
      add("adam_v/" + ps[i].name, adam.moments_v()[i]);
    }
    save_checkpoint(ckpt_path, ck);
    result.checkpoint_path = ckpt_path;
  };

  double window_loss = 0, window_metric = 0, window_weight = 0;
  int64_t window_steps = 0;
  const auto loop_start = Clock::now();
  int64_t step = start_step;
  double last_loss = NAN;
  for (; step < total_steps; ++step) {
    const auto t0 = Clock::now();
    task->batch(SSM_SPLIT_TRAIN, opt.seed, static_cast<uint64_t>(step), B, batch.x.dl(), batch.y.dl(),
                info.has_mask ? batch.mask.dl() : nullptr);
    const Tensor& logits = model.forward(batch.x, true, static_cast<uint64_t>(step));
    LossOut lo = compute_loss(info, logits, batch, info.has_mask ? batch.mask.data<float>() : nullptr, B * T,
                              &dlogits);
    model.zero_grad();
    model.backward(dlogits);
    const double lr = adam.lr_at(step);
    const double gnorm = adam.step(step);
    const double step_s = seconds_since(t0);
    if (!std::isfinite(lo.loss))
      throw Error("the training loss became " + std::to_string(lo.loss) + " at step " + std::to_string(step + 1) +
                  "; lower --lr or set --clip");
    last_loss = lo.loss;

    TrainRow row;
    row.step = step + 1;
    row.epoch = steps_per_epoch ? step / steps_per_epoch : 0;
    row.loss = lo.loss;
    row.metric = metric_value(info, lo.loss, lo);
    row.lr = lr;
    row.grad_norm = gnorm;
    row.step_ms = step_s * 1000;
    row.tokens_per_s = static_cast<double>(B * info.seq_len) / step_s;
    row.peak_rss_mb = peak_rss_mb();
    log.append_train(row);
    window_loss += lo.loss;
    window_metric += row.metric;
    window_weight += 1;
    ++window_steps;

    const int64_t done = step + 1;
    const bool eval_now = done % opt.eval_every == 0 || done == total_steps || done == opt.stop_at;
    if (eval_now) evaluate(done);
    const double elapsed = seconds_since(loop_start);
    const double rate = (done - start_step) / std::max(elapsed, 1e-9);
    if (eval_now || (progress.tty && elapsed - progress.last_print > 0.25)) {
      progress.last_print = elapsed;
      char buf[512];
      int len = std::snprintf(buf, sizeof buf, "step %lld/%lld", static_cast<long long>(done),
                              static_cast<long long>(total_steps));
      if (steps_per_epoch)
        len += std::snprintf(buf + len, sizeof buf - len, " (epoch %lld)", static_cast<long long>(step / steps_per_epoch + 1));
      len += std::snprintf(buf + len, sizeof buf - len, " | loss %.4f %s %.4f", window_loss / window_weight,
                           metric_name(info.metric), window_metric / window_weight);
      if (eval_now)
        len += std::snprintf(buf + len, sizeof buf - len, " | eval loss %.4f %s %.4f", last_eval_loss,
                             metric_name(info.metric), last_eval_metric);
      std::snprintf(buf + len, sizeof buf - len, " | lr %.2e | %.2f steps/s | ETA %s", lr, rate,
                    duration_text((total_steps - done) / rate).c_str());
      progress.line(buf, eval_now);
      if (eval_now) window_loss = window_metric = window_weight = 0, window_steps = 0;
    }
    if (opt.checkpoint_every > 0 && done % opt.checkpoint_every == 0) save(done);
    if (eval_now && opt.patience > 0 && evals_without_gain >= opt.patience) {
      status = "early_stopped";
      result.stopped_early = true;
      ++step;
      break;
    }
    if (done == opt.stop_at) {
      status = "stopped_at_" + std::to_string(done);
      ++step;
      break;
    }
  }
  (void)window_steps;
  result.steps_done = step;
  save(step);

  result.final_metric = last_eval_metric;
  result.best_metric = best;
  result.final_loss = last_loss;
  // Key names are the run log schema's (docs/runlog.md: final_metric, best_metric, ...).
  log.write_summary({{"final_metric", last_eval_metric},
                     {"final_eval_loss", last_eval_loss},
                     {"best_metric", best},
                     {"best_step", static_cast<double>(best_step)},
                     {"final_train_loss", last_loss},
                     {"steps", static_cast<double>(step)},
                     {"wall_time_s", seconds_since(t_start)},
                     {"peak_rss_mb", peak_rss_mb()},
                     {"n_params", static_cast<double>(model.n_params())}},
                    {{"status", status}, {"metric_name", metric_name(info.metric)}, {"checkpoint", ckpt_path}});
  log.close();
  if (!opt.quiet)
    std::printf("%s after %lld steps: eval %s %.4f (best %.4f at step %lld), %s, log %s\n", status.c_str(),
                static_cast<long long>(step), metric_name(info.metric), last_eval_metric, best,
                static_cast<long long>(best_step), duration_text(seconds_since(t_start)).c_str(), log_path.c_str());
  return result;
}

}  // namespace ssmhost
