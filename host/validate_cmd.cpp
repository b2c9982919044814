// ssmhost validate: creates one plugin through the registry and checks that
// it really works, the way the host will use it: one PASS/FAIL/SKIP line per
// check with its numbers, exit status 1 when any check fails.
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
#include <random>
#include <sstream>
#include <tuple>

#include "commands.hpp"
#include "registry.hpp"

namespace po = boost::program_options;

namespace ssmhost {
namespace {

// Gradients must match central finite differences to this relative error
// (in float64); the recurrent mode must match forward to kStepTol.
constexpr double kGradTol = 1e-5;
constexpr double kStepTol = 1e-6;
constexpr double kFloat32Tol = 1e-3;
// Below this magnitude a gradient is compared absolutely: relative error is
// meaningless near zero (the habit of tests/gradcheck.hpp).
constexpr double kGradFloor = 1e-3;
constexpr int kGradCoordinates = 6;  // random coordinates checked per tensor

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
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
    std::printf("%s %-22s %s\n", status, name.c_str(), detail.c_str());
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

template <class T>
Tensors<T> one(const std::vector<int64_t>& shape, T fill) {
  return Tensors<T>({shape}, fill);
}

template <class T>
bool all_finite(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](T x) { return std::isfinite(static_cast<double>(x)); });
}

template <class T>
double max_abs(const std::vector<T>& v) {
  double m = 0;
  for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

// Where a buffer that was filled with NaN still holds one: the plugin did not
// write it (or wrote NaN/inf).
template <class T>
void require_finite(const std::vector<T>& v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(static_cast<double>(v[i])))
      throw CheckFailed(what + ": element " + std::to_string(i) + " of " + std::to_string(v.size()) + " is " +
                        std::to_string(static_cast<double>(v[i])) + " (not written, or not finite)");
}

