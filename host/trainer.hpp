// The training loop: batches from the task, forward/backward through the
// model, AdamW, evaluation, early stopping, the run log and checkpoints.
#pragma once

#include <string>

#include "registry.hpp"

namespace ssmhost {

// Every option of a run, resolved (defaults < task defaults < preset <
// config file < command line) and typed. `all` has every option as text,
// which is what /config records and what plugins receive.
struct RunOptions {
  std::string layer, task;
  int64_t steps = 0, epochs = 0, batch_size = 0, d_model = 0, n_layers = 0;
  double dropout = 0, lr = 0, weight_decay = 0, clip = 0;
  int64_t warmup = 0, eval_every = 0, patience = 0, checkpoint_every = 0, stop_at = 0;
  uint64_t seed = 0, eval_seed = 0;
  int threads = 1;
  bool prenorm = false, quiet = false, log_kernels = false;
  bool overwrite = false;  // --overwrite: an existing log (and its checkpoint) may be replaced
  std::string norm, schedule, log_path, resume;
  KV all;
};

struct TrainResult {
  int64_t steps_done = 0;
  double final_metric = 0, best_metric = 0, final_loss = 0;
  std::string log_path, checkpoint_path;
  bool stopped_early = false;
  // completed, stopped_early, interrupted (a signal or --stop-at); a failed
  // run throws instead.
  std::string status;
  int signal = 0;  // SIGINT or SIGTERM when one stopped the run: exit with 128 + signal
};

// The resolved options a checkpoint was written with (to resume from it).
KV checkpoint_options(const std::string& path);

// Runs the whole training; throws ssmhost::Error on bad input (before any
// file is written) or on a failure during the run (the log keeps its rows,
// and its summary says status "failed", the message and the step, when the
// log itself can still be written).
//
// The run log: --log, or a fresh runs/<task>-<layer>-<time>.h5; with
// --resume X.ckpt and no --log (or --log X), the log X is continued: its
// rows after the checkpoint's step are dropped and a "resume" event added.
// An existing log is never replaced without opt.overwrite, and a log
// another process writes is never touched (RunLock).
//
// SIGINT and SIGTERM during the run finish the current step, checkpoint and
// close the log with status "interrupted" (TrainResult::signal says which);
// a second one ends the process at once (exit status 128 + signal).
TrainResult train(Registry& reg, const RunOptions& opt, const std::string& command_line);

}  // namespace ssmhost
