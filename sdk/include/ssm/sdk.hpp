// ssm/sdk.hpp — header-only C++ wrapper over ssm/abi.h for plugin authors.
//
// Write a class, register it with one macro, never touch the C structs:
//
//   class MyLayer : public ssm::Layer {
//    public:
//     static std::vector<ssm::Option> options() {
//       return {ssm::Option::integer("d_model", "64", "channels H")};
//     }
//     explicit MyLayer(const ssm::Config& cfg) : h_(cfg.i64("d_model")) {}
//     std::vector<ssm::ParamSpec> params() override { ... }
//     void init_params(ssm::Context&, ssm::Params) override { ... }
//     void forward(ssm::Context&, ssm::Params, const DLTensor& x, DLTensor& y) override { ... }
//     void backward(...) override { ... }
//   };
//   SSM_PLUGIN_LAYER(MyLayer, "my_layer", "1.0.0", "What it does, in one line")
//
// Exceptions thrown by your code are caught at the boundary and reported to
// the host as a status: throw ssm::Error (or call ssm::fail) with a message
// that names the option or value and what would be right.
#ifndef SSM_SDK_HPP
#define SSM_SDK_HPP

#include <ssm/abi.h>
#include <ssm/ext/layer_kernel.h>

#include <algorithm>
#include <complex>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace ssm {

// ------------------------------------------------------------------ errors

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

[[noreturn]] inline void fail(const std::string& message, int code = SSM_ERR_INVALID_ARGUMENT) {
  throw Error(code, message);
}

namespace detail {
inline const ssm_host*& host_slot() {
  static const ssm_host* host = nullptr;
  return host;
}
}  // namespace detail

// The host services table handed to this library at init and create.
inline const ssm_host& host() {
  const ssm_host* h = detail::host_slot();
  if (!h) throw Error(SSM_ERR_INTERNAL, "ssm::host() called before the host initialised the plugin");
  return *h;
}

// Runs f; returns NULL on success or a host status describing the exception.
template <class F>
ssm_status* guard(F&& f) noexcept {
  int code = SSM_ERR_INTERNAL;
  std::string message;
  try {
    f();
    return nullptr;
  } catch (const Error& e) {
    code = e.code();
    message = e.what();
  } catch (const std::exception& e) {
    message = std::string("unexpected exception: ") + e.what();
  } catch (...) {
    message = "unexpected non-standard exception";
  }
  const ssm_host* h = detail::host_slot();
  if (!h || !h->status_make) return nullptr;  // cannot happen after init; nothing else we can do
  return h->status_make(h->host_data, code, message.c_str());
}

// Throws ssm::Error for a non-NULL status (freeing it): for calls into children.
inline void check(ssm_status* status, const std::string& what) {
  if (!status) return;
  const ssm_host& h = host();
  int code = h.status_code(h.host_data, status);
  std::string message = what + ": " + h.status_message(h.host_data, status);
  h.status_free(h.host_data, status);
  throw Error(code, message);
}

inline void log(int level, const std::string& plugin_id, const std::string& message) {
  const ssm_host& h = host();
  h.log(h.host_data, level, plugin_id.c_str(), message.c_str());
}

// ----------------------------------------------------------------- options

struct Option {
  std::string name;
  ssm_option_type type;
  std::string default_value;  // text
  bool required;
  std::string help;
  int32_t plugin_kind = 0;    // an ssm_kind when the value names a plugin (--inner, --disc)

  static Option integer(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_INT, std::move(def), false, std::move(help)};
  }
  static Option real(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_FLOAT, std::move(def), false, std::move(help)};
  }
  static Option boolean(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_BOOL, std::move(def), false, std::move(help)};
  }
  static Option string(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_STRING, std::move(def), false, std::move(help)};
  }
  static Option required_string(std::string n, std::string help) {
    return {std::move(n), SSM_OPT_STRING, "", true, std::move(help)};
  }
  // Options whose value names another plugin: the host checks the name, lists
  // it in `info`, and records the plugin in the run log.
  static Option layer(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_STRING, std::move(def), false, std::move(help), SSM_KIND_LAYER};
  }
  static Option disc(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_STRING, std::move(def), false, std::move(help), SSM_KIND_DISC};
  }
  static Option dataset(std::string n, std::string def, std::string help) {
    return {std::move(n), SSM_OPT_STRING, std::move(def), false, std::move(help), SSM_KIND_DATASET};
  }
};

