#include "names.hpp"

#include <algorithm>
#include <utility>

namespace ssmhost {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> closest_names(const std::string& name, const std::vector<std::string>& candidates,
                                       size_t max_results) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const std::string& n : candidates) {
    size_t d = edit_distance(name, n);
    bool prefix = !name.empty() && (n.rfind(name, 0) == 0 || name.rfind(n, 0) == 0);
    if (d <= std::max<size_t>(2, n.size() / 3) || prefix) scored.push_back({prefix ? 0 : d, n});
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (auto& s : scored)
    if (out.size() < max_results && std::find(out.begin(), out.end(), s.second) == out.end()) out.push_back(s.second);
  return out;
}

}  // namespace ssmhost
