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
#include <map>
#include <memory>
#include <optional>

#include "checkpoint.hpp"
#include "git_commit.h"  // generated: SSMHOST_GIT_COMMIT
#include "model.hpp"
#include "optimizer.hpp"
#include "runlog.hpp"
#include "task_names.hpp"

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

// Which plugins the run used, for /config/plugins: every plugin an object was
// made from, children included (the registry records each creation), with the
// file and its hash.
void run_log_plugins(Registry& reg, RunLogSetup& setup) {
  for (const PluginInfo* p : reg.used())
    setup.plugins.push_back({p->id, kind_name(p->kind), p->version,
                             std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor), p->path, p->sha256});
}

// One training run, in the order train() calls its pieces: the constructor
// (setup), resume(), open_log(), loop() (train_step() after train_step(), with
// evaluate() and write_checkpoint() when due), summary().
class Trainer {
 public:
  Trainer(Registry& reg, const RunOptions& opt);
  void resume();
  void open_log(const std::string& command_line);
  void loop();
  TrainResult summary();

 private:
  bool train_step();
  void evaluate(int64_t step_done);
  void print_progress(int64_t done, double lr, bool eval_now);
  void write_checkpoint(int64_t step_done);

  Registry& reg_;
  const RunOptions& opt_;
  const Clock::time_point t_start_;

  // setup
  std::unique_ptr<TaskObject> task_;
  ssm_task_info info_{};
  int64_t total_steps_ = 0, steps_per_epoch_ = 0;
  std::optional<Model> model_;
  std::optional<AdamW> adam_;

  // early stopping and the data position (a checkpoint restores them)
  bool better_high_ = false;
  double best_ = 0;
  int64_t best_step_ = 0, evals_without_gain_ = 0;
  int64_t start_step_ = 0;

  // the run log and its checkpoint
  std::string log_path_, ckpt_path_;
  std::optional<RunLog> log_;

  // the loop
  int64_t B_ = 0, T_ = 0;
  Batch batch_;
  Tensor dlogits_;
  Progress progress_{false, false};
  TrainResult result_;
  double last_eval_loss_ = NAN, last_eval_metric_ = NAN;
  std::string status_ = "completed";
  double window_loss_ = 0, window_metric_ = 0, window_weight_ = 0;
  Clock::time_point loop_start_;
  int64_t step_ = 0;  // the step being taken; after loop(), the steps done
  double last_loss_ = NAN;
};

