// Sequential images (sMNIST, sFashion-MNIST, psMNIST, sCIFAR): an image
// dataset read pixel by pixel as a sequence of L = rows*cols steps of C
// channels (a (rows, cols) dataset: C = 1; a (C, rows, cols) one such as
// cifar10: C = 3, or 1 with --grayscale), classified from the mean over the
// sequence. Each channel is normalised with the training set's mean and
// standard deviation. --permute reads the pixels in a fixed random order
// drawn from --permutation-seed (psMNIST), the same order for every image and
// split; the seed is part of the run's configuration (docs/tasks.md).
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
constexpr uint64_t kPixelPermStream = 0x9e3a7e11ull;

class SeqImage : public ssm::Task {
 public:
  static std::vector<std::string> aliases() { return {"sfashion", "smnist", "psmnist", "scifar"}; }
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::dataset("dataset", "",
                             "image dataset plugin (default: fashion-mnist for sfashion, mnist for smnist and psmnist, "
                             "cifar10 for scifar)"),
        ssm::Option::string("dataset_dir", "", "folder of the dataset's files (default: the dataset plugin's)"),
        ssm::Option::integer("eval_size", "0", "evaluate on the first N test images (0: all)"),
        ssm::Option::boolean("permute", "false", "read the pixels in a fixed random order (always for psmnist)"),
        ssm::Option::integer("permutation_seed", "0", "the seed of that order (Fisher-Yates on Philox draws, docs/tasks.md)"),
        ssm::Option::boolean("grayscale", "false", "colour images: one channel, 0.299 R + 0.587 G + 0.114 B, instead of three"),
    };
  }

  explicit SeqImage(const ssm::Config& cfg) {
    std::string name = cfg.str("plugin_name", "seq_image");
    std::string dataset = cfg.str("dataset");
    if (dataset.empty())
      dataset = name == "smnist" || name == "psmnist" ? "mnist" : name == "scifar" ? "cifar10" : "fashion-mnist";
    permute_ = name == "psmnist" || cfg.flag("permute");
    pixel_seed_ = cfg.i64_at_least("permutation_seed", 0);
    ssm::ConfigBuilder dc;
    if (!cfg.str("dataset_dir").empty()) dc.set("dataset_dir", cfg.str("dataset_dir"));
    dataset_ = ssm::DatasetChild(dataset, dc);
    info_ = dataset_.info();
    if (info_.example_dtype.code != kDLUInt || info_.example_dtype.bits != 8)
      ssm::fail("seq_image: dataset '" + dataset + "' must give uint8 pixels, it gives " +
                ssm::dtype_name(info_.example_dtype));
    if (info_.n_classes < 2) ssm::fail("seq_image: dataset '" + dataset + "' has no class labels");
    if (info_.example_ndim == 2) {
      channels_ = 1;
      pixels_ = info_.example_shape[0] * info_.example_shape[1];
    } else if (info_.example_ndim == 3) {
      channels_ = info_.example_shape[0];
      pixels_ = info_.example_shape[1] * info_.example_shape[2];
    } else {
      ssm::fail("seq_image: dataset '" + dataset + "' gives " + std::to_string(info_.example_ndim) +
                "-d examples; expected images (rows, cols) or (channels, rows, cols)");
    }
    grayscale_ = cfg.flag("grayscale") && channels_ > 1;
    if (grayscale_ && channels_ != 3)
      ssm::fail("seq_image: --grayscale needs 3 channels (R, G, B); dataset '" + dataset + "' has " + std::to_string(channels_));
    out_channels_ = grayscale_ ? 1 : channels_;
    if (permute_) make_pixel_order();
    n_eval_ = cfg.i64_at_least("eval_size", 0);
    if (n_eval_ == 0 || n_eval_ > info_.n_test) n_eval_ = info_.n_test;
    compute_normalisation();
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_REAL;
    i.in_channels = out_channels_;
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
  // The pixel order is recorded with the run: permute and its seed are in its /config.
  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    std::vector<std::pair<std::string, std::string>> d = {
        {"epochs", "1"}, {"batch_size", "64"}, {"d_model", "64"},  {"n_layers", "4"},
        {"d_state", "64"}, {"lr", "0.01"},     {"lr_ssm", "0.001"}, {"eval_every", "500"}};
    if (permute_) {
      d.push_back({"permute", "true"});
      d.push_back({"permutation_seed", std::to_string(pixel_seed_)});
    }
    return d;
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor*) override {
    ssm::check_shape(x, {B, pixels_, out_channels_}, "x");
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
    std::vector<uint8_t> raw(static_cast<size_t>(B * pixels_ * channels_));
    std::vector<int64_t> labels(static_cast<size_t>(B));
    std::vector<int64_t> raw_shape = {B};
    for (int i = 0; i < info_.example_ndim; ++i) raw_shape.push_back(info_.example_shape[i]);
    ssm::View xv(raw.data(), raw_shape), lv(labels.data(), {B});
    dataset_.read(ds_split, idx.data(), B, xv, lv.get());
    float* xp = ssm::data<float>(x, "x");
    int32_t* yp = ssm::data<int32_t>(y, "y");
    const int64_t C = channels_, P = pixels_, Co = out_channels_;
    for (int64_t b = 0; b < B; ++b) {
      const uint8_t* img = raw.data() + b * P * C;  // (C, P): channels first
      float* out = xp + b * P * Co;                  // (P, Co): one step per pixel
      for (int64_t t = 0; t < P; ++t) {
        const int64_t p = permute_ ? order_[static_cast<size_t>(t)] : t;
        if (grayscale_) {
          out[t] = static_cast<float>((luma(img, p) - mean_[0]) / std_[0]);
        } else {
          for (int64_t c = 0; c < C; ++c)
            out[t * Co + c] = static_cast<float>((img[c * P + p] / 255.0 - mean_[c]) / std_[c]);
        }
      }
    }
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

  // ITU-R 601-2 luma of pixel p of a (3, P) image, in [0, 1] units.
  double luma(const uint8_t* img, int64_t p) const {
    return (0.299 * img[p] + 0.587 * img[pixels_ + p] + 0.114 * img[2 * pixels_ + p]) / 255.0;
  }

  // A fixed order of the pixels: Fisher-Yates on Philox draws of
  // (permutation_seed, kPixelPermStream, i), i = L-1 .. 1.
  void make_pixel_order() {
    order_.resize(static_cast<size_t>(pixels_));
    std::iota(order_.begin(), order_.end(), 0);
    for (int64_t i = pixels_ - 1; i > 0; --i) {
      const uint64_t r = ssm::kernels::philox_uniform_bits(static_cast<uint64_t>(pixel_seed_), kPixelPermStream,
                                                           static_cast<uint64_t>(i));
      std::swap(order_[i], order_[static_cast<int64_t>(r % static_cast<uint64_t>(i + 1))]);
    }
  }

  // Mean and standard deviation of every training pixel per (output) channel, in [0, 1] units.
  void compute_normalisation() {
    const int64_t chunk = 1000;
    const int64_t Co = out_channels_;
    std::vector<double> sum(static_cast<size_t>(Co), 0.0), sq(static_cast<size_t>(Co), 0.0);
    std::vector<uint8_t> raw(static_cast<size_t>(chunk * pixels_ * channels_));
    std::vector<int64_t> idx(static_cast<size_t>(chunk));
    for (int64_t start = 0; start < info_.n_train; start += chunk) {
      const int64_t n = std::min(chunk, info_.n_train - start);
      std::iota(idx.begin(), idx.begin() + n, start);
      std::vector<int64_t> shape = {n};
      for (int i = 0; i < info_.example_ndim; ++i) shape.push_back(info_.example_shape[i]);
      ssm::View xv(raw.data(), shape);
      dataset_.read(SSM_SPLIT_TRAIN, idx.data(), n, xv, nullptr);
      for (int64_t b = 0; b < n; ++b) {
        const uint8_t* img = raw.data() + b * pixels_ * channels_;
        for (int64_t c = 0; c < Co; ++c)
          for (int64_t p = 0; p < pixels_; ++p) {
            const double v = grayscale_ ? luma(img, p) : img[c * pixels_ + p] / 255.0;
            sum[c] += v;
            sq[c] += v * v;
          }
      }
    }
    const double count = static_cast<double>(info_.n_train * pixels_);
    mean_.assign(static_cast<size_t>(Co), 0.0);
    std_.assign(static_cast<size_t>(Co), 1.0);
    for (int64_t c = 0; c < Co; ++c) {
      mean_[c] = sum[c] / count;
      std_[c] = std::sqrt(std::max(sq[c] / count - mean_[c] * mean_[c], 1e-12));
    }
  }

  ssm::DatasetChild dataset_;
  ssm_dataset_info info_{};
  int64_t pixels_ = 0, channels_ = 1, out_channels_ = 1, n_eval_ = 0;
  bool permute_ = false, grayscale_ = false;
  int64_t pixel_seed_ = 0;
  std::vector<int64_t> order_;  // step t reads pixel order_[t] (when permuted)
  std::vector<double> mean_, std_;
  std::vector<int64_t> perm_;
  int64_t perm_epoch_ = -1;
  uint64_t perm_seed_ = 0;
};

}  // namespace

SSM_PLUGIN_TASK(SeqImage, "seq_image", "1.1.0",
                "Sequential images (sMNIST, sFashion, psMNIST, sCIFAR): pixel-by-pixel classification")
