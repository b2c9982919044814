// The S6 selective scan's forward (Mamba's own discretization, the fast path)
// against the machine's peak: a large float32 GEMM (Eigen) timed in the same
// invocation, with the same thread counts.
//
//   bench_s6_scan [--batch 64] [--channels 128] [--state 16] [--lengths 256,784,4096]
//                 [--threads 1,2] [--reps 5]
//
// FLOPs of the scan: 6 per state element and step (delta*A; a*h; (delta*u)*B
// as a fused add; C*h accumulated), e^z not counted (it is a polynomial of
// about 14 more in fast_exp). GEMM: 2*M*N*K. Both as the median of --reps.
#include <Eigen/Dense>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "selective_scan.hpp"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<int64_t> ints(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string v;
  while (std::getline(ss, v, ',')) out.push_back(std::stoll(v));
  return out;
}

template <class F>
double median_seconds(int reps, F&& f) {
  f();  // warm-up: pages touched, caches filled
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// A fixed pseudo-random fill in [lo, hi).
void fill(std::vector<float>& v, float lo, float hi, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (float& e : v) {
    x = x * 1664525u + 1013904223u;
    e = lo + (hi - lo) * static_cast<float>(x >> 8) / 16777216.0f;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a = {{"batch", "64"},  {"channels", "128"}, {"state", "16"},
                                          {"lengths", "256,784,4096"}, {"threads", "1,2"}, {"reps", "5"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      std::fprintf(stderr, "bench_s6_scan: unknown option %s (options: --batch --channels --state --lengths "
                   "--threads --reps)\n", argv[i]);
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  const int64_t B = std::stoll(a["batch"]), D = std::stoll(a["channels"]), N = std::stoll(a["state"]);
  const int reps = std::stoi(a["reps"]);

  std::printf("| threads | what | shape | median ms | GFLOP/s | share of GEMM peak |\n|---:|---|---|---:|---:|---:|\n");
  for (int64_t threads : ints(a["threads"])) {
    omp_set_num_threads(static_cast<int>(threads));
    Eigen::setNbThreads(static_cast<int>(threads));
    // Peak: a 2048 x 2048 x 2048 float32 GEMM.
    const int64_t G = 2048;
    Eigen::MatrixXf x = Eigen::MatrixXf::Random(G, G), w = Eigen::MatrixXf::Random(G, G), y(G, G);
    const double tg = median_seconds(reps, [&] { y.noalias() = x * w; });
    const double peak = 2.0 * G * G * G / tg / 1e9;
    std::printf("| %lld | GEMM (Eigen) | %lld x %lld x %lld | %.1f | %.1f | 1.00 |\n", static_cast<long long>(threads),
                static_cast<long long>(G), static_cast<long long>(G), static_cast<long long>(G), tg * 1e3, peak);
    for (int64_t L : ints(a["lengths"])) {
      s6::Shape s;
      s.B = B, s.L = L, s.D = D, s.N = N;
      std::vector<float> u(B * L * D), delta(B * L * D), A(D * N), Bm(B * L * N), Cm(B * L * N), Dskip(D), out(B * L * D);
      fill(u, -1, 1, 1), fill(delta, 0.001f, 0.1f, 2), fill(Bm, -1, 1, 3), fill(Cm, -1, 1, 4), fill(Dskip, -1, 1, 5);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t n = 0; n < N; ++n) A[d * N + n] = -static_cast<float>(n + 1);  // S4D-Real, as S6 starts
      s6::Inputs<float> in{u.data(), delta.data(), A.data(), Bm.data(), Cm.data(), Dskip.data()};
      const s6::Scheme<float> mamba{};
      const double ts = median_seconds(
          reps, [&] { s6::scan_forward<float>(s, in, mamba, out.data(), nullptr, nullptr, static_cast<int>(threads)); });
      const double gflops = 6.0 * B * L * D * N / ts / 1e9;
      std::printf("| %lld | scan forward | B %lld, L %lld, D %lld, N %lld | %.2f | %.2f | %.3f |\n",
                  static_cast<long long>(threads), static_cast<long long>(B), static_cast<long long>(L),
                  static_cast<long long>(D), static_cast<long long>(N), ts * 1e3, gflops, gflops / peak);
    }
  }
  return 0;
}
