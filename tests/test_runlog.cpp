// The HDF5 run log: schema v1 as written, read back with the plain C API,
// with RunLogReader, and by a second process while the run is live (SWMR).
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_support.hpp"
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "error.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using ssmhost::EvalRow;
using ssmhost::RunLog;
using ssmhost::RunLogReader;
using ssmhost::RunLogSetup;
using ssmhost::TrainRow;

namespace {

struct TempDir : ssm_test::TempDir {
  TempDir() : ssm_test::TempDir("ssm_test_runlog") {}
};

RunLogSetup example_setup() {
  RunLogSetup setup;
  setup.root_attrs = {{"ssmhost_version", "0.1.0"},   {"git_commit", "abc123"},
                      {"command_line", "ssmhost --layer s4d"}, {"start_time", ssmhost::utc_timestamp()},
                      {"host", "testhost"},           {"device", "cpu"},
                      {"threads", "2"}};
  setup.config = {{"layer", "s4d"}, {"lr", "0.001"}, {"seq-len", "784"}};
  setup.plugins = {{"s4d", "layer", "1.2.0", "1.1", "/lib/s4d.so", std::string(64, 'a')},
                   {"zoh", "disc", "1.0.0", "1.1", "/lib/zoh.so", std::string(64, 'b')}};
  setup.metric_name = "accuracy";
  setup.eval_extra_metrics = {"bpc"};
  return setup;
}

TrainRow train_row(int64_t step) {
  TrainRow row;
  row.step = step;
  row.epoch = step / 10;
  row.loss = 2.0 / (1.0 + step);
  row.metric = 0.01 * step;
  row.lr = 1e-3;
  row.grad_norm = 0.5;
  row.step_ms = 12.5;
  row.tokens_per_s = 1000.0 + step;
  row.peak_rss_mb = 256.0;
  return row;
}

EvalRow eval_row(int64_t step) {
  EvalRow row;
  row.step = step;
  row.epoch = step / 10;
  row.loss = 1.0 / (1.0 + step);
  row.metric = 0.5;
  row.extra["bpc"] = 1.25;
  return row;
}

// The message of the ssmhost::Error that `action` throws ("" if none).
std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ssmhost::Error& e) {
    return e.what();
  }
  return "";
}

// --- C API checks of the written file

hid_t dataset_type_of(hid_t file, const std::string& name, hsize_t* length, hsize_t* max_length) {
  hid_t dataset = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  REQUIRE(dataset >= 0);
  hid_t space = H5Dget_space(dataset);
  REQUIRE(H5Sget_simple_extent_ndims(space) == 1);
  H5Sget_simple_extent_dims(space, length, max_length);
  hid_t dcpl = H5Dget_create_plist(dataset);
  CHECK(H5Pget_layout(dcpl) == H5D_CHUNKED);
  hid_t type = H5Dget_type(dataset);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Dclose(dataset);
  return type;
}

void check_column(hid_t file, const std::string& name, hid_t expected_type, hsize_t expected_length) {
  INFO("dataset " << name);
  hsize_t length = 0, max_length = 0;
  hid_t type = dataset_type_of(file, name, &length, &max_length);
  CHECK(H5Tequal(type, expected_type) > 0);
  CHECK(length == expected_length);
  CHECK(max_length == H5S_UNLIMITED);
  H5Tclose(type);
}

std::string read_string_attr(hid_t obj, const std::string& name) {
  hid_t attr = H5Aopen(obj, name.c_str(), H5P_DEFAULT);
  REQUIRE(attr >= 0);
  hid_t type = H5Aget_type(attr);
  CHECK(H5Tget_class(type) == H5T_STRING);
  CHECK(H5Tis_variable_str(type) > 0);
  char* text = nullptr;
  REQUIRE(H5Aread(attr, type, &text) >= 0);
  std::string value = text;
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(attr);
  return value;
}

// Runs this test executable again as a second process that only runs the
// hidden test case `name`, with `env` set; returns its exit status.
int run_child_test(const std::string& name, const std::map<std::string, std::string>& env, const fs::path& log) {
  for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::string command = "'" + exe + "' '" + name + "' > '" + log.string() + "' 2>&1";
  int status = std::system(command.c_str());
  for (const auto& entry : env) unsetenv(entry.first.c_str());
  std::ifstream in(log);
  std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (status != 0) WARN("child test output:\n" << output);
  return status;
}

