// The s6 layer plugin (Mamba's selective SSM) and its scan: every gradient
// against finite differences (float64) with Mamba's discretization and with
// plugin schemes, the chunked scan against the plain recurrence, chunk sizes
// that do not change the result, the recurrent mode against forward, what a
// training forward keeps (no (B, L, D, N) tensor), the initialisation and
// hints of Mamba, option errors, and a small learning run on selective copy.
#include <catch2/catch.hpp>

#include <malloc.h>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "../plugins/layers/s6/selective_scan.hpp"
#include "gradcheck.hpp"
#include "registry.hpp"
#include "runlog.hpp"
#include "layer_harness.hpp"
#include "test_support.hpp"

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

using ssm_test::Harness;

// Moves the parameters off their initial values so that every gradient is
// generic: A off its grid, D off 1, dt spread over slow and fast channels.
void perturb(Harness<double>& hs, uint32_t seed) {
  for (const char* name : {"A_log", "D", "dt_proj.bias"}) {
    auto& v = hs.param(name);
    const auto noise = ssm_test::random_vector(v.size(), seed++, 0.3);
    for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
  }
  auto& bias = hs.param("dt_proj.bias");
  for (size_t d = 0; d < bias.size(); ++d) bias[d] += -3.0 + 4.0 * double(d) / double(bias.size());
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return err / scale;
}

ssmhost::KV options(int64_t D, int64_t N, const std::string& disc, const std::string& block, int64_t chunk) {
  return {{"d_model", std::to_string(D)}, {"d_state", std::to_string(N)}, {"disc", disc},
          {"block", block},               {"chunk", std::to_string(chunk)}};
}

size_t heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

}  // namespace

TEST_CASE("s6 gradients match finite differences (float64)", "[s6]") {
  const int64_t B = 2, L = 13;
  struct Case {
    std::string disc, block;
    int64_t D, N, chunk;
  };
  for (const Case& c : {Case{"s6disc", "linear", 3, 4, 5}, Case{"s6disc", "none", 3, 4, 64},
                        Case{"s6disc", "none", 70, 3, 4},  // two tiles of channels (64 + 6)
                        Case{"zoh", "linear", 3, 4, 5}, Case{"bilinear", "none", 3, 4, 6},
                        Case{"backward_euler", "none", 3, 4, 5}}) {
    SECTION(c.disc + ", block " + c.block + ", D " + std::to_string(c.D) + ", chunk " + std::to_string(c.chunk)) {
      Harness<double> hs("s6", options(c.D, c.N, c.disc, c.block, c.chunk));
      perturb(hs, 11);
      const int64_t H = c.D;
      std::vector<double> x = ssm_test::random_vector(B * L * H, 1);
      std::vector<double> probe = ssm_test::random_vector(B * L * H, 2);
      auto loss = [&] { return ssm_test::dot(hs.forward(x, B, L, true), probe); };
      // The finite differences' rounding grows with the loss's terms (about
      // 5e-10 sum |y probe| for h = 1e-6, as validate measures): below that,
      // gradients are compared absolutely.
      double terms = 0;
      const std::vector<double> y = hs.forward(x, B, L, true);
      for (size_t i = 0; i < y.size(); ++i) terms += std::abs(y[i] * probe[i]);
      const double floor = std::max(1e-3, 5e-10 * terms / 1e-6);
      const std::vector<double> dx = hs.backward(probe, B, L);
      ssm_test::check_gradient("dx", x, dx, loss, 1e-6, 1e-6, 200, floor);
      for (size_t i = 0; i < hs.info.size(); ++i)
        ssm_test::check_gradient("d" + hs.info[i].name, hs.values[i], hs.grads[i], loss, 1e-6, 1e-6, 200, floor);
    }
  }
}

