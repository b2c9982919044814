// A run log and a checkpoint that nothing can destroy (issue 11), tried on
// the real binary: two writers on one log, re-using a log path, kill -9 then
// --resume into the same log, SIGINT and SIGTERM, a full disk at log
// creation, at a flush and at a checkpoint (an LD_PRELOAD library makes
// chosen writes fail with ENOSPC: tests/faultfs/faultfs.c), and the bad
// inputs of the issue (threads, config files, --steps against a task's
// --epochs, `info TASK`).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint.hpp"
#include "error.hpp"
#include "runlog.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssmhost::RunLogReader;

namespace {

// A tiny model on a short copy task: about 0.2 ms a step on one thread.
const std::string kModel =
    "--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64 --d-model 16 --n-layers 1"
    " --d-state 8 --quiet";
const std::string kTiny = kModel + " --batch-size 8 --threads 1";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Dir : ssm_test::TempDir {
  Dir() : ssm_test::TempDir("ssm_test_safety") {}
  std::string at(const std::string& name) const { return (path / name).string(); }
  bool has(const std::string& name) const { return fs::exists(path / name); }
  // Names in the folder (not hidden ones: the captured output).
  std::set<std::string> files() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) {
      const std::string name = e.path().filename().string();
      if (name[0] != '.') out.insert(name);
    }
    return out;
  }
};