// The resolved options of one create() call, typed, with the plugin's
// declared defaults. Keys the plugin did not declare are kept (the host
// passes run-wide keys such as d_model) but never required.
class Config {
 public:
  Config() = default;
  Config(const ssm_config* c, const std::vector<Option>& declared) {
    for (const Option& o : declared)
      if (!o.required) values_[o.name] = o.default_value;
    if (c)
      for (uint32_t i = 0; i < c->count; ++i)
        if (c->items[i].key && c->items[i].value) values_[c->items[i].key] = c->items[i].value;
    for (const Option& o : declared)
      if (o.required && !values_.count(o.name)) fail("option '" + o.name + "' is required (" + o.help + ")");
  }
  explicit Config(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  const std::map<std::string, std::string>& values() const { return values_; }
  void set(const std::string& key, const std::string& value) { values_[key] = value; }

  std::string str(const std::string& key) const {
    auto it = values_.find(key);
    if (it == values_.end()) fail("option '" + key + "' is missing");
    return it->second;
  }
  std::string str(const std::string& key, const std::string& fallback) const {
    return has(key) ? str(key) : fallback;
  }
  int64_t i64(const std::string& key) const {
    std::string v = str(key);
    try {
      size_t used = 0;
      long long r = std::stoll(v, &used);
      if (used == v.size()) return r;
    } catch (const std::exception&) {
    }
    fail("option '" + key + "' must be an integer, got '" + v + "'");
  }
  double f64(const std::string& key) const {
    std::string v = str(key);
    try {
      size_t used = 0;
      double r = std::stod(v, &used);
      if (used == v.size()) return r;
    } catch (const std::exception&) {
    }
    fail("option '" + key + "' must be a number, got '" + v + "'");
  }
  bool flag(const std::string& key) const {
    std::string v = str(key);
    if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
    if (v == "0" || v == "false" || v == "no" || v == "off") return false;
    fail("option '" + key + "' must be true or false, got '" + v + "'");
  }
  // Typed getters with a range check whose message names the option.
  int64_t i64_at_least(const std::string& key, int64_t lo) const {
    int64_t v = i64(key);
    if (v < lo) fail("option '" + key + "' must be >= " + std::to_string(lo) + ", got " + std::to_string(v));
    return v;
  }
  double f64_positive(const std::string& key) const {
    double v = f64(key);
    if (!(v > 0)) fail("option '" + key + "' must be > 0, got " + str(key));
    return v;
  }

 private:
  std::map<std::string, std::string> values_;
};

// ----------------------------------------------------------------- tensors

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DLDataType value{kDLFloat, 32, 1}; };
template <> struct dtype_of<double> { static constexpr DLDataType value{kDLFloat, 64, 1}; };
template <> struct dtype_of<int32_t> { static constexpr DLDataType value{kDLInt, 32, 1}; };
template <> struct dtype_of<int64_t> { static constexpr DLDataType value{kDLInt, 64, 1}; };
template <> struct dtype_of<uint8_t> { static constexpr DLDataType value{kDLUInt, 8, 1}; };
template <> struct dtype_of<std::complex<float>> { static constexpr DLDataType value{kDLComplex, 64, 1}; };
template <> struct dtype_of<std::complex<double>> { static constexpr DLDataType value{kDLComplex, 128, 1}; };

inline bool same_dtype(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}
inline std::string dtype_name(DLDataType t) {
  const char* base = t.code == kDLFloat ? "float" : t.code == kDLInt ? "int" : t.code == kDLUInt ? "uint"
                   : t.code == kDLComplex ? "complex" : "dtype";
  return base + std::to_string(t.bits);
}
inline int64_t numel(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}
inline bool is_contiguous(const DLTensor& t) {
  if (!t.strides) return true;
  int64_t expect = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expect) return false;
    expect *= t.shape[i];
  }
  return true;
}
template <class T>
bool is(const DLTensor& t) {
  return same_dtype(t.dtype, dtype_of<T>::value);
}
// Typed pointer to a dense tensor; `what` names the tensor in the error.
template <class T>
T* data(const DLTensor& t, const char* what = "tensor") {
  if (!is<T>(t))
    fail(std::string(what) + " has dtype " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype_of<T>::value));
  if (!is_contiguous(t)) fail(std::string(what) + " must be contiguous");
  return reinterpret_cast<T*>(static_cast<char*>(t.data) + t.byte_offset);
}
// Calls f(float{}) or f(double{}) by the dtype of t: the one place a plugin
// turns a runtime dtype into a template argument.
//   ssm::dispatch_real(x, "s4d: x", [&](auto tag) { forward_as<decltype(tag)>(ctx, p, x, y); });
template <class F>
decltype(auto) dispatch_real(const DLTensor& t, const std::string& what, F&& f) {
  if (is<float>(t)) return f(float{});
  if (is<double>(t)) return f(double{});
  fail(what + " must be float32 or float64, got " + dtype_name(t.dtype), SSM_ERR_UNSUPPORTED);
}
// The same for complex tensors: f(std::complex<float>{}) or f(std::complex<double>{}).
template <class F>
decltype(auto) dispatch_complex(const DLTensor& t, const std::string& what, F&& f) {
  if (is<std::complex<float>>(t)) return f(std::complex<float>{});
  if (is<std::complex<double>>(t)) return f(std::complex<double>{});
  fail(what + " must be complex64 or complex128, got " + dtype_name(t.dtype), SSM_ERR_UNSUPPORTED);
}
inline std::string shape_str(const DLTensor& t) {
  std::string s = "(";
  for (int i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + ")";
}
// Checks the shape; -1 in `expect` matches any extent.
inline void check_shape(const DLTensor& t, std::initializer_list<int64_t> expect, const char* what) {
  bool ok = t.ndim == static_cast<int>(expect.size());
  int i = 0;
  for (int64_t e : expect) {
    if (ok && e >= 0 && t.shape[i] != e) ok = false;
    ++i;
  }
  if (!ok) {
    std::string want = "(";
    i = 0;
    for (int64_t e : expect) want += (i++ ? ", " : "") + (e < 0 ? std::string("*") : std::to_string(e));
    fail(std::string(what) + " has shape " + shape_str(t) + ", expected " + want + ")");
  }
}
// A DLTensor view over host memory owned elsewhere (keeps its own shape).
struct View {
  DLTensor t{};
  std::vector<int64_t> shape;
  View() = default;
  View(void* p, DLDataType dtype, std::vector<int64_t> s, DLDevice dev = {kDLCPU, 0}) : shape(std::move(s)) {
    t.data = p;
    t.device = dev;
    t.ndim = static_cast<int32_t>(shape.size());
    t.dtype = dtype;
    t.shape = shape.data();
  }
  template <class T>
  View(T* p, std::vector<int64_t> s) : View(static_cast<void*>(p), dtype_of<T>::value, std::move(s)) {}
  View(const View& o) : View(o.t.data, o.t.dtype, o.shape, o.t.device) {}
  View& operator=(const View& o) {
    shape = o.shape;
    t = o.t;
    t.shape = shape.data();
    return *this;
  }
  DLTensor* get() { return &t; }
  operator DLTensor&() { return t; }
};

// ---------------------------------------------------------------- context

class Context {
 public:
  explicit Context(const ssm_ctx* c) : c_(c) {}
  bool training() const { return c_->training != 0; }
  int threads() const { return c_->threads > 0 ? c_->threads : 1; }
  uint64_t seed() const { return c_->seed; }
  uint64_t rng_offset() const { return c_->rng_offset; }
  DLDevice device() const { return c_->device; }
  void* stream() const { return c_->stream; }
  const ssm_ctx* raw() const { return c_; }
  // Fills `out` (float32/float64) from the host's counter-based RNG.
  void rng_fill(uint64_t stream, uint64_t offset, ssm_rng_dist dist, DLTensor& out) const {
    const ssm_host& h = *c_->host;
    check(h.rng_fill(h.host_data, c_->seed, stream, offset, dist, &out), "rng_fill");
  }

 private:
  const ssm_ctx* c_;
};

// The parameter (or gradient) tensors of one layer, in param_describe order.
class Params {
 public:
  Params(DLTensor* const* p, size_t n) : p_(p), n_(n) {}
  size_t size() const { return n_; }
  DLTensor& operator[](size_t i) const {
    if (i >= n_) fail("parameter index " + std::to_string(i) + " out of range", SSM_ERR_INTERNAL);
    return *p_[i];
  }
  template <class T>
  T* data(size_t i) const { return ssm::data<T>((*this)[i], "parameter"); }
  // Tensors [offset, offset + n): a child layer's share of its parent's list.
  Params slice(size_t offset, size_t n) const {
    if (offset + n > n_) fail("parameter slice out of range", SSM_ERR_INTERNAL);
    return Params(p_ + offset, n);
  }
  DLTensor* const* raw() const { return p_; }

 private:
  DLTensor* const* p_;
  size_t n_;
};

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t flags = 0;
  double lr_max = 0;          // > 0: lr = min(run lr, lr_max)
  double weight_decay = -1;   // >= 0: own weight decay
};

