// Plugin discovery and loading (Boost.DLL), the host-services table, and the
// host-side wrappers of plugin objects.
#include "registry.hpp"

#include <ssm/kernels/philox.hpp>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <boost/filesystem.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#ifdef SSMHOST_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

// The host's status object: what the opaque ssm_status* points at.
struct ssm_status {
  int32_t code;
  std::string message;
};

namespace ssmhost {
namespace fs = boost::filesystem;

const char* kind_name(ssm_kind kind) {
  switch (kind) {
    case SSM_KIND_LAYER: return "layer";
    case SSM_KIND_DISC: return "disc";
    case SSM_KIND_DATASET: return "dataset";
    case SSM_KIND_TASK: return "task";
  }
  return "unknown";
}

static const char* iface_id(ssm_kind kind) {
  switch (kind) {
    case SSM_KIND_LAYER: return SSM_IFACE_LAYER;
    case SSM_KIND_DISC: return SSM_IFACE_DISC;
    case SSM_KIND_DATASET: return SSM_IFACE_DATASET;
    case SSM_KIND_TASK: return SSM_IFACE_TASK;
  }
  return "";
}

static const char* option_type_name(int32_t t) {
  switch (t) {
    case SSM_OPT_INT: return "int";
    case SSM_OPT_FLOAT: return "float";
    case SSM_OPT_BOOL: return "bool";
    case SSM_OPT_STRING: return "string";
  }
  return "?";
}

// ------------------------------------------------------------ host services

namespace {

int log_threshold() {
  static int level = [] {
    const char* v = std::getenv("SSM_LOG_LEVEL");  // debug, info, warn, error
    if (!v) return static_cast<int>(SSM_LOG_INFO);
    std::string s(v);
    if (s == "debug") return static_cast<int>(SSM_LOG_DEBUG);
    if (s == "warn") return static_cast<int>(SSM_LOG_WARN);
    if (s == "error") return static_cast<int>(SSM_LOG_ERROR);
    return static_cast<int>(SSM_LOG_INFO);
  }();
  return level;
}

void* svc_mem_alloc(void*, DLDevice device, uint64_t bytes, uint64_t alignment, void* stream) {
  if (alignment == 0) alignment = 64;
  if (device.device_type == kDLCPU) {
    uint64_t rounded = (bytes + alignment - 1) / alignment * alignment;
    return std::aligned_alloc(alignment, rounded ? rounded : alignment);
  }
#ifdef SSMHOST_HAVE_CUDA
  if (device.device_type == kDLCUDA) {
    void* p = nullptr;
    if (cudaSetDevice(device.device_id) != cudaSuccess) return nullptr;
    if (cudaMallocAsync(&p, bytes, static_cast<cudaStream_t>(stream)) != cudaSuccess) return nullptr;
    return p;
  }
#else
  (void)stream;
#endif
  return nullptr;
}

void svc_mem_free(void*, DLDevice device, void* ptr, void* stream) {
  if (!ptr) return;
  if (device.device_type == kDLCPU) {
    std::free(ptr);
    return;
  }
#ifdef SSMHOST_HAVE_CUDA
  if (device.device_type == kDLCUDA) cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream));
#else
  (void)stream;
#endif
}

void svc_log(void*, int32_t level, const char* plugin_id, const char* message) {
  if (level < log_threshold()) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  const char* name = level >= 0 && level <= 3 ? names[level] : "log";
  std::fprintf(stderr, "ssmhost: %s: [%s] %s\n", name, plugin_id ? plugin_id : "?", message ? message : "");
}

ssm_status* svc_status_make(void*, int32_t code, const char* message) {
  return new ssm_status{code, message ? message : ""};
}
int32_t svc_status_code(void*, const ssm_status* s) { return s ? s->code : SSM_OK; }
const char* svc_status_message(void*, const ssm_status* s) { return s ? s->message.c_str() : ""; }
void svc_status_free(void*, ssm_status* s) { delete s; }

