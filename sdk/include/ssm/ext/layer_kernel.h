/*
 * ssm/ext/layer_kernel.h — the "convolution kernel" extension of a layer
 * plugin (C11, like abi.h).
 *
 * A linear time-invariant layer (S4, S4D, ...) whose sequence mixing is a
 * causal convolution y = K * u per channel returns this struct from
 * get_extension(self, SSM_EXT_LAYER_KERNEL). `kernel` writes the layer's
 * current kernel K for the given parameters into `out`, a dense CPU float64
 * tensor of shape (H, length): out[h, l] is the response of channel h at lag
 * l to a unit impulse at lag 0, before any skip term (D) and before the
 * block's nonlinearity. The host calls it at evaluation time when a run is
 * trained with --log-kernels and stores the result in the run log
 * (/kernels, docs/runlog.md); `ssmhost plot --kernels` draws it.
 *
 * Versioned by its id; struct_size first, fields only appended (abi.h rules).
 */
#ifndef SSM_EXT_LAYER_KERNEL_H
#define SSM_EXT_LAYER_KERNEL_H

#include <ssm/abi.h>

#define SSM_EXT_LAYER_KERNEL "ssm.layer.kernel/1"

typedef struct ssm_layer_kernel {
  uint32_t struct_size;
  ssm_status* (*kernel)(void* self, const ssm_ctx* ctx, DLTensor* const* params, int64_t length, DLTensor* out);
} ssm_layer_kernel;

#endif /* SSM_EXT_LAYER_KERNEL_H */
