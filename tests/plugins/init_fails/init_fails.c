/* A layer plugin whose init fails, e.g. because a file it needs is missing.
 * The host must report the plugin's message and never create the layer. */
#include <ssm/abi.h>

#include <string.h>

static ssm_status* create_never(const ssm_host* host, const ssm_config* config, void** out) {
  (void)config;
  *out = NULL;
  return host->status_make(host->host_data, SSM_ERR_INTERNAL, "test_init_fails: create called after a failed init");
}

static void destroy_nothing(void* self) { (void)self; }

/* The host asks for the kind's table before init, so a table must exist for
 * init to be reached at all. */
static const ssm_layer_iface layer_table = {
    .struct_size = sizeof(ssm_layer_iface),
    .create = create_never,
    .destroy = destroy_nothing,
};

static const void* get_iface(const char* iface_id) {
  return strcmp(iface_id, SSM_IFACE_LAYER) == 0 ? &layer_table : NULL;
}

static ssm_status* init(const ssm_host* host, const char* plugin_path) {
  (void)plugin_path;
  return host->status_make(host->host_data, SSM_ERR_IO,
                           "cannot open the lookup table test_init_fails.bin (failing on purpose)");
}

static const ssm_plugin_desc desc = {
    .struct_size = sizeof(ssm_plugin_desc),
    .abi_major = SSM_ABI_MAJOR,
    .abi_minor = SSM_ABI_MINOR,
    .kind = SSM_KIND_LAYER,
    .id = "test_init_fails",
    .version = "0.1.0",
    .description = "test-only layer whose init fails",
    .init = init,
    .get_iface = get_iface,
};

const ssm_plugin_desc* ssm_plugin_entry(void) { return &desc; }