template <class T>
void fill(T* out, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset, int32_t dist) {
  if (dist == SSM_RNG_NORMAL)
    ssm::kernels::philox_fill_normal(out, n, seed, stream, offset);
  else
    ssm::kernels::philox_fill_uniform(out, n, seed, stream, offset);
}

ssm_status* svc_rng_fill(void*, uint64_t seed, uint64_t stream, uint64_t offset, int32_t dist, DLTensor* out) {
  if (!out || out->device.device_type != kDLCPU)
    return svc_status_make(nullptr, SSM_ERR_UNSUPPORTED, "rng_fill: only CPU tensors are supported");
  if (dist != SSM_RNG_UNIFORM && dist != SSM_RNG_NORMAL)
    return svc_status_make(nullptr, SSM_ERR_INVALID_ARGUMENT, "rng_fill: unknown distribution");
  int64_t n = 1;
  for (int i = 0; i < out->ndim; ++i) n *= out->shape[i];
  char* base = static_cast<char*>(out->data) + out->byte_offset;
  if (out->dtype.code == kDLFloat && out->dtype.bits == 32)
    fill(reinterpret_cast<float*>(base), n, seed, stream, offset, dist);
  else if (out->dtype.code == kDLFloat && out->dtype.bits == 64)
    fill(reinterpret_cast<double*>(base), n, seed, stream, offset, dist);
  else
    return svc_status_make(nullptr, SSM_ERR_INVALID_ARGUMENT, "rng_fill: tensor must be float32 or float64");
  return nullptr;
}

}  // namespace

// What a registry's host table points back to; outlives the registry.
struct HostLink {
  Registry* registry;
};

namespace {

ssm_status* svc_child_create(void* host_data, int32_t kind, const char* id, const ssm_config* config,
                             ssm_child* out) {
  auto* link = static_cast<HostLink*>(host_data);
  Registry* reg = link ? link->registry : nullptr;
  if (!reg)
    return svc_status_make(nullptr, SSM_ERR_INTERNAL, "child_create: this host table has no plugin registry");
  try {
    KV kv;
    if (config)
      for (uint32_t i = 0; i < config->count; ++i)
        if (config->items[i].key && config->items[i].value) kv[config->items[i].key] = config->items[i].value;
    reg->create_child(static_cast<ssm_kind>(kind), id ? id : "", kv, out);
    return nullptr;
  } catch (const std::exception& e) {
    return svc_status_make(nullptr, SSM_ERR_NOT_FOUND, e.what());
  }
}

const void* svc_get_extension(void*, const char*) { return nullptr; }

ssm_host make_host_table(void* host_data) {
  ssm_host h{};
  h.struct_size = sizeof(h);
  h.abi_major = SSM_ABI_MAJOR;
  h.abi_minor = SSM_ABI_MINOR;
  h.host_data = host_data;
  h.mem_alloc = svc_mem_alloc;
  h.mem_free = svc_mem_free;
  h.log = svc_log;
  h.status_make = svc_status_make;
  h.status_code = svc_status_code;
  h.status_message = svc_status_message;
  h.status_free = svc_status_free;
  h.rng_fill = svc_rng_fill;
  h.child_create = svc_child_create;
  h.child_destroy = nullptr;  // set by the registry (needs the object type)
  h.get_extension = svc_get_extension;
  return h;
}

}  // namespace

const ssm_host* host_services() {
  static const ssm_host table = make_host_table(nullptr);
  return &table;
}

ssm_ctx make_ctx(bool training, int threads, uint64_t seed, uint64_t rng_offset) {
  ssm_ctx c{};
  c.struct_size = sizeof(c);
  c.host = host_services();
  c.device = DLDevice{kDLCPU, 0};
  c.stream = nullptr;
  c.training = training ? 1 : 0;
  c.threads = threads;
  c.seed = seed;
  c.rng_offset = rng_offset;
  return c;
}

