// The induction_heads task (the Mamba paper's; generator of safari's
// generate_induction_head, docs/tasks.md) and the host's evaluation at
// several lengths (--eval-seq-len): layout, masks, determinism, errors, the
// per-length columns of the run log, and a small S4D model that learns it.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/sdk.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"

using Catch::Matchers::Contains;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

struct Batch {
  int64_t B, T;
  std::vector<int32_t> x, y;
  std::vector<float> mask;
  bool operator==(const Batch& o) const { return x == o.x && y == o.y && mask == o.mask; }
};

Batch fetch(const ssmhost::TaskObject& task, int split, uint64_t seed, uint64_t index, int64_t B) {
  const int64_t T = task.info().seq_len;
  Batch b{B, T, std::vector<int32_t>(B * T, -1), std::vector<int32_t>(B * T, -1), std::vector<float>(B * T, -1)};
  ssm::View vx(b.x.data(), {B, T}), vy(b.y.data(), {B, T}), vm(b.mask.data(), {B, T});
  task.batch(split, seed, index, B, vx.get(), vy.get(), vm.get());
  return b;
}

}  // namespace

TEST_CASE("induction_heads: L tokens, a \"=>\" inside and one at the end, the answer last", "[induction_heads]") {
  auto task = registry().create_task("induction_heads", {{"input_len", "20"}});
  const ssm_task_info i = task->info();
  CHECK(i.input_kind == SSM_INPUT_TOKENS);
  CHECK(i.vocab_size == 16);
  CHECK(i.n_out == 16);
  CHECK(i.seq_len == 21);
  CHECK(i.readout == SSM_READOUT_ALL);
  CHECK(i.has_mask == 1);
  CHECK(i.metric == SSM_METRIC_ACCURACY);
  CHECK(i.n_train == 0);
  CHECK(i.n_eval == 256);
  const int32_t prefix = 14;
  std::set<int64_t> trigger_positions;
  for (int split : {SSM_SPLIT_TRAIN, SSM_SPLIT_TEST}) {
    const Batch b = fetch(*task, split, 3, 0, 200);
    for (int64_t r = 0; r < b.B; ++r) {
      const int32_t* x = b.x.data() + r * 21;
      const int32_t* y = b.y.data() + r * 21;
      CHECK(x[20] == prefix);  // the final "=>"
      const int64_t p = std::find(x, x + 21, prefix) - x;
      CHECK(p <= 20 - 3);      // the first "=>" at p in [0, L-3]
      CHECK(std::count(x, x + 21, prefix) == 2);
      for (int64_t t = 0; t < 21; ++t) {
        if (t != p && t != 20) CHECK((x[t] >= 0 && x[t] < 14));  // ordinary tokens; "." (15) never appears
        if (t + 1 < 21) CHECK(y[t] == x[t + 1]);                 // next-token targets
      }
      CHECK(y[20] == x[p + 1]);  // the answer: the token after the first "=>"
      for (int64_t t = 0; t < 21; ++t)  // training scores every target, evaluation only the last
        CHECK(b.mask[r * 21 + t] == (split == SSM_SPLIT_TRAIN || t == 20 ? 1.0f : 0.0f));
      if (split == SSM_SPLIT_TRAIN) trigger_positions.insert(p);
    }
  }
  CHECK(trigger_positions.size() == 18);  // every p in 0..17

  auto last = registry().create_task("induction_heads", {{"input_len", "20"}, {"train_targets", "last"}});
  const Batch b = fetch(*last, SSM_SPLIT_TRAIN, 3, 0, 4);
  for (int64_t t = 0; t < 4 * 21; ++t) CHECK(b.mask[t] == (t % 21 == 20 ? 1.0f : 0.0f));
  CHECK(registry().create_task("induction_heads", {{"seq_len", "64"}, {"ih_vocab", "8"}})->info().seq_len == 65);
}

TEST_CASE("induction_heads: pure batches, independent of the batch size, other draws at other lengths",
          "[induction_heads]") {
  auto task = registry().create_task("induction_heads", {{"input_len", "30"}});
  CHECK(fetch(*task, SSM_SPLIT_TRAIN, 1, 5, 8) == fetch(*task, SSM_SPLIT_TRAIN, 1, 5, 8));
  CHECK(!(fetch(*task, SSM_SPLIT_TRAIN, 1, 5, 8) == fetch(*task, SSM_SPLIT_TRAIN, 2, 5, 8)));
  CHECK(!(fetch(*task, SSM_SPLIT_TRAIN, 1, 5, 8).x == fetch(*task, SSM_SPLIT_TEST, 1, 5, 8).x));
  const Batch big = fetch(*task, SSM_SPLIT_TEST, 1, 1, 8), small = fetch(*task, SSM_SPLIT_TEST, 1, 3, 4);
  CHECK(std::vector<int32_t>(big.x.begin() + 4 * 31, big.x.end()) == small.x);
  auto longer = registry().create_task("induction_heads", {{"input_len", "31"}});
  const Batch a = fetch(*task, SSM_SPLIT_TEST, 1, 0, 4), c = fetch(*longer, SSM_SPLIT_TEST, 1, 0, 4);
  CHECK(!std::equal(a.x.begin(), a.x.begin() + 30, c.x.begin()));
}

