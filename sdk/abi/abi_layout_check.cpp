// abi_layout_check.cpp — the byte layout of every struct that crosses the
// plugin boundary, pinned at compile time (the ONNX Runtime habit of
// static_assert(offsetof(OrtApi, X) / sizeof(void*) == N)).
//
// A plugin built against an older SDK reads these structs at these offsets,
// so none of them may move. A MINOR ABI version may only append fields at
// the end of a struct: add its line at the end of that struct's block and
// update the struct's size line. Any other edit here is an ABI break and
// needs SSM_ABI_MAJOR + 1.
//
// The offsets are those of LP64 targets (x86-64, aarch64 Linux); other data
// models check the enum values and constants only. Compiled by the
// ssm_abi_layout_check target (tests/sdk_tests.cmake) and by the abi_c11 test
// with clang++.
#include <ssm/abi.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#define SSM_PIN(T, field, offset) \
  static_assert(offsetof(T, field) == (offset), #T "." #field " moved: the ABI is broken")
#define SSM_SIZE(T, bytes) \
  static_assert(sizeof(T) == (bytes), "sizeof(" #T ") changed: append-only (update it) or an ABI break")
#define SSM_VALUE(name, value) static_assert((name) == (value), #name " changed value: the ABI is broken")

// ------------------------------------------------------- versions and ids

SSM_VALUE(SSM_ABI_MAJOR, 1);
static_assert(SSM_ABI_MINOR >= 0, "SSM_ABI_MINOR only grows");

constexpr bool same_text(const char* a, const char* b) { return *a == *b && (*a == 0 || same_text(a + 1, b + 1)); }
static_assert(same_text(SSM_IFACE_LAYER, "ssm.layer/1"), "interface id changed");
static_assert(same_text(SSM_IFACE_DISC, "ssm.disc/1"), "interface id changed");
static_assert(same_text(SSM_IFACE_DATASET, "ssm.dataset/1"), "interface id changed");
static_assert(same_text(SSM_IFACE_TASK, "ssm.task/1"), "interface id changed");
static_assert(same_text(SSM_PLUGIN_ENTRY_SYMBOL, "ssm_plugin_entry"), "entry symbol changed");

// ------------------------------------------------------------ enum values

SSM_VALUE(SSM_OK, 0);
SSM_VALUE(SSM_ERR_INVALID_ARGUMENT, 1);
SSM_VALUE(SSM_ERR_NOT_FOUND, 2);
SSM_VALUE(SSM_ERR_UNSUPPORTED, 3);
SSM_VALUE(SSM_ERR_IO, 4);
SSM_VALUE(SSM_ERR_INTERNAL, 5);
SSM_VALUE(SSM_KIND_LAYER, 1);
SSM_VALUE(SSM_KIND_DISC, 2);
SSM_VALUE(SSM_KIND_DATASET, 3);
SSM_VALUE(SSM_KIND_TASK, 4);
SSM_VALUE(SSM_OPT_INT, 1);
SSM_VALUE(SSM_OPT_FLOAT, 2);
SSM_VALUE(SSM_OPT_BOOL, 3);
SSM_VALUE(SSM_OPT_STRING, 4);
SSM_VALUE(SSM_LOG_DEBUG, 0);
SSM_VALUE(SSM_LOG_INFO, 1);
SSM_VALUE(SSM_LOG_WARN, 2);
SSM_VALUE(SSM_LOG_ERROR, 3);
SSM_VALUE(SSM_RNG_UNIFORM, 1);
SSM_VALUE(SSM_RNG_NORMAL, 2);
SSM_VALUE(SSM_PARAM_NO_WEIGHT_DECAY, 1u);
SSM_VALUE(SSM_PARAM_SSM, 2u);
SSM_VALUE(SSM_PARAM_KEEP_FP32, 4u);  // 1.1
SSM_VALUE(SSM_SPLIT_TRAIN, 0);
SSM_VALUE(SSM_SPLIT_TEST, 1);
SSM_VALUE(SSM_INPUT_TOKENS, 1);
SSM_VALUE(SSM_INPUT_REAL, 2);
SSM_VALUE(SSM_READOUT_MEAN, 1);
SSM_VALUE(SSM_READOUT_LAST, 2);
SSM_VALUE(SSM_READOUT_LAST_M, 3);
SSM_VALUE(SSM_READOUT_ALL, 4);
SSM_VALUE(SSM_LOSS_CROSS_ENTROPY, 1);
SSM_VALUE(SSM_LOSS_MSE, 2);
SSM_VALUE(SSM_METRIC_ACCURACY, 1);
SSM_VALUE(SSM_METRIC_BPC, 2);
SSM_VALUE(SSM_METRIC_MSE, 3);

// Enums cross the boundary as int32_t fields; a 4-byte enum keeps both sides equal.
static_assert(sizeof(ssm_kind) == 4 && sizeof(ssm_status_code) == 4, "enums must stay int-sized");

// ---------------------------------------------------------- struct layout

#if UINTPTR_MAX == UINT64_MAX && LONG_MAX == INT64_MAX  // LP64


SSM_SIZE(ssm_option_desc, 48);
  SSM_PIN(ssm_option_desc, struct_size, 0);
  SSM_PIN(ssm_option_desc, name, 8);
  SSM_PIN(ssm_option_desc, type, 16);
  SSM_PIN(ssm_option_desc, default_value, 24);
  SSM_PIN(ssm_option_desc, help, 32);
  SSM_PIN(ssm_option_desc, plugin_kind, 40);  // 1.1

SSM_SIZE(ssm_kv, 16);
  SSM_PIN(ssm_kv, key, 0);
  SSM_PIN(ssm_kv, value, 8);

SSM_SIZE(ssm_config, 16);
  SSM_PIN(ssm_config, struct_size, 0);
  SSM_PIN(ssm_config, count, 4);
  SSM_PIN(ssm_config, items, 8);

SSM_SIZE(ssm_child, 48);
  SSM_PIN(ssm_child, struct_size, 0);
  SSM_PIN(ssm_child, handle, 8);
  SSM_PIN(ssm_child, iface, 16);
  SSM_PIN(ssm_child, instance, 24);
  SSM_PIN(ssm_child, desc, 32);  // 1.1
  SSM_PIN(ssm_child, library_path, 40);  // 1.1

SSM_SIZE(ssm_host, 112);
  SSM_PIN(ssm_host, struct_size, 0);
  SSM_PIN(ssm_host, abi_major, 4);
  SSM_PIN(ssm_host, abi_minor, 8);
  SSM_PIN(ssm_host, host_data, 16);
  SSM_PIN(ssm_host, mem_alloc, 24);
  SSM_PIN(ssm_host, mem_free, 32);
  SSM_PIN(ssm_host, log, 40);
  SSM_PIN(ssm_host, status_make, 48);
  SSM_PIN(ssm_host, status_code, 56);
  SSM_PIN(ssm_host, status_message, 64);
  SSM_PIN(ssm_host, status_free, 72);
  SSM_PIN(ssm_host, rng_fill, 80);
  SSM_PIN(ssm_host, child_create, 88);
  SSM_PIN(ssm_host, child_destroy, 96);
  SSM_PIN(ssm_host, get_extension, 104);

SSM_SIZE(ssm_ctx, 56);
  SSM_PIN(ssm_ctx, struct_size, 0);
  SSM_PIN(ssm_ctx, host, 8);
  SSM_PIN(ssm_ctx, device, 16);
  SSM_PIN(ssm_ctx, stream, 24);
  SSM_PIN(ssm_ctx, training, 32);
  SSM_PIN(ssm_ctx, threads, 36);
  SSM_PIN(ssm_ctx, seed, 40);
  SSM_PIN(ssm_ctx, rng_offset, 48);

SSM_SIZE(ssm_plugin_desc, 88);
  SSM_PIN(ssm_plugin_desc, struct_size, 0);
  SSM_PIN(ssm_plugin_desc, abi_major, 4);
  SSM_PIN(ssm_plugin_desc, abi_minor, 8);
  SSM_PIN(ssm_plugin_desc, kind, 12);
  SSM_PIN(ssm_plugin_desc, id, 16);
  SSM_PIN(ssm_plugin_desc, version, 24);
  SSM_PIN(ssm_plugin_desc, description, 32);
  SSM_PIN(ssm_plugin_desc, aliases, 40);
  SSM_PIN(ssm_plugin_desc, options, 48);
  SSM_PIN(ssm_plugin_desc, n_options, 56);
  SSM_PIN(ssm_plugin_desc, init, 64);
  SSM_PIN(ssm_plugin_desc, deinit, 72);
  SSM_PIN(ssm_plugin_desc, get_iface, 80);

SSM_SIZE(ssm_param_desc, 80);
  SSM_PIN(ssm_param_desc, struct_size, 0);
  SSM_PIN(ssm_param_desc, name, 8);
  SSM_PIN(ssm_param_desc, ndim, 16);
  SSM_PIN(ssm_param_desc, shape, 24);
  SSM_PIN(ssm_param_desc, flags, 56);
  SSM_PIN(ssm_param_desc, lr_max, 64);
  SSM_PIN(ssm_param_desc, weight_decay, 72);

SSM_SIZE(ssm_layer_iface, 128);
  SSM_PIN(ssm_layer_iface, struct_size, 0);
  SSM_PIN(ssm_layer_iface, create, 8);
  SSM_PIN(ssm_layer_iface, destroy, 16);
  SSM_PIN(ssm_layer_iface, param_count, 24);
  SSM_PIN(ssm_layer_iface, param_describe, 32);
  SSM_PIN(ssm_layer_iface, param_init, 40);
  SSM_PIN(ssm_layer_iface, forward, 48);
  SSM_PIN(ssm_layer_iface, backward, 56);
  SSM_PIN(ssm_layer_iface, state_create, 64);
  SSM_PIN(ssm_layer_iface, step, 72);
  SSM_PIN(ssm_layer_iface, state_destroy, 80);
  SSM_PIN(ssm_layer_iface, forward_cuda, 88);
  SSM_PIN(ssm_layer_iface, backward_cuda, 96);
  SSM_PIN(ssm_layer_iface, step_cuda, 104);
  SSM_PIN(ssm_layer_iface, get_extension, 112);
  SSM_PIN(ssm_layer_iface, supports, 120);  // 1.1

SSM_SIZE(ssm_disc_iface, 64);
  SSM_PIN(ssm_disc_iface, struct_size, 0);
  SSM_PIN(ssm_disc_iface, suffix, 8);
  SSM_PIN(ssm_disc_iface, create, 16);
  SSM_PIN(ssm_disc_iface, destroy, 24);
  SSM_PIN(ssm_disc_iface, eval, 32);
  SSM_PIN(ssm_disc_iface, eval_cuda, 40);
  SSM_PIN(ssm_disc_iface, get_extension, 48);  // 1.1
  SSM_PIN(ssm_disc_iface, supports, 56);  // 1.1

SSM_SIZE(ssm_dataset_info, 80);
  SSM_PIN(ssm_dataset_info, struct_size, 0);
  SSM_PIN(ssm_dataset_info, n_train, 8);
  SSM_PIN(ssm_dataset_info, n_test, 16);
  SSM_PIN(ssm_dataset_info, example_ndim, 24);
  SSM_PIN(ssm_dataset_info, example_shape, 32);
  SSM_PIN(ssm_dataset_info, example_dtype, 64);
  SSM_PIN(ssm_dataset_info, n_classes, 72);

SSM_SIZE(ssm_dataset_iface, 48);
  SSM_PIN(ssm_dataset_iface, struct_size, 0);
  SSM_PIN(ssm_dataset_iface, create, 8);
  SSM_PIN(ssm_dataset_iface, destroy, 16);
  SSM_PIN(ssm_dataset_iface, info, 24);
  SSM_PIN(ssm_dataset_iface, read, 32);
  SSM_PIN(ssm_dataset_iface, get_extension, 40);  // 1.1

SSM_SIZE(ssm_task_info, 88);
  SSM_PIN(ssm_task_info, struct_size, 0);
  SSM_PIN(ssm_task_info, input_kind, 4);
  SSM_PIN(ssm_task_info, vocab_size, 8);
  SSM_PIN(ssm_task_info, in_channels, 16);
  SSM_PIN(ssm_task_info, seq_len, 24);
  SSM_PIN(ssm_task_info, n_out, 32);
  SSM_PIN(ssm_task_info, readout, 40);
  SSM_PIN(ssm_task_info, readout_m, 48);
  SSM_PIN(ssm_task_info, loss, 56);
  SSM_PIN(ssm_task_info, metric, 60);
  SSM_PIN(ssm_task_info, has_mask, 64);
  SSM_PIN(ssm_task_info, n_train, 72);
  SSM_PIN(ssm_task_info, n_eval, 80);

SSM_SIZE(ssm_task_iface, 56);
  SSM_PIN(ssm_task_iface, struct_size, 0);
  SSM_PIN(ssm_task_iface, create, 8);
  SSM_PIN(ssm_task_iface, destroy, 16);
  SSM_PIN(ssm_task_iface, info, 24);
  SSM_PIN(ssm_task_iface, run_defaults, 32);
  SSM_PIN(ssm_task_iface, batch, 40);
  SSM_PIN(ssm_task_iface, get_extension, 48);  // 1.1

SSM_SIZE(DLTensor, 48);
  SSM_PIN(DLTensor, data, 0);
  SSM_PIN(DLTensor, device, 8);
  SSM_PIN(DLTensor, ndim, 16);
  SSM_PIN(DLTensor, dtype, 20);
  SSM_PIN(DLTensor, shape, 24);
  SSM_PIN(DLTensor, strides, 32);
  SSM_PIN(DLTensor, byte_offset, 40);

SSM_SIZE(DLDevice, 8);

SSM_SIZE(DLDataType, 4);

#endif  // LP64