TEST_CASE("the chunked scan equals the plain recurrence", "[s6]") {
  // Shapes that cut chunks and tiles unevenly: D = 67 is a full tile
  // (s6::kDTile = 64) and 3 channels; L = 37 with chunks of 8 leaves 5.
  static_assert(s6::kDTile == 64, "the shapes of the s6 tests cut tiles of 64 channels unevenly");
  s6::Shape s;
  s.B = 2, s.L = 37, s.D = 67, s.N = 5;
  const int64_t n = s.B * s.L * s.D, nbn = s.B * s.L * s.N;
  std::vector<double> u = ssm_test::random_vector(n, 1), delta = ssm_test::random_vector(n, 2, 0.5);
  for (double& d : delta) d = 0.05 + std::abs(d);
  std::vector<double> A(s.D * s.N), Bm = ssm_test::random_vector(nbn, 3), Cm = ssm_test::random_vector(nbn, 4);
  for (int64_t d = 0; d < s.D; ++d)
    for (int64_t q = 0; q < s.N; ++q) A[d * s.N + q] = -(q + 1.0) * (1 + 0.01 * d);
  const std::vector<double> Dskip = ssm_test::random_vector(s.D, 5);
  const s6::Inputs<double> in{u.data(), delta.data(), A.data(), Bm.data(), Cm.data(), Dskip.data()};

  // Mamba's scheme (the fast path) and ZOH through a callback (the plugin path).
  s6::Scheme<double> fast, zoh;
  zoh.eval = [](const double* z, int64_t m, double* a, double* beta, double* da, double* dbeta) {
    for (int64_t i = 0; i < m; ++i) {
      a[i] = std::exp(z[i]);
      beta[i] = std::expm1(z[i]) / z[i];
      if (da) da[i] = a[i], dbeta[i] = (a[i] - beta[i]) / z[i];
    }
  };
  const auto y_fast = s6::reference_scan(s, in, [](double z) { return std::make_pair(std::exp(z), 1.0); });
  const auto y_zoh = s6::reference_scan(s, in, [](double z) { return std::make_pair(std::exp(z), std::expm1(z) / z); });
  for (int64_t chunk : {1, 8, 37, 64}) {
    s.chunk = chunk;
    for (int threads : {1, 2}) {
      INFO("chunk " << chunk << ", threads " << threads);
      std::vector<double> y(n), bounds(s.saved_states()), state(s.B * s.D * s.N, 0.0);
      s6::scan_forward(s, in, fast, y.data(), bounds.data(), nullptr, threads);
      CHECK(max_rel_diff(y, y_fast) < 1e-13);
      s6::scan_forward(s, in, zoh, y.data(), nullptr, state.data(), threads);
      CHECK(max_rel_diff(y, y_zoh) < 1e-13);
      // The chunk-start states are the recurrence's states.
      for (int64_t c = 1; c < s.n_chunks(); ++c) {
        s6::Shape head = s;
        head.L = c * chunk;
        // The state after the first c chunks: the scan of that head, carrying its state out.
        std::vector<double> st(s.B * s.D * s.N, 0.0);
        std::vector<double> uh(s.B * head.L * s.D), dh(uh.size()), bh(s.B * head.L * s.N), ch(bh.size()), yh(uh.size());
        for (int64_t b = 0; b < s.B; ++b) {
          std::copy_n(u.begin() + b * s.L * s.D, head.L * s.D, uh.begin() + b * head.L * s.D);
          std::copy_n(delta.begin() + b * s.L * s.D, head.L * s.D, dh.begin() + b * head.L * s.D);
          std::copy_n(Bm.begin() + b * s.L * s.N, head.L * s.N, bh.begin() + b * head.L * s.N);
          std::copy_n(Cm.begin() + b * s.L * s.N, head.L * s.N, ch.begin() + b * head.L * s.N);
        }
        const s6::Inputs<double> hin{uh.data(), dh.data(), A.data(), bh.data(), ch.data(), Dskip.data()};
        s6::scan_forward(head, hin, fast, yh.data(), nullptr, st.data(), 1);
        double err = 0;
        for (int64_t b = 0; b < s.B; ++b)
          for (int64_t k = 0; k < s.D * s.N; ++k)
            err = std::max(err, std::abs(st[b * s.D * s.N + k] - bounds[(b * s.n_chunks() + c) * s.D * s.N + k]));
        CHECK(err < 1e-13);
      }
    }
  }
}

