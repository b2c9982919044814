// SHA-256 (FIPS 180-4) of a file or a buffer, as lowercase hex: the identity
// of each plugin library a run used, recorded in its run log.
#pragma once

#include <cstddef>
#include <string>

namespace ssmhost {

std::string sha256_hex(const void* data, size_t bytes);
// Throws ssmhost::Error naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace ssmhost