TEST_CASE("induction_heads: bad options and tensors are errors naming them", "[induction_heads][errors]") {
  CHECK_THROWS_WITH(registry().create_task("induction_heads", {{"input_len", "2"}}), Contains("input_len") && Contains(">= 3"));
  CHECK_THROWS_WITH(registry().create_task("induction_heads", {{"ih_vocab", "3"}}), Contains("ih_vocab"));
  CHECK_THROWS_WITH(registry().create_task("induction_heads", {{"train_targets", "some"}}), Contains("train_targets"));
  CHECK_THROWS_WITH(registry().create_task("induction_heads", {{"eval_size", "0"}}), Contains("eval_size"));
  auto task = registry().create_task("induction_heads", {{"input_len", "7"}});
  std::vector<int32_t> x(2 * 8), y(2 * 8);
  std::vector<float> m(2 * 8);
  ssm::View vx(x.data(), {2, 8}), vy(y.data(), {2, 8}), vm(m.data(), {2, 8}), vm_bad(m.data(), {2, 7});
  CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 2, vx.get(), vy.get(), nullptr), Contains("mask"));
  CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 2, vx.get(), vy.get(), vm_bad.get()), Contains("(2, 8)"));
  CHECK_THROWS_WITH(task->batch(9, 0, 0, 2, vx.get(), vy.get(), vm.get()), Contains("split"));
}

TEST_CASE("--eval-seq-len: an accuracy per length in the run log; bad lists are refused", "[induction_heads][eval_seq_len]") {
  ssm_test::TempDir dir("ssm_ih");
  const std::string tiny = "--layer s4d --task induction_heads --input-len 16 --d-model 8 --n-layers 1 --d-state 4"
                           " --batch-size 4 --eval-size 8 --steps 4 --eval-every 2 --threads 1 --quiet";
  const ssm_test::Run r = ssm_test::run_ssmhost(dir.path, tiny + " --eval-seq-len 16,40,64 --log a.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "a.h5").string());
  CHECK(log.config().at("eval_seq_len") == "16,40,64");
  const std::vector<std::string> cols = log.columns("eval");
  for (const char* c : {"accuracy_L16", "accuracy_L40", "accuracy_L64", "loss_L16", "loss_L40", "loss_L64"})
    CHECK(std::find(cols.begin(), cols.end(), c) != cols.end());
  REQUIRE(log.rows("eval") == 2);
  // The same length as training: the same numbers as the regular evaluation.
  CHECK(log.column("eval", "accuracy_L16") == log.column("eval", "metric"));
  CHECK(log.column("eval", "loss_L16") == log.column("eval", "loss"));
  for (const char* c : {"accuracy_L40", "accuracy_L64"})
    for (double v : log.column("eval", c)) CHECK((v >= 0 && v <= 1));

  // The task's default: 256, 1024 and 4096 (checked through the resolved config only: no run that long here).
  auto task = registry().create_task("induction_heads", {});
  CHECK(task->run_defaults().at("eval_seq_len") == "256,1024,4096");

  for (const char* bad : {"16,x", "0", "16,,32", "-5"}) {
    const ssm_test::Run e = ssm_test::run_ssmhost(dir.path, tiny + " --eval-seq-len " + std::string(bad) + " --log b.h5");
    CHECK(e.status != 0);
    CHECK_THAT(e.err, Contains("--eval-seq-len"));
  }
  const ssm_test::Run e = ssm_test::run_ssmhost(dir.path, tiny + " --eval-seq-len 2 --log b.h5");
  CHECK(e.status != 0);
  CHECK_THAT(e.err, Contains("--eval-seq-len 2") && Contains("seq_len") && Contains(">= 3"));
  CHECK(!std::filesystem::exists(dir.path / "b.h5"));
  // A task whose outputs change with the length cannot be compared across lengths.
  const ssm_test::Run copy = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task copy --copy-len 8 --n-tokens 2 --steps 2 --eval-seq-len 16 --quiet --log c.h5");
  CHECK(copy.status == 0);  // copy's outputs do not change with its length
}

TEST_CASE("a small S4D model learns induction heads", "[induction_heads][learning]") {
  ssm_test::TempDir dir("ssm_ih");
  // Chance is 1/14; seeds 0-3 reach 1.0 by step 1000 (only the answer scored, constant lr).
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task induction_heads --input-len 32 --train-targets last --eval-seq-len 32,128"
                " --d-model 32 --n-layers 2 --d-state 16 --batch-size 32 --lr 0.01 --schedule constant --steps 1200"
                " --eval-every 600 --threads 1 --quiet --log ih.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto log = ssmhost::RunLogReader::open((dir.path / "ih.h5").string());
  CHECK(log.summary_numbers().at("final_metric") >= 0.8);
  CHECK(log.column("eval", "accuracy_L128").back() >= 0.0);  // measured; S4D need not extrapolate
}