// Checks a layer's parameter tensors: `count` of them, the first
// specs.size() shaped as `specs` and of dtype T (a composite layer checks its
// own, its inner layer the rest). Errors read "<who>: parameter 'W' has shape
// (..) <context>", e.g. context "for d_model=64".
template <class T>
void check_params(Params p, const std::vector<ParamSpec>& specs, size_t count, const std::string& who,
                  const std::string& context) {
  if (p.size() != count) fail(who + ": expected " + std::to_string(count) + " parameter tensors");
  for (size_t i = 0; i < specs.size(); ++i) {
    const DLTensor& t = p[i];
    bool ok = t.ndim == static_cast<int32_t>(specs[i].shape.size());
    for (int k = 0; ok && k < t.ndim; ++k) ok = t.shape[k] == specs[i].shape[k];
    if (!ok) fail(who + ": parameter '" + specs[i].name + "' has shape " + shape_str(t) + " " + context);
    data<T>(t, specs[i].name.c_str());
  }
}

// --------------------------------------------------------- plugin classes

// Recurrent state of a layer; subclass it and return it from state_create.
class LayerState {
 public:
  virtual ~LayerState() = default;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::vector<ParamSpec> params() = 0;
  virtual void init_params(Context& ctx, Params params) = 0;
  virtual void forward(Context& ctx, Params params, const DLTensor& x, DLTensor& y) = 0;
  virtual void backward(Context& ctx, Params params, const DLTensor& dy, DLTensor& dx, Params dparams) = 0;
  virtual std::unique_ptr<LayerState> state_create(Context&, Params, int64_t /*batch*/) {
    fail("this layer has no recurrent mode", SSM_ERR_UNSUPPORTED);
  }
  virtual void step(Context&, Params, LayerState&, const DLTensor& /*x_t*/, DLTensor& /*y_t*/) {
    fail("this layer has no recurrent mode", SSM_ERR_UNSUPPORTED);
  }
  // CUDA: override and declare `static constexpr bool has_cuda = true;`.
  virtual void forward_cuda(Context&, Params, const DLTensor&, DLTensor&) {
    fail("no CUDA forward", SSM_ERR_UNSUPPORTED);
  }
  virtual void backward_cuda(Context&, Params, const DLTensor&, DLTensor&, Params) {
    fail("no CUDA backward", SSM_ERR_UNSUPPORTED);
  }
  virtual void step_cuda(Context&, Params, LayerState&, const DLTensor&, DLTensor&) {
    fail("no CUDA step", SSM_ERR_UNSUPPORTED);
  }
  // Which devices and dtypes forward/backward/step serve. Default: CPU
  // float32 and float64 (the SDK's kernels are templates on both). A layer
  // with CUDA slots or an inner layer overrides this.
  virtual bool supports(DLDevice device, DLDataType dtype) {
    return device.device_type == kDLCPU && (is_real_float(dtype));
  }
  // Named extras (ABI get_extension); nullptr when none.
  virtual const void* extension(const char* /*id*/) { return nullptr; }
  // An LTI layer's convolution kernel (ssm/ext/layer_kernel.h): out is
  // (H, length) float64. Declare `static constexpr bool has_conv_kernel = true;`
  // in the class so the SDK offers the extension.
  virtual void conv_kernel(Context&, Params, int64_t /*length*/, DLTensor& /*out*/) {
    fail("this layer has no convolution kernel", SSM_ERR_UNSUPPORTED);
  }

