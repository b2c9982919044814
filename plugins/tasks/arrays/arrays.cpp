// Sequences you bring (docs/tasks.md, "arrays"): classify each sequence, or
// each step of it, from a dataset of arrays (`hdf5` by default). Inputs are
// real (L, C) or tokens (L); targets are one label per example (read-out:
// the mean over the sequence, or the last step) or one class per step (every
// step read out; steps whose class is -1 are not scored).
//
// Batch `index` of the training split is batch (index mod S) of epoch
// (index / S), S = floor(n_train / B), over a permutation drawn per epoch
// from the seed; evaluation reads the first eval_size test examples in order.
#include <ssm/ext/seq_targets.h>
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kShuffleStream = 0xa77a50000ull;  // + epoch

class Arrays : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::dataset("dataset", "hdf5", "the dataset of arrays, e.g. hdf5 (--data-file FILE)"),
        ssm::Option::string("readout", "mean", "one label per example: mean (over the sequence) or last (the last step)"),
        ssm::Option::integer("eval_size", "0", "evaluate on the first N test examples (0: all)"),
    };
  }

  explicit Arrays(const ssm::Config& cfg) {
    const std::string dataset = cfg.str("dataset");
    const std::string readout = cfg.str("readout");
    if (readout != "mean" && readout != "last") ssm::fail("option 'readout' must be mean or last, got '" + readout + "'");
    ssm::ConfigBuilder dc;  // the dataset gets every option of the run; it ignores the others
    for (const auto& kv : cfg.values())
      if (kv.first != "plugin_name") dc.set(kv.first, kv.second);
    child_ = ssm::Child(SSM_KIND_DATASET, dataset, dc);
    const auto& f = child_.iface<ssm_dataset_iface>();
    di_.struct_size = sizeof(di_);
    ssm::check(f.info(child_.instance(), &di_), "arrays: dataset '" + dataset + "' info");
    if (SSM_HAS_FIELD(&f, ssm_dataset_iface, get_extension) && f.get_extension) {
      const auto* e = static_cast<const ssm_seq_targets*>(f.get_extension(child_.instance(), SSM_EXT_SEQ_TARGETS));
      if (e && SSM_HAS_FIELD(e, ssm_seq_targets, self)) ext_ = *e;
    }
    tokens_ = ssm::same_dtype(di_.example_dtype, ssm::dtype_of<int32_t>::value) && di_.example_ndim == 1;
    const bool real = ssm::same_dtype(di_.example_dtype, ssm::dtype_of<float>::value) && di_.example_ndim == 2;
    if (!tokens_ && !real)
      ssm::fail("arrays: dataset '" + dataset + "' must give float32 (L, C) or int32 (L) examples; it gives " +
                std::to_string(di_.example_ndim) + "-d " + ssm::dtype_name(di_.example_dtype));
    if (tokens_ && ext_.vocab_size < 1)
      ssm::fail("arrays: dataset '" + dataset + "' gives tokens but no vocabulary size (the seq_targets extension)");
    L_ = di_.example_shape[0];
    C_ = tokens_ ? 0 : di_.example_shape[1];
    per_step_ = ext_.struct_size && ext_.per_step && ext_.read_targets;
    n_classes_ = per_step_ ? ext_.n_classes : di_.n_classes;
    if (n_classes_ < 2) ssm::fail("arrays: dataset '" + dataset + "' has no class labels");
    last_ = readout == "last";
    n_eval_ = cfg.i64_at_least("eval_size", 0);
    if (n_eval_ == 0 || n_eval_ > di_.n_test) n_eval_ = di_.n_test;
    if (n_eval_ < 1) ssm::fail("arrays: dataset '" + dataset + "' has no test examples");
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = tokens_ ? SSM_INPUT_TOKENS : SSM_INPUT_REAL;
    i.vocab_size = tokens_ ? ext_.vocab_size : 0;
    i.in_channels = C_;
    i.seq_len = L_;
    i.n_out = n_classes_;
    i.readout = per_step_ ? SSM_READOUT_ALL : last_ ? SSM_READOUT_LAST : SSM_READOUT_MEAN;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.has_mask = per_step_ ? 1 : 0;
    i.n_train = di_.n_train;
    i.n_eval = n_eval_;
    return i;
  }

  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"epochs", "10"}, {"batch_size", "32"}, {"d_model", "64"}, {"n_layers", "2"},
            {"d_state", "64"}, {"lr", "0.01"},      {"eval_every", "100"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor* mask) override {
    if (tokens_) ssm::check_shape(x, {B, L_}, "x");
    else ssm::check_shape(x, {B, L_, C_}, "x");
    const int64_t T = per_step_ ? L_ : 1;
    ssm::check_shape(y, {B, T}, "y");
    if (per_step_ && !mask) ssm::fail("arrays: targets per step need the mask tensor");
    std::vector<int64_t> idx(static_cast<size_t>(B));
    if (split == SSM_SPLIT_TRAIN) {
      const int64_t per_epoch = di_.n_train / B;
      if (per_epoch < 1) ssm::fail("arrays: batch size " + std::to_string(B) + " exceeds the training set");
      const int64_t epoch = static_cast<int64_t>(index) / per_epoch, j = static_cast<int64_t>(index) % per_epoch;
      const std::vector<int64_t>& perm = permutation(seed, epoch);
      for (int64_t i = 0; i < B; ++i) idx[i] = perm[j * B + i];
    } else if (split == SSM_SPLIT_TEST) {
      for (int64_t i = 0; i < B; ++i) idx[i] = (static_cast<int64_t>(index) * B + i) % n_eval_;
    } else {
      ssm::fail("arrays: split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    }
    const auto& f = child_.iface<ssm_dataset_iface>();
    int32_t* yp = ssm::data<int32_t>(y, "y");
    if (per_step_) {
      ssm::check(f.read(child_.instance(), split, idx.data(), B, &x, nullptr), "arrays: dataset read");
      ssm::check(ext_.read_targets(ext_.self, split, idx.data(), B, &y), "arrays: dataset read_targets");
      ssm::check_shape(*mask, {B, T}, "mask");
      float* mp = ssm::data<float>(*mask, "mask");
      for (int64_t i = 0; i < B * T; ++i) {
        mp[i] = yp[i] >= 0 ? 1.0f : 0.0f;
        if (yp[i] < 0) yp[i] = 0;
      }
    } else {
      std::vector<int64_t> labels(static_cast<size_t>(B));
      ssm::View lv(labels.data(), {B});
      ssm::check(f.read(child_.instance(), split, idx.data(), B, &x, lv.get()), "arrays: dataset read");
      for (int64_t i = 0; i < B; ++i) yp[i] = static_cast<int32_t>(labels[i]);
    }
  }

 private:
  const std::vector<int64_t>& permutation(uint64_t seed, int64_t epoch) {
    if (perm_epoch_ == epoch && perm_seed_ == seed && !perm_.empty()) return perm_;
    perm_.resize(static_cast<size_t>(di_.n_train));
    std::iota(perm_.begin(), perm_.end(), 0);
    for (int64_t i = di_.n_train - 1; i > 0; --i) {
      const uint64_t r = ssm::kernels::philox_uniform_bits(seed, kShuffleStream + static_cast<uint64_t>(epoch),
                                                           static_cast<uint64_t>(i));
      std::swap(perm_[i], perm_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
    perm_epoch_ = epoch;
    perm_seed_ = seed;
    return perm_;
  }

  ssm::Child child_;
  ssm_dataset_info di_{};
  ssm_seq_targets ext_{};
  bool tokens_ = false, per_step_ = false, last_ = false;
  int64_t L_ = 0, C_ = 0, n_classes_ = 0, n_eval_ = 0;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  uint64_t perm_seed_ = 0;
};

}  // namespace

SSM_PLUGIN_TASK(Arrays, "arrays", "1.0.0", "Your own sequences (hdf5 arrays): a label per sequence or a class per step")
