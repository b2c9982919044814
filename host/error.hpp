// The host's one exception type: a message a user can act on.
#pragma once

#include <stdexcept>

namespace ssmhost {
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An error that carries an ssm_status_code, for what goes back to a plugin
// (child_create): a plugin's own failure keeps its code.
struct PluginError : Error {
  PluginError(int code, const std::string& message) : Error(message), code(code) {}
  int code;
};
}  // namespace ssmhost
