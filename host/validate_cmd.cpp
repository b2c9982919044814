// ssmhost validate: creates one plugin through the registry and checks that
// it really works, the way the host will use it: one PASS/FAIL/SKIP line per
// check with its numbers, exit status 1 when any check fails.
//
// A conformance kit: every check runs on every (device, dtype) pair the
// plugin says it serves; a failure names the tensor and the coordinate (or
// the token, batch and channel) where it goes wrong.
#include <ssm/gradcheck.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <omp.h>
#include <random>
#include <sstream>
#include <tuple>

#include "commands.hpp"
#include "options.hpp"
#include "registry.hpp"
#include "task_names.hpp"

namespace po = boost::program_options;

namespace ssmhost {
namespace {

namespace gc = ssm::gradcheck;

// Gradients must match central finite differences (float64, the SDK's
// ssm/gradcheck.hpp, h = 1e-6 max(1, |w|)) to this relative error:
// |fd - backward| / max(|fd|, |backward|, floor).
constexpr double kGradTol = 1e-5;
// Below the floor a gradient is compared absolutely: relative error is
// meaningless near zero. The floor grows with the loss: a finite difference
// cannot resolve gradients below its own rounding error, about
// kFdResolution * sum|y * probe| (a few float64 eps / h: s4d at d_model 64
// measures 0.7 eps / h), so floor = max(kGradFloor, that / kGradTol).
constexpr double kGradFloor = 1e-3;
constexpr double kFdResolution = 5e-10;
// --coords default: every coordinate of a tensor up to this many elements,
// else this many, one at random in each of as many equal parts.
constexpr size_t kGradAllUpTo = 4096;
constexpr size_t kGradSample = 512;
// float32 against float64 on the same (float32-rounded) inputs, relative to
// the float64 tensor's max |value|.
constexpr double kForward32Tol = 1e-3;
constexpr double kBackward32Tol = 2e-3;
// The recurrent mode against forward, relative to forward's max |y|.
constexpr double kStep64Tol = 1e-6;
constexpr double kStep32Tol = 1e-3;
// A second backward adds to the parameter gradients: deviation from twice
// the first, relative to the tensor's max |value|.
constexpr double kAccum64Tol = 1e-12;
constexpr double kAccum32Tol = 1e-4;
// complex64 against complex128 (discretizations), relative to max(1, |value|).
constexpr double kComplex64Tol = 1e-3;
// Defaults of the recurrent and long-sequence checks.
constexpr int64_t kRecurrentMinLen = 256;
constexpr int64_t kLongLen = 16384;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}
// Enough digits to tell two close values apart.
std::string num_full(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

// "x[1, 5, 37]": the flat index of a tensor of that shape, by coordinates.
std::string at(const std::string& name, size_t flat, const std::vector<int64_t>& shape) {
  return name + gc::index_text(flat, shape);
}

// A check whose numbers are out of bounds (not a plugin error).
struct CheckFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Prints one line per check and counts the outcomes.
class Report {
 public:
  // Runs `check`, which returns the numbers to print or throws: CheckFailed
  // for bad numbers, anything else for an error (shown with the plugin's
  // message). Returns whether it passed.
  bool run(const std::string& name, const std::function<std::string()>& check) {
    try {
      line("PASS", name, check());
      ++passed_;
      return true;
    } catch (const std::exception& e) {
      line("FAIL", name, e.what());
      ++failed_;
      return false;
    }
  }
  void skip(const std::string& name, const std::string& why) {
    line("SKIP", name, why);
    ++skipped_;
  }
  int finish() const {
    std::printf("\n%d passed, %d failed, %d skipped\n", passed_, failed_, skipped_);
    return failed_ ? 1 : 0;
  }

 private:
  static void line(const char* status, const std::string& name, const std::string& detail) {
    std::printf("%s %-27s %s\n", status, name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  int passed_ = 0, failed_ = 0, skipped_ = 0;
};

// Dense host buffers of one dtype with DLTensor views: a layer's parameters,
// their gradients, or single tensors.
template <class T>
struct Tensors {
  std::vector<std::vector<T>> data;
  std::vector<ssm::View> views;
  std::vector<DLTensor*> ptrs;

  Tensors() = default;
  Tensors(const std::vector<std::vector<int64_t>>& shapes, T fill) {
    for (const auto& s : shapes) {
      int64_t n = 1;
      for (int64_t d : s) n *= d;
      data.emplace_back(static_cast<size_t>(n), fill);
    }
    views.reserve(shapes.size());
    for (size_t i = 0; i < shapes.size(); ++i) views.emplace_back(data[i].data(), shapes[i]);
    for (auto& v : views) ptrs.push_back(v.get());
  }
  Tensors(const Tensors& o) : Tensors(o.shapes(), T()) {
    for (size_t i = 0; i < data.size(); ++i) std::copy(o.data[i].begin(), o.data[i].end(), data[i].begin());
  }
  Tensors& operator=(const Tensors&) = delete;
  std::vector<std::vector<int64_t>> shapes() const {
    std::vector<std::vector<int64_t>> s;
    for (auto& v : views) s.push_back(v.shape);
    return s;
  }
  const std::vector<int64_t>& shape(size_t i) const { return views[i].shape; }
  DLTensor* const* get() const { return ptrs.data(); }
  DLTensor* operator[](size_t i) { return ptrs[i]; }
  void fill(T v) {
    for (auto& d : data) std::fill(d.begin(), d.end(), v);
  }
};

template <class To, class From>
Tensors<To> convert(const Tensors<From>& in) {
  Tensors<To> out(in.shapes(), To());
  for (size_t i = 0; i < in.data.size(); ++i)
    for (size_t k = 0; k < in.data[i].size(); ++k) out.data[i][k] = static_cast<To>(in.data[i][k]);
  return out;
}

// float64 values rounded to float32 and back: inputs both precisions see exactly.
Tensors<double> rounded(const Tensors<double>& in) { return convert<double>(convert<float>(in)); }

template <class T>
Tensors<T> one(const std::vector<int64_t>& shape, T fill) {
  return Tensors<T>({shape}, fill);
}

template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

template <class T>
std::string value_text(T v) {
  return std::isnan(static_cast<double>(v)) ? "nan" : num_full(static_cast<double>(v));
}

// Where a buffer that was filled with NaN still holds one: the plugin did not
// write it (or wrote NaN/inf). Names the first such element by coordinates.
template <class T>
void require_finite(const std::vector<T>& v, const std::string& name, const std::vector<int64_t>& shape) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(static_cast<double>(v[i])))
      throw CheckFailed(at(name, i, shape) + " is " + value_text(v[i]) + " (not written, or not finite; the first of " +
                        std::to_string(v.size()) + " elements " + shape_text(shape) + ")");
}
template <class T>
void require_finite(const std::vector<T>& v, const std::string& name) {
  require_finite(v, name, {static_cast<int64_t>(v.size())});
}

KV parse_sets(const po::variables_map& vm) {
  KV config;
  if (!vm.count("set")) return config;
  for (const std::string& s : vm["set"].as<std::vector<std::string>>()) {
    auto [key, value] = parse_key_value(s, "set");  // the parser `train` uses
    config[key] = value;
  }
  return config;
}

std::string config_text(const KV& config) {
  std::string s;
  for (auto& kv : config) s += (s.empty() ? "" : ", ") + kv.first + "=" + kv.second;
  return s.empty() ? "defaults" : s;
}

// The status of a raw ABI call as (code, message); frees it.
struct RawStatus {
  int32_t code = SSM_OK;
  std::string message;
};
RawStatus take_status(const ssm_host* host, ssm_status* st) {
  RawStatus r;
  if (!st) return r;
  r.code = host->status_code(host->host_data, st);
  r.message = host->status_message(host->host_data, st);
  host->status_free(host->host_data, st);
  return r;
}

// ------------------------------------------------------ devices and dtypes

// The (device, dtype) pairs validate knows, in the order it checks them.
struct Target {
  DLDevice device;
  DLDataType dtype;
};
constexpr DLDevice kCpu{kDLCPU, 0};
constexpr DLDevice kCuda{kDLCUDA, 0};

std::string device_name(DLDevice d) { return d.device_type == kDLCPU ? "cpu" : d.device_type == kDLCUDA ? "cuda" : "device"; }
std::string target_name(const Target& t) { return device_name(t.device) + " " + ssm::dtype_name(t.dtype); }

// No CUDA execution in validate yet: a pair on CUDA the plugin serves is
// reported as SKIP with this reason. A CUDA path (device buffers, a stream in
// the context) plugs in where run_target() is called.
const char* const kNoCudaHere = "cuda: not available in this build";

// ------------------------------------------------------------------ layer

struct LayerSetup {
  int64_t batch = 2, len = 16;
  int64_t recurrent_len = 0;    // 0: max(len, kRecurrentMinLen)
  int64_t long_len = kLongLen;  // 0: no long-sequence check
  uint64_t seed = 1;
  bool coords_all = false;  // --coords all
  size_t coords_n = 0;      // --coords N; 0: the default
};

// A recurrent state destroyed with its scope.
struct StateGuard {
  const LayerObject& layer;
  void* state = nullptr;
  ~StateGuard() { layer.state_destroy(state); }
};

template <class T>
const char* dtype_label();
template <>
const char* dtype_label<float>() {
  return "float32";
}
template <>
const char* dtype_label<double>() {
  return "float64";
}

// |got - want| / scale, a NaN counted as infinitely far.
double deviation(double got, double want, double scale) {
  const double d = std::abs(got - want) / scale;
  return std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
}

// The worst element of one tensor against a reference, relative to the
// reference's max |value| (1 when the reference is all zero).
struct Worst {
  std::string name;
  std::vector<int64_t> shape;
  double dev = 0, got = 0, want = 0, scale = 1;
  size_t index = 0;
  std::string where() const { return at(name, index, shape); }
};
template <class T>
Worst worst_of(const std::vector<T>& got, const std::vector<double>& want, const std::string& name,
               const std::vector<int64_t>& shape) {
  Worst w;
  w.name = name, w.shape = shape;
  const double m = max_abs(want);
  w.scale = m > 0 ? m : 1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = deviation(static_cast<double>(got[i]), want[i], w.scale);
    if (i == 0 || d > w.dev) w.dev = d, w.index = i, w.got = static_cast<double>(got[i]), w.want = want[i];
  }
  return w;
}

// Checks one layer: every check on every (device, dtype) pair it serves.
// Random inputs are drawn once in float64 and rounded to float32, parameters
// from param_init float64 are rounded too, so float32 and float64 see exactly
// the same numbers and their difference is the arithmetic alone.
class LayerValidator {
 public:
  LayerValidator(Registry& reg, const std::string& name, KV config, const LayerSetup& s, Report& report)
      : reg_(reg),
        name_(name),
        config_(std::move(config)),
        s_(s),
        report_(report),
        train_(reg.make_ctx(true, 1, s.seed, 0)),
        infer_(reg.make_ctx(false, 1, s.seed, 0)) {}

