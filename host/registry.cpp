// Plugin discovery and loading (Boost.DLL), identity (hash, shadowing,
// suffixes), lookup by name, and creating plugin objects. The host-services
// table is in host_services.cpp, the object wrappers in plugin_objects.cpp.
#include "registry.hpp"

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <boost/filesystem.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "host_services.hpp"
#include "names.hpp"
#include "sha256.hpp"

namespace ssmhost {
namespace fs = boost::filesystem;

const char* kind_name(ssm_kind kind) {
  switch (kind) {
    case SSM_KIND_LAYER: return "layer";
    case SSM_KIND_DISC: return "disc";
    case SSM_KIND_DATASET: return "dataset";
    case SSM_KIND_TASK: return "task";
  }
  return "unknown";
}

static const char* iface_id(ssm_kind kind) {
  switch (kind) {
    case SSM_KIND_LAYER: return SSM_IFACE_LAYER;
    case SSM_KIND_DISC: return SSM_IFACE_DISC;
    case SSM_KIND_DATASET: return SSM_IFACE_DATASET;
    case SSM_KIND_TASK: return SSM_IFACE_TASK;
  }
  return "";
}

static const char* option_type_name(int32_t t) {
  switch (t) {
    case SSM_OPT_INT: return "int";
    case SSM_OPT_FLOAT: return "float";
    case SSM_OPT_BOOL: return "bool";
    case SSM_OPT_STRING: return "string";
  }
  return "?";
}


// Whether a plugin's table has every slot of ABI 1.0 (its struct_size covers
// the last 1.0 field); slots of later minors are checked where they are read.
// No ABI struct will ever be this large: a bigger struct_size is garbage.
constexpr uint32_t kMaxStructSize = 4096;

static bool iface_complete(ssm_kind kind, const void* iface) {
  switch (kind) {
    case SSM_KIND_LAYER: return SSM_HAS_FIELD(static_cast<const ssm_layer_iface*>(iface), ssm_layer_iface, get_extension);
    case SSM_KIND_DISC: return SSM_HAS_FIELD(static_cast<const ssm_disc_iface*>(iface), ssm_disc_iface, eval_cuda);
    case SSM_KIND_DATASET: return SSM_HAS_FIELD(static_cast<const ssm_dataset_iface*>(iface), ssm_dataset_iface, read);
    case SSM_KIND_TASK: return SSM_HAS_FIELD(static_cast<const ssm_task_iface*>(iface), ssm_task_iface, batch);
  }
  return false;
}

// A created child: its object, kept alive until child_destroy.
struct ChildHandle {
  std::unique_ptr<PluginObject> object;
};

void destroy_child_handle(void* handle) { delete static_cast<ChildHandle*>(handle); }

const OptionInfo* PluginInfo::child_option(ssm_kind k) const {
  for (const OptionInfo& o : options)
    if (o.plugin_kind == k) return &o;
  // 1.0 plugins cannot mark an option as naming a plugin: the names they use.
  if (abi_minor == 0 && abi_major == 1)
    for (const OptionInfo& o : options)
      if ((k == SSM_KIND_DISC && o.name == "disc") || (k == SSM_KIND_DATASET && o.name == "dataset")) return &o;
  return nullptr;
}

Registry::Registry() {
  host_ = new ssm_host(make_host_table(new HostLink{this}));  // never freed: see registry.hpp
}

ssm_ctx Registry::make_ctx(bool training, int threads, uint64_t seed, uint64_t rng_offset) const {
  return ssmhost::make_ctx(host_, training, threads, seed, rng_offset);
}

Registry::~Registry() {
  // Objects made here may be destroyed later by their owners; children asked
  // for after this point get an error status instead of a dangling registry.
  static_cast<HostLink*>(host_->host_data)->registry = nullptr;
}

void Registry::add_path(const std::string& p) {
  if (!p.empty()) paths_.push_back(p);
}

static void split_colon_list(const std::string& s, std::vector<std::string>& out) {
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ':'))
    if (!item.empty()) out.push_back(item);
}

