// Inverted dropout driven by the counter-based Philox RNG (philox.hpp): the
// mask of element i depends only on (seed, stream, offset + i), never on the
// thread count or on what ran before. T = float or double.
#pragma once

#include <cstdint>

namespace ssm::kernels {

// keep[i] = philox_uniform(seed, stream, offset + i) >= p; y[i] = x[i] * keep[i] * (1 / (1 - p))
// (a multiply, as in PyTorch: a dropped inf or NaN still gives NaN).
// p == 0 copies x and sets every keep[i] to 1; p == 1 drops everything (scale 0).
// p outside [0, 1] is an ssm::Error. y may alias x.
template <typename T>
void dropout_forward(const T* x, T* y, uint8_t* keep, int64_t n, double p, uint64_t seed, uint64_t stream,
                     uint64_t offset);

// dx[i] = dy[i] * keep[i] * (1 / (1 - p)) (overwritten; dx may alias dy).
template <typename T>
void dropout_backward(const T* dy, const uint8_t* keep, T* dx, int64_t n, double p);

}  // namespace ssm::kernels