KV parse_sets(const po::variables_map& vm) {
  KV config;
  if (!vm.count("set")) return config;
  for (const std::string& s : vm["set"].as<std::vector<std::string>>()) {
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--set needs KEY=VALUE, got '" + s + "' (e.g. --set d_model=16)");
    config[s.substr(0, eq)] = s.substr(eq + 1);
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

// ------------------------------------------------------------------ layer

struct LayerSetup {
  int64_t batch = 2, len = 16;
  uint64_t seed = 1;
};

// A recurrent state destroyed with its scope.
struct StateGuard {
  const LayerObject& layer;
  void* state = nullptr;
  ~StateGuard() { layer.state_destroy(state); }
};

int validate_layer(Registry& reg, const std::string& name, KV config, const LayerSetup& s, Report& report) {
  if (!config.count("d_model")) config["d_model"] = "8";
  std::unique_ptr<LayerObject> layer;
  if (!report.run("create", [&] {
        layer = reg.create_layer(name, config);
        return "options: " + config_text(config);
      }))
    return report.finish();
  int64_t H = 0;
  try {
    H = std::stoll(config.at("d_model"));
  } catch (const std::exception&) {
  }
  if (H < 1) throw UsageError("d_model must be a positive integer, got '" + config.at("d_model") + "'");
  const int64_t B = s.batch, L = s.len;
  const ssm_ctx train = make_ctx(true, 1, s.seed, 0), infer = make_ctx(false, 1, s.seed, 0);

  std::vector<ParamInfo> specs;
  std::vector<std::vector<int64_t>> shapes;
  bool ok = report.run("params", [&] {
    specs = layer->params();
    std::string text;
    int64_t total = 0;
    for (const ParamInfo& p : specs) {
      if (p.name.empty()) throw CheckFailed("a parameter has an empty name");
      for (const ParamInfo& q : specs)
        if (&q != &p && q.name == p.name) throw CheckFailed("two parameters are named '" + p.name + "'");
      if (p.shape.empty() || p.shape.size() > 4) throw CheckFailed("'" + p.name + "' must have 1 to 4 dimensions");
      for (int64_t d : p.shape)
        if (d < 1) throw CheckFailed("'" + p.name + "' has shape " + shape_text(p.shape));
      shapes.push_back(p.shape);
      total += p.numel();
      text += (text.empty() ? "" : ", ") + p.name + " " + shape_text(p.shape);
      if (p.flags & SSM_PARAM_SSM) text += " [ssm]";
      if (p.flags & SSM_PARAM_NO_WEIGHT_DECAY) text += " [no wd]";
      if (p.lr_max > 0) text += " [lr <= " + num(p.lr_max) + "]";
      if (p.weight_decay >= 0) text += " [wd " + num(p.weight_decay) + "]";
    }
    return std::to_string(specs.size()) + " tensors, " + std::to_string(total) + " values: " +
           (text.empty() ? "none" : text);
  });
  if (!ok) return report.finish();

  Tensors<double> params(shapes, kNaN);
  ok = report.run("param_init float64", [&] {
    layer->param_init(&train, params.get());
    for (size_t i = 0; i < specs.size(); ++i) require_finite(params.data[i], "parameter '" + specs[i].name + "'");
    double m = 0;
    for (auto& d : params.data) m = std::max(m, max_abs(d));
    return "all finite, max |p| = " + num(m);
  });
  if (!ok) return report.finish();

  // Inputs and a random probe: loss = sum(y * probe), so dL/dy = probe.
  std::mt19937_64 gen(s.seed);
  std::normal_distribution<double> normal;
  const std::vector<int64_t> xshape = {B, L, H};
  Tensors<double> x = one<double>(xshape, 0), probe = one<double>(xshape, 0);
  for (double& v : x.data[0]) v = normal(gen);
  for (double& v : probe.data[0]) v = normal(gen);

  Tensors<double> y = one<double>(xshape, kNaN);
  auto loss = [&]() {
    y.fill(kNaN);
    layer->forward(&train, params.get(), x[0], y[0]);
    double sum = 0;
    for (size_t i = 0; i < y.data[0].size(); ++i) sum += y.data[0][i] * probe.data[0][i];
    return sum;
  };
  ok = report.run("forward float64", [&] {
    loss();
    require_finite(y.data[0], "y " + shape_text(xshape));
    return "x " + shape_text(xshape) + " -> y " + shape_text(xshape) + ", all finite, max |y| = " +
           num(max_abs(y.data[0]));
  });
  if (!ok) return report.finish();

  // Analytic gradients: dx is overwritten, dparams accumulate from zero.
  Tensors<double> dx = one<double>(xshape, kNaN), dparams(shapes, 0.0);
  ok = report.run("backward float64", [&] {
    loss();
    layer->backward(&train, params.get(), probe[0], dx[0], dparams.get());
    require_finite(dx.data[0], "dx");
    for (size_t i = 0; i < specs.size(); ++i) require_finite(dparams.data[i], "d" + specs[i].name);
    return "dx and " + std::to_string(specs.size()) + " parameter gradients written, all finite";
  });
  if (!ok) return report.finish();

  // Central differences at a few random coordinates of one tensor.
  auto grad_check = [&](std::vector<double>& values, const std::vector<double>& analytic) {
    std::vector<size_t> coords(values.size());
    for (size_t i = 0; i < coords.size(); ++i) coords[i] = i;
    std::shuffle(coords.begin(), coords.end(), gen);
    coords.resize(std::min<size_t>(coords.size(), kGradCoordinates));
    double worst = 0, worst_fd = 0, worst_an = 0;
    size_t worst_i = 0;
    for (size_t i : coords) {
      const double saved = values[i], h = 1e-6 * std::max(1.0, std::abs(saved));
      values[i] = saved + h;
      const double up = loss();
      values[i] = saved - h;
      const double down = loss();
      values[i] = saved;
      const double fd = (up - down) / (2 * h);
      const double err = std::abs(fd - analytic[i]) / std::max({std::abs(fd), std::abs(analytic[i]), kGradFloor});
      if (!(err <= worst)) {  // also catches NaN
        worst = err, worst_i = i, worst_fd = fd, worst_an = analytic[i];
      }
    }
    std::string text = "worst relative error " + num(worst) + " over " + std::to_string(coords.size()) +
                       " coordinates (at " + std::to_string(worst_i) + ": finite difference " + num(worst_fd) +
                       ", backward " + num(worst_an) + "; tolerance " + num(kGradTol) + ")";
    if (!(worst <= kGradTol)) throw CheckFailed(text);
    return text;
  };
  report.run("gradient x", [&] { return grad_check(x.data[0], dx.data[0]); });
  for (size_t i = 0; i < specs.size(); ++i)
    report.run("gradient " + specs[i].name, [&] { return grad_check(params.data[i], dparams.data[i]); });

  report.run("backward accumulates", [&] {
    Tensors<double> again(dparams);
    Tensors<double> dx2 = one<double>(xshape, kNaN);
    loss();
    layer->backward(&train, params.get(), probe[0], dx2[0], again.get());
    double worst = 0;
    for (size_t i = 0; i < specs.size(); ++i)
      for (size_t k = 0; k < again.data[i].size(); ++k) {
        const double want = 2 * dparams.data[i][k];
        worst = std::max(worst, std::abs(again.data[i][k] - want) / std::max(1.0, std::abs(want)));
      }
    double dx_change = 0;
    for (size_t k = 0; k < dx2.data[0].size(); ++k) dx_change = std::max(dx_change, std::abs(dx2.data[0][k] - dx.data[0][k]));
    std::string text = "a second backward: dparams = 2 x first (deviation " + num(worst) +
                       "), dx overwritten (deviation " + num(dx_change) + ")";
    if (!(worst <= 1e-12) || !(dx_change <= 1e-12)) throw CheckFailed(text + "; dparams must be += and dx =");
    return text;
  });

  // Inference output: the reference of the recurrent and float32 checks.
  Tensors<double> y_infer = one<double>(xshape, kNaN);
  ok = report.run("forward inference", [&] {
    layer->forward(&infer, params.get(), x[0], y_infer[0]);
    require_finite(y_infer.data[0], "y");
    return "ctx.training = 0, all finite";
  });
  if (!ok) return report.finish();
  const double scale = std::max(1.0, max_abs(y_infer.data[0]));

  // Recurrent mode, token by token, against forward. state_create is called
  // through the raw table: SSM_ERR_UNSUPPORTED means "no recurrent mode",
  // which is allowed, and only the status code tells it from an error.
  const ssm_layer_iface& f = layer->f();
  StateGuard state{*layer};
  RawStatus created;
  if (f.state_create && f.step)
    created = take_status(reg.host(), f.state_create(layer->instance(), &infer, params.get(), B, &state.state));
  if (!f.state_create || !f.step) {
    report.skip("recurrent", "no recurrent mode (state_create or step is NULL)");
  } else if (created.code == SSM_ERR_UNSUPPORTED) {
    report.skip("recurrent", "no recurrent mode (the plugin says: " + created.message + ")");
  } else {
    report.run("recurrent", [&] {
      if (created.code != SSM_OK)
        throw Error("layer '" + layer->plugin().id + "' state_create: " + created.message);
      Tensors<double> x_t = one<double>({B, H}, 0), y_t = one<double>({B, H}, kNaN);
      double worst = 0;
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < H; ++h) x_t.data[0][b * H + h] = x.data[0][(b * L + t) * H + h];
        y_t.fill(kNaN);
        layer->step(&infer, params.get(), state.state, x_t[0], y_t[0]);
        require_finite(y_t.data[0], "y_t at t = " + std::to_string(t));
        for (int64_t b = 0; b < B; ++b)
          for (int64_t h = 0; h < H; ++h)
            worst = std::max(worst, std::abs(y_t.data[0][b * H + h] - y_infer.data[0][(b * L + t) * H + h]) / scale);
      }
      std::string text = std::to_string(L) + " steps against forward: max deviation " + num(worst) +
                         " relative to max |y| (tolerance " + num(kStepTol) + ")";
      if (!(worst <= kStepTol)) throw CheckFailed(text);
      return text;
    });
  }

  // float32: the same parameters and input, rounded.
  Tensors<float> params32 = convert<float>(params), x32 = convert<float>(x);
  report.run("forward float32", [&] {
    Tensors<float> y32 = one<float>(xshape, std::numeric_limits<float>::quiet_NaN());
    layer->forward(&infer, params32.get(), x32[0], y32[0]);
    require_finite(y32.data[0], "y");
    double worst = 0;
    for (size_t k = 0; k < y32.data[0].size(); ++k)
      worst = std::max(worst, std::abs(double(y32.data[0][k]) - y_infer.data[0][k]) / scale);
    std::string text = "all finite, max deviation from float64 " + num(worst) + " relative to max |y| (tolerance " +
                       num(kFloat32Tol) + ")";
    if (!(worst <= kFloat32Tol)) throw CheckFailed(text);
    return text;
  });
  report.run("backward float32", [&] {
    Tensors<float> y32 = one<float>(xshape, 0), dx32 = one<float>(xshape, std::numeric_limits<float>::quiet_NaN());
    Tensors<float> dp32(shapes, 0.0f), probe32 = convert<float>(probe);
    layer->forward(&train, params32.get(), x32[0], y32[0]);
    layer->backward(&train, params32.get(), probe32[0], dx32[0], dp32.get());
    require_finite(dx32.data[0], "dx");
    for (size_t i = 0; i < specs.size(); ++i) require_finite(dp32.data[i], "d" + specs[i].name);
    return std::string("all finite");
  });
  return report.finish();
}