  int run() {
    if (!config_.count("d_model")) config_["d_model"] = "8";
    if (!report_.run("create", [&] {
          layer_ = reg_.create_layer(name_, config_);
          return "options: " + config_text(config_);
        }))
      return report_.finish();
    try {
      H_ = std::stoll(config_.at("d_model"));
    } catch (const std::exception&) {
    }
    if (H_ < 1) throw UsageError("d_model must be a positive integer, got '" + config_.at("d_model") + "'");
    B_ = s_.batch, L_ = s_.len;
    L_rec_ = s_.recurrent_len > 0 ? s_.recurrent_len : std::max(L_, kRecurrentMinLen);
    xshape_ = {B_, L_, H_};
    if (!describe_params()) return report_.finish();
    make_inputs();

    const DLDataType f32 = ssm::dtype_of<float>::value, f64 = ssm::dtype_of<double>::value;
    const Target targets[] = {{kCpu, f64}, {kCpu, f32}, {kCuda, f32}, {kCuda, f64}};
    for (const Target& t : targets) {
      const bool cpu = t.device.device_type == kDLCPU, is64 = t.dtype.bits == 64;
      if (!layer_->supports(t.device, t.dtype)) {
        report_.skip(target_name(t), "not served by the plugin (its supports() says no)");
        if (cpu && is64) report_.skip("gradient", "finite differences run in float64, which the plugin does not serve");
        continue;
      }
      if (!cpu) {
        report_.skip(target_name(t), kNoCudaHere);
        continue;
      }
      if (is64) run_float64();
      else run_float32();
    }
    return report_.finish();
  }

 private:
  bool describe_params() {
    return report_.run("params", [&] {
      specs_ = layer_->params();
      std::string text;
      int64_t total = 0;
      for (const ParamInfo& p : specs_) {
        if (p.name.empty()) throw CheckFailed("a parameter has an empty name");
        for (const ParamInfo& q : specs_)
          if (&q != &p && q.name == p.name) throw CheckFailed("two parameters are named '" + p.name + "'");
        if (p.shape.empty() || p.shape.size() > 4) throw CheckFailed("'" + p.name + "' must have 1 to 4 dimensions");
        for (int64_t d : p.shape)
          if (d < 1) throw CheckFailed("'" + p.name + "' has shape " + shape_text(p.shape));
        shapes_.push_back(p.shape);
        total += p.numel();
        text += (text.empty() ? "" : ", ") + p.name + " " + shape_text(p.shape);
        if (p.flags & SSM_PARAM_SSM) text += " [ssm]";
        if (p.flags & SSM_PARAM_NO_WEIGHT_DECAY) text += " [no wd]";
        if (p.flags & SSM_PARAM_KEEP_FP32) text += " [keep fp32]";
        if (p.lr_max > 0) text += " [lr <= " + num(p.lr_max) + "]";
        if (p.weight_decay >= 0) text += " [wd " + num(p.weight_decay) + "]";
      }
      return std::to_string(specs_.size()) + " tensors, " + std::to_string(total) + " values: " +
             (text.empty() ? "none" : text);
    });
  }

  // x and probe (B, L, H): loss = sum(y * probe), so dL/dy = probe; the
  // recurrent check's input (B, L_rec, H); the long check's (1, L_long, H).
  void make_inputs() {
    std::mt19937_64 gen(s_.seed);
    std::normal_distribution<double> normal;
    auto random = [&](const std::vector<int64_t>& shape) {
      Tensors<double> t = one<double>(shape, 0);
      for (double& v : t.data[0]) v = static_cast<float>(normal(gen));  // float32-exact
      return t;
    };
    x_ = std::make_unique<Tensors<double>>(random(xshape_));
    probe_ = std::make_unique<Tensors<double>>(random(xshape_));
    x_rec_ = std::make_unique<Tensors<double>>(random({B_, L_rec_, H_}));
    if (s_.long_len > 0) {
      x_long_ = std::make_unique<Tensors<double>>(random({1, s_.long_len, H_}));
      probe_long_ = std::make_unique<Tensors<double>>(random({1, s_.long_len, H_}));
    }
  }