 protected:
  static bool is_real_float(DLDataType t) {
    return same_dtype(t, dtype_of<float>::value) || same_dtype(t, dtype_of<double>::value);
  }
};

class Discretization {
 public:
  virtual ~Discretization() = default;
  // Every output may be nullptr; all have z's shape and complex dtype.
  virtual void eval(Context& ctx, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da,
                    DLTensor* dbeta) = 0;
  // Default: CPU complex64 and complex128.
  virtual bool supports(DLDevice device, DLDataType dtype) {
    return device.device_type == kDLCPU && (same_dtype(dtype, dtype_of<std::complex<float>>::value) ||
                                            same_dtype(dtype, dtype_of<std::complex<double>>::value));
  }
  virtual const void* extension(const char* /*id*/) { return nullptr; }
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual ssm_dataset_info info() = 0;
  virtual void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) = 0;
  virtual const void* extension(const char* /*id*/) { return nullptr; }
};

class Task {
 public:
  virtual ~Task() = default;
  virtual ssm_task_info info() = 0;
  virtual std::vector<std::pair<std::string, std::string>> run_defaults() { return {}; }
  virtual void batch(int split, uint64_t seed, uint64_t index, int64_t batch_size, DLTensor& x, DLTensor& y,
                     DLTensor* mask) = 0;
  virtual const void* extension(const char* /*id*/) { return nullptr; }
};

// ------------------------------------------------- children (via the host)

// Builds an ssm_config from string pairs; keeps the strings alive.
class ConfigBuilder {
 public:
  ConfigBuilder() = default;
  explicit ConfigBuilder(const std::map<std::string, std::string>& values) {
    for (auto& kv : values) set(kv.first, kv.second);
  }
  ConfigBuilder& set(const std::string& k, const std::string& v) {
    keys_.push_back(k);
    vals_.push_back(v);
    return *this;
  }
  const ssm_config* get() {
    items_.clear();
    for (size_t i = 0; i < keys_.size(); ++i) items_.push_back({keys_[i].c_str(), vals_[i].c_str()});
    cfg_ = {sizeof(ssm_config), static_cast<uint32_t>(items_.size()), items_.data()};
    return &cfg_;
  }

 private:
  std::vector<std::string> keys_, vals_;
  std::vector<ssm_kv> items_;
  ssm_config cfg_{};
};

