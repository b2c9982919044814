// A text file as a stream of tokens (docs/tasks.md, "text"): bytes (256 ids)
// or Unicode characters (one id per distinct code point of the text, in
// code point order). The last `valid_fraction` of the tokens is the test
// split, the rest the training split. Each token is one example (a 0-d
// int32); its label is its own id, so n_classes is the vocabulary size. A
// task that wants windows (char_lm) reads consecutive indices.
//
// Default corpus (no --text): Debian's fortune files (packages fortunes-min
// and fortunes), concatenated in the fixed order of kDefaultCorpus.
#include <ssm/ext/text_vocab.h>
#include <ssm/sdk.hpp>
#include <ssm/utf8.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

namespace {

constexpr const char* kDefaultDir = "/usr/share/games/fortunes";
// fortunes-min ships fortunes, literature and riddles; fortunes the rest.
// Alphabetical; this order is part of the corpus's definition.
constexpr const char* kDefaultCorpus[] = {
    "art",        "ascii-art", "computers",  "cookie",      "debian",    "definitions",  "disclaimer", "drugs",
    "education",  "ethnic",    "food",       "fortunes",    "goedel",    "humorists",    "kids",       "knghtbrd",
    "law",        "linux",     "linuxcookie", "literature", "love",      "magic",        "medicine",   "men-women",
    "miscellaneous", "news",   "paradoxum",  "people",      "perl",      "pets",         "platitudes", "politics",
    "pratchett",  "riddles",   "science",    "songs-poems", "sports",    "startrek",     "tao",        "translate-me",
    "wisdom",     "work",      "zippy"};

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The whole file, or an error naming it.
std::string slurp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    ssm::fail("cannot read '" + path + "': " + std::strerror(errno), SSM_ERR_NOT_FOUND);
  if (!S_ISREG(st.st_mode)) ssm::fail("'" + path + "' is not a regular file", SSM_ERR_IO);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) ssm::fail("cannot open '" + path + "': " + std::strerror(errno), SSM_ERR_IO);
  std::string out;
  char buf[1 << 16];
  size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, got);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) ssm::fail("cannot read '" + path + "': read error", SSM_ERR_IO);
  return out;
}

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