  std::string param_grad_name(size_t i) const { return "d" + specs_[i].name; }

  template <class T>
  void require_finite_params(const Tensors<T>& t, const std::string& prefix) {
    for (size_t i = 0; i < specs_.size(); ++i) require_finite(t.data[i], prefix + specs_[i].name, specs_[i].shape);
  }

  template <class T>
  bool param_init(Tensors<T>& params) {
    const std::string name = std::string("param_init ") + dtype_label<T>();
    return report_.run(name, [&] {
      layer_->param_init(&train_, params.get());
      require_finite_params(params, "");
      double m = 0;
      for (auto& d : params.data) m = std::max(m, max_abs(d));
      return "all finite, max |p| = " + num(m);
    });
  }

  gc::Coords coords_for(size_t n, uint64_t salt) const {
    const uint64_t seed = s_.seed * 1000003u + salt;
    if (s_.coords_all) return gc::Coords::all();
    if (s_.coords_n > 0) return gc::Coords::sample(s_.coords_n, seed);
    return gc::Coords::all_up_to(n, kGradAllUpTo, kGradSample, seed);
  }

  // Central differences of `loss` in `values` against `analytic`.
  std::string grad_check(const std::string& what, std::vector<double>& values, const std::vector<double>& analytic,
                         const std::vector<int64_t>& shape, const std::function<double()>& loss, double floor,
                         uint64_t salt) {
    gc::Options opt;
    opt.floor = floor;
    opt.coords = coords_for(values.size(), salt);
    const gc::Result r = gc::check(values, analytic, loss, opt);
    const std::string over = r.checked == r.size ? "all " + std::to_string(r.size)
                                                 : std::to_string(r.checked) + " of " + std::to_string(r.size);
    std::string text = "worst relative error " + num(r.error) + " over " + over + " coordinates (at " +
                       at(what, r.index, shape) + ": finite difference " + num_full(r.fd) + ", backward " +
                       num_full(r.analytic) + "; floor " + num(floor) + ", tolerance " + num(kGradTol) + ")";
    if (!r.passed(kGradTol)) throw CheckFailed(text);
    return text;
  }

  // ------------------------------------------------------------ float64

  void run_float64() {
    Tensors<double> init(shapes_, kNaN);
    if (!param_init(init)) return;
    P64_ = std::make_unique<Tensors<double>>(rounded(init));
    Tensors<double>& p = *P64_;
    Tensors<double> x(*x_), y = one<double>(xshape_, kNaN);
    const std::vector<double>& probe = probe_->data[0];
    auto loss = [&]() {
      y.fill(kNaN);
      layer_->forward(&train_, p.get(), x[0], y[0]);
      double sum = 0;
      for (size_t i = 0; i < y.data[0].size(); ++i) sum += y.data[0][i] * probe[i];
      return sum;
    };
    if (!report_.run("forward float64", [&] {
          loss();
          require_finite(y.data[0], "y", xshape_);
          return "x " + shape_text(xshape_) + " -> y " + shape_text(xshape_) + ", all finite, max |y| = " +
                 num(max_abs(y.data[0]));
        }))
      return;

    // Analytic gradients: dx is overwritten, dparams accumulate from zero.
    Tensors<double> dx = one<double>(xshape_, kNaN), dparams(shapes_, 0.0);
    if (!report_.run("backward float64", [&] {
          loss();
          layer_->backward(&train_, p.get(), (*probe_)[0], dx[0], dparams.get());
          require_finite(dx.data[0], "dx", xshape_);
          require_finite_params(dparams, "d");
          return "dx and " + std::to_string(specs_.size()) + " parameter gradients written, all finite";
        }))
      return;
    reference_ = true;

    loss();
    double loss_scale = 0;  // sum |y * probe|: what the loss's rounding error grows with
    for (size_t i = 0; i < y.data[0].size(); ++i) loss_scale += std::abs(y.data[0][i] * probe[i]);
    const double floor = std::max(kGradFloor, kFdResolution * loss_scale / kGradTol);
    report_.run("gradient x", [&] { return grad_check("x", x.data[0], dx.data[0], xshape_, loss, floor, 0); });
    for (size_t i = 0; i < specs_.size(); ++i)
      report_.run("gradient " + specs_[i].name, [&] {
        return grad_check(specs_[i].name, p.data[i], dparams.data[i], specs_[i].shape, loss, floor, i + 1);
      });

    accumulates(p, kAccum64Tol);
    recurrent(p, kStep64Tol);
    long_sequence(p);
    round_trip(p);
  }

  // ------------------------------------------------------------ float32

  void run_float32() {
    Tensors<float> init(shapes_, std::numeric_limits<float>::quiet_NaN());
    if (!param_init(init)) return;
    // The float64 run's parameters (float32-exact) when there was one.
    const bool compare = reference_;
    const Tensors<float> p = P64_ ? convert<float>(*P64_) : Tensors<float>(init);
    const Tensors<float> probe = convert<float>(*probe_);
    Tensors<float> x = convert<float>(*x_);
    const char* no_reference = " (no float64 reference: not served, or its forward or backward failed)";

    report_.run("forward float32", [&] {
      Tensors<float> yi = one<float>(xshape_, NAN), yt = one<float>(xshape_, NAN);
      layer_->forward(&infer_, p.get(), x[0], yi[0]);
      require_finite(yi.data[0], "y", xshape_);
      layer_->forward(&train_, p.get(), x[0], yt[0]);
      require_finite(yt.data[0], "y", xshape_);
      if (!compare) return std::string("inference and training: all finite") + no_reference;
      Tensors<double> x64(*x_), ri = one<double>(xshape_, kNaN), rt = one<double>(xshape_, kNaN);
      layer_->forward(&infer_, P64_->get(), x64[0], ri[0]);
      layer_->forward(&train_, P64_->get(), x64[0], rt[0]);
      Worst wi = worst_of(yi.data[0], ri.data[0], "y", xshape_), wt = worst_of(yt.data[0], rt.data[0], "y", xshape_);
      const bool training_worse = wt.dev > wi.dev;
      const Worst& w = training_worse ? wt : wi;
      std::string text = "max deviation from float64 " + num(w.dev) + " relative to max |y| = " + num(w.scale) +
                         " (inference " + num(wi.dev) + ", training " + num(wt.dev) + "; tolerance " +
                         num(kForward32Tol) + ")";
      if (!(w.dev <= kForward32Tol))
        throw CheckFailed("at " + w.where() + (training_worse ? " (training)" : " (inference)") + ": float32 " +
                          value_text(w.got) + ", float64 " + value_text(w.want) + "; " + text);
      return text;
    });

    report_.run("backward float32", [&] {
      Tensors<float> y = one<float>(xshape_, NAN), dx = one<float>(xshape_, NAN), dp(shapes_, 0.0f);
      layer_->forward(&train_, p.get(), x[0], y[0]);
      layer_->backward(&train_, p.get(), probe.get()[0], dx[0], dp.get());
      require_finite(dx.data[0], "dx", xshape_);
      require_finite_params(dp, "d");
      if (!compare) return std::string("dx and parameter gradients all finite") + no_reference;
      Tensors<double> x64(*x_), y64 = one<double>(xshape_, kNaN), dx64 = one<double>(xshape_, kNaN), dp64(shapes_, 0.0);
      layer_->forward(&train_, P64_->get(), x64[0], y64[0]);
      layer_->backward(&train_, P64_->get(), (*probe_)[0], dx64[0], dp64.get());
      std::vector<Worst> all = {worst_of(dx.data[0], dx64.data[0], "dx", xshape_)};
      for (size_t i = 0; i < specs_.size(); ++i)
        all.push_back(worst_of(dp.data[i], dp64.data[i], param_grad_name(i), specs_[i].shape));
      const Worst* w = &all[0];
      std::string each;
      for (const Worst& v : all) {
        if (v.dev > w->dev) w = &v;
        each += (each.empty() ? "" : ", ") + v.name + " " + num(v.dev);
      }
      std::string text = "max deviation from float64, relative to each tensor's max |value|: " + each +
                         " (tolerance " + num(kBackward32Tol) + ")";
      if (!(w->dev <= kBackward32Tol))
        throw CheckFailed("at " + w->where() + ": float32 " + value_text(w->got) + ", float64 " + value_text(w->want) +
                          " (deviation " + num(w->dev) + " relative to max |" + w->name + "| = " + num(w->scale) +
                          "); " + text);
      return text;
    });

    accumulates(p, kAccum32Tol);
    recurrent(p, kStep32Tol);
    long_sequence(p);
    round_trip(p);
  }

