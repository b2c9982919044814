// Internal to the host: the host-services table plugins receive, the status
// object behind the opaque ssm_status*, and a loaded library. Not part of the SDK.
#pragma once

#include <ssm/abi.h>

#include <boost/dll/shared_library.hpp>
#include <cstdint>
#include <string>

// The host's status object: what the opaque ssm_status* points at.
struct ssm_status {
  int32_t code;
  std::string message;
};

namespace ssmhost {

class Registry;

// What a registry's host table points back to; outlives the registry (plugins
// may keep the table), and ~Registry sets `registry` to nullptr.
struct HostLink {
  Registry* registry;
};

// A host table whose child_create/child_destroy go through link->registry
// (link may be nullptr: then child_create returns an error status).
ssm_host make_host_table(HostLink* link);

// Frees a child handle made by Registry::create_child (registry.cpp).
void destroy_child_handle(void* handle);

// A loaded plugin library; deinit runs when the last object made from it goes.
class Library {
 public:
  boost::dll::shared_library lib;
  const ssm_plugin_desc* desc = nullptr;
  bool initialised = false;
  ~Library() {
    if (initialised && desc && desc->deinit) desc->deinit();
  }
};

}  // namespace ssmhost
