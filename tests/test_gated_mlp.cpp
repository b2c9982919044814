// The gated_mlp layer plugin through the host registry: its formula against a
// direct evaluation, every gradient against finite differences (float64),
// step mode against forward, float32 against float64, initial values and
// hints, option errors; and training: at chance on copy (no token mixing,
// as the seed reports) and learning a next-character map it can express.
#include <catch2/catch.hpp>

#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "registry.hpp"
#include "runlog.hpp"
#include "layer_harness.hpp"
#include "test_support.hpp"

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

using ssm_test::Harness;
using ssm_test::max_rel_diff;
using ssm_test::widen;



double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

}  // namespace

TEST_CASE("gated_mlp computes W_o[(W1 x + b1) * act(W2 x + b2)] + b_o", "[gated_mlp]") {
  const int64_t B = 2, L = 3, H = 3;
  for (std::string act : {"silu", "swish"}) {
    Harness<double> hs("gated_mlp", {{"d_model", "3"}, {"expand", "2"}, {"activation", act}, {"beta", "1.7"}});
    const double beta = act == "silu" ? 1.0 : 1.7;
    const int64_t F = 6;
    std::vector<double> x = ssm_test::random_vector(B * L * H, 3);
    const std::vector<double> y = hs.forward(x, B, L, false);
    const auto &W1 = hs.param("W1"), &b1 = hs.param("b1"), &W2 = hs.param("W2"), &b2 = hs.param("b2"),
               &Wo = hs.param("W_out"), &bo = hs.param("b_out");
    std::vector<double> want(y.size());
    for (int64_t r = 0; r < B * L; ++r) {
      std::vector<double> m(F);
      for (int64_t f = 0; f < F; ++f) {
        double a = b1[f], c = b2[f];
        for (int64_t h = 0; h < H; ++h) {
          a += W1[f * H + h] * x[r * H + h];
          c += W2[f * H + h] * x[r * H + h];
        }
        m[f] = a * c * sigmoid(beta * c);
      }
      for (int64_t h = 0; h < H; ++h) {
        double v = bo[h];
        for (int64_t f = 0; f < F; ++f) v += Wo[h * F + f] * m[f];
        want[r * H + h] = v;
      }
    }
    INFO(act);
    CHECK(max_rel_diff(y, want) < 1e-13);
  }
}

TEST_CASE("gated_mlp gradients match finite differences (float64)", "[gated_mlp]") {
  for (std::string act : {"silu", "swish"}) {
    SECTION(act) {
      Harness<double> hs("gated_mlp", {{"d_model", "4"}, {"expand", "3"}, {"activation", act}, {"beta", "0.6"}});
      hs.check_all_gradients(2, 5, 11, act);
    }
  }
}

TEST_CASE("gated_mlp step mode equals forward; float32 agrees with float64", "[gated_mlp]") {
  const int64_t B = 2, L = 9, H = 5;
  const ssmhost::KV cfg{{"d_model", "5"}};
  Harness<double> hd("gated_mlp", cfg);
  std::vector<double> x = ssm_test::random_vector(B * L * H, 4), dy = ssm_test::random_vector(B * L * H, 5);
  CHECK(max_rel_diff(hd.steps(x, B, L), hd.forward(x, B, L, false)) < 1e-14);

  Harness<float> hf("gated_mlp", cfg);
  for (size_t i = 0; i < hd.values.size(); ++i) std::copy(hd.values[i].begin(), hd.values[i].end(), hf.values[i].begin());
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
  CHECK(max_rel_diff(widen(hf.forward(xf, B, L, true)), hd.forward(x, B, L, true)) < 1e-5);
  CHECK(max_rel_diff(widen(hf.backward(dyf, B, L)), hd.backward(dy, B, L)) < 1e-5);
  for (size_t i = 0; i < hd.grads.size(); ++i) {
    INFO(hd.info[i].name);
    CHECK(max_rel_diff(widen(hf.grads[i]), hd.grads[i]) < 1e-4);
  }
}