void Registry::add_default_paths() {
  std::vector<std::string> env;
  if (const char* v = std::getenv("SSM_PLUGIN_PATH")) split_colon_list(v, env);
  for (auto& p : env) add_path(p);
  // An installed ssmhost finds <prefix>/lib/ssm/plugins beside its bin/; a
  // build-tree ssmhost finds the build's plugin folder. Never both, so the
  // same plugin is not found twice.
  boost::system::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  fs::path installed = exe.parent_path().parent_path() / SSMHOST_INSTALL_PLUGIN_DIR;
  if (!ec && fs::is_directory(installed, ec))
    add_path(installed.string());
  else if (fs::is_directory(SSMHOST_BUILD_PLUGIN_DIR, ec))
    add_path(SSMHOST_BUILD_PLUGIN_DIR);
}

void Registry::load() {
  for (const std::string& p : paths_) {
    boost::system::error_code ec;
    fs::path path(p);
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> files;
      for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
        if (it->path().extension() == ".so") files.push_back(it->path());
      std::sort(files.begin(), files.end());  // a stable order: the same winner on every run
      for (const fs::path& f : files) load_file(f.string());
    } else if (fs::exists(path, ec)) {
      load_file(path.string());
    } else {
      issues_.push_back({p, p + ": plugin path does not exist (given by --plugin-path, SSM_PLUGIN_PATH or the default)"});
    }
  }
}

// Why a file is not loadable, in words, from the dlerror text Boost.DLL carries.
static std::string dl_reason(const std::string& what) {
  const std::string marker = "dlerror system message: ";
  size_t at = what.find(marker);
  if (at == std::string::npos) return what;
  std::string r = what.substr(at + marker.size());
  size_t close = r.rfind(')');
  if (close != std::string::npos) r = r.substr(0, close);
  return r;
}

static bool has_elf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