// A plugin created by id through the host registry, destroyed with this.
class Child {
 public:
  Child() = default;
  Child(ssm_kind kind, const std::string& id, ConfigBuilder config = {}) {
    const ssm_host& h = host();
    c_.struct_size = sizeof(ssm_child);
    check(h.child_create(h.host_data, kind, id.c_str(), config.get(), &c_), "creating '" + id + "'");
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept : c_(o.c_) { o.c_.handle = nullptr; }
  Child& operator=(Child&& o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~Child() {
    if (c_.handle) host().child_destroy(host().host_data, c_.handle);
  }
  template <class Iface>
  const Iface& iface() const { return *static_cast<const Iface*>(c_.iface); }
  void* instance() const { return c_.instance; }
  explicit operator bool() const { return c_.handle != nullptr; }
  // The child's own descriptor (id, version, ABI); nullptr from a 1.0 host.
  const ssm_plugin_desc* desc() const { return SSM_HAS_FIELD(&c_, ssm_child, desc) ? c_.desc : nullptr; }
  std::string id(const std::string& asked) const {
    const ssm_plugin_desc* d = desc();
    return d && d->id ? d->id : asked;
  }
  std::string version() const {
    const ssm_plugin_desc* d = desc();
    return d && d->version ? d->version : "";
  }

 private:
  ssm_child c_{};
};

// A child's options: the parent's, less what the host sets per plugin.
inline ConfigBuilder child_config(const Config& parent, const std::map<std::string, std::string>& overrides = {}) {
  std::map<std::string, std::string> values = parent.values();
  for (auto& kv : overrides) values[kv.first] = kv.second;
  values.erase("plugin_name");
  return ConfigBuilder(values);
}

// A discretization scheme created through the host: `ssm::DiscChild d("zoh");`
class DiscChild {
 public:
  DiscChild() = default;
  explicit DiscChild(const std::string& id, ConfigBuilder config = {}) : child_(SSM_KIND_DISC, id, std::move(config)) {}
  // With the parent's options (e.g. async's --tau reaches the scheme a layer creates).
  DiscChild(const std::string& id, const Config& parent_config) : DiscChild(id, child_config(parent_config)) {}
  void eval(const ssm_ctx* ctx, const DLTensor& z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) const {
    const auto& f = child_.iface<ssm_disc_iface>();
    check(f.eval(child_.instance(), ctx, &z, a, beta, da, dbeta), "discretization");
  }
  const char* suffix() const { return child_.iface<ssm_disc_iface>().suffix; }
  // A named extension of the scheme (e.g. SSM_EXT_DISC_GBT from
  // ssm/ext/disc_gbt.h); nullptr when it has none (or is a 1.0 plugin).
  const void* extension(const char* id) const {
    const auto& f = child_.iface<ssm_disc_iface>();
    if (!SSM_HAS_FIELD(&f, ssm_disc_iface, get_extension) || !f.get_extension) return nullptr;
    return f.get_extension(child_.instance(), id);
  }
  explicit operator bool() const { return static_cast<bool>(child_); }

 private:
  Child child_;
};

// The recurrent state of a child layer, destroyed through the child's table.
class ChildState {
 public:
  ChildState() = default;
  ChildState(const ssm_layer_iface* f, void* instance, void* state) : f_(f), instance_(instance), state_(state) {}
  ChildState(const ChildState&) = delete;
  ChildState& operator=(const ChildState&) = delete;
  ChildState(ChildState&& o) noexcept { swap(o); }
  ChildState& operator=(ChildState&& o) noexcept {
    swap(o);
    return *this;
  }
  ~ChildState() {
    if (state_ && f_ && f_->state_destroy) f_->state_destroy(instance_, state_);
  }
  void* get() const { return state_; }

 private:
  void swap(ChildState& o) {
    std::swap(f_, o.f_), std::swap(instance_, o.instance_), std::swap(state_, o.state_);
  }
  const ssm_layer_iface* f_ = nullptr;
  void* instance_ = nullptr;
  void* state_ = nullptr;
};

// A layer owned by a layer (Mamba's --inner s6, H3's inner SSM, a wrapper):
// created by id through the host, with the parent's options plus overrides.
//
//   explicit Wrapper(const ssm::Config& cfg) : inner_(cfg.str("inner"), cfg, "inner.") {}
//   std::vector<ssm::ParamSpec> params() override {
//     std::vector<ssm::ParamSpec> p = {{"scale", {h_}}};
//     inner_.append_params(p);          // "inner.log_dt", ... with the child's hints
//     return p;
//   }
//   void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override {
//     inner_.forward(ctx, p, x, y);     // the child's share of p, its own seed
//     ...
//   }
//
// The child's parameters are the parent's, listed under the prefix with the
// child's hints, so the host allocates, initialises (through the child),
// optimises and checkpoints them like any other. The child runs with its own
// seed, derived from the parent's and the prefix, so its initialisation and
// dropout streams never collide with the parent's or a sibling's.
class LayerChild {
 public:
  LayerChild() = default;
  LayerChild(const std::string& id, const Config& parent_config, std::string prefix,
             const std::map<std::string, std::string>& overrides = {})
      : prefix_(std::move(prefix)) {
    child_ = Child(SSM_KIND_LAYER, id, child_config(parent_config, overrides));
    id_ = child_.id(id);
    uint32_t n = f().param_count(child_.instance());
    for (uint32_t i = 0; i < n; ++i) {
      ssm_param_desc d{};
      d.struct_size = sizeof(d);
      check(f().param_describe(child_.instance(), i, &d), "inner layer '" + id + "': param_describe");
      ParamSpec s;
      s.name = prefix_ + (d.name ? d.name : "");
      s.shape.assign(d.shape, d.shape + std::max(0, std::min(d.ndim, 4)));
      s.flags = d.flags;
      s.lr_max = d.lr_max;
      s.weight_decay = d.weight_decay;
      specs_.push_back(std::move(s));
    }
    salt_ = 1469598103934665603ull;  // FNV-1a of the prefix
    for (char c : prefix_) salt_ = (salt_ ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  LayerChild(LayerChild&&) = default;
  LayerChild& operator=(LayerChild&&) = default;

  const std::string& id() const { return id_; }
  std::string version() const { return child_.version(); }
  const std::string& prefix() const { return prefix_; }
  size_t param_count() const { return specs_.size(); }
  explicit operator bool() const { return static_cast<bool>(child_); }

  // Appends the child's prefixed specs to the parent's list and remembers
  // where they start: call it once, from the parent's params().
  void append_params(std::vector<ParamSpec>& list) {
    offset_ = list.size();
    list.insert(list.end(), specs_.begin(), specs_.end());
  }
  // The child's share of the parent's parameters (or gradients).
  Params share(Params parent) const { return parent.slice(offset_, specs_.size()); }

  void init_params(Context& ctx, Params parent) const {
    ssm_ctx c = derived(ctx);
    check(f().param_init(child_.instance(), &c, share(parent).raw()), where("param_init"));
  }
  void forward(Context& ctx, Params parent, const DLTensor& x, DLTensor& y) const {
    ssm_ctx c = derived(ctx);
    check(f().forward(child_.instance(), &c, share(parent).raw(), &x, &y), where("forward"));
  }
  // dx is overwritten; the child's parameter gradients accumulate into dparent.
  void backward(Context& ctx, Params parent, const DLTensor& dy, DLTensor& dx, Params dparent) const {
    ssm_ctx c = derived(ctx);
    check(f().backward(child_.instance(), &c, share(parent).raw(), &dy, &dx, share(dparent).raw()), where("backward"));
  }
  ChildState state_create(Context& ctx, Params parent, int64_t batch) const {
    if (!f().state_create || !f().step) fail(where("recurrent mode") + ": the inner layer has none", SSM_ERR_UNSUPPORTED);
    ssm_ctx c = derived(ctx);
    void* state = nullptr;
    check(f().state_create(child_.instance(), &c, share(parent).raw(), batch, &state), where("state_create"));
    return ChildState(&f(), child_.instance(), state);
  }
  void step(Context& ctx, Params parent, const ChildState& state, const DLTensor& x_t, DLTensor& y_t) const {
    ssm_ctx c = derived(ctx);
    check(f().step(child_.instance(), &c, share(parent).raw(), state.get(), &x_t, &y_t), where("step"));
  }
  // What the child serves (the ABI's defaults for a 1.0 child).
  bool supports(DLDevice device, DLDataType dtype) const {
    if (SSM_HAS_FIELD(&f(), ssm_layer_iface, supports) && f().supports)
      return f().supports(child_.instance(), device, dtype) != 0;
    const bool real = same_dtype(dtype, dtype_of<float>::value) || same_dtype(dtype, dtype_of<double>::value);
    if (device.device_type == kDLCPU) return real;
    return device.device_type == kDLCUDA && f().forward_cuda && same_dtype(dtype, dtype_of<float>::value);
  }
  // The child's context: the parent's with a seed of the child's own.
  ssm_ctx derived(const Context& ctx) const {
    ssm_ctx c{};
    const ssm_ctx* in = ctx.raw();
    std::memcpy(&c, in, std::min<size_t>(sizeof(c), in->struct_size ? in->struct_size : sizeof(c)));
    c.struct_size = sizeof(c);
    uint64_t z = in->seed ^ salt_;  // splitmix64 finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    c.seed = z ^ (z >> 31);
    return c;
  }

 private:
  const ssm_layer_iface& f() const { return child_.iface<ssm_layer_iface>(); }
  std::string where(const char* call) const { return "inner layer '" + id_ + "' (" + prefix_ + "*): " + call; }

  Child child_;
  std::string id_, prefix_;
  std::vector<ParamSpec> specs_;
  size_t offset_ = 0;
  uint64_t salt_ = 0;
};

// A dataset created through the host.
class DatasetChild {
 public:
  DatasetChild() = default;
  DatasetChild(const std::string& id, ConfigBuilder config) : child_(SSM_KIND_DATASET, id, std::move(config)) {}
  ssm_dataset_info info() const {
    ssm_dataset_info out{};
    out.struct_size = sizeof(out);
    const auto& f = child_.iface<ssm_dataset_iface>();
    check(f.info(child_.instance(), &out), "dataset info");
    return out;
  }
  void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) const {
    const auto& f = child_.iface<ssm_dataset_iface>();
    check(f.read(child_.instance(), split, indices, n, &x, labels), "dataset read");
  }

 private:
  Child child_;
};

// ---------------------------------------------- adapters (C tables <- C++)

namespace detail {

template <class C, class = void>
struct cuda_flag : std::false_type {};
template <class C>
struct cuda_flag<C, std::void_t<decltype(C::has_cuda)>> : std::bool_constant<C::has_cuda> {};

template <class C, class = void>
struct kernel_flag : std::false_type {};
template <class C>
struct kernel_flag<C, std::void_t<decltype(C::has_conv_kernel)>> : std::bool_constant<C::has_conv_kernel> {};

template <class C, class = void>
struct aliases_of {
  static std::vector<std::string> get() { return {}; }
};
template <class C>
struct aliases_of<C, std::void_t<decltype(C::aliases())>> {
  static std::vector<std::string> get() { return C::aliases(); }
};

template <class C>
C* make(const ssm_host* host, const ssm_config* config) {
  if (host) host_slot() = host;
  Config cfg(config, C::options());
  return new C(cfg);
}

template <class C>
struct LayerBox {
  std::unique_ptr<C> obj;
  std::vector<ParamSpec> specs;
};

template <class C>
struct LayerAdapter {
  using Box = LayerBox<C>;
  static Box& box(void* self) { return *static_cast<Box*>(self); }
  static ssm_status* create(const ssm_host* host, const ssm_config* config, void** out) {
    return guard([&] {
      auto b = std::make_unique<Box>();
      b->obj.reset(make<C>(host, config));
      b->specs = b->obj->params();
      *out = b.release();
    });
  }
  static void destroy(void* self) { delete static_cast<Box*>(self); }
  static uint32_t param_count(void* self) { return static_cast<uint32_t>(box(self).specs.size()); }
  static ssm_status* param_describe(void* self, uint32_t i, ssm_param_desc* out) {
    return guard([&] {
      const auto& specs = box(self).specs;
      if (i >= specs.size()) fail("parameter index out of range");
      const ParamSpec& s = specs[i];
      if (s.shape.size() > 4) fail("parameter '" + s.name + "' has more than 4 dimensions", SSM_ERR_INTERNAL);
      ssm_param_desc d{};
      d.struct_size = sizeof(d);
      d.name = s.name.c_str();
      d.ndim = static_cast<int32_t>(s.shape.size());
      for (size_t k = 0; k < s.shape.size(); ++k) d.shape[k] = s.shape[k];
      d.flags = s.flags;
      d.lr_max = s.lr_max;
      d.weight_decay = s.weight_decay;
      std::memcpy(out, &d, std::min<size_t>(out->struct_size ? out->struct_size : sizeof(d), sizeof(d)));
    });
  }
  static Params params(void* self, DLTensor* const* p) { return Params(p, box(self).specs.size()); }
  static ssm_status* param_init(void* self, const ssm_ctx* ctx, DLTensor* const* p) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->init_params(c, params(self, p));
    });
  }
  static ssm_status* forward(void* self, const ssm_ctx* ctx, DLTensor* const* p, const DLTensor* x, DLTensor* y) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->forward(c, params(self, p), *x, *y);
    });
  }
  static ssm_status* backward(void* self, const ssm_ctx* ctx, DLTensor* const* p, const DLTensor* dy, DLTensor* dx,
                              DLTensor* const* dp) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->backward(c, params(self, p), *dy, *dx, params(self, dp));
    });
  }
  static ssm_status* state_create(void* self, const ssm_ctx* ctx, DLTensor* const* p, int64_t batch, void** state) {
    return guard([&] {
      Context c(ctx);
      *state = box(self).obj->state_create(c, params(self, p), batch).release();
    });
  }
  static ssm_status* step(void* self, const ssm_ctx* ctx, DLTensor* const* p, void* state, const DLTensor* x,
                          DLTensor* y) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->step(c, params(self, p), *static_cast<LayerState*>(state), *x, *y);
    });
  }
  static void state_destroy(void*, void* state) { delete static_cast<LayerState*>(state); }
  static ssm_status* conv_kernel(void* self, const ssm_ctx* ctx, DLTensor* const* p, int64_t length, DLTensor* out) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->conv_kernel(c, params(self, p), length, *out);
    });
  }
  static const void* get_extension(void* self, const char* id) noexcept {
    static const ssm_layer_kernel kernel_ext{sizeof(ssm_layer_kernel), conv_kernel};
    if (kernel_flag<C>::value && id && std::strcmp(id, SSM_EXT_LAYER_KERNEL) == 0) return &kernel_ext;
    try {
      return box(self).obj->extension(id);
    } catch (...) {
      return nullptr;
    }
  }
  static int32_t supports(void* self, DLDevice device, DLDataType dtype) noexcept {
    try {
      return box(self).obj->supports(device, dtype) ? 1 : 0;
    } catch (...) {
      return 0;
    }
  }
  static ssm_status* forward_cuda(void* self, const ssm_ctx* ctx, DLTensor* const* p, const DLTensor* x,
                                  DLTensor* y) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->forward_cuda(c, params(self, p), *x, *y);
    });
  }
  static ssm_status* backward_cuda(void* self, const ssm_ctx* ctx, DLTensor* const* p, const DLTensor* dy,
                                   DLTensor* dx, DLTensor* const* dp) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->backward_cuda(c, params(self, p), *dy, *dx, params(self, dp));
    });
  }
  static ssm_status* step_cuda(void* self, const ssm_ctx* ctx, DLTensor* const* p, void* state, const DLTensor* x,
                               DLTensor* y) {
    return guard([&] {
      Context c(ctx);
      box(self).obj->step_cuda(c, params(self, p), *static_cast<LayerState*>(state), *x, *y);
    });
  }
  static const void* iface() {
    static const ssm_layer_iface t = [] {
      ssm_layer_iface f{};
      f.struct_size = sizeof(f);
      f.create = create;
      f.destroy = destroy;
      f.param_count = param_count;
      f.param_describe = param_describe;
      f.param_init = param_init;
      f.forward = forward;
      f.backward = backward;
      f.state_create = state_create;
      f.step = step;
      f.state_destroy = state_destroy;
      if (cuda_flag<C>::value) {
        f.forward_cuda = forward_cuda;
        f.backward_cuda = backward_cuda;
        f.step_cuda = step_cuda;
      }
      f.get_extension = get_extension;
      f.supports = supports;
      return f;
    }();
    return &t;
  }
  static constexpr ssm_kind kind = SSM_KIND_LAYER;
  static constexpr const char* iface_id = SSM_IFACE_LAYER;
};

