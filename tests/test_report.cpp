// `ssmhost report`: the multi-run table (columns, differing options, --sort,
// --filter, --format table|csv|json|markdown), the single-run view, bad input
// (a message per file, the rest still shown), a crashed run, and --follow on a
// live run. Every run is a tiny real training run of the real binary.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "h5util.hpp"
#include "runlog.hpp"
#include "spawn.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using ssm_test::run_ssmhost;

namespace {

const std::string kTiny =
    "--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64"
    " --d-model 16 --n-layers 1 --d-state 8 --batch-size 8 --quiet --threads 1";

void train_ok(const fs::path& dir, const std::string& args) {
  ssm_test::Run r = run_ssmhost(dir, kTiny + " " + args);
  INFO("ssmhost " << args << "\nstderr: " << r.err);
  REQUIRE(r.status == 0);
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l)) out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string f;
  while (std::getline(ss, f, sep)) out.push_back(f);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// The CSV output as header -> column index and rows of fields.
struct Csv {
  std::map<std::string, size_t> col;
  std::vector<std::vector<std::string>> rows;
  std::string at(size_t r, const std::string& c) const { return rows.at(r).at(col.at(c)); }
};
Csv parse_csv(const std::string& text) {
  Csv csv;
  auto ls = lines_of(text);
  REQUIRE(!ls.empty());
  auto head = split(ls[0], ',');
  for (size_t i = 0; i < head.size(); ++i) csv.col[head[i]] = i;
  for (size_t i = 1; i < ls.size(); ++i) csv.rows.push_back(split(ls[i], ','));
  return csv;
}

// Three finished runs in one folder: zoh and bilinear at lr 0.01, zoh at lr 0.003.
struct Runs {
  ssm_test::TempDir tmp{"ssm_test_report"};
  fs::path dir = tmp.path / "runs";
  Runs() {
    fs::create_directories(dir);
    train_ok(dir, "--steps 30 --eval-every 10 --lr 0.01 --disc zoh --log a_zoh.h5");
    train_ok(dir, "--steps 30 --eval-every 10 --lr 0.01 --disc bilinear --log b_bilinear.h5");
    train_ok(dir, "--steps 20 --eval-every 10 --lr 0.003 --disc zoh --log c_zoh_slow.h5");
  }
};

Runs& runs() {
  static Runs r;
  return r;
}

}  // namespace

TEST_CASE("report of several runs: one row each, fixed columns, differing options only", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  auto ls = lines_of(r.out);
  REQUIRE(ls.size() == 5);  // header, rule, three rows
  for (const char* col : {"run", "layer", "disc", "task", "seq_len", "params", "steps", "metric", "best", "final",
                          "step_ms", "tokens_per_s", "peak_mb", "wall_s", "status"})
    CHECK_THAT(ls[0], Contains(col));
  CHECK_THAT(ls[0], Contains("lr"));         // differs between the runs
  CHECK_THAT(ls[0], !Contains("d_model"));   // the same in all
  CHECK_THAT(ls[0], !Contains("seed"));
  CHECK_THAT(ls[0], !Contains("inner"));     // no run has one
  CHECK(ls[2].rfind("a_zoh.h5 ", 0) == 0);  // named below the directory given
  CHECK_THAT(ls[2], Contains("completed"));
  CHECK_THAT(ls[3], Contains("bilinear"));
}

TEST_CASE("report --format csv holds the logs' own numbers", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs --format csv");
  REQUIRE(r.status == 0);
  Csv csv = parse_csv(r.out);
  REQUIRE(csv.rows.size() == 3);
  ssmhost::RunLogReader a = ssmhost::RunLogReader::open((R.dir / "a_zoh.h5").string());
  CHECK(std::stod(csv.at(0, "best")) == a.summary_numbers().at("best_metric"));
  CHECK(std::stod(csv.at(0, "final")) == a.summary_numbers().at("final_metric"));
  CHECK(std::stod(csv.at(0, "params")) == a.summary_numbers().at("n_params"));
  CHECK(csv.at(0, "steps") == "30");
  CHECK(csv.at(2, "steps") == "20");
  CHECK(csv.at(0, "seq_len") == "12");  // no --seq-len: the input length, copy_len + 2 n_tokens
  CHECK(csv.at(0, "lr") == "0.01");
  CHECK(csv.at(2, "lr") == "0.003");
  CHECK(csv.at(1, "disc") == "bilinear");
  CHECK(std::stod(csv.at(0, "step_ms")) > 0);
  CHECK(std::stod(csv.at(0, "tokens_per_s")) > 0);
  CHECK(std::stod(csv.at(0, "peak_mb")) > 1);
  CHECK(csv.at(0, "status") == "completed");
}

