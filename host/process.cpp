#include "process.hpp"

#include <malloc.h>

namespace ssmhost {
void tune_process() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
}  // namespace ssmhost
