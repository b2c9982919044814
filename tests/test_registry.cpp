// The registry's error cases, one test-only plugin folder each (tests/plugins/):
// every bad file becomes an issue that names the file and the reason, and the
// good plugin loaded next to it stays findable and creatable.
#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "registry.hpp"

using Catch::Matchers::Contains;
using ssmhost::Registry;

namespace {

const std::string kCases = SSM_TEST_ERROR_PLUGIN_DIR;

std::string case_dir(const std::string& name) { return kCases + "/" + name; }

// The path the registry reports for a file: it canonicalises what it loads.
std::string canonical_file(const std::string& case_name, const std::string& file) {
  return std::filesystem::canonical(case_dir(case_name) + "/" + file).string();
}

// The bad folder first, so the good plugin is loaded after the failure.
std::unique_ptr<Registry> load_with_good(const std::string& bad_case) {
  auto reg = std::make_unique<Registry>();
  reg->add_path(case_dir(bad_case));
  reg->add_path(case_dir("good_layer"));
  reg->load();
  return reg;
}

std::string all_issues(const Registry& reg) {
  std::string text;
  for (const ssmhost::LoadIssue& is : reg.issues()) text += is.message + "\n";
  return text;
}

// The message of the one issue about `path`; fails the test if there is none.
std::string issue_about(const Registry& reg, const std::string& path) {
  INFO("issues:\n" << all_issues(reg));
  std::vector<std::string> found;
  for (const ssmhost::LoadIssue& is : reg.issues())
    if (is.path == path) found.push_back(is.message);
  REQUIRE(found.size() == 1);
  CHECK_THAT(found[0], Contains(path));  // the message itself names the file
  return found[0];
}

// The control plugin is found, and creating and running it works.
void require_good_layer_usable(Registry& reg) {
  const ssmhost::PluginInfo* info = reg.find(SSM_KIND_LAYER, "test_good");
  REQUIRE(info != nullptr);
  CHECK(info->path == canonical_file("good_layer", "test_good.so"));
  auto layer = reg.create_layer("test_good", {{"gain", "3"}});
  REQUIRE(layer != nullptr);
  CHECK(layer->params().empty());

  float x[4] = {1, -2, 0.5f, 4};
  float y[4] = {0, 0, 0, 0};
  int64_t shape[3] = {1, 4, 1};
  DLTensor tx{x, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, shape, nullptr, 0};
  DLTensor ty{y, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, shape, nullptr, 0};
  ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
  layer->forward(&ctx, nullptr, &tx, &ty);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == Approx(3 * x[i]));
}

}  // namespace

TEST_CASE("the control plugin loads alone, with its metadata and options", "[registry]") {
  Registry reg;
  reg.add_path(case_dir("good_layer"));
  reg.load();
  INFO("issues:\n" << all_issues(reg));
  REQUIRE(reg.issues().empty());
  REQUIRE(reg.plugins().size() == 1);
  const ssmhost::PluginInfo& p = *reg.plugins()[0];
  CHECK(p.id == "test_good");
  CHECK(p.kind == SSM_KIND_LAYER);
  CHECK(p.version == "0.1.0");
  CHECK(p.abi_major == SSM_ABI_MAJOR);
  CHECK(p.abi_minor == SSM_ABI_MINOR);
  REQUIRE(p.options.size() == 2);
  CHECK(p.options[0].name == "gain");
  CHECK(p.options[0].type == "float");
  CHECK(p.options[0].default_value == "2.0");
  CHECK_FALSE(p.options[0].required);
  CHECK(p.options[1].name == "d_model");
  CHECK(p.options[1].type == "int");
  require_good_layer_usable(reg);
}

TEST_CASE("a text file named .so is reported as not a shared library", "[registry]") {
  auto reg = load_with_good("not_elf");
  std::string msg = issue_about(*reg, canonical_file("not_elf", "not_a_plugin.so"));
  CHECK_THAT(msg, Contains("not a shared library"));
  require_good_layer_usable(*reg);
}

TEST_CASE("a library without ssm_plugin_entry is reported by name", "[registry]") {
  auto reg = load_with_good("no_entry");
  std::string msg = issue_about(*reg, canonical_file("no_entry", "no_entry.so"));
  CHECK_THAT(msg, Contains("ssm_plugin_entry"));
  require_good_layer_usable(*reg);
}

