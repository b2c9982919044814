/* A valid shared library with one exported function and no plugin entry. */
__attribute__((visibility("default"))) int ssm_test_not_the_entry(void) { return 42; }
