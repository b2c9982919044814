// What some tasks add to a run, kept apart from the training loop:
//  - evaluation at more sequence lengths (--eval-seq-len N1,N2,...): the
//    task is created again with seq_len = N for each N and evaluated after
//    each regular evaluation; /eval gets the columns "<metric>_L<N>" and
//    "loss_L<N>" (induction_heads: train at 256, evaluate at 256, 1024, 4096);
//  - a text vocabulary (ssm/ext/text_vocab.h) as root attributes of the run
//    log, vocab_kind and vocab_codepoints, so that ids can be decoded later;
//  - a language-modelling task's baselines (unigram_bpc, bigram_bpc) in
//    /summary, to compare the model's bits per character with.
#pragma once

#include <ssm/abi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model.hpp"
#include "registry.hpp"
#include "runlog.hpp"

namespace ssmhost {

class LengthEvals {
 public:
  // `config` is the run's (every resolved option); the list is its
  // "eval_seq_len" (absent or empty: none). Each length's task must match
  // `main` in everything the model depends on (input, vocabulary, channels,
  // outputs, read-out, loss, metric). Throws Error naming the option.
  LengthEvals(Registry& reg, const std::string& task, const KV& config, const ssm_task_info& main);
  bool empty() const { return evals_.empty(); }
  // The /eval columns it fills, for RunLogSetup::eval_extra_metrics.
  std::vector<std::string> columns() const;
  // Evaluates the model at every length (batches of batch_size, the fixed
  // eval seed) and puts the values into row.extra.
  void evaluate(Model& model, int64_t batch_size, uint64_t eval_seed, EvalRow& row) const;

 private:
  struct One {
    int64_t len;
    std::unique_ptr<TaskObject> task;
    ssm_task_info info;
  };
  std::vector<One> evals_;
  std::string metric_;
};

// The loss and metric of `model` on the evaluation split of `task` (the
// trainer's evaluation, for a task other than the one it trains on).
std::pair<double, double> evaluate_task(Model& model, const TaskObject& task, const ssm_task_info& info,
                                        int64_t batch_size, uint64_t eval_seed);

// Root attributes from the task's text vocabulary extension, if it has one.
void add_task_attrs(const TaskObject& task, std::map<std::string, std::string>& root_attrs);
// Summary numbers from the task's text baselines extension, if it has one.
void add_task_summary(const TaskObject& task, std::map<std::string, double>& numbers);

}  // namespace ssmhost
