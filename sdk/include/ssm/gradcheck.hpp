// ssm/gradcheck.hpp: the one gradient checker of the project, shared by the
// Catch2 tests (tests/gradcheck.hpp) and `ssmhost validate`. Header only,
// standard library only; installed with the SDK so plugin authors can use it
// in their own tests.
//
// Central finite differences of a scalar loss against an analytic gradient:
//
//   std::vector<double> w = ...;                            // what is perturbed
//   auto loss = [&] { forward(w, ...); return sum(y * probe); };
//   std::vector<double> g = ...;                            // d loss / d w by hand
//   ssm::gradcheck::Result r = ssm::gradcheck::check(w.data(), g.data(), w.size(), loss);
//   if (!r.passed(1e-5)) ... r.index, r.fd, r.analytic ...
//
// For each checked coordinate i (w[i] is perturbed in place and restored):
//
//   h_i   = step * max(1, |w[i]|)
//   fd_i  = (loss(w + h_i e_i) - loss(w - h_i e_i)) / (2 h_i)
//   err_i = |fd_i - analytic[i]| / max(|fd_i|, |analytic[i]|, floor)
//
// so large gradients are compared relatively and those below `floor`
// absolutely. A NaN or infinite error counts as worse than any number; the
// first such coordinate is reported.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ssm {
namespace gradcheck {

// Which coordinates of a tensor of n elements are checked.
struct Coords {
  enum Kind {
    kAll,     // every coordinate
    kSpread,  // at most `count`, evenly strided from 0 (deterministic)
    kSample,  // `count` parts of equal size, one seeded random coordinate in each
  };
  Kind kind = kAll;
  size_t count = 0;
  uint64_t seed = 0;

  static Coords all() { return {}; }
  static Coords spread(size_t count) { return {kSpread, count, 0}; }
  static Coords sample(size_t count, uint64_t seed = 1) { return {kSample, count, seed}; }
  // All when n <= limit, else `count` sampled (validate's default: 4096 / 512).
  static Coords all_up_to(size_t n, size_t limit, size_t count, uint64_t seed = 1) {
    return n <= limit ? all() : sample(count, seed);
  }
};

namespace detail {
// SplitMix64: a small stateless mixer, so the sampled coordinates do not
// depend on the standard library's distributions.
inline uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace detail

// The coordinates `c` selects among n, ascending and distinct.
inline std::vector<size_t> select(size_t n, const Coords& c) {
  std::vector<size_t> out;
  if (n == 0) return out;
  if (c.kind == Coords::kAll || c.count == 0 || c.count >= n) {
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = i;
    return out;
  }
  if (c.kind == Coords::kSpread) {
    const size_t stride = (n + c.count - 1) / c.count;
    for (size_t i = 0; i < n; i += stride) out.push_back(i);
    return out;
  }
  // kSample: part k is [k n / count, (k + 1) n / count); every part is non-empty
  // because count < n. Unlike a fixed stride this cannot alias with a channel
  // dimension: every channel is hit with about the same probability.
  out.reserve(c.count);
  for (size_t k = 0; k < c.count; ++k) {
    const size_t lo = k * n / c.count, hi = (k + 1) * n / c.count;
    out.push_back(lo + static_cast<size_t>(detail::mix(c.seed * 0x100000001B3ull + k) % (hi - lo)));
  }
  return out;
}

struct Options {
  double step = 1e-6;   // h_i = step * max(1, |w[i]|)
  double floor = 1e-3;  // below this magnitude gradients are compared absolutely
  Coords coords = Coords::all();
};

struct Result {
  double error = 0;     // the worst err_i (infinity when one was NaN or infinite)
  size_t index = 0;     // its coordinate (flat index into w)
  double fd = 0;        // the finite difference there
  double analytic = 0;  // the analytic gradient there
  size_t checked = 0;   // how many coordinates were checked
  size_t size = 0;      // of how many
  bool passed(double tol) const { return error <= tol; }
};

// err = |fd - analytic| / max(|fd|, |analytic|, floor); NaN becomes infinity.
inline double relative_error(double fd, double analytic, double floor) {
  const double err = std::abs(fd - analytic) / std::max({std::abs(fd), std::abs(analytic), floor});
  return std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
}

// Checks analytic[0..n) against central differences of loss() in w[0..n).
// loss must read w each time it is called. W and A may be float or double,
// but perturb float64 values: a float32 w cannot hold a step of 1e-6 (keep a
// float64 copy and let loss write it into the float32 tensor).
template <class W, class A, class Loss>
Result check(W* w, const A* analytic, size_t n, Loss&& loss, const Options& opt = {}) {
  Result r;
  r.size = n;
  bool first = true;
  for (size_t i : select(n, opt.coords)) {
    const W saved = w[i];
    const double h = opt.step * std::max(1.0, std::abs(static_cast<double>(saved)));
    w[i] = static_cast<W>(static_cast<double>(saved) + h);
    const double up = static_cast<double>(loss());
    w[i] = static_cast<W>(static_cast<double>(saved) - h);
    const double down = static_cast<double>(loss());
    w[i] = saved;
    const double fd = (up - down) / (2 * h), an = static_cast<double>(analytic[i]);
    const double err = relative_error(fd, an, opt.floor);
    ++r.checked;
    if (first || err > r.error) {
      first = false;
      r.error = err, r.index = i, r.fd = fd, r.analytic = an;
    }
  }
  return r;
}

template <class W, class A, class Loss>
Result check(std::vector<W>& w, const std::vector<A>& analytic, Loss&& loss, const Options& opt = {}) {
  return check(w.data(), analytic.data(), std::min(w.size(), analytic.size()), loss, opt);
}

// The flat (row-major) index `flat` of a tensor of this shape as "[1, 5, 37]".
inline std::string index_text(size_t flat, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size(), 0);
  uint64_t rest = flat;
  for (size_t d = shape.size(); d-- > 0;) {
    const uint64_t n = shape[d] > 0 ? static_cast<uint64_t>(shape[d]) : 1;
    idx[d] = static_cast<int64_t>(rest % n);
    rest /= n;
  }
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  if (idx.empty()) s += std::to_string(flat);
  return s + "]";
}

}  // namespace gradcheck
}  // namespace ssm
