// `ssmhost train` end to end: the real binary trains tiny models on the copy
// tasks; the run logs (RunLogReader) and checkpoints (load_checkpoint) it
// leaves are checked for determinism, exact resumption, content, learning,
// early stopping, and that bad input fails cleanly without leaving files.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint.hpp"
#include "error.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssmhost::RunLogReader;

namespace {

// A tiny model on a short copy task: about a millisecond a step.
const std::string kTiny =
    "--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64"
    " --d-model 16 --n-layers 1 --d-state 8 --batch-size 8 --quiet";
// The same on one thread, for tests that do not vary --threads.
const std::string kTiny1 = kTiny + " --threads 1";

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A fresh folder per test case: runs happen in work/ (so a stray default
// log, runs/..., would show), captured output lies beside it.
struct TempDir {
  fs::path root, work;
  TempDir() {
    char name[] = "/tmp/ssm_test_train_XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    root = name;
    work = root / "work";
    fs::create_directories(work);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  std::string at(const std::string& name) const { return (work / name).string(); }
  // Every entry of work/, names relative to it (folders too).
  std::set<std::string> files() const {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(work)) out.insert(fs::relative(e.path(), work).string());
    return out;
  }
};

struct Run {
  int status = -1;  // the exit code; 128 + signal if it crashed
  std::string out, err;
};

// Runs `ssmhost ARGS` (shell words) in dir.work. SSM_PLUGIN_PATH is cleared:
// the binary finds the build's plugins by itself.
Run run_ssmhost(const TempDir& dir, const std::string& args) {
  const fs::path out = dir.root / "stdout", err = dir.root / "stderr";
  const std::string cmd = "cd '" + dir.work.string() + "' && env -u SSM_PLUGIN_PATH '" SSM_TEST_SSMHOST "' " + args +
                          " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int raw = std::system(cmd.c_str());
  Run r;
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  if (raw != -1 && WIFSIGNALED(raw)) r.status = 128 + WTERMSIG(raw);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

// Runs and requires success, showing stderr if not.
void ssmhost_ok(const TempDir& dir, const std::string& args) {
  Run r = run_ssmhost(dir, args);
  INFO("ssmhost " << args << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
}

bool bit_equal(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;  // NaN never equals: a NaN loss fails too
  return true;
}

}  // namespace

TEST_CASE("same seed and threads: identical losses and evaluations; another seed differs", "[train]") {
  TempDir dir;
  const std::string args = kTiny + " --threads 2 --dropout 0.1 --steps 20 --eval-every 10";
  ssmhost_ok(dir, args + " --seed 7 --log a.h5");
  ssmhost_ok(dir, args + " --seed 7 --log b.h5");
  ssmhost_ok(dir, args + " --seed 8 --log c.h5");
  RunLogReader a = RunLogReader::open(dir.at("a.h5"));
  RunLogReader b = RunLogReader::open(dir.at("b.h5"));
  RunLogReader c = RunLogReader::open(dir.at("c.h5"));

  REQUIRE(a.rows("train") == 20);
  CHECK(bit_equal(a.column("train", "loss"), b.column("train", "loss")));
  CHECK(bit_equal(a.column("train", "metric"), b.column("train", "metric")));
  CHECK(bit_equal(a.column("train", "grad_norm"), b.column("train", "grad_norm")));
  REQUIRE(a.rows("eval") == 2);
  for (const char* col : {"step", "epoch", "loss", "metric"}) {
    INFO("eval column " << col);
    CHECK(bit_equal(a.column("eval", col), b.column("eval", col)));
  }
  CHECK_FALSE(bit_equal(a.column("train", "loss"), c.column("train", "loss")));
}

TEST_CASE("--threads 1 and --threads 2: the same losses bit for bit, and a resume may change threads", "[train]") {
  TempDir dir;
  // Large enough that every GEMM is cut into several row blocks and the
  // weight-gradient sum into several slices.
  const std::string args =
      "--layer s4d --task selective_copy --d-model 32 --n-layers 2 --d-state 8 --batch-size 16 --dropout 0.1"
      " --eval-size 32 --steps 6 --eval-every 3 --quiet --seed 3";
  ssmhost_ok(dir, args + " --threads 1 --log one.h5");
  ssmhost_ok(dir, args + " --threads 2 --log two.h5");
  ssmhost_ok(dir, args + " --threads 1 --stop-at 3 --log mixed.h5");
  ssmhost_ok(dir, "--resume mixed.h5.ckpt --threads 2 --quiet");
  RunLogReader one = RunLogReader::open(dir.at("one.h5"));
  RunLogReader two = RunLogReader::open(dir.at("two.h5"));
  RunLogReader mixed = RunLogReader::open(dir.at("mixed.h5"));
  REQUIRE(one.rows("train") == 6);
  for (const char* col : {"loss", "metric", "grad_norm"}) {
    INFO("train column " << col);
    CHECK(bit_equal(one.column("train", col), two.column("train", col)));
    CHECK(bit_equal(one.column("train", col), mixed.column("train", col)));
  }
  CHECK(bit_equal(one.column("eval", "loss"), two.column("eval", "loss")));
}

TEST_CASE("--stop-at then --resume continues to the very same losses and parameters", "[train]") {
  TempDir dir;
  const int N = 15;
  const std::string args = kTiny1 + " --dropout 0.1 --warmup 5 --eval-every 10 --steps " + std::to_string(2 * N);
  ssmhost_ok(dir, args + " --log A.h5");
  ssmhost_ok(dir, args + " --stop-at " + std::to_string(N) + " --log B.h5");
  {
    RunLogReader b = RunLogReader::open(dir.at("B.h5"));
    CHECK(b.rows("train") == static_cast<size_t>(N));
    CHECK(b.summary_text().at("status") == "interrupted");
    CHECK(b.summary_text().at("stopped_by") == "--stop-at " + std::to_string(N));
  }
  REQUIRE(ssmhost::load_checkpoint(dir.at("B.h5.ckpt")).step == N);
  ssmhost_ok(dir, "--resume B.h5.ckpt --log C.h5 --quiet");

  RunLogReader a = RunLogReader::open(dir.at("A.h5"));
  RunLogReader b = RunLogReader::open(dir.at("B.h5"));
  RunLogReader c = RunLogReader::open(dir.at("C.h5"));
  REQUIRE(a.rows("train") == static_cast<size_t>(2 * N));
  REQUIRE(c.rows("train") == static_cast<size_t>(N));
  CHECK(c.root_attrs().at("resumed_from") == "B.h5.ckpt");
  for (const char* col : {"step", "loss", "metric", "lr", "grad_norm"}) {
    INFO("train column " << col);
    std::vector<double> joined = b.column("train", col);
    const auto& rest = c.column("train", col);
    joined.insert(joined.end(), rest.begin(), rest.end());
    CHECK(bit_equal(joined, a.column("train", col)));
  }
  // The last evaluation is of the same model on the same data.
  CHECK(a.column("eval", "metric").back() == c.column("eval", "metric").back());
  CHECK(a.column("eval", "loss").back() == c.column("eval", "loss").back());

  ssmhost::CheckpointData ka = ssmhost::load_checkpoint(dir.at("A.h5.ckpt"));
  ssmhost::CheckpointData kc = ssmhost::load_checkpoint(dir.at("C.h5.ckpt"));
  CHECK(ka.step == 2 * N);
  CHECK(kc.step == 2 * N);
  REQUIRE(ka.arrays.size() == kc.arrays.size());
  REQUIRE_FALSE(ka.arrays.empty());
  for (size_t i = 0; i < ka.arrays.size(); ++i) {
    INFO("array " << ka.arrays[i].name);
    CHECK(ka.arrays[i].name == kc.arrays[i].name);
    CHECK(ka.arrays[i].shape == kc.arrays[i].shape);
    CHECK(ka.arrays[i].data == kc.arrays[i].data);  // float ==, element by element
  }
}

TEST_CASE("the run log records the run: attributes, config, plugins, every step, evaluations, summary",
          "[train]") {
  TempDir dir;
  const int steps = 25;
  ssmhost_ok(dir, kTiny1 + " --steps 25 --eval-every 10 --lr 0.01 --warmup 5 --seed 3 --log run.h5");
  RunLogReader r = RunLogReader::open(dir.at("run.h5"));
  CHECK(r.finished());
  CHECK(r.schema_version() == 1);

  const auto& root = r.root_attrs();
  for (const char* key : {"schema_version", "ssmhost_version", "git_commit", "command_line", "start_time", "end_time",
                          "host", "device", "threads"}) {
    INFO("root attribute " << key);
    REQUIRE(root.count(key) == 1);
    CHECK_FALSE(root.at(key).empty());
  }
  CHECK(root.at("device") == "cpu");
  CHECK(root.at("threads") == "1");
  CHECK_THAT(root.at("command_line"), Contains("--d-model 16") && Contains("--log run.h5"));

  const auto& config = r.config();
  const std::map<std::string, std::string> expected = {
      {"layer", "s4d"},    {"task", "copy"},       {"disc", "zoh"},     {"lr", "0.01"},       {"steps", "25"},
      {"d_model", "16"},   {"n_layers", "1"},      {"d_state", "8"},    {"seed", "3"},        {"batch_size", "8"},
      {"warmup", "5"},     {"eval_every", "10"},   {"threads", "1"},    {"copy_len", "8"},    {"n_tokens", "2"},
      {"vocab", "5"},      {"dropout", "0"},       {"schedule", "cosine"}, {"device", "cpu"}, {"norm", "layer"}};
  for (const auto& kv : expected) {
    INFO("config " << kv.first);
    REQUIRE(config.count(kv.first) == 1);
    CHECK(config.at(kv.first) == kv.second);
  }
  // Every option with a built-in default is resolved into /config.
  for (const char* key : {"epochs", "weight_decay", "clip", "patience", "eval_seed", "checkpoint_every", "stop_at",
                          "prenorm", "quiet"}) {
    INFO("config " << key);
    CHECK(config.count(key) == 1);
  }
  const auto& plugins = r.plugins();
  for (const char* id : {"s4d", "zoh", "copy"}) {
    INFO("plugin " << id);
    REQUIRE(plugins.count(id) == 1);
    CHECK_FALSE(plugins.at(id).empty());
  }

  CHECK(r.metric_name() == "accuracy");
  const std::vector<std::string> columns = {"step",     "epoch",   "loss",         "metric",     "lr",
                                            "grad_norm", "step_ms", "tokens_per_s", "peak_rss_mb"};
  for (const std::string& col : columns) {
    INFO("train column " << col);
    const auto& v = r.column("train", col);
    REQUIRE(v.size() == static_cast<size_t>(steps));
    for (double x : v) CHECK(std::isfinite(x));
  }
  const auto& step = r.column("train", "step");
  for (int i = 0; i < steps; ++i) CHECK(step[i] == i + 1);
  for (double x : r.column("train", "peak_rss_mb")) CHECK(x > 0);
  for (double x : r.column("train", "tokens_per_s")) CHECK(x > 0);
  for (double x : r.column("train", "grad_norm")) CHECK(x > 0);

  // Linear warm-up to the peak over 5 steps, then a cosine that ends near 0.
  const auto& lr = r.column("train", "lr");
  for (int i = 0; i < 5; ++i) CHECK(lr[i] == Approx(0.01 * (i + 1) / 5));
  for (int i = 5; i + 1 < steps; ++i) CHECK(lr[i + 1] < lr[i]);
  CHECK(lr.back() > 0);
  CHECK(lr.back() < 0.01 * 0.01);

  // Evaluations at steps 10, 20 and the end.
  REQUIRE(r.rows("eval") == 3);
  CHECK(r.column("eval", "step") == std::vector<double>{10, 20, 25});
  for (double m : r.column("eval", "metric")) CHECK((m >= 0 && m <= 1));

  const auto& sum = r.summary_numbers();
  for (const char* key : {"final_metric", "best_metric", "best_step", "wall_time_s", "peak_rss_mb", "n_params"}) {
    INFO("summary " << key);
    REQUIRE(sum.count(key) == 1);
    CHECK(std::isfinite(sum.at(key)));
  }
  CHECK(sum.at("final_metric") == r.column("eval", "metric").back());
  const auto& em = r.column("eval", "metric");
  CHECK(sum.at("best_metric") == *std::max_element(em.begin(), em.end()));
  CHECK(sum.at("n_params") > 0);
  CHECK(sum.at("wall_time_s") > 0);
  CHECK(sum.at("peak_rss_mb") > 0);
  CHECK(r.summary_text().at("status") == "completed");
  CHECK(fs::exists(dir.at("run.h5.ckpt")));
}

TEST_CASE("a small S4D model learns the copy task", "[train][learning]") {
  TempDir dir;
  // Chance is 1/(V-2) = 0.25; seeds 0-5 reach 0.96-0.995 by step 300.
  ssmhost_ok(dir,
             "--layer s4d --task copy --copy-len 16 --n-tokens 4 --vocab 6 --d-model 32 --n-layers 1 --d-state 16"
             " --batch-size 16 --lr 0.01 --warmup 20 --steps 400 --eval-every 100 --threads 1 --quiet --log copy.h5");
  RunLogReader r = RunLogReader::open(dir.at("copy.h5"));
  CHECK(r.summary_numbers().at("best_metric") >= 0.9);
  CHECK(r.summary_numbers().at("final_metric") >= 0.9);
  // And the training loss came well down.
  CHECK(r.column("train", "loss").back() < 0.5 * r.column("train", "loss").front());
}

TEST_CASE("a small S4D model learns selective copying", "[train][learning]") {
  TempDir dir;
  // Chance is 0.25; seeds 0-4 reach 0.81-0.88 in 800 steps.
  ssmhost_ok(dir,
             "--layer s4dz --task selective_copy --copy-len 16 --n-tokens 4 --vocab 6 --d-model 32 --n-layers 2"
             " --d-state 16 --batch-size 16 --lr 0.01 --warmup 20 --steps 800 --eval-every 400 --threads 1 --quiet"
             " --log sel.h5");
  RunLogReader r = RunLogReader::open(dir.at("sel.h5"));
  CHECK(r.summary_numbers().at("best_metric") >= 0.7);
}

TEST_CASE("bad input: a non-zero exit, a message naming the culprit, no file left behind", "[train][errors]") {
  TempDir dir;
  // A finished run to resume from, and a run log to pass where a checkpoint belongs.
  ssmhost_ok(dir, kTiny1 + " --steps 3 --log prev.h5");
  {
    std::ofstream junk(dir.at("junk.ckpt"), std::ios::binary);
    std::mt19937 rng(42);
    for (int i = 0; i < 4096; ++i) junk.put(static_cast<char>(rng() & 0xff));
  }
  const std::set<std::string> before = dir.files();
  REQUIRE(before == std::set<std::string>{"prev.h5", "prev.h5.ckpt", "junk.ckpt"});

  struct Case {
    std::string args;
    std::vector<std::string> says;  // all of these in stderr
  };
  // kTiny without the option a case replaces.
  const std::string model = "--copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64 --n-layers 1 --threads 1 --quiet";
  const std::vector<Case> cases = {
      {"--layer s5d --task copy " + model, {"s5d", "did you mean 's4d'"}},
      {"--layer s4d --task cpy " + model, {"cpy", "did you mean 'copy'"}},
      {"--layer s4d --disc zoo --task copy " + model, {"zoo", "did you mean 'zoh'"}},
      {kTiny1 + " --d-modle 16", {"--d-modle", "did you mean --d-model"}},
      {kTiny1 + " --seq-len -5", {"seq_len", "got -5"}},
      {"--layer s4d --task copy --d-state 7 " + model, {"d_state", "even", "got 7"}},
      {kTiny1 + " --lr 0", {"--lr must be > 0", "got 0"}},
      {kTiny1 + " --lr -1", {"--lr must be > 0", "got -1"}},
      {"--layer s4d --task copy --batch-size 0 " + model, {"--batch-size", "got 0"}},
      {kTiny1 + " --dropout 1.5", {"--dropout", "got 1.5"}},
      {kTiny1 + " --device cuda", {"CUDA", "not available", "--device cpu"}},
      {kTiny1 + " --log no/such/dir/x.h5", {"no/such/dir"}},
      {kTiny1 + " --resume missing.ckpt", {"missing.ckpt", "no such file"}},
      {kTiny1 + " --resume junk.ckpt", {"junk.ckpt", "not an HDF5 file"}},
      {"--resume prev.h5 --quiet", {"prev.h5", "not an ssmhost checkpoint"}},
      {"--resume prev.h5.ckpt --d-model 32 --quiet", {"d_model", "32", "16"}},
  };
  for (const Case& c : cases) {
    // Both with an explicit --log and with the default one (runs/...).
    for (const std::string& log : {std::string(" --log x.h5"), std::string()}) {
      const std::string args = c.args.find("--log") == std::string::npos ? c.args + log : c.args;
      Run r = run_ssmhost(dir, args);
      INFO("ssmhost " << args << "\nstderr: " << r.err);
      CHECK(r.status != 0);
      CHECK(r.status < 128);  // an error, not a crash
      for (const std::string& s : c.says) CHECK_THAT(r.err, Contains(s));
      CHECK(dir.files() == before);
    }
  }
}

TEST_CASE("--config FILE: its options are used, the command line wins, a bad line is named", "[train][config]") {
  TempDir dir;
  {
    std::ofstream f(dir.root / "run.conf");
    f << "# a tiny run\n"
         "steps = 5\n"
         "d_model = 16\n"
         "eval-every: 2   # dashes and ':' work too\n"
         "batch_size = 4\n";
  }
  const std::string conf = (dir.root / "run.conf").string();
  // The task and a model without --d-model or --steps: those come from the file.
  const std::string base = "--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64"
                           " --n-layers 1 --d-state 8 --threads 1 --quiet --config '" + conf + "'";
  ssmhost_ok(dir, base + " --batch-size 8 --log a.h5");
  RunLogReader a = RunLogReader::open(dir.at("a.h5"));
  CHECK(a.rows("train") == 5);
  CHECK(a.config().at("steps") == "5");
  CHECK(a.config().at("d_model") == "16");
  CHECK(a.config().at("eval_every") == "2");
  CHECK(a.config().at("batch_size") == "8");  // the command line wins
  CHECK(a.rows("eval") == 3);                  // steps 2, 4, 5

  ssmhost_ok(dir, base + " --steps 3 --d-model 8 --log b.h5");
  RunLogReader b = RunLogReader::open(dir.at("b.h5"));
  CHECK(b.rows("train") == 3);
  CHECK(b.config().at("steps") == "3");
  CHECK(b.config().at("d_model") == "8");
  CHECK(b.config().at("batch_size") == "4");
  // The model really has the width asked for: a narrower one has fewer parameters.
  CHECK(b.summary_numbers().at("n_params") < a.summary_numbers().at("n_params"));

  {
    std::ofstream f(dir.root / "bad.conf");
    f << "steps = 5\n"
         "\n"
         "this line has no separator\n";
  }
  const std::set<std::string> before = dir.files();
  const std::string bad = (dir.root / "bad.conf").string();
  Run r = run_ssmhost(dir, kTiny1 + " --config '" + bad + "' --log c.h5");
  INFO("stderr: " << r.err);
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains(bad + ":3"));
  CHECK(dir.files() == before);

  // An option nobody declares, in the file, is refused like one on the command line.
  {
    std::ofstream f(dir.root / "typo.conf");
    f << "d_modle = 16\n";
  }
  Run t = run_ssmhost(dir, kTiny1 + " --config '" + (dir.root / "typo.conf").string() + "' --log d.h5");
  INFO("stderr: " << t.err);
  CHECK(t.status != 0);
  CHECK_THAT(t.err, Contains("--d-modle") && Contains("--d-model"));
  CHECK(dir.files() == before);
}

TEST_CASE("--patience stops a run whose evaluation no longer improves", "[train][early_stop]") {
  TempDir dir;
  // With lr 1e-12 the weights do not move: the second evaluation equals the first.
  ssmhost_ok(dir, kTiny1 + " --lr 1e-12 --steps 100 --eval-every 5 --patience 1 --log es.h5");
  RunLogReader r = RunLogReader::open(dir.at("es.h5"));
  CHECK(r.summary_text().at("status") == "stopped_early");
  CHECK(r.rows("train") < 100);
  CHECK(r.rows("eval") == 2);
  CHECK(r.rows("train") == 10);
  CHECK(r.summary_numbers().at("steps") == 10);
  CHECK(ssmhost::load_checkpoint(dir.at("es.h5.ckpt")).step == 10);
}
