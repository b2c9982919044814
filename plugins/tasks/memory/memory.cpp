// The memory task (seed 003; definition in docs/tasks.md, "memory"): recall a
// value seen earlier in a long sequence of noise, read out at the last step.
//
//   marked (default): the sequence is L uniform values in 0..V-1, except that
//     a marker token (id V) sits at position q-1, for q uniform in
//     [1, L-1-min_lag]; the target is the value at q. Where the value sits
//     changes from example to example, so the model must find it by content.
//   fixed: no marker; the target is the value at position L-1-lag, a fixed
//     lag that a time-invariant filter can learn.
//
// Each example is a pure function of the seed and its index (its own Philox
// stream), whatever the batch size.
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr int64_t kMaxLen = std::numeric_limits<int32_t>::max() / 4;

class Memory : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("memory_len", "128", "L: sequence length (the run's --seq-len, when given, sets it)"),
        ssm::Option::integer("n_values", "8", "V: values 0..V-1, the noise and the value to recall alike; chance is 1/V"),
        ssm::Option::string("mode", "marked", "marked: a marker token precedes the value, anywhere; fixed: the value is lag steps before the end"),
        ssm::Option::integer("lag", "0", "fixed mode: recall the value lag steps before the last position (1 <= lag < L; 0: L/2)"),
        ssm::Option::integer("min_lag", "0", "marked mode: the value is at least this many steps before the last position"),
        ssm::Option::integer("eval_size", "1024", "examples in the evaluation set"),
    };
  }

  explicit Memory(const ssm::Config& cfg) {
    const std::string len_key = cfg.has("seq_len") && !cfg.str("seq_len").empty() ? "seq_len" : "memory_len";
    L_ = cfg.i64_at_least(len_key, 2);
    if (L_ > kMaxLen) ssm::fail("option '" + len_key + "' must be <= " + std::to_string(kMaxLen) + ", got " + std::to_string(L_));
    V_ = cfg.i64_at_least("n_values", 2);
    if (V_ > 1 << 20) ssm::fail("option 'n_values' must be <= 1048576, got " + std::to_string(V_));
    const std::string mode = cfg.str("mode");
    if (mode != "marked" && mode != "fixed") ssm::fail("option 'mode' must be marked or fixed, got '" + mode + "'");
    marked_ = mode == "marked";
    lag_ = cfg.i64_at_least("lag", 0);
    if (lag_ == 0) lag_ = L_ / 2;
    if (!marked_ && lag_ >= L_)
      ssm::fail("option 'lag' must be < the sequence length " + std::to_string(L_) + ", got " + std::to_string(lag_));
    min_lag_ = cfg.i64_at_least("min_lag", 0);
    if (marked_ && min_lag_ > L_ - 2)
      ssm::fail("option 'min_lag' must be <= L - 2 = " + std::to_string(L_ - 2) + " (the marker needs a place), got " +
                std::to_string(min_lag_));
    eval_size_ = cfg.i64_at_least("eval_size", 1);
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_TOKENS;
    i.vocab_size = marked_ ? V_ + 1 : V_;
    i.seq_len = L_;
    i.n_out = V_;
    i.readout = SSM_READOUT_LAST;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.n_train = 0;
    i.n_eval = eval_size_;
    return i;
  }

  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"steps", "2000"}, {"batch_size", "32"}, {"lr", "0.01"},       {"d_model", "64"},
            {"n_layers", "2"}, {"d_state", "64"},    {"eval_every", "200"}, {"warmup", "50"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor*) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    if (B < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(B));
    ssm::check_shape(x, {B, L_}, "x");
    ssm::check_shape(y, {B, 1}, "y");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t example = index * static_cast<uint64_t>(B) + static_cast<uint64_t>(b);
      const uint64_t stream = (static_cast<uint64_t>(split) << 62) | (example & ((uint64_t{1} << 62) - 1));
      int32_t* row = xp + b * L_;
      // Draws 0..L-1: the noise; draw L: the value's position (marked mode).
      for (int64_t t = 0; t < L_; ++t) row[t] = static_cast<int32_t>(uniform(seed, stream, static_cast<uint64_t>(t), V_));
      int64_t q = L_ - 1 - lag_;
      if (marked_) {
        q = 1 + uniform(seed, stream, static_cast<uint64_t>(L_), L_ - 1 - min_lag_);
        row[q - 1] = static_cast<int32_t>(V_);  // the marker
      }
      yp[b] = row[q];
    }
  }

 private:
  // Uniform integer in [0, n) (bias < n / 2^53).
  static int64_t uniform(uint64_t seed, uint64_t stream, uint64_t draw, int64_t n) {
    return std::min<int64_t>(static_cast<int64_t>(ssm::kernels::philox_uniform(seed, stream, draw) * n), n - 1);
  }

  int64_t L_ = 0, V_ = 0, lag_ = 0, min_lag_ = 0, eval_size_ = 0;
  bool marked_ = true;
};

}  // namespace

SSM_PLUGIN_TASK(Memory, "memory", "1.0.0", "Memory: recall a value seen earlier in a long noisy sequence, at a marked or fixed lag")