TEST_CASE("a plugin for another ABI major names both versions", "[registry]") {
  auto reg = load_with_good("abi_major");
  std::string msg = issue_about(*reg, canonical_file("abi_major", "abi_major.so"));
  std::string plugin_abi = std::to_string(SSM_ABI_MAJOR + 1) + ".0";
  std::string host_abi = std::to_string(SSM_ABI_MAJOR) + "." + std::to_string(SSM_ABI_MINOR);
  CHECK_THAT(msg, Contains(plugin_abi));
  CHECK_THAT(msg, Contains(host_abi));
  CHECK_THAT(msg, Contains("test_abi_next"));
  CHECK(reg->find(SSM_KIND_LAYER, "test_abi_next") == nullptr);
  require_good_layer_usable(*reg);
}

// The one shadowing whose loser is `path`; fails the test if there is none.
const ssmhost::Shadowing& shadowing_of(const Registry& reg, const std::string& path) {
  const ssmhost::Shadowing* found = nullptr;
  for (const ssmhost::Shadowing& s : reg.shadowings())
    if (s.loser == path) found = &s;
  REQUIRE(found != nullptr);
  return *found;
}

TEST_CASE("two libraries with one id: the first wins, the message names both and the winner", "[registry]") {
  auto reg = load_with_good("duplicate");
  std::string first = canonical_file("duplicate", "dup_a.so");
  std::string second = canonical_file("duplicate", "dup_b.so");
  const ssmhost::Shadowing& s = shadowing_of(*reg, second);
  CHECK(s.winner == first);
  CHECK_THAT(s.message, Contains(first) && Contains(second) && Contains("test_dup") && Contains("is used"));
  const ssmhost::PluginInfo* dup = reg->find(SSM_KIND_LAYER, "test_dup");
  REQUIRE(dup != nullptr);
  CHECK(dup->path == first);
  REQUIRE(reg->shadowed().size() == 1);  // still known, for `ssmhost list`
  CHECK(reg->shadowed()[0]->path == second);
  CHECK(reg->shadowed()[0]->shadowed_by == first);
  CHECK(reg->create_layer("test_dup", {}) != nullptr);
  require_good_layer_usable(*reg);
}

// The build's real plugins after the test-only ones of `cases` (searched first,
// as --plugin-path is).
std::unique_ptr<Registry> load_before_builtins(std::initializer_list<const char*> cases) {
  auto reg = std::make_unique<Registry>();
  for (const char* c : cases) reg->add_path(case_dir(c));
  reg->add_path(SSM_TEST_PLUGIN_DIR);
  reg->load();
  return reg;
}

TEST_CASE("a user plugin with a built-in's id shadows it, loudly", "[registry]") {
  auto reg = load_before_builtins({"shadow_zoh"});
  const std::string user = canonical_file("shadow_zoh", "zoh.so");
  const ssmhost::PluginInfo* zoh = reg->find(SSM_KIND_DISC, "zoh");
  REQUIRE(zoh != nullptr);
  CHECK(zoh->path == user);  // found first: it wins
  REQUIRE(reg->shadowed().size() == 1);
  const std::string builtin = reg->shadowed()[0]->path;
  CHECK_THAT(builtin, Contains(SSM_TEST_PLUGIN_DIR));
  const ssmhost::Shadowing& s = shadowing_of(*reg, builtin);
  CHECK(s.winner == user);
  CHECK_THAT(s.message, Contains(user) && Contains(builtin) && Contains("is used") && Contains("ignored"));
  // The hash tells the two apart in a run log.
  CHECK(zoh->sha256.size() == 64);
  CHECK(zoh->sha256 != reg->shadowed()[0]->sha256);
}

TEST_CASE("two discretizations with one suffix: the first keeps it, the other is usable by name", "[registry]") {
  auto reg = load_before_builtins({"suffix_clash"});
  const std::string user = canonical_file("suffix_clash", "clash_z.so");
  auto [layer, disc] = reg->resolve_layer("s4dz");
  CHECK(layer->id == "s4d");
  CHECK(disc == "test_clash_z");  // searched first
  const ssmhost::PluginInfo* zoh = reg->find(SSM_KIND_DISC, "zoh");
  REQUIRE(zoh != nullptr);
  CHECK(zoh->suffix_shadowed_by == user);
  const ssmhost::Shadowing& s = shadowing_of(*reg, zoh->path);
  CHECK_THAT(s.message, Contains("suffix 'z'") && Contains(user) && Contains(zoh->path) && Contains("--disc zoh"));
  CHECK(reg->create_disc("zoh", {}) != nullptr);
}

