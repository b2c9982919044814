// Induction heads (the Mamba paper's synthetic task; generator of
// HazyResearch/safari src/dataloaders/synthetics.py::generate_induction_head
// with one trigger and one copied token; docs/tasks.md, "induction_heads").
//
// Vocabulary V (default 16): ordinary tokens 0..V-3, the copy prefix "=>"
// (id V-2) and "." (id V-1, never generated; kept so that V counts what the
// reference counts). One example, for the input length L:
//   s = L uniform ordinary tokens, then "=>"            (length L+1)
//   p uniform in [0, L-3]; s[p] = "=>"; a = s[p+1]      (the token after the first "=>")
//   e = s + [a]                                         (length L+2)
// The model reads x = e[0..L] and predicts y = e[1..L+1] at every position:
// during training every target is scored (`train_targets all`, as the
// reference), in evaluation only the last, a. Chance on it is 1/(V-2).
//
// Train at one length, evaluate at several: the host's --eval-seq-len
// creates this task again with --seq-len N for each N (default 256, 1024,
// 4096) and logs one accuracy per length.
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr int64_t kMaxLen = std::numeric_limits<int32_t>::max() / 4;

class InductionHeads : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("input_len", "256", "L: tokens before the final \"=>\" (the model reads L+1); --seq-len sets it"),
        ssm::Option::integer("ih_vocab", "16", "V: vocabulary incl. \"=>\" (V-2) and \".\" (V-1); ordinary tokens 0..V-3"),
        ssm::Option::string("train_targets", "all", "all: score every next token in training (the reference); last: only the answer"),
        ssm::Option::integer("eval_size", "256", "examples in the evaluation set (at each length)"),
    };
  }

  explicit InductionHeads(const ssm::Config& cfg) {
    const std::string len_key = cfg.has("seq_len") && !cfg.str("seq_len").empty() ? "seq_len" : "input_len";
    L_ = cfg.i64_at_least(len_key, 3);
    if (L_ > kMaxLen) ssm::fail("option '" + len_key + "' must be <= " + std::to_string(kMaxLen) + ", got " + std::to_string(L_));
    V_ = cfg.i64_at_least("ih_vocab", 4);
    if (V_ > 1 << 20) ssm::fail("option 'ih_vocab' must be <= 1048576, got " + std::to_string(V_));
    const std::string targets = cfg.str("train_targets");
    if (targets != "all" && targets != "last")
      ssm::fail("option 'train_targets' must be all or last, got '" + targets + "'");
    train_all_ = targets == "all";
    eval_size_ = cfg.i64_at_least("eval_size", 1);
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_TOKENS;
    i.vocab_size = V_;
    i.seq_len = L_ + 1;
    i.n_out = V_;
    i.readout = SSM_READOUT_ALL;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.has_mask = 1;
    i.n_train = 0;
    i.n_eval = eval_size_;
    return i;
  }

  // The paper's setup scaled to a CPU: 2 layers, batch 8, Adam at 1e-3 without weight decay.
  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"steps", "4000"},   {"batch_size", "8"}, {"lr", "0.001"},     {"weight_decay", "0"},
            {"d_model", "64"},   {"n_layers", "2"},   {"d_state", "64"},   {"eval_every", "500"},
            {"warmup", "100"},   {"eval_seq_len", "256,1024,4096"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor* mask) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    if (B < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(B));
    if (!mask) ssm::fail("induction_heads needs the mask tensor (has_mask is 1)");
    const int64_t T = L_ + 1;
    ssm::check_shape(x, {B, T}, "x");
    ssm::check_shape(y, {B, T}, "y");
    ssm::check_shape(*mask, {B, T}, "mask");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    float* mp = ssm::data<float>(*mask, "mask");
    const bool all = split == SSM_SPLIT_TRAIN && train_all_;
    std::vector<int32_t> e(static_cast<size_t>(L_ + 2));
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t example = index * static_cast<uint64_t>(B) + static_cast<uint64_t>(b);
      // One stream per example (the split in the top bits); the length in the
      // draw's high half: examples at other lengths are other draws.
      const uint64_t stream = (static_cast<uint64_t>(split) << 62) | (example & ((uint64_t{1} << 62) - 1));
      const uint64_t base = static_cast<uint64_t>(L_) << 32;
      // Draws 0..L-1: the tokens; draw L: the trigger's position.
      for (int64_t t = 0; t < L_; ++t) e[t] = static_cast<int32_t>(uniform(seed, stream, base + static_cast<uint64_t>(t), V_ - 2));
      const int32_t prefix = static_cast<int32_t>(V_ - 2);
      e[L_] = prefix;
      const int64_t p = uniform(seed, stream, base + static_cast<uint64_t>(L_), L_ - 2);
      e[p] = prefix;
      e[L_ + 1] = e[p + 1];
      for (int64_t t = 0; t < T; ++t) {
        xp[b * T + t] = e[t];
        yp[b * T + t] = e[t + 1];
        mp[b * T + t] = all || t == T - 1 ? 1.0f : 0.0f;
      }
    }
  }

 private:
  static int64_t uniform(uint64_t seed, uint64_t stream, uint64_t draw, int64_t n) {
    return std::min<int64_t>(static_cast<int64_t>(ssm::kernels::philox_uniform(seed, stream, draw) * n), n - 1);
  }

  int64_t L_ = 0, V_ = 0, eval_size_ = 0;
  bool train_all_ = true;
};

}  // namespace

SSM_PLUGIN_TASK(InductionHeads, "induction_heads", "1.0.0",
                "Induction heads: after a second \"=>\", recall the token that followed the first (Mamba paper)")
