// The host's one exception type: a message a user can act on.
#pragma once

#include <stdexcept>

namespace ssmhost {
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace ssmhost
