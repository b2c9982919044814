// The host-services table every plugin receives (ssm_host): memory per
// device, logging, statuses, the counter-based RNG, and creating children
// through the registry.
#include "host_services.hpp"

#include <ssm/kernels/philox.hpp>

#include <cstdio>
#include <cstdlib>

#include "registry.hpp"

#ifdef SSMHOST_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ssmhost {

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

namespace {

void svc_child_destroy(void*, void* handle) { destroy_child_handle(handle); }

ssm_status* svc_child_create(void* host_data, int32_t kind, const char* id, const ssm_config* config,
                             ssm_child* out) {
  auto* link = static_cast<HostLink*>(host_data);
  Registry* reg = link ? link->registry : nullptr;
  if (!reg)
    return svc_status_make(nullptr, SSM_ERR_INTERNAL, "child_create: this host table has no plugin registry");
  if (!out) return svc_status_make(nullptr, SSM_ERR_INVALID_ARGUMENT, "child_create: the ssm_child* is NULL");
  if (config && !SSM_HAS_FIELD(config, ssm_config, items))
    return svc_status_make(nullptr, SSM_ERR_INVALID_ARGUMENT, "child_create: the ssm_config's struct_size is too small");
  try {
    KV kv;
    if (config)
      for (uint32_t i = 0; i < config->count; ++i)
        if (config->items[i].key && config->items[i].value) kv[config->items[i].key] = config->items[i].value;
    reg->create_child(static_cast<ssm_kind>(kind), id ? id : "", kv, out);
    return nullptr;
  } catch (const PluginError& e) {  // the child's own failure, with its code
    return svc_status_make(nullptr, e.code, e.what());
  } catch (const std::exception& e) {  // an unknown name, mostly
    return svc_status_make(nullptr, SSM_ERR_NOT_FOUND, e.what());
  }
}

const void* svc_get_extension(void*, const char*) { return nullptr; }

}  // namespace

ssm_host make_host_table(HostLink* host_data) {
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
  h.child_destroy = svc_child_destroy;
  h.get_extension = svc_get_extension;
  return h;
}

const ssm_host* host_services() {
  static const ssm_host table = make_host_table(nullptr);
  return &table;
}

ssm_ctx make_ctx(bool training, int threads, uint64_t seed, uint64_t rng_offset) {
  return make_ctx(host_services(), training, threads, seed, rng_offset);
}

ssm_ctx make_ctx(const ssm_host* host, bool training, int threads, uint64_t seed, uint64_t rng_offset) {
  ssm_ctx c{};
  c.struct_size = sizeof(c);
  c.host = host;
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

}  // namespace ssmhost
