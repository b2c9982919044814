// Sine-wave forecasting (seed 004; docs/tasks.md, "sine"): read L noisy
// samples of a sine wave of random amplitude, frequency and phase, then
// forecast the next H samples of the clean wave, all from the last step
// (n_out = H), mean squared error.
//
//   s(t) = a sin(2 pi f t + phi),  a ~ U[amp_min, amp_max], f ~ U[freq_min, freq_max]
//          (cycles per step), phi ~ U[0, 2 pi)
//   x[t] = s(t) + noise * n_t, n_t ~ N(0, 1), t = 0 .. L-1      (one channel)
//   y[k] = s(L + k), k = 0 .. H-1
//
// Each example is a pure function of the seed and its index (its own Philox
// stream), whatever the batch size.
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace {

constexpr int64_t kMaxLen = std::numeric_limits<int32_t>::max() / 4;
constexpr double kTwoPi = 6.283185307179586;

class Sine : public ssm::Task {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("sine_len", "128", "L: samples read (the run's --seq-len, when given, sets it)"),
        ssm::Option::integer("horizon", "16", "H: samples to forecast after the last one read"),
        ssm::Option::real("freq_min", "0.01", "lowest frequency, cycles per step"),
        ssm::Option::real("freq_max", "0.1", "highest frequency, cycles per step (< 0.5)"),
        ssm::Option::real("amp_min", "0.5", "lowest amplitude"),
        ssm::Option::real("amp_max", "1.5", "highest amplitude"),
        ssm::Option::real("noise", "0.1", "standard deviation of the Gaussian noise on the input (targets are clean)"),
        ssm::Option::integer("eval_size", "512", "waves in the evaluation set"),
    };
  }

  explicit Sine(const ssm::Config& cfg) {
    const std::string len_key = cfg.has("seq_len") && !cfg.str("seq_len").empty() ? "seq_len" : "sine_len";
    L_ = cfg.i64_at_least(len_key, 1);
    if (L_ > kMaxLen) ssm::fail("option '" + len_key + "' must be <= " + std::to_string(kMaxLen) + ", got " + std::to_string(L_));
    H_ = cfg.i64_at_least("horizon", 1);
    if (H_ > 65536) ssm::fail("option 'horizon' must be <= 65536, got " + std::to_string(H_));
    f_min_ = cfg.f64("freq_min"), f_max_ = cfg.f64("freq_max");
    if (!(f_min_ >= 0 && f_min_ <= f_max_ && f_max_ < 0.5))
      ssm::fail("options 'freq_min' and 'freq_max' must satisfy 0 <= freq_min <= freq_max < 0.5, got " +
                cfg.str("freq_min") + " and " + cfg.str("freq_max"));
    a_min_ = cfg.f64("amp_min"), a_max_ = cfg.f64("amp_max");
    if (!(a_min_ >= 0 && a_min_ <= a_max_))
      ssm::fail("options 'amp_min' and 'amp_max' must satisfy 0 <= amp_min <= amp_max, got " + cfg.str("amp_min") +
                " and " + cfg.str("amp_max"));
    noise_ = cfg.f64("noise");
    if (!(noise_ >= 0)) ssm::fail("option 'noise' must be >= 0, got " + cfg.str("noise"));
    eval_size_ = cfg.i64_at_least("eval_size", 1);
  }

  ssm_task_info info() override {
    ssm_task_info i{};
    i.input_kind = SSM_INPUT_REAL;
    i.in_channels = 1;
    i.seq_len = L_;
    i.n_out = H_;
    i.readout = SSM_READOUT_LAST;
    i.loss = SSM_LOSS_MSE;
    i.metric = SSM_METRIC_MSE;
    i.n_train = 0;
    i.n_eval = eval_size_;
    return i;
  }

  std::vector<std::pair<std::string, std::string>> run_defaults() override {
    return {{"steps", "2000"}, {"batch_size", "32"}, {"lr", "0.005"},      {"d_model", "64"},
            {"n_layers", "2"}, {"d_state", "64"},    {"eval_every", "200"}, {"warmup", "50"},
            {"prenorm", "true"}};
  }

  void batch(int split, uint64_t seed, uint64_t index, int64_t B, DLTensor& x, DLTensor& y, DLTensor*) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (eval), got " + std::to_string(split));
    if (B < 1) ssm::fail("batch_size must be >= 1, got " + std::to_string(B));
    ssm::check_shape(x, {B, L_, 1}, "x");
    ssm::check_shape(y, {B, 1, H_}, "y");
    float* xp = ssm::data<float>(x, "x");
    float* yp = ssm::data<float>(y, "y");
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t example = index * static_cast<uint64_t>(B) + static_cast<uint64_t>(b);
      const uint64_t stream = (static_cast<uint64_t>(split) << 62) | (example & ((uint64_t{1} << 62) - 1));
      // Draws 0, 1, 2: amplitude, frequency, phase; 3 + t: the noise of step t (normal).
      const double a = a_min_ + (a_max_ - a_min_) * ssm::kernels::philox_uniform(seed, stream, 0);
      const double f = f_min_ + (f_max_ - f_min_) * ssm::kernels::philox_uniform(seed, stream, 1);
      const double phi = kTwoPi * ssm::kernels::philox_uniform(seed, stream, 2);
      for (int64_t t = 0; t < L_; ++t) {
        const double n = noise_ > 0 ? noise_ * ssm::kernels::philox_normal(seed, stream, 3 + static_cast<uint64_t>(t)) : 0.0;
        xp[b * L_ + t] = static_cast<float>(a * std::sin(kTwoPi * f * static_cast<double>(t) + phi) + n);
      }
      for (int64_t k = 0; k < H_; ++k)
        yp[b * H_ + k] = static_cast<float>(a * std::sin(kTwoPi * f * static_cast<double>(L_ + k) + phi));
    }
  }

 private:
  int64_t L_ = 0, H_ = 0, eval_size_ = 0;
  double f_min_ = 0, f_max_ = 0, a_min_ = 0, a_max_ = 0, noise_ = 0;
};

}  // namespace

SSM_PLUGIN_TASK(Sine, "sine", "1.0.0", "Sine forecasting: continue a noisy sine wave of random frequency and phase (MSE)")