template <class C>
struct DiscAdapter {
  static ssm_status* create(const ssm_host* host, const ssm_config* config, void** out) {
    return guard([&] { *out = make<C>(host, config); });
  }
  static void destroy(void* self) { delete static_cast<C*>(self); }
  static ssm_status* eval(void* self, const ssm_ctx* ctx, const DLTensor* z, DLTensor* a, DLTensor* beta,
                          DLTensor* da, DLTensor* dbeta) {
    return guard([&] {
      Context c(ctx);
      static_cast<C*>(self)->eval(c, *z, a, beta, da, dbeta);
    });
  }
  static const void* get_extension(void* self, const char* id) noexcept {
    try {
      return static_cast<C*>(self)->extension(id);
    } catch (...) {
      return nullptr;
    }
  }
  static int32_t supports(void* self, DLDevice device, DLDataType dtype) noexcept {
    try {
      return static_cast<C*>(self)->supports(device, dtype) ? 1 : 0;
    } catch (...) {
      return 0;
    }
  }
  static const void* iface() {
    static const ssm_disc_iface t = [] {
      ssm_disc_iface f{};
      f.struct_size = sizeof(f);
      f.suffix = C::suffix;
      f.create = create;
      f.destroy = destroy;
      f.eval = eval;
      f.get_extension = get_extension;
      f.supports = supports;
      return f;
    }();
    return &t;
  }
  static constexpr ssm_kind kind = SSM_KIND_DISC;
  static constexpr const char* iface_id = SSM_IFACE_DISC;
};