void check_status(ssm_status* status, const std::string& what) {
  if (!status) return;
  std::string msg = what + ": " + status->message;
  delete status;
  throw Error(msg);
}

// ------------------------------------------------------------------ library

class Library {
 public:
  boost::dll::shared_library lib;
  const ssm_plugin_desc* desc = nullptr;
  bool initialised = false;
  ~Library() {
    if (initialised && desc && desc->deinit) desc->deinit();
  }
};

// A created child: its object, kept alive until child_destroy.
struct ChildHandle {
  std::unique_ptr<PluginObject> object;
};

static void svc_child_destroy(void*, void* handle) { delete static_cast<ChildHandle*>(handle); }

// ------------------------------------------------------------ plugin objects

PluginObject::PluginObject(std::shared_ptr<Library> lib, const PluginInfo* info, const void* iface, void* instance,
                           void (*destroy)(void*))
    : lib_(std::move(lib)), info_(info), iface_(iface), instance_(instance), destroy_(destroy) {}

PluginObject::~PluginObject() {
  if (instance_ && destroy_) destroy_(instance_);
}

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<ParamInfo> LayerObject::params() const {
  std::vector<ParamInfo> out;
  uint32_t n = f().param_count(instance_);
  for (uint32_t i = 0; i < n; ++i) {
    ssm_param_desc d{};
    d.struct_size = sizeof(d);
    check_status(f().param_describe(instance_, i, &d), "layer '" + info_->id + "' param_describe");
    ParamInfo p;
    p.name = d.name ? d.name : ("param" + std::to_string(i));
    p.shape.assign(d.shape, d.shape + d.ndim);
    p.flags = d.flags;
    p.lr_max = d.lr_max;
    p.weight_decay = d.weight_decay;
    out.push_back(p);
  }
  return out;
}

void LayerObject::param_init(const ssm_ctx* ctx, DLTensor* const* params) const {
  check_status(f().param_init(instance_, ctx, params), "layer '" + info_->id + "' param_init");
}
void LayerObject::forward(const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* x, DLTensor* y) const {
  check_status(f().forward(instance_, ctx, params, x, y), "layer '" + info_->id + "' forward");
}
void LayerObject::backward(const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* dy, DLTensor* dx,
                           DLTensor* const* dparams) const {
  check_status(f().backward(instance_, ctx, params, dy, dx, dparams), "layer '" + info_->id + "' backward");
}
void* LayerObject::state_create(const ssm_ctx* ctx, DLTensor* const* params, int64_t batch) const {
  void* state = nullptr;
  check_status(f().state_create(instance_, ctx, params, batch, &state), "layer '" + info_->id + "' state_create");
  return state;
}
void LayerObject::step(const ssm_ctx* ctx, DLTensor* const* params, void* state, const DLTensor* x_t,
                       DLTensor* y_t) const {
  check_status(f().step(instance_, ctx, params, state, x_t, y_t), "layer '" + info_->id + "' step");
}
void LayerObject::state_destroy(void* state) const {
  if (state) f().state_destroy(instance_, state);
}

void DiscObject::eval(const ssm_ctx* ctx, const DLTensor* z, DLTensor* a, DLTensor* beta, DLTensor* da,
                      DLTensor* dbeta) const {
  check_status(f().eval(instance_, ctx, z, a, beta, da, dbeta), "discretization '" + info_->id + "'");
}

ssm_dataset_info DatasetObject::info() const {
  ssm_dataset_info i{};
  i.struct_size = sizeof(i);
  check_status(f().info(instance_, &i), "dataset '" + info_->id + "' info");
  return i;
}
void DatasetObject::read(int split, const int64_t* indices, int64_t n, DLTensor* x, DLTensor* labels) const {
  check_status(f().read(instance_, split, indices, n, x, labels), "dataset '" + info_->id + "' read");
}