TEST_CASE("report --sort orders rows, -KEY descending, missing last", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs --format csv --sort -steps,lr");
  REQUIRE(r.status == 0);
  Csv csv = parse_csv(r.out);
  REQUIRE(csv.rows.size() == 3);
  CHECK(csv.at(0, "steps") == "30");
  CHECK(csv.at(1, "steps") == "30");
  CHECK(csv.at(2, "steps") == "20");
  r = run_ssmhost(R.tmp.path, "report runs --format csv --sort lr");
  csv = parse_csv(r.out);
  CHECK(csv.at(0, "lr") == "0.003");
  r = run_ssmhost(R.tmp.path, "report runs --format csv --sort -best");
  csv = parse_csv(r.out);
  CHECK(std::stod(csv.at(0, "best")) >= std::stod(csv.at(1, "best")));
  CHECK(std::stod(csv.at(1, "best")) >= std::stod(csv.at(2, "best")));
}

TEST_CASE("report --filter on columns and options", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs --format csv --filter disc=zoh");
  REQUIRE(r.status == 0);
  CHECK(parse_csv(r.out).rows.size() == 2);
  r = run_ssmhost(R.tmp.path, "report runs --format csv --filter disc=zoh --filter lr=0.010");  // numbers as numbers
  CHECK(parse_csv(r.out).rows.size() == 1);
  r = run_ssmhost(R.tmp.path, "report runs --format csv --filter disc=zoh,bilinear --filter 'steps>=30'");
  CHECK(parse_csv(r.out).rows.size() == 2);
  r = run_ssmhost(R.tmp.path, "report runs --format csv --filter disc!=zoh");
  Csv csv = parse_csv(r.out);
  REQUIRE(csv.rows.size() == 1);
  CHECK(csv.at(0, "disc") == "bilinear");
  r = run_ssmhost(R.tmp.path, "report runs --filter colour=red");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("colour"));
  r = run_ssmhost(R.tmp.path, "report runs --filter justakey");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("KEY=VALUE"));
}

TEST_CASE("report --format json and markdown", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs --format json");
  REQUIRE(r.status == 0);
  CHECK(r.out.rfind("[", 0) == 0);
  CHECK_THAT(r.out, Contains("\"disc\": \"bilinear\""));
  CHECK_THAT(r.out, Contains("\"steps\": 30"));
  CHECK_THAT(r.out, Contains("\"path\": \"runs/a_zoh.h5\""));
  size_t objects = 0;
  for (size_t p = 0; (p = r.out.find("{\"path\"", p)) != std::string::npos; ++p) ++objects;
  CHECK(objects == 3);
  // A real JSON parser agrees, where python3 is there.
  const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  std::ofstream((R.tmp.path / "out.json").string()) << r.out;
  const std::string cmd = py + " -c \"import json,sys; d=json.load(open(sys.argv[1])); assert len(d)==3 and "
                               "d[1]['disc']=='bilinear' and d[0]['params']>0\" " + (R.tmp.path / "out.json").string();
  if (std::system((py + " -c 'import json' 2>/dev/null").c_str()) == 0) CHECK(std::system(cmd.c_str()) == 0);

  r = run_ssmhost(R.tmp.path, "report runs --format markdown");
  REQUIRE(r.status == 0);
  auto ls = lines_of(r.out);
  REQUIRE(ls.size() == 5);
  for (auto& l : ls) CHECK(l.rfind("|", 0) == 0);
  CHECK_THAT(ls[1], Contains("---:"));  // numbers right-aligned
  CHECK_THAT(ls[1], Contains(":---"));
}

TEST_CASE("report of one run log keeps the single-run view; --table makes it a row", "[report]") {
  Runs& R = runs();
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report runs/a_zoh.h5");
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("== runs/a_zoh.h5"));
  CHECK_THAT(r.out, Contains("config:"));
  CHECK_THAT(r.out, Contains("summary:"));
  CHECK_THAT(r.out, Contains("eval (accuracy)"));
  r = run_ssmhost(R.tmp.path, "report runs/a_zoh.h5 --table");
  REQUIRE(r.status == 0);
  CHECK(lines_of(r.out).size() == 3);
}