template <class C>
struct DatasetAdapter {
  static ssm_status* create(const ssm_host* host, const ssm_config* config, void** out) {
    return guard([&] { *out = make<C>(host, config); });
  }
  static void destroy(void* self) { delete static_cast<C*>(self); }
  static ssm_status* info(void* self, ssm_dataset_info* out) {
    return guard([&] {
      ssm_dataset_info i = static_cast<C*>(self)->info();
      i.struct_size = sizeof(i);
      std::memcpy(out, &i, std::min<size_t>(out->struct_size ? out->struct_size : sizeof(i), sizeof(i)));
    });
  }
  static ssm_status* read(void* self, int32_t split, const int64_t* idx, int64_t n, DLTensor* x, DLTensor* labels) {
    return guard([&] { static_cast<C*>(self)->read(split, idx, n, *x, labels); });
  }
  static const void* get_extension(void* self, const char* id) noexcept {
    try {
      return static_cast<C*>(self)->extension(id);
    } catch (...) {
      return nullptr;
    }
  }
  static const void* iface() {
    static const ssm_dataset_iface t = [] {
      ssm_dataset_iface f{};
      f.struct_size = sizeof(f);
      f.create = create;
      f.destroy = destroy;
      f.info = info;
      f.read = read;
      f.get_extension = get_extension;
      return f;
    }();
    return &t;
  }
  static constexpr ssm_kind kind = SSM_KIND_DATASET;
  static constexpr const char* iface_id = SSM_IFACE_DATASET;
};