ssm_task_info TaskObject::info() const {
  ssm_task_info i{};
  i.struct_size = sizeof(i);
  check_status(f().info(instance_, &i), "task '" + info_->id + "' info");
  return i;
}
KV TaskObject::run_defaults() const {
  KV out;
  if (!f().run_defaults) return out;
  for (const ssm_kv* kv = f().run_defaults(instance_); kv && kv->key; ++kv) out[kv->key] = kv->value ? kv->value : "";
  return out;
}
void TaskObject::batch(int split, uint64_t seed, uint64_t index, int64_t batch_size, DLTensor* x, DLTensor* y,
                       DLTensor* mask) const {
  check_status(f().batch(instance_, split, seed, index, batch_size, x, y, mask), "task '" + info_->id + "' batch");
}

// ----------------------------------------------------------------- registry

Registry::Registry() {
  host_ = new ssm_host(make_host_table(new HostLink{this}));  // never freed: see registry.hpp
  host_->child_destroy = svc_child_destroy;
}

Registry::~Registry() {
  // Objects made here may be destroyed later by their owners; children asked
  // for after this point get an error status instead of a dangling registry.
  static_cast<HostLink*>(host_->host_data)->registry = nullptr;
}

void Registry::add_path(const std::string& p) {
  if (!p.empty()) paths_.push_back(p);
}

static void split_colon_list(const std::string& s, std::vector<std::string>& out) {
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ':'))
    if (!item.empty()) out.push_back(item);
}

void Registry::add_default_paths() {
  std::vector<std::string> env;
  if (const char* v = std::getenv("SSM_PLUGIN_PATH")) split_colon_list(v, env);
  for (auto& p : env) add_path(p);
  // An installed ssmhost finds <prefix>/lib/ssm/plugins beside its bin/; a
  // build-tree ssmhost finds the build's plugin folder. Never both, so the
  // same plugin is not found twice.
  boost::system::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  fs::path installed = exe.parent_path().parent_path() / SSMHOST_INSTALL_PLUGIN_DIR;
  if (!ec && fs::is_directory(installed, ec))
    add_path(installed.string());
  else if (fs::is_directory(SSMHOST_BUILD_PLUGIN_DIR, ec))
    add_path(SSMHOST_BUILD_PLUGIN_DIR);
}

void Registry::load() {
  for (const std::string& p : paths_) {
    boost::system::error_code ec;
    fs::path path(p);
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> files;
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".so") files.push_back(it->path());
      std::sort(files.begin(), files.end());  // a stable order: the same winner on every run
      for (const fs::path& f : files) load_file(f.string());
    } else if (fs::exists(path, ec)) {
      load_file(path.string());
    } else {
      issues_.push_back({p, p + ": plugin path does not exist (given by --plugin-path, SSM_PLUGIN_PATH or the default)"});
    }
  }
}

// Why a file is not loadable, in words, from the dlerror text Boost.DLL carries.
static std::string dl_reason(const std::string& what) {
  const std::string marker = "dlerror system message: ";
  size_t at = what.find(marker);
  if (at == std::string::npos) return what;
  std::string r = what.substr(at + marker.size());
  size_t close = r.rfind(')');
  if (close != std::string::npos) r = r.substr(0, close);
  return r;
}

static bool has_elf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

