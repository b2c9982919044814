// The host-side wrappers of plugin objects: each call through the plugin's
// table, its status turned into an ssmhost::Error naming the plugin.
#include <algorithm>

#include <ssm/ext/layer_kernel.h>

#include "host_services.hpp"
#include "registry.hpp"

namespace ssmhost {

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
    p.shape.assign(d.shape, d.shape + std::max(0, std::min(d.ndim, 4)));
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

bool LayerObject::supports(DLDevice device, DLDataType dtype) const {
  if (SSM_HAS_FIELD(&f(), ssm_layer_iface, supports) && f().supports)
    return f().supports(instance_, device, dtype) != 0;
  const bool f32 = dtype.code == kDLFloat && dtype.bits == 32 && dtype.lanes == 1;
  const bool f64 = dtype.code == kDLFloat && dtype.bits == 64 && dtype.lanes == 1;
  if (device.device_type == kDLCPU) return f32 || f64;
  return device.device_type == kDLCUDA && f().forward_cuda && f32;
}

bool LayerObject::conv_kernel(const ssm_ctx* ctx, DLTensor* const* params, int64_t length, int64_t H,
                              std::vector<double>& out) const {
  if (!f().get_extension) return false;
  auto* ext = static_cast<const ssm_layer_kernel*>(f().get_extension(instance_, SSM_EXT_LAYER_KERNEL));
  if (!ext || !SSM_HAS_FIELD(ext, ssm_layer_kernel, kernel) || !ext->kernel) return false;
  out.assign(static_cast<size_t>(H * length), 0.0);
  std::vector<int64_t> shape = {H, length};
  DLTensor t{};
  t.data = out.data();
  t.device = {kDLCPU, 0};
  t.ndim = 2;
  t.dtype = {kDLFloat, 64, 1};
  t.shape = shape.data();
  check_status(ext->kernel(instance_, ctx, params, length, &t), "layer '" + info_->id + "' kernel");
  return true;
}

bool DiscObject::supports(DLDevice device, DLDataType dtype) const {
  if (SSM_HAS_FIELD(&f(), ssm_disc_iface, supports) && f().supports)
    return f().supports(instance_, device, dtype) != 0;
  const bool c64 = dtype.code == kDLComplex && dtype.bits == 64 && dtype.lanes == 1;
  const bool c128 = dtype.code == kDLComplex && dtype.bits == 128 && dtype.lanes == 1;
  if (device.device_type == kDLCPU) return c64 || c128;
  return device.device_type == kDLCUDA && f().eval_cuda && c64;
}

const void* DiscObject::extension(const char* id) const {
  if (SSM_HAS_FIELD(&f(), ssm_disc_iface, get_extension) && f().get_extension)
    return f().get_extension(instance_, id);
  return nullptr;
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


}  // namespace ssmhost
