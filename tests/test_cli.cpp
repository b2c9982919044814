// The ssmhost command line, run as a real process: exit codes, what goes to
// stdout and what to stderr. The build's own plugins are listed by default
// too; these tests only rely on the test-only plugins in tests/plugins/.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <ssm/abi.h>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

const std::string kCases = SSM_TEST_ERROR_PLUGIN_DIR;

std::string case_dir(const std::string& name) { return kCases + "/" + name; }

struct Run {
  int status = -1;  // the exit code; 128 + signal if it crashed
  std::string out, err;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A folder for the captured output of each run, removed at exit.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() : path(std::filesystem::temp_directory_path() / ("ssmhost_test_cli." + std::to_string(getpid()))) {
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Runs `ssmhost ARGS` (ARGS as shell words) with stdout and stderr captured
// apart. SSM_PLUGIN_PATH is cleared so the caller's environment cannot add plugins.
Run ssmhost(const std::string& args) {
  static const ScratchDir dir;
  std::filesystem::path out = dir.path / "stdout", err = dir.path / "stderr";
  std::string cmd = "env -u SSM_PLUGIN_PATH '" SSM_TEST_SSMHOST "' " + args + " >'" + out.string() + "' 2>'" +
                    err.string() + "'";
  int raw = std::system(cmd.c_str());
  Run r;
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  if (raw != -1 && WIFSIGNALED(raw)) r.status = 128 + WTERMSIG(raw);
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  return parts;
}

// The subcommand names listed under "Subcommands:" in the general help.
std::vector<std::string> listed_subcommands(const std::string& help) {
  std::vector<std::string> names;
  bool in_section = false;
  for (const std::string& line : split(help, '\n')) {
    if (line == "Subcommands:") {
      in_section = true;
    } else if (in_section) {
      if (line.rfind("  ", 0) != 0) break;  // the section ends at the first unindented line
      std::istringstream words(line);
      std::string name;
      words >> name;
      names.push_back(name);
    }
  }
  return names;
}

}  // namespace

TEST_CASE("--version prints the host and ABI versions", "[cli]") {
  Run r = ssmhost("--version");
  INFO(r.err);
  CHECK(r.status == 0);
  std::string abi = std::to_string(SSM_ABI_MAJOR) + "." + std::to_string(SSM_ABI_MINOR);
  CHECK_THAT(r.out, StartsWith(std::string("ssmhost ") + SSMHOST_VERSION));
  CHECK_THAT(r.out, Contains("plugin ABI " + abi));
}

TEST_CASE("--help mentions every subcommand, and each has its own help", "[cli]") {
  Run r = ssmhost("--help");
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("--plugin-path"));
  CHECK_THAT(r.out, Contains("--version"));
  std::vector<std::string> names = listed_subcommands(r.out);
  for (const char* required : {"train", "list", "info", "help"}) {
    INFO("subcommand " << required);
    CHECK(std::find(names.begin(), names.end(), required) != names.end());
  }
  for (const std::string& name : names) {
    Run h = ssmhost("help " + name);
    INFO("ssmhost help " << name << "\n" << h.err);
    CHECK(h.status == 0);
    CHECK_FALSE(h.out.empty());
  }
  Run dash_h = ssmhost("-h");
  CHECK(dash_h.status == 0);
  CHECK(dash_h.out == r.out);
}

TEST_CASE("help list describes its options", "[cli]") {
  Run r = ssmhost("help list");
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Contains("--format"));
  CHECK_THAT(r.out, Contains("tsv"));
  CHECK_THAT(r.out, Contains("--kind"));
  CHECK_THAT(r.out, Contains("--plugin-path"));
  CHECK(ssmhost("list --help").out == r.out);  // the same text either way
}

TEST_CASE("help for an unknown subcommand is a usage error", "[cli]") {
  Run r = ssmhost("help frobnicate");
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("frobnicate"));
}

