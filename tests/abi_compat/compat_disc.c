/* test_compat_disc_v1_0 / _v1_2: backward (implicit) Euler,
 *   a = 1/(1 - z), beta = 1/(1 - z)  (so Bbar = dt*B/(1 - dt*A)),
 *   a' = beta' = 1/(1 - z)^2,
 * on complex64 and complex128 z, CPU only. (Not forward Euler, a = 1 + z:
 * |1 + dt*A| > 1 on S4D-Lin's spectrum, so s4d + forward Euler blows up,
 * |y| ~ 1e195 at L = 256 and NaN at L = 16384. Backward Euler is A-stable:
 * |a| < 1 whenever Re z < 0.)
 *
 * A test-only discretization in plain C11 against the raw ABI, built twice
 * (tests/abi_compat/CMakeLists.txt): against the frozen ABI 1.0 header and the
 * simulated 1.2 header. Its suffix (COMPAT_DISC_SUFFIX: "q" for 1.0, "w" for
 * 1.2) makes s4dq / s4dw: a 1.0 or 1.2 discretization as the child of the
 * built-in 1.1 s4d layer. Options: order (int, must be 1) and label (string,
 * unused) -- there so that `ssmhost info` proves the host strides the option
 * array by each element's struct_size. */
#include <stdlib.h>

#include "compat_common.h"

#ifndef COMPAT_DISC_SUFFIX
#error "build with -DCOMPAT_DISC_SUFFIX=\"x\""
#endif

typedef struct disc {
  const ssm_host* host;
} disc;

static const ssm_option_desc options[] = {
    {.struct_size = sizeof(ssm_option_desc),
     .name = "order",
     .type = SSM_OPT_INT,
     .default_value = "1",
     .help = "order of the scheme (only 1, backward Euler)" COMPAT_FUTURE_INIT},
    {.struct_size = sizeof(ssm_option_desc),
     .name = "label",
     .type = SSM_OPT_STRING,
     .default_value = "euler",
     .help = "a free-form label, unused" COMPAT_FUTURE_INIT},
};

static ssm_status* disc_create(const ssm_host* host, const ssm_config* config, void** out) {
  if (!compat_host_ok(host)) return host && host->status_make ? compat_error(host, SSM_ERR_INTERNAL, "unusable host table") : NULL;
  ssm_status* st = COMPAT_CHECK_SIZE(host, ssm_host, host);
  if (!st && config) st = COMPAT_CHECK_SIZE(host, ssm_config, config);
  if (st) return st;
  const char* order = compat_config_get(config, "order");
  if (order && strcmp(order, "1") != 0)
    return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "option 'order' must be 1 (backward Euler), got '%s'", order);
  disc* d = (disc*)calloc(1, sizeof(disc));
  if (!d) return compat_error(host, SSM_ERR_INTERNAL, "out of memory");
  d->host = host;
  *out = d;
  return NULL;
}

static void disc_destroy(void* self) { free(self); }

/* One complex dtype: z and the outputs as (re, im) pairs of T; r = 1/(1 - z). */
#define COMPAT_EULER(T)                                                                                    \
  static void euler_##T(int64_t n, const T* z, T* a, T* beta, T* da, T* dbeta) {                          \
    for (int64_t i = 0; i < n; ++i) {                                                                      \
      const T wr = (T)1 - z[2 * i], wi = -z[2 * i + 1], m = wr * wr + wi * wi;                             \
      const T rr = wr / m, ri = -wi / m;                     /* 1/(1 - z) */                               \
      const T r2r = rr * rr - ri * ri, r2i = (T)2 * rr * ri; /* 1/(1 - z)^2 */                             \
      if (a) a[2 * i] = rr, a[2 * i + 1] = ri;                                                             \
      if (beta) beta[2 * i] = rr, beta[2 * i + 1] = ri;                                                    \
      if (da) da[2 * i] = r2r, da[2 * i + 1] = r2i;                                                        \
      if (dbeta) dbeta[2 * i] = r2r, dbeta[2 * i + 1] = r2i;                                               \
    }                                                                                                      \
  }
COMPAT_EULER(float)
COMPAT_EULER(double)

