// Cross-entropy and MSE: values against plain loops, gradients against finite
// differences, masks, accuracy counts and errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/loss.hpp"
#include "ssm/sdk.hpp"

using namespace ssm::kernels;
using ssm_test::random_vector;

namespace {
double nll_reference(const double* z, int64_t classes, int32_t t) {
  double s = 0;
  for (int64_t c = 0; c < classes; ++c) s += std::exp(z[c]);
  return std::log(s) - z[t];
}
}  // namespace

TEST_CASE("cross_entropy value, accuracy and gradient", "[loss]") {
  const int64_t rows = 8, classes = 5;
  auto logits = random_vector(rows * classes, 1, 3.0);
  std::vector<int32_t> target = {0, 4, 2, 2, 1, 3, 0, 4};
  std::vector<double> mask = {1, 0, 1, 1, 0.5, 2, 0, 1};

  SECTION("unweighted: plain mean") {
    double ref = 0;
    int64_t ref_correct = 0;
    for (int64_t r = 0; r < rows; ++r) {
      ref += nll_reference(&logits[r * classes], classes, target[r]) / rows;
      int64_t am = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (logits[r * classes + c] > logits[r * classes + am]) am = c;
      ref_correct += am == target[r];
    }
    int64_t correct = -1;
    std::vector<double> dlogits(rows * classes);
    CHECK(cross_entropy(logits.data(), target.data(), nullptr, rows, classes,
                        dlogits.data(), &correct) == Approx(ref).epsilon(1e-13));
    CHECK(correct == ref_correct);
    auto loss = [&] {
      return cross_entropy(logits.data(), target.data(), nullptr, rows, classes,
                           nullptr, nullptr);
    };
    ssm_test::check_gradient("cross_entropy dlogits", logits, dlogits, loss);
  }

  SECTION("weighted: sum(w * nll) / sum(w), masked rows ignored") {
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; ++r) {
      num += mask[r] * nll_reference(&logits[r * classes], classes, target[r]);
      den += mask[r];
    }
    // Rows with weight 0 may carry a padding target: it is never read.
    target[1] = -100;
    target[6] = 99;
    std::vector<double> dlogits(rows * classes, 5.0);
    CHECK(cross_entropy(logits.data(), target.data(), mask.data(), rows, classes, dlogits.data(),
                        nullptr) == Approx(num / den).epsilon(1e-13));
    for (int64_t c = 0; c < classes; ++c) REQUIRE(dlogits[1 * classes + c] == 0.0);
    auto loss = [&] {
      return cross_entropy(logits.data(), target.data(), mask.data(), rows, classes, nullptr,
                           nullptr);
    };
    ssm_test::check_gradient("weighted cross_entropy dlogits", logits, dlogits, loss);
  }
}

TEST_CASE("cross_entropy counts correct rows among weighted rows only", "[loss]") {
  // Row argmaxes: 2, 0 (tie between 0 and 1: the first wins), 1.
  std::vector<float> logits = {0, 1, 5, 3, 3, 0, -1, 2, 1};
  std::vector<int32_t> target = {2, 0, 1};
  std::vector<float> w = {1, 1, 0};
  int64_t correct = -1;
  cross_entropy(logits.data(), target.data(), nullptr, 3, 3,
                nullptr, &correct);
  CHECK(correct == 3);
  cross_entropy(logits.data(), target.data(), w.data(), 3, 3, nullptr, &correct);
  CHECK(correct == 2);
  w = {0, 0, 0};
  std::vector<float> d(9, 1.f);
  CHECK(cross_entropy(logits.data(), target.data(), w.data(), 3, 3, d.data(), &correct) == 0.f);
  CHECK(correct == 0);
  CHECK(d == std::vector<float>(9, 0.f));
}