  // ---------------------------------------------------- both dtypes

  // A second backward adds to the parameter gradients (+=) and overwrites dx.
  template <class T>
  void accumulates(const Tensors<T>& p, double tol) {
    report_.run(std::string("backward accumulates ") + dtype_label<T>(), [&] {
      Tensors<T> x = convert<T>(*x_), probe = convert<T>(*probe_);
      Tensors<T> y = one<T>(xshape_, T(NAN)), dx1 = one<T>(xshape_, T(NAN)), dx2 = one<T>(xshape_, T(NAN));
      Tensors<T> first(shapes_, T(0));
      layer_->forward(&train_, p.get(), x[0], y[0]);
      layer_->backward(&train_, p.get(), probe[0], dx1[0], first.get());
      Tensors<T> again(first);
      layer_->forward(&train_, p.get(), x[0], y[0]);
      layer_->backward(&train_, p.get(), probe[0], dx2[0], again.get());
      Worst wp;
      for (size_t i = 0; i < specs_.size(); ++i) {
        std::vector<double> twice(first.data[i].begin(), first.data[i].end());
        for (double& v : twice) v *= 2;
        Worst w = worst_of(again.data[i], twice, param_grad_name(i), specs_[i].shape);
        if (i == 0 || w.dev > wp.dev) wp = w;
      }
      const Worst wx = worst_of(dx2.data[0], std::vector<double>(dx1.data[0].begin(), dx1.data[0].end()), "dx", xshape_);
      std::string text = "a second backward: dparams = 2 x first (deviation " + num(wp.dev) +
                         "), dx overwritten (deviation " + num(wx.dev) + "; tolerance " + num(tol) + ")";
      if (!(wp.dev <= tol))
        throw CheckFailed(text + "; at " + wp.where() + ": " + value_text(wp.got) + " after two, 2 x first = " +
                          value_text(wp.want) + " (parameter gradients must be added to, +=)");
      if (!(wx.dev <= tol))
        throw CheckFailed(text + "; at " + wx.where() + ": " + value_text(wx.got) + " after two, first " +
                          value_text(wx.want) + " (dx must be overwritten, =)");
      return text;
    });
  }

  // The recurrent mode (state_create, then step token by token) against
  // forward (inference) on its own input of L_rec tokens. state_create is
  // called through the raw table: SSM_ERR_UNSUPPORTED means "no recurrent
  // mode", which is allowed, and only the status code tells it from an error.
  template <class T>
  void recurrent(const Tensors<T>& p, double tol) {
    const std::string name = std::string("recurrent ") + dtype_label<T>();
    const ssm_layer_iface& f = layer_->f();
    if (!f.state_create || !f.step) {
      report_.skip(name, "no recurrent mode (state_create or step is NULL)");
      return;
    }
    StateGuard state{*layer_};
    const RawStatus created =
        take_status(reg_.host(), f.state_create(layer_->instance(), &infer_, p.get(), B_, &state.state));
    if (created.code == SSM_ERR_UNSUPPORTED) {
      report_.skip(name, "no recurrent mode (the plugin says: " + created.message + ")");
      return;
    }
    report_.run(name, [&] {
      if (created.code != SSM_OK) throw Error("layer '" + layer_->plugin().id + "' state_create: " + created.message);
      const std::vector<int64_t> shape = {B_, L_rec_, H_};
      Tensors<T> x = convert<T>(*x_rec_), y = one<T>(shape, T(NAN));
      layer_->forward(&infer_, p.get(), x[0], y[0]);
      try {
        require_finite(y.data[0], "y", shape);
      } catch (const CheckFailed& e) {
        throw CheckFailed(std::string("forward, the reference: ") + e.what());
      }
      const double m = max_abs(y.data[0]), scale = m > 0 ? m : 1.0;
      Tensors<T> x_t = one<T>({B_, H_}, T(0)), y_t = one<T>({B_, H_}, T(NAN));
      double worst = 0;
      std::string first_bad;
      for (int64_t t = 0; t < L_rec_; ++t) {
        for (int64_t b = 0; b < B_; ++b)
          for (int64_t h = 0; h < H_; ++h) x_t.data[0][b * H_ + h] = x.data[0][(b * L_rec_ + t) * H_ + h];
        y_t.fill(T(NAN));
        layer_->step(&infer_, p.get(), state.state, x_t[0], y_t[0]);
        for (int64_t b = 0; b < B_; ++b)
          for (int64_t h = 0; h < H_; ++h) {
            const double got = static_cast<double>(y_t.data[0][b * H_ + h]);
            const double want = static_cast<double>(y.data[0][(b * L_rec_ + t) * H_ + h]);
            const double d = deviation(got, want, scale);
            worst = std::max(worst, d);
            if (first_bad.empty() && !(d <= tol))
              first_bad = "token t = " + std::to_string(t) + ", batch b = " + std::to_string(b) + ", channel h = " +
                          std::to_string(h) + ": step " + value_text(got) + ", forward " + value_text(want) +
                          " (deviation " + num(d) + ")";
          }
      }
      std::string text = std::to_string(L_rec_) + " steps of a " + shape_text(shape) +
                         " input against forward: max deviation " + num(worst) + " relative to max |y| = " +
                         num(scale) + " (tolerance " + num(tol) + ")";
      if (!first_bad.empty()) throw CheckFailed("first above the tolerance at " + first_bad + "; " + text);
      return text;
    });
  }

  // forward (inference and training) and backward on (1, L_long, H): no NaN
  // or Inf anywhere (long kernels, long scans, FFT sizes overflowing).
  template <class T>
  void long_sequence(const Tensors<T>& p) {
    const std::string name = std::string("long sequence ") + dtype_label<T>();
    if (s_.long_len <= 0) {
      report_.skip(name, "--long-len 0");
      return;
    }
    report_.run(name, [&] {
      const std::vector<int64_t> shape = {1, s_.long_len, H_};
      auto finite = [&](const char* stage, const auto& v, const std::string& what, const std::vector<int64_t>& s) {
        try {
          require_finite(v, what, s);
        } catch (const CheckFailed& e) {
          throw CheckFailed(std::string(stage) + ": " + e.what());
        }
      };
      Tensors<T> x = convert<T>(*x_long_), probe = convert<T>(*probe_long_), y = one<T>(shape, T(NAN));
      layer_->forward(&infer_, p.get(), x[0], y[0]);
      finite("forward (inference)", y.data[0], "y", shape);
      y.fill(T(NAN));
      layer_->forward(&train_, p.get(), x[0], y[0]);
      finite("forward (training)", y.data[0], "y", shape);
      Tensors<T> dx = one<T>(shape, T(NAN)), dp(shapes_, T(0));
      layer_->backward(&train_, p.get(), probe[0], dx[0], dp.get());
      finite("backward", dx.data[0], "dx", shape);
      for (size_t i = 0; i < specs_.size(); ++i) finite("backward", dp.data[i], param_grad_name(i), specs_[i].shape);
      return "x " + shape_text(shape) + ": forward (inference and training) and backward all finite, max |y| = " +
             num(max_abs(y.data[0]));
    });
  }

