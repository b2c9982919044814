// The text dataset and the char_lm task: vocabularies (char and byte), the
// held-out tail, the default corpus's fixed order, every error case, a fuzz
// of the UTF-8 reader, char_lm's windows and baselines, and a small model
// that beats the unigram and bigram baselines' bits per character.
#include <catch2/catch.hpp>

#include "test_support.hpp"

#include <ssm/ext/text_vocab.h>
#include <ssm/utf8.hpp>
#include <ssm/kernels/philox.hpp>
#include <ssm/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "registry.hpp"
#include "runlog.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

ssmhost::Registry& registry() { return ssm_test::plugin_registry(); }

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every token of a split.
std::vector<int32_t> tokens(const ssmhost::DatasetObject& ds, int split, int64_t n) {
  std::vector<int32_t> x(static_cast<size_t>(n));
  std::vector<int64_t> idx(static_cast<size_t>(n)), labels(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  ssm::View vx(x.data(), {n}), vl(labels.data(), {n});
  ds.read(split, idx.data(), n, vx.get(), vl.get());
  for (int64_t i = 0; i < n; ++i) REQUIRE(labels[static_cast<size_t>(i)] == x[static_cast<size_t>(i)]);
  return x;
}

const ssm_text_vocab* vocab_of(const ssmhost::DatasetObject& ds) {
  return static_cast<const ssm_text_vocab*>(ds.f().get_extension(ds.instance(), SSM_EXT_TEXT_VOCAB));
}

std::string utf8(uint32_t cp) {
  std::string s;
  ssm::utf8_append(cp, s);
  return s;
}

// Token ids back to text through the vocabulary extension.
std::string decode(const ssm_text_vocab& v, const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    REQUIRE(id >= 0);
    REQUIRE(id < v.size);
    if (v.kind == SSM_TEXT_VOCAB_BYTE)
      s += static_cast<char>(id);
    else
      s += utf8(v.codepoints[id]);
  }
  return s;
}

// A pseudo-English text: sentences of words from a small lexicon, chosen by
// a fixed counter-based generator. Structured enough that a model beats a
// bigram model, and the same on every machine.
std::string generated_text(size_t bytes) {
  static const char* words[] = {"the",   "state", "space", "model", "learns", "a",     "long",  "sequence",
                                "of",    "words", "and",   "then",  "it",     "can",   "write", "them",
                                "again", "from",  "its",   "own",   "memory", "while", "time",  "goes"};
  const uint64_t n_words = sizeof words / sizeof *words;
  std::string s;
  uint64_t draw = 0;
  while (s.size() < bytes) {
    const int len = 3 + static_cast<int>(ssm::kernels::philox_uniform_bits(7, 1, draw++) % 8);
    for (int w = 0; w < len; ++w) {
      std::string word = words[ssm::kernels::philox_uniform_bits(7, 2, draw++) % n_words];
      if (w == 0) word[0] = static_cast<char>(word[0] - 'a' + 'A');
      s += word;
      s += w + 1 < len ? " " : ".\n";
    }
  }
  return s;
}

}  // namespace

TEST_CASE("text: a character vocabulary in code point order, the tail held out", "[text]") {
  ssm_test::TempDir dir("ssm_text");
  // 20 characters: ASCII, 2-, 3- and 4-byte UTF-8.
  const std::string text = "ab\xc3\xa9" "c\xe6\x97\xa5" "ba\xf0\x9f\x98\x80" "aaaaaaaaaaab";
  write_file(dir.path / "t.txt", text);
  auto ds = registry().create_dataset("text", {{"text", (dir.path / "t.txt").string()}, {"valid_fraction", "0.25"}});
  const ssm_dataset_info info = ds->info();
  CHECK(info.n_train + info.n_test == 20);
  CHECK(info.n_test == 5);
  CHECK(info.example_ndim == 0);
  CHECK(ssm::same_dtype(info.example_dtype, ssm::dtype_of<int32_t>::value));
  const ssm_text_vocab* v = vocab_of(*ds);
  REQUIRE(v != nullptr);
  CHECK(v->kind == SSM_TEXT_VOCAB_CHAR);
  REQUIRE(v->size == 6);
  CHECK(info.n_classes == 6);
  CHECK(std::vector<uint32_t>(v->codepoints, v->codepoints + 6) ==
        std::vector<uint32_t>{'a', 'b', 'c', 0xE9, 0x65E5, 0x1F600});
  const std::vector<int32_t> train = tokens(*ds, SSM_SPLIT_TRAIN, info.n_train);
  const std::vector<int32_t> test = tokens(*ds, SSM_SPLIT_TEST, info.n_test);
  CHECK(train == std::vector<int32_t>{0, 1, 3, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0});
  CHECK(test == std::vector<int32_t>{0, 0, 0, 0, 1});
  CHECK(decode(*v, train) + decode(*v, test) == text);
}