// ---------------------------------------------------------- discretization

using c128 = std::complex<double>;
using c64 = std::complex<float>;

int validate_disc(Registry& reg, const std::string& name, const KV& config, Report& report) {
  std::unique_ptr<DiscObject> disc;
  if (!report.run("create", [&] {
        disc = reg.create_disc(name, config);
        std::string suffix = disc->suffix();
        return "options: " + config_text(config) +
               (suffix.empty() ? std::string("; no layer suffix") : "; layer suffix '" + suffix + "'");
      }))
    return report.finish();
  const ssm_ctx ctx = make_ctx(false, 1, 1, 0);

  // z = dt*A of stable SSMs (Re z < 0): small, moderate, large and oscillating.
  const std::vector<c128> z = {{-0.5, 0.25}, {-1e-4, 2e-4}, {-1.3, -2.0}, {-0.05, 0.0}, {-3.0, 10.0}, {-0.01, -0.7}};
  const std::vector<int64_t> shape = {static_cast<int64_t>(z.size())};
  auto eval = [&](const std::vector<c128>& at, std::vector<c128>* a, std::vector<c128>* beta, std::vector<c128>* da,
                  std::vector<c128>* dbeta) {
    std::vector<c128> zin = at;
    ssm::View zv(zin.data(), shape);
    std::vector<ssm::View> out;
    out.reserve(4);
    auto view = [&](std::vector<c128>* v) -> DLTensor* {
      if (!v) return nullptr;
      v->assign(at.size(), c128(kNaN, kNaN));
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

  std::vector<c128> a, beta, da, dbeta;
  bool ok = report.run("eval complex128", [&] {
    eval(z, &a, &beta, &da, &dbeta);
    finite(a, "a"), finite(beta, "beta"), finite(da, "a'"), finite(dbeta, "beta'");
    std::ostringstream o;
    o << z.size() << " values, all finite; e.g. z = (" << z[0].real() << ", " << z[0].imag() << "): a = (" << num(a[0].real())
      << ", " << num(a[0].imag()) << "), beta = (" << num(beta[0].real()) << ", " << num(beta[0].imag()) << ")";
    return o.str();
  });
  if (!ok) return report.finish();

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

  // The derivatives are complex derivatives of holomorphic maps, so a step
  // along the real axis measures them.
  auto derivative_check = [&](bool of_a) {
    std::vector<c128> up(z), down(z), h(z.size());
    for (size_t i = 0; i < z.size(); ++i) {
      h[i] = 1e-6 * std::max(1.0, std::abs(z[i]));
      up[i] += h[i], down[i] -= h[i];
    }
    std::vector<c128> f_up, f_down;
    if (of_a) {
      eval(up, &f_up, nullptr, nullptr, nullptr), eval(down, &f_down, nullptr, nullptr, nullptr);
    } else {
      eval(up, nullptr, &f_up, nullptr, nullptr), eval(down, nullptr, &f_down, nullptr, nullptr);
    }
    const std::vector<c128>& analytic = of_a ? da : dbeta;
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      const c128 fd = (f_up[i] - f_down[i]) / (2.0 * h[i]);
      const double err = std::abs(fd - analytic[i]) / std::max({std::abs(fd), std::abs(analytic[i]), kGradFloor});
      if (!(err <= worst)) worst = err, worst_i = i;
    }
    std::string text = "worst relative error " + num(worst) + " over " + std::to_string(z.size()) + " values (at z[" +
                       std::to_string(worst_i) + "]; tolerance " + num(kGradTol) + ")";
    if (!(worst <= kGradTol)) throw CheckFailed(text);
    return text;
  };
  report.run("derivative a'", [&] { return derivative_check(true); });
  report.run("derivative beta'", [&] { return derivative_check(false); });

  report.run("eval complex64", [&] {
    std::vector<c64> z32(z.begin(), z.end()), a32(z.size(), c64(NAN, NAN)), b32(z.size(), c64(NAN, NAN));
    ssm::View zv(z32.data(), shape), av(a32.data(), shape), bv(b32.data(), shape);
    disc->eval(&ctx, zv.get(), av.get(), bv.get(), nullptr, nullptr);
    double worst = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      if (!std::isfinite(a32[i].real()) || !std::isfinite(a32[i].imag()) || !std::isfinite(b32[i].real()) ||
          !std::isfinite(b32[i].imag()))
        throw CheckFailed("a or beta at z[" + std::to_string(i) + "] is not finite");
      worst = std::max(worst, std::abs(c128(a32[i]) - a[i]) / std::max(1.0, std::abs(a[i])));
      worst = std::max(worst, std::abs(c128(b32[i]) - beta[i]) / std::max(1.0, std::abs(beta[i])));
    }
    std::string text = "max deviation from complex128 " + num(worst) + " (tolerance " + num(kFloat32Tol) + ")";
    if (!(worst <= kFloat32Tol)) throw CheckFailed(text);
    return text;
  });
  return report.finish();
}

