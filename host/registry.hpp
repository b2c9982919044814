// The plugin registry: finds plugin libraries, loads them with Boost.DLL,
// checks their ABI, and creates plugin objects that keep their library loaded.
//
//   ssmhost::Registry reg;
//   reg.add_path(dir);          // a folder of plugins, or one plugin file
//   reg.load();                 // bad files become issues(), never exceptions
//   auto disc = reg.create_disc("zoh", {});
//   disc->eval(ctx.get(), &z, &a, &beta, nullptr, nullptr);
#pragma once

#include <ssm/abi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "error.hpp"

namespace boost::dll {
class shared_library;
}

namespace ssmhost {

using KV = std::map<std::string, std::string>;

struct OptionInfo {
  std::string name;
  std::string type;  // "int", "float", "bool", "string"
  std::string default_value;
  bool required = false;
  std::string help;
  int32_t plugin_kind = 0;  // an ssm_kind when the value names a plugin (ABI 1.1), else 0
};

struct PluginInfo {
  std::string id, version, description, path;
  std::string sha256;  // of the library file, at load
  ssm_kind kind = SSM_KIND_LAYER;
  uint32_t abi_major = 0, abi_minor = 0;
  std::vector<std::string> aliases;
  std::vector<OptionInfo> options;
  std::string suffix;  // discretizations: the one-letter layer suffix
  // Set when another plugin found earlier takes this one's place: the file
  // that wins, for the id (then this plugin is not usable) or the suffix.
  std::string shadowed_by, suffix_shadowed_by;
  // The option whose value names a plugin of `kind` (ABI 1.1 plugin_kind;
  // for 1.0 plugins, the option called "disc" / "dataset"), or nullptr.
  const OptionInfo* child_option(ssm_kind kind) const;
  bool takes_disc() const { return child_option(SSM_KIND_DISC) != nullptr; }
};

// A file that could not be used, and why (the message names the file).
struct LoadIssue {
  std::string path;
  std::string message;
};

// Two plugins that claim the same id, alias or suffix: the first found in
// the search order (--plugin-path, SSM_PLUGIN_PATH, built-in) wins.
struct Shadowing {
  std::string name;   // the id, alias or "suffix 'z'"
  std::string winner, loser;  // library paths
  std::string message;        // names both files and which one wins
};

const char* kind_name(ssm_kind kind);  // "layer", "disc", "dataset", "task"

// A call context on the CPU: host table, threads, seed, RNG offset. The host
// table should be a registry's (Registry::host()), so that plugins can create
// children through ctx->host; make_ctx without one uses host_services().
ssm_ctx make_ctx(const ssm_host* host, bool training, int threads, uint64_t seed, uint64_t rng_offset);
ssm_ctx make_ctx(bool training, int threads, uint64_t seed, uint64_t rng_offset);

// A host-services table without a registry (child_create fails with a
// status that says so): memory, RNG and statuses for code that has no registry.
const ssm_host* host_services();

// Throws ssmhost::Error with `what` and the status message; frees the status.
void check_status(ssm_status* status, const std::string& what);

class Library;  // a loaded plugin library (keeps it loaded while referenced)

// A plugin object: its library, its kind's table and its instance.
class PluginObject {
 public:
  PluginObject(std::shared_ptr<Library> lib, const PluginInfo* info, const void* iface, void* instance,
               void (*destroy)(void*));
  virtual ~PluginObject();
  PluginObject(const PluginObject&) = delete;
  PluginObject& operator=(const PluginObject&) = delete;
  const PluginInfo& plugin() const { return *info_; }
  void* instance() const { return instance_; }
  const void* iface() const { return iface_; }

 protected:
  std::shared_ptr<Library> lib_;
  const PluginInfo* info_;
  const void* iface_;
  void* instance_;
  void (*destroy_)(void*);
};

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  uint32_t flags = 0;
  double lr_max = 0;
  double weight_decay = -1;
  int64_t numel() const;
};

class LayerObject : public PluginObject {
 public:
  using PluginObject::PluginObject;
  const ssm_layer_iface& f() const { return *static_cast<const ssm_layer_iface*>(iface_); }
  std::vector<ParamInfo> params() const;
  void param_init(const ssm_ctx* ctx, DLTensor* const* params) const;
  void forward(const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* x, DLTensor* y) const;
  void backward(const ssm_ctx* ctx, DLTensor* const* params, const DLTensor* dy, DLTensor* dx,
                DLTensor* const* dparams) const;
  void* state_create(const ssm_ctx* ctx, DLTensor* const* params, int64_t batch) const;
  void step(const ssm_ctx* ctx, DLTensor* const* params, void* state, const DLTensor* x_t, DLTensor* y_t) const;
  void state_destroy(void* state) const;
  bool has_cuda() const { return f().forward_cuda != nullptr; }
  // ABI 1.1 supports(); absent: CPU float32/float64, CUDA float32 with forward_cuda.
  bool supports(DLDevice device, DLDataType dtype) const;
  // The layer's convolution kernel (H, length) in float64 through the
  // ssm/ext/layer_kernel.h extension; false (out untouched) when it has none.
  bool conv_kernel(const ssm_ctx* ctx, DLTensor* const* params, int64_t length, int64_t H,
                   std::vector<double>& out) const;
};

