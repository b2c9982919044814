#include "options.hpp"

#include <cmath>
#include <exception>

namespace ssmhost {

std::string dashes(std::string s) {
  for (char& c : s)
    if (c == '_') c = '-';
  return s;
}

std::string underscores(std::string s) {
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

std::pair<std::string, std::string> parse_key_value(const std::string& s, const std::string& option) {
  size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError("--" + option + " needs KEY=VALUE, got '" + s + "'");
  return {s.substr(0, eq), s.substr(eq + 1)};
}

std::optional<int64_t> to_int(const std::string& v) {
  size_t used = 0;
  long long r = 0;
  try {
    r = std::stoll(v, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used == 0 || used != v.size()) return std::nullopt;
  return r;
}

std::optional<double> to_double(const std::string& v) {
  size_t used = 0;
  double r = 0;
  try {
    r = std::stod(v, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (used == 0 || used != v.size() || !std::isfinite(r)) return std::nullopt;
  return r;
}

int64_t as_int(const KV& kv, const std::string& key, int64_t lo) {
  const std::string& v = kv.at(key);
  std::optional<int64_t> r = to_int(v);
  if (!r) throw UsageError("--" + dashes(key) + " must be an integer, got '" + v + "'");
  if (*r < lo) throw UsageError("--" + dashes(key) + " must be >= " + std::to_string(lo) + ", got " + v);
  return *r;
}

double as_double(const KV& kv, const std::string& key) {
  const std::string& v = kv.at(key);
  std::optional<double> r = to_double(v);
  if (!r) throw UsageError("--" + dashes(key) + " must be a number, got '" + v + "'");
  return *r;
}

bool as_bool(const KV& kv, const std::string& key) {
  const std::string& v = kv.at(key);
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  throw UsageError("--" + dashes(key) + " must be true or false, got '" + v + "'");
}

}  // namespace ssmhost
