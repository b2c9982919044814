/* Looks like a plugin, but its entry calls a function that exists nowhere, so
 * the library cannot be loaded with every symbol bound up front. */
#include <ssm/abi.h>

const ssm_plugin_desc* ssm_test_missing_function(void); /* defined nowhere */

const ssm_plugin_desc* ssm_plugin_entry(void) { return ssm_test_missing_function(); }