void Registry::load_file(const std::string& path_in) {
  boost::system::error_code ec;
  fs::path canonical = fs::canonical(path_in, ec);
  std::string path = ec ? path_in : canonical.string();
  if (std::find(loaded_files_.begin(), loaded_files_.end(), path) != loaded_files_.end()) return;
  loaded_files_.push_back(path);
  auto issue = [&](const std::string& m) { issues_.push_back({path, path + ": " + m}); };

  if (!has_elf_magic(path)) {
    issue("not a shared library (no ELF header); remove it from the plugin path");
    return;
  }
  auto lib = std::make_shared<Library>();
  try {
    lib->lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    issue("cannot be loaded: " + dl_reason(e.what()));
    return;
  }
  if (!lib->lib.has(SSM_PLUGIN_ENTRY_SYMBOL)) {
    issue(std::string("not an ssmhost plugin: it does not export the entry symbol '") + SSM_PLUGIN_ENTRY_SYMBOL +
          "' (build it with ssm_add_plugin and one SSM_PLUGIN_* macro)");
    return;
  }
  auto entry = lib->lib.get<const ssm_plugin_desc*()>(SSM_PLUGIN_ENTRY_SYMBOL);
  const ssm_plugin_desc* d = nullptr;
  try {
    d = entry();
  } catch (...) {
    issue("its entry function threw an exception");
    return;
  }
  // The first fields (struct_size, abi_major, abi_minor) are frozen for all
  // majors, so the version check comes before anything else is trusted.
  if (!d || !SSM_HAS_FIELD(d, ssm_plugin_desc, abi_minor)) {
    issue("its entry function returned no valid descriptor");
    return;
  }
  if (d->abi_major != SSM_ABI_MAJOR) {
    std::string id = SSM_HAS_FIELD(d, ssm_plugin_desc, id) && d->id ? d->id : "?";
    issue("plugin '" + id + "' was built for ssmhost ABI " + std::to_string(d->abi_major) + "." +
          std::to_string(d->abi_minor) + ", but this host has ABI " + std::to_string(SSM_ABI_MAJOR) + "." +
          std::to_string(SSM_ABI_MINOR) + "; rebuild it against an SDK of major version " +
          std::to_string(SSM_ABI_MAJOR));
    return;
  }
  // Every field of 1.0 must be there; later ones are read only when present.
  if (!SSM_HAS_FIELD(d, ssm_plugin_desc, get_iface)) {
    issue("its descriptor is too short (struct_size " + std::to_string(d->struct_size) + ")");
    return;
  }
  std::string id = d->id ? d->id : "";
  if (id.empty()) {
    issue("the plugin has an empty id");
    return;
  }
  ssm_kind kind = static_cast<ssm_kind>(d->kind);
  if (kind < SSM_KIND_LAYER || kind > SSM_KIND_TASK) {
    issue("plugin '" + id + "' has unknown kind " + std::to_string(d->kind));
    return;
  }
  const void* iface = d->get_iface ? d->get_iface(iface_id(kind)) : nullptr;
  if (!iface) {
    issue("plugin '" + id + "' declares kind " + kind_name(kind) + " but provides no '" + iface_id(kind) + "' table");
    return;
  }
  if (!iface_complete(kind, iface)) {
    issue("plugin '" + id + "': its " + iface_id(kind) + " table is shorter than ABI 1.0 (struct_size " +
          std::to_string(*static_cast<const uint32_t*>(iface)) + ")");
    return;
  }

  auto info = std::make_unique<PluginInfo>();
  info->id = id;
  info->version = d->version ? d->version : "";
  info->description = d->description ? d->description : "";
  info->path = path;
  info->kind = kind;
  info->abi_major = d->abi_major;
  info->abi_minor = d->abi_minor;
  for (const char* const* a = d->aliases; a && *a; ++a) info->aliases.push_back(*a);
  // Options are strided by each element's own struct_size: a plugin of
  // another minor has other-sized elements.
  const ssm_option_desc* o = d->options;
  for (uint32_t i = 0; o && i < d->n_options; ++i, o = SSM_ARRAY_NEXT(ssm_option_desc, o)) {
    if (!SSM_HAS_FIELD(o, ssm_option_desc, help) || o->struct_size > kMaxStructSize) {
      issue("plugin '" + id + "': option " + std::to_string(i) + " has struct_size " + std::to_string(o->struct_size) +
            (o->struct_size > kMaxStructSize ? ", not a plausible size" : ", shorter than ABI 1.0"));
      return;
    }
    OptionInfo oi;
    oi.name = o->name ? o->name : "";
    oi.type = option_type_name(o->type);
    oi.required = o->default_value == nullptr;
    oi.default_value = o->default_value ? o->default_value : "";
    oi.help = o->help ? o->help : "";
    if (SSM_HAS_FIELD(o, ssm_option_desc, plugin_kind)) oi.plugin_kind = o->plugin_kind;
    if (oi.plugin_kind < 0 || oi.plugin_kind > SSM_KIND_TASK) oi.plugin_kind = 0;
    info->options.push_back(oi);
  }
  if (kind == SSM_KIND_DISC) {
    auto* t = static_cast<const ssm_disc_iface*>(iface);
    info->suffix = t->suffix ? t->suffix : "";
    // The suffix is the last letter of a layer name (s4d + z): one lowercase
    // letter, or none at all.
    if (!info->suffix.empty() && (info->suffix.size() != 1 || info->suffix[0] < 'a' || info->suffix[0] > 'z')) {
      issue("discretization '" + id + "' declares the layer suffix '" + info->suffix +
            "'; a suffix must be one lowercase letter a-z (or empty for none), as in s4d + z = s4dz");
      return;
    }
  }
  try {
    info->sha256 = sha256_file(path);
  } catch (const std::exception& e) {
    issue(e.what());
    return;
  }

  // Ids and aliases share one namespace across kinds, so a name is never
  // ambiguous. The plugin found first in the search order keeps a name;
  // the later one is shadowed, loudly.
  std::vector<std::string> names = {id};
  names.insert(names.end(), info->aliases.begin(), info->aliases.end());
  for (const std::string& n : names)
    for (const auto& other : infos_) {
      bool clash = other->id == n || std::find(other->aliases.begin(), other->aliases.end(), n) != other->aliases.end();
      if (!clash) continue;
      Shadowing s;
      s.name = n;
      s.winner = other->path;
      s.loser = path;
      s.message = "plugin name '" + n + "' is provided twice: " + other->path + " (" + kind_name(other->kind) + " '" +
                  other->id + "' " + other->version + ", found first, is used) shadows " + path + " (" +
                  kind_name(kind) + " '" + id + "' " + info->version + ", ignored)";
      shadowings_.push_back(s);
      info->shadowed_by = other->path;
      shadowed_.push_back(std::move(info));
      return;
    }
  if (kind == SSM_KIND_DISC && !info->suffix.empty())
    for (const auto& other : infos_)
      if (other->kind == SSM_KIND_DISC && other->suffix == info->suffix) {
        Shadowing s;
        s.name = "suffix '" + info->suffix + "'";
        s.winner = other->path;
        s.loser = path;
        s.message = "discretization suffix '" + info->suffix + "' is declared twice: '" + other->id + "' (" +
                    other->path + ", found first) keeps it, so s4d" + info->suffix + " means s4d + " + other->id +
                    "; '" + id + "' (" + path + ") is usable only by name (--disc " + id + ")";
        shadowings_.push_back(s);
        info->suffix_shadowed_by = other->path;
        break;
      }

  if (d->init) {
    ssm_status* st = d->init(host_, path.c_str());
    if (st) {
      issue("plugin '" + id + "' failed to initialise: " + st->message);
      delete st;
      return;
    }
  }
  lib->desc = d;
  lib->initialised = true;
  infos_.push_back(std::move(info));
  libs_.push_back(std::move(lib));
}

