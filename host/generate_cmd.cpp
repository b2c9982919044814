// `ssmhost generate RUN.h5 --prompt TEXT --length N`: text from a trained
// language model (a char_lm run, or any task with a text vocabulary). The
// model is rebuilt from the run's checkpoint, the prompt runs through its
// layers in recurrent step mode, then each new character is sampled and fed
// back, one step each: the cost per character does not depend on how long
// the context is. --mode reconvolve instead re-runs the whole convolution
// over the context for every new character (the naive way, for comparison).
#include <ssm/kernels/parallel.hpp>
#include <ssm/kernels/philox.hpp>
#include <ssm/utf8.hpp>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "checkpoint.hpp"
#include "commands.hpp"
#include "model.hpp"
#include "options.hpp"
#include "registry.hpp"
#include "runlog.hpp"

namespace po = boost::program_options;

namespace ssmhost {

namespace {

using Clock = std::chrono::steady_clock;

po::options_description generate_options() {
  po::options_description d("ssmhost generate RUN.h5 [options]");
  d.add_options()("run", po::value<std::string>(), "the run log (its checkpoint RUN.h5.ckpt is read), or the checkpoint")(
      "prompt", po::value<std::string>(), "the text to start from (UTF-8)")(
      "prompt-file", po::value<std::string>(), "read the prompt from this file instead")(
      "length", po::value<int64_t>()->default_value(200), "characters (tokens) to generate")(
      "temperature", po::value<double>()->default_value(1.0),
      "divide the logits by T before sampling; 0: always the most likely token")(
      "top-k", po::value<int64_t>()->default_value(0), "sample among the K most likely tokens only (0: all)")(
      "seed", po::value<uint64_t>()->default_value(0), "seed of the sampling (same seed, same text)")(
      "checkpoint", po::value<std::string>(), "the checkpoint to load (default: RUN.h5.ckpt)")(
      "mode", po::value<std::string>()->default_value("step"),
      "step: recurrent, constant cost per token; reconvolve: the full forward pass over the whole context for "
      "every new token (for comparison)")(
      "threads", po::value<int64_t>()->default_value(1), "CPU threads (0: one per core)")(
      "no-echo", "print only the generated text, not the prompt before it")(
      "time", "print the prompt's and the generation's speed (tokens per second) on stderr")(
      "plugin-path", po::value<std::vector<std::string>>()->composing(), "also search this folder or file; repeatable");
  return d;
}

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// How token ids map to text: the vocabulary the run log recorded.
struct Vocab {
  bool bytes = false;
  std::vector<uint32_t> codepoints;  // char vocabulary: by id
  std::unordered_map<uint32_t, int32_t> id_of;
  int64_t size() const { return bytes ? 256 : static_cast<int64_t>(codepoints.size()); }

  static Vocab from_log(const RunLogReader& log) {
    const auto& a = log.root_attrs();
    auto kind = a.find("vocab_kind");
    if (kind == a.end())
      throw Error(log.path() + " records no text vocabulary (its task is '" +
                  (log.config().count("task") ? log.config().at("task") : std::string("?")) +
                  "'): generate needs a run of a text task such as char_lm");
    Vocab v;
    if (kind->second == "byte") {
      v.bytes = true;
      return v;
    }
    if (kind->second != "char" || !a.count("vocab_codepoints"))
      throw Error(log.path() + ": vocab_kind '" + kind->second + "' is not byte or char with vocab_codepoints");
    std::stringstream ss(a.at("vocab_codepoints"));
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t used = 0;
      unsigned long cp = 0;
      try {
        cp = std::stoul(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size() || used == 0 || cp > 0x10FFFF)
        throw Error(log.path() + ": vocab_codepoints has a bad entry '" + item + "'");
      v.id_of[static_cast<uint32_t>(cp)] = static_cast<int32_t>(v.codepoints.size());
      v.codepoints.push_back(static_cast<uint32_t>(cp));
    }
    if (v.codepoints.size() < 2) throw Error(log.path() + ": vocab_codepoints has fewer than 2 characters");
    return v;
  }