TEST_CASE("text: a byte vocabulary takes any bytes; text_limit cuts at a whole character", "[text]") {
  ssm_test::TempDir dir("ssm_text");
  std::string bytes;
  for (int i = 0; i < 300; ++i) bytes += static_cast<char>((i * 37) & 0xff);  // not UTF-8
  write_file(dir.path / "b.bin", bytes);
  auto ds = registry().create_dataset("text", {{"text", (dir.path / "b.bin").string()}, {"text_vocab", "byte"}});
  const ssm_dataset_info info = ds->info();
  CHECK(info.n_classes == 256);
  CHECK(info.n_test == 30);
  const ssm_text_vocab* v = vocab_of(*ds);
  REQUIRE(v != nullptr);
  CHECK(v->kind == SSM_TEXT_VOCAB_BYTE);
  CHECK(v->codepoints == nullptr);
  CHECK(decode(*v, tokens(*ds, SSM_SPLIT_TRAIN, info.n_train)) + decode(*v, tokens(*ds, SSM_SPLIT_TEST, info.n_test)) ==
        bytes);

  // "aé" repeated: a limit of 8 bytes would split the third é; the cut goes back to 7 bytes, "aéaéa".
  std::string text;
  for (int i = 0; i < 10; ++i) text += "a\xc3\xa9";
  write_file(dir.path / "u.txt", text);
  auto cut = registry().create_dataset("text", {{"text", (dir.path / "u.txt").string()}, {"text_limit", "8"},
                                                {"valid_fraction", "0.5"}});
  CHECK(cut->info().n_train + cut->info().n_test == 5);
  CHECK_THROWS_WITH(registry().create_dataset("text", {{"text", (dir.path / "u.txt").string()}, {"text_limit", "3"}}),
                    Contains("u.txt") && Contains("2 characters") && Contains("too few"));
  auto bytes4 = registry().create_dataset("text", {{"text", (dir.path / "u.txt").string()}, {"text_limit", "8"},
                                                   {"text_vocab", "byte"}, {"valid_fraction", "0.5"}});
  CHECK(bytes4->info().n_train + bytes4->info().n_test == 8);
}

