/* test_compat_layer_v1_0 / _v1_2: a leaky running sum with a per-channel
 * scale and bias, on (B, L, H) float32 or float64, CPU only:
 *
 *   s[t] = decay * s[t-1] + x[t]     (s[-1] = 0, decay a fixed option)
 *   y[t] = w[h] * s[t] + b[h]        (parameters w and b, shape (H))
 *
 * A test-only layer in plain C11 against the raw ABI, built twice
 * (tests/abi_compat/CMakeLists.txt): against the frozen ABI 1.0 header and the
 * simulated 1.2 header, so that ctest proves a 1.0 and a 1.2 plugin both load
 * into and pass `ssmhost validate` with the current host. Exact gradients,
 * a recurrent mode equal to forward, nothing kept in the instance but the
 * cache of the latest training forward.
 *
 * Options (four, so that a host striding the option array by its own sizeof
 * would misread the later ones):
 *   d_model     int     8        channels H
 *   decay       float   0.5      in [0, 1)
 *   init        string  normal   "normal": w = 1 + 0.1 N(0,1), b = 0.1 N(0,1)
 *                                via host->rng_fill; "constant": w = 1, b = 0
 *   probe_disc  string  ""       when set, create() makes that discretization
 *                                through host->child_create and checks the
 *                                ssm_child the host fills (1.1+: this option is
 *                                marked plugin_kind = disc)
 */
#include <math.h>
#include <stdlib.h>

#include "compat_common.h"

typedef struct layer {
  const ssm_host* host;
  int64_t H;
  double decay;
  int init_constant;
  /* The cache of the latest training forward, for backward: s, (B, L, H). */
  void* cache;
  uint64_t cache_capacity; /* bytes */
  int64_t cache_B, cache_L;
  uint8_t cache_bits; /* 0: no cache */
} layer;

typedef struct state {
  int64_t batch;
  uint8_t bits;
  void* s; /* (batch, H) of the parameters' dtype */
} state;

static const ssm_option_desc options[] = {
    {.struct_size = sizeof(ssm_option_desc),
     .name = "d_model",
     .type = SSM_OPT_INT,
     .default_value = "8",
     .help = "channels H" COMPAT_FUTURE_INIT},
    {.struct_size = sizeof(ssm_option_desc),
     .name = "decay",
     .type = SSM_OPT_FLOAT,
     .default_value = "0.5",
     .help = "leak of the running sum s[t] = decay*s[t-1] + x[t], in [0, 1)" COMPAT_FUTURE_INIT},
    {.struct_size = sizeof(ssm_option_desc),
     .name = "init",
     .type = SSM_OPT_STRING,
     .default_value = "normal",
     .help = "parameter init: normal (host rng_fill) or constant (w = 1, b = 0)" COMPAT_FUTURE_INIT},
    {.struct_size = sizeof(ssm_option_desc),
     .name = "probe_disc",
     .type = SSM_OPT_STRING,
     .default_value = "",
     .help = "a discretization to create through host->child_create at create (checks the ssm_child)"
#if SSM_ABI_MINOR >= 1
     ,
     .plugin_kind = SSM_KIND_DISC
#endif
     COMPAT_FUTURE_INIT},
};

/* ------------------------------------------------------------ probe_disc */

/* Creates discretization `id` through the host, as a parent plugin would,
 * and checks the out-struct: the host writes at most the struct_size this
 * plugin gave (a guard follows it), the bytes it did not cover are untouched,
 * the 1.1 fields are read only when present; then the child's eval is called
 * once with a ctx this plugin writes, and the child destroyed. */
