// SHA-256, the identity of plugin libraries in run logs: FIPS 180-4 test
// vectors, and a file hashed against coreutils' sha256sum.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "sha256.hpp"
#include "test_support.hpp"

TEST_CASE("SHA-256 known answers", "[sha256]") {
  CHECK(ssmhost::sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(ssmhost::sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 56 bytes: padding spills
  CHECK(ssmhost::sha256_hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  CHECK(ssmhost::sha256_hex(million.data(), million.size()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("SHA-256 of a file equals sha256sum's", "[sha256]") {
  ssm_test::TempDir dir("ssm_sha256");
  const std::string path = (dir.path / "data.bin").string();
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 200000; ++i) out.put(static_cast<char>((i * 7919) & 0xff));  // > one read buffer
  }
  FILE* p = popen(("sha256sum '" + path + "'").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[65] = {0};
  REQUIRE(std::fread(buf, 1, 64, p) == 64);
  pclose(p);
  CHECK(ssmhost::sha256_file(path) == std::string(buf, 64));
  CHECK_THROWS_WITH(ssmhost::sha256_file(path + ".missing"), Catch::Matchers::Contains("data.bin.missing"));
}
