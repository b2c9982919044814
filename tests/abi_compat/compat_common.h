/* Shared by the ABI compatibility test plugins (compat_layer.c, compat_disc.c).
 *
 * Plain C11 against the RAW ABI header, no SDK: the same sources are built
 * against the frozen ABI 1.0 header (sdk/abi/v1.0) and the simulated ABI 1.2
 * header (sdk/abi/v1.2-sim), see tests/abi_compat/CMakeLists.txt. Whatever
 * <ssm/abi.h> resolves to decides SSM_ABI_MINOR, and with it which fields
 * exist:
 *   - 1.1+ fields are written only #if SSM_ABI_MINOR >= 1 and read only
 *     through SSM_HAS_FIELD (the writer may be older);
 *   - the 1.2 build fills every simulated 1.2 field it writes with non-zero
 *     junk (COMPAT_FUTURE_INIT / compat_fill_future), so a 1.1 host that
 *     read past its own view of a struct would misbehave;
 *   - structs the host writes (ssm_host, ssm_ctx, ssm_config, ssm_child) must
 *     not claim a field the host's ABI does not have (compat_check_size). */
#ifndef SSM_COMPAT_COMMON_H
#define SSM_COMPAT_COMMON_H

#include <ssm/abi.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if !defined(SSM_ABI_MAJOR) || SSM_ABI_MAJOR != 1
#error "the compat plugins are written for ABI major 1"
#endif
#if SSM_ABI_MINOR != 0 && SSM_ABI_MINOR != 2
#error "the compat plugins are built against sdk/abi/v1.0 or sdk/abi/v1.2-sim only (check the include order)"
#endif

#ifndef COMPAT_ID
#error "build with -DCOMPAT_ID=\"...\" (tests/abi_compat/CMakeLists.txt)"
#endif

/* ABI 1.0 had no SSM_HAS_FIELD; a 1.0 plugin may still check struct_size the
 * same way (it reads 1.0 fields only, which every 1.x writer has). */
#ifndef SSM_HAS_FIELD
#define SSM_HAS_FIELD(ptr, Type, field) \
  ((ptr) != NULL && (size_t)((ptr)->struct_size) >= offsetof(Type, field) + sizeof(((Type*)0)->field))
#endif

/* Hidden: the version script exports ssm_plugin_entry only, but a plain C
 * build has no visibility preset unless CMake gives one, so say it here too. */
#define COMPAT_INTERNAL __attribute__((visibility("hidden")))

#if SSM_ABI_MINOR >= 2
/* Junk for the simulated 1.2 fields: non-zero (so "present"), and a pointer
 * that faults if anyone follows it. */
#define COMPAT_JUNK_U64 UINT64_C(0x5a5a5a5a5a5a5a5a)
#define COMPAT_JUNK_PTR ((const void*)(uintptr_t)UINT64_C(0xdead0000beef0000))
#define COMPAT_FUTURE_INIT , .future_1_2 = COMPAT_JUNK_U64, .future_ptr_1_2 = COMPAT_JUNK_PTR
#define compat_fill_future(s) ((s)->future_1_2 = COMPAT_JUNK_U64, (s)->future_ptr_1_2 = COMPAT_JUNK_PTR)
#else
#define COMPAT_FUTURE_INIT
#define compat_fill_future(s) ((void)(s))
#endif

/* A status made by the host, with a printf-style message naming the plugin. */
static inline ssm_status* compat_error(const ssm_host* host, int32_t code, const char* fmt, ...) {
  char msg[512];
  int n = snprintf(msg, sizeof msg, "%s: ", COMPAT_ID);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  if (!host || !host->status_make) return NULL; /* cannot happen with a valid host */
  return host->status_make(host->host_data, code, msg);
}

/* A host table this plugin can use: major 1, every 1.0 slot present. */
static inline int compat_host_ok(const ssm_host* host) {
  return host && host->abi_major == SSM_ABI_MAJOR && SSM_HAS_FIELD(host, ssm_host, get_extension) &&
         host->status_make && host->mem_alloc && host->mem_free;
}

/* A struct the host wrote must not claim more than the host's ABI has: a 1.1
 * host's struct_size must end before the first 1.2 field. (`first_future` is
 * offsetof(Type, future_1_2) in the 1.2 build; the 1.0 build knows nothing
 * past its own fields, so it checks nothing.) Returns NULL or a status. */
static inline ssm_status* compat_check_size(const ssm_host* host, const char* what, uint32_t struct_size,
                                            size_t first_future) {
#if SSM_ABI_MINOR >= 2
  if (host->abi_minor < 2 && struct_size > first_future)
    return compat_error(host, SSM_ERR_INTERNAL,
                        "the host has ABI %u.%u but its %s has struct_size %u, which covers the 1.2 field at offset %zu",
                        host->abi_major, host->abi_minor, what, struct_size, first_future);
#else
  (void)host, (void)what, (void)struct_size, (void)first_future;
#endif
  return NULL;
}
#if SSM_ABI_MINOR >= 2
#define COMPAT_CHECK_SIZE(host, Type, ptr) compat_check_size((host), #Type, (ptr)->struct_size, offsetof(Type, future_1_2))
#else
#define COMPAT_CHECK_SIZE(host, Type, ptr) compat_check_size((host), #Type, (ptr)->struct_size, 0)
#endif

/* Option values as text, by key; NULL when absent. */
static inline const char* compat_config_get(const ssm_config* config, const char* key) {
  if (!config || !SSM_HAS_FIELD(config, ssm_config, items)) return NULL;
  for (uint32_t i = 0; i < config->count; ++i)
    if (config->items[i].key && strcmp(config->items[i].key, key) == 0) return config->items[i].value;
  return NULL;
}

static inline int compat_is_cpu(const DLTensor* t) { return t && t->device.device_type == kDLCPU; }

static inline int64_t compat_numel(const DLTensor* t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}

/* Dense row-major: strides NULL, or equal to the compact ones. */
static inline int compat_dense(const DLTensor* t) {
  if (!t->strides) return 1;
  int64_t s = 1;
  for (int32_t i = t->ndim - 1; i >= 0; --i) {
    if (t->shape[i] != 1 && t->strides[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

static inline int compat_same_shape(const DLTensor* a, const DLTensor* b) {
  if (a->ndim != b->ndim) return 0;
  for (int32_t i = 0; i < a->ndim; ++i)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

static inline int compat_dtype_is(const DLTensor* t, uint8_t code, uint8_t bits) {
  return t->dtype.code == code && t->dtype.bits == bits && t->dtype.lanes == 1;
}

static inline void* compat_data(const DLTensor* t) { return (char*)t->data + t->byte_offset; }

#endif /* SSM_COMPAT_COMMON_H */