TEST_CASE("gated_mlp parameters: shapes, PyTorch's Linear init, biases without weight decay", "[gated_mlp]") {
  Harness<double> hs("gated_mlp", {{"d_model", "16"}, {"expand", "4"}});
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expect{
      {"W1", {64, 16}}, {"b1", {64}}, {"W2", {64, 16}}, {"b2", {64}}, {"W_out", {16, 64}}, {"b_out", {16}}};
  REQUIRE(hs.info.size() == expect.size());
  for (size_t i = 0; i < expect.size(); ++i) {
    INFO(expect[i].first);
    CHECK(hs.info[i].name == expect[i].first);
    CHECK(hs.info[i].shape == expect[i].second);
    CHECK(bool(hs.info[i].flags & SSM_PARAM_NO_WEIGHT_DECAY) == (expect[i].second.size() == 1));
    const double bound = 1 / std::sqrt(double(i < 4 ? 16 : 64));
    const auto& v = hs.values[i];
    CHECK(*std::max_element(v.begin(), v.end()) <= bound);
    CHECK(*std::min_element(v.begin(), v.end()) >= -bound);
    CHECK(*std::max_element(v.begin(), v.end()) > 0.5 * bound);
  }
}

TEST_CASE("gated_mlp rejects bad options", "[gated_mlp]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(registry().create_layer("gated_mlp", {{"activation", "relu"}}), Contains("activation"));
  CHECK_THROWS_WITH(registry().create_layer("gated_mlp", {{"expand", "0"}}), Contains("expand"));
  CHECK_THROWS_WITH(registry().create_layer("gated_mlp", {{"activation", "swish"}, {"beta", "0"}}), Contains("beta"));
  Harness<double> hs("gated_mlp", {{"d_model", "3"}});
  std::vector<double> dy(2 * 4 * 3);
  CHECK_THROWS_WITH(hs.backward(dy, 2, 4), Contains("training forward"));
}

TEST_CASE("gated_mlp trains: chance on copy (no token mixing), a next-character map learnt", "[gated_mlp][learning]") {
  ssm_test::TempDir dir("ssm_test_gated_mlp");
  // Copy: the output at a marker sees only the marker, so the best a per-token
  // model can do is the uniform marginal over the V-2 = 4 tokens: loss ln 4,
  // accuracy 1/4 (the seed's 0.07 at V = 16).
  auto r = ssm_test::run_ssmhost(dir.path,
                                 "--layer gated_mlp --task copy --copy-len 8 --n-tokens 4 --vocab 6 --d-model 32 "
                                 "--n-layers 1 --batch-size 16 --lr 0.01 --warmup 20 --steps 300 --eval-every 100 "
                                 "--threads 1 --quiet --log copy.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto log = ssmhost::RunLogReader::open((dir.path / "copy.h5").string());
  CHECK(log.summary_numbers().at("final_metric") == Approx(0.25).margin(0.08));
  CHECK(log.column("eval", "loss").back() == Approx(std::log(4.0)).margin(0.03));

  // A text whose next character is a function of the current one: a per-token
  // model predicts it perfectly. Chance is log2(11) = 3.46 bits per character.
  {
    std::ofstream text(dir.path / "cycle.txt");
    for (int i = 0; i < 3000; ++i) text << "abcdefghij";
    text << "\n";
  }
  r = ssm_test::run_ssmhost(dir.path,
                            "--layer gated_mlp --task char_lm --text cycle.txt --context 32 --d-model 16 --n-layers 1 "
                            "--batch-size 16 --lr 0.01 --steps 200 --eval-every 200 --eval-size 64 --threads 1 --quiet "
                            "--log lm.h5");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto lm = ssmhost::RunLogReader::open((dir.path / "lm.h5").string());
  CHECK(lm.summary_numbers().at("final_metric") < 0.3);
}