class DiscObject : public PluginObject {
 public:
  using PluginObject::PluginObject;
  const ssm_disc_iface& f() const { return *static_cast<const ssm_disc_iface*>(iface_); }
  void eval(const ssm_ctx* ctx, const DLTensor* z, DLTensor* a, DLTensor* beta, DLTensor* da, DLTensor* dbeta) const;
  std::string suffix() const { return f().suffix ? f().suffix : ""; }
  // ABI 1.1 supports(); absent: CPU complex64/complex128, CUDA complex64 with eval_cuda.
  bool supports(DLDevice device, DLDataType dtype) const;
  // ABI 1.1 get_extension(); nullptr when absent.
  const void* extension(const char* id) const;
};

class DatasetObject : public PluginObject {
 public:
  using PluginObject::PluginObject;
  const ssm_dataset_iface& f() const { return *static_cast<const ssm_dataset_iface*>(iface_); }
  ssm_dataset_info info() const;
  void read(int split, const int64_t* indices, int64_t n, DLTensor* x, DLTensor* labels) const;
};

class TaskObject : public PluginObject {
 public:
  using PluginObject::PluginObject;
  const ssm_task_iface& f() const { return *static_cast<const ssm_task_iface*>(iface_); }
  ssm_task_info info() const;
  KV run_defaults() const;
  void batch(int split, uint64_t seed, uint64_t index, int64_t batch_size, DLTensor* x, DLTensor* y,
             DLTensor* mask) const;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  void add_path(const std::string& dir_or_file);
  // The default search path: --plugin-path entries are added by the caller,
  // then SSM_PLUGIN_PATH (colon-separated), the build tree, the install prefix.
  void add_default_paths();
  // Loads every plugin library in the paths (once each). Never throws for a
  // bad file: it becomes an issue and the rest stays usable.
  void load();

  // The usable plugins (shadowed ones are not among them).
  std::vector<const PluginInfo*> plugins() const;
  // Plugins that lost their id to one found earlier (for `list`).
  std::vector<const PluginInfo*> shadowed() const;
  const std::vector<LoadIssue>& issues() const { return issues_; }
  const std::vector<Shadowing>& shadowings() const { return shadowings_; }
  const std::vector<std::string>& paths() const { return paths_; }
  // Every plugin an object was created from so far, children included, in
  // the order first used: what a run log records.
  const std::vector<const PluginInfo*>& used() const { return used_; }
  // Layers that take a discretization (for messages).
  std::vector<std::string> layers_taking_disc() const;

  // A call context whose host table is this registry's.
  ssm_ctx make_ctx(bool training, int threads, uint64_t seed, uint64_t rng_offset) const;

  // By id or alias (exact), or nullptr.
  const PluginInfo* find(ssm_kind kind, const std::string& name) const;
  // Like find, but throws an Error listing the close matches of that kind.
  const PluginInfo& require(ssm_kind kind, const std::string& name) const;
  // Splits a layer name: exact ids win; otherwise "s4dz" -> {"s4d", "zoh"}
  // when "z" is the suffix of a discretization plugin. Throws if neither.
  std::pair<const PluginInfo*, std::string> resolve_layer(const std::string& name) const;
  // Names of the given kind closest to `name` (edit distance), best first.
  std::vector<std::string> close_matches(ssm_kind kind, const std::string& name) const;

  // Create objects; the config is passed as text. Each adds "plugin_name" =
  // the name asked for. Errors (unknown name, a create that fails) throw.
  std::unique_ptr<LayerObject> create_layer(const std::string& name, KV config);
  std::unique_ptr<DiscObject> create_disc(const std::string& name, KV config);
  std::unique_ptr<DatasetObject> create_dataset(const std::string& name, KV config);
  std::unique_ptr<TaskObject> create_task(const std::string& name, KV config);
  // Generic creation (used by host services' child_create).
  void create_child(ssm_kind kind, const std::string& name, const KV& config, ssm_child* out);
  // The host-services table this registry hands to its plugins.
  const ssm_host* host() const { return host_; }

 private:
  void load_file(const std::string& path);
  template <class Obj>
  std::unique_ptr<Obj> create(ssm_kind kind, const std::string& name, KV config);
  const void* create_raw(ssm_kind kind, const std::string& name, KV& config, void** instance,
                         void (**destroy)(void*), std::shared_ptr<Library>* lib, const PluginInfo** info);

  std::vector<std::string> paths_;
  std::vector<std::string> loaded_files_;
  std::string unknown_message(ssm_kind kind, const std::string& name) const;

  // Plugins keep this pointer, possibly longer than the registry lives, so
  // the table is never freed; its link back (HostLink) is cut by ~Registry.
  ssm_host* host_;
  std::vector<std::unique_ptr<PluginInfo>> infos_;  // parallel to libs_
  std::vector<std::shared_ptr<Library>> libs_;
  std::vector<std::unique_ptr<PluginInfo>> shadowed_;
  std::vector<LoadIssue> issues_;
  std::vector<Shadowing> shadowings_;
  std::vector<const PluginInfo*> used_;
  static constexpr int kMaxNesting = 8;  // children of children of ...
  int depth_ = 0;
};

}  // namespace ssmhost