// Runs `[ENV...] ssmhost ARGS` in dir and waits for it.
ssm_test::Run run(const Dir& dir, const std::string& args, const std::string& env = "") {
  const fs::path out = dir.path / ".out", err = dir.path / ".err";
  const std::string cmd = "cd '" + dir.path.string() + "' && env -u SSM_PLUGIN_PATH " + env + " '" SSM_TEST_SSMHOST
                          "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int raw = std::system(cmd.c_str());
  ssm_test::Run r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

void ok(const Dir& dir, const std::string& args) {
  ssm_test::Run r = run(dir, args);
  INFO("ssmhost " << args << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
}

// Starts `ssmhost ARGS` in dir without waiting; the pid is ssmhost's own.
pid_t spawn(const Dir& dir, const std::string& args, const std::string& tag) {
  const std::string cmd = "cd '" + dir.path.string() + "' && exec env -u SSM_PLUGIN_PATH '" SSM_TEST_SSMHOST "' " +
                          args + " >'" + (dir.path / ("." + tag + ".out")).string() + "' 2>'" +
                          (dir.path / ("." + tag + ".err")).string() + "'";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  REQUIRE(pid > 0);
  return pid;
}

// The exit status (128 + signal when killed).
int wait_for(pid_t pid) {
  int raw = 0;
  REQUIRE(waitpid(pid, &raw, 0) == pid);
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

// Waits (up to 30 s) until path exists; false if the process ended first.
bool wait_until_exists(const fs::path& path, pid_t pid) {
  for (int i = 0; i < 3000; ++i) {
    if (fs::exists(path)) return true;
    int raw = 0;
    if (waitpid(pid, &raw, WNOHANG) == pid) return fs::exists(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool bit_equal(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;
  return true;
}

// The same run in its step, epoch, loss and metric columns (train and eval), bit for bit.
void check_same_run(const std::string& a_path, const std::string& b_path) {
  RunLogReader a = RunLogReader::open(a_path), b = RunLogReader::open(b_path);
  for (const char* col : {"step", "epoch", "loss", "metric", "lr", "grad_norm"}) {
    INFO("train column " << col << ": " << a.rows("train") << " vs " << b.rows("train") << " rows");
    CHECK(bit_equal(a.column("train", col), b.column("train", col)));
  }
  for (const char* col : {"step", "epoch", "loss", "metric"}) {
    INFO("eval column " << col);
    CHECK(bit_equal(a.column("eval", col), b.column("eval", col)));
  }
}

}  // namespace

TEST_CASE("one writer per log: a second run on a live log is refused naming the first; readers do not block",
          "[safety][lock]") {
  Dir dir;
  const std::string args = kTiny + " --steps 12000 --eval-every 2000 --log live.h5";
  pid_t first = spawn(dir, args, "first");
  REQUIRE(wait_until_exists(dir.path / "live.h5", first));
  REQUIRE(dir.has("live.h5.lock"));

  // A second writer, with and without --overwrite: refused, naming the first.
  for (const std::string extra : {"", " --overwrite"}) {
    ssm_test::Run second = run(dir, kTiny + " --steps 5 --log live.h5" + extra);
    INFO("stderr: " << second.err);
    CHECK(second.status == 1);
    CHECK_THAT(second.err, Contains("being written by process " + std::to_string(first)));
  }
  // Readers do not wait for the writer.
  const auto t0 = std::chrono::steady_clock::now();
  RunLogReader live = RunLogReader::open(dir.at("live.h5"));
  CHECK_FALSE(live.finished());
  ssm_test::Run report = run(dir, "report live.h5");
  CHECK(report.status == 0);
  CHECK_THAT(report.out, Contains("live: being written by process " + std::to_string(first)));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));

  // The first run is unaffected.
  REQUIRE(wait_for(first) == 0);
  RunLogReader done = RunLogReader::open(dir.at("live.h5"));
  CHECK(done.status() == "completed");
  CHECK(done.rows("train") == 12000);
  CHECK(done.config().at("steps") == "12000");
  CHECK_FALSE(dir.has("live.h5.lock"));
}

TEST_CASE("a stale lock (its process is gone) is taken over", "[safety][lock]") {
  Dir dir;
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  REQUIRE(wait_for(dead) == 0);
  {
    std::ofstream lock(dir.at("s.h5.lock"));
    lock << "pid=" << dead << "\nhost=elsewhere-or-here\nstarted=2024-01-01T00:00:00Z\ncommand=ssmhost ...\n";
  }
  // Another host's lock cannot be checked: refused, with the way out.
  ssm_test::Run r = run(dir, kTiny + " --steps 3 --log s.h5");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("process " + std::to_string(dead)) && Contains("delete the lock file"));
  {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    std::ofstream lock(dir.at("s.h5.lock"));
    lock << "pid=" << dead << "\nhost=" << host << "\nstarted=2024-01-01T00:00:00Z\ncommand=ssmhost ...\n";
  }
  ok(dir, kTiny + " --steps 3 --log s.h5");
  CHECK(RunLogReader::open(dir.at("s.h5")).status() == "completed");
  CHECK_FALSE(dir.has("s.h5.lock"));
}

TEST_CASE("no silent overwrite: an existing log is replaced only with --overwrite, and only by a run that starts",
          "[safety][overwrite]") {
  Dir dir;
  ok(dir, kTiny + " --steps 5 --log r.h5");
  const std::string log = slurp(dir.at("r.h5")), ckpt = slurp(dir.at("r.h5.ckpt"));
  const std::set<std::string> before = dir.files();

  ssm_test::Run again = run(dir, kTiny + " --steps 3 --log r.h5");
  INFO("stderr: " << again.err);
  CHECK(again.status == 1);
  CHECK_THAT(again.err, Contains("r.h5") && Contains("exists") && Contains("--overwrite"));
  // A run that fails before it starts, even with --overwrite, changes nothing.
  for (const std::string bad : {" --batch-size 0", " --lr -1 --batch-size 8", " --threads 100000 --batch-size 8"}) {
    ssm_test::Run r = run(dir, kModel + " --steps 3 --log r.h5 --overwrite" + bad);
    INFO("ssmhost ..." << bad << "\nstderr: " << r.err);
    CHECK(r.status != 0);
    CHECK(r.status < 128);
  }
  ssm_test::Run huge = run(dir, kModel + " --steps 3 --log r.h5 --overwrite --batch-size 100000000000");
  CHECK_THAT(huge.err, Contains("GiB") && Contains("--batch-size"));
  // Its checkpoint alone is protected too.
  fs::copy_file(dir.path / "r.h5.ckpt", dir.path / "other.h5.ckpt");
  ssm_test::Run orphan = run(dir, kTiny + " --steps 3 --log other.h5");
  CHECK(orphan.status == 1);
  CHECK_THAT(orphan.err, Contains("other.h5.ckpt") && Contains("--overwrite"));
  fs::remove(dir.path / "other.h5.ckpt");

  CHECK(dir.files() == before);
  CHECK(slurp(dir.at("r.h5")) == log);  // byte for byte
  CHECK(slurp(dir.at("r.h5.ckpt")) == ckpt);

  ok(dir, kTiny + " --steps 3 --log r.h5 --overwrite");
  CHECK(RunLogReader::open(dir.at("r.h5")).rows("train") == 3);
  CHECK(ssmhost::load_checkpoint(dir.at("r.h5.ckpt")).step == 3);

  // Without --log every run gets a fresh name, even two in the same second.
  ok(dir, kTiny + " --steps 2");
  ok(dir, kTiny + " --steps 2");
  std::set<std::string> logs;
  for (const auto& e : fs::directory_iterator(dir.path / "runs"))
    if (e.path().extension() == ".h5") logs.insert(e.path().filename().string());
  CHECK(logs.size() == 2);
}

TEST_CASE("kill -9, SIGINT and SIGTERM, then --resume: one gap-free log equal to an uninterrupted run's",
          "[safety][resume][signals]") {
  Dir dir;
  const std::string run_args = kTiny + " --dropout 0.1 --steps 12000 --eval-every 1000";
  ok(dir, run_args + " --log ref.h5");

  std::mt19937 random(11);
  SECTION("kill -9 after a checkpoint") {
    pid_t p = spawn(dir, run_args + " --checkpoint-every 500 --log k.h5", "k");
    REQUIRE(wait_until_exists(dir.path / "k.h5.ckpt", p));
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 300));
    kill(p, SIGKILL);
    REQUIRE(wait_for(p) == 128 + SIGKILL);
    RunLogReader killed = RunLogReader::open(dir.at("k.h5"));  // readable as it is
    CHECK_FALSE(killed.finished());
    const int64_t ckpt_step = ssmhost::load_checkpoint(dir.at("k.h5.ckpt")).step;
    INFO("killed with the checkpoint at step " << ckpt_step << ", " << killed.rows("train") << " rows in the log");
    CHECK(killed.rows("train") >= static_cast<size_t>(ckpt_step));  // rows are flushed before each checkpoint

    ssm_test::Run r = run(dir, "--resume k.h5.ckpt --quiet");  // the natural command: continues k.h5
    INFO("stderr: " << r.err);
    REQUIRE(r.status == 0);
    check_same_run(dir.at("ref.h5"), dir.at("k.h5"));
    RunLogReader resumed = RunLogReader::open(dir.at("k.h5"));
    CHECK(resumed.status() == "completed");
    REQUIRE(resumed.events().size() == 1);
    CHECK(resumed.events()[0].kind == "resume");
    CHECK(resumed.events()[0].step == ckpt_step);
    CHECK_FALSE(dir.has("k.h5.lock"));
    CHECK(dir.files() == std::set<std::string>{"ref.h5", "ref.h5.ckpt", "k.h5", "k.h5.ckpt"});
  }
  for (int sig : {SIGINT, SIGTERM}) {
    DYNAMIC_SECTION("signal " << sig << " without --checkpoint-every") {
      pid_t p = spawn(dir, run_args + " --log s.h5", "s");
      REQUIRE(wait_until_exists(dir.path / "s.h5", p));  // the log exists: the handlers are in place
      std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
      kill(p, sig);
      REQUIRE(wait_for(p) == 128 + sig);  // 130, 143
      RunLogReader stopped = RunLogReader::open(dir.at("s.h5"));
      CHECK(stopped.finished());
      CHECK(stopped.status() == "interrupted");
      CHECK(stopped.summary_text().at("stopped_by") == (sig == SIGINT ? "SIGINT" : "SIGTERM"));
      const int64_t ckpt_step = ssmhost::load_checkpoint(dir.at("s.h5.ckpt")).step;
      CHECK(static_cast<int64_t>(stopped.rows("train")) == ckpt_step);
      CHECK(stopped.summary_numbers().at("steps") == ckpt_step);
      CHECK_THAT(slurp(dir.path / ".s.err"), Contains("--resume s.h5.ckpt"));

      ssm_test::Run r = run(dir, "--resume s.h5.ckpt --log s.h5 --quiet");
      INFO("stderr: " << r.err);
      REQUIRE(r.status == 0);
      check_same_run(dir.at("ref.h5"), dir.at("s.h5"));
      CHECK(RunLogReader::open(dir.at("s.h5")).status() == "completed");
    }
  }
}