class Text : public ssm::Dataset {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::string("text", "",
                            "the text file (UTF-8 for --text-vocab char, anything for byte); default: Debian's "
                            "fortune files in /usr/share/games/fortunes (packages fortunes-min and fortunes)"),
        ssm::Option::string("text_vocab", "char",
                            "char: one token per distinct Unicode character of the text; byte: 256 tokens, one per byte"),
        ssm::Option::real("valid_fraction", "0.1", "the last fraction of the tokens is the validation (test) split"),
        ssm::Option::integer("text_limit", "0",
                             "use only the first N bytes of the text (cut back to a whole character; 0: all)"),
    };
  }

  explicit Text(const ssm::Config& cfg) {
    const std::string kind = cfg.str("text_vocab");
    if (kind != "char" && kind != "byte")
      ssm::fail("option 'text_vocab' must be char or byte, got '" + kind + "'");
    const double frac = cfg.f64("valid_fraction");
    if (!(frac > 0 && frac < 1)) ssm::fail("option 'valid_fraction' must be in (0, 1), got " + cfg.str("valid_fraction"));
    const int64_t limit = cfg.i64_at_least("text_limit", 0);

    std::string text;
    path_ = cfg.str("text");
    if (path_.empty()) {
      path_ = kDefaultDir;
      for (const char* name : kDefaultCorpus) {
        const std::string file = std::string(kDefaultDir) + "/" + name;
        if (!is_file(file))
          ssm::fail("the default corpus needs '" + file + "', which is missing: install Debian's packages "
                    "fortunes-min and fortunes (apt install fortunes), or pass a text file with option 'text' "
                    "(--text FILE)",
                    SSM_ERR_NOT_FOUND);
        text += slurp(file);
      }
    } else {
      text = slurp(path_);
    }
    if (text.empty()) ssm::fail("'" + path_ + "' is empty: there is no text to learn from");
    if (limit > 0 && static_cast<uint64_t>(limit) < text.size()) {
      size_t cut = static_cast<size_t>(limit);
      if (kind == "char")
        while (cut > 0 && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
      text.resize(cut);
      if (text.empty()) ssm::fail("option 'text_limit' " + std::to_string(limit) + " leaves no whole character of '" + path_ + "'");
    }

    vocab_.struct_size = sizeof(vocab_);
    if (kind == "byte") {
      vocab_.kind = SSM_TEXT_VOCAB_BYTE;
      vocab_.size = 256;
      tokens_.resize(text.size());
      for (size_t i = 0; i < text.size(); ++i) tokens_[i] = static_cast<uint8_t>(text[i]);
    } else {
      vocab_.kind = SSM_TEXT_VOCAB_CHAR;
      std::vector<uint32_t> cps;
      cps.reserve(text.size());
      for (size_t pos = 0; pos < text.size();) {
        const size_t at = pos;
        const int64_t cp = ssm::utf8_decode(text, pos);
        if (cp < 0)
          ssm::fail("'" + path_ + "' is not valid UTF-8: byte " + hex_byte(static_cast<uint8_t>(text[at])) +
                    " at offset " + std::to_string(at) +
                    " does not start a well-formed character (use --text-vocab byte for any bytes)");
        cps.push_back(static_cast<uint32_t>(cp));
      }
      codepoints_ = cps;
      std::sort(codepoints_.begin(), codepoints_.end());
      codepoints_.erase(std::unique(codepoints_.begin(), codepoints_.end()), codepoints_.end());
      vocab_.size = static_cast<int64_t>(codepoints_.size());
      vocab_.codepoints = codepoints_.data();
      tokens_.resize(cps.size());
      for (size_t i = 0; i < cps.size(); ++i)
        tokens_[i] = static_cast<int32_t>(std::lower_bound(codepoints_.begin(), codepoints_.end(), cps[i]) -
                                          codepoints_.begin());
    }
    const int64_t n = static_cast<int64_t>(tokens_.size());
    n_test_ = static_cast<int64_t>(static_cast<double>(n) * frac + 0.5);
    n_train_ = n - n_test_;
    if (n_test_ < 2 || n_train_ < 2)
      ssm::fail("'" + path_ + "' has " + std::to_string(n) + " " + (kind == "byte" ? "bytes" : "characters") +
                ": too few for a training and a validation split of at least 2 tokens each at valid_fraction " +
                cfg.str("valid_fraction"));
  }

  ssm_dataset_info info() override {
    ssm_dataset_info i{};
    i.n_train = n_train_;
    i.n_test = n_test_;
    i.example_ndim = 0;
    i.example_dtype = ssm::dtype_of<int32_t>::value;
    i.n_classes = vocab_.size;
    return i;
  }

  void read(int split, const int64_t* indices, int64_t n, DLTensor& x, DLTensor* labels) override {
    if (split != SSM_SPLIT_TRAIN && split != SSM_SPLIT_TEST)
      ssm::fail("split must be 0 (train) or 1 (test), got " + std::to_string(split));
    ssm::check_shape(x, {n}, "x");
    int32_t* xp = ssm::data<int32_t>(x, "x");
    int64_t* lp = nullptr;
    if (labels) {
      ssm::check_shape(*labels, {n}, "labels");
      lp = ssm::data<int64_t>(*labels, "labels");
    }
    const int64_t size = split == SSM_SPLIT_TRAIN ? n_train_ : n_test_;
    const int64_t base = split == SSM_SPLIT_TRAIN ? 0 : n_train_;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = indices[k];
      if (i < 0 || i >= size)
        ssm::fail("index " + std::to_string(i) + " is out of range for the " +
                  (split == SSM_SPLIT_TRAIN ? "training" : "validation") + " split of '" + path_ + "' (" +
                  std::to_string(size) + " tokens)");
      xp[k] = tokens_[static_cast<size_t>(base + i)];
      if (lp) lp[k] = xp[k];
    }
  }

  const void* extension(const char* id) override {
    return std::strcmp(id, SSM_EXT_TEXT_VOCAB) == 0 ? &vocab_ : nullptr;
  }

 private:
  std::string path_;
  std::vector<int32_t> tokens_;
  std::vector<uint32_t> codepoints_;
  ssm_text_vocab vocab_{};
  int64_t n_train_ = 0, n_test_ = 0;
};

}  // namespace

SSM_PLUGIN_DATASET(Text, "text", "1.0.0",
                   "A text file as a token stream: bytes or Unicode characters, the tail held out for validation")
