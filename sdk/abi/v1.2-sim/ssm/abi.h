/*
 * TEST ONLY -- NOT PART OF THE SDK, NEVER INSTALLED, NEVER INCLUDED BY THE HOST.
 *
 * sdk/abi/v1.2-sim/ssm/abi.h simulates a FUTURE minor version, ABI 1.2, to
 * prove that the minor-version rules below really hold: plugins built against
 * it (tests/abi_compat/, the "v1_2" build) must load into and pass `ssmhost
 * validate` with the current 1.1 host. It is a copy of sdk/include/ssm/abi.h
 * (ABI 1.1) with exactly two changes:
 *   - SSM_ABI_MINOR is 2;
 *   - every struct with a struct_size gets two fields appended at its END,
 *       uint64_t future_1_2; const void* future_ptr_1_2;
 *     (ssm_option_desc, ssm_config, ssm_child, ssm_host, ssm_ctx,
 *     ssm_plugin_desc, ssm_param_desc, ssm_layer_iface, ssm_disc_iface,
 *     ssm_dataset_info, ssm_dataset_iface, ssm_task_info, ssm_task_iface),
 *     so every struct a 1.2 writer makes is bigger than the host's, and a host
 *     that strode by its own sizeof, or a plugin that wrote past a reader's
 *     struct_size, would be caught.
 * Keep it in step with sdk/include/ssm/abi.h when 1.1 changes (regenerate it:
 * copy the header, bump the minor, append the two fields to every struct).
 * When a real 1.2 comes, delete this copy (see sdk/abi/README.md).
 *
 * The original header comment follows.
 */
/*
 * ssm/abi.h — the stable C ABI between the ssmhost host and its plugins.
 *
 * The "waist" of the hourglass: C11, fixed-width integers, DLPack DLTensor
 * views, opaque handles and function pointers only. Plugin authors normally
 * never include this directly: they use the C++ wrapper in ssm/sdk.hpp.
 *
 * Rules (see docs/architecture.md):
 *  - A plugin library exports exactly one symbol, ssm_plugin_entry(), which
 *    returns a const ssm_plugin_desc that lives as long as the library.
 *  - SSM_ABI_MAJOR is a hard gate: the host refuses a plugin built for another
 *    major. Minor versions only append fields at the end of structs; every
 *    struct starts with struct_size so a reader never reads past what the
 *    writer knew about.
 *  - Minor versions are real, on both sides:
 *      1. Every read of a field appended after 1.0 is guarded by
 *         SSM_HAS_FIELD(ptr, Type, field): the writer's struct_size must cover
 *         the field. (Fields of 1.0 are always present: struct_size is at
 *         least their size, which the host checks once per table.)
 *      2. A field appended in a minor version means "absent" when it is zero
 *         (NULL pointer, 0 integer): a writer that does not know it leaves it
 *         zero, or its struct_size ends before it; a reader treats both alike.
 *      3. Arrays of descriptors (ssm_plugin_desc.options) are walked with
 *         SSM_ARRAY_NEXT, by each element's own struct_size, never by the
 *         reader's sizeof.
 *      4. Out-structs (the reader allocates, the writer fills: param_describe,
 *         info, child_create) carry the reader's struct_size; the writer fills
 *         min(its size, that) bytes and nothing beyond.
 *    Fields and values added in 1.1 are marked "1.1:" below.
 *  - Fallible calls return ssm_status*; NULL means success. Statuses are made
 *    by the host (host->status_make) and freed by the host. No exception ever
 *    crosses this boundary.
 *  - Whoever allocates frees: memory comes from host->mem_alloc and goes back
 *    through host->mem_free; objects a plugin creates are destroyed only
 *    through the same plugin's destroy slot.
 *  - Optional slots are nullable function pointers (NULL = not supported),
 *    e.g. forward_cuda == NULL means the layer runs on CPU only.
 *
 * Tensors: borrowed DLTensor views (DLPack 0.6). Dense row-major unless
 * strides != NULL. Complex numbers are kDLComplex (interleaved re, im).
 * Parameters are always real; a complex parameter is stored with a trailing
 * dimension of 2 (re, im).
 */
#ifndef SSM_ABI_H
#define SSM_ABI_H

#include <stdint.h>
#include <stddef.h>
#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SSM_ABI_MAJOR 1
#define SSM_ABI_MINOR 2 /* simulated: see the top of this file */

