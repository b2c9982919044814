// Composite layers (ssm::LayerChild, ABI 1.1): the SDK's example wrapper
// owns an inner layer named at run time. Its parameters list the child's
// under "inner." with the child's hints, the child draws from a seed of its
// own, validate passes with two different inner layers, it trains with both,
// and the run log names every plugin that took part with its file and hash.
#include <catch2/catch.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"
#include "sha256.hpp"
#include "test_support.hpp"

using Catch::Matchers::Contains;

namespace {

const std::string kExamples = std::string(SSM_TEST_ERROR_PLUGIN_DIR) + "/sdk_examples";

ssmhost::Registry& registry() { return ssm_test::registry_of({kExamples, SSM_TEST_PLUGIN_DIR}); }

// Parameter values of a created layer, initialised with `seed`.
struct Params {
  std::vector<ssmhost::ParamInfo> info;
  std::vector<std::vector<double>> values;
  std::vector<ssm::View> views;
  std::vector<DLTensor*> ptrs;
  Params(const ssmhost::LayerObject& layer, uint64_t seed) : info(layer.params()) {
    for (const auto& p : info) values.emplace_back(static_cast<size_t>(p.numel()));
    views.reserve(info.size());
    for (size_t i = 0; i < info.size(); ++i) views.emplace_back(values[i].data(), info[i].shape);
    for (auto& v : views) ptrs.push_back(v.get());
    ssm_ctx ctx = registry().make_ctx(false, 1, seed, 0);
    layer.param_init(&ctx, ptrs.data());
  }
  const std::vector<double>& at(const std::string& name) const {
    for (size_t i = 0; i < info.size(); ++i)
      if (info[i].name == name) return values[i];
    FAIL("no parameter " << name);
    return values[0];
  }
};

const ssmhost::KV kS4dOptions = {{"d_model", "4"}, {"d_state", "4"}};

}  // namespace

TEST_CASE("the child's parameters follow the parent's, prefixed, with the child's hints", "[composite]") {
  auto wrapper = registry().create_layer("example_residual_wrapper", {{"d_model", "4"}, {"d_state", "4"}, {"inner", "s4dz"}});
  auto s4d = registry().create_layer("s4dz", kS4dOptions);
  std::vector<ssmhost::ParamInfo> outer = wrapper->params(), inner = s4d->params();
  REQUIRE(outer.size() == inner.size() + 1);
  CHECK(outer[0].name == "alpha");
  for (size_t i = 0; i < inner.size(); ++i) {
    INFO(inner[i].name);
    CHECK(outer[i + 1].name == "inner." + inner[i].name);
    CHECK(outer[i + 1].shape == inner[i].shape);
    CHECK(outer[i + 1].flags == inner[i].flags);
    CHECK(outer[i + 1].lr_max == inner[i].lr_max);
    CHECK(outer[i + 1].weight_decay == inner[i].weight_decay);
  }
}

TEST_CASE("the child initialises from a seed of its own, the same on every run", "[composite]") {
  auto wrapper = registry().create_layer("example_residual_wrapper", {{"d_model", "4"}, {"d_state", "4"}, {"inner", "s4dz"}});
  auto s4d = registry().create_layer("s4dz", kS4dOptions);
  Params a(*wrapper, 7), b(*wrapper, 7), alone(*s4d, 7);
  CHECK(a.at("inner.log_dt") == b.at("inner.log_dt"));  // deterministic
  CHECK(a.at("inner.log_dt") != alone.at("log_dt"));    // not the parent's stream
  Params c(*wrapper, 8);
  CHECK(a.at("inner.log_dt") != c.at("inner.log_dt"));
}

TEST_CASE("ctx->host creates children: the context carries the registry's host table", "[composite]") {
  ssm_ctx ctx = registry().make_ctx(false, 1, 0, 0);
  const ssm_host* h = ctx.host;
  ssm_child child{};
  child.struct_size = sizeof(child);
  REQUIRE(h->child_create(h->host_data, SSM_KIND_DISC, "zoh", nullptr, &child) == nullptr);
  REQUIRE(child.desc != nullptr);  // ABI 1.1: the child's own descriptor
  CHECK(std::string(child.desc->id) == "zoh");
  CHECK(std::string(child.desc->version) == registry().find(SSM_KIND_DISC, "zoh")->version);
  CHECK(std::string(child.library_path) == registry().find(SSM_KIND_DISC, "zoh")->path);
  h->child_destroy(h->host_data, child.handle);
  // A table without a registry says so instead of failing silently.
  ssm_ctx bare = ssmhost::make_ctx(false, 1, 0, 0);
  ssm_status* st = bare.host->child_create(bare.host->host_data, SSM_KIND_DISC, "zoh", nullptr, &child);
  REQUIRE(st != nullptr);
  CHECK_THAT(bare.host->status_message(bare.host->host_data, st), Contains("no plugin registry"));
  bare.host->status_free(bare.host->host_data, st);
}

TEST_CASE("a composite that names itself stops at a nesting limit with a message", "[composite]") {
  CHECK_THROWS_WITH(registry().create_layer("example_residual_wrapper", {{"d_model", "4"}, {"inner", "example_residual_wrapper"}}),
                    Contains("nest more than"));
}

TEST_CASE("validate passes for the wrapper with two different inner layers", "[composite]") {
  ssm_test::TempDir dir("ssm_composite");
  for (const char* inner : {"s4dz", "example_moving_average"}) {
    ssm_test::Run r = ssm_test::run_ssmhost(dir.path, "validate example_residual_wrapper --plugin-path '" + kExamples +
                                                           "' --set inner=" + inner + " --set d_state=4");
    INFO(inner << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains("PASS") && Contains(" 0 failed"));
    CHECK_THAT(r.out, Contains("gradient inner."));
  }
}

TEST_CASE("it trains with two inner layers; the log lists every plugin with path and SHA-256", "[composite]") {
  ssm_test::TempDir dir("ssm_composite");
  struct Case {
    std::string inner;
    std::set<std::string> plugins;
  };
  for (const Case& c : {Case{"s4db", {"example_residual_wrapper", "s4d", "bilinear", "copy"}},
                        Case{"example_moving_average", {"example_residual_wrapper", "example_moving_average", "copy"}}}) {
    const std::string log = (dir.path / ("run-" + c.inner + ".h5")).string();
    ssm_test::Run r = ssm_test::run_ssmhost(
        dir.path, "--layer example_residual_wrapper --inner " + c.inner + " --plugin-path '" + kExamples +
                      "' --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 32 --d-model 8 --n-layers 1"
                      " --d-state 4 --batch-size 4 --steps 6 --eval-every 3 --threads 1 --quiet --log '" + log + "'");
    INFO(c.inner << "\n" << r.out << r.err);
    REQUIRE(r.status == 0);
    ssmhost::RunLogReader reader = ssmhost::RunLogReader::open(log);
    CHECK(reader.rows("train") == 6);
    CHECK(reader.config().at("inner") == c.inner);
    std::set<std::string> ids;
    for (const ssmhost::PluginRecord& p : reader.plugin_records()) {
      INFO(p.id);
      ids.insert(p.id);
      CHECK(p.sha256 == ssmhost::sha256_file(p.path));
      CHECK(p.abi == "1.1");
      CHECK(p.version == registry().find(p.kind == "layer" ? SSM_KIND_LAYER : p.kind == "disc" ? SSM_KIND_DISC : SSM_KIND_TASK, p.id)->version);
    }
    CHECK(ids == c.plugins);
  }
}