std::vector<const PluginInfo*> Registry::plugins() const {
  std::vector<const PluginInfo*> out;
  for (auto& i : infos_) out.push_back(i.get());
  return out;
}

std::vector<const PluginInfo*> Registry::shadowed() const {
  std::vector<const PluginInfo*> out;
  for (auto& i : shadowed_) out.push_back(i.get());
  return out;
}

std::vector<std::string> Registry::layers_taking_disc() const {
  std::vector<std::string> out;
  for (auto& i : infos_)
    if (i->kind == SSM_KIND_LAYER && i->takes_disc()) out.push_back(i->id);
  return out;
}

const PluginInfo* Registry::find(ssm_kind kind, const std::string& name) const {
  for (auto& i : infos_) {
    if (i->kind != kind) continue;
    if (i->id == name || std::find(i->aliases.begin(), i->aliases.end(), name) != i->aliases.end()) return i.get();
  }
  return nullptr;
}

std::vector<std::string> Registry::close_matches(ssm_kind kind, const std::string& name) const {
  std::vector<std::string> names;  // ids and aliases of this kind (names.hpp scores them)
  for (auto& i : infos_) {
    if (i->kind != kind) continue;
    names.push_back(i->id);
    names.insert(names.end(), i->aliases.begin(), i->aliases.end());
  }
  return closest_names(name, names, 5);
}