  // The parameters copied out into a second instance made with the same
  // options give the same output, bit for bit: a layer's state lives in its
  // parameters (what a checkpoint saves), not hidden in the instance.
  template <class T>
  void round_trip(const Tensors<T>& p) {
    report_.run(std::string("param round trip ") + dtype_label<T>(), [&] {
      const Tensors<T> copy(p);
      std::unique_ptr<LayerObject> second = reg_.create_layer(name_, config_);
      Tensors<T> x = convert<T>(*x_);
      for (const ssm_ctx* ctx : {&infer_, &train_}) {
        Tensors<T> y1 = one<T>(xshape_, T(NAN)), y2 = one<T>(xshape_, T(NAN));
        layer_->forward(ctx, p.get(), x[0], y1[0]);
        second->forward(ctx, copy.get(), x[0], y2[0]);
        for (size_t k = 0; k < y1.data[0].size(); ++k)
          if (std::memcmp(&y1.data[0][k], &y2.data[0][k], sizeof(T)) != 0)
            throw CheckFailed(at("y", k, xshape_) + (ctx->training ? " (training)" : " (inference)") +
                              ": this instance " + value_text(y1.data[0][k]) +
                              ", a second instance with the same options and a copy of the parameters " +
                              value_text(y2.data[0][k]) +
                              " (a layer's state must live in its parameters, not in the instance)");
      }
      return std::string(
          "a second instance with the same options and a copy of the parameters: the same y bit for bit "
          "(inference and training)");
    });
  }

  Registry& reg_;
  const std::string name_;
  KV config_;
  const LayerSetup s_;
  Report& report_;
  const ssm_ctx train_, infer_;
  std::unique_ptr<LayerObject> layer_;
  int64_t B_ = 0, L_ = 0, H_ = 0, L_rec_ = 0;
  std::vector<int64_t> xshape_;
  std::vector<ParamInfo> specs_;
  std::vector<std::vector<int64_t>> shapes_;
  std::unique_ptr<Tensors<double>> x_, probe_, x_rec_, x_long_, probe_long_;
  std::unique_ptr<Tensors<double>> P64_;  // the float64 parameters (float32-exact), once param_init passed
  bool reference_ = false;                // float64 forward and backward passed: float32 is compared with them
};

int validate_layer(Registry& reg, const std::string& name, const KV& config, const LayerSetup& s, Report& report) {
  return LayerValidator(reg, name, config, s, report).run();
}

// ---------------------------------------------------------- discretization

using c128 = std::complex<double>;
using c64 = std::complex<float>;

int validate_disc(Registry& reg, const std::string& name, const KV& config, uint64_t seed, Report& report) {
  std::unique_ptr<DiscObject> disc;
  if (!report.run("create", [&] {
        disc = reg.create_disc(name, config);
        std::string suffix = disc->suffix();
        return "options: " + config_text(config) +
               (suffix.empty() ? std::string("; no layer suffix") : "; layer suffix '" + suffix + "'");
      }))
    return report.finish();
  const ssm_ctx ctx = reg.make_ctx(false, 1, seed, 0);

  // z = dt*A of stable SSMs (Re z < 0): small, moderate, large and oscillating.
  const std::vector<c128> z = {{-0.5, 0.25}, {-1e-4, 2e-4}, {-1.3, -2.0}, {-0.05, 0.0}, {-3.0, 10.0}, {-0.01, -0.7}};
  const std::vector<int64_t> shape = {static_cast<int64_t>(z.size())};
  auto eval = [&](const std::vector<c128>& at_z, std::vector<c128>* a, std::vector<c128>* beta, std::vector<c128>* da,
                  std::vector<c128>* dbeta) {
    std::vector<c128> zin = at_z;
    ssm::View zv(zin.data(), shape);
    std::vector<ssm::View> out;
    out.reserve(4);
    auto view = [&](std::vector<c128>* v) -> DLTensor* {
      if (!v) return nullptr;
      v->assign(at_z.size(), c128(kNaN, kNaN));
      out.emplace_back(v->data(), shape);
      return out.back().get();
    };
    DLTensor* a_t = view(a);
    DLTensor* beta_t = view(beta);
    DLTensor* da_t = view(da);
    DLTensor* dbeta_t = view(dbeta);
    disc->eval(&ctx, zv.get(), a_t, beta_t, da_t, dbeta_t);
  };
  auto finite = [](const std::vector<c128>& v, const std::string& what) {
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i].real()) || !std::isfinite(v[i].imag()))
        throw CheckFailed(what + " at z[" + std::to_string(i) + "] is not finite (not written?)");
  };
  auto z_text = [&](size_t i) { return "(" + num(z[i].real()) + ", " + num(z[i].imag()) + ")"; };

  std::vector<c128> a, beta, da, dbeta;
  bool have128 = false;
  auto run_complex128 = [&] {
    have128 = report.run("eval complex128", [&] {
      eval(z, &a, &beta, &da, &dbeta);
      finite(a, "a"), finite(beta, "beta"), finite(da, "a'"), finite(dbeta, "beta'");
      std::ostringstream o;
      o << z.size() << " values, all finite; e.g. z = " << z_text(0) << ": a = (" << num(a[0].real()) << ", "
        << num(a[0].imag()) << "), beta = (" << num(beta[0].real()) << ", " << num(beta[0].imag()) << ")";
      return o.str();
    });
    if (!have128) return;

    report.run("eval with NULL outputs", [&] {
      std::vector<c128> a_only, beta_only;
      eval(z, &a_only, nullptr, nullptr, nullptr);
      eval(z, nullptr, &beta_only, nullptr, nullptr);
      for (size_t i = 0; i < z.size(); ++i)
        if (a_only[i] != a[i] || beta_only[i] != beta[i])
          throw CheckFailed("asking for a (or beta) alone gives other values than asking for all four, at z[" +
                            std::to_string(i) + "]");
      return std::string("a alone and beta alone equal the full call");
    });

    // The derivatives are complex derivatives of holomorphic maps: with the
    // loss Re sum_k conj(p_k) f(z_k) for a random probe p, d loss / d Re z_k =
    // Re(conj(p_k) f'(z_k)) and d loss / d Im z_k = Re(conj(p_k) i f'(z_k)),
    // which the shared gradient checker compares with central differences.
    std::mt19937_64 gen(seed);
    std::normal_distribution<double> normal;
    std::vector<c128> probe(z.size());
    for (c128& p : probe) p = {normal(gen), normal(gen)};
    auto derivative_check = [&](bool of_a) {
      const size_t n = z.size();
      const std::vector<c128>& deriv = of_a ? da : dbeta;
      std::vector<double> w(2 * n), analytic(2 * n);
      for (size_t k = 0; k < n; ++k) {
        w[k] = z[k].real(), w[n + k] = z[k].imag();
        analytic[k] = (std::conj(probe[k]) * deriv[k]).real();
        analytic[n + k] = (std::conj(probe[k]) * c128(0, 1) * deriv[k]).real();
      }
      auto loss = [&] {
        std::vector<c128> zz(n), f;
        for (size_t k = 0; k < n; ++k) zz[k] = {w[k], w[n + k]};
        if (of_a) eval(zz, &f, nullptr, nullptr, nullptr);
        else eval(zz, nullptr, &f, nullptr, nullptr);
        double s = 0;
        for (size_t k = 0; k < n; ++k) s += (std::conj(probe[k]) * f[k]).real();
        return s;
      };
      gc::Options opt;
      opt.floor = kGradFloor;
      const gc::Result r = gc::check(w, analytic, loss, opt);
      const size_t k = r.index % n;
      std::string text = "worst relative error " + num(r.error) + " over " + std::to_string(r.checked) +
                         " coordinates (Re and Im of " + std::to_string(n) + " values; at " +
                         (r.index < n ? "Re" : "Im") + " z[" + std::to_string(k) + "], z = " + z_text(k) +
                         ": finite difference " + num_full(r.fd) + ", derivative " + num_full(r.analytic) +
                         "; tolerance " + num(kGradTol) + ")";
      if (!r.passed(kGradTol)) throw CheckFailed(text);
      return text;
    };
    report.run("derivative a'", [&] { return derivative_check(true); });
    report.run("derivative beta'", [&] { return derivative_check(false); });
  };

  auto run_complex64 = [&] {
    report.run("eval complex64", [&] {
      std::vector<c64> z32(z.begin(), z.end()), a32(z.size(), c64(NAN, NAN)), b32(z.size(), c64(NAN, NAN));
      ssm::View zv(z32.data(), shape), av(a32.data(), shape), bv(b32.data(), shape);
      disc->eval(&ctx, zv.get(), av.get(), bv.get(), nullptr, nullptr);
      for (size_t i = 0; i < z.size(); ++i)
        if (!std::isfinite(a32[i].real()) || !std::isfinite(a32[i].imag()) || !std::isfinite(b32[i].real()) ||
            !std::isfinite(b32[i].imag()))
          throw CheckFailed("a or beta at z[" + std::to_string(i) + "] is not finite");
      if (!have128) return std::string("all finite (complex128 is not served: no comparison)");
      // z rounded to complex64 is what both see: compare with complex128 at it.
      std::vector<c128> z_rounded(z32.begin(), z32.end()), a_ref, beta_ref;
      eval(z_rounded, &a_ref, &beta_ref, nullptr, nullptr);
      double worst = 0;
      std::string where;
      for (size_t i = 0; i < z.size(); ++i) {
        const double da_ = deviation(std::abs(c128(a32[i]) - a_ref[i]), 0, std::max(1.0, std::abs(a_ref[i])));
        const double db_ = deviation(std::abs(c128(b32[i]) - beta_ref[i]), 0, std::max(1.0, std::abs(beta_ref[i])));
        if (da_ > worst) worst = da_, where = "a at z[" + std::to_string(i) + "]";
        if (db_ > worst) worst = db_, where = "beta at z[" + std::to_string(i) + "]";
      }
      std::string text = "max deviation from complex128 " + num(worst) + (where.empty() ? "" : " (" + where + ")") +
                         " relative to max(1, |value|) (tolerance " + num(kComplex64Tol) + ")";
      if (!(worst <= kComplex64Tol)) throw CheckFailed(text);
      return text;
    });
  };

  const DLDataType k64 = ssm::dtype_of<c64>::value, k128 = ssm::dtype_of<c128>::value;
  const Target targets[] = {{kCpu, k128}, {kCpu, k64}, {kCuda, k64}, {kCuda, k128}};
  for (const Target& t : targets) {
    if (!disc->supports(t.device, t.dtype)) {
      report.skip(target_name(t), "not served by the plugin (its supports() says no)");
      continue;
    }
    if (t.device.device_type != kDLCPU) {
      report.skip(target_name(t), kNoCudaHere);
      continue;
    }
    if (t.dtype.bits == 128) run_complex128();
    else run_complex64();
  }
  return report.finish();
}