TEST_CASE("text: errors name the file and the problem", "[text][errors]") {
  ssm_test::TempDir dir("ssm_text");
  const std::string good = (dir.path / "good.txt").string();
  write_file(good, "hello, world, hello, world\n");
  auto open = [&](const std::string& path, ssmhost::KV more = {}) {
    more["text"] = path;
    return registry().create_dataset("text", more);
  };
  SECTION("missing file") { CHECK_THROWS_WITH(open((dir.path / "nope.txt").string()), Contains("nope.txt")); }
  SECTION("a folder") { CHECK_THROWS_WITH(open(dir.path.string()), Contains("not a regular file")); }
  SECTION("empty file") {
    write_file(dir.path / "empty.txt", "");
    CHECK_THROWS_WITH(open((dir.path / "empty.txt").string()), Contains("empty.txt") && Contains("empty"));
  }
  SECTION("invalid UTF-8: the offset of the first bad byte") {
    write_file(dir.path / "latin1.txt", "caf\xe9 au lait");
    CHECK_THROWS_WITH(open((dir.path / "latin1.txt").string()),
                      Contains("latin1.txt") && Contains("UTF-8") && Contains("0xe9") && Contains("offset 3") &&
                          Contains("byte"));
    write_file(dir.path / "cut.txt", "abc\xe6\x97");  // a character cut short by the end
    CHECK_THROWS_WITH(open((dir.path / "cut.txt").string()), Contains("offset 3"));
    write_file(dir.path / "overlong.txt", "ab\xc0\xaf");  // '/' in an overlong form
    CHECK_THROWS_WITH(open((dir.path / "overlong.txt").string()), Contains("offset 2"));
    write_file(dir.path / "surrogate.txt", "ab\xed\xa0\x80");  // U+D800
    CHECK_THROWS_WITH(open((dir.path / "surrogate.txt").string()), Contains("offset 2"));
  }
  SECTION("too short to split") {
    write_file(dir.path / "short.txt", "abc");
    CHECK_THROWS_WITH(open((dir.path / "short.txt").string()), Contains("short.txt") && Contains("3 characters"));
  }
  SECTION("bad options") {
    CHECK_THROWS_WITH(open(good, {{"text_vocab", "word"}}), Contains("text_vocab") && Contains("char or byte"));
    CHECK_THROWS_WITH(open(good, {{"valid_fraction", "1"}}), Contains("valid_fraction"));
    CHECK_THROWS_WITH(open(good, {{"valid_fraction", "0"}}), Contains("valid_fraction"));
    CHECK_THROWS_WITH(open(good, {{"text_limit", "-1"}}), Contains("text_limit"));
  }
  SECTION("index out of range, bad split, bad tensors") {
    auto ds = open(good);
    const int64_t n_train = ds->info().n_train, n_test = ds->info().n_test, minus = -1, zero = 0;
    int32_t x = 0;
    float xf = 0;
    ssm::View vx(&x, {1}), vxf(&xf, {1}), vx2(&x, {2});
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &n_train, 1, vx.get(), nullptr),
                      Contains("index " + std::to_string(n_train)) && Contains("good.txt"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TEST, &n_test, 1, vx.get(), nullptr), Contains("validation"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &minus, 1, vx.get(), nullptr), Contains("index -1"));
    CHECK_THROWS_WITH(ds->read(5, &zero, 1, vx.get(), nullptr), Contains("split"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vxf.get(), nullptr), Contains("float32"));
    CHECK_THROWS_WITH(ds->read(SSM_SPLIT_TRAIN, &zero, 1, vx2.get(), nullptr), Contains("(2)"));
  }
}

TEST_CASE("text: a fuzzed file loads or fails with a message, never crashes", "[text][fuzz]") {
  ssm_test::TempDir dir("ssm_text");
  const std::string base = "Sch\xc3\xb6n ist \xe6\x97\xa5 und \xf0\x9f\x98\x80 ok.\n" + generated_text(200);
  const fs::path p = dir.path / "fuzz.txt";
  int loaded = 0, refused = 0;
  for (uint64_t trial = 0; trial < 300; ++trial) {
    std::string s = base;
    const int edits = 1 + static_cast<int>(ssm::kernels::philox_uniform_bits(11, trial, 0) % 4);
    for (int e = 0; e < edits; ++e) {
      const uint64_t r = ssm::kernels::philox_uniform_bits(11, trial, 1 + e);
      if (s.empty()) break;
      const size_t at = static_cast<size_t>(r % s.size());
      switch ((r >> 32) % 3) {
        case 0: s[at] = static_cast<char>(r >> 40); break;  // a random byte
        case 1: s.resize(at); break;                        // truncated
        default: s.insert(at, 1, static_cast<char>(0x80 | ((r >> 40) & 0x7f)));  // a stray continuation byte
      }
    }
    write_file(p, s);
    for (const char* kind : {"char", "byte"}) {
      try {
        auto ds = registry().create_dataset("text", {{"text", p.string()}, {"text_vocab", kind}});
        const ssm_dataset_info info = ds->info();
        if (std::string(kind) == "byte") CHECK(info.n_train + info.n_test == static_cast<int64_t>(s.size()));
        ++loaded;
      } catch (const ssmhost::Error& e) {
        CHECK(std::string(e.what()).find("fuzz.txt") != std::string::npos);
        ++refused;
      }
    }
  }
  CHECK(loaded > 0);
  CHECK(refused > 0);
}