TEST_CASE("report: bad files are named with their reason, the others are still shown", "[report]") {
  Runs& R = runs();
  const fs::path bad = R.tmp.path / "bad";
  fs::create_directories(bad / "empty");
  fs::copy_file(R.dir / "a_zoh.h5", bad / "good.h5");
  std::ofstream(bad / "text.h5") << "this is not HDF5\n";
  // A newer schema version.
  fs::copy_file(R.dir / "a_zoh.h5", bad / "newer.h5");
  {
    ssmhost::h5::SilenceErrors quiet;
    hid_t f = H5Fopen((bad / "newer.h5").c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    ssmhost::h5::set_attr_int64(f, "schema_version", 99, "test");
    H5Fclose(f);
  }
  // A file cut short, as a crash while the file system wrote it leaves one.
  {
    std::ifstream in(R.dir / "a_zoh.h5", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(bad / "truncated.h5", std::ios::binary).write(bytes.data(), 3000);
  }
  // An HDF5 file that is not a run log.
  {
    hid_t f = H5Fcreate((bad / "other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(f >= 0);
    H5Fclose(f);
  }
  ssm_test::Run r = run_ssmhost(R.tmp.path, "report bad bad/empty missing.h5");
  INFO(r.out << "\n---\n" << r.err);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("text.h5': not an HDF5 file"));
  CHECK_THAT(r.err, Contains("newer.h5': run log schema version 99 is not supported"));
  CHECK_THAT(r.err, Contains("truncated.h5"));
  CHECK_THAT(r.err, Contains("other.h5': not an ssmhost run log"));
  CHECK_THAT(r.err, Contains("'bad/empty': no run logs"));
  CHECK_THAT(r.err, Contains("'missing.h5': no such file"));
  CHECK_THAT(r.err, !Contains("HDF5-DIAG"));  // no HDF5 stack dumps
  auto ls = lines_of(r.out);
  REQUIRE(ls.size() == 3);  // the good one still printed
  CHECK_THAT(ls[2], Contains("good.h5"));
  // Only an empty directory: nothing to show, a message, status 1.
  r = run_ssmhost(R.tmp.path, "report bad/empty");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("no run logs"));
  r = run_ssmhost(R.tmp.path, "report runs --format xml");
  CHECK(r.status == 2);
}

namespace {

// `ssmhost ARGS` in the background (absolute paths in ARGS), output to files in dir.
pid_t start_ssmhost(const fs::path& dir, const std::vector<std::string>& args) {
  std::vector<std::string> a = {"-u", "SSM_PLUGIN_PATH", SSM_TEST_SSMHOST};
  a.insert(a.end(), args.begin(), args.end());
  return ssmhost::spawn_process("/usr/bin/env", a, (dir / "bg.out").string(), (dir / "bg.err").string());
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string w;
  while (ss >> w) out.push_back(w);
  return out;
}

// Waits until the log at `path` has an evaluation row (or time runs out).
bool wait_for_eval(const fs::path& path, double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    try {
      if (ssmhost::RunLogReader::open(path.string()).rows("eval") > 0) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

TEST_CASE("report on a run killed mid-write: crashed; --follow says so at once", "[report]") {
  ssm_test::TempDir tmp("ssm_test_report_crash");
  const fs::path log = tmp.path / "killed.h5";
  auto args = words(kTiny + " --steps 1000000 --eval-every 50");
  args.push_back("--log");
  args.push_back(log.string());
  pid_t pid = start_ssmhost(tmp.path, args);
  const bool ready = wait_for_eval(log, 60);
  kill(pid, SIGKILL);
  ssmhost::wait_process(pid);
  REQUIRE(ready);
  ssm_test::Run r = run_ssmhost(tmp.path, "report killed.h5 --format csv");
  INFO(r.err);
  REQUIRE(r.status == 0);
  Csv csv = parse_csv(r.out);
  REQUIRE(csv.rows.size() == 1);
  CHECK(csv.at(0, "status") == "crashed");
  CHECK(std::stod(csv.at(0, "steps")) >= 50);
  CHECK(!csv.at(0, "best").empty());  // from /eval, as there is no summary
  const auto t0 = std::chrono::steady_clock::now();
  r = run_ssmhost(tmp.path, "report --follow killed.h5 --interval 0.1 --stale 100");
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 50);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("no process writes it any more: the run crashed or was killed"));
  CHECK_THAT(r.out, Contains("step"));
}

TEST_CASE("report --follow watches a live run until it ends", "[report]") {
  ssm_test::TempDir tmp("ssm_test_report_follow");
  const fs::path log = tmp.path / "live.h5";
  auto args = words(kTiny + " --steps 6000 --eval-every 1000");
  args.push_back("--log");
  args.push_back(log.string());
  pid_t pid = start_ssmhost(tmp.path, args);
  // Started before the log exists: it waits for it.
  ssm_test::Run r = run_ssmhost(tmp.path, "report --follow live.h5 --interval 0.05 --stale 120");
  ssmhost::ChildExit e = ssmhost::wait_process(pid);
  INFO(r.out << "\n---\n" << r.err);
  REQUIRE(e.status == 0);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("/6000"));
  CHECK_THAT(r.out, Contains("== live.h5"));  // the final single-run view
  CHECK_THAT(r.out, Contains("completed"));
  r = run_ssmhost(tmp.path, "report --follow live.h5 runs");
  CHECK(r.status == 2);
}
