// Thread-count control shared by every CPU kernel.
#include "ssm/kernels/parallel.hpp"

#include <omp.h>

namespace ssm::kernels {
void set_threads(int n) { omp_set_num_threads(n > 0 ? n : omp_get_num_procs()); }
int threads() { return omp_get_max_threads(); }
}  // namespace ssm::kernels