// Setup: checks the options, creates the task, the model and the optimizer.
// Everything that can fail on bad input fails here or in resume(), before
// any file is written.
Trainer::Trainer(Registry& reg, const RunOptions& opt) : reg_(reg), opt_(opt), t_start_(Clock::now()) {
  ssm::kernels::set_threads(opt.threads);

  task_ = reg.create_task(opt.task, opt.all);
  info_ = task_->info();
  if (info_.seq_len < 1) throw Error("task '" + opt.task + "' reports sequence length " + std::to_string(info_.seq_len));
  if (info_.n_eval < 1) throw Error("task '" + opt.task + "' has no evaluation examples");
  if (opt.batch_size < 1) throw Error("--batch-size must be >= 1, got " + std::to_string(opt.batch_size));

  total_steps_ = opt.steps;
  if (info_.n_train > 0) {
    steps_per_epoch_ = info_.n_train / opt.batch_size;
    if (steps_per_epoch_ < 1)
      throw Error("--batch-size " + std::to_string(opt.batch_size) + " is larger than the training set (" +
                  std::to_string(info_.n_train) + " examples)");
    if (opt.epochs > 0) total_steps_ = opt.epochs * steps_per_epoch_;
  } else if (opt.epochs > 0 && opt.steps <= 0) {
    throw Error("task '" + opt.task + "' generates data without end: give --steps, not --epochs");
  }
  if (total_steps_ < 1) throw Error("--steps must be >= 1, got " + std::to_string(total_steps_));
  if (opt.eval_every < 1) throw Error("--eval-every must be >= 1, got " + std::to_string(opt.eval_every));

  ModelConfig mc;
  mc.layer = opt.layer;
  mc.layer_config = opt.all;
  mc.d_model = opt.d_model;
  mc.n_layers = opt.n_layers;
  mc.dropout = opt.dropout;
  mc.prenorm = opt.prenorm;
  mc.norm = opt.norm;
  mc.task = info_;
  mc.seed = opt.seed;
  mc.threads = opt.threads;
  if (opt.dropout < 0 || opt.dropout >= 1) throw Error("--dropout must be in [0, 1), got " + opt.all.at("dropout"));
  model_.emplace(reg, mc);

  OptimizerConfig oc;
  oc.lr = opt.lr;
  oc.weight_decay = opt.weight_decay;
  oc.warmup = opt.warmup;
  oc.total_steps = total_steps_;
  oc.schedule = opt.schedule;
  oc.clip = opt.clip;
  adam_.emplace(model_->params(), oc);

  better_high_ = higher_is_better(info_.metric);
  best_ = better_high_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

// Continues the run saved in opt.resume: parameters, Adam moments, the step
// (the data position and the RNG counter) and early stopping's state. The
// options must be the checkpoint's but for the few a resumed run may change.
void Trainer::resume() {
  if (opt_.resume.empty()) return;
  CheckpointData ck = load_checkpoint(opt_.resume);
  for (const auto& kv : opt_.all) {
    if (may_change_on_resume(kv.first)) continue;
    auto it = ck.config.find(kv.first);
    if (it != ck.config.end() && it->second != kv.second)
      throw Error("--resume " + opt_.resume + ": option " + kv.first + " is '" + kv.second + "' here but '" +
                  it->second + "' in the checkpoint; drop it to continue the same run");
  }
  std::map<std::string, const NamedArray*> by_name;
  for (const NamedArray& a : ck.arrays) by_name[a.name] = &a;
  auto restore = [&](const std::string& name, Tensor& t) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error("--resume " + opt_.resume + ": the checkpoint has no array '" + name + "' (another model?)");
    if (it->second->shape != t.shape() || static_cast<int64_t>(it->second->data.size()) != t.numel())
      throw Error("--resume " + opt_.resume + ": array '" + name + "' has another shape in the checkpoint");
    std::copy(it->second->data.begin(), it->second->data.end(), t.data<float>());
  };
  auto& ps = model_->params();
  for (size_t i = 0; i < ps.size(); ++i) {
    restore("param/" + ps[i].name, ps[i].value);
    restore("adam_m/" + ps[i].name, adam_->moments_m()[i]);
    restore("adam_v/" + ps[i].name, adam_->moments_v()[i]);
  }
  start_step_ = ck.step;
  // Early stopping continues where it was (absent in checkpoints of older runs).
  if (ck.trainer_state.count("best_metric")) {
    best_ = ck.trainer_state.at("best_metric");
    best_step_ = static_cast<int64_t>(ck.trainer_state.at("best_step"));
    evals_without_gain_ = static_cast<int64_t>(ck.trainer_state.at("evals_without_gain"));
  }
  if (start_step_ >= total_steps_)
    throw Error("--resume " + opt_.resume + ": the checkpoint is at step " + std::to_string(start_step_) +
                ", already the end of this run (" + std::to_string(total_steps_) + " steps)");
}

// Creates the run log (an unwritable path fails here, leaving nothing behind).
void Trainer::open_log(const std::string& command_line) {
  log_path_ = opt_.log_path.empty() ? default_log_path(opt_) : opt_.log_path;
  if (opt_.log_path.empty()) {
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
                      {"threads", std::to_string(opt_.threads)},
                      {"resumed_from", opt_.resume}};
  setup.config = opt_.all;
  setup.config["steps_total"] = std::to_string(total_steps_);
  run_log_plugins(reg_, setup);
  setup.metric_name = metric_name(info_.metric);
  log_.emplace(RunLog::create(log_path_, setup));
  ckpt_path_ = log_path_ + ".ckpt";
}

// Steps until the end, early stopping or --stop-at, then checkpoints.
void Trainer::loop() {
  B_ = opt_.batch_size;
  T_ = model_->targets_per_example();
  batch_.shape(info_, B_, T_);
  dlogits_ = Tensor::of<float>({B_ * T_, info_.n_out});
  progress_ = Progress{static_cast<bool>(isatty(STDOUT_FILENO)), opt_.quiet};
  result_.log_path = log_path_;
  loop_start_ = Clock::now();
  for (step_ = start_step_; step_ < total_steps_;) {
    const bool go_on = train_step();
    ++step_;
    if (!go_on) break;
  }
  result_.steps_done = step_;
  write_checkpoint(step_);
}