static ssm_status* probe_disc(const ssm_host* host, const char* id) {
  struct {
    ssm_child c;
    unsigned char guard[64];
  } buf;
  memset(&buf, 0xA5, sizeof buf);
  buf.c.struct_size = sizeof(ssm_child);
  ssm_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.struct_size = sizeof cfg;
  cfg.count = 0;
  cfg.items = NULL;
  compat_fill_future(&cfg);
  if (!host->child_create || !host->child_destroy)
    return compat_error(host, SSM_ERR_UNSUPPORTED, "probe_disc: the host has no child_create");
  ssm_status* st = host->child_create(host->host_data, SSM_KIND_DISC, id, &cfg, &buf.c);
  if (st) {
    ssm_status* mine = compat_error(host, host->status_code(host->host_data, st), "probe_disc '%s': %s", id,
                                    host->status_message(host->host_data, st));
    host->status_free(host->host_data, st);
    return mine;
  }
  for (size_t i = 0; i < sizeof buf.guard; ++i)
    if (buf.guard[i] != 0xA5)
      return compat_error(host, SSM_ERR_INTERNAL,
                          "probe_disc: child_create wrote past the ssm_child (struct_size %zu) this plugin gave it",
                          sizeof(ssm_child));
  /* The writer's struct_size now; what it did not cover must be as it was. */
  const size_t covered = buf.c.struct_size < sizeof(ssm_child) ? buf.c.struct_size : sizeof(ssm_child);
  for (size_t i = covered; i < sizeof(ssm_child); ++i)
    if (((const unsigned char*)&buf.c)[i] != 0xA5)
      return compat_error(host, SSM_ERR_INTERNAL,
                          "probe_disc: child_create says it wrote %u bytes of the ssm_child but changed byte %zu",
                          buf.c.struct_size, i);
  if ((st = COMPAT_CHECK_SIZE(host, ssm_child, &buf.c))) return st;
  if (covered < offsetof(ssm_child, instance) + sizeof(void*) || !buf.c.handle || !buf.c.iface || !buf.c.instance)
    return compat_error(host, SSM_ERR_INTERNAL, "probe_disc: the host filled no handle, iface or instance");

  const char* failure = NULL;
#if SSM_ABI_MINOR >= 1
  /* 1.1: the child's descriptor, and its options walked by their own size. */
  if (SSM_HAS_FIELD(&buf.c, ssm_child, desc) && buf.c.desc) {
    const ssm_plugin_desc* d = buf.c.desc;
    if (!SSM_HAS_FIELD(d, ssm_plugin_desc, get_iface) || d->abi_major != 1 || d->kind != SSM_KIND_DISC || !d->id)
      failure = "the child's descriptor is not a discretization's";
    const ssm_option_desc* o = d->options;
    for (uint32_t i = 0; !failure && o && i < d->n_options; ++i, o = SSM_ARRAY_NEXT(ssm_option_desc, o))
      if (!SSM_HAS_FIELD(o, ssm_option_desc, help) || !o->name) failure = "an option of the child has no name";
  }
  if (!failure && SSM_HAS_FIELD(&buf.c, ssm_child, library_path) && buf.c.desc && !buf.c.library_path)
    failure = "the host gave the child's descriptor but no library_path";
#endif

  const ssm_disc_iface* f = (const ssm_disc_iface*)buf.c.iface;
  if (!failure && (!SSM_HAS_FIELD(f, ssm_disc_iface, eval_cuda) || !f->eval))
    failure = "the child's ssm.disc/1 table is shorter than ABI 1.0";
  int served = 1;
#if SSM_ABI_MINOR >= 1
  if (!failure && SSM_HAS_FIELD(f, ssm_disc_iface, supports) && f->supports) {
    DLDevice cpu = {kDLCPU, 0};
    DLDataType c128 = {kDLComplex, 128, 1};
    served = f->supports(buf.c.instance, cpu, c128) != 0;
  }
#endif
  ssm_status* eval_st = NULL;
  if (!failure && served) {
    ssm_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.struct_size = sizeof ctx;
    ctx.host = host;
    ctx.device.device_type = kDLCPU;
    ctx.device.device_id = 0;
    ctx.threads = 1;
    compat_fill_future(&ctx);
    double z[2] = {-0.5, 0.25}, a[2] = {NAN, NAN};
    int64_t shape[1] = {1};
    DLTensor zt, at;
    memset(&zt, 0, sizeof zt);
    zt.data = z;
    zt.device = ctx.device;
    zt.ndim = 1;
    zt.dtype.code = kDLComplex;
    zt.dtype.bits = 128;
    zt.dtype.lanes = 1;
    zt.shape = shape;
    at = zt;
    at.data = a;
    eval_st = f->eval(buf.c.instance, &ctx, &zt, &at, NULL, NULL, NULL);
    if (!eval_st && !(isfinite(a[0]) && isfinite(a[1]))) failure = "the child's eval wrote no finite a";
  }
  host->child_destroy(host->host_data, buf.c.handle);
  if (eval_st) {
    ssm_status* mine = compat_error(host, host->status_code(host->host_data, eval_st), "probe_disc '%s' eval: %s", id,
                                    host->status_message(host->host_data, eval_st));
    host->status_free(host->host_data, eval_st);
    return mine;
  }
  if (failure) return compat_error(host, SSM_ERR_INTERNAL, "probe_disc '%s': %s", id, failure);
  return NULL;
}