TEST_CASE("list --format tsv: the header, then one 7-column row per plugin", "[cli]") {
  SECTION("with only the default search path") {
    Run r = ssmhost("list --format tsv");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(split(r.out, '\n').at(0) == "id\tkind\tversion\tabi\tpath\tdescription\tstatus");
  }
  SECTION("with the good plugin's folder added") {
    Run r = ssmhost("list --format tsv --plugin-path '" + case_dir("good_layer") + "'");
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    std::vector<std::string> lines = split(r.out, '\n');
    REQUIRE_FALSE(lines.empty());
    CHECK(lines[0] == "id\tkind\tversion\tabi\tpath\tdescription\tstatus");
    std::vector<std::string> good;
    for (const std::string& line : lines)
      if (line.rfind("test_good\t", 0) == 0) good = split(line, '\t');
    REQUIRE(good.size() == 7);
    CHECK(good[1] == "layer");
    CHECK(good[2] == "0.1.0");
    CHECK(good[3] == std::to_string(SSM_ABI_MAJOR) + "." + std::to_string(SSM_ABI_MINOR));
    CHECK(good[4] == std::filesystem::canonical(case_dir("good_layer") + "/test_good.so").string());
    CHECK(good[5] == "test-only layer: y = gain * x");
    CHECK(good[6] == "ok");
  }
  SECTION("--kind filters the rows") {
    Run r = ssmhost("list --format tsv --kind disc --plugin-path '" + case_dir("good_layer") + "'");
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, !Contains("test_good"));
  }
}

TEST_CASE("list with bad plugin files: exit 0, a warning per file on stderr", "[cli]") {
  SECTION("a text file named .so") {
    Run r = ssmhost("list --plugin-path '" + case_dir("not_elf") + "' --plugin-path '" + case_dir("good_layer") + "'");
    CHECK(r.status == 0);
    CHECK_THAT(r.err, Contains("warning"));
    CHECK_THAT(r.err, Contains("not_a_plugin.so"));
    CHECK_THAT(r.err, Contains("not a shared library"));
    CHECK_THAT(r.out, Contains("test_good"));  // the good plugin is still listed
    CHECK_THAT(r.out, !Contains("not_a_plugin"));  // warnings stay off stdout
  }
  SECTION("every error case at once") {
    std::string paths;
    for (const char* c : {"not_elf", "no_entry", "abi_major", "duplicate", "unresolved", "init_fails"})
      paths += " --plugin-path '" + case_dir(c) + "'";
    Run r = ssmhost("list --format tsv" + paths);
    CHECK(r.status == 0);
    for (const char* file : {"not_a_plugin.so", "no_entry.so", "abi_major.so", "dup_b.so", "unresolved.so",
                             "init_fails.so"}) {
      INFO("file " << file << "\nstderr:\n" << r.err);
      CHECK_THAT(r.err, Contains(file));
    }
    CHECK_THAT(r.out, Contains("test_dup\t"));  // the first copy wins and is listed
  }
  SECTION("a plugin path that does not exist") {
    std::string missing = case_dir("no_such_folder");
    Run r = ssmhost("list --plugin-path '" + missing + "'");
    CHECK(r.status == 0);
    CHECK_THAT(r.err, Contains(missing));
  }
}

TEST_CASE("info prints a plugin's options", "[cli]") {
  Run r = ssmhost("info test_good --plugin-path '" + case_dir("good_layer") + "'");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("test_good (layer plugin, version 0.1.0"));
  CHECK_THAT(r.out, Contains("test-only layer: y = gain * x"));
  CHECK_THAT(r.out, Contains("test_good.so"));
  CHECK_THAT(r.out, Contains("--gain"));
  CHECK_THAT(r.out, Contains("float"));
  CHECK_THAT(r.out, Contains("default: 2.0"));
  CHECK_THAT(r.out, Contains("output = gain * input"));
  CHECK_THAT(r.out, Contains("--d-model"));  // underscores become dashes
}

TEST_CASE("info for an unknown plugin fails with a message", "[cli]") {
  SECTION("nothing close") {
    Run r = ssmhost("info nosuchplugin");
    CHECK(r.status != 0);
    CHECK(r.status != 2);  // a well-formed command line: not a usage error
    CHECK_THAT(r.err, Contains("nosuchplugin"));
    CHECK(r.out.empty());
  }
  SECTION("a misspelling suggests the close match") {
    Run r = ssmhost("info test_god --plugin-path '" + case_dir("good_layer") + "'");
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Contains("did you mean 'test_good'"));
  }
  SECTION("no id at all is a usage error") {
    Run r = ssmhost("info");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("plugin id"));
  }
}