  std::vector<int32_t> encode(const std::string& text, const std::string& what) const {
    std::vector<int32_t> ids;
    if (bytes) {
      for (char c : text) ids.push_back(static_cast<uint8_t>(c));
      return ids;
    }
    for (size_t pos = 0; pos < text.size();) {
      const size_t at = pos;
      const int64_t cp = ssm::utf8_decode(text, pos);
      if (cp < 0) throw Error(what + ": invalid UTF-8 at byte " + std::to_string(at));
      auto it = id_of.find(static_cast<uint32_t>(cp));
      if (it == id_of.end()) {
        char hex[16];
        std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(cp));
        throw Error(what + ": the character '" + text.substr(at, pos - at) + "' (" + hex +
                    ") is not in the run's vocabulary of " + std::to_string(codepoints.size()) +
                    " characters (the characters of its training text)");
      }
      ids.push_back(it->second);
    }
    return ids;
  }

  std::string decode(int32_t id) const {
    if (bytes) return std::string(1, static_cast<char>(id));
    std::string s;
    ssm::utf8_append(codepoints.at(static_cast<size_t>(id)), s);
    return s;
  }
};

// Draws a token from logits: greedy at temperature 0, else softmax(logits /
// T) restricted to the top k, with the draw'th uniform of the seed's stream.
int32_t sample(const float* logits, int64_t n, double temperature, int64_t top_k, uint64_t seed, uint64_t draw) {
  if (temperature == 0) return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  const int64_t k = top_k > 0 ? std::min(top_k, n) : n;
  // Ties keep the lower id first, so the same logits always give the same order.
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const double top = logits[order[0]];
  std::vector<double> w(static_cast<size_t>(k));
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += w[i] = std::exp((logits[order[i]] - top) / temperature);
  double u = ssm::kernels::philox_uniform(seed, 0x6e6e, draw) * sum;
  for (int64_t i = 0; i < k; ++i) {
    u -= w[i];
    if (u < 0) return order[i];
  }
  return order[k - 1];
}

std::string read_prompt_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--prompt-file " + path + ": cannot open it");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string generate_help() {
  std::ostringstream o;
  o << "ssmhost generate RUN.h5 --prompt TEXT [--length N --temperature T --top-k K --seed S]\n\n"
       "Loads the run's checkpoint (RUN.h5.ckpt: the last one written), runs the prompt through the model in\n"
       "recurrent step mode, then samples --length tokens one at a time, printing each as it comes. Works with\n"
       "runs of text tasks (char_lm): the run log holds the vocabulary that turns tokens into text.\n\n"
    << generate_options();
  return o.str();
}