/* ------------------------------------------------------------ create */

static ssm_status* layer_create(const ssm_host* host, const ssm_config* config, void** out) {
  if (!compat_host_ok(host))
    return host && host->status_make ? compat_error(host, SSM_ERR_INTERNAL, "unusable host table") : NULL;
  ssm_status* st = COMPAT_CHECK_SIZE(host, ssm_host, host);
  if (!st && config) st = COMPAT_CHECK_SIZE(host, ssm_config, config);
  if (st) return st;

  int64_t H = 8;
  double decay = 0.5;
  int init_constant = 0;
  const char* v;
  char* end = NULL;
  if ((v = compat_config_get(config, "d_model"))) {
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 1 || n > (1 << 20))
      return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "option 'd_model' must be an integer in [1, 2^20], got '%s'", v);
    H = n;
  }
  if ((v = compat_config_get(config, "decay"))) {
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= 0 && d < 1))
      return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "option 'decay' must be a number in [0, 1), got '%s'", v);
    decay = d;
  }
  if ((v = compat_config_get(config, "init"))) {
    if (strcmp(v, "constant") == 0)
      init_constant = 1;
    else if (strcmp(v, "normal") != 0)
      return compat_error(host, SSM_ERR_INVALID_ARGUMENT, "option 'init' must be normal or constant, got '%s'", v);
  }
  if ((v = compat_config_get(config, "probe_disc")) && *v && (st = probe_disc(host, v))) return st;

  layer* l = (layer*)calloc(1, sizeof(layer));
  if (!l) return compat_error(host, SSM_ERR_INTERNAL, "out of memory");
  l->host = host;
  l->H = H;
  l->decay = decay;
  l->init_constant = init_constant;
  *out = l;
  return NULL;
}

static void layer_destroy(void* self) {
  layer* l = (layer*)self;
  if (!l) return;
  if (l->cache) l->host->mem_free(l->host->host_data, (DLDevice){kDLCPU, 0}, l->cache, NULL);
  free(l);
}

/* ------------------------------------------------------------ parameters */

static uint32_t layer_param_count(void* self) {
  (void)self;
  return 2;
}

/* An out-struct: the host allocated it with its own struct_size; this plugin
 * fills min(that, its sizeof) bytes and nothing beyond. */
static ssm_status* layer_param_describe(void* self, uint32_t index, ssm_param_desc* out) {
  layer* l = (layer*)self;
  if (index >= 2) return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "no parameter %u", index);
  if (!out || out->struct_size == 0)
    return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "param_describe: out has no struct_size");
  ssm_param_desc d;
  memset(&d, 0, sizeof d);
  d.name = index == 0 ? "w" : "b";
  d.ndim = 1;
  d.shape[0] = l->H;
  d.flags = index == 0 ? 0u : SSM_PARAM_NO_WEIGHT_DECAY;
  d.lr_max = 0;
  d.weight_decay = -1;
  compat_fill_future(&d);
  const size_t n = out->struct_size < sizeof d ? out->struct_size : sizeof d;
  d.struct_size = (uint32_t)n; /* what this plugin wrote */
  memcpy(out, &d, n);
  return NULL;
}

/* The tensors of one call: float32 or float64 on the CPU, dense, x (B, L, H)
 * or x_t (B, H) with parameters of the same dtype. Returns the dtype's bits,
 * or 0 with *st set. */