TEST_CASE("s6 results do not depend on the chunk or the thread count", "[s6]") {
  const int64_t B = 3, L = 50, D = 70;
  std::vector<double> x = ssm_test::random_vector(B * L * D, 3), dy = ssm_test::random_vector(B * L * D, 4);
  std::vector<double> y_ref, dx_ref;
  std::vector<std::vector<double>> g_ref;
  for (int64_t chunk : {64, 1, 7, 16}) {
    for (int threads : {1, 2}) {
      Harness<double> hs("s6", options(D, 8, "s6disc", "linear", chunk));
      perturb(hs, 5);
      const auto y = hs.forward(x, B, L, true, threads);
      const auto dx = hs.backward(dy, B, L, threads);
      INFO("chunk " << chunk << ", threads " << threads);
      if (y_ref.empty()) {
        y_ref = y, dx_ref = dx, g_ref = hs.grads;
        continue;
      }
      CHECK(max_rel_diff(y, y_ref) < 1e-13);
      CHECK(max_rel_diff(dx, dx_ref) < 1e-12);
      for (size_t i = 0; i < g_ref.size(); ++i) CHECK(max_rel_diff(hs.grads[i], g_ref[i]) < 1e-11);
      if (chunk == 64) {  // the same chunk on another thread count: bit for bit
        CHECK(y == y_ref);
        CHECK(dx == dx_ref);
        CHECK(hs.grads == g_ref);
      }
    }
  }
}

TEST_CASE("s6 step mode equals forward", "[s6]") {
  const int64_t B = 2, L = 40, D = 5;
  for (std::string disc : {"s6disc", "zoh", "bilinear", "dirac"}) {
    for (std::string block : {"linear", "none"}) {
      Harness<double> hs("s6", options(D, 6, disc, block, 7));
      perturb(hs, 31);
      std::vector<double> x = ssm_test::random_vector(B * L * D, 4);
      INFO(disc << ", block " << block);
      CHECK(max_rel_diff(hs.steps(x, B, L), hs.forward(x, B, L, false)) < 1e-13);
    }
  }
}

TEST_CASE("s6 float32 agrees with float64", "[s6]") {
  const int64_t B = 2, L = 70, D = 36;
  for (std::string disc : {"s6disc", "zoh"}) {
    const ssmhost::KV cfg = options(D, 16, disc, "linear", 16);
    Harness<double> hd("s6", cfg);
    Harness<float> hf("s6", cfg);
    for (size_t i = 0; i < hd.values.size(); ++i) {  // the same values in both
      std::copy(hd.values[i].begin(), hd.values[i].end(), hf.values[i].begin());
      std::copy(hf.values[i].begin(), hf.values[i].end(), hd.values[i].begin());
    }
    std::vector<double> x = ssm_test::random_vector(B * L * D, 5), dy = ssm_test::random_vector(B * L * D, 6);
    std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
    auto widen = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    INFO(disc);
    CHECK(max_rel_diff(widen(hf.forward(xf, B, L, true)), hd.forward(x, B, L, true)) < 1e-5);
    CHECK(max_rel_diff(widen(hf.backward(dyf, B, L)), hd.backward(dy, B, L)) < 1e-4);
    for (size_t i = 0; i < hd.grads.size(); ++i) {
      INFO(hd.info[i].name);
      CHECK(max_rel_diff(widen(hf.grads[i]), hd.grads[i]) < 1e-4);
    }
  }
}

TEST_CASE("s6 keeps O(B L D) for backward, never a (B, L, D, N) tensor", "[s6]") {
  // What a training forward leaves allocated (the layer's cache), measured on
  // the heap, at two state sizes. The B, C inputs (B, L, N) and the
  // chunk-start states (B, L/chunk, D, N) grow with N; nothing of size
  // B L D N exists: at N = 64 it would be 64 MiB here.
  const int64_t B = 4, L = 1024, D = 64, chunk = 64;
  std::vector<double> x = ssm_test::random_vector(B * L * D, 7);
  auto kept = [&](int64_t N) {
    Harness<double> hs("s6", options(D, N, "s6disc", "linear", chunk));
    const size_t before = heap_in_use();
    hs.forward(x, B, L, true);  // its output is freed on return; the cache stays
    const size_t after = heap_in_use();
    std::vector<double> dy(x.size(), 1e-3);
    hs.backward(dy, B, L);
    return double(after) - double(before);
  };
  const double k16 = kept(16), k64 = kept(64);
  const double materialised64 = double(B * L * D * 64) * sizeof(double);
  const double bld = double(B * L * D) * sizeof(double);
  INFO("kept: N=16 " << k16 / 1048576 << " MiB, N=64 " << k64 / 1048576 << " MiB; one (B, L, D) tensor "
                     << bld / 1048576 << " MiB, one (B, L, D, N=64) " << materialised64 / 1048576 << " MiB");
  // u, dt_proj's output, GELU(s), GELU'(s) (4 BLD) plus dt_low, B, C (BL(R + 2N)) plus
  // the chunk-start states (B L D N / chunk).
  auto expected = [&](int64_t N) {
    const int64_t R = (D + 15) / 16;
    return double(4 * B * L * D + B * L * (R + 2 * N) + B * ((L + chunk - 1) / chunk) * D * N + D * N) *
           sizeof(double);
  };
  CHECK(k16 < 1.1 * expected(16) + 65536);
  CHECK(k64 < 1.1 * expected(64) + 65536);
  CHECK(k64 < 2 * k16);               // 4x the state, less than 2x the memory
  CHECK(k64 < materialised64 / 4);    // far from one materialised tensor
  // The scan itself saves exactly the chunk-start states.
  s6::Shape s;
  s.B = B, s.L = L, s.D = D, s.N = 64, s.chunk = chunk;
  CHECK(s.saved_states() == B * (L / chunk) * D * 64);
}

