// options.hpp: --set KEY=VALUE, flag spellings and typed option values, with
// errors that name the option (UsageError: exit status 2).
#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "options.hpp"

using Catch::Matchers::Contains;
using ssmhost::KV;

TEST_CASE("parse_key_value splits at the first '=' and names the option in errors", "[options]") {
  using P = std::pair<std::string, std::string>;
  CHECK(ssmhost::parse_key_value("d_model=16", "set") == P{"d_model", "16"});
  CHECK(ssmhost::parse_key_value("init=a=b", "set") == P{"init", "a=b"});
  CHECK(ssmhost::parse_key_value("disc=", "set") == P{"disc", ""});
  CHECK_THROWS_AS(ssmhost::parse_key_value("d_model", "set"), ssmhost::UsageError);
  CHECK_THROWS_WITH(ssmhost::parse_key_value("d_model", "set"), "--set needs KEY=VALUE, got 'd_model'");
  CHECK_THROWS_WITH(ssmhost::parse_key_value("=3", "set"), Contains("KEY=VALUE"));
}

TEST_CASE("dashes and underscores", "[options]") {
  CHECK(ssmhost::dashes("eval_every") == "eval-every");
  CHECK(ssmhost::underscores("eval-every") == "eval_every");
}

TEST_CASE("typed option values", "[options]") {
  const KV kv = {{"steps", "20"}, {"neg", "-3"}, {"lr", "1e-3"}, {"bad", "12x"}, {"inf", "inf"}, {"yes", "on"},
                 {"no", "0"}, {"empty", ""}};
  CHECK(ssmhost::as_int(kv, "steps", 1) == 20);
  CHECK(ssmhost::as_int(kv, "neg", -5) == -3);
  CHECK_THROWS_WITH(ssmhost::as_int(kv, "neg", 0), "--neg must be >= 0, got -3");
  CHECK_THROWS_WITH(ssmhost::as_int(kv, "bad", 0), "--bad must be an integer, got '12x'");
  CHECK_THROWS_WITH(ssmhost::as_int(kv, "empty", 0), Contains("must be an integer"));
  CHECK(ssmhost::as_double(kv, "lr") == 1e-3);
  CHECK_THROWS_WITH(ssmhost::as_double(kv, "inf"), "--inf must be a number, got 'inf'");
  CHECK(ssmhost::as_bool(kv, "yes"));
  CHECK_FALSE(ssmhost::as_bool(kv, "no"));
  CHECK_THROWS_WITH(ssmhost::as_bool(kv, "steps"), "--steps must be true or false, got '20'");
  CHECK(ssmhost::to_int("99999999999999999999") == std::nullopt);  // out of range
  CHECK(ssmhost::to_double("0.5") == 0.5);
}
