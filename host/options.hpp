// Command-line option text shared by the subcommands: --set KEY=VALUE pairs,
// option names in both spellings, and typed values with messages that name
// the option. Every error is a UsageError (exit status 2).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "commands.hpp"

namespace ssmhost {

using KV = std::map<std::string, std::string>;  // as in registry.hpp

// "d_model" -> "d-model" (how a flag is written) and back.
std::string dashes(std::string s);
std::string underscores(std::string s);

// Splits "KEY=VALUE" at its first '=' into (KEY, VALUE) as written; VALUE may
// be empty, KEY may not. `option` names the flag in the error without its
// dashes: parse_key_value("d_model", "set") throws
// "--set needs KEY=VALUE, got 'd_model'".
std::pair<std::string, std::string> parse_key_value(const std::string& s, const std::string& option);

// The whole text as an integer, or as a finite number; nullopt when it is
// not one (empty, trailing characters, out of range).
std::optional<int64_t> to_int(const std::string& v);
std::optional<double> to_double(const std::string& v);

// kv.at(key) as a whole integer >= lo, a finite number, or a boolean
// (true/1/yes/on, false/0/no/off); the error names the flag --key-with-dashes.
int64_t as_int(const KV& kv, const std::string& key, int64_t lo);
double as_double(const KV& kv, const std::string& key);
bool as_bool(const KV& kv, const std::string& key);

}  // namespace ssmhost