TEST_CASE("a suffix must be one lowercase letter", "[registry]") {
  auto reg = load_with_good("bad_suffix");
  std::string msg = issue_about(*reg, canonical_file("bad_suffix", "bad_suffix.so"));
  CHECK_THAT(msg, Contains("'zz'") && Contains("one lowercase letter"));
  CHECK(reg->find(SSM_KIND_DISC, "test_bad_suffix") == nullptr);
  require_good_layer_usable(*reg);
}

TEST_CASE("a layer that takes no discretization refuses a suffix, naming the layers that do", "[registry]") {
  auto reg = load_before_builtins({"good_layer"});
  CHECK(reg->find(SSM_KIND_LAYER, "s4d")->takes_disc());
  CHECK_FALSE(reg->find(SSM_KIND_LAYER, "test_good")->takes_disc());
  CHECK_THROWS_WITH(reg->resolve_layer("test_goodz"),
                    Contains("'test_good' takes no discretization") && Contains("layers that take one: ") &&
                        Contains("s4d"));
}

TEST_CASE("plugins record their file's SHA-256 and what was created from them", "[registry]") {
  auto reg = load_before_builtins({});
  const ssmhost::PluginInfo* s4d = reg->find(SSM_KIND_LAYER, "s4d");
  REQUIRE(s4d != nullptr);
  CHECK(s4d->sha256.size() == 64);
  CHECK(reg->used().empty());
  auto layer = reg->create_layer("s4db", {{"d_model", "4"}, {"d_state", "4"}});
  // s4d made its discretization through the host: both are recorded.
  REQUIRE(reg->used().size() == 2);
  CHECK(reg->used()[0]->id == "s4d");
  CHECK(reg->used()[1]->id == "bilinear");
}

TEST_CASE("a library with an unresolved symbol is reported with dlopen's reason", "[registry]") {
  auto reg = load_with_good("unresolved");
  std::string msg = issue_about(*reg, canonical_file("unresolved", "unresolved.so"));
  CHECK_THAT(msg, Contains("undefined symbol"));
  CHECK_THAT(msg, Contains("ssm_test_missing_function"));
  require_good_layer_usable(*reg);
}

TEST_CASE("a plugin whose init fails is reported with the plugin's message", "[registry]") {
  auto reg = load_with_good("init_fails");
  std::string msg = issue_about(*reg, canonical_file("init_fails", "init_fails.so"));
  CHECK_THAT(msg, Contains("test_init_fails"));
  CHECK_THAT(msg, Contains("cannot open the lookup table test_init_fails.bin (failing on purpose)"));
  CHECK(reg->find(SSM_KIND_LAYER, "test_init_fails") == nullptr);
  CHECK_THROWS_AS(reg->create_layer("test_init_fails", {}), ssmhost::Error);
  // Asking for the file's own name points at why it is missing.
  CHECK_THROWS_WITH(reg->create_layer("init_fails", {}), Contains("failing on purpose"));
  require_good_layer_usable(*reg);
}

TEST_CASE("exceptions thrown inside a plugin surface as ssmhost::Error", "[registry]") {
  auto reg = load_with_good("create_throws");
  INFO("issues:\n" << all_issues(*reg));
  REQUIRE(reg->issues().empty());  // both libraries load: they only fail when used

  SECTION("from the constructor, through create_layer") {
    CHECK_THROWS_AS(reg->create_layer("test_ctor_throws", {}), ssmhost::Error);
    CHECK_THROWS_WITH(reg->create_layer("test_ctor_throws", {}), Contains("boom from constructor"));
    CHECK_THROWS_WITH(reg->create_layer("test_ctor_throws", {}), Contains("test_ctor_throws"));
  }
  SECTION("from forward, with the plugin's message") {
    auto layer = reg->create_layer("test_forward_throws", {});
    REQUIRE(layer != nullptr);
    float x[2] = {1, 2}, y[2] = {0, 0};
    int64_t shape[3] = {1, 2, 1};
    DLTensor tx{x, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, shape, nullptr, 0};
    DLTensor ty{y, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, shape, nullptr, 0};
    ssm_ctx ctx = ssmhost::make_ctx(false, 1, 0, 0);
    CHECK_THROWS_AS(layer->forward(&ctx, nullptr, &tx, &ty), ssmhost::Error);
    CHECK_THROWS_WITH(layer->forward(&ctx, nullptr, &tx, &ty),
                      Contains("boom from forward: x is not what this layer expects"));
    CHECK_THROWS_WITH(layer->forward(&ctx, nullptr, &tx, &ty), Contains("test_forward_throws"));
  }
  require_good_layer_usable(*reg);
}