TEST_CASE("text: the default corpus is Debian's fortune files in a fixed order", "[text][fortunes]") {
  const fs::path dir = "/usr/share/games/fortunes";
  if (!fs::exists(dir / "art") || !fs::exists(dir / "zippy")) {
    WARN("SKIPPED: " << dir << " lacks the fortune files (install Debian's packages fortunes-min and fortunes)");
    return;
  }
  auto ds = registry().create_dataset("text", {{"text_vocab", "byte"}});
  const ssm_dataset_info info = ds->info();
  const std::string art = read_file(dir / "art"), zippy = read_file(dir / "zippy");
  uintmax_t total = 0;
  for (const char* name : {"art", "ascii-art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs",
                           "education", "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law",
                           "linux", "linuxcookie", "literature", "love", "magic", "medicine", "men-women",
                           "miscellaneous", "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics",
                           "pratchett", "riddles", "science", "songs-poems", "sports", "startrek", "tao",
                           "translate-me", "wisdom", "work", "zippy"})
    total += fs::file_size(dir / name);
  CHECK(static_cast<uintmax_t>(info.n_train + info.n_test) == total);
  const ssm_text_vocab* v = vocab_of(*ds);
  REQUIRE(v != nullptr);
  std::vector<int64_t> head(200), tail(200);
  std::iota(head.begin(), head.end(), 0);
  std::iota(tail.begin(), tail.end(), info.n_test - 200);
  std::vector<int32_t> x(200);
  ssm::View vx(x.data(), {200});
  ds->read(SSM_SPLIT_TRAIN, head.data(), 200, vx.get(), nullptr);
  CHECK(decode(*v, x) == art.substr(0, 200));  // first file first
  ds->read(SSM_SPLIT_TEST, tail.data(), 200, vx.get(), nullptr);
  CHECK(decode(*v, x) == zippy.substr(zippy.size() - 200));  // last file last

  auto chars = registry().create_dataset("text", {});  // the default: characters
  CHECK(chars->info().n_classes > 90);
  CHECK(chars->info().n_classes < 200);
}