static uint8_t check_call(const layer* l, const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* x,
                          const DLTensor* y, int32_t ndim, const char* xn, const char* yn, ssm_status** st) {
  const ssm_host* h = l->host;
  *st = NULL;
  if (!ctx) return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "no ctx")), 0;
  if ((*st = COMPAT_CHECK_SIZE(h, ssm_ctx, ctx))) return 0;
  if (!params || !params[0] || !params[1])
    return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "params must hold w and b")), 0;
  if (!x || !y) return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "%s and %s are required", xn, yn)), 0;
  const uint8_t bits = x->dtype.bits;
  if (x->dtype.code != kDLFloat || (bits != 32 && bits != 64) || x->dtype.lanes != 1)
    return (*st = compat_error(h, SSM_ERR_UNSUPPORTED, "%s must be float32 or float64", xn)), 0;
  const DLTensor* all[4] = {x, y, params[0], params[1]};
  const char* names[4] = {xn, yn, "w", "b"};
  for (int i = 0; i < 4; ++i) {
    if (!compat_is_cpu(all[i])) return (*st = compat_error(h, SSM_ERR_UNSUPPORTED, "%s is not on the CPU", names[i])), 0;
    if (!compat_dtype_is(all[i], kDLFloat, bits))
      return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "%s must have %s's dtype", names[i], xn)), 0;
    if (!compat_dense(all[i])) return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "%s must be dense", names[i])), 0;
  }
  if (x->ndim != ndim || x->shape[ndim - 1] != l->H || !compat_same_shape(x, y))
    return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "%s and %s must be %s with H = d_model = %lld", xn, yn,
                               ndim == 3 ? "(B, L, H)" : "(B, H)", (long long)l->H)),
           0;
  for (int i = 2; i < 4; ++i)
    if (all[i]->ndim != 1 || all[i]->shape[0] != l->H)
      return (*st = compat_error(h, SSM_ERR_INVALID_ARGUMENT, "%s must be (H)", names[i])), 0;
  return bits;
}

static ssm_status* layer_param_init(void* self, const ssm_ctx* ctx, DLTensor* const* params) {
  layer* l = (layer*)self;
  if (!ctx) return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "no ctx");
  ssm_status* st = COMPAT_CHECK_SIZE(l->host, ssm_ctx, ctx);
  if (st) return st;
  if (!params || !params[0] || !params[1]) return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "params must hold w and b");
  const ssm_host* h = ctx->host ? ctx->host : l->host;
  for (int i = 0; i < 2; ++i) {
    DLTensor* p = params[i];
    const uint8_t bits = p->dtype.bits;
    if (!compat_is_cpu(p) || p->dtype.code != kDLFloat || (bits != 32 && bits != 64) || !compat_dense(p) ||
        p->ndim != 1 || p->shape[0] != l->H)
      return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "parameter %d must be a dense CPU float (H) tensor", i);
    if (!l->init_constant) {
      /* stream: this layer's own (w: 1, b: 2); offset: the call's counter */
      st = h->rng_fill(h->host_data, ctx->seed, UINT64_C(0x636f6d7061740000) + (uint64_t)i + 1, ctx->rng_offset,
                       SSM_RNG_NORMAL, p);
      if (st) return st;
    }
    const double scale = 0.1, shift = i == 0 ? 1.0 : 0.0;
    for (int64_t k = 0; k < l->H; ++k) {
      if (bits == 32) {
        float* v = (float*)compat_data(p);
        v[k] = l->init_constant ? (float)shift : (float)(shift + scale * v[k]);
      } else {
        double* v = (double*)compat_data(p);
        v[k] = l->init_constant ? shift : shift + scale * v[k];
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------ compute */

#define COMPAT_KERNELS(T)                                                                                   \
  static void forward_##T(int64_t B, int64_t L, int64_t H, T decay, const T* x, T* y, const T* w,          \
                          const T* b, T* s_cache) {                                                         \
    for (int64_t bb = 0; bb < B; ++bb)                                                                      \
      for (int64_t h = 0; h < H; ++h) {                                                                     \
        T s = 0;                                                                                            \
        for (int64_t t = 0; t < L; ++t) {                                                                   \
          const int64_t i = (bb * L + t) * H + h;                                                           \
          s = decay * s + x[i];                                                                             \
          if (s_cache) s_cache[i] = s;                                                                      \
          y[i] = w[h] * s + b[h];                                                                           \
        }                                                                                                   \
      }                                                                                                     \
  }                                                                                                         \
  /* dL/ds[t] = w dy[t] + decay dL/ds[t+1]; dx = dL/ds (overwritten); dw += dy s, db += dy. */              \
  static void backward_##T(int64_t B, int64_t L, int64_t H, T decay, const T* dy, T* dx, const T* w,       \
                           const T* s_cache, T* dw, T* db) {                                                \
    for (int64_t h = 0; h < H; ++h) {                                                                       \
      double sw = 0, sb = 0;                                                                                \
      for (int64_t bb = 0; bb < B; ++bb) {                                                                  \
        T g = 0;                                                                                            \
        for (int64_t t = L - 1; t >= 0; --t) {                                                              \
          const int64_t i = (bb * L + t) * H + h;                                                           \
          g = decay * g + w[h] * dy[i];                                                                     \
          dx[i] = g;                                                                                        \
          sw += (double)dy[i] * (double)s_cache[i];                                                         \
          sb += (double)dy[i];                                                                              \
        }                                                                                                   \
      }                                                                                                     \
      dw[h] += (T)sw;                                                                                       \
      db[h] += (T)sb;                                                                                       \
    }                                                                                                       \
  }                                                                                                         \
  static void step_##T(int64_t B, int64_t H, T decay, T* s, const T* x, T* y, const T* w, const T* b) {   \
    for (int64_t bb = 0; bb < B; ++bb)                                                                      \
      for (int64_t h = 0; h < H; ++h) {                                                                     \
        const int64_t i = bb * H + h;                                                                       \
        s[i] = decay * s[i] + x[i];                                                                         \
        y[i] = w[h] * s[i] + b[h];                                                                          \
      }                                                                                                     \
  }