// ------------------------------------------------------------------- task

const char* input_kind_name(int32_t k) {
  return k == SSM_INPUT_TOKENS ? "tokens" : k == SSM_INPUT_REAL ? "real" : "?";
}
const char* readout_name(int32_t r) {
  switch (r) {
    case SSM_READOUT_MEAN: return "mean";
    case SSM_READOUT_LAST: return "last";
    case SSM_READOUT_LAST_M: return "last_m";
    case SSM_READOUT_ALL: return "all";
  }
  return "?";
}
const char* loss_name(int32_t l) {
  return l == SSM_LOSS_CROSS_ENTROPY ? "cross_entropy" : l == SSM_LOSS_MSE ? "mse" : "?";
}
const char* metric_name(int32_t m) {
  switch (m) {
    case SSM_METRIC_ACCURACY: return "accuracy";
    case SSM_METRIC_BPC: return "bpc";
    case SSM_METRIC_MSE: return "mse";
  }
  return "?";
}

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
      "seq-len", po::value<int64_t>()->default_value(16), "layers: L of the test input");
  return d;
}

}  // namespace

std::string validate_help() {
  std::ostringstream o;
  o << "Check that a plugin really works before you train with it: create it through the\n"
       "registry, call every slot the host will call, and compare the numbers. One line per\n"
       "check (PASS, FAIL or SKIP, with its numbers); exit status 1 when any check fails.\n"
       "\n"
       "What is checked, by kind:\n"
       "  layer    parameters described; param_init (float64) gives finite values; forward on a\n"
       "           random (B, L, H) float64 input (2, 16, d_model = 8 by default) writes a finite y;\n"
       "           backward against central finite differences at random coordinates of x and\n"
       "           of every parameter (worst relative error, fails above " << num(kGradTol) << ");\n"
       "           a second backward adds to the parameter gradients (+=) and overwrites dx;\n"
       "           the recurrent mode (state_create, step) token by token equals forward\n"
       "           (SKIP when the layer has none); float32 forward and backward run.\n"
       "  disc     eval on complex128 z = dt*A values (finite a, beta, a', beta'); any output may\n"
       "           be NULL; a' and beta' against finite differences; complex64 agrees.\n"
       "  task     info() is consistent and printed; run defaults; one train and one eval batch\n"
       "           with the trainer's shapes, values in range, the same on a second call.\n"
       "  dataset  info() printed; example 0 of train (and test) read, labels in range; an\n"
       "           out-of-range index is an error.\n"
       "\n"
       "Examples:\n"
       "  ssmhost validate zoh\n"
       "  ssmhost validate s4dz --set d_model=16 --set d_state=8\n"
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
  if (setup.batch < 1 || setup.len < 1) throw UsageError("--batch-size and --seq-len must be >= 1");

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
    case SSM_KIND_DISC: return validate_disc(reg, id, config, report);
    case SSM_KIND_TASK: return validate_task(reg, id, config, setup.seed, report);
    case SSM_KIND_DATASET: return validate_dataset(reg, id, config, report);
  }
  return 1;
}

}  // namespace ssmhost