// Starts this test executable as a background process running only the
// hidden test case `name`; returns its pid.
pid_t start_child_test(const std::string& name, const fs::path& log) {
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  pid_t child = fork();
  if (child == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    if (out != nullptr) dup2(fileno(stdout), 2);
    execl(exe.c_str(), exe.c_str(), name.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

bool wait_for_file(const fs::path& path, double seconds) {
  for (int i = 0; i < seconds * 100; ++i) {
    if (fs::exists(path)) return true;
    usleep(10000);
  }
  return false;
}

bool have_h5py() { return std::system("/usr/bin/python3 -c 'import h5py' > /dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("run log: schema v1 as seen through the HDF5 C API", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5").string();
  {
    RunLog log = RunLog::create(path, example_setup());
    for (int64_t step = 1; step <= 25; ++step) log.append_train(train_row(step));
    for (int64_t step : {10, 20, 25}) log.append_eval(eval_row(step));
    log.flush();
    log.write_summary({{"final_metric", 0.5}, {"best_metric", 0.75}, {"best_step", 20}, {"wall_time_s", 3.5},
                       {"peak_rss_mb", 256}, {"n_params", 12345}},
                      {{"status", "finished"}});
    log.close();
    log.close();  // idempotent
    CHECK_FALSE(log.is_open());
  }

  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(file >= 0);

  // Root attributes.
  int64_t schema_version = 0;
  hid_t version_attr = H5Aopen(file, "schema_version", H5P_DEFAULT);
  REQUIRE(version_attr >= 0);
  REQUIRE(H5Aread(version_attr, H5T_NATIVE_INT64, &schema_version) >= 0);
  H5Aclose(version_attr);
  CHECK(schema_version == 1);
  CHECK(read_string_attr(file, "format") == "ssmhost-runlog");
  for (const char* name : {"ssmhost_version", "git_commit", "command_line", "start_time", "host", "device",
                           "threads", "end_time"}) {
    INFO("root attribute " << name);
    CHECK(H5Aexists(file, name) > 0);
  }
  CHECK(read_string_attr(file, "command_line") == "ssmhost --layer s4d");

  // /config and /config/plugins.
  hid_t config = H5Gopen2(file, "config", H5P_DEFAULT);
  REQUIRE(config >= 0);
  CHECK(read_string_attr(config, "layer") == "s4d");
  CHECK(read_string_attr(config, "seq-len") == "784");
  hid_t plugins = H5Gopen2(config, "plugins", H5P_DEFAULT);
  REQUIRE(plugins >= 0);
  CHECK(read_string_attr(plugins, "s4d") == "1.2.0");
  CHECK(read_string_attr(plugins, "zoh") == "1.0.0");
  H5Gclose(plugins);
  H5Gclose(config);

  // /train and /eval columns.
  for (const char* name : {"step", "epoch"}) check_column(file, std::string("train/") + name, H5T_STD_I64LE, 25);
  for (const char* name : {"loss", "metric", "lr", "grad_norm", "step_ms", "tokens_per_s", "peak_rss_mb"})
    check_column(file, std::string("train/") + name, H5T_IEEE_F64LE, 25);
  for (const char* name : {"step", "epoch"}) check_column(file, std::string("eval/") + name, H5T_STD_I64LE, 3);
  for (const char* name : {"loss", "metric", "bpc"}) check_column(file, std::string("eval/") + name, H5T_IEEE_F64LE, 3);
  for (const char* group_name : {"train", "eval"}) {
    hid_t group = H5Gopen2(file, group_name, H5P_DEFAULT);
    REQUIRE(group >= 0);
    CHECK(read_string_attr(group, "metric_name") == "accuracy");
    H5Gclose(group);
  }

  // /summary.
  hid_t summary = H5Gopen2(file, "summary", H5P_DEFAULT);
  REQUIRE(summary >= 0);
  double best_metric = 0;
  hid_t best_attr = H5Aopen(summary, "best_metric", H5P_DEFAULT);
  REQUIRE(best_attr >= 0);
  REQUIRE(H5Aread(best_attr, H5T_NATIVE_DOUBLE, &best_metric) >= 0);
  H5Aclose(best_attr);
  CHECK(best_metric == 0.75);
  for (const char* name : {"final_metric", "best_step", "wall_time_s", "peak_rss_mb", "n_params"})
    CHECK(H5Aexists(summary, name) > 0);
  CHECK(read_string_attr(summary, "status") == "finished");
  H5Gclose(summary);

  CHECK(H5Fclose(file) >= 0);
}

TEST_CASE("run log: RunLogReader reads back what was written", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5").string();
  {
    RunLog log = RunLog::create(path, example_setup());
    for (int64_t step = 1; step <= 25; ++step) log.append_train(train_row(step));
    EvalRow without_bpc = eval_row(5);
    without_bpc.extra.clear();
    log.append_eval(without_bpc);
    log.append_eval(eval_row(25));
    log.write_summary({{"best_metric", 0.75}}, {{"note", "ok"}});
    // No explicit flush or close: the destructor does both.
  }
  RunLogReader reader = RunLogReader::open(path);
  CHECK(reader.schema_version() == 1);
  CHECK(reader.finished());
  CHECK(reader.root_attrs().at("schema_version") == "1");
  CHECK(reader.root_attrs().at("host") == "testhost");
  CHECK(reader.config().at("lr") == "0.001");
  CHECK(reader.plugins().at("s4d") == "1.2.0");
  REQUIRE(reader.plugin_records().size() == 2);
  CHECK(reader.plugin_records()[0].id == "s4d");
  CHECK(reader.plugin_records()[0].kind == "layer");
  CHECK(reader.plugin_records()[0].path == "/lib/s4d.so");
  CHECK(reader.plugin_records()[0].sha256 == std::string(64, 'a'));
  CHECK(reader.plugin_records()[1].abi == "1.1");
  CHECK(reader.metric_name() == "accuracy");

  CHECK(reader.columns("train") == std::vector<std::string>{"step", "epoch", "loss", "metric", "lr", "grad_norm",
                                                            "step_ms", "tokens_per_s", "peak_rss_mb"});
  CHECK(reader.columns("eval") == std::vector<std::string>{"step", "epoch", "loss", "metric", "bpc"});
  REQUIRE(reader.rows("train") == 25);
  REQUIRE(reader.rows("eval") == 2);
  for (int64_t step = 1; step <= 25; ++step) {
    CHECK(reader.column("train", "step")[step - 1] == step);
    CHECK(reader.column("train", "loss")[step - 1] == train_row(step).loss);
  }
  CHECK(std::isnan(reader.column("eval", "bpc")[0]));  // not given in that row
  CHECK(reader.column("eval", "bpc")[1] == 1.25);
  CHECK(reader.summary_numbers().at("best_metric") == 0.75);
  CHECK(reader.summary_text().at("note") == "ok");

  std::string missing = error_of([&] { reader.column("train", "nope"); });
  CHECK_THAT(missing, Catch::Contains(path) && Catch::Contains("nope"));
}

// Runs only as the second process of the SWMR test below.
TEST_CASE("run log: SWMR reader child", "[.swmr_child]") {
  const char* path = std::getenv("SSM_RUNLOG_CHILD_PATH");
  const char* expect = std::getenv("SSM_RUNLOG_CHILD_TRAIN_ROWS");
  REQUIRE(path != nullptr);
  REQUIRE(expect != nullptr);
  const hsize_t expected_rows = std::stoull(expect);

  // The plain C API, as any HDF5 program would read a live file.
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
  REQUIRE(file >= 0);
  hsize_t length = 0, max_length = 0;
  hid_t type = dataset_type_of(file, "train/loss", &length, &max_length);
  H5Tclose(type);
  CHECK(length == expected_rows);
  std::vector<int64_t> steps(length);
  hid_t steps_dataset = H5Dopen2(file, "train/step", H5P_DEFAULT);
  REQUIRE(H5Dread(steps_dataset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()) >= 0);
  H5Dclose(steps_dataset);
  for (size_t i = 0; i < steps.size(); ++i) CHECK(steps[i] == static_cast<int64_t>(i + 1));
  H5Fclose(file);
  H5Pclose(fapl);

  // And ssmhost's own reader.
  RunLogReader reader = RunLogReader::open(path);
  CHECK(reader.rows("train") == expected_rows);
  CHECK_FALSE(reader.finished());
}

TEST_CASE("run log: a second process reads flushed rows while the writer is open (SWMR)", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "live.h5").string();
  RunLog log = RunLog::create(path, example_setup());
  for (int64_t step = 1; step <= 25; ++step) log.append_train(train_row(step));
  log.flush();

  CHECK(run_child_test("[.swmr_child]", {{"SSM_RUNLOG_CHILD_PATH", path}, {"SSM_RUNLOG_CHILD_TRAIN_ROWS", "25"}},
                       dir.path / "child1.log") == 0);

  // The same reader, later: it sees the rows flushed since.
  for (int64_t step = 26; step <= 30; ++step) log.append_train(train_row(step));
  log.flush();
  CHECK(run_child_test("[.swmr_child]", {{"SSM_RUNLOG_CHILD_PATH", path}, {"SSM_RUNLOG_CHILD_TRAIN_ROWS", "30"}},
                       dir.path / "child2.log") == 0);

  // h5py, as docs/runlog.md tells users to read a live run.
  if (have_h5py()) {
    const fs::path script = dir.path / "live.py";
    std::ofstream(script) << "import sys, h5py\n"
                             "f = h5py.File(sys.argv[1], 'r', libver='latest', swmr=True)\n"
                             "assert f['train/loss'].shape == (30,), f['train/loss'].shape\n"
                             "assert list(f['train/step'][:5]) == [1, 2, 3, 4, 5]\n"
                             "assert f.attrs['host'] == 'testhost'\n"
                             "assert 'end_time' not in f.attrs\n";
    std::string command = "/usr/bin/python3 '" + script.string() + "' '" + path + "'";
    CHECK(std::system(command.c_str()) == 0);
  } else {
    WARN("/usr/bin/python3 with h5py not found: h5py SWMR check skipped");
  }
  log.close();
  CHECK(RunLogReader::open(path).finished());
}

// Runs only as the background reader of the test below: holds the file open
// for SWMR reading from "ready" until "release" appears.
TEST_CASE("run log: SWMR reader that holds the file", "[.swmr_holder]") {
  const char* path = std::getenv("SSM_RUNLOG_CHILD_PATH");
  const char* flags = std::getenv("SSM_RUNLOG_CHILD_FLAGS");
  REQUIRE(path != nullptr);
  REQUIRE(flags != nullptr);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
  REQUIRE(file >= 0);
  std::ofstream(fs::path(flags) / "ready").close();
  CHECK(wait_for_file(fs::path(flags) / "release", 30));
  H5Fclose(file);
  H5Pclose(fapl);
}

TEST_CASE("run log: close() writes the summary while a live reader holds the file", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "watched.h5").string();
  RunLog log = RunLog::create(path, example_setup());
  for (int64_t step = 1; step <= 5; ++step) log.append_train(train_row(step));
  log.flush();

  setenv("SSM_RUNLOG_CHILD_PATH", path.c_str(), 1);
  setenv("SSM_RUNLOG_CHILD_FLAGS", dir.path.c_str(), 1);
  pid_t reader = start_child_test("[.swmr_holder]", dir.path / "holder.log");
  unsetenv("SSM_RUNLOG_CHILD_PATH");
  unsetenv("SSM_RUNLOG_CHILD_FLAGS");
  REQUIRE(reader > 0);
  REQUIRE(wait_for_file(dir.path / "ready", 30));

  // The reader's shared lock must not stop the summary from being written.
  log.write_summary({{"best_metric", 0.5}}, {});
  std::string message = error_of([&] { log.close(); });
  CHECK(message == "");

  std::ofstream(dir.path / "release").close();
  int status = 0;
  REQUIRE(waitpid(reader, &status, 0) == reader);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));

  RunLogReader finished = RunLogReader::open(path);
  CHECK(finished.finished());
  CHECK(finished.summary_numbers().at("best_metric") == 0.5);
  CHECK(finished.rows("train") == 5);
}