COMPAT_KERNELS(float)
COMPAT_KERNELS(double)

static ssm_status* layer_forward(void* self, const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* x,
                                 DLTensor* y) {
  layer* l = (layer*)self;
  ssm_status* st;
  const uint8_t bits = check_call(l, ctx, params, x, y, 3, "x", "y", &st);
  if (!bits) return st;
  const int64_t B = x->shape[0], L = x->shape[1], H = l->H;
  void* cache = NULL;
  if (ctx->training) {
    const uint64_t bytes = (uint64_t)(B * L * H) * (bits / 8);
    if (bytes > l->cache_capacity) {
      if (l->cache) l->host->mem_free(l->host->host_data, (DLDevice){kDLCPU, 0}, l->cache, NULL);
      l->cache = l->host->mem_alloc(l->host->host_data, (DLDevice){kDLCPU, 0}, bytes, 0, NULL);
      l->cache_capacity = l->cache ? bytes : 0;
      if (!l->cache) return compat_error(l->host, SSM_ERR_INTERNAL, "cannot allocate the backward cache");
    }
    cache = l->cache;
    l->cache_B = B, l->cache_L = L, l->cache_bits = bits;
  }
  if (bits == 32)
    forward_float(B, L, H, (float)l->decay, (const float*)compat_data(x), (float*)compat_data(y),
                  (const float*)compat_data(params[0]), (const float*)compat_data(params[1]), (float*)cache);
  else
    forward_double(B, L, H, l->decay, (const double*)compat_data(x), (double*)compat_data(y),
                   (const double*)compat_data(params[0]), (const double*)compat_data(params[1]), (double*)cache);
  return NULL;
}

static ssm_status* layer_backward(void* self, const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* dy,
                                  DLTensor* dx, DLTensor* const* dparams) {
  layer* l = (layer*)self;
  ssm_status* st;
  const uint8_t bits = check_call(l, ctx, params, dy, dx, 3, "dy", "dx", &st);
  if (!bits) return st;
  if (!dparams || !dparams[0] || !dparams[1])
    return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "dparams must hold dw and db");
  for (int i = 0; i < 2; ++i)
    if (!compat_is_cpu(dparams[i]) || !compat_dtype_is(dparams[i], kDLFloat, bits) || !compat_dense(dparams[i]) ||
        dparams[i]->ndim != 1 || dparams[i]->shape[0] != l->H)
      return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "%s must be a dense CPU (H) tensor of dy's dtype",
                          i ? "db" : "dw");
  const int64_t B = dy->shape[0], L = dy->shape[1], H = l->H;
  if (l->cache_bits != bits || l->cache_B != B || l->cache_L != L)
    return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT,
                        "backward needs a training forward of the same shape and dtype first");
  if (bits == 32)
    backward_float(B, L, H, (float)l->decay, (const float*)compat_data(dy), (float*)compat_data(dx),
                   (const float*)compat_data(params[0]), (const float*)l->cache, (float*)compat_data(dparams[0]),
                   (float*)compat_data(dparams[1]));
  else
    backward_double(B, L, H, l->decay, (const double*)compat_data(dy), (double*)compat_data(dx),
                    (const double*)compat_data(params[0]), (const double*)l->cache, (double*)compat_data(dparams[0]),
                    (double*)compat_data(dparams[1]));
  return NULL;
}

/* ------------------------------------------------------------ recurrent */