// ------------------------------------------------------------------- task

// One batch's buffers, shaped as the trainer shapes them: x (B, L) int32 or
// (B, L, C) float32; y (B, T) int32 (cross-entropy) or (B, T, n_out) float32
// (MSE); mask (B, T) float32; T = M (last M), L (all) or 1.
struct TaskBatch {
  std::vector<int32_t> x_tokens, y_ids;
  std::vector<float> x_real, y_real, mask;
  std::vector<ssm::View> views;
  DLTensor *x = nullptr, *y = nullptr, *m = nullptr;

  TaskBatch(const ssm_task_info& t, int64_t B) {
    const int64_t T = t.readout == SSM_READOUT_LAST_M ? t.readout_m : t.readout == SSM_READOUT_ALL ? t.seq_len : 1;
    views.reserve(3);
    if (t.input_kind == SSM_INPUT_TOKENS) {
      x_tokens.assign(static_cast<size_t>(B * t.seq_len), -1);
      views.emplace_back(x_tokens.data(), std::vector<int64_t>{B, t.seq_len});
    } else {
      x_real.assign(static_cast<size_t>(B * t.seq_len * t.in_channels), NAN);
      views.emplace_back(x_real.data(), std::vector<int64_t>{B, t.seq_len, t.in_channels});
    }
    x = views.back().get();
    if (t.loss == SSM_LOSS_CROSS_ENTROPY) {
      y_ids.assign(static_cast<size_t>(B * T), -1);
      views.emplace_back(y_ids.data(), std::vector<int64_t>{B, T});
    } else {
      y_real.assign(static_cast<size_t>(B * T * t.n_out), NAN);
      views.emplace_back(y_real.data(), std::vector<int64_t>{B, T, t.n_out});
    }
    y = views.back().get();
    if (t.has_mask) {
      mask.assign(static_cast<size_t>(B * T), NAN);
      views.emplace_back(mask.data(), std::vector<int64_t>{B, T});
      m = views.back().get();
    }
  }
  bool same_as(const TaskBatch& o) const {
    return x_tokens == o.x_tokens && y_ids == o.y_ids && std::memcmp(x_real.data(), o.x_real.data(), x_real.size() * 4) == 0 &&
           std::memcmp(y_real.data(), o.y_real.data(), y_real.size() * 4) == 0 &&
           std::memcmp(mask.data(), o.mask.data(), mask.size() * 4) == 0;
  }
};