/* Whether the struct at ptr (whose first member is uint32_t struct_size, as
 * its writer set it) includes `field` of the reader's Type. */
#define SSM_HAS_FIELD(ptr, Type, field) \
  ((ptr) != NULL && (size_t)((ptr)->struct_size) >= offsetof(Type, field) + sizeof(((Type*)0)->field))

/* The element after `elem` in an array of structs that start with
 * struct_size: strided by the writer's size, not the reader's. */
#define SSM_ARRAY_NEXT(Type, elem) ((const Type*)((const char*)(elem) + (elem)->struct_size))

/* Interface ids returned by ssm_plugin_desc.get_iface. The /N suffix is the
 * interface revision; a revision is bumped only on an ABI break. */
#define SSM_IFACE_LAYER "ssm.layer/1"
#define SSM_IFACE_DISC "ssm.disc/1"
#define SSM_IFACE_DATASET "ssm.dataset/1"
#define SSM_IFACE_TASK "ssm.task/1"

#if defined(_WIN32)
#define SSM_EXPORT __declspec(dllexport)
#else
#define SSM_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------ status */

typedef struct ssm_status ssm_status; /* opaque, host-owned */

typedef enum ssm_status_code {
  SSM_OK = 0,
  SSM_ERR_INVALID_ARGUMENT = 1, /* a bad option value, shape or dtype */
  SSM_ERR_NOT_FOUND = 2,        /* a file, plugin or key that does not exist */
  SSM_ERR_UNSUPPORTED = 3,      /* e.g. a device or dtype this plugin lacks */
  SSM_ERR_IO = 4,               /* reading or writing a file failed */
  SSM_ERR_INTERNAL = 5          /* a bug, or an exception caught at the boundary */
} ssm_status_code;

/* ------------------------------------------------------------------- kinds */

typedef enum ssm_kind {
  SSM_KIND_LAYER = 1,
  SSM_KIND_DISC = 2, /* discretization scheme */
  SSM_KIND_DATASET = 3,
  SSM_KIND_TASK = 4
} ssm_kind;

/* ----------------------------------------------------------------- options */

typedef enum ssm_option_type {
  SSM_OPT_INT = 1,
  SSM_OPT_FLOAT = 2,
  SSM_OPT_BOOL = 3,
  SSM_OPT_STRING = 4
} ssm_option_type;

