// Fuzzy name matching for "did you mean ...?" hints: plugin ids and aliases
// (registry.cpp), option names (train_cmd.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ssmhost {

// Levenshtein distance: insertions, deletions and substitutions, each 1.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidates close to `name`, closest first, without repeats, at most
// max_results. A candidate is close when its edit distance to name is at most
// max(2, candidate length / 3), or when one is a prefix of the other (these
// rank first); ties go in alphabetical order.
std::vector<std::string> closest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       size_t max_results);

}  // namespace ssmhost