TEST_CASE("char_lm: windows of L+1 tokens, every position scored", "[char_lm]") {
  ssm_test::TempDir dir("ssm_char_lm");
  const std::string text = generated_text(4000);
  write_file(dir.path / "g.txt", text);
  const ssmhost::KV opts = {{"text", (dir.path / "g.txt").string()}, {"context", "32"}};
  auto task = registry().create_task("char_lm", opts);
  const ssm_task_info i = task->info();
  auto ds = registry().create_dataset("text", opts);
  const ssm_dataset_info di = ds->info();
  CHECK(i.input_kind == SSM_INPUT_TOKENS);
  CHECK(i.vocab_size == di.n_classes);
  CHECK(i.n_out == di.n_classes);
  CHECK(i.seq_len == 32);
  CHECK(i.readout == SSM_READOUT_ALL);
  CHECK(i.loss == SSM_LOSS_CROSS_ENTROPY);
  CHECK(i.metric == SSM_METRIC_BPC);
  CHECK(i.n_train == di.n_train / 32 - 1);
  CHECK(i.n_eval == (di.n_test - 1) / 32);
  CHECK(registry().create_task("char_lm", {{"text", opts.at("text")}, {"seq_len", "16"}})->info().seq_len == 16);
  CHECK(registry().create_task("char_lm", {{"text", opts.at("text")}, {"context", "32"}, {"eval_size", "3"}})->info().n_eval == 3);

  const std::vector<int32_t> train = tokens(*ds, SSM_SPLIT_TRAIN, di.n_train), valid = tokens(*ds, SSM_SPLIT_TEST, di.n_test);
  const int64_t B = 4, L = 32;
  auto fetch = [&](int split, uint64_t seed, uint64_t index) {
    std::vector<int32_t> x(B * L), y(B * L);
    ssm::View vx(x.data(), {B, L}), vy(y.data(), {B, L});
    task->batch(split, seed, index, B, vx.get(), vy.get(), nullptr);
    return std::make_pair(x, y);
  };
  // Training windows: y is x shifted by one, and x is a run of the training split.
  std::map<int64_t, int> starts_seen;
  for (uint64_t index = 0; index < 5; ++index) {
    auto [x, y] = fetch(SSM_SPLIT_TRAIN, 3, index);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t + 1 < L; ++t) CHECK(y[b * L + t] == x[b * L + t + 1]);
      // Find the window in the training split.
      int64_t found = -1;
      for (int64_t s = 0; s + L < di.n_train && found < 0; ++s)
        if (std::equal(x.begin() + b * L, x.begin() + (b + 1) * L, train.begin() + s) && train[s + L] == y[b * L + L - 1])
          found = s;
      CHECK(found >= 0);
      ++starts_seen[found];
    }
  }
  CHECK(starts_seen.size() == 20);  // 20 distinct windows in 5 batches of one epoch
  // Pure: the same arguments, the same batch; another seed or index, another batch.
  CHECK(fetch(SSM_SPLIT_TRAIN, 3, 2) == fetch(SSM_SPLIT_TRAIN, 3, 2));
  CHECK(fetch(SSM_SPLIT_TRAIN, 3, 2) != fetch(SSM_SPLIT_TRAIN, 4, 2));
  CHECK(fetch(SSM_SPLIT_TRAIN, 3, 2) != fetch(SSM_SPLIT_TRAIN, 3, 3));
  // Evaluation windows tile the validation split from its start.
  auto [ex, ey] = fetch(SSM_SPLIT_TEST, 99, 1);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t) {
      const int64_t w = (B + b) % i.n_eval;
      CHECK(ex[b * L + t] == valid[w * L + t]);
      CHECK(ey[b * L + t] == valid[w * L + t + 1]);
    }
  CHECK(fetch(SSM_SPLIT_TEST, 99, 1) == fetch(SSM_SPLIT_TEST, 5, 1));  // evaluation does not depend on the seed

  // The vocabulary is passed on; the baselines are those of the scored targets.
  const auto* v = static_cast<const ssm_text_vocab*>(task->f().get_extension(task->instance(), SSM_EXT_TEXT_VOCAB));
  REQUIRE(v != nullptr);
  CHECK(v->size == i.vocab_size);
  const auto* base = static_cast<const ssm_text_baselines*>(task->f().get_extension(task->instance(), SSM_EXT_TEXT_BASELINES));
  REQUIRE(base != nullptr);
  CHECK(base->n_scored == i.n_eval * L);
  std::vector<double> uni(static_cast<size_t>(i.vocab_size), 0);
  for (int32_t t : train) uni[t] += 1;
  double bits = 0;
  for (int64_t w = 0; w < i.n_eval; ++w)
    for (int64_t t = 1; t <= L; ++t)
      bits -= std::log2((uni[valid[w * L + t]] + 1) / (static_cast<double>(train.size()) + static_cast<double>(i.vocab_size)));
  CHECK(base->unigram_bpc == Approx(bits / static_cast<double>(base->n_scored)).epsilon(1e-12));
  CHECK(base->bigram_bpc < base->unigram_bpc);  // words: the previous letter tells a lot
}

