// Sequential images (sMNIST, sFashion-MNIST): an image dataset read pixel by
// pixel as a sequence of L = rows*cols one-channel steps, classified from the
// mean over the sequence. Pixels are normalised with the training set's mean
// and standard deviation.
//
// Batch `index` of the training split is batch (index mod S) of epoch
// (index / S), S = floor(n_train / B), over a permutation drawn per epoch
// from the seed: the data stream's whole state is the batch index.
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kShuffleStream = 0x5e91a11ull;

class SeqImage : public ssm::Task {
 public:
  static std::vector<std::string> aliases() { return {"sfashion", "smnist"}; }
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::dataset("dataset", "", "image dataset plugin (default: fashion-mnist for sfashion, mnist for smnist)"),
        ssm::Option::string("dataset_dir", "", "folder of the dataset's files (default: the dataset plugin's)"),
        ssm::Option::integer("eval_size", "0", "evaluate on the first N test images (0: all)"),
    };
  }

  explicit SeqImage(const ssm::Config& cfg) {
    std::string name = cfg.str("plugin_name", "seq_image");
    std::string dataset = cfg.str("dataset");
    if (dataset.empty()) dataset = name == "smnist" ? "mnist" : "fashion-mnist";
    ssm::ConfigBuilder dc;
    if (!cfg.str("dataset_dir").empty()) dc.set("dataset_dir", cfg.str("dataset_dir"));
    dataset_ = ssm::DatasetChild(dataset, dc);
    info_ = dataset_.info();
    if (info_.example_dtype.code != kDLUInt || info_.example_dtype.bits != 8)
      ssm::fail("seq_image: dataset '" + dataset + "' must give uint8 pixels, it gives " +
                ssm::dtype_name(info_.example_dtype));
    if (info_.n_classes < 2) ssm::fail("seq_image: dataset '" + dataset + "' has no class labels");
    pixels_ = 1;
    for (int i = 0; i < info_.example_ndim; ++i) pixels_ *= info_.example_shape[i];
    n_eval_ = cfg.i64_at_least("eval_size", 0);
    if (n_eval_ == 0 || n_eval_ > info_.n_test) n_eval_ = info_.n_test;
    compute_normalisation();
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_REAL;
    i.in_channels = 1;
    i.seq_len = pixels_;
    i.n_out = info_.n_classes;
    i.readout = SSM_READOUT_MEAN;
    i.loss = SSM_LOSS_CROSS_ENTROPY;
    i.metric = SSM_METRIC_ACCURACY;
    i.n_train = info_.n_train;
    i.n_eval = n_eval_;
    return i;
  }

  // A small model that learns in minutes on two cores; --preset s4d-example is the paper's.
  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"epochs", "1"}, {"batch_size", "64"}, {"d_model", "64"}, {"n_layers", "4"},
            {"d_state", "64"}, {"lr", "0.01"},      {"lr_ssm", "0.001"}, {"eval_every", "500"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor*) override {
    ssm::check_shape(x, {B, pixels_, 1}, "x");
    ssm::check_shape(y, {B, 1}, "y");
    std::vector<int64_t> idx(static_cast<size_t>(B));
    int ds_split = SSM_SPLIT_TEST;
    if (split == SSM_SPLIT_TRAIN) {
      ds_split = SSM_SPLIT_TRAIN;
      const int64_t per_epoch = info_.n_train / B;
      if (per_epoch < 1) ssm::fail("seq_image: batch size " + std::to_string(B) + " exceeds the training set");
      const int64_t epoch = static_cast<int64_t>(index) / per_epoch, j = static_cast<int64_t>(index) % per_epoch;
      const std::vector<int64_t>& perm = permutation(seed, epoch);
      for (int64_t i = 0; i < B; ++i) idx[i] = perm[j * B + i];
    } else if (split == SSM_SPLIT_TEST) {
      for (int64_t i = 0; i < B; ++i) idx[i] = (static_cast<int64_t>(index) * B + i) % n_eval_;
    } else {
      ssm::fail("seq_image: unknown split " + std::to_string(split));
    }
    std::vector<uint8_t> raw(static_cast<size_t>(B * pixels_));
    std::vector<int64_t> labels(static_cast<size_t>(B));
    std::vector<int64_t> raw_shape = {B};
    for (int i = 0; i < info_.example_ndim; ++i) raw_shape.push_back(info_.example_shape[i]);
    ssm::View xv(raw.data(), raw_shape), lv(labels.data(), {B});
    dataset_.read(ds_split, idx.data(), B, xv, lv.get());
    float* xp = ssm::data<float>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    for (int64_t i = 0; i < B * pixels_; ++i) xp[i] = static_cast<float>((raw[i] / 255.0 - mean_) / std_);
    for (int64_t i = 0; i < B; ++i) yp[i] = static_cast<int32_t>(labels[i]);
  }

 private:
  // Fisher-Yates from counter-based draws: the same order for (seed, epoch)
  // on every run, whatever happened before.
  const std::vector<int64_t>& permutation(uint64_t seed, int64_t epoch) {
    if (perm_epoch_ == epoch && perm_seed_ == seed && !perm_.empty()) return perm_;
    perm_.resize(static_cast<size_t>(info_.n_train));
    std::iota(perm_.begin(), perm_.end(), 0);
    for (int64_t i = info_.n_train - 1; i > 0; --i) {
      uint64_t r = ssm::kernels::philox_uniform_bits(seed, kShuffleStream + static_cast<uint64_t>(epoch),
                                                     static_cast<uint64_t>(i));
      int64_t j = static_cast<int64_t>(r % static_cast<uint64_t>(i + 1));
      std::swap(perm_[i], perm_[j]);
    }
    perm_epoch_ = epoch;
    perm_seed_ = seed;
    return perm_;
  }

  // Mean and standard deviation of every training pixel, in [0, 1] units.
  void compute_normalisation() {
    const int64_t chunk = 1000;
    double sum = 0, sq = 0;
    std::vector<uint8_t> raw(static_cast<size_t>(chunk * pixels_));
    std::vector<int64_t> idx(static_cast<size_t>(chunk));
    for (int64_t start = 0; start < info_.n_train; start += chunk) {
      const int64_t n = std::min(chunk, info_.n_train - start);
      std::iota(idx.begin(), idx.begin() + n, start);
      std::vector<int64_t> shape = {n};
      for (int i = 0; i < info_.example_ndim; ++i) shape.push_back(info_.example_shape[i]);
      ssm::View xv(raw.data(), shape);
      dataset_.read(SSM_SPLIT_TRAIN, idx.data(), n, xv, nullptr);
      for (int64_t i = 0; i < n * pixels_; ++i) {
        const double v = raw[i] / 255.0;
        sum += v;
        sq += v * v;
      }
    }
    const double count = static_cast<double>(info_.n_train * pixels_);
    mean_ = sum / count;
    std_ = std::sqrt(std::max(sq / count - mean_ * mean_, 1e-12));
  }

  ssm::DatasetChild dataset_;
  ssm_dataset_info info_{};
  int64_t pixels_ = 0, n_eval_ = 0;
  double mean_ = 0, std_ = 1;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  uint64_t perm_seed_ = 0;
};

}  // namespace

SSM_PLUGIN_TASK(SeqImage, "seq_image", "1.0.0", "Sequential images (sMNIST/sFashion): pixel-by-pixel classification")