static ssm_status* disc_eval(void* self, const ssm_ctx* ctx, const DLTensor* z, DLTensor* a, DLTensor* beta,
                             DLTensor* da, DLTensor* dbeta) {
  disc* d = (disc*)self;
  const ssm_host* host = d->host;
  if (ctx) {
    ssm_status* st = COMPAT_CHECK_SIZE(host, ssm_ctx, ctx);
    if (st) return st;
  }
  if (!z) return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "z is NULL");
  if (!compat_is_cpu(z)) return compat_error(host, SSM_ERR_UNSUPPORTED, "only CPU tensors are served");
  const int c64 = compat_dtype_is(z, kDLComplex, 64), c128 = compat_dtype_is(z, kDLComplex, 128);
  if (!c64 && !c128) return compat_error(host, SSM_ERR_UNSUPPORTED, "z must be complex64 or complex128");
  if (!compat_dense(z)) return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "z must be dense");
  DLTensor* outs[4] = {a, beta, da, dbeta};
  static const char* names[4] = {"a", "beta", "da", "dbeta"};
  for (int i = 0; i < 4; ++i) {
    if (!outs[i]) continue;
    if (!compat_is_cpu(outs[i]) || !compat_same_shape(outs[i], z) || outs[i]->dtype.code != z->dtype.code ||
        outs[i]->dtype.bits != z->dtype.bits || outs[i]->dtype.lanes != 1 || !compat_dense(outs[i]))
      return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "%s must be a dense CPU tensor of z's shape and dtype",
                          names[i]);
  }
  const int64_t n = compat_numel(z);
#define COMPAT_OUT(T, t) ((t) ? (T*)compat_data(t) : NULL)
  if (c64)
    euler_float(n, (const float*)compat_data(z), COMPAT_OUT(float, a), COMPAT_OUT(float, beta), COMPAT_OUT(float, da),
                COMPAT_OUT(float, dbeta));
  else
    euler_double(n, (const double*)compat_data(z), COMPAT_OUT(double, a), COMPAT_OUT(double, beta),
                 COMPAT_OUT(double, da), COMPAT_OUT(double, dbeta));
#undef COMPAT_OUT
  return NULL;
}

#if SSM_ABI_MINOR >= 1
static const void* disc_get_extension(void* self, const char* id) {
  (void)self, (void)id;
  return NULL;
}
static int32_t disc_supports(void* self, DLDevice device, DLDataType dtype) {
  (void)self;
  return device.device_type == kDLCPU && dtype.code == kDLComplex && (dtype.bits == 64 || dtype.bits == 128) &&
         dtype.lanes == 1;
}
#endif

static const ssm_disc_iface iface = {
    .struct_size = sizeof(ssm_disc_iface),
    .suffix = COMPAT_DISC_SUFFIX,
    .create = disc_create,
    .destroy = disc_destroy,
    .eval = disc_eval,
    .eval_cuda = NULL
#if SSM_ABI_MINOR >= 1
    ,
    .get_extension = disc_get_extension,
    .supports = disc_supports
#endif
    COMPAT_FUTURE_INIT};

static const void* get_iface(const char* id) { return id && strcmp(id, SSM_IFACE_DISC) == 0 ? &iface : NULL; }

static ssm_status* plugin_init(const ssm_host* host, const char* path) {
  (void)path;
  if (!compat_host_ok(host)) return host && host->status_make ? compat_error(host, SSM_ERR_INTERNAL, "unusable host table") : NULL;
  return COMPAT_CHECK_SIZE(host, ssm_host, host);
}
static void plugin_deinit(void) {}

static const ssm_plugin_desc desc = {
    .struct_size = sizeof(ssm_plugin_desc),
    .abi_major = SSM_ABI_MAJOR,
    .abi_minor = SSM_ABI_MINOR,
    .kind = SSM_KIND_DISC,
    .id = COMPAT_ID,
    .version = "0.1.0",
    .description = "test-only backward Euler in C against the raw ABI header (abi_compat)",
    .aliases = NULL,
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .init = plugin_init,
    .deinit = plugin_deinit,
    .get_iface = get_iface COMPAT_FUTURE_INIT};

SSM_EXPORT const ssm_plugin_desc* ssm_plugin_entry(void) { return &desc; }
