#include "task_extras.hpp"

#include <ssm/ext/text_vocab.h>
#include <ssm/kernels/loss.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "error.hpp"
#include "task_names.hpp"
#include "tensor.hpp"

namespace ssmhost {

namespace {

const void* task_extension(const TaskObject& task, const char* id) {
  const ssm_task_iface& f = task.f();
  if (!SSM_HAS_FIELD(&f, ssm_task_iface, get_extension) || !f.get_extension) return nullptr;
  return f.get_extension(task.instance(), id);
}

int64_t targets_of(const ssm_task_info& t) {
  switch (t.readout) {
    case SSM_READOUT_LAST_M: return t.readout_m;
    case SSM_READOUT_ALL: return t.seq_len;
    default: return 1;
  }
}

// "256,1024, 4096" -> {256, 1024, 4096}; every entry a positive integer.
std::vector<int64_t> parse_lengths(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 1)
      throw Error("--eval-seq-len must be a comma-separated list of lengths >= 1, e.g. 256,1024,4096; got '" + text + "'");
    out.push_back(v);
    start = comma + 1;
  }
  return out;
}

}  // namespace

LengthEvals::LengthEvals(Registry& reg, const std::string& task, const KV& config, const ssm_task_info& main)
    : metric_(metric_name(main.metric)) {
  auto it = config.find("eval_seq_len");
  if (it == config.end() || it->second.empty()) return;
  for (int64_t len : parse_lengths(it->second)) {
    bool seen = false;
    for (const One& o : evals_) seen |= o.len == len;
    if (seen) continue;
    KV c = config;
    c["seq_len"] = std::to_string(len);
    One one{len, nullptr, {}};
    try {
      one.task = reg.create_task(task, c);
    } catch (const Error& e) {
      throw Error("--eval-seq-len " + std::to_string(len) + ": " + e.what());
    }
    one.info = one.task->info();
    const ssm_task_info& t = one.info;
    if (t.input_kind != main.input_kind || t.vocab_size != main.vocab_size || t.in_channels != main.in_channels ||
        t.n_out != main.n_out || t.readout != main.readout || t.readout_m != main.readout_m || t.loss != main.loss ||
        t.metric != main.metric || t.has_mask != main.has_mask || t.n_eval < 1)
      throw Error("--eval-seq-len " + std::to_string(len) + ": task '" + task +
                  "' at that length is not the same task (its inputs, outputs or metric change); "
                  "only a task that takes --seq-len can be evaluated at other lengths");
    evals_.push_back(std::move(one));
  }
}

std::vector<std::string> LengthEvals::columns() const {
  std::vector<std::string> out;
  for (const One& o : evals_) {
    out.push_back(metric_ + "_L" + std::to_string(o.len));
    out.push_back("loss_L" + std::to_string(o.len));
  }
  return out;
}

void LengthEvals::evaluate(Model& model, int64_t batch_size, uint64_t eval_seed, EvalRow& row) const {
  for (const One& o : evals_) {
    const auto [loss, metric] = evaluate_task(model, *o.task, o.info, batch_size, eval_seed);
    row.extra[metric_ + "_L" + std::to_string(o.len)] = metric;
    row.extra["loss_L" + std::to_string(o.len)] = loss;
  }
}

std::pair<double, double> evaluate_task(Model& model, const TaskObject& task, const ssm_task_info& t,
                                        int64_t B, uint64_t eval_seed) {
  const int64_t T = targets_of(t);
  Tensor x = t.input_kind == SSM_INPUT_TOKENS ? Tensor::of<int32_t>({B, t.seq_len})
                                              : Tensor::of<float>({B, t.seq_len, t.in_channels});
  Tensor y = t.loss == SSM_LOSS_CROSS_ENTROPY ? Tensor::of<int32_t>({B, T}) : Tensor::of<float>({B, T, t.n_out});
  Tensor mask;
  if (t.has_mask) mask = Tensor::of<float>({B, T});
  std::vector<float> weight(static_cast<size_t>(B * T));
  double loss_sum = 0, metric_sum = 0, weight_sum = 0;
  const int64_t n_batches = (t.n_eval + B - 1) / B;
  for (int64_t i = 0; i < n_batches; ++i) {
    task.batch(SSM_SPLIT_TEST, eval_seed, static_cast<uint64_t>(i), B, x.dl(), y.dl(), t.has_mask ? mask.dl() : nullptr);
    const int64_t valid = std::min<int64_t>(B, t.n_eval - i * B);  // the last batch may be partial
    double w = 0;
    for (int64_t r = 0; r < B * T; ++r) {
      weight[r] = (r / T < valid ? 1.0f : 0.0f) * (t.has_mask ? mask.data<float>()[r] : 1.0f);
      w += weight[r] > 0 ? 1 : 0;
    }
    const Tensor& logits = model.forward(x, false, 0);
    double loss = 0;
    if (t.loss == SSM_LOSS_CROSS_ENTROPY) {
      int64_t correct = 0;
      loss = ssm::kernels::cross_entropy(logits.data<float>(), y.data<int32_t>(), weight.data(), B * T, t.n_out,
                                         static_cast<float*>(nullptr), &correct);
      metric_sum += static_cast<double>(correct);
    } else {
      loss = ssm::kernels::mse(logits.data<float>(), y.data<float>(), weight.data(), B * T, t.n_out,
                               static_cast<float*>(nullptr));
      metric_sum += loss * w;
    }
    loss_sum += loss * w;
    weight_sum += w;
  }
  const double loss = weight_sum > 0 ? loss_sum / weight_sum : NAN;
  double metric = loss;
  if (t.metric == SSM_METRIC_ACCURACY) metric = weight_sum > 0 ? metric_sum / weight_sum : 0;
  if (t.metric == SSM_METRIC_BPC) metric = loss / std::log(2.0);
  return {loss, metric};
}

void add_task_attrs(const TaskObject& task, std::map<std::string, std::string>& root_attrs) {
  const auto* v = static_cast<const ssm_text_vocab*>(task_extension(task, SSM_EXT_TEXT_VOCAB));
  if (!v || !SSM_HAS_FIELD(v, ssm_text_vocab, codepoints)) return;
  if (v->kind == SSM_TEXT_VOCAB_BYTE) {
    root_attrs["vocab_kind"] = "byte";
  } else if (v->kind == SSM_TEXT_VOCAB_CHAR && v->codepoints) {
    root_attrs["vocab_kind"] = "char";
    std::string cps;
    for (int64_t i = 0; i < v->size; ++i) cps += (i ? "," : "") + std::to_string(v->codepoints[i]);
    root_attrs["vocab_codepoints"] = cps;
  }
}

void add_task_summary(const TaskObject& task, std::map<std::string, double>& numbers) {
  const auto* b = static_cast<const ssm_text_baselines*>(task_extension(task, SSM_EXT_TEXT_BASELINES));
  if (!b || !SSM_HAS_FIELD(b, ssm_text_baselines, bigram_bpc)) return;
  numbers["unigram_bpc"] = b->unigram_bpc;
  numbers["bigram_bpc"] = b->bigram_bpc;
}

}  // namespace ssmhost
