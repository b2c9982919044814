#include "trainer.hpp"

#include <ssm/kernels/loss.hpp>
#include <ssm/kernels/parallel.hpp>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <new>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "checkpoint.hpp"
#include "git_commit.h"  // generated: SSMHOST_GIT_COMMIT
#include "model.hpp"
#include "optimizer.hpp"
#include "runlock.hpp"
#include "runlog.hpp"
#include "task_extras.hpp"  // --eval-seq-len, text vocabulary and baselines (issue 9)
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

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  boost::system::error_code ec1, ec2;
  return boost::filesystem::weakly_canonical(a, ec1) == boost::filesystem::weakly_canonical(b, ec2);
}

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// runs/<task>-<layer>-<UTC time>[-N].h5: the first such name that no log,
// checkpoint or lock file has yet.
std::string default_log_path(const RunOptions& o, int from = 1) {
  std::string stamp = utc_timestamp();  // 2024-05-01T12:00:00Z
  for (char& c : stamp)
    if (c == ':') c = '-';
  const std::string base = "runs/" + o.task + "-" + o.layer + "-" + stamp;
  for (int i = from;; ++i) {
    const std::string path = base + (i > 1 ? "-" + std::to_string(i) : "") + ".h5";
    if (!exists(path) && !exists(path + ".ckpt") && !exists(RunLock::lock_path_of(path))) return path;
  }
}

// Where the run log goes and how: a new file, or the continuation of the
// log a checkpoint belongs to (X.ckpt belongs to X).
struct LogPlan {
  std::string path;
  bool fresh_default = false;  // no --log: a fresh runs/... name
  bool append = false;         // continue the existing log at `path`
  bool replaces = false;       // a new log over an existing one (--overwrite)
};

std::string checkpoint_log(const std::string& ckpt) {
  const std::string suffix = ".ckpt";
  if (ckpt.size() > suffix.size() && ckpt.compare(ckpt.size() - suffix.size(), suffix.size(), suffix) == 0)
    return ckpt.substr(0, ckpt.size() - suffix.size());
  return "";
}

// Decides the plan and refuses what must not happen, before anything is
// created: a log another process writes, an existing log without
// --overwrite, a folder that does not exist. Called again under the lock.
LogPlan plan_log(const RunOptions& opt) {
  LogPlan plan;
  const std::string ckpt_log = opt.resume.empty() ? "" : checkpoint_log(opt.resume);
  if (!opt.log_path.empty()) {
    plan.path = opt.log_path;
  } else if (!ckpt_log.empty()) {
    plan.path = ckpt_log;
  } else {
    plan.fresh_default = true;
    plan.path = default_log_path(opt);
    return plan;
  }
  const std::string where = "run log '" + plan.path + "'";
  const std::string dir = parent_of(plan.path);
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw Error(where + ": cannot create it, directory '" + dir + "' does not exist");
  if (::stat(plan.path.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
    throw Error(where + ": is a directory; --log needs a file name");
  auto holder = RunLock::holder(plan.path);
  if (holder && holder->pid != static_cast<long>(::getpid()))
    throw Error(where + " is being written by " + holder->describe() +
                "; wait for that run to end, stop it, or choose another --log (lock file '" +
                RunLock::lock_path_of(plan.path) + "'; if that process is gone, delete the lock file)");
  const bool continues = !ckpt_log.empty() && same_file(plan.path, ckpt_log);
  if (continues && exists(plan.path) && !opt.overwrite) {
    plan.append = true;
    return plan;
  }
  const std::string ckpt = plan.path + ".ckpt";
  const bool log_there = exists(plan.path);
  const bool ckpt_there = exists(ckpt) && !(!opt.resume.empty() && same_file(ckpt, opt.resume));
  if ((log_there || ckpt_there) && !opt.overwrite)
    throw Error(where + ": " + (log_there ? "the file exists" : "its checkpoint '" + ckpt + "' exists") +
                " and would be replaced; give --overwrite to replace " + (log_there && ckpt_there ? "both" : "it") +
                ", or another --log");
  plan.replaces = log_there || ckpt_there;
  return plan;
}

// The signals that stop a run cleanly: the first finishes the step, writes a
// checkpoint and closes the log; a second ends the process at once.
volatile std::sig_atomic_t g_stop_signal = 0;
char g_lock_file[4096] = "";  // removed by a second signal on its way out

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal == 0) {
    g_stop_signal = sig;
    static const char msg[] =
        "\nssmhost: stopping after this step, with a checkpoint (press Ctrl-C again to stop at once)\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    return;
  }
  if (g_lock_file[0] != '\0') ::unlink(g_lock_file);
  static const char msg[] = "\nssmhost: stopped at once; the run log keeps the rows of its last flush\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(128 + sig);
}

