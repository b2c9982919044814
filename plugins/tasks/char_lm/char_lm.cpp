// Character-level language modelling (docs/tasks.md, "char_lm"): predict
// every next token of a text dataset (`text` by default: bytes or Unicode
// characters), every position scored, bits per character.
//
// The dataset is a stream of 0-d int32 tokens (the text dataset's layout);
// an example is a window of L+1 consecutive tokens, input the first L,
// target the last L. Training windows tile the training split from an
// offset drawn per epoch, in an order shuffled per epoch; evaluation windows
// tile the validation split from its start. Batch `index` of the training
// split is batch (index mod S) of epoch (index / S), S = floor(n_train / B):
// the data stream's whole state is the batch index.
#include <ssm/ext/text_vocab.h>
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr uint64_t kShuffleStream = 0xc4a71a0000ull;  // + epoch
constexpr uint64_t kOffsetStream = 0xc4a71b0000ull;   // draw = epoch

class CharLm : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::dataset("dataset", "text", "the token stream: a dataset of 0-d int32 tokens, e.g. text"),
        ssm::Option::integer("context", "256", "L: tokens per example, every one scored (--seq-len sets it too)"),
        ssm::Option::integer("eval_size", "0", "evaluate on the first N windows of the validation split (0: all)"),
    };
  }

  explicit CharLm(const ssm::Config& cfg) {
    const std::string len_key = cfg.has("seq_len") && !cfg.str("seq_len").empty() ? "seq_len" : "context";
    L_ = cfg.i64_at_least(len_key, 1);
    const std::string dataset = cfg.str("dataset");
    // The dataset gets every option of the run (--text, --text-vocab, ...); it ignores the others.
    ssm::ConfigBuilder dc;
    for (const auto& kv : cfg.values())
      if (kv.first != "plugin_name") dc.set(kv.first, kv.second);
    ssm::Child child(SSM_KIND_DATASET, dataset, dc);
    const auto& f = child.iface<ssm_dataset_iface>();
    ssm_dataset_info di{};
    di.struct_size = sizeof(di);
    ssm::check(f.info(child.instance(), &di), "char_lm: dataset '" + dataset + "' info");
    if (di.example_ndim != 0 || !ssm::same_dtype(di.example_dtype, ssm::dtype_of<int32_t>::value))
      ssm::fail("char_lm: dataset '" + dataset + "' must be a stream of 0-d int32 tokens (like text); it gives " +
                std::to_string(di.example_ndim) + "-d " + ssm::dtype_name(di.example_dtype) + " examples");
    if (di.n_classes < 2) ssm::fail("char_lm: dataset '" + dataset + "' has a vocabulary of " + std::to_string(di.n_classes) + " tokens; need >= 2");
    vocab_size_ = di.n_classes;
    train_ = read_all(child, SSM_SPLIT_TRAIN, di.n_train, dataset);
    valid_ = read_all(child, SSM_SPLIT_TEST, di.n_test, dataset);

    if (SSM_HAS_FIELD(&f, ssm_dataset_iface, get_extension) && f.get_extension) {
      const auto* v = static_cast<const ssm_text_vocab*>(f.get_extension(child.instance(), SSM_EXT_TEXT_VOCAB));
      if (v && SSM_HAS_FIELD(v, ssm_text_vocab, codepoints)) {
        vocab_.struct_size = sizeof(vocab_);
        vocab_.kind = v->kind;
        vocab_.size = v->size;
        if (v->codepoints) codepoints_.assign(v->codepoints, v->codepoints + v->size);
        vocab_.codepoints = codepoints_.empty() ? nullptr : codepoints_.data();
        has_vocab_ = true;
      }
    }

    const int64_t n_train = static_cast<int64_t>(train_.size()), n_valid = static_cast<int64_t>(valid_.size());
    n_chunks_ = n_train / L_ - 1;  // any offset in [0, L) leaves this many whole windows of L+1
    if (n_chunks_ < 1)
      ssm::fail("char_lm: the training split of '" + dataset + "' has " + std::to_string(n_train) +
                " tokens; a context of " + std::to_string(L_) + " needs at least " + std::to_string(2 * L_) +
                " (lower --context / --seq-len, or use a longer text)");
    n_eval_ = (n_valid - 1) / L_;
    if (n_eval_ < 1)
      ssm::fail("char_lm: the validation split of '" + dataset + "' has " + std::to_string(n_valid) +
                " tokens; a context of " + std::to_string(L_) + " needs at least " + std::to_string(L_ + 1) +
                " (lower --context / --seq-len, or raise --valid-fraction)");
    const int64_t eval_size = cfg.i64_at_least("eval_size", 0);
    if (eval_size > 0 && eval_size < n_eval_) n_eval_ = eval_size;
    compute_baselines();
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_TOKENS;
    i.vocab_size = vocab_size_;
    i.seq_len = L_;
    i.n_out = vocab_size_;
    i.readout = SSM_READOUT_ALL;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_BPC;
    i.has_mask = 0;
    i.n_train = n_chunks_;
    i.n_eval = n_eval_;
    return i;
  }

  // A small model that learns in minutes on two cores.
  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"epochs", "1"},    {"batch_size", "16"}, {"d_model", "128"}, {"n_layers", "4"},
            {"d_state", "64"},  {"lr", "0.004"},      {"warmup", "100"},  {"eval_every", "200"},
            {"prenorm", "true"}, {"dropout", "0"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor*) override {
    if (B < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(B));
    ssm::check_shape(x, {B, L_}, "x");
    ssm::check_shape(y, {B, L_}, "y");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    if (split == SSM_SPLIT_TRAIN) {
      const int64_t per_epoch = n_chunks_ / B;
      if (per_epoch < 1)
        ssm::fail("char_lm: batch size " + std::to_string(B) + " exceeds the " + std::to_string(n_chunks_) +
                  " training windows");
      const int64_t epoch = static_cast<int64_t>(index) / per_epoch, j = static_cast<int64_t>(index) % per_epoch;
      const std::vector<int64_t>& perm = permutation(seed, epoch);
      const int64_t offset = static_cast<int64_t>(
          ssm::kernels::philox_uniform_bits(seed, kOffsetStream, static_cast<uint64_t>(epoch)) % static_cast<uint64_t>(L_));
      for (int64_t b = 0; b < B; ++b) fill(train_, offset + perm[j * B + b] * L_, xp + b * L_, yp + b * L_);
    } else if (split == SSM_SPLIT_TEST) {
      for (int64_t b = 0; b < B; ++b) {
        const int64_t w = (static_cast<int64_t>(index) * B + b) % n_eval_;  // a partial last batch wraps
        fill(valid_, w * L_, xp + b * L_, yp + b * L_);
      }
    } else {
      ssm::fail("char_lm: split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    }
  }

  const void* extension(const char* id) override {
    if (std::strcmp(id, SSM_EXT_TEXT_VOCAB) == 0) return has_vocab_ ? &vocab_ : nullptr;
    if (std::strcmp(id, SSM_EXT_TEXT_BASELINES) == 0) return &baselines_;
    return nullptr;
  }

 private:
  static std::vector<int32_t> read_all(const ssm::Child& child, int split, int64_t n, const std::string& name) {
    std::vector<int32_t> out(static_cast<size_t>(n));
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    ssm::View v(out.data(), {n});
    const auto& f = child.iface<ssm_dataset_iface>();
    ssm::check(f.read(child.instance(), split, idx.data(), n, v.get(), nullptr), "char_lm: dataset '" + name + "' read");
    return out;
  }

  void fill(const std::vector<int32_t>& tokens, int64_t start, int32_t* x, int32_t* y) const {
    for (int64_t t = 0; t < L_; ++t) {
      x[t] = tokens[static_cast<size_t>(start + t)];
      y[t] = tokens[static_cast<size_t>(start + t + 1)];
    }
  }

  // Fisher-Yates from counter-based draws: the same order for (seed, epoch) on every run.
  const std::vector<int64_t>& permutation(uint64_t seed, int64_t epoch) {
    if (perm_epoch_ == epoch && perm_seed_ == seed && !perm_.empty()) return perm_;
    perm_.resize(static_cast<size_t>(n_chunks_));
    std::iota(perm_.begin(), perm_.end(), 0);
    for (int64_t i = n_chunks_ - 1; i > 0; --i) {
      const uint64_t r = ssm::kernels::philox_uniform_bits(seed, kShuffleStream + static_cast<uint64_t>(epoch),
                                                           static_cast<uint64_t>(i));
      std::swap(perm_[i], perm_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
    perm_epoch_ = epoch;
    perm_seed_ = seed;
    return perm_;
  }

  // Unigram and bigram bits per token on the scored evaluation targets, fitted
  // on the training split with add-one smoothing.
  void compute_baselines() {
    const double V = static_cast<double>(vocab_size_);
    std::vector<double> uni(static_cast<size_t>(vocab_size_), 0.0);
    std::unordered_map<uint64_t, double> bi;
    for (size_t i = 0; i < train_.size(); ++i) {
      uni[static_cast<size_t>(train_[i])] += 1;
      if (i + 1 < train_.size()) bi[pair_key(train_[i], train_[i + 1])] += 1;
    }
    const double n = static_cast<double>(train_.size());
    double uni_bits = 0, bi_bits = 0;
    int64_t count = 0;
    for (int64_t w = 0; w < n_eval_; ++w)
      for (int64_t t = 0; t < L_; ++t) {
        const int32_t a = valid_[static_cast<size_t>(w * L_ + t)], b = valid_[static_cast<size_t>(w * L_ + t + 1)];
        uni_bits -= std::log2((uni[static_cast<size_t>(b)] + 1) / (n + V));
        auto it = bi.find(pair_key(a, b));
        const double ab = it == bi.end() ? 0.0 : it->second;
        bi_bits -= std::log2((ab + 1) / (uni[static_cast<size_t>(a)] + V));
        ++count;
      }
    baselines_.struct_size = sizeof(baselines_);
    baselines_.unigram_bpc = uni_bits / static_cast<double>(count);
    baselines_.bigram_bpc = bi_bits / static_cast<double>(count);
    baselines_.n_scored = count;
  }
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  int64_t L_ = 0, vocab_size_ = 0, n_chunks_ = 0, n_eval_ = 0;
  std::vector<int32_t> train_, valid_;
  bool has_vocab_ = false;
  ssm_text_vocab vocab_{};
  std::vector<uint32_t> codepoints_;
  ssm_text_baselines baselines_{};
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  uint64_t perm_seed_ = 0;
};

}  // namespace

SSM_PLUGIN_TASK(CharLm, "char_lm", "1.0.0",
                "Character language modelling: predict every next character of a text, bits per character")