TEST_CASE("char_lm: errors name the problem", "[char_lm][errors]") {
  ssm_test::TempDir dir("ssm_char_lm");
  write_file(dir.path / "s.txt", generated_text(300));
  const std::string s = (dir.path / "s.txt").string();
  CHECK_THROWS_WITH(registry().create_task("char_lm", {{"text", s}, {"context", "200"}}),
                    Contains("training split") && Contains("context"));
  CHECK_THROWS_WITH(registry().create_task("char_lm", {{"text", s}, {"context", "40"}}),
                    Contains("validation split") && Contains("valid-fraction"));
  CHECK_THROWS_WITH(registry().create_task("char_lm", {{"text", s}, {"context", "0"}}), Contains("context"));
  CHECK_THROWS_WITH(registry().create_task("char_lm", {{"text", (dir.path / "none.txt").string()}}), Contains("none.txt"));
  CHECK_THROWS_WITH(registry().create_task("char_lm", {{"text", s}, {"dataset", "idx"}, {"dataset_dir", dir.path.string()}}),
                    Contains("idx") || Contains("missing"));
  auto task = registry().create_task("char_lm", {{"text", s}, {"context", "8"}});
  std::vector<int32_t> x(4 * 8), y(4 * 8);
  ssm::View vx(x.data(), {4, 8}), vy(y.data(), {4, 8}), vy_bad(y.data(), {4, 7});
  CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 4, vx.get(), vy_bad.get(), nullptr), Contains("(4, 8)"));
  CHECK_THROWS_WITH(task->batch(2, 0, 0, 4, vx.get(), vy.get(), nullptr), Contains("split"));
  CHECK_THROWS_WITH(task->batch(SSM_SPLIT_TRAIN, 0, 0, 4000, vx.get(), vy.get(), nullptr), Contains("x"));
}

TEST_CASE("char_lm: a small S4D model beats the unigram and bigram models", "[char_lm][learning]") {
  ssm_test::TempDir dir("ssm_char_lm");
  // The default corpus (its first 300 kB) when installed, else a generated text.
  std::string source;
  if (fs::exists("/usr/share/games/fortunes/zippy")) {
    source = "--text-limit 300000";
  } else {
    WARN("the fortune files are not installed: learning on a generated text instead");
    write_file(dir.path / "g.txt", generated_text(300000));
    source = "--text " + (dir.path / "g.txt").string();
  }
  const std::string args = source + " --context 64 --eval-size 200";
  const ssm_test::Run r = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task char_lm " + args +
                    " --d-model 64 --n-layers 2 --d-state 16 --batch-size 16 --lr 0.01 --warmup 20 --epochs 0"
                    " --steps 300 --eval-every 150 --threads 1 --quiet --log lm.h5");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  ssmhost::KV opts = {{"context", "64"}, {"eval_size", "200"}};
  if (source.rfind("--text-limit", 0) == 0)
    opts["text_limit"] = "300000";
  else
    opts["text"] = (dir.path / "g.txt").string();
  auto task = registry().create_task("char_lm", opts);
  const auto* base = static_cast<const ssm_text_baselines*>(task->f().get_extension(task->instance(), SSM_EXT_TEXT_BASELINES));
  REQUIRE(base != nullptr);
  const ssmhost::RunLogReader log = ssmhost::RunLogReader::open((dir.path / "lm.h5").string());
  const double bpc = log.summary_numbers().at("final_metric");
  INFO("model " << bpc << " bpc, unigram " << base->unigram_bpc << ", bigram " << base->bigram_bpc);
  CHECK(log.metric_name() == "bpc");
  CHECK(bpc < base->unigram_bpc - 0.5);
  CHECK(bpc < base->bigram_bpc);
  // The log keeps the baselines and the vocabulary.
  CHECK(log.summary_numbers().at("unigram_bpc") == Approx(base->unigram_bpc));
  CHECK(log.summary_numbers().at("bigram_bpc") == Approx(base->bigram_bpc));
  CHECK(log.root_attrs().at("vocab_kind") == "char");
  const std::string cps = log.root_attrs().at("vocab_codepoints");
  CHECK(static_cast<int64_t>(std::count(cps.begin(), cps.end(), ',')) + 1 == task->info().vocab_size);
  std::vector<long> ids;  // code point order: strictly increasing
  for (size_t pos = 0; pos < cps.size();) {
    size_t used = 0;
    ids.push_back(std::stol(cps.substr(pos), &used));
    pos += used + 1;
  }
  CHECK(std::adjacent_find(ids.begin(), ids.end(), [](long a, long b) { return a >= b; }) == ids.end());
  CHECK(std::find(ids.begin(), ids.end(), long{'\n'}) != ids.end());
}

