// The previous-bit task (seed 003; definition in docs/tasks.md, "prevbit"):
// a stream of random bits; at every step t >= k the target is the bit seen
// k steps earlier, x[t-k]. The first k steps have no target (mask 0).
//
// Each example is a pure function of the seed and its index (its own Philox
// stream), whatever the batch size.
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr int64_t kMaxLen = std::numeric_limits<int32_t>::max() / 4;

class PrevBit : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("prevbit_len", "256", "L: bits per sequence (the run's --seq-len, when given, sets it)"),
        ssm::Option::integer("lag", "16", "k: the target at step t is the bit of step t-k (1 <= k < L)"),
        ssm::Option::real("p_one", "0.5", "probability of a 1 bit; chance accuracy is max(p, 1-p)"),
        ssm::Option::integer("eval_size", "256", "sequences in the evaluation set"),
    };
  }

  explicit PrevBit(const ssm::Config& cfg) {
    const std::string len_key = cfg.has("seq_len") && !cfg.str("seq_len").empty() ? "seq_len" : "prevbit_len";
    L_ = cfg.i64_at_least(len_key, 2);
    if (L_ > kMaxLen) ssm::fail("option '" + len_key + "' must be <= " + std::to_string(kMaxLen) + ", got " + std::to_string(L_));
    k_ = cfg.i64_at_least("lag", 1);
    if (k_ >= L_) ssm::fail("option 'lag' must be < the sequence length " + std::to_string(L_) + ", got " + std::to_string(k_));
    p_one_ = cfg.f64("p_one");
    if (!(p_one_ > 0 && p_one_ < 1)) ssm::fail("option 'p_one' must be in (0, 1), got " + cfg.str("p_one"));
    eval_size_ = cfg.i64_at_least("eval_size", 1);
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_TOKENS;
    i.vocab_size = 2;
    i.seq_len = L_;
    i.n_out = 2;
    i.readout = SSM_READOUT_ALL;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.has_mask = 1;
    i.n_train = 0;
    i.n_eval = eval_size_;
    return i;
  }

  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"steps", "1000"}, {"batch_size", "16"}, {"lr", "0.01"},       {"d_model", "32"},
            {"n_layers", "1"}, {"d_state", "32"},    {"eval_every", "200"}, {"warmup", "20"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor* mask) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    if (B < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(B));
    if (!mask) ssm::fail("prevbit needs the mask tensor (has_mask is 1)");
    ssm::check_shape(x, {B, L_}, "x");
    ssm::check_shape(y, {B, L_}, "y");
    ssm::check_shape(*mask, {B, L_}, "mask");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    float* mp = ssm::data<float>(*mask, "mask");
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t example = index * static_cast<uint64_t>(B) + static_cast<uint64_t>(b);
      const uint64_t stream = (static_cast<uint64_t>(split) << 62) | (example & ((uint64_t{1} << 62) - 1));
      int32_t* xr = xp + b * L_;
      for (int64_t t = 0; t < L_; ++t)
        xr[t] = ssm::kernels::philox_uniform(seed, stream, static_cast<uint64_t>(t)) < p_one_ ? 1 : 0;
      for (int64_t t = 0; t < L_; ++t) {
        yp[b * L_ + t] = t >= k_ ? xr[t - k_] : 0;
        mp[b * L_ + t] = t >= k_ ? 1.0f : 0.0f;
      }
    }
  }

 private:
  int64_t L_ = 0, k_ = 0, eval_size_ = 0;
  double p_one_ = 0.5;
};

}  // namespace

SSM_PLUGIN_TASK(PrevBit, "prevbit", "1.0.0", "Previous bit: output the bit seen k steps earlier, every step scored")
