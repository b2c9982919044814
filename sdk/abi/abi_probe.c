/*
 * abi_probe.c — a shared library that exists only to have its ABI recorded.
 *
 * abidw describes the types reachable from a library's exported functions,
 * so the one exported function below takes every struct (by pointer), every
 * enum (by value) and the entry function type of ssm/abi.h. Built with -g
 * -Og as the test target ssm_abi_probe; its abidw output is compared with
 * the committed baseline ssm_abi.baseline.xml by the abi_baseline test (see
 * README.md). A new struct or enum in abi.h must be added here too: the test
 * fails when abi.h names a type this file does not mention.
 *
 * Also compiled as strict C11 by the abi_c11 test: abi.h must stay C.
 */
#include <ssm/abi.h>

SSM_EXPORT void ssm_abi_probe(
    /* opaque handle and entry point */
    const ssm_status* status, ssm_plugin_entry_fn entry,
    /* plugin descriptor and options */
    const ssm_plugin_desc* plugin_desc, const ssm_option_desc* option_desc, const ssm_kv* kv,
    const ssm_config* config,
    /* host services and call context */
    const ssm_host* host, const ssm_ctx* ctx, const ssm_child* child,
    /* the four kinds' tables and the records they fill */
    const ssm_layer_iface* layer_iface, const ssm_param_desc* param_desc, const ssm_disc_iface* disc_iface,
    const ssm_dataset_iface* dataset_iface, const ssm_dataset_info* dataset_info, const ssm_task_iface* task_iface,
    const ssm_task_info* task_info,
    /* every enum */
    ssm_status_code status_code, ssm_kind kind, ssm_option_type option_type, ssm_log_level log_level,
    ssm_rng_dist rng_dist, ssm_split split, ssm_input_kind input_kind, ssm_readout readout, ssm_loss loss,
    ssm_metric metric);

void ssm_abi_probe(const ssm_status* status, ssm_plugin_entry_fn entry, const ssm_plugin_desc* plugin_desc,
                   const ssm_option_desc* option_desc, const ssm_kv* kv, const ssm_config* config,
                   const ssm_host* host, const ssm_ctx* ctx, const ssm_child* child,
                   const ssm_layer_iface* layer_iface, const ssm_param_desc* param_desc,
                   const ssm_disc_iface* disc_iface, const ssm_dataset_iface* dataset_iface,
                   const ssm_dataset_info* dataset_info, const ssm_task_iface* task_iface,
                   const ssm_task_info* task_info, ssm_status_code status_code, ssm_kind kind,
                   ssm_option_type option_type, ssm_log_level log_level, ssm_rng_dist rng_dist, ssm_split split,
                   ssm_input_kind input_kind, ssm_readout readout, ssm_loss loss, ssm_metric metric) {
  /* Never called: the signature is the point. */
  (void)status, (void)entry, (void)plugin_desc, (void)option_desc, (void)kv, (void)config;
  (void)host, (void)ctx, (void)child, (void)layer_iface, (void)param_desc, (void)disc_iface;
  (void)dataset_iface, (void)dataset_info, (void)task_iface, (void)task_info;
  (void)status_code, (void)kind, (void)option_type, (void)log_level, (void)rng_dist, (void)split;
  (void)input_kind, (void)readout, (void)loss, (void)metric;
}