static ssm_status* layer_state_create(void* self, const ssm_ctx* ctx, DLTensor* const* params, int64_t batch,
                                      void** out) {
  layer* l = (layer*)self;
  if (!ctx) return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "no ctx");
  ssm_status* st = COMPAT_CHECK_SIZE(l->host, ssm_ctx, ctx);
  if (st) return st;
  if (!params || !params[0] || params[0]->dtype.code != kDLFloat ||
      (params[0]->dtype.bits != 32 && params[0]->dtype.bits != 64))
    return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "w must be float32 or float64");
  if (batch < 1) return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "batch must be >= 1");
  state* s = (state*)calloc(1, sizeof(state));
  if (!s) return compat_error(l->host, SSM_ERR_INTERNAL, "out of memory");
  s->batch = batch;
  s->bits = params[0]->dtype.bits;
  s->s = calloc((size_t)(batch * l->H), s->bits / 8); /* all-zero bits: 0.0 */
  if (!s->s) {
    free(s);
    return compat_error(l->host, SSM_ERR_INTERNAL, "out of memory");
  }
  *out = s;
  return NULL;
}

static ssm_status* layer_step(void* self, const ssm_ctx* ctx, DLTensor* const* params, void* state_, const DLTensor* x_t,
                              DLTensor* y_t) {
  layer* l = (layer*)self;
  state* s = (state*)state_;
  ssm_status* st;
  const uint8_t bits = check_call(l, ctx, params, x_t, y_t, 2, "x_t", "y_t", &st);
  if (!bits) return st;
  if (!s || s->bits != bits || x_t->shape[0] != s->batch)
    return compat_error(l->host, SSM_ERR_INVALID_ARGUMENT, "x_t must be (batch, H) of the state's dtype");
  if (bits == 32)
    step_float(s->batch, l->H, (float)l->decay, (float*)s->s, (const float*)compat_data(x_t), (float*)compat_data(y_t),
               (const float*)compat_data(params[0]), (const float*)compat_data(params[1]));
  else
    step_double(s->batch, l->H, l->decay, (double*)s->s, (const double*)compat_data(x_t), (double*)compat_data(y_t),
                (const double*)compat_data(params[0]), (const double*)compat_data(params[1]));
  return NULL;
}

static void layer_state_destroy(void* self, void* state_) {
  (void)self;
  state* s = (state*)state_;
  if (!s) return;
  free(s->s);
  free(s);
}

#if SSM_ABI_MINOR >= 1
static int32_t layer_supports(void* self, DLDevice device, DLDataType dtype) {
  (void)self;
  return device.device_type == kDLCPU && dtype.code == kDLFloat && (dtype.bits == 32 || dtype.bits == 64) &&
         dtype.lanes == 1;
}
#endif

static const ssm_layer_iface iface = {
    .struct_size = sizeof(ssm_layer_iface),
    .create = layer_create,
    .destroy = layer_destroy,
    .param_count = layer_param_count,
    .param_describe = layer_param_describe,
    .param_init = layer_param_init,
    .forward = layer_forward,
    .backward = layer_backward,
    .state_create = layer_state_create,
    .step = layer_step,
    .state_destroy = layer_state_destroy,
    .forward_cuda = NULL,
    .backward_cuda = NULL,
    .step_cuda = NULL,
    .get_extension = NULL
#if SSM_ABI_MINOR >= 1
    ,
    .supports = layer_supports
#endif
    COMPAT_FUTURE_INIT};

static const void* get_iface(const char* id) { return id && strcmp(id, SSM_IFACE_LAYER) == 0 ? &iface : NULL; }

static ssm_status* plugin_init(const ssm_host* host, const char* path) {
  (void)path;
  if (!compat_host_ok(host))
    return host && host->status_make ? compat_error(host, SSM_ERR_INTERNAL, "unusable host table") : NULL;
  return COMPAT_CHECK_SIZE(host, ssm_host, host);
}
static void plugin_deinit(void) {}

static const ssm_plugin_desc desc = {
    .struct_size = sizeof(ssm_plugin_desc),
    .abi_major = SSM_ABI_MAJOR,
    .abi_minor = SSM_ABI_MINOR,
    .kind = SSM_KIND_LAYER,
    .id = COMPAT_ID,
    .version = "0.1.0",
    .description = "test-only leaky running sum with scale and bias, in C against the raw ABI header (abi_compat)",
    .aliases = NULL,
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
    .init = plugin_init,
    .deinit = plugin_deinit,
    .get_iface = get_iface COMPAT_FUTURE_INIT};

SSM_EXPORT const ssm_plugin_desc* ssm_plugin_entry(void) { return &desc; }
