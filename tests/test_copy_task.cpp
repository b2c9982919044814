// The copy and selective_copy task plugins: token layout, determinism,
// batch-size independence, train/eval separation and option errors.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/sdk.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "registry.hpp"

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

struct Batch {
  int64_t size, len, m;
  std::vector<int32_t> x, y;
  std::vector<int32_t> x_row(int64_t i) const { return {x.begin() + i * len, x.begin() + (i + 1) * len}; }
  std::vector<int32_t> y_row(int64_t i) const { return {y.begin() + i * m, y.begin() + (i + 1) * m}; }
};

Batch fetch(const ssmhost::TaskObject& task, int split, uint64_t seed, uint64_t index, int64_t batch_size) {
  const ssm_task_info info = task.info();
  Batch b{batch_size, info.seq_len, info.readout_m, std::vector<int32_t>(batch_size * info.seq_len, -1),
          std::vector<int32_t>(batch_size * info.readout_m, -1)};
  ssm::View vx(b.x.data(), {batch_size, info.seq_len}), vy(b.y.data(), {batch_size, info.readout_m});
  task.batch(split, seed, index, batch_size, vx.get(), vy.get(), nullptr);
  return b;
}

// The layout both variants share; returns the positions of the data tokens.
std::vector<int64_t> check_layout(const std::vector<int32_t>& x, const std::vector<int32_t>& y, int64_t noise_len,
                                  int64_t m, int32_t vocab) {
  REQUIRE(static_cast<int64_t>(x.size()) == noise_len + 2 * m);
  REQUIRE(static_cast<int64_t>(y.size()) == m);
  for (int64_t k = 0; k < m; ++k) CHECK(x[noise_len + m + k] == vocab - 1);  // markers last
  std::vector<int64_t> positions;
  std::vector<int32_t> tokens;
  for (int64_t p = 0; p < noise_len + m; ++p) {
    if (x[p] == 0) continue;  // blank
    positions.push_back(p);
    tokens.push_back(x[p]);
  }
  CHECK(tokens == y);  // y = the non-blank tokens, in order
  for (int32_t t : y) {
    CHECK(t >= 1);
    CHECK(t <= vocab - 2);
  }
  return positions;
}

}  // namespace

TEST_CASE("copy task info", "[copy]") {
  for (const char* name : {"copy", "selective_copy"}) {
    INFO(name);
    auto task = registry().create_task(name, {{"copy_len", "20"}, {"n_tokens", "5"}, {"vocab", "7"}});
    const ssm_task_info i = task->info();
    CHECK(i.input_kind == SSM_INPUT_TOKENS);
    CHECK(i.vocab_size == 7);
    CHECK(i.seq_len == 30);
    CHECK(i.n_out == 7);
    CHECK(i.readout == SSM_READOUT_LAST_M);
    CHECK(i.readout_m == 5);
    CHECK(i.loss == SSM_LOSS_CROSS_ENTROPY);
    CHECK(i.metric == SSM_METRIC_ACCURACY);
    CHECK(i.has_mask == 0);
    CHECK(i.n_train == 0);
    CHECK(i.n_eval == 1024);
    const ssmhost::KV defaults = task->run_defaults();
    CHECK(defaults.count("steps") == 1);
    CHECK(defaults.count("batch_size") == 1);
  }
  auto defaults = registry().create_task("copy", {});
  CHECK(defaults->info().seq_len == 64 + 2 * 8);
  CHECK(defaults->info().vocab_size == 10);
}

TEST_CASE("plain copy puts the tokens first", "[copy]") {
  auto task = registry().create_task("copy", {{"copy_len", "16"}, {"n_tokens", "4"}, {"vocab", "6"}});
  const Batch b = fetch(*task, SSM_SPLIT_TRAIN, 1, 0, 64);
  for (int64_t i = 0; i < b.size; ++i) {
    const std::vector<int64_t> positions = check_layout(b.x_row(i), b.y_row(i), 16, 4, 6);
    CHECK(positions == std::vector<int64_t>{0, 1, 2, 3});
  }
}

TEST_CASE("selective copy scatters the tokens at sorted random positions", "[copy]") {
  const int64_t noise_len = 16, m = 4;
  auto task = registry().create_task("selective_copy", {{"copy_len", "16"}, {"n_tokens", "4"}, {"vocab", "6"}});
  const Batch b = fetch(*task, SSM_SPLIT_TRAIN, 1, 0, 256);
  std::vector<int> hits(noise_len + m, 0);
  std::vector<int> token_counts(6, 0);
  for (int64_t i = 0; i < b.size; ++i) {
    const std::vector<int64_t> positions = check_layout(b.x_row(i), b.y_row(i), noise_len, m, 6);
    REQUIRE(static_cast<int64_t>(positions.size()) == m);  // distinct positions, none lost
    CHECK(std::is_sorted(positions.begin(), positions.end()));
    for (int64_t p : positions) {
      CHECK(p >= 0);
      CHECK(p < noise_len + m);
      ++hits[p];
    }
    for (int32_t t : b.y_row(i)) ++token_counts[t];
  }
  // 256 examples x 4 tokens over 20 positions: every position gets used, every token value drawn.
  for (int64_t p = 0; p < noise_len + m; ++p) CHECK(hits[p] > 0);
  for (int t = 1; t <= 4; ++t) CHECK(token_counts[t] > 0);
  CHECK(token_counts[0] == 0);
  CHECK(token_counts[5] == 0);
}