// Installs the handlers for SIGINT and SIGTERM while it lives.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
    g_lock_file[0] = '\0';
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

// Physical memory, limited by RLIMIT_AS when that is lower (0: unknown).
double memory_limit_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  double limit = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
  struct rlimit rl {};
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    const double as = static_cast<double>(rl.rlim_cur);
    if (limit == 0 || as < limit) limit = as;
  }
  return limit;
}

std::string gib(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// The options a resumed run may change; every other one must match the checkpoint.
bool may_change_on_resume(const std::string& key) {
  static const char* keys[] = {"log", "quiet", "stop_at", "threads", "checkpoint_every", "resume", "config",
                               "eval_every", "patience", "plugin_path", "overwrite"};
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
// evaluate() and write_checkpoint() when due), summary() -- or fail().
class Trainer {
 public:
  Trainer(Registry& reg, const RunOptions& opt);
  void resume();
  void open_log(LogPlan plan, const std::string& command_line);
  void loop();
  TrainResult summary();
  // Records a failure during the run in the log (status failed, message,
  // step) and closes it, as far as the log can still be written.
  void fail(const std::string& message);

 private:
  bool train_step();
  void evaluate(int64_t step_done);
  void record_kernels(int64_t step_done);
  void print_progress(int64_t done, double lr, bool eval_now);
  void write_checkpoint(int64_t step_done);
  void continue_log(RunLogSetup& setup, const std::string& command_line);
  void write_summary();

  Registry& reg_;
  const RunOptions& opt_;
  const Clock::time_point t_start_;

  // setup
  std::unique_ptr<TaskObject> task_;
  ssm_task_info info_{};
  int64_t total_steps_ = 0, steps_per_epoch_ = 0;
  std::optional<Model> model_;
  std::optional<AdamW> adam_;
  std::optional<LengthEvals> length_evals_;  // --eval-seq-len
  KernelHistory kernels_;  // --log-kernels
  bool warned_no_kernels_ = false;

  // early stopping and the data position (a checkpoint restores them)
  bool better_high_ = false;
  double best_ = 0;
  int64_t best_step_ = 0, evals_without_gain_ = 0;
  int64_t start_step_ = 0;
  std::string ckpt_threads_;  // --threads of the checkpoint's run

  // the run log and its checkpoint; the lock outlives the log (declared first)
  RunLock lock_;
  std::string log_path_, ckpt_path_;
  std::optional<RunLog> log_;
  int64_t last_checkpoint_step_ = -1;

  // the loop
  int64_t B_ = 0, T_ = 0;
  Batch batch_;
  Tensor dlogits_;
  Progress progress_{false, false};
  TrainResult result_;
  double last_eval_loss_ = NAN, last_eval_metric_ = NAN;
  std::string status_ = "completed", stopped_by_, fail_message_;
  int64_t failed_step_ = 0;
  double window_loss_ = 0, window_metric_ = 0, window_weight_ = 0;
  Clock::time_point loop_start_;
  int64_t step_ = 0;          // the step being taken; after loop(), the steps done
  int64_t working_on_ = 0;    // the step (from 1) being worked on, for a failure's message
  double last_loss_ = NAN;
};

// Setup: checks the options, creates the task, the model, the optimizer and
// the batch buffers. Everything that can fail on bad input fails here or in
// resume(), before any file is written.
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
  if (opt.dropout < 0 || opt.dropout >= 1) throw Error("--dropout must be in [0, 1), got " + opt.all.at("dropout"));

  // The memory a training step needs, at the least: about eight (batch x
  // length x width) float32 activations per block, the gradients' two and
  // the logits. A run that cannot fit them is refused before anything is
  // allocated, with the figure; one whose parameters cannot be allocated
  // fails below, before any file is written.
  {
    const double B = static_cast<double>(opt.batch_size), L = static_cast<double>(info_.seq_len),
                 H = static_cast<double>(opt.d_model), n = static_cast<double>(opt.n_layers);
    const double need = 4.0 * B * L * H * (8.0 * n + 4.0) + 4.0 * B * L * std::max<double>(info_.n_out, 1);
    const double have = memory_limit_bytes();
    if (have > 0 && need > have)
      throw Error("this run needs at least " + gib(need) + " of memory (--batch-size " +
                  std::to_string(opt.batch_size) + " x sequence length " + std::to_string(info_.seq_len) +
                  " x --d-model " + std::to_string(opt.d_model) + " x --n-layers " + std::to_string(opt.n_layers) +
                  "), more than the " + gib(have) + " this machine has; lower --batch-size, --d-model or the sequence length");
  }

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
  try {
    model_.emplace(reg, mc);

    OptimizerConfig oc;
    oc.lr = opt.lr;
    oc.weight_decay = opt.weight_decay;
    oc.warmup = opt.warmup;
    oc.total_steps = total_steps_;
    oc.schedule = opt.schedule;
    oc.clip = opt.clip;
    adam_.emplace(model_->params(), oc);

    B_ = opt.batch_size;
    T_ = model_->targets_per_example();
    batch_.shape(info_, B_, T_);
    dlogits_ = Tensor::of<float>({B_ * T_, info_.n_out});
  } catch (const std::bad_alloc&) {
    throw Error("out of memory while creating the model and its buffers (--batch-size " +
                std::to_string(opt.batch_size) + ", --d-model " + std::to_string(opt.d_model) + ", --n-layers " +
                std::to_string(opt.n_layers) + ")");
  }

  length_evals_.emplace(reg, opt.task, opt.all, info_);
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
  auto restore = [&](const std::string& name, Tensor& t) {
    restore_array(ck, "--resume " + opt_.resume, name, t.shape(), t.data<float>());
  };
  auto& ps = model_->params();
  for (size_t i = 0; i < ps.size(); ++i) {
    restore("param/" + ps[i].name, ps[i].value);
    restore("adam_m/" + ps[i].name, adam_->moments_m()[i]);
    restore("adam_v/" + ps[i].name, adam_->moments_v()[i]);
  }
  start_step_ = ck.step;
  last_checkpoint_step_ = ck.step;
  // Early stopping continues where it was (absent in checkpoints of older runs).
  if (ck.trainer_state.count("best_metric")) {
    best_ = ck.trainer_state.at("best_metric");
    best_step_ = static_cast<int64_t>(ck.trainer_state.at("best_step"));
    evals_without_gain_ = static_cast<int64_t>(ck.trainer_state.at("evals_without_gain"));
  }
  if (start_step_ >= total_steps_)
    throw Error("--resume " + opt_.resume + ": the checkpoint is at step " + std::to_string(start_step_) +
                ", already the end of this run (" + std::to_string(total_steps_) + " steps)");
  auto threads = ck.config.find("threads");
  // Another thread count continues the same run bit for bit (every reduction
  // is cut at fixed positions); the resume event records it all the same.
  if (threads != ck.config.end() && threads->second != std::to_string(opt_.threads)) ckpt_threads_ = threads->second;
}

// The rows of the log being continued up to the checkpoint's step (later
// ones are dropped: the resumed run writes them again), its attributes,
// configuration, plugins and events, and a new event for this resume.
void Trainer::continue_log(RunLogSetup& setup, const std::string& command_line) {
  const std::string where = "run log '" + log_path_ + "'";
  auto cannot = [&](const std::string& why) {
    return Error("--resume " + opt_.resume + ": cannot continue " + where + ": " + why +
                 "; give --log NEW.h5 to continue the run in a new log, or --overwrite to replace this one");
  };
  std::optional<RunLogReader> old;
  try {
    old.emplace(RunLogReader::open(log_path_));
  } catch (const Error& e) {
    throw cannot(e.what());
  }
  // The log must be this run's: its options are the checkpoint's.
  for (const auto& [key, value] : old->config()) {
    if (may_change_on_resume(key) || key == "steps_total") continue;
    auto mine = opt_.all.find(key);
    if (mine != opt_.all.end() && mine->second != value)
      throw cannot("it is the log of another run (option " + key + " is '" + value + "' there, '" + mine->second +
                   "' in the checkpoint)");
  }
  for (const auto& [name, value] : old->root_attrs())
    if (name != "schema_version" && name != "format" && name != "end_time") setup.root_attrs[name] = value;
  setup.root_attrs["resumed_from"] = opt_.resume;
  setup.config = old->config();
  setup.plugins = old->plugin_records();
  if (setup.plugins.empty())
    for (const auto& [id, version] : old->plugins()) setup.plugins.push_back({id, "", version, "", "", ""});
  setup.metric_name = old->metric_name();
  setup.eval_extra_metrics = old->eval_extra_metrics();
  setup.events = old->events();
  // Kernels recorded up to the checkpoint (a log closed before the resume has them).
  const KernelHistory& k = old->kernels();
  kernels_ = KernelHistory{k.layers, k.channels, k.length, {}, {}};
  const size_t per_step = static_cast<size_t>(k.layers * k.channels * k.length);
  for (size_t i = 0; i < k.steps.size(); ++i)
    if (k.steps[i] <= start_step_) {
      kernels_.steps.push_back(k.steps[i]);
      kernels_.values.insert(kernels_.values.end(), k.values.begin() + i * per_step, k.values.begin() + (i + 1) * per_step);
    }

  int64_t last_step = 0;
  size_t dropped = 0;
  for (const TrainRow& row : old->train_rows()) {
    if (row.step > start_step_) {
      ++dropped;
      continue;
    }
    setup.train_rows.push_back(row);
    last_step = row.step;
  }
  for (const EvalRow& row : old->eval_rows()) {
    if (row.step > start_step_) continue;
    setup.eval_rows.push_back(row);
    last_eval_loss_ = row.loss;
    last_eval_metric_ = row.metric;
  }
  std::string detail = "continued from checkpoint '" + opt_.resume + "' at step " + std::to_string(start_step_) +
                       " (" + std::to_string(dropped) + " later rows dropped): " + command_line;
  if (!ckpt_threads_.empty())
    detail += "; --threads " + std::to_string(opt_.threads) + " instead of " + ckpt_threads_;
  if (last_step < start_step_ && !(setup.train_rows.empty() && start_step_ == 0)) {
    const std::string gap = "the log has training rows only up to step " + std::to_string(last_step) + ", steps " +
                            std::to_string(last_step + 1) + ".." + std::to_string(start_step_) + " are missing";
    std::fprintf(stderr, "ssmhost: warning: %s: %s (written by an older ssmhost?)\n", where.c_str(), gap.c_str());
    detail += "; " + gap;
  }
  setup.events.push_back({start_step_, utc_timestamp(), "resume", detail});
}

// Takes the log's lock, then creates the run log: new, or continuing the
// checkpoint's log (written anew beside it and renamed over it, so that the
// old log stays whole until the new one is). Nothing was written before.
void Trainer::open_log(LogPlan plan, const std::string& command_line) {
  if (plan.fresh_default) {
    boost::system::error_code ec;
    boost::filesystem::create_directories("runs", ec);
    // Two runs started in the same second: the second takes the next name.
    for (int i = 2;; ++i) {
      try {
        lock_ = RunLock::acquire(plan.path, command_line);
      } catch (const Error&) {
        if (i > 100) throw;
        plan.path = default_log_path(opt_, i);
        continue;
      }
      if (!exists(plan.path) && !exists(plan.path + ".ckpt")) break;
      lock_.release();
      plan.path = default_log_path(opt_, i);
    }
  } else {
    lock_ = RunLock::acquire(plan.path, command_line);
    plan = plan_log(opt_);  // again, now that no one else can change the files
  }
  std::snprintf(g_lock_file, sizeof g_lock_file, "%s", lock_.path().c_str());
  log_path_ = plan.path;
  ckpt_path_ = log_path_ + ".ckpt";

  RunLogSetup setup;
  if (plan.append) {
    continue_log(setup, command_line);
  } else {
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
    setup.eval_extra_metrics = length_evals_->columns();
    add_task_attrs(*task_, setup.root_attrs);
    if (!opt_.resume.empty())
      setup.events.push_back({start_step_, utc_timestamp(), "resume",
                              "started from checkpoint '" + opt_.resume + "' at step " + std::to_string(start_step_) +
                                  " in a new log: " + command_line});
  }
  log_.emplace(RunLog::create(log_path_, setup));
  // A replaced log's checkpoint belonged to the old run.
  if (plan.replaces && exists(ckpt_path_) && !(!opt_.resume.empty() && same_file(ckpt_path_, opt_.resume)))
    std::remove(ckpt_path_.c_str());
}

// Steps until the end, early stopping, --stop-at or a signal, then checkpoints.
void Trainer::loop() {
  progress_ = Progress{static_cast<bool>(isatty(STDOUT_FILENO)), opt_.quiet};
  result_.log_path = log_path_;
  loop_start_ = Clock::now();
  for (step_ = start_step_; step_ < total_steps_;) {
    if (g_stop_signal) break;  // the step before is done: stop here
    const bool go_on = train_step();
    ++step_;
    if (!go_on) break;
  }
  if (g_stop_signal && step_ < total_steps_ && status_ == "completed") {
    status_ = "interrupted";
    stopped_by_ = signal_name(g_stop_signal);
  }
  result_.steps_done = step_;
  working_on_ = step_;
  if (last_checkpoint_step_ != step_) write_checkpoint(step_);
  result_.checkpoint_path = ckpt_path_;
}

// One step: a batch, forward, loss, backward, AdamW and the log's row; then
// the evaluation, progress line and checkpoint that are due. Returns false
// when the run stops after it (early stopping, --stop-at).
bool Trainer::train_step() {
  const int64_t step = step_;
  working_on_ = step + 1;
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
  // Only where an uninterrupted run evaluates too (not at --stop-at or a
  // signal): a resumed run's log and early stopping are then the same.
  const bool eval_now = done % opt_.eval_every == 0 || done == total_steps_;
  if (eval_now) evaluate(done);
  print_progress(done, lr, eval_now);
  if (opt_.checkpoint_every > 0 && done % opt_.checkpoint_every == 0) write_checkpoint(done);
  if (eval_now && opt_.patience > 0 && evals_without_gain_ >= opt_.patience) {
    status_ = "stopped_early";
    result_.stopped_early = true;
    return false;
  }
  if (done == opt_.stop_at) {
    status_ = "interrupted";
    stopped_by_ = "--stop-at " + std::to_string(done);
    return false;
  }
  return true;
}

// The evaluation set (on its fixed seed) after step_done steps: a row in
// /eval, and early stopping's best and patience.
// --log-kernels: the layers' convolution kernels at this evaluation.
void Trainer::record_kernels(int64_t step_done) {
  const int64_t channels = std::min<int64_t>(8, opt_.d_model), length = std::min<int64_t>(info_.seq_len, 1024);
  std::vector<std::vector<double>> k = model_->conv_kernels(length, channels);
  if (k.empty()) {
    if (kernels_.steps.empty() && !warned_no_kernels_)
      std::fprintf(stderr, "ssmhost: warning: --log-kernels: layer '%s' has no convolution kernel to record\n",
                   opt_.layer.c_str());
    warned_no_kernels_ = true;
    return;
  }
  if (kernels_.steps.empty()) kernels_.layers = static_cast<int64_t>(k.size()), kernels_.channels = channels, kernels_.length = length;
  kernels_.append(step_done, k);
}

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
  length_evals_->evaluate(*model_, B, opt_.eval_seed, row);
  log_->append_eval(row);
  if (opt_.log_kernels) record_kernels(step_done);
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
// The log's rows up to that step are flushed first: whatever happens later,
// the log holds every step the checkpoint has seen, so a resume has no gap.
void Trainer::write_checkpoint(int64_t step_done) {
  log_->flush();
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
  last_checkpoint_step_ = step_done;
  result_.checkpoint_path = ckpt_path_;
}

// The run log's /summary (key names are the schema's, docs/runlog.md).
void Trainer::write_summary() {
  std::map<std::string, double> numbers = {{"final_metric", last_eval_metric_},
                                           {"final_eval_loss", last_eval_loss_},
                                           {"best_metric", best_},
                                           {"best_step", static_cast<double>(best_step_)},
                                           {"final_train_loss", last_loss_},
                                           {"steps", static_cast<double>(step_)},
                                           {"wall_time_s", seconds_since(t_start_)},
                                           {"peak_rss_mb", peak_rss_mb()},
                                           {"n_params", static_cast<double>(model_->n_params())}};
  std::map<std::string, std::string> text = {
      {"status", status_}, {"metric_name", metric_name(info_.metric)}, {"checkpoint", ckpt_path_}};
  if (status_ == "failed") {
    numbers["failed_step"] = static_cast<double>(failed_step_);
    text["message"] = fail_message_;
    if (last_checkpoint_step_ >= 0) numbers["checkpoint_step"] = static_cast<double>(last_checkpoint_step_);
  }
  if (status_ == "interrupted") text["stopped_by"] = stopped_by_;
  add_task_summary(*task_, numbers);
  if (!kernels_.empty()) log_->write_kernels(kernels_);
  log_->write_summary(numbers, text);
}

// The run log's /summary, closing it, and the last line on stdout.
TrainResult Trainer::summary() {
  result_.final_metric = last_eval_metric_;
  result_.best_metric = best_;
  result_.final_loss = last_loss_;
  result_.status = status_;
  result_.signal = g_stop_signal;
  write_summary();
  log_->close();
  lock_.release();
  if (!opt_.quiet)
    std::printf("%s after %lld steps: eval %s %.4f (best %.4f at step %lld), %s, log %s\n", status_.c_str(),
                static_cast<long long>(step_), metric_name(info_.metric), last_eval_metric_, best_,
                static_cast<long long>(best_step_), duration_text(seconds_since(t_start_)).c_str(),
                log_path_.c_str());
  if (status_ == "interrupted" && g_stop_signal)
    std::fprintf(stderr, "ssmhost: stopped by %s after step %lld; checkpoint '%s' (`ssmhost --resume %s` continues)\n",
                 stopped_by_.c_str(), static_cast<long long>(step_), ckpt_path_.c_str(), ckpt_path_.c_str());
  return result_;
}

void Trainer::fail(const std::string& message) {
  status_ = "failed";
  fail_message_ = message;
  failed_step_ = working_on_;
  if (!log_) return;
  // On a full disk, the space the lock file kept in reserve lets the log
  // take its last rows and this summary.
  lock_.release_reserve();
  try {
    if (log_->failed() && !log_->retry()) {
      log_->close();  // writes nothing: the file stays as its last good flush left it
      std::fprintf(stderr,
                   "ssmhost: the run log '%s' could not be written; it keeps the rows of its last good flush%s\n",
                   log_path_.c_str(),
                   last_checkpoint_step_ >= 0
                       ? (", and the checkpoint of step " + std::to_string(last_checkpoint_step_) + " is intact").c_str()
                       : "");
      return;
    }
    write_summary();
    log_->close();
    if (last_checkpoint_step_ >= 0)
      std::fprintf(stderr, "ssmhost: the run failed at step %lld; the checkpoint of step %lld is intact ('%s')\n",
                   static_cast<long long>(failed_step_), static_cast<long long>(last_checkpoint_step_),
                   ckpt_path_.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssmhost: warning: could not record the failure in the run log: %s\n", e.what());
  }
}

}  // namespace

KV checkpoint_options(const std::string& path) { return load_checkpoint(path).config; }

TrainResult train(Registry& reg, const RunOptions& opt, const std::string& command_line) {
  LogPlan plan = plan_log(opt);  // refuses a busy or existing log before anything is allocated
  Trainer trainer(reg, opt);     // everything that can fail on bad input fails before any file is written
  trainer.resume();
  StopSignals signals;
  trainer.open_log(plan, command_line);
  try {
    trainer.loop();
  } catch (const std::bad_alloc&) {
    const std::string message = "out of memory during the run";
    trainer.fail(message);
    throw Error(message);
  } catch (const std::exception& e) {
    trainer.fail(e.what());
    throw;
  }
  return trainer.summary();
}

}  // namespace ssmhost