TEST_CASE("run log: a crashed run keeps every flushed row and stays readable", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "crashed.h5").string();
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Dies without closing: flushed rows must survive, buffered ones are lost.
    RunLogSetup setup = example_setup();
    setup.flush_interval_s = 1e9;
    RunLog log = RunLog::create(path, setup);
    for (int64_t step = 1; step <= 10; ++step) log.append_train(train_row(step));
    log.flush();
    for (int64_t step = 11; step <= 13; ++step) log.append_train(train_row(step));
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));

  RunLogReader reader = RunLogReader::open(path);
  CHECK(reader.rows("train") == 10);
  CHECK_FALSE(reader.finished());
  CHECK(reader.summary_numbers().empty());
}

TEST_CASE("run log: creating in a missing directory names the path and leaves no file", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "no" / "such" / "run.h5").string();
  std::string message = error_of([&] { RunLog::create(path, example_setup()); });
  CHECK_THAT(message, Catch::Contains(path) && Catch::Contains("does not exist"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("run log: misuse is an error naming the file", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5").string();

  RunLogSetup clashing = example_setup();
  clashing.eval_extra_metrics = {"loss"};
  CHECK_THAT(error_of([&] { RunLog::create(path, clashing); }), Catch::Contains(path) && Catch::Contains("loss"));
  CHECK_FALSE(fs::exists(path));

  RunLogSetup reserved = example_setup();
  reserved.root_attrs["end_time"] = "now";
  CHECK_THAT(error_of([&] { RunLog::create(path, reserved); }), Catch::Contains("end_time"));

  RunLog log = RunLog::create(path, example_setup());
  EvalRow undeclared = eval_row(1);
  undeclared.extra["perplexity"] = 3.0;
  CHECK_THAT(error_of([&] { log.append_eval(undeclared); }),
             Catch::Contains(path) && Catch::Contains("perplexity"));
  log.close();
  CHECK_THAT(error_of([&] { log.append_train(train_row(1)); }), Catch::Contains(path));
}

TEST_CASE("run log: the reader rejects files that are not run logs, naming them", "[runlog]") {
  TempDir dir;
  const std::string missing = (dir.path / "missing.h5").string();
  CHECK_THAT(error_of([&] { RunLogReader::open(missing); }), Catch::Contains(missing) && Catch::Contains("no such file"));

  const std::string garbage = (dir.path / "garbage.h5").string();
  std::ofstream(garbage) << "this is not HDF5 at all, just some text long enough to look like a file\n";
  CHECK_THAT(error_of([&] { RunLogReader::open(garbage); }),
             Catch::Contains(garbage) && Catch::Contains("not an HDF5 file"));

  const std::string foreign = (dir.path / "foreign.h5").string();
  hid_t file = H5Fcreate(foreign.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(file >= 0);
  H5Fclose(file);
  CHECK_THAT(error_of([&] { RunLogReader::open(foreign); }),
             Catch::Contains(foreign) && Catch::Contains("not an ssmhost run log"));
}

TEST_CASE("run log: a continued log starts with the old rows and events; create replaces a file only when complete",
          "[runlog][resume]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5").string();
  {
    RunLog log = RunLog::create(path, example_setup());
    for (int64_t step = 1; step <= 30; ++step) log.append_train(train_row(step));
    for (int64_t step : {10, 20, 30}) log.append_eval(eval_row(step));
    log.close();  // no summary: as a killed run leaves it (but readable normally)
  }
  RunLogReader old = RunLogReader::open(path);
  REQUIRE(old.rows("train") == 30);
  CHECK(old.events().empty());
  CHECK(old.eval_extra_metrics() == std::vector<std::string>{"bpc"});

  // What the trainer does on --resume from step 20: keep rows up to 20, add an event.
  RunLogSetup setup = example_setup();
  for (const TrainRow& row : old.train_rows())
    if (row.step <= 20) setup.train_rows.push_back(row);
  for (const EvalRow& row : old.eval_rows())
    if (row.step <= 20) setup.eval_rows.push_back(row);
  setup.events = {{20, "2024-05-01T12:00:00Z", "resume", "continued from checkpoint 'run.h5.ckpt' at step 20"}};
  {
    // A bad setup fails before anything is written: the old file stays whole.
    RunLogSetup bad = setup;
    bad.eval_extra_metrics = {"loss"};
    CHECK_THROWS_AS(RunLog::create(path, bad), ssmhost::Error);
    CHECK(RunLogReader::open(path).rows("train") == 30);
  }
  {
    RunLog log = RunLog::create(path, setup);
    for (int64_t step = 21; step <= 25; ++step) log.append_train(train_row(step));
    log.append_eval(eval_row(25));
    log.write_summary({}, {{"status", "completed"}});
    log.close();
  }
  for (const auto& entry : fs::directory_iterator(dir.path))
    CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
  RunLogReader r = RunLogReader::open(path);
  CHECK(r.status() == "completed");
  REQUIRE(r.rows("train") == 25);
  for (size_t i = 0; i < 25; ++i) {
    CHECK(r.column("train", "step")[i] == static_cast<double>(i + 1));
    CHECK(r.column("train", "loss")[i] == train_row(static_cast<int64_t>(i + 1)).loss);
  }
  CHECK(r.column("eval", "step") == std::vector<double>{10, 20, 25});
  CHECK(r.column("eval", "bpc")[1] == eval_row(20).extra.at("bpc"));
  REQUIRE(r.events().size() == 1);
  CHECK(r.events()[0].kind == "resume");
  CHECK(r.events()[0].step == 20);
  CHECK(r.events()[0].time == "2024-05-01T12:00:00Z");
  CHECK(r.config() == old.config());
}

TEST_CASE("run log: rows a failed writer never filled (step 0) are not read", "[runlog]") {
  TempDir dir;
  const std::string path = (dir.path / "run.h5").string();
  {
    RunLog log = RunLog::create(path, example_setup());
    for (int64_t step = 1; step <= 5; ++step) log.append_train(train_row(step));
    TrainRow hole = train_row(6);
    hole.step = 0;  // what a chunk that never reached the disk reads as
    log.append_train(hole);
    log.append_train(train_row(7));
    log.close();
  }
  CHECK(RunLogReader::open(path).rows("train") == 5);
}