int run_generate(const std::vector<std::string>& args) {
  po::positional_options_description pos;
  pos.add("run", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(generate_options()).positional(pos).run(), vm);
  po::notify(vm);
  if (!vm.count("run")) throw UsageError("generate needs a run log, e.g. `ssmhost generate runs/lm.h5 --prompt 'The '`");
  if (vm.count("prompt") == vm.count("prompt-file"))
    throw UsageError("generate needs one of --prompt TEXT or --prompt-file FILE");
  const int64_t length = vm["length"].as<int64_t>(), top_k = vm["top-k"].as<int64_t>();
  const double temperature = vm["temperature"].as<double>();
  if (length < 0) throw UsageError("--length must be >= 0, got " + std::to_string(length));
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw UsageError("--temperature must be >= 0 (0: greedy), got " + std::to_string(temperature));
  if (top_k < 0) throw UsageError("--top-k must be >= 0 (0: all tokens), got " + std::to_string(top_k));
  const std::string mode = vm["mode"].as<std::string>();
  if (mode != "step" && mode != "reconvolve")
    throw UsageError("--mode must be step or reconvolve, got '" + mode + "'");
  int64_t threads = vm["threads"].as<int64_t>();
  if (threads < 0) throw UsageError("--threads must be >= 0");
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  ssm::kernels::set_threads(static_cast<int>(threads));

  // The run log (for the vocabulary) and its checkpoint (for the model).
  std::string run = vm["run"].as<std::string>();
  std::string log_path = run, ckpt_path = run + ".ckpt";
  if (ends_with(run, ".ckpt")) log_path = run.substr(0, run.size() - 5), ckpt_path = run;
  if (vm.count("checkpoint")) ckpt_path = vm["checkpoint"].as<std::string>();
  const RunLogReader log = RunLogReader::open(log_path);
  const Vocab vocab = Vocab::from_log(log);
  const CheckpointData ck = load_checkpoint(ckpt_path);
  const std::string prompt =
      vm.count("prompt") ? vm["prompt"].as<std::string>() : read_prompt_file(vm["prompt-file"].as<std::string>());
  const std::vector<int32_t> prompt_ids = vocab.encode(prompt, vm.count("prompt") ? "--prompt" : "--prompt-file");
  if (prompt_ids.empty()) throw UsageError("the prompt is empty; give at least one character");

  Registry reg;
  load_registry(reg, vm);
  const KV& c = ck.config;
  auto need = [&](const char* key) -> const std::string& {
    auto it = c.find(key);
    if (it == c.end()) throw Error(ckpt_path + ": the checkpoint's options have no '" + key + "'");
    return it->second;
  };
  ModelConfig mc;
  mc.layer = need("layer");
  mc.layer_config = c;
  mc.d_model = as_int(c, "d_model", 1);
  mc.n_layers = as_int(c, "n_layers", 1);
  mc.dropout = as_double(c, "dropout");
  mc.prenorm = as_bool(c, "prenorm");
  mc.norm = need("norm");
  mc.seed = static_cast<uint64_t>(as_int(c, "seed", 0));
  mc.threads = static_cast<int>(threads);
  mc.task.struct_size = sizeof(ssm_task_info);
  mc.task.input_kind = SSM_INPUT_TOKENS;
  mc.task.vocab_size = vocab.size();
  mc.task.n_out = vocab.size();
  mc.task.seq_len = c.count("context") ? as_int(c, "context", 1) : 1;
  mc.task.readout = SSM_READOUT_ALL;
  mc.task.loss = SSM_LOSS_CROSS_ENTROPY;
  Model model(reg, mc);
  for (Parameter& p : model.params())
    restore_array(ck, ckpt_path, "param/" + p.name, p.value.shape(), p.value.data<float>());

  const bool echo = !vm.count("no-echo");
  if (echo) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  const uint64_t seed = vm["seed"].as<uint64_t>();
  const int64_t V = vocab.size();
  std::vector<int32_t> context = prompt_ids;
  std::vector<float> logits(static_cast<size_t>(V));

  // The prompt: through the layers, leaving the logits of its last position.
  const auto t0 = Clock::now();
  Tensor tok = Tensor::of<int32_t>({1});
  auto step_one = [&](int32_t id) {
    tok.data<int32_t>()[0] = id;
    const Tensor& y = model.step(tok);
    std::copy(y.data<float>(), y.data<float>() + V, logits.begin());
  };
  auto forward_all = [&] {
    Tensor x = Tensor::of<int32_t>({1, static_cast<int64_t>(context.size())});
    std::copy(context.begin(), context.end(), x.data<int32_t>());
    const Tensor& y = model.forward(x, false, 0);
    const float* last = y.data<float>() + (static_cast<int64_t>(context.size()) - 1) * V;
    std::copy(last, last + V, logits.begin());
  };
  if (mode == "step") {
    model.step_reset(1);
    for (int32_t id : prompt_ids) step_one(id);
  } else {
    forward_all();
  }
  const auto t1 = Clock::now();
  for (int64_t i = 0; i < length; ++i) {
    const int32_t id = sample(logits.data(), V, temperature, top_k, seed, static_cast<uint64_t>(i));
    const std::string text = vocab.decode(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    context.push_back(id);
    if (i + 1 == length) break;  // the last token's logits are not needed
    if (mode == "step")
      step_one(id);
    else
      forward_all();
  }
  const auto t2 = Clock::now();
  if (echo || length > 0) std::printf("\n");
  if (vm.count("time")) {
    const double tp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr,
                 "ssmhost generate: mode %s, threads %lld, prompt %zu tokens in %.3f s (%.1f tokens/s), "
                 "generated %lld tokens in %.3f s (%.1f tokens/s)\n",
                 mode.c_str(), static_cast<long long>(threads), prompt_ids.size(), tp, prompt_ids.size() / tp,
                 static_cast<long long>(length), tg, length > 0 ? length / tg : 0.0);
  }
  return 0;
}

}  // namespace ssmhost
