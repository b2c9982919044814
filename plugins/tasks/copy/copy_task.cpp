// Copying and selective copying (docs/math.md §7, after s4's
// copying.py): memorise M tokens spread over a blank region of length L, then
// reproduce them while M markers are read. Built twice: SSM_COPY_SELECTIVE=0
// is "copy" (tokens at positions 0..M-1), =1 is "selective_copy" (tokens at
// sorted random positions in [0, L+M)).
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#ifndef SSM_COPY_SELECTIVE
#error "compile with -DSSM_COPY_SELECTIVE=0 (copy) or =1 (selective_copy)"
#endif

namespace {

constexpr bool kSelective = SSM_COPY_SELECTIVE != 0;

// An integer option >= lo. The upper bound keeps L + 2M and V (int32 token
// ids and lengths) far from overflow.
int64_t option_in_range(const ssm::Config& cfg, const std::string& key, int64_t lo) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max() / 4;
  const int64_t v = cfg.i64_at_least(key, lo);
  if (v > kMax) ssm::fail("option '" + key + "' must be <= " + std::to_string(kMax) + ", got " + std::to_string(v));
  return v;
}

class CopyTask : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("copy_len", "64", "L: length of the blank region the tokens are spread over (the run's --seq-len, when given, sets it)"),
        ssm::Option::integer("n_tokens", "8", "M: tokens to memorise (the input is L + 2M long)"),
        ssm::Option::integer("vocab", "10", "V: vocabulary incl. blank 0 and marker V-1; tokens are 1..V-2"),
        ssm::Option::integer("eval_size", "1024", "examples in the evaluation set"),
    };
  }

  explicit CopyTask(const ssm::Config& cfg)
      : noise_len_(option_in_range(cfg, cfg.has("seq_len") ? "seq_len" : "copy_len", 1)),
        n_tokens_(option_in_range(cfg, "n_tokens", 1)),
        vocab_(option_in_range(cfg, "vocab", 3)),
        eval_size_(option_in_range(cfg, "eval_size", 1)) {}

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_TOKENS;
    i.vocab_size = vocab_;
    i.seq_len = seq_len();
    i.n_out = vocab_;
    i.readout = SSM_READOUT_LAST_M;
    i.readout_m = n_tokens_;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.has_mask = 0;
    i.n_train = 0;  // generated without end
    i.n_eval = eval_size_;
    return i;
  }

  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"steps", "2000"}, {"batch_size", "32"}, {"lr", "0.01"},      {"d_model", "64"},
            {"n_layers", "2"}, {"d_state", "64"},    {"eval_every", "200"}, {"warmup", "50"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t batch_size, DLTensor& x, DLTensor& y,
             DLTensor* /*mask: has_mask is 0*/) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    if (batch_size < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(batch_size));
    ssm::check_shape(x, {batch_size, seq_len()}, "x");
    ssm::check_shape(y, {batch_size, n_tokens_}, "y");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    for (int64_t i = 0; i < batch_size; ++i) {
      const uint64_t example = index * static_cast<uint64_t>(batch_size) + static_cast<uint64_t>(i);
      generate(seed, stream_of(split, example), xp + i * seq_len(), yp + i * n_tokens_);
    }
  }

 private:
  int64_t seq_len() const { return noise_len_ + 2 * n_tokens_; }

  // Every example has its own Philox stream, so example e is the same whatever
  // the batch size; the split sits in the top bits so that train and eval
  // examples never share a stream.
  static uint64_t stream_of(int split, uint64_t example) {
    return (static_cast<uint64_t>(split) << 62) | (example & ((uint64_t{1} << 62) - 1));
  }

  // Uniform integer in [0, n) from draw `draw` of `stream` (bias < n / 2^53).
  static int64_t uniform_int(uint64_t seed, uint64_t stream, uint64_t draw, int64_t n) {
    return std::min<int64_t>(static_cast<int64_t>(ssm::kernels::philox_uniform(seed, stream, draw) * n), n - 1);
  }

  // One example: draws 0..M-1 pick the tokens, draws M..2M-1 (selective only) the positions.
  void generate(uint64_t seed, uint64_t stream, int32_t* x, int32_t* y) const {
    const int64_t m = n_tokens_, region = noise_len_ + n_tokens_;
    for (int64_t k = 0; k < m; ++k)
      y[k] = static_cast<int32_t>(1 + uniform_int(seed, stream, static_cast<uint64_t>(k), vocab_ - 2));

    std::vector<int64_t> positions(static_cast<size_t>(kSelective ? region : m));
    std::iota(positions.begin(), positions.end(), 0);
    if (kSelective) {
      // The first M entries of a uniform random permutation of 0..L+M-1
      // (partial Fisher-Yates), sorted: randperm(L+M)[:M] in order.
      for (int64_t k = 0; k < m; ++k) {
        const int64_t j = k + uniform_int(seed, stream, static_cast<uint64_t>(m + k), region - k);
        std::swap(positions[static_cast<size_t>(k)], positions[static_cast<size_t>(j)]);
      }
      std::sort(positions.begin(), positions.begin() + m);
    }

    std::fill(x, x + region, 0);
    for (int64_t k = 0; k < m; ++k) x[positions[static_cast<size_t>(k)]] = y[k];
    std::fill(x + region, x + region + m, static_cast<int32_t>(vocab_ - 1));
  }

  int64_t noise_len_, n_tokens_, vocab_, eval_size_;
};

}  // namespace

#if SSM_COPY_SELECTIVE
SSM_PLUGIN_TASK(CopyTask, "selective_copy", "1.0.0",
                "Selective copying: recall M tokens scattered at random over a blank region, in order")
#else
SSM_PLUGIN_TASK(CopyTask, "copy", "1.0.0", "Copying: recall the M tokens at the start after a blank region, in order")
#endif