// One step: a batch, forward, loss, backward, AdamW and the log's row; then
// the evaluation, progress line and checkpoint that are due. Returns false
// when the run stops after it (early stopping, --stop-at).
bool Trainer::train_step() {
  const int64_t step = step_;
  const auto t0 = Clock::now();
  task_->batch(SSM_SPLIT_TRAIN, opt_.seed, static_cast<uint64_t>(step), B_, batch_.x.dl(), batch_.y.dl(),
               info_.has_mask ? batch_.mask.dl() : nullptr);
  const Tensor& logits = model_->forward(batch_.x, true, static_cast<uint64_t>(step));
  LossOut lo = compute_loss(info_, logits, batch_, info_.has_mask ? batch_.mask.data<float>() : nullptr, B_ * T_,
                            &dlogits_);
  model_->zero_grad();
  model_->backward(dlogits_);
  const double lr = adam_->lr_at(step);
  const double gnorm = adam_->step(step);
  const double step_s = seconds_since(t0);
  if (!std::isfinite(lo.loss))
    throw Error("the training loss became " + std::to_string(lo.loss) + " at step " + std::to_string(step + 1) +
                "; lower --lr or set --clip");
  last_loss_ = lo.loss;

  TrainRow row;
  row.step = step + 1;
  row.epoch = steps_per_epoch_ ? step / steps_per_epoch_ : 0;
  row.loss = lo.loss;
  row.metric = metric_value(info_, lo.loss, lo);
  row.lr = lr;
  row.grad_norm = gnorm;
  row.step_ms = step_s * 1000;
  row.tokens_per_s = static_cast<double>(B_ * info_.seq_len) / step_s;
  row.peak_rss_mb = peak_rss_mb();
  log_->append_train(row);
  window_loss_ += lo.loss;
  window_metric_ += row.metric;
  window_weight_ += 1;

  const int64_t done = step + 1;
  const bool eval_now = done % opt_.eval_every == 0 || done == total_steps_ || done == opt_.stop_at;
  if (eval_now) evaluate(done);
  print_progress(done, lr, eval_now);
  if (opt_.checkpoint_every > 0 && done % opt_.checkpoint_every == 0) write_checkpoint(done);
  if (eval_now && opt_.patience > 0 && evals_without_gain_ >= opt_.patience) {
    status_ = "early_stopped";
    result_.stopped_early = true;
    return false;
  }
  if (done == opt_.stop_at) {
    status_ = "stopped_at_" + std::to_string(done);
    return false;
  }
  return true;
}

// The evaluation set (on its fixed seed) after step_done steps: a row in
// /eval, and early stopping's best and patience.
void Trainer::evaluate(int64_t step_done) {
  const int64_t B = B_, T = T_;
  const int64_t n_batches = (info_.n_eval + B - 1) / B;
  Batch eb;
  eb.shape(info_, B, T);
  std::vector<float> weight(static_cast<size_t>(B * T));
  LossOut total;
  double loss_sum = 0;
  for (int64_t i = 0; i < n_batches; ++i) {
    task_->batch(SSM_SPLIT_TEST, opt_.eval_seed, static_cast<uint64_t>(i), B, eb.x.dl(), eb.y.dl(),
                 info_.has_mask ? eb.mask.dl() : nullptr);
    const int64_t valid = std::min<int64_t>(B, info_.n_eval - i * B);  // the last batch may be partial
    for (int64_t r = 0; r < B * T; ++r)
      weight[r] = (r / T < valid ? 1.0f : 0.0f) * (info_.has_mask ? eb.mask.data<float>()[r] : 1.0f);
    const Tensor& logits = model_->forward(eb.x, false, 0);
    LossOut lo = compute_loss(info_, logits, eb, weight.data(), B * T, nullptr);
    loss_sum += lo.loss * lo.weight;
    total.metric_sum += lo.metric_sum;
    total.weight += lo.weight;
  }
  double loss = total.weight > 0 ? loss_sum / total.weight : NAN;
  double metric = metric_value(info_, loss, total);
  EvalRow row;
  row.step = step_done;
  row.epoch = steps_per_epoch_ ? (step_done - 1) / steps_per_epoch_ : 0;
  row.loss = loss;
  row.metric = metric;
  log_->append_eval(row);
  last_eval_loss_ = loss;
  last_eval_metric_ = metric;
  bool gain = better_high_ ? metric > best_ : metric < best_;
  if (gain) {
    best_ = metric;
    best_step_ = step_done;
    evals_without_gain_ = 0;
  } else {
    ++evals_without_gain_;
  }
}