TEST_CASE("command-line mistakes exit 2 with a message", "[cli]") {
  SECTION("an unknown subcommand") {
    Run r = ssmhost("frobnicate");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("unknown subcommand 'frobnicate'"));
  }
  SECTION("list --format xml") {
    Run r = ssmhost("list --format xml");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("--format"));
    CHECK_THAT(r.err, Contains("xml"));
    CHECK(r.out.empty());
  }
  SECTION("list --kind with a bad kind") {
    Run r = ssmhost("list --kind widget");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("--kind"));
  }
  SECTION("an option list does not know") {
    Run r = ssmhost("list --no-such-option");
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Contains("no-such-option"));
  }
}

TEST_CASE("a user plugin with a built-in's id: warned, marked in list, an error with --strict-plugins", "[cli]") {
  const std::string user = std::filesystem::canonical(case_dir("shadow_zoh") + "/zoh.so").string();
  Run r = ssmhost("list --format tsv --plugin-path '" + case_dir("shadow_zoh") + "'");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("warning: plugin name 'zoh' is provided twice: " + user) && Contains("is used") &&
                        Contains("lib/ssm/plugins/zoh.so") && Contains("--strict-plugins"));
  std::vector<std::vector<std::string>> zoh_rows;
  for (const std::string& line : split(r.out, '\n'))
    if (line.rfind("zoh\t", 0) == 0) zoh_rows.push_back(split(line, '\t'));
  REQUIRE(zoh_rows.size() == 2);
  CHECK(zoh_rows[0][4] == user);
  CHECK(zoh_rows[0][6] == "ok");
  CHECK_THAT(zoh_rows[1][4], Contains("lib/ssm/plugins/zoh.so"));
  CHECK(zoh_rows[1][6] == "shadowed by " + user);

  Run table = ssmhost("list --plugin-path '" + case_dir("shadow_zoh") + "'");
  CHECK_THAT(table.out, Contains("[shadowed by " + user + "]"));

  Run strict = ssmhost("--strict-plugins list --plugin-path '" + case_dir("shadow_zoh") + "'");
  CHECK(strict.status == 1);
  CHECK_THAT(strict.err, Contains("--strict-plugins") && Contains(user) && Contains("lib/ssm/plugins/zoh.so"));
  Run strict_train = ssmhost("--layer s4dz --task copy --steps 1 --strict-plugins --plugin-path '" +
                             case_dir("shadow_zoh") + "'");
  CHECK(strict_train.status == 1);
  CHECK_THAT(strict_train.err, Contains("plugins clash"));
}

TEST_CASE("two discretizations with one suffix: warned, the first keeps it", "[cli]") {
  Run r = ssmhost("info s4dz --plugin-path '" + case_dir("suffix_clash") + "'");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.err, Contains("discretization suffix 'z' is declared twice") && Contains("clash_z.so") &&
                        Contains("lib/ssm/plugins/zoh.so"));
  CHECK_THAT(r.out, Contains("'s4dz' = layer 's4d' with discretization 'test_clash_z'"));
}

TEST_CASE("a suffix of more than one letter is refused with the reason", "[cli]") {
  Run r = ssmhost("list --plugin-path '" + case_dir("bad_suffix") + "'");
  CHECK(r.status == 0);
  CHECK_THAT(r.err, Contains("bad_suffix.so") && Contains("'zz'") && Contains("one lowercase letter"));
  CHECK_THAT(r.out, !Contains("test_bad_suffix"));
}

TEST_CASE("a layer without a discretization refuses --disc and a suffix, naming the layers that take one", "[cli]") {
  const std::string path = " --plugin-path '" + case_dir("good_layer") + "'";
  Run by_flag = ssmhost("--layer test_good --disc zoh --task copy --steps 1" + path);
  INFO(by_flag.err);
  CHECK(by_flag.status == 2);
  CHECK_THAT(by_flag.err, Contains("--disc zoh") && Contains("'test_good' takes no discretization") &&
                              Contains("layers that take one: ") && Contains("s4d"));
  Run by_suffix = ssmhost("--layer test_goodz --task copy --steps 1" + path);
  INFO(by_suffix.err);
  CHECK(by_suffix.status == 1);
  CHECK_THAT(by_suffix.err, Contains("'test_good' takes no discretization") && Contains("s4d"));
}

TEST_CASE("info shows plugin-valued options and what a plugin serves", "[cli]") {
  Run r = ssmhost("info s4d");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Contains("--disc") && Contains("[a disc plugin: ") && Contains("zoh"));
  CHECK_THAT(r.out, Contains("Serves: cpu float32, cpu float64"));
  Run disc = ssmhost("info zoh");
  CHECK_THAT(disc.out, Contains("Serves: cpu complex64, cpu complex128"));
}
