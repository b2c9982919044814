#include "cli.hpp"

#include <cstdio>

namespace ssmhost {
int cli_main(int, char**) {
  std::puts("ssmhost " SSMHOST_VERSION);
  return 0;
}
}  // namespace ssmhost
