// CPU threading for the kernels (OpenMP underneath).
#pragma once

namespace ssm::kernels {
// Sets the number of OpenMP threads kernels use (<= 0: all cores).
void set_threads(int n);
int threads();
}  // namespace ssm::kernels