std::string Registry::unknown_message(ssm_kind kind, const std::string& name) const {
  std::string msg = std::string("unknown ") + kind_name(kind) + " '" + name + "'";
  std::vector<std::string> close = close_matches(kind, name);
  if (!close.empty()) {
    msg += "; did you mean ";
    for (size_t i = 0; i < close.size(); ++i) msg += (i ? ", " : "") + ("'" + close[i] + "'");
    msg += "?";
  }
  std::vector<std::string> all;
  for (auto& i : infos_)
    if (i->kind == kind) all.push_back(i->id);
  msg += all.empty() ? std::string(" (no ") + kind_name(kind) + " plugins were found)"
                     : std::string(" (") + kind_name(kind) + " plugins: ";
  for (size_t i = 0; i < all.size(); ++i) msg += (i ? ", " : "") + all[i];
  if (!all.empty()) msg += "; `ssmhost list` shows all)";
  // A file that failed to load may be the one the user meant.
  for (const LoadIssue& is : issues_)
    if (fs::path(is.path).stem().string() == name) msg += "\n  note: " + is.message;
  return msg;
}

const PluginInfo& Registry::require(ssm_kind kind, const std::string& name) const {
  if (const PluginInfo* p = find(kind, name)) return *p;
  throw Error(unknown_message(kind, name));
}

std::pair<const PluginInfo*, std::string> Registry::resolve_layer(const std::string& name) const {
  if (const PluginInfo* p = find(SSM_KIND_LAYER, name)) return {p, ""};
  if (name.size() > 1) {
    std::string base = name.substr(0, name.size() - 1), suffix = name.substr(name.size() - 1);
    const PluginInfo* layer = find(SSM_KIND_LAYER, base);
    if (layer)
      for (auto& i : infos_)
        if (i->kind == SSM_KIND_DISC && i->suffix == suffix && i->suffix_shadowed_by.empty()) {
          if (!layer->takes_disc()) {
            std::string takers;
            for (const std::string& t : layers_taking_disc()) takers += (takers.empty() ? "" : ", ") + t;
            throw Error("layer '" + layer->id + "' takes no discretization, so '" + name + "' (" + layer->id + " + " +
                        i->id + ") means nothing; layers that take one: " + (takers.empty() ? "none found" : takers));
          }
          return {layer, i->id};
        }
  }
  throw Error(unknown_message(SSM_KIND_LAYER, name));
}

