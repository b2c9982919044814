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
  bool prenorm = false, quiet = false;
  std::string norm, schedule, log_path, resume;
  KV all;
};

struct TrainResult {
  int64_t steps_done = 0;
  double final_metric = 0, best_metric = 0, final_loss = 0;
  std::string log_path, checkpoint_path;
  bool stopped_early = false;
};

// The resolved options a checkpoint was written with (to resume from it).
KV checkpoint_options(const std::string& path);

// Runs the whole training; throws ssmhost::Error on bad input (before any
// file is written) or on a failure during the run (the log keeps its rows).
TrainResult train(Registry& reg, const RunOptions& opt, const std::string& command_line);

}  // namespace ssmhost