TEST_CASE("every error case at once: one issue per bad file, the rest usable", "[registry]") {
  Registry reg;
  for (const char* c : {"not_elf", "no_entry", "abi_major", "duplicate", "unresolved", "init_fails",
                        "create_throws", "good_layer"})
    reg.add_path(case_dir(c));
  reg.load();
  CHECK_THAT(issue_about(reg, canonical_file("not_elf", "not_a_plugin.so")), Contains("not a shared library"));
  CHECK_THAT(issue_about(reg, canonical_file("no_entry", "no_entry.so")), Contains("ssm_plugin_entry"));
  CHECK_THAT(issue_about(reg, canonical_file("abi_major", "abi_major.so")), Contains("ABI"));
  CHECK_THAT(shadowing_of(reg, canonical_file("duplicate", "dup_b.so")).message, Contains("dup_a.so"));
  CHECK_THAT(issue_about(reg, canonical_file("unresolved", "unresolved.so")), Contains("undefined symbol"));
  CHECK_THAT(issue_about(reg, canonical_file("init_fails", "init_fails.so")), Contains("failing on purpose"));
  INFO("issues:\n" << all_issues(reg));
  CHECK(reg.issues().size() == 5);
  CHECK(reg.shadowings().size() == 1);
  // test_good, test_dup, test_ctor_throws, test_forward_throws.
  CHECK(reg.plugins().size() == 4);
  require_good_layer_usable(reg);
}

TEST_CASE("a folder given twice is loaded once; a missing path is an issue", "[registry]") {
  Registry reg;
  reg.add_path(case_dir("good_layer"));
  reg.add_path(case_dir("good_layer"));
  reg.add_path(case_dir("good_layer") + "/test_good.so");  // the same file, named directly
  std::string missing = case_dir("no_such_folder");
  reg.add_path(missing);
  reg.load();
  INFO("issues:\n" << all_issues(reg));
  CHECK(reg.plugins().size() == 1);
  REQUIRE(reg.issues().size() == 1);  // no "duplicate" issue for the same file
  CHECK(reg.issues()[0].path == missing);
  CHECK_THAT(reg.issues()[0].message, Contains(missing));
  CHECK_THAT(reg.issues()[0].message, Contains("does not exist"));
  require_good_layer_usable(reg);
}

TEST_CASE("unknown names list the close matches", "[registry]") {
  Registry reg;
  reg.add_path(case_dir("good_layer"));
  reg.load();

  SECTION("a misspelling suggests the plugin meant") {
    std::vector<std::string> close = reg.close_matches(SSM_KIND_LAYER, "test_god");
    REQUIRE_FALSE(close.empty());
    CHECK(close[0] == "test_good");
    CHECK_THROWS_AS(reg.create_layer("test_god", {}), ssmhost::Error);
    CHECK_THROWS_WITH(reg.create_layer("test_god", {}), Contains("unknown layer 'test_god'"));
    CHECK_THROWS_WITH(reg.create_layer("test_god", {}), Contains("did you mean 'test_good'"));
  }
  SECTION("a prefix counts as close") {
    CHECK_THROWS_WITH(reg.create_layer("test_go", {}), Contains("did you mean 'test_good'"));
  }
  SECTION("a name far from everything still lists the plugins of that kind") {
    CHECK(reg.close_matches(SSM_KIND_LAYER, "s4x").empty());
    CHECK_THROWS_WITH(reg.create_layer("s4x", {}), Contains("unknown layer 's4x'"));
    CHECK_THROWS_WITH(reg.create_layer("s4x", {}), Contains("test_good"));
  }
  SECTION("a kind with no plugins says so") {
    CHECK_THROWS_WITH(reg.create_disc("zoh", {}), Contains("no disc plugins were found"));
  }
}