// The progress line: at every evaluation, and a few times a second on a
// terminal. The loss and metric are averaged since the last evaluation.
void Trainer::print_progress(int64_t done, double lr, bool eval_now) {
  const double elapsed = seconds_since(loop_start_);
  const double rate = (done - start_step_) / std::max(elapsed, 1e-9);
  if (!eval_now && !(progress_.tty && elapsed - progress_.last_print > 0.25)) return;
  progress_.last_print = elapsed;
  char buf[512];
  int len = std::snprintf(buf, sizeof buf, "step %lld/%lld", static_cast<long long>(done),
                          static_cast<long long>(total_steps_));
  if (steps_per_epoch_)
    len += std::snprintf(buf + len, sizeof buf - len, " (epoch %lld)",
                         static_cast<long long>((done - 1) / steps_per_epoch_ + 1));
  len += std::snprintf(buf + len, sizeof buf - len, " | loss %.4f %s %.4f", window_loss_ / window_weight_,
                       metric_name(info_.metric), window_metric_ / window_weight_);
  if (eval_now)
    len += std::snprintf(buf + len, sizeof buf - len, " | eval loss %.4f %s %.4f", last_eval_loss_,
                         metric_name(info_.metric), last_eval_metric_);
  std::snprintf(buf + len, sizeof buf - len, " | lr %.2e | %.2f steps/s | ETA %s", lr, rate,
                duration_text((total_steps_ - done) / rate).c_str());
  progress_.line(buf, eval_now);
  if (eval_now) window_loss_ = window_metric_ = window_weight_ = 0;
}

// The checkpoint after step_done steps (<log>.ckpt, replaced atomically).
void Trainer::write_checkpoint(int64_t step_done) {
  CheckpointData ck;
  ck.step = step_done;
  ck.epoch = steps_per_epoch_ ? step_done / steps_per_epoch_ : 0;
  ck.seed = opt_.seed;
  ck.data_index = static_cast<uint64_t>(step_done);  // batch index = step: the data stream's whole state
  ck.config = opt_.all;
  ck.trainer_state = {{"best_metric", best_},
                      {"best_step", static_cast<double>(best_step_)},
                      {"evals_without_gain", static_cast<double>(evals_without_gain_)}};
  auto& ps = model_->params();
  auto add = [&](const std::string& name, const Tensor& t) {
    const float* d = t.data<float>();
    ck.arrays.push_back({name, t.shape(), std::vector<float>(d, d + t.numel())});
  };
  for (size_t i = 0; i < ps.size(); ++i) {
    add("param/" + ps[i].name, ps[i].value);
    add("adam_m/" + ps[i].name, adam_->moments_m()[i]);
    add("adam_v/" + ps[i].name, adam_->moments_v()[i]);
  }
  save_checkpoint(ckpt_path_, ck);
  result_.checkpoint_path = ckpt_path_;
}

// The run log's /summary, closing it, and the last line on stdout.
TrainResult Trainer::summary() {
  result_.final_metric = last_eval_metric_;
  result_.best_metric = best_;
  result_.final_loss = last_loss_;
  // Key names are the run log schema's (docs/runlog.md: final_metric, best_metric, ...).
  log_->write_summary({{"final_metric", last_eval_metric_},
                       {"final_eval_loss", last_eval_loss_},
                       {"best_metric", best_},
                       {"best_step", static_cast<double>(best_step_)},
                       {"final_train_loss", last_loss_},
                       {"steps", static_cast<double>(step_)},
                       {"wall_time_s", seconds_since(t_start_)},
                       {"peak_rss_mb", peak_rss_mb()},
                       {"n_params", static_cast<double>(model_->n_params())}},
                      {{"status", status_}, {"metric_name", metric_name(info_.metric)}, {"checkpoint", ckpt_path_}});
  log_->close();
  if (!opt_.quiet)
    std::printf("%s after %lld steps: eval %s %.4f (best %.4f at step %lld), %s, log %s\n", status_.c_str(),
                static_cast<long long>(step_), metric_name(info_.metric), last_eval_metric_, best_,
                static_cast<long long>(best_step_), duration_text(seconds_since(t_start_)).c_str(),
                log_path_.c_str());
  return result_;
}

}  // namespace

KV checkpoint_options(const std::string& path) { return load_checkpoint(path).config; }

TrainResult train(Registry& reg, const RunOptions& opt, const std::string& command_line) {
  Trainer trainer(reg, opt);  // everything that can fail on bad input fails before any file is written
  trainer.resume();
  trainer.open_log(command_line);
  trainer.loop();
  return trainer.summary();
}

}  // namespace ssmhost