void Registry::load_file(const std::string& path_in) {
  boost::system::error_code ec;
  fs::path canonical = fs::canonical(path_in, ec);
  std::string path = ec ? path_in : canonical.string();
  if (std::find(loaded_files_.begin(), loaded_files_.end(), path) != loaded_files_.end()) return;
  loaded_files_.push_back(path);
  auto issue = [&](const std::string& m) { issues_.push_back({path, path + ": " + m}); };

  if (!has_elf_magic(path)) {
    issue("not a shared library (no ELF header); remove it from the plugin path");
    return;
  }
  auto lib = std::make_shared<Library>();
  try {
    lib->lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    issue("cannot be loaded: " + dl_reason(e.what()));
    return;
  }
  if (!lib->lib.has(SSM_PLUGIN_ENTRY_SYMBOL)) {
    issue(std::string("not an ssmhost plugin: it does not export the entry symbol '") + SSM_PLUGIN_ENTRY_SYMBOL +
          "' (build it with ssm_add_plugin and one SSM_PLUGIN_* macro)");
    return;
  }
  auto entry = lib->lib.get<const ssm_plugin_desc*()>(SSM_PLUGIN_ENTRY_SYMBOL);
  const ssm_plugin_desc* d = nullptr;
  try {
    d = entry();
  } catch (...) {
    issue("its entry function threw an exception");
    return;
  }
  // The first fields (struct_size, abi_major, abi_minor) are frozen for all
  // majors, so the version check comes before anything else is trusted.
  if (!d || d->struct_size < offsetof(ssm_plugin_desc, kind)) {
    issue("its entry function returned no valid descriptor");
    return;
  }
  if (d->abi_major != SSM_ABI_MAJOR) {
    std::string id = d->struct_size >= offsetof(ssm_plugin_desc, id) + sizeof(d->id) && d->id ? d->id : "?";
    issue("plugin '" + id + "' was built for ssmhost ABI " + std::to_string(d->abi_major) + "." +
          std::to_string(d->abi_minor) + ", but this host has ABI " + std::to_string(SSM_ABI_MAJOR) + "." +
          std::to_string(SSM_ABI_MINOR) + "; rebuild it against an SDK of major version " +
          std::to_string(SSM_ABI_MAJOR));
    return;
  }
  if (d->struct_size < offsetof(ssm_plugin_desc, get_iface) + sizeof(d->get_iface)) {
    issue("its descriptor is too short (struct_size " + std::to_string(d->struct_size) + ")");
    return;
  }
  std::string id = d->id ? d->id : "";
  if (id.empty()) {
    issue("the plugin has an empty id");
    return;
  }
  ssm_kind kind = static_cast<ssm_kind>(d->kind);
  if (kind < SSM_KIND_LAYER || kind > SSM_KIND_TASK) {
    issue("plugin '" + id + "' has unknown kind " + std::to_string(d->kind));
    return;
  }
  // Ids and aliases share one namespace across kinds, so a name is never ambiguous.
  std::vector<std::string> names = {id};
  for (const char* const* a = d->aliases; a && *a; ++a) names.push_back(*a);
  for (const std::string& n : names)
    for (size_t i = 0; i < infos_.size(); ++i) {
      const PluginInfo& other = *infos_[i];
      bool clash = other.id == n || std::find(other.aliases.begin(), other.aliases.end(), n) != other.aliases.end();
      if (clash) {
        issue("duplicate plugin name '" + n + "': already provided by " + other.path + "; this copy is ignored");
        return;
      }
    }
  const void* iface = d->get_iface ? d->get_iface(iface_id(kind)) : nullptr;
  if (!iface) {
    issue("plugin '" + id + "' declares kind " + kind_name(kind) + " but provides no '" + iface_id(kind) + "' table");
    return;
  }
  if (d->init) {
    ssm_status* st = d->init(host_, path.c_str());
    if (st) {
      issue("plugin '" + id + "' failed to initialise: " + st->message);
      delete st;
      return;
    }
  }
  lib->desc = d;
  lib->initialised = true;

  auto info = std::make_unique<PluginInfo>();
  info->id = id;
  info->version = d->version ? d->version : "";
  info->description = d->description ? d->description : "";
  info->path = path;
  info->kind = kind;
  info->abi_major = d->abi_major;
  info->abi_minor = d->abi_minor;
  info->aliases.assign(names.begin() + 1, names.end());
  for (uint32_t i = 0; i < d->n_options; ++i) {
    const ssm_option_desc& o = d->options[i];
    OptionInfo oi;
    oi.name = o.name ? o.name : "";
    oi.type = option_type_name(o.type);
    oi.required = o.default_value == nullptr;
    oi.default_value = o.default_value ? o.default_value : "";
    oi.help = o.help ? o.help : "";
    info->options.push_back(oi);
  }
  if (kind == SSM_KIND_DISC) {
    auto* t = static_cast<const ssm_disc_iface*>(iface);
    info->suffix = t->suffix ? t->suffix : "";
  }
  infos_.push_back(std::move(info));
  libs_.push_back(std::move(lib));
}