TEST_CASE("s6 initial values and hints follow Mamba", "[s6]") {
  const int64_t D = 64, N = 16;
  Harness<double> hs("s6", {{"d_model", "64"}, {"d_state", "16"}, {"dt_min", "0.002"}, {"dt_max", "0.2"}});
  const int64_t R = 4;  // ceil(64 / 16)
  for (int64_t d = 0; d < D; ++d)
    for (int64_t n = 0; n < N; ++n) CHECK(hs.param("A_log")[d * N + n] == Approx(std::log(n + 1.0)).margin(1e-15));
  for (double v : hs.param("D")) CHECK(v == 1.0);
  // softplus(dt bias) = dt in [dt_min, dt_max), log-uniform: both halves of
  // the log range are populated.
  int low = 0;
  for (double b : hs.param("dt_proj.bias")) {
    const double dt = std::log1p(std::exp(b));
    CHECK(dt >= 0.002 * (1 - 1e-12));
    CHECK(dt < 0.2);
    low += dt < std::sqrt(0.002 * 0.2);
  }
  CHECK(low > 10);
  CHECK(low < 54);
  auto within = [](const std::vector<double>& w, double bound) {
    const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
    CHECK(*hi <= bound);
    CHECK(*lo >= -bound);
    CHECK(*hi > 0.8 * bound);  // the whole range is used
  };
  within(hs.param("dt_proj.weight"), 1 / std::sqrt(double(R)));
  within(hs.param("x_proj.weight"), 1 / std::sqrt(double(D)));
  within(hs.param("out_proj.weight"), 1 / std::sqrt(double(D)));
  // The floor: every dt below it is raised to it.
  Harness<double> floored("s6", {{"d_model", "8"}, {"dt_min", "1e-6"}, {"dt_max", "1e-5"}});
  for (double b : floored.param("dt_proj.bias")) CHECK(std::log1p(std::exp(b)) == Approx(1e-4).epsilon(1e-9));

  // Shapes and hints: A_log, D and the dt bias without weight decay, kept in
  // float32; A_log and the dt projection are SSM parameters.
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expect{
      {"x_proj.weight", {R + 2 * N, D}}, {"dt_proj.weight", {D, R}}, {"dt_proj.bias", {D}},   {"A_log", {D, N}},
      {"D", {D}},                         {"out_proj.weight", {D, D}}, {"out_proj.bias", {D}}};
  REQUIRE(hs.info.size() == expect.size());
  for (size_t i = 0; i < expect.size(); ++i) {
    const auto& p = hs.info[i];
    INFO(p.name);
    CHECK(p.name == expect[i].first);
    CHECK(p.shape == expect[i].second);
    const bool no_wd = p.name == "A_log" || p.name == "D" || p.name == "dt_proj.bias";
    CHECK(((p.flags & SSM_PARAM_NO_WEIGHT_DECAY) != 0) == no_wd);
    CHECK(((p.flags & SSM_PARAM_KEEP_FP32) != 0) == no_wd);
    if (no_wd) CHECK(p.weight_decay == 0.0);
    CHECK(p.lr_max == 0.0);  // Mamba caps nothing by default (lr_ssm)
  }
  // block=none: the bare SSM, five tensors; dt_rank and lr_ssm as given.
  Harness<double> bare("s6", {{"d_model", "8"}, {"block", "none"}, {"dt_rank", "3"}, {"lr_ssm", "0.001"}});
  REQUIRE(bare.info.size() == 5);
  CHECK(bare.info[1].shape == std::vector<int64_t>{8, 3});
  CHECK(bare.info[3].lr_max == 0.001);
}