/* One option a plugin accepts, for `ssmhost info` and for validation. */
typedef struct ssm_option_desc {
  uint32_t struct_size;
  const char* name;          /* e.g. "d_state" (the CLI spells it --d-state) */
  int32_t type;              /* ssm_option_type */
  const char* default_value; /* as text; NULL = required */
  const char* help;          /* one line */
  /* 1.1: non-zero (an ssm_kind) when the value names a plugin of that kind:
   * --inner (layer), --disc (discretization), --dataset. The host checks the
   * name, lists it in `info`, and records the child in the run log. */
  int32_t plugin_kind;

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_option_desc;

typedef struct ssm_kv {
  const char* key;
  const char* value;
} ssm_kv;

/* Resolved options handed to create(): every value as text. */
typedef struct ssm_config {
  uint32_t struct_size;
  uint32_t count;
  const ssm_kv* items;

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_config;

/* ------------------------------------------------------------ host services */

typedef enum ssm_log_level {
  SSM_LOG_DEBUG = 0,
  SSM_LOG_INFO = 1,
  SSM_LOG_WARN = 2,
  SSM_LOG_ERROR = 3
} ssm_log_level;

typedef enum ssm_rng_dist {
  SSM_RNG_UNIFORM = 1, /* U[0,1) */
  SSM_RNG_NORMAL = 2   /* N(0,1) */
} ssm_rng_dist;

/* A plugin object created through the host registry (child_create): the
 * interface table of its kind and its instance. The host handle keeps the
 * child's library loaded until child_destroy. */
typedef struct ssm_plugin_desc ssm_plugin_desc;

typedef struct ssm_child {
  uint32_t struct_size;
  void* handle;      /* host-owned; pass to child_destroy */
  const void* iface; /* const ssm_layer_iface* / ssm_disc_iface* / ... */
  void* instance;    /* the first argument of every iface slot */
  /* 1.1: the child's own descriptor (id, version, ABI, options) and the file
   * it was loaded from; NULL from a 1.0 host. */
  const ssm_plugin_desc* desc;
  const char* library_path;

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_child;

typedef struct ssm_host {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  void* host_data; /* first argument of every service below */

  /* Memory per device; stream is a cudaStream_t for CUDA, NULL for CPU.
   * Returns NULL on failure. Alignment 0 means 64 bytes. */
  void* (*mem_alloc)(void* host_data, DLDevice device, uint64_t bytes, uint64_t alignment,
                     void* stream);
  void (*mem_free)(void* host_data, DLDevice device, void* ptr, void* stream);

  void (*log)(void* host_data, int32_t level, const char* plugin_id, const char* message);

  /* A status the host will free; message is copied. code is ssm_status_code.
   * A plugin that receives a status from a child reads it with status_code /
   * status_message and either returns it upward or frees it. */
  ssm_status* (*status_make)(void* host_data, int32_t code, const char* message);
  int32_t (*status_code)(void* host_data, const ssm_status* status);
  const char* (*status_message)(void* host_data, const ssm_status* status);
  void (*status_free)(void* host_data, ssm_status* status);

  /* Counter-based RNG (Philox-4x32-10): the n values depend only on (seed,
   * stream, offset), so results are reproducible across threads and resumes.
   * out is float32 or float64 on any device the host supports. */
  ssm_status* (*rng_fill)(void* host_data, uint64_t seed, uint64_t stream, uint64_t offset,
                          int32_t dist, DLTensor* out);

  /* Create another plugin by id (or alias, or layer+suffix) through the host
   * registry: how `--inner s6` and `--disc zoh` are combined at run time. */
  ssm_status* (*child_create)(void* host_data, int32_t kind, const char* id,
                              const ssm_config* config, ssm_child* out);
  void (*child_destroy)(void* host_data, void* handle);

  /* Optional extensions by id ("name/REV"); NULL when unsupported. */
  const void* (*get_extension)(void* host_data, const char* id);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_host;

/* The context of one call: where it runs and what for. */
typedef struct ssm_ctx {
  uint32_t struct_size;
  const ssm_host* host;
  DLDevice device;
  void* stream;      /* cudaStream_t on CUDA, NULL on CPU */
  int32_t training;  /* 1: cache what backward needs, apply dropout */
  int32_t threads;   /* CPU threads the call may use */
  uint64_t seed;     /* run seed, for host->rng_fill */
  uint64_t rng_offset; /* a counter unique to this call (e.g. step) */

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_ctx;

/* ------------------------------------------------------------ plugin entry */

struct ssm_plugin_desc {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  int32_t kind; /* ssm_kind */
  const char* id;          /* unique, e.g. "s4d" */
  const char* version;     /* the plugin's own version, e.g. "1.0.0" */
  const char* description; /* one line */
  const char* const* aliases; /* NULL-terminated, or NULL */
  const ssm_option_desc* options;
  uint32_t n_options;

  /* Called once after load (may be called again: must be idempotent).
   * plugin_path is the library's own file. */
  ssm_status* (*init)(const ssm_host* host, const char* plugin_path);
  void (*deinit)(void);

  /* The table for iface_id (SSM_IFACE_*), NULL if not provided. */
  const void* (*get_iface)(const char* iface_id);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
};

typedef const ssm_plugin_desc* (*ssm_plugin_entry_fn)(void);
#define SSM_PLUGIN_ENTRY_SYMBOL "ssm_plugin_entry"

/* --------------------------------------------------------------- layer */

/* Parameter flags: optimizer hints. */
#define SSM_PARAM_NO_WEIGHT_DECAY 1u /* exclude from weight decay */
#define SSM_PARAM_SSM 2u             /* an SSM parameter (A, dt, B, C) */
#define SSM_PARAM_KEEP_FP32 4u       /* 1.1: keep in float32 under mixed precision (A, dt, B) */

typedef struct ssm_param_desc {
  uint32_t struct_size;
  const char* name; /* stable within the layer, e.g. "log_dt" */
  int32_t ndim;
  int64_t shape[4];
  uint32_t flags;   /* SSM_PARAM_* */
  double lr_max;    /* > 0: cap, lr = min(run lr, lr_max); 0: the run's lr */
  double weight_decay; /* >= 0: its weight decay; < 0: the run's */

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_param_desc;

/* A sequence mixer (B, L, H) -> (B, L, H). The host allocates parameters and
 * their gradients (one tensor each, real, described by param_describe) and
 * passes them to every call in the same order. A layer caches what backward
 * needs in its instance during a training forward; backward refers to the
 * most recent training forward. Gradients are accumulated (+=) into dparams. */
typedef struct ssm_layer_iface {
  uint32_t struct_size;
  ssm_status* (*create)(const ssm_host* host, const ssm_config* config, void** out);
  void (*destroy)(void* self);

  uint32_t (*param_count)(void* self);
  ssm_status* (*param_describe)(void* self, uint32_t index, ssm_param_desc* out);
  ssm_status* (*param_init)(void* self, const ssm_ctx* ctx, DLTensor* const* params);

  ssm_status* (*forward)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                         const DLTensor* x, DLTensor* y);
  ssm_status* (*backward)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                          const DLTensor* dy, DLTensor* dx, DLTensor* const* dparams);

  /* Recurrent mode: a state for `batch` sequences, then one token at a time,
   * x_t and y_t of shape (B, H). Same results as forward, token by token. */
  ssm_status* (*state_create)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                              int64_t batch, void** state);
  ssm_status* (*step)(void* self, const ssm_ctx* ctx, DLTensor* const* params, void* state,
                      const DLTensor* x_t, DLTensor* y_t);
  void (*state_destroy)(void* self, void* state);

  /* Optional CUDA slots (NULL = CPU only); same contracts, device tensors. */
  ssm_status* (*forward_cuda)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                              const DLTensor* x, DLTensor* y);
  ssm_status* (*backward_cuda)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                               const DLTensor* dy, DLTensor* dx, DLTensor* const* dparams);
  ssm_status* (*step_cuda)(void* self, const ssm_ctx* ctx, DLTensor* const* params,
                           void* state, const DLTensor* x_t, DLTensor* y_t);

  /* Optional named extras (e.g. exporting the SSM kernel); NULL if none. */
  const void* (*get_extension)(void* self, const char* id);

  /* 1.1: 1 when forward, backward and step serve tensors of this device and
   * dtype (parameters and activations alike), else 0. Absent (NULL, or a 1.0
   * plugin): CPU float32 and float64, and CUDA float32 when forward_cuda is
   * set. The host asks before a run; `validate` checks every pair it serves. */
  int32_t (*supports)(void* self, DLDevice device, DLDataType dtype);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_layer_iface;

/* ------------------------------------------------------- discretization */

/* An elementwise map of z = dt*A (complex) to Abar = a(z) and the input
 * factor beta(z) (Bbar = dt*beta(z)*B), with their derivatives. Every output
 * may be NULL when not needed. All tensors have z's shape and dtype
 * (complex64 or complex128). */
typedef struct ssm_disc_iface {
  uint32_t struct_size;
  const char* suffix; /* one letter: "s4d" + "z" = s4d with this scheme */
  ssm_status* (*create)(const ssm_host* host, const ssm_config* config, void** out);
  void (*destroy)(void* self);
  ssm_status* (*eval)(void* self, const ssm_ctx* ctx, const DLTensor* z, DLTensor* a,
                      DLTensor* beta, DLTensor* da, DLTensor* dbeta);
  ssm_status* (*eval_cuda)(void* self, const ssm_ctx* ctx, const DLTensor* z, DLTensor* a,
                           DLTensor* beta, DLTensor* da, DLTensor* dbeta); /* optional */

  /* 1.1: named extras (e.g. the alpha of a generalized-bilinear scheme), NULL if none. */
  const void* (*get_extension)(void* self, const char* id);
  /* 1.1: 1 when eval serves z of this device and complex dtype. Absent: CPU
   * complex64 and complex128, and CUDA complex64 when eval_cuda is set. */
  int32_t (*supports)(void* self, DLDevice device, DLDataType dtype);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_disc_iface;

/* ------------------------------------------------------------- dataset */

typedef enum ssm_split {
  SSM_SPLIT_TRAIN = 0,
  SSM_SPLIT_TEST = 1
} ssm_split;

typedef struct ssm_dataset_info {
  uint32_t struct_size;
  int64_t n_train;
  int64_t n_test;
  int32_t example_ndim; /* e.g. 2 for 28x28 images */
  int64_t example_shape[4];
  DLDataType example_dtype; /* e.g. uint8 */
  int64_t n_classes;        /* 0 when unlabelled */

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_dataset_info;

/* Reads examples by index into host buffers: x (n, example_shape...) of
 * example_dtype and labels (n) int64 (labels may be NULL). */
typedef struct ssm_dataset_iface {
  uint32_t struct_size;
  ssm_status* (*create)(const ssm_host* host, const ssm_config* config, void** out);
  void (*destroy)(void* self);
  ssm_status* (*info)(void* self, ssm_dataset_info* out);
  ssm_status* (*read)(void* self, int32_t split, const int64_t* indices, int64_t n, DLTensor* x,
                      DLTensor* labels);

  /* 1.1: named extras, NULL if none. */
  const void* (*get_extension)(void* self, const char* id);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_dataset_iface;

/* ---------------------------------------------------------------- task */

typedef enum ssm_input_kind {
  SSM_INPUT_TOKENS = 1, /* x: (B, L) int32 token ids < vocab_size */
  SSM_INPUT_REAL = 2    /* x: (B, L, C) float32 */
} ssm_input_kind;

typedef enum ssm_readout {
  SSM_READOUT_MEAN = 1,   /* mean over L -> (B, H) */
  SSM_READOUT_LAST = 2,   /* last token -> (B, H) */
  SSM_READOUT_LAST_M = 3, /* last M tokens -> (B, M, H) */
  SSM_READOUT_ALL = 4     /* every token -> (B, L, H) */
} ssm_readout;

typedef enum ssm_loss {
  SSM_LOSS_CROSS_ENTROPY = 1, /* y: int32 class ids, (B) or (B, T) */
  SSM_LOSS_MSE = 2            /* y: float32 (B, T, n_out) */
} ssm_loss;

typedef enum ssm_metric {
  SSM_METRIC_ACCURACY = 1,
  SSM_METRIC_BPC = 2, /* bits per character */
  SSM_METRIC_MSE = 3
} ssm_metric;

/* What a task produces and how the host should build the model around it. */
typedef struct ssm_task_info {
  uint32_t struct_size;
  int32_t input_kind; /* ssm_input_kind */
  int64_t vocab_size; /* tokens: number of ids; real: 0 */
  int64_t in_channels; /* real: C; tokens: 0 */
  int64_t seq_len;    /* L */
  int64_t n_out;      /* classes (CE) or output channels (MSE) */
  int32_t readout;    /* ssm_readout */
  int64_t readout_m;  /* M for SSM_READOUT_LAST_M */
  int32_t loss;       /* ssm_loss */
  int32_t metric;     /* ssm_metric */
  int32_t has_mask;   /* 1: batch() fills a (B, T) float32 mask */
  int64_t n_train;    /* examples per epoch; 0 = generated without end */
  int64_t n_eval;     /* examples in the evaluation set */

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_task_info;

/* A task turns a dataset (or its own generator) into batches. batch() is a
 * pure function of (seed, split, index, batch_size): the data stream's state
 * is the batch index, which makes runs reproducible and resumable. Batch
 * `index` of the training split covers examples [index*B, (index+1)*B) of the
 * epoch-wise shuffled order. */
typedef struct ssm_task_iface {
  uint32_t struct_size;
  ssm_status* (*create)(const ssm_host* host, const ssm_config* config, void** out);
  void (*destroy)(void* self);
  ssm_status* (*info)(void* self, ssm_task_info* out);
  /* Run defaults (e.g. {"steps","2000"}), so that `--task X` alone is a
   * sensible run; user options win. NULL-terminated by a {NULL,NULL} pair. */
  const ssm_kv* (*run_defaults)(void* self);
  ssm_status* (*batch)(void* self, int32_t split, uint64_t seed, uint64_t index,
                       int64_t batch_size, DLTensor* x, DLTensor* y, DLTensor* mask);

  /* 1.1: named extras, NULL if none. */
  const void* (*get_extension)(void* self, const char* id);

  /* 1.2 (simulated): appended fields no 1.1 reader knows. Test plugins fill
   * them with non-zero junk wherever they write this struct. */
  uint64_t future_1_2;
  const void* future_ptr_1_2;
} ssm_task_iface;

/* The one symbol a plugin library exports. */
SSM_EXPORT const ssm_plugin_desc* ssm_plugin_entry(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SSM_ABI_H */