TEST_CASE("cross_entropy is stable for huge logits", "[loss]") {
  std::vector<float> logits = {1000.f, 0.f, -1000.f, 88.f, 89.f, 90.f};
  std::vector<int32_t> target = {1, 2};
  std::vector<float> d(6);
  const float loss = cross_entropy(logits.data(), target.data(), nullptr, 2, 3, d.data(),
                                   nullptr);
  // Row 0: nll = 1000; row 1: nll = log(e^-2 + e^-1 + 1) = 0.40760596.
  CHECK(loss == Approx((1000 + 0.40760596) / 2).epsilon(1e-6));
  for (float v : d) REQUIRE(std::isfinite(v));
  CHECK(d[0] == Approx(0.5f));
  CHECK(d[1] == Approx(-0.5f));
}

TEST_CASE("cross_entropy rejects a target outside [0, classes)", "[loss]") {
  std::vector<double> logits(6, 0.0);
  std::vector<int32_t> target = {1, 7};
  CHECK_THROWS_AS(cross_entropy(logits.data(), target.data(), nullptr, 2, 3,
                                nullptr, nullptr),
                  ssm::Error);
  CHECK_THROWS_WITH(cross_entropy(logits.data(), target.data(), nullptr, 2, 3,
                                  nullptr, nullptr),
                    Catch::Contains("7"));
  target = {-1, 0};
  CHECK_THROWS_WITH(cross_entropy(logits.data(), target.data(), nullptr, 2, 3,
                                  nullptr, nullptr),
                    Catch::Contains("-1"));
  std::vector<double> w = {1, -0.5};
  target = {0, 0};
  CHECK_THROWS_AS(cross_entropy(logits.data(), target.data(), w.data(), 2, 3, nullptr,
                                nullptr),
                  ssm::Error);
}

TEST_CASE("mse value and gradient, with and without row weights", "[loss]") {
  const int64_t rows = 6, dim = 4;
  auto pred = random_vector(rows * dim, 2), target = random_vector(rows * dim, 3);
  std::vector<double> w = {1, 0, 2, 0.5, 1, 3};
  for (bool weighted : {false, true}) {
    const double* wp = weighted ? w.data() : nullptr;
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double wr = weighted ? w[r] : 1.0;
      for (int64_t c = 0; c < dim; ++c) num += wr * std::pow(pred[r * dim + c] - target[r * dim + c], 2);
      den += wr * dim;
    }
    std::vector<double> dpred(rows * dim, 7.0);
    INFO("weighted " << weighted);
    CHECK(mse(pred.data(), target.data(), wp, rows, dim, dpred.data()) == Approx(num / den).epsilon(1e-13));
    auto loss = [&] { return mse(pred.data(), target.data(), wp, rows, dim, nullptr); };
    ssm_test::check_gradient("mse dpred", pred, dpred, loss);
  }
  std::vector<double> zero(rows, 0.0), dpred(rows * dim, 1.0);
  CHECK(mse(pred.data(), target.data(), zero.data(), rows, dim, dpred.data()) == 0.0);
  CHECK(dpred == std::vector<double>(rows * dim, 0.0));
}

TEST_CASE("losses over many rows are reproducible and agree in float", "[loss]") {
  const int64_t rows = 3000, classes = 10;  // several reduction chunks
  auto zd = random_vector(rows * classes, 4, 4.0);
  std::vector<float> z(zd.begin(), zd.end()), d1(rows * classes), d2(rows * classes);
  std::vector<int32_t> target(rows);
  for (int64_t r = 0; r < rows; ++r) target[r] = static_cast<int32_t>(r % classes);
  const float a = cross_entropy(z.data(), target.data(), nullptr, rows, classes,
                                d1.data(), nullptr);
  const float b = cross_entropy(z.data(), target.data(), nullptr, rows, classes,
                                d2.data(), nullptr);
  CHECK(a == b);
  CHECK(d1 == d2);
  const double ref = cross_entropy(zd.data(), target.data(), nullptr, rows, classes,
                                   nullptr, nullptr);
  CHECK(a == Approx(ref).epsilon(1e-6));
}