int validate_task(Registry& reg, const std::string& name, const KV& config, uint64_t seed, Report& report) {
  std::unique_ptr<TaskObject> task;
  if (!report.run("create", [&] {
        task = reg.create_task(name, config);
        return "options: " + config_text(config);
      }))
    return report.finish();

  ssm_task_info t{};
  bool ok = report.run("info", [&] {
    t = task->info();
    std::ostringstream o;
    o << "input " << input_kind_name(t.input_kind) << ", vocab_size " << t.vocab_size << ", in_channels "
      << t.in_channels << ", seq_len " << t.seq_len << ", n_out " << t.n_out << ", readout " << readout_name(t.readout);
    if (t.readout == SSM_READOUT_LAST_M) o << " (M = " << t.readout_m << ")";
    o << ", loss " << loss_name(t.loss) << ", metric " << metric_name(t.metric) << ", mask " << (t.has_mask ? "yes" : "no")
      << ", n_train " << t.n_train << (t.n_train == 0 ? " (generated)" : "") << ", n_eval " << t.n_eval;
    std::string text = o.str();
    auto bad = [&](const std::string& why) { throw CheckFailed(why + " [" + text + "]"); };
    if (t.input_kind == SSM_INPUT_TOKENS && t.vocab_size < 1) bad("token input needs vocab_size >= 1");
    if (t.input_kind == SSM_INPUT_REAL && t.in_channels < 1) bad("real input needs in_channels >= 1");
    if (t.input_kind != SSM_INPUT_TOKENS && t.input_kind != SSM_INPUT_REAL) bad("unknown input_kind");
    if (t.seq_len < 1 || t.n_out < 1) bad("seq_len and n_out must be >= 1");
    if (t.readout < SSM_READOUT_MEAN || t.readout > SSM_READOUT_ALL) bad("unknown readout");
    if (t.readout == SSM_READOUT_LAST_M && (t.readout_m < 1 || t.readout_m > t.seq_len))
      bad("readout last_m needs 1 <= readout_m <= seq_len");
    if (t.loss != SSM_LOSS_CROSS_ENTROPY && t.loss != SSM_LOSS_MSE) bad("unknown loss");
    if (t.metric < SSM_METRIC_ACCURACY || t.metric > SSM_METRIC_MSE) bad("unknown metric");
    if (t.n_train < 0 || t.n_eval < 1) bad("n_train must be >= 0 and n_eval >= 1");
    return text;
  });
  if (!ok) return report.finish();

  report.run("run defaults", [&] {
    std::string text;
    for (auto& kv : task->run_defaults()) text += (text.empty() ? "" : ", ") + kv.first + "=" + kv.second;
    return text.empty() ? std::string("none") : text;
  });

  const int64_t B = 4;
  auto check_batch = [&](int split) {
    TaskBatch b(t, B);
    task->batch(split, seed, 0, B, b.x, b.y, b.m);
    for (size_t i = 0; i < b.x_tokens.size(); ++i)
      if (b.x_tokens[i] < 0 || b.x_tokens[i] >= t.vocab_size)
        throw CheckFailed("x[" + std::to_string(i) + "] = " + std::to_string(b.x_tokens[i]) + " is not a token id in [0, " +
                          std::to_string(t.vocab_size) + ")");
    require_finite(b.x_real, "x");
    require_finite(b.y_real, "y");
    require_finite(b.mask, "mask");
    for (size_t i = 0; i < b.y_ids.size(); ++i) {
      const bool counted = b.mask.empty() || b.mask[i] != 0;
      if (counted && (b.y_ids[i] < 0 || b.y_ids[i] >= t.n_out))
        throw CheckFailed("y[" + std::to_string(i) + "] = " + std::to_string(b.y_ids[i]) + " is not a class in [0, " +
                          std::to_string(t.n_out) + ")");
    }
    TaskBatch again(t, B);
    task->batch(split, seed, 0, B, again.x, again.y, again.m);
    if (!b.same_as(again)) throw CheckFailed("the same (seed, split, index) gave a different batch; batch() must be pure");
    std::string text = "x " + shape_text(b.views[0].shape) + ", y " + shape_text(b.views[1].shape);
    if (b.m) text += ", mask " + shape_text(b.views[2].shape);
    return text + ": values in range, the same on a second call";
  };
  report.run("train batch", [&] { return check_batch(SSM_SPLIT_TRAIN); });
  report.run("eval batch", [&] { return check_batch(SSM_SPLIT_TEST); });
  return report.finish();
}

// ----------------------------------------------------------------- dataset

int validate_dataset(Registry& reg, const std::string& name, const KV& config, Report& report) {
  std::unique_ptr<DatasetObject> ds;
  if (!report.run("create", [&] {
        ds = reg.create_dataset(name, config);
        return "options: " + config_text(config);
      }))
    return report.finish();
  ssm_dataset_info info{};
  std::vector<int64_t> shape;
  bool ok = report.run("info", [&] {
    info = ds->info();
    if (info.example_ndim < 0 || info.example_ndim > 4) throw CheckFailed("example_ndim must be 0..4");
    shape.assign(info.example_shape, info.example_shape + info.example_ndim);
    std::string text = "n_train " + std::to_string(info.n_train) + ", n_test " + std::to_string(info.n_test) +
                       ", example " + shape_text(shape) + " " + ssm::dtype_name(info.example_dtype) + ", n_classes " +
                       std::to_string(info.n_classes);
    for (int64_t d : shape)
      if (d < 1) throw CheckFailed("example shape must be positive [" + text + "]");
    if (info.n_train < 1 || info.n_test < 0 || info.n_classes < 0) throw CheckFailed("bad counts [" + text + "]");
    if (info.example_dtype.bits % 8 != 0 || info.example_dtype.bits == 0 || info.example_dtype.lanes != 1)
      throw CheckFailed("example dtype must be whole bytes, one lane [" + text + "]");
    return text;
  });
  if (!ok) return report.finish();

  int64_t bytes = info.example_dtype.bits / 8;
  for (int64_t d : shape) bytes *= d;
  std::vector<int64_t> batch_shape = {1};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  auto read = [&](int split, int64_t index, int64_t* label) {
    std::vector<unsigned char> buf(static_cast<size_t>(bytes));
    ssm::View x(buf.data(), info.example_dtype, batch_shape);
    ssm::View labels(label, std::vector<int64_t>{1});
    ds->read(split, &index, 1, x.get(), info.n_classes > 0 ? labels.get() : nullptr);
  };
  auto read_check = [&](int split, const char* split_name) {
    int64_t label = -1;
    read(split, 0, &label);
    std::string text = std::string("example 0 of ") + split_name + " read (" + std::to_string(bytes) + " bytes)";
    if (info.n_classes > 0) {
      if (label < 0 || label >= info.n_classes)
        throw CheckFailed(text + " but its label " + std::to_string(label) + " is not in [0, " +
                          std::to_string(info.n_classes) + ")");
      text += ", label " + std::to_string(label);
    }
    return text;
  };
  report.run("read train", [&] { return read_check(SSM_SPLIT_TRAIN, "train"); });
  if (info.n_test > 0) report.run("read test", [&] { return read_check(SSM_SPLIT_TEST, "test"); });
  report.run("read out of range", [&] {
    int64_t label = -1;
    try {
      read(SSM_SPLIT_TRAIN, info.n_train, &label);
    } catch (const Error& e) {
      return std::string("index n_train rejected: ") + e.what();
    }
    throw CheckFailed("reading index n_train = " + std::to_string(info.n_train) + " succeeded; it must be an error");
  });
  return report.finish();
}

po::options_description validate_options() {
  po::options_description d("ssmhost validate ID [options]");
  d.add_options()("id", po::value<std::string>(), "plugin id or alias; a layer may carry a discretization suffix (s4dz)")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "also search this folder or file; repeatable")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "KEY=VALUE: an option handed to the plugin (e.g. --set d_model=16); repeatable")(
      "seed", po::value<uint64_t>()->default_value(1), "seed of the random inputs and of param_init")(
      "batch-size", po::value<int64_t>()->default_value(2), "layers: B of the test input")(
      "seq-len", po::value<int64_t>()->default_value(16), "layers: L of the test input")(
      "coords", po::value<std::string>()->default_value("auto"),
      "layers: coordinates of each tensor the gradient check perturbs: all, N (N of them, one at random in each "
      "of N equal parts), or auto (all up to 4096 elements, else 512)")(
      "recurrent-len", po::value<int64_t>()->default_value(0),
      "layers: tokens of the recurrent check's input; 0: max(--seq-len, 256)")(
      "long-len", po::value<int64_t>()->default_value(kLongLen),
      "layers: L of the long-sequence check (B = 1); 0: skip it");
  return d;
}

}  // namespace

