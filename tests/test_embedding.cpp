// Embedding gather and its race-free scatter-add gradient.
#include <catch2/catch.hpp>

#include <vector>

#include "gradcheck.hpp"
#include "ssm/kernels/embedding.hpp"
#include "ssm/kernels/parallel.hpp"
#include "ssm/sdk.hpp"

using namespace ssm::kernels;
using ssm_test::random_vector;

TEST_CASE("embedding_forward gathers rows", "[embedding]") {
  const int64_t vocab = 5, dim = 3;
  auto table = random_vector(vocab * dim, 1);
  std::vector<int32_t> ids = {4, 0, 4, 2};
  std::vector<double> y(ids.size() * dim);
  embedding_forward(ids.data(), table.data(), y.data(), 4, dim);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < dim; ++c) REQUIRE(y[i * dim + c] == table[ids[i] * dim + c]);
  ids[2] = -3;
  CHECK_THROWS_WITH(embedding_forward(ids.data(), table.data(), y.data(), 4, dim), Catch::Contains("-3"));
}

TEST_CASE("embedding_backward accumulates repeated ids, identically for any thread count", "[embedding]") {
  // Many repeats of few ids and enough work for the parallel path.
  const int64_t vocab = 7, dim = 40, n = 5000;
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * i + 3 * i) % vocab);
  auto dyd = random_vector(n * dim, 2);
  std::vector<float> dy(dyd.begin(), dyd.end());
  std::vector<float> expected(vocab * dim, 0.25f);  // starts non-zero: must accumulate
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < dim; ++c) expected[ids[i] * dim + c] += dy[i * dim + c];
  for (int threads : {1, 2, 3}) {
    set_threads(threads);
    std::vector<float> dtable(vocab * dim, 0.25f);
    embedding_backward(ids.data(), dy.data(), dtable.data(), n, dim);
    INFO("threads " << threads);
    CHECK(dtable == expected);  // same order of additions: bit-identical
  }
  set_threads(2);
}

TEST_CASE("embedding_backward matches finite differences", "[embedding]") {
  const int64_t vocab = 6, dim = 4, n = 9;
  auto table = random_vector(vocab * dim, 3), probe = random_vector(n * dim, 4);
  std::vector<int32_t> ids = {1, 5, 1, 0, 3, 1, 5, 2, 0};
  std::vector<double> y(n * dim), dtable(vocab * dim, 0.0);
  auto loss = [&] {
    embedding_forward(ids.data(), table.data(), y.data(), n, dim);
    return ssm_test::dot(y, probe);
  };
  embedding_backward(ids.data(), probe.data(), dtable.data(), n, dim);
  ssm_test::check_gradient("embedding dtable", table, dtable, loss);
}
