/* A plugin from the future: abi_major = SSM_ABI_MAJOR + 1. The host must refuse
 * it on the version fields alone, so nothing else is filled in. */
#include <ssm/abi.h>

static const ssm_plugin_desc desc = {
    .struct_size = sizeof(ssm_plugin_desc),
    .abi_major = SSM_ABI_MAJOR + 1,  /* the point of this plugin */
    .abi_minor = 0,
    .kind = SSM_KIND_LAYER,
    .id = "test_abi_next",
    .version = "0.1.0",
    .description = "test-only plugin built for the next ABI major",
};

const ssm_plugin_desc* ssm_plugin_entry(void) { return &desc; }