TEST_CASE("s6 rejects bad options with clear messages", "[s6]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(registry().create_layer("s6", {{"block", "glu"}}), Contains("block"));
  CHECK_THROWS_WITH(registry().create_layer("s6", {{"dt_min", "0.5"}, {"dt_max", "0.1"}}), Contains("dt_max"));
  CHECK_THROWS_WITH(registry().create_layer("s6", {{"chunk", "0"}}), Contains("chunk"));
  CHECK_THROWS_WITH(registry().create_layer("s6", {{"disc", "no_such_scheme"}}), Contains("no_such_scheme"));
  Harness<double> hs("s6", {{"d_model", "3"}});
  std::vector<double> dy(2 * 5 * 3);
  CHECK_THROWS_WITH(hs.backward(dy, 2, 5), Contains("training forward"));
}

TEST_CASE("s6 with a discretization suffix: s6z is s6 with zoh", "[s6]") {
  const int64_t B = 1, L = 9, D = 4;
  Harness<double> by_option("s6", options(D, 4, "zoh", "linear", 4));
  auto by_suffix = registry().create_layer("s6z", options(D, 4, "s6disc", "linear", 4));
  std::vector<double> x = ssm_test::random_vector(B * L * D, 9), y(x.size());
  ssm::View vx(x.data(), {B, L, D}), vy(y.data(), {B, L, D});
  ssm_ctx ctx = registry().make_ctx(false, 1, 7, 0);
  by_suffix->forward(&ctx, by_option.value_ptrs.data(), vx.get(), vy.get());
  CHECK(y == by_option.forward(x, B, L, false));
}

TEST_CASE("a small S6 model learns selective copying", "[s6][learning]") {
  ssm_test::TempDir dir("ssm_s6");
  // 4 tokens to recall among 4 symbols (chance 0.25), L = 16 + 8. Seeds 0-3
  // reach 0.91-0.96 token accuracy by step 500 (a few seconds on one thread).
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s6 --task selective_copy --copy-len 16 --n-tokens 4 --vocab 6 --d-model 32 --n-layers 2"
                " --d-state 16 --batch-size 32 --lr 0.01 --steps 500 --eval-every 500 --eval-size 256 --threads 1"
                " --quiet --log s6.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "s6.h5").string());
  CHECK(log.summary_numbers().at("final_metric") >= 0.8);
}

// Not a test (hidden): test_s6 "[.bench]" prints the time of one training
// forward + backward of the layer alone at the FilippoOlivo seed's size
// (mamba's inner s6 at d_model 64: D = 128, N = 16, L = 256, batch 64).
TEST_CASE("s6 forward+backward timing", "[.bench]") {
  const int64_t B = 64, L = 256, D = 128;
  for (std::string block : {"none", "linear"}) {
    Harness<float> hs("s6", {{"d_model", "128"}, {"d_state", "16"}, {"block", block}});
    std::vector<float> x(B * L * D), dy(B * L * D), y(B * L * D), dx(B * L * D);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = float(std::sin(0.1 * double(i)));
      dy[i] = float(std::cos(0.3 * double(i))) * 1e-3f;
    }
    ssm::View vx(x.data(), {B, L, D}), vy(y.data(), {B, L, D}), vdy(dy.data(), {B, L, D}), vdx(dx.data(), {B, L, D});
    ssm_ctx ctx = registry().make_ctx(true, 2, 7, 0);
    ssm_ctx inf = registry().make_ctx(false, 2, 7, 0);
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      hs.layer->forward(&ctx, hs.value_ptrs.data(), vx.get(), vy.get());
      const auto t1 = std::chrono::steady_clock::now();
      hs.layer->backward(&ctx, hs.value_ptrs.data(), vdy.get(), vdx.get(), hs.grad_ptrs.data());
      const auto t2 = std::chrono::steady_clock::now();
      hs.layer->forward(&inf, hs.value_ptrs.data(), vx.get(), vy.get());
      const auto t3 = std::chrono::steady_clock::now();
      std::printf("s6 block=%s B=%ld L=%ld D=%ld N=16: forward %.1f ms, backward %.1f ms, inference %.1f ms\n",
                  block.c_str(), long(B), long(L), long(D), std::chrono::duration<double, std::milli>(t1 - t0).count(),
                  std::chrono::duration<double, std::milli>(t2 - t1).count(),
                  std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
  }
}