std::vector<const PluginInfo*> Registry::plugins() const {
  std::vector<const PluginInfo*> out;
  for (auto& i : infos_) out.push_back(i.get());
  return out;
}

const PluginInfo* Registry::find(ssm_kind kind, const std::string& name) const {
  for (auto& i : infos_) {
    if (i->kind != kind) continue;
    if (i->id == name || std::find(i->aliases.begin(), i->aliases.end(), name) != i->aliases.end()) return i.get();
  }
  return nullptr;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> Registry::close_matches(ssm_kind kind, const std::string& name) const {
  std::vector<std::pair<size_t, std::string>> scored;
  for (auto& i : infos_) {
    if (i->kind != kind) continue;
    std::vector<std::string> names = {i->id};
    names.insert(names.end(), i->aliases.begin(), i->aliases.end());
    for (const std::string& n : names) {
      size_t d = edit_distance(name, n);
      bool prefix = !name.empty() && (n.rfind(name, 0) == 0 || name.rfind(n, 0) == 0);
      if (d <= std::max<size_t>(2, n.size() / 3) || prefix) scored.push_back({prefix ? 0 : d, n});
    }
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (auto& s : scored)
    if (out.size() < 5 && std::find(out.begin(), out.end(), s.second) == out.end()) out.push_back(s.second);
  return out;
}

std::string Registry::unknown_message(ssm_kind kind, const std::string& name) const {
  std::string msg = std::string("unknown ") + kind_name(kind) + " '" + name + "'";
  std::vector<std::string> close = close_matches(kind, name);
  if (!close.empty()) {
    msg += "; did you mean ";
    for (size_t i = 0; i < close.size(); ++i) msg += (i ? ", " : "") + ("'" + close[i] + "'");
    msg += "?";
  }
  std::vector<std::string> all;
  for (auto& i : infos_)
    if (i->kind == kind) all.push_back(i->id);
  msg += all.empty() ? std::string(" (no ") + kind_name(kind) + " plugins were found)"
                     : std::string(" (") + kind_name(kind) + " plugins: ";
  for (size_t i = 0; i < all.size(); ++i) msg += (i ? ", " : "") + all[i];
  if (!all.empty()) msg += "; `ssmhost list` shows all)";
  // A file that failed to load may be the one the user meant.
  for (const LoadIssue& is : issues_)
    if (fs::path(is.path).stem().string() == name) msg += "\n  note: " + is.message;
  return msg;
}

const PluginInfo& Registry::require(ssm_kind kind, const std::string& name) const {
  if (const PluginInfo* p = find(kind, name)) return *p;
  throw Error(unknown_message(kind, name));
}

std::pair<const PluginInfo*, std::string> Registry::resolve_layer(const std::string& name) const {
  if (const PluginInfo* p = find(SSM_KIND_LAYER, name)) return {p, ""};
  if (name.size() > 1) {
    std::string base = name.substr(0, name.size() - 1), suffix = name.substr(name.size() - 1);
    const PluginInfo* layer = find(SSM_KIND_LAYER, base);
    if (layer)
      for (auto& i : infos_)
        if (i->kind == SSM_KIND_DISC && i->suffix == suffix) return {layer, i->id};
  }
  throw Error(unknown_message(SSM_KIND_LAYER, name));
}

const void* Registry::create_raw(ssm_kind kind, const std::string& name, KV& config, void** instance,
                                 void (**destroy)(void*), std::shared_ptr<Library>* lib, const PluginInfo** info) {
  const PluginInfo* p = nullptr;
  if (kind == SSM_KIND_LAYER) {
    auto [layer, disc] = resolve_layer(name);
    p = layer;
    if (!disc.empty()) config["disc"] = disc;  // the suffix picks the scheme
  } else {
    p = &require(kind, name);
  }
  config["plugin_name"] = name;
  size_t index = 0;
  while (infos_[index].get() != p) ++index;
  const void* iface = libs_[index]->desc->get_iface(iface_id(kind));
  std::vector<ssm_kv> items;
  for (auto& kv : config) items.push_back({kv.first.c_str(), kv.second.c_str()});
  ssm_config cfg{sizeof(ssm_config), static_cast<uint32_t>(items.size()), items.data()};
  ssm_status* (*create)(const ssm_host*, const ssm_config*, void**) = nullptr;
  void (*destroy_fn)(void*) = nullptr;
  switch (kind) {
    case SSM_KIND_LAYER: {
      auto* t = static_cast<const ssm_layer_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_DISC: {
      auto* t = static_cast<const ssm_disc_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_DATASET: {
      auto* t = static_cast<const ssm_dataset_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_TASK: {
      auto* t = static_cast<const ssm_task_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
  }
  void* obj = nullptr;
  ssm_status* st = create(host_, &cfg, &obj);
  if (st) {
    std::string msg = std::string(kind_name(kind)) + " '" + name + "' (" + p->path + "): " + st->message;
    delete st;
    throw Error(msg);
  }
  *instance = obj;
  *destroy = destroy_fn;
  *lib = libs_[index];
  *info = p;
  return iface;
}

template <class Obj>
std::unique_ptr<Obj> Registry::create(ssm_kind kind, const std::string& name, KV config) {
  void* instance = nullptr;
  void (*destroy)(void*) = nullptr;
  std::shared_ptr<Library> lib;
  const PluginInfo* info = nullptr;
  const void* iface = create_raw(kind, name, config, &instance, &destroy, &lib, &info);
  return std::make_unique<Obj>(lib, info, iface, instance, destroy);
}

std::unique_ptr<LayerObject> Registry::create_layer(const std::string& name, KV config) {
  return create<LayerObject>(SSM_KIND_LAYER, name, std::move(config));
}
std::unique_ptr<DiscObject> Registry::create_disc(const std::string& name, KV config) {
  return create<DiscObject>(SSM_KIND_DISC, name, std::move(config));
}
std::unique_ptr<DatasetObject> Registry::create_dataset(const std::string& name, KV config) {
  return create<DatasetObject>(SSM_KIND_DATASET, name, std::move(config));
}
std::unique_ptr<TaskObject> Registry::create_task(const std::string& name, KV config) {
  return create<TaskObject>(SSM_KIND_TASK, name, std::move(config));
}

void Registry::create_child(ssm_kind kind, const std::string& name, const KV& config, ssm_child* out) {
  KV cfg = config;
  auto handle = std::make_unique<ChildHandle>();
  switch (kind) {
    case SSM_KIND_LAYER: handle->object = create_layer(name, cfg); break;
    case SSM_KIND_DISC: handle->object = create_disc(name, cfg); break;
    case SSM_KIND_DATASET: handle->object = create_dataset(name, cfg); break;
    case SSM_KIND_TASK: handle->object = create_task(name, cfg); break;
    default: throw Error("child_create: unknown plugin kind " + std::to_string(kind));
  }
  ssm_child c{};
  c.struct_size = sizeof(c);
  c.iface = handle->object->iface();
  c.instance = handle->object->instance();
  c.handle = handle.release();
  std::memcpy(out, &c, std::min<size_t>(out->struct_size ? out->struct_size : sizeof(c), sizeof(c)));
}

}  // namespace ssmhost