const void* Registry::create_raw(ssm_kind kind, const std::string& name, KV& config, void** instance,
                                 void (**destroy)(void*), std::shared_ptr<Library>* lib, const PluginInfo** info) {
  const PluginInfo* p = nullptr;
  if (kind == SSM_KIND_LAYER) {
    auto [layer, disc] = resolve_layer(name);
    p = layer;
    // The suffix picks the scheme, through the option the layer declares for it.
    if (!disc.empty()) config[layer->child_option(SSM_KIND_DISC)->name] = disc;
  } else {
    p = &require(kind, name);
  }
  config["plugin_name"] = name;
  size_t index = 0;
  while (infos_[index].get() != p) ++index;
  const void* iface = libs_[index]->desc->get_iface(iface_id(kind));
  std::vector<ssm_kv> items;
  for (auto& kv : config) items.push_back({kv.first.c_str(), kv.second.c_str()});
  ssm_config cfg{sizeof(ssm_config), static_cast<uint32_t>(items.size()), items.data()};
  ssm_status* (*create)(const ssm_host*, const ssm_config*, void**) = nullptr;
  void (*destroy_fn)(void*) = nullptr;
  switch (kind) {
    case SSM_KIND_LAYER: {
      auto* t = static_cast<const ssm_layer_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_DISC: {
      auto* t = static_cast<const ssm_disc_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_DATASET: {
      auto* t = static_cast<const ssm_dataset_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
    case SSM_KIND_TASK: {
      auto* t = static_cast<const ssm_task_iface*>(iface);
      create = t->create, destroy_fn = t->destroy;
      break;
    }
  }
  void* obj = nullptr;
  // Recorded before create, so that a parent precedes the children it makes.
  const bool first_use = std::find(used_.begin(), used_.end(), p) == used_.end();
  if (first_use) used_.push_back(p);
  // A plugin that creates children may, through the flat option namespace,
  // ask for itself (--inner example_residual_wrapper given to the wrapper).
  if (depth_ >= kMaxNesting)
    throw Error(std::string(kind_name(kind)) + " '" + name + "': plugins nest more than " +
                std::to_string(kMaxNesting) + " deep; does an option such as --inner name the plugin that reads it?");
  ++depth_;
  ssm_status* st = create(host_, &cfg, &obj);
  --depth_;
  if (st && first_use) used_.erase(std::find(used_.begin(), used_.end(), p));
  if (st) {
    std::string msg = std::string(kind_name(kind)) + " '" + name + "' (" + p->path + "): " + st->message;
    const int32_t code = st->code;
    delete st;
    throw PluginError(code, msg);
  }
  *instance = obj;
  *destroy = destroy_fn;
  *lib = libs_[index];
  *info = p;
  return iface;
}

template <class Obj>
std::unique_ptr<Obj> Registry::create(ssm_kind kind, const std::string& name, KV config) {
  void* instance = nullptr;
  void (*destroy)(void*) = nullptr;
  std::shared_ptr<Library> lib;
  const PluginInfo* info = nullptr;
  const void* iface = create_raw(kind, name, config, &instance, &destroy, &lib, &info);
  return std::make_unique<Obj>(lib, info, iface, instance, destroy);
}

std::unique_ptr<LayerObject> Registry::create_layer(const std::string& name, KV config) {
  return create<LayerObject>(SSM_KIND_LAYER, name, std::move(config));
}
std::unique_ptr<DiscObject> Registry::create_disc(const std::string& name, KV config) {
  return create<DiscObject>(SSM_KIND_DISC, name, std::move(config));
}
std::unique_ptr<DatasetObject> Registry::create_dataset(const std::string& name, KV config) {
  return create<DatasetObject>(SSM_KIND_DATASET, name, std::move(config));
}
std::unique_ptr<TaskObject> Registry::create_task(const std::string& name, KV config) {
  return create<TaskObject>(SSM_KIND_TASK, name, std::move(config));
}

void Registry::create_child(ssm_kind kind, const std::string& name, const KV& config, ssm_child* out) {
  // An out-struct: the caller's struct_size says how much it has room for.
  if (!out) throw PluginError(SSM_ERR_INVALID_ARGUMENT, "child_create: the ssm_child* is NULL");
  if (!SSM_HAS_FIELD(out, ssm_child, instance))
    throw PluginError(SSM_ERR_INVALID_ARGUMENT, "child_create: the caller's ssm_child has struct_size " +
                                                     std::to_string(out->struct_size) + ", less than ABI 1.0's (set it)");
  KV cfg = config;
  auto handle = std::make_unique<ChildHandle>();
  switch (kind) {
    case SSM_KIND_LAYER: handle->object = create_layer(name, cfg); break;
    case SSM_KIND_DISC: handle->object = create_disc(name, cfg); break;
    case SSM_KIND_DATASET: handle->object = create_dataset(name, cfg); break;
    case SSM_KIND_TASK: handle->object = create_task(name, cfg); break;
    default: throw Error("child_create: unknown plugin kind " + std::to_string(kind));
  }
  ssm_child c{};
  c.struct_size = sizeof(c);
  c.iface = handle->object->iface();
  c.instance = handle->object->instance();
  const PluginInfo& info = handle->object->plugin();
  for (size_t i = 0; i < infos_.size(); ++i)
    if (infos_[i].get() == &info) c.desc = libs_[i]->desc;
  c.library_path = info.path.c_str();  // PluginInfo lives as long as the registry
  c.handle = handle.release();
  c.struct_size = static_cast<uint32_t>(std::min<size_t>(out->struct_size, sizeof(c)));  // what was written
  std::memcpy(out, &c, c.struct_size);
}

}  // namespace ssmhost
