// names.hpp: the edit distance and the "did you mean" matcher that the
// registry (plugin names) and `ssmhost train` (option names) share.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "names.hpp"

using ssmhost::closest_names;
using ssmhost::edit_distance;
using Names = std::vector<std::string>;

TEST_CASE("edit_distance counts insertions, deletions and substitutions", "[names]") {
  CHECK(edit_distance("", "") == 0);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("abc", "") == 3);
  CHECK(edit_distance("s4d", "s4d") == 0);
  CHECK(edit_distance("s4d", "s4e") == 1);         // substitution
  CHECK(edit_distance("cpy", "copy") == 1);        // insertion
  CHECK(edit_distance("copyy", "copy") == 1);      // deletion
  CHECK(edit_distance("d_modle", "d_model") == 2);  // a transposition is two edits
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("zoh", "bilinear") == edit_distance("bilinear", "zoh"));
}

TEST_CASE("closest_names: near or prefix, closest first, alphabetical on ties", "[names]") {
  const Names layers = {"s4d", "s4", "s6", "mamba", "h3"};
  // s4e: s4 is a prefix of it (first), s4d 1 edit away, s6 2, h3 3 (too far).
  CHECK(closest_names("s4e", layers, 5) == Names{"s4", "s4d", "s6"});
  CHECK(closest_names("s4e", layers, 2) == Names{"s4", "s4d"});
  CHECK(closest_names("mamab", layers, 5) == Names{"mamba"});

  // The threshold is max(2, length / 3) of the candidate.
  CHECK(closest_names("test_god", {"test_good"}, 5) == Names{"test_good"});
  CHECK(closest_names("selectve_cpy", {"selective_copy"}, 5) == Names{"selective_copy"});  // 2 edits
  CHECK(closest_names("xyz", {"selective_copy"}, 5).empty());
  CHECK(closest_names("selectivity_cop", {"selective_copy"}, 5) == Names{"selective_copy"});  // 4 <= 14/3
  CHECK(closest_names("seletivity_cop", {"selective_copy"}, 5).empty());                      // 5 > 14/3

  // A prefix either way counts, however far.
  CHECK(closest_names("sel", {"selective_copy", "copy"}, 5) == Names{"selective_copy"});
  CHECK(closest_names("selective_copy_long", {"selective_copy"}, 5) == Names{"selective_copy"});
  // ... but the empty name matches only by distance.
  CHECK(closest_names("", {"ab", "abcdef"}, 5) == Names{"ab"});

  // Repeats (an id that is also someone's alias) come once; max_results 0: none.
  CHECK(closest_names("zo", {"zoh", "zoh", "zoo"}, 5) == Names{"zoh", "zoo"});
  CHECK(closest_names("zo", {"zoh"}, 0).empty());
  CHECK(closest_names("anything", {}, 5).empty());
}

TEST_CASE("closest_names finds the option a typo meant", "[names]") {
  const Names options = {"batch_size", "d_model", "d_state", "dropout", "lr", "lr_ssm", "n_layers", "seq_len"};
  CHECK(closest_names("d_modle", options, 1) == Names{"d_model"});
  CHECK(closest_names("dropot", options, 1) == Names{"dropout"});
  CHECK(closest_names("batchsize", options, 1) == Names{"batch_size"});
  CHECK(closest_names("warmup_steps", options, 1).empty());
}