TEST_CASE("generate: text from a char_lm run, step mode equal to reconvolving, errors named", "[generate]") {
  ssm_test::TempDir dir("ssm_generate");
  // A text with a two-byte character (é), so that decoding is exercised.
  write_file(dir.path / "g.txt", generated_text(40000) + "caf\xc3\xa9.\n");
  const ssm_test::Run train = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task char_lm --text g.txt --context 32 --eval-size 50 --d-model 16 --n-layers 2"
                " --d-state 8 --batch-size 8 --steps 40 --eval-every 40 --threads 1 --quiet --log lm.h5");
  INFO(train.out << train.err);
  REQUIRE(train.status == 0);

  auto gen = [&](const std::string& args) { return ssm_test::run_ssmhost(dir.path, "generate lm.h5 " + args); };
  const ssm_test::Run step = gen("--prompt 'The caf\xc3\xa9 ' --length 60 --temperature 0");
  INFO(step.err);
  REQUIRE(step.status == 0);
  CHECK(step.out.rfind("The caf\xc3\xa9 ", 0) == 0);  // the prompt first
  // The same characters from the full forward pass over the growing context.
  const ssm_test::Run reconv = gen("--prompt 'The caf\xc3\xa9 ' --length 60 --temperature 0 --mode reconvolve");
  REQUIRE(reconv.status == 0);
  CHECK(reconv.out == step.out);
  // Sampling: the same seed the same text, another seed another text; --no-echo
  // prints exactly --length characters (and a newline).
  const ssm_test::Run a = gen("--prompt 'The ' --length 80 --seed 3 --top-k 5 --no-echo");
  const ssm_test::Run b = gen("--prompt 'The ' --length 80 --seed 3 --top-k 5 --no-echo");
  const ssm_test::Run c = gen("--prompt 'The ' --length 80 --seed 4 --no-echo --time");
  REQUIRE(a.status == 0);
  REQUIRE(c.status == 0);
  CHECK(a.out == b.out);
  CHECK(a.out != c.out);
  size_t chars = 0;
  for (size_t pos = 0; pos < a.out.size();) {
    REQUIRE(ssm::utf8_decode(a.out, pos) >= 0);
    ++chars;
  }
  CHECK(chars == 81);
  CHECK_THAT(c.err, Contains("tokens/s"));
  // The checkpoint may be named directly.
  CHECK(gen("--prompt 'The ' --length 5 --checkpoint lm.h5.ckpt").status == 0);

  // Errors: a character the text never had, no prompt, a missing checkpoint,
  // a run of a task without a text vocabulary.
  const ssm_test::Run unknown = gen("--prompt 'snow \xe2\x98\x83' --length 5");
  CHECK(unknown.status == 1);
  CHECK_THAT(unknown.err, Contains("U+2603") && Contains("not in the run's vocabulary"));
  CHECK(gen("--length 5").status == 2);
  const ssm_test::Run missing = gen("--prompt 'The ' --checkpoint nowhere.ckpt");
  CHECK(missing.status == 1);
  CHECK_THAT(missing.err, Contains("nowhere.ckpt"));
  const ssm_test::Run copy = ssm_test::run_ssmhost(
      dir.path, "--layer s4d --task copy --steps 2 --eval-every 2 --d-model 8 --d-state 4 --threads 1 --quiet --log copy.h5");
  REQUIRE(copy.status == 0);
  const ssm_test::Run not_text = ssm_test::run_ssmhost(dir.path, "generate copy.h5 --prompt x");
  CHECK(not_text.status == 1);
  CHECK_THAT(not_text.err, Contains("copy.h5") && Contains("no text vocabulary"));
}