TEST_CASE("a second SIGINT stops at once and leaves the log readable", "[safety][signals]") {
  Dir dir;
  // About half a second a step.
  pid_t p = spawn(dir,
                  "--layer s4d --task copy --copy-len 256 --n-tokens 8 --vocab 5 --eval-size 8 --d-model 256"
                  " --n-layers 2 --d-state 16 --batch-size 48 --quiet --threads 1 --steps 1000 --log slow.h5",
                  "slow");
  REQUIRE(wait_until_exists(dir.path / "slow.h5", p));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(p, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(p, SIGINT);
  REQUIRE(wait_for(p) == 130);
  CHECK_THAT(slurp(dir.path / ".slow.err"), Contains("stopped at once"));
  RunLogReader r = RunLogReader::open(dir.at("slow.h5"));  // readable, not closed
  CHECK_FALSE(r.finished());
  CHECK_FALSE(dir.has("slow.h5.lock"));
  CHECK_FALSE(dir.has("slow.h5.ckpt"));
}

TEST_CASE("a full disk at log creation, at a flush and at a checkpoint: a clear message, no crash, the previous "
          "checkpoint intact, and --resume finishes the run",
          "[safety][io]") {
  Dir dir;
  const std::string run_args = kTiny + " --steps 400 --eval-every 50 --checkpoint-every 100";
  const std::string faulty = "LD_PRELOAD='" SSM_TEST_FAULTFS "' ";
  ok(dir, run_args + " --log ref.h5");

  SECTION("at log creation: nothing replaced, nothing left") {
    ok(dir, kTiny + " --steps 3 --log old.h5");
    const std::string old = slurp(dir.at("old.h5"));
    const std::set<std::string> before = dir.files();
    for (const std::string log : {"new.h5", "old.h5"}) {
      ssm_test::Run r = run(dir, run_args + " --overwrite --log " + log, faulty + "SSM_FAULT_FILE='" + log + ".tmp-*'");
      INFO("stderr: " << r.err);
      CHECK(r.status == 1);
      CHECK_THAT(r.err, Contains("run log '" + log + "'") && Contains("No space left on device"));
    }
    CHECK(dir.files() == before);
    CHECK(slurp(dir.at("old.h5")) == old);
  }
  SECTION("at a flush after the first checkpoint") {
    ssm_test::Run r = run(dir, run_args + " --log f.h5", faulty + "SSM_FAULT_FILE=f.h5 SSM_FAULT_ARM_ON=f.h5.ckpt");
    INFO("stderr: " << r.err);
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Contains("run log 'f.h5'") && Contains("No space left on device") &&
                          Contains("checkpoint of step 100 is intact"));
    CHECK(ssmhost::load_checkpoint(dir.at("f.h5.ckpt")).step == 100);
    RunLogReader f = RunLogReader::open(dir.at("f.h5"));  // left readable
    CHECK(f.rows("train") >= 100);
    CHECK(dir.files() == std::set<std::string>{"ref.h5", "ref.h5.ckpt", "f.h5", "f.h5.ckpt"});
    ok(dir, "--resume f.h5.ckpt --quiet");
    check_same_run(dir.at("ref.h5"), dir.at("f.h5"));
  }
  SECTION("at the second checkpoint") {
    ssm_test::Run r =
        run(dir, run_args + " --log c.h5", faulty + "SSM_FAULT_FILE='c.h5.ckpt.tmp-*' SSM_FAULT_SKIP_FILES=1");
    INFO("stderr: " << r.err);
    CHECK(r.status == 1);
    CHECK_THAT(r.err, Contains("checkpoint 'c.h5.ckpt'") && Contains("No space left on device"));
    CHECK(ssmhost::load_checkpoint(dir.at("c.h5.ckpt")).step == 100);
    CHECK(dir.files() == std::set<std::string>{"ref.h5", "ref.h5.ckpt", "c.h5", "c.h5.ckpt"});  // no temporary file
    RunLogReader c = RunLogReader::open(dir.at("c.h5"));
    CHECK(c.finished());
    CHECK(c.status() == "failed");
    CHECK(c.summary_numbers().at("failed_step") == 200);
    CHECK_THAT(c.summary_text().at("message"), Contains("No space left on device"));
    ssm_test::Run report = run(dir, "report c.h5");
    CHECK_THAT(report.out, Contains("failed at step 200") && Contains("No space left on device"));
    ok(dir, "--resume c.h5.ckpt --quiet");
    check_same_run(dir.at("ref.h5"), dir.at("c.h5"));
  }
}