std::string validate_help() {
  std::ostringstream o;
  o << "Check that a plugin really works before you train with it: create it through the\n"
       "registry, call every slot the host will call, and compare the numbers. One line per\n"
       "check (PASS, FAIL or SKIP, with its numbers); exit status 1 when any check fails.\n"
       "A failure names where it goes wrong: the tensor and coordinate (x[1, 5, 37],\n"
       "dtaps[37, 2]), or the token, batch and channel.\n"
       "\n"
       "Every check runs on every (device, dtype) pair the plugin serves (its supports();\n"
       "without one: CPU float32 and float64 for layers, complex64 and complex128 for\n"
       "discretizations, CUDA float32/complex64 when it has CUDA slots), in the order cpu\n"
       "float64, cpu float32, cuda float32, cuda float64; a pair not served is one SKIP\n"
       "line. CUDA pairs are SKIPped: validate has no CUDA execution in this build yet.\n"
       "\n"
       "What is checked, by kind:\n"
       "  layer    parameters described. Per dtype: param_init gives finite values; forward on\n"
       "           a random (B, L, H) input (2, 16, d_model = 8 by default) writes a finite y;\n"
       "           backward writes finite dx and parameter gradients.\n"
       "           gradient X (float64): backward against central finite differences, h =\n"
       "             1e-6 max(1, |w|), error |fd - backward| / max(|fd|, |backward|, floor),\n"
       "             fails above "
    << num(kGradTol) << ". floor = max(" << num(kGradFloor) << ", " << num(kFdResolution)
    << " sum|y probe| / " << num(kGradTol)
    << "):\n"
       "             a finite difference cannot resolve gradients below its own rounding\n"
       "             error, which grows with the loss. Every coordinate of a tensor up to\n"
       "             "
    << kGradAllUpTo << " elements, else " << kGradSample << " spread over it (--coords).\n"
       "           forward / backward float32: against float64 on the same inputs (float64\n"
       "             values rounded to float32), relative to the float64 tensor's max |value|:\n"
       "             y (inference and training) within "
    << num(kForward32Tol) << ", dx and every parameter gradient\n"
    << "             within " << num(kBackward32Tol)
    << "; a failure names the tensor and coordinate, with both values.\n"
       "           backward accumulates: a second backward adds to the parameter gradients (+=)\n"
       "             and overwrites dx (within "
    << num(kAccum64Tol) << " in float64, " << num(kAccum32Tol) << " in float32).\n"
       "           recurrent: state_create, then step token by token on its own input of\n"
       "             max(L, 256) tokens (--recurrent-len) equals forward within "
    << num(kStep64Tol) << " (float64),\n"
       "             "
    << num(kStep32Tol)
    << " (float32) relative to max |y|; a failure names the first token t,\n"
       "             batch b and channel h above it, with both values. SKIP when the layer\n"
       "             has none.\n"
       "           long sequence: forward (inference and training) and backward at B = 1,\n"
       "             L = "
    << kLongLen
    << " (--long-len) are finite; names the first NaN or Inf.\n"
       "           param round trip: a second instance with the same options, given a copy of\n"
       "             the parameters, computes the same y bit for bit (no state hidden in the\n"
       "             instance).\n"
       "  disc     eval on complex128 z = dt*A values (finite a, beta, a', beta'); any output may\n"
       "           be NULL; a' and beta' against finite differences in Re z and Im z (the same\n"
       "           checker); complex64 agrees with complex128 within "
    << num(kComplex64Tol)
    << ".\n"
       "  task     info() is consistent and printed; run defaults; one train and one eval batch\n"
       "           with the trainer's shapes, values in range, the same on a second call.\n"
       "  dataset  info() printed; example 0 of train (and test) read, labels in range; an\n"
       "           out-of-range index is an error.\n"
       "\n"
       "Examples:\n"
       "  ssmhost validate zoh\n"
       "  ssmhost validate s4dz --set d_model=16 --set d_state=8\n"
       "  ssmhost validate s4dz --set d_model=64 --coords all\n"
       "  ssmhost validate example_moving_average --plugin-path ./build --set window=3\n"
       "  ssmhost validate idx --set dataset_dir=/usr/share/datasets/fashion-mnist\n"
       "\n"
    << validate_options();
  return o.str();
}

int run_validate(const std::vector<std::string>& args) {
  po::positional_options_description pos;
  pos.add("id", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(validate_options()).positional(pos).run(), vm);
  po::notify(vm);
  if (!vm.count("id"))
    throw UsageError("validate needs a plugin id, e.g. `ssmhost validate zoh` (see `ssmhost list`)");
  const std::string id = vm["id"].as<std::string>();
  const KV config = parse_sets(vm);
  LayerSetup setup;
  setup.seed = vm["seed"].as<uint64_t>();
  setup.batch = vm["batch-size"].as<int64_t>();
  setup.len = vm["seq-len"].as<int64_t>();
  setup.recurrent_len = vm["recurrent-len"].as<int64_t>();
  setup.long_len = vm["long-len"].as<int64_t>();
  if (setup.batch < 1 || setup.len < 1) throw UsageError("--batch-size and --seq-len must be >= 1");
  if (setup.recurrent_len < 0 || setup.long_len < 0) throw UsageError("--recurrent-len and --long-len must be >= 0");
  const std::string coords = vm["coords"].as<std::string>();
  if (coords == "all") {
    setup.coords_all = true;
  } else if (coords != "auto") {
    size_t used = 0;
    long long n = 0;
    try {
      n = std::stoll(coords, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != coords.size() || n < 1)
      throw UsageError("--coords must be all, auto or a positive number, got '" + coords + "'");
    setup.coords_n = static_cast<size_t>(n);
  }

  // One thread, as ctx.threads = 1 tells the plugins: also for the OpenMP
  // runtime they share with the host, so that plugins that parallelise
  // regardless are deterministic here and small parallel regions do not spin
  // against a busy machine (the checks call forward thousands of times).
  omp_set_num_threads(1);

  Registry reg;
  load_registry(reg, vm);
  // The plugin of any kind by exact id or alias; otherwise a layer name with
  // a discretization suffix (the error lists close layer names).
  const PluginInfo* p = nullptr;
  for (int k = SSM_KIND_LAYER; k <= SSM_KIND_TASK && !p; ++k) p = reg.find(static_cast<ssm_kind>(k), id);
  std::string disc;
  if (!p) {
    try {
      std::tie(p, disc) = reg.resolve_layer(id);
    } catch (const Error&) {
      std::string msg = "no plugin named '" + id + "'";
      std::vector<std::string> close;
      for (int k = SSM_KIND_LAYER; k <= SSM_KIND_TASK; ++k)
        for (const std::string& c : reg.close_matches(static_cast<ssm_kind>(k), id)) close.push_back("'" + c + "'");
      for (size_t i = 0; i < close.size(); ++i) msg += (i ? ", " : "; did you mean ") + close[i];
      throw Error(msg + (close.empty() ? "" : "?") + " (`ssmhost list` shows every plugin found)");
    }
  }
  std::cout << "validate " << id << ": " << kind_name(p->kind) << " plugin '" << p->id << "' " << p->version
            << (disc.empty() ? "" : " with discretization '" + disc + "'") << " (" << p->path << ")\n\n";

  Report report;
  switch (p->kind) {
    case SSM_KIND_LAYER: return validate_layer(reg, id, config, setup, report);
    case SSM_KIND_DISC: return validate_disc(reg, id, config, setup.seed, report);
    case SSM_KIND_TASK: return validate_task(reg, id, config, setup.seed, report);
    case SSM_KIND_DATASET: return validate_dataset(reg, id, config, report);
  }
  return 1;
}

}  // namespace ssmhost