template <class C>
struct TaskAdapter {
  struct Box {
    std::unique_ptr<C> obj;
    std::vector<std::pair<std::string, std::string>> defaults;
    std::vector<ssm_kv> kv;
  };
  static Box& box(void* self) { return *static_cast<Box*>(self); }
  static ssm_status* create(const ssm_host* host, const ssm_config* config, void** out) {
    return guard([&] {
      auto b = std::make_unique<Box>();
      b->obj.reset(make<C>(host, config));
      b->defaults = b->obj->run_defaults();
      for (auto& d : b->defaults) b->kv.push_back({d.first.c_str(), d.second.c_str()});
      b->kv.push_back({nullptr, nullptr});
      *out = b.release();
    });
  }
  static void destroy(void* self) { delete static_cast<Box*>(self); }
  static ssm_status* info(void* self, ssm_task_info* out) {
    return guard([&] {
      ssm_task_info i = box(self).obj->info();
      i.struct_size = sizeof(i);
      std::memcpy(out, &i, std::min<size_t>(out->struct_size ? out->struct_size : sizeof(i), sizeof(i)));
    });
  }
  static const ssm_kv* run_defaults(void* self) { return box(self).kv.data(); }
  static ssm_status* batch(void* self, int32_t split, uint64_t seed, uint64_t index, int64_t bs, DLTensor* x,
                           DLTensor* y, DLTensor* mask) {
    return guard([&] { box(self).obj->batch(split, seed, index, bs, *x, *y, mask); });
  }
  static const void* get_extension(void* self, const char* id) noexcept {
    try {
      return box(self).obj->extension(id);
    } catch (...) {
      return nullptr;
    }
  }
  static const void* iface() {
    static const ssm_task_iface t = [] {
      ssm_task_iface f{};
      f.struct_size = sizeof(f);
      f.create = create;
      f.destroy = destroy;
      f.info = info;
      f.run_defaults = run_defaults;
      f.batch = batch;
      f.get_extension = get_extension;
      return f;
    }();
    return &t;
  }
  static constexpr ssm_kind kind = SSM_KIND_TASK;
  static constexpr const char* iface_id = SSM_IFACE_TASK;
};

// Builds the library's one descriptor from the class's static options() and
// optional static aliases().
template <class Adapter, class C>
const ssm_plugin_desc* describe(const char* id, const char* version, const char* description) {
  struct Storage {
    std::vector<Option> options;
    std::vector<ssm_option_desc> option_descs;
    std::vector<std::string> alias_strings;
    std::vector<const char*> aliases;
    ssm_plugin_desc desc{};
  };
  static const Storage* storage = [&] {
    auto* s = new Storage();  // lives as long as the library
    s->options = C::options();
    for (const Option& o : s->options)
      s->option_descs.push_back({sizeof(ssm_option_desc), o.name.c_str(), o.type,
                                 o.required ? nullptr : o.default_value.c_str(), o.help.c_str(), o.plugin_kind});
    s->alias_strings = aliases_of<C>::get();
    for (const std::string& a : s->alias_strings) s->aliases.push_back(a.c_str());
    s->aliases.push_back(nullptr);
    ssm_plugin_desc& d = s->desc;
    d.struct_size = sizeof(d);
    d.abi_major = SSM_ABI_MAJOR;
    d.abi_minor = SSM_ABI_MINOR;
    d.kind = Adapter::kind;
    d.id = id;
    d.version = version;
    d.description = description;
    d.aliases = s->aliases.data();
    d.options = s->option_descs.data();
    d.n_options = static_cast<uint32_t>(s->option_descs.size());
    d.init = [](const ssm_host* host, const char*) -> ssm_status* {
      host_slot() = host;
      return nullptr;
    };
    d.deinit = [] {};
    d.get_iface = [](const char* iface_id) -> const void* {
      return std::strcmp(iface_id, Adapter::iface_id) == 0 ? Adapter::iface() : nullptr;
    };
    return s;
  }();
  return &storage->desc;
}

}  // namespace detail
}  // namespace ssm

// One macro per kind; each defines the library's only exported symbol.
#define SSM_DEFINE_PLUGIN_(ADAPTER, CLASS, ID, VERSION, DESCRIPTION)                           \
  extern "C" SSM_EXPORT const ssm_plugin_desc* ssm_plugin_entry(void) {                        \
    return ::ssm::detail::describe<ADAPTER<CLASS>, CLASS>(ID, VERSION, DESCRIPTION);           \
  }

#define SSM_PLUGIN_LAYER(CLASS, ID, VERSION, DESCRIPTION) \
  SSM_DEFINE_PLUGIN_(::ssm::detail::LayerAdapter, CLASS, ID, VERSION, DESCRIPTION)
#define SSM_PLUGIN_DISC(CLASS, ID, VERSION, DESCRIPTION) \
  SSM_DEFINE_PLUGIN_(::ssm::detail::DiscAdapter, CLASS, ID, VERSION, DESCRIPTION)
#define SSM_PLUGIN_DATASET(CLASS, ID, VERSION, DESCRIPTION) \
  SSM_DEFINE_PLUGIN_(::ssm::detail::DatasetAdapter, CLASS, ID, VERSION, DESCRIPTION)
#define SSM_PLUGIN_TASK(CLASS, ID, VERSION, DESCRIPTION) \
  SSM_DEFINE_PLUGIN_(::ssm::detail::TaskAdapter, CLASS, ID, VERSION, DESCRIPTION)

#endif  // SSM_SDK_HPP
