// What many tests need: the build's plugins in one registry, and a scratch
// directory that cleans up after itself.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "registry.hpp"

namespace ssm_test {

// The build's real plugins, loaded once per test executable.
inline ssmhost::Registry& plugin_registry() {
  static ssmhost::Registry reg;
  static const bool loaded = [] {
    reg.add_path(SSM_TEST_PLUGIN_DIR);
    reg.load();
    return true;
  }();
  (void)loaded;
  return reg;
}

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "ssm_test") {
    std::string name = "/tmp/" + tag + "_XXXXXX";
    REQUIRE(mkdtemp(name.data()) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace ssm_test