TEST_CASE("a failed run says so in its log: status failed, the message and the step", "[safety][status]") {
  Dir dir;
  // lr 1e6 without clipping: the loss overflows within a few steps.
  ssm_test::Run r = run(dir, kTiny + " --steps 200 --lr 1000000 --eval-every 1000 --log nan.h5");
  REQUIRE(r.status == 1);
  CHECK_THAT(r.err, Contains("lower --lr"));
  RunLogReader log = RunLogReader::open(dir.at("nan.h5"));
  CHECK(log.finished());
  CHECK(log.status() == "failed");
  CHECK_THAT(log.summary_text().at("message"), Contains("lower --lr"));
  CHECK(log.summary_numbers().at("failed_step") >= 1);
  CHECK(log.summary_numbers().at("failed_step") == log.rows("train") + 1);
  CHECK_THAT(run(dir, "report nan.h5").out, Contains("status: failed at step"));
}

TEST_CASE("the command line wins, and bounds: threads, config files, --steps against a task's --epochs",
          "[safety][options]") {
  Dir dir;
  SECTION("--threads far beyond the cores") {
    ssm_test::Run r = run(dir, kModel + " --steps 2 --threads 100000 --log t.h5");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("--threads 100000") && Contains("per core"));
    CHECK(dir.files().empty());
  }
  SECTION("a config file: a duplicate key and a directory are errors") {
    {
      std::ofstream f(dir.at("dup.conf"));
      f << "steps = 5\nlr = 0.01\nsteps = 7\n";
    }
    ssm_test::Run dup = run(dir, kTiny + " --config dup.conf --log t.h5");
    CHECK(dup.status == 1);
    CHECK_THAT(dup.err, Contains("dup.conf:3") && Contains("'steps' is given twice") && Contains("line 1"));
    fs::create_directories(dir.path / "confdir");
    ssm_test::Run folder = run(dir, kTiny + " --config confdir --log t.h5");
    CHECK(folder.status == 1);
    CHECK_THAT(folder.err, Contains("confdir") && Contains("directory"));
    CHECK_FALSE(dir.has("t.h5"));
  }
  SECTION("--steps given clears --epochs from lower layers, and the other way round") {
    {
      std::ofstream f(dir.at("epochs.conf"));
      f << "epochs = 3\n";
    }
    // A finite training set: tiny IDX files (8 images of 2x2, labels 0..3).
    fs::create_directories(dir.path / "idx");
    auto put = [&](const std::string& name, uint32_t magic, std::vector<uint32_t> dims, const std::string& data) {
      std::ofstream f(dir.path / "idx" / name, std::ios::binary);
      auto be32 = [&](uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) f.put(static_cast<char>(v >> s));
      };
      be32(magic);
      for (uint32_t d : dims) be32(d);
      f << data;
    };
    for (const std::string split : {"train", "t10k"}) {
      put(split + "-images-idx3-ubyte", 0x803, {8, 2, 2}, std::string(32, '\x40'));
      put(split + "-labels-idx1-ubyte", 0x801, {8}, std::string("\0\1\2\3\0\1\2\3", 8));
    }
    const std::string task = "--layer s4d --task seq_image --dataset idx --dataset-dir idx --d-model 8 --n-layers 1"
                             " --d-state 4 --batch-size 2 --quiet --threads 1";
    ok(dir, task + " --steps 2 --log a.h5");  // the task's default --epochs 1 would be 4 steps
    CHECK(RunLogReader::open(dir.at("a.h5")).rows("train") == 2);
    ok(dir, task + " --config epochs.conf --log b.h5");  // 3 epochs of 4 steps
    CHECK(RunLogReader::open(dir.at("b.h5")).rows("train") == 12);
    ok(dir, task + " --config epochs.conf --steps 3 --log c.h5");  // the command line beats the file
    CHECK(RunLogReader::open(dir.at("c.h5")).rows("train") == 3);

    ssm_test::Run info = run(dir, "info seq_image");
    CHECK(info.status == 0);
    CHECK_THAT(info.out, Contains("Run defaults") && Contains("--epochs") && Contains("--batch-size"));
  }
}

TEST_CASE("a resume on another thread count continues quietly and records it in the resume event", "[safety][resume]") {
  Dir dir;
  ok(dir, kTiny + " --steps 20 --stop-at 10 --log t.h5");
  ssm_test::Run r = run(dir, "--resume t.h5.ckpt --threads 2 --quiet");
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());  // the losses are the same on any thread count: nothing to warn about
  RunLogReader log = RunLogReader::open(dir.at("t.h5"));
  REQUIRE(log.events().size() == 1);
  CHECK_THAT(log.events()[0].detail, Contains("--threads 2 instead of 1"));
  CHECK(log.rows("train") == 20);
}