TEST_CASE("batches are a pure function of seed, split and index", "[copy]") {
  for (const char* name : {"copy", "selective_copy"}) {
    INFO(name);
    auto task = registry().create_task(name, {{"copy_len", "32"}});
    const Batch a = fetch(*task, SSM_SPLIT_TRAIN, 42, 3, 8);
    const Batch again = fetch(*task, SSM_SPLIT_TRAIN, 42, 3, 8);
    CHECK(a.x == again.x);
    CHECK(a.y == again.y);
    CHECK(fetch(*task, SSM_SPLIT_TRAIN, 42, 4, 8).y != a.y);  // another index
    CHECK(fetch(*task, SSM_SPLIT_TRAIN, 43, 3, 8).y != a.y);  // another seed
    // Another task object with the same options gives the same data.
    auto twin = registry().create_task(name, {{"copy_len", "32"}});
    CHECK(fetch(*twin, SSM_SPLIT_TRAIN, 42, 3, 8).x == a.x);
  }
}

TEST_CASE("example e is the same whatever the batch size", "[copy]") {
  for (const char* name : {"copy", "selective_copy"}) {
    INFO(name);
    auto task = registry().create_task(name, {{"copy_len", "24"}, {"n_tokens", "6"}});
    for (int split : {SSM_SPLIT_TRAIN, SSM_SPLIT_TEST}) {
      // Examples 8..15: batch 1 at B=8, batches 2 and 3 at B=4.
      const Batch big = fetch(*task, split, 7, 1, 8);
      const Batch small2 = fetch(*task, split, 7, 2, 4);
      const Batch small3 = fetch(*task, split, 7, 3, 4);
      for (int64_t i = 0; i < 4; ++i) {
        CHECK(big.x_row(i) == small2.x_row(i));
        CHECK(big.y_row(i) == small2.y_row(i));
        CHECK(big.x_row(4 + i) == small3.x_row(i));
        CHECK(big.y_row(4 + i) == small3.y_row(i));
      }
    }
  }
}

TEST_CASE("eval examples differ from train examples", "[copy]") {
  for (const char* name : {"copy", "selective_copy"}) {
    INFO(name);
    auto task = registry().create_task(name, {{"copy_len", "32"}});
    const Batch train = fetch(*task, SSM_SPLIT_TRAIN, 5, 0, 16);
    const Batch eval = fetch(*task, SSM_SPLIT_TEST, 5, 0, 16);
    int same = 0;
    for (int64_t i = 0; i < 16; ++i) same += train.y_row(i) == eval.y_row(i);
    CHECK(same == 0);  // 8 tokens over 8 values: a chance match has probability 8^-8
  }
}

TEST_CASE("bad options and tensors are errors naming them", "[copy][errors]") {
  for (const char* name : {"copy", "selective_copy"}) {
    INFO(name);
    CHECK_THROWS_WITH(registry().create_task(name, {{"copy_len", "0"}}),
                      Catch::Contains("copy_len") && Catch::Contains(">= 1"));
    CHECK_THROWS_WITH(registry().create_task(name, {{"n_tokens", "0"}}), Catch::Contains("n_tokens"));
    CHECK_THROWS_WITH(registry().create_task(name, {{"vocab", "2"}}),
                      Catch::Contains("vocab") && Catch::Contains(">= 3"));
    CHECK_THROWS_WITH(registry().create_task(name, {{"vocab", "ten"}}),
                      Catch::Contains("vocab") && Catch::Contains("integer"));
    CHECK_THROWS_WITH(registry().create_task(name, {{"eval_size", "0"}}), Catch::Contains("eval_size"));

    auto task = registry().create_task(name, {{"copy_len", "8"}, {"n_tokens", "2"}});  // x: (B, 12), y: (B, 2)
    std::vector<int32_t> x(4 * 12), y(4 * 2);
    std::vector<int64_t> x64(4 * 12);
    ssm::View vx(x.data(), {4, 12}), vy(y.data(), {4, 2}), vx_short(x.data(), {4, 11}), vx64(x64.data(), {4, 12});
    CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 4, vx_short.get(), vy.get(), nullptr),
                      Catch::Contains("x") && Catch::Contains("(4, 12)"));
    CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 4, vx64.get(), vy.get(), nullptr),
                      Catch::Contains("int64") && Catch::Contains("int32"));
    CHECK_THROWS_WITH(task->batch(2, 0, 0, 4, vx.get(), vy.get(), nullptr), Catch::Contains("split"));
    CHECK_NOTHROW(task->batch(SSM_SPLIT_TRAIN, 0, 0, 4, vx.get(), vy.get(), nullptr));
  }
}
