// Checkpoints: everything `--resume` needs, in an HDF5 file of its own
// (usually beside the run log, e.g. run.h5.ckpt). See docs/runlog.md.
//
// save_checkpoint() writes `path + ".tmp-<pid>"`, flushes and fsyncs it, then
// rename()s it over `path`: a reader sees the old checkpoint or the new one,
// never half of one, and a failed save leaves the old one as it was.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ssmhost {

inline constexpr int64_t kCheckpointFormat = 1;

// A float32 tensor, row-major. An empty shape is a scalar (one value).
// Names may contain '/' ("param/3/log_dt", "adam_m/3/log_dt").
struct NamedArray {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct CheckpointData {
  int64_t step = 0;
  int64_t epoch = 0;
  uint64_t seed = 0;
  uint64_t data_index = 0;                    // position in the data stream
  std::map<std::string, std::string> config;  // the resolved options of the run
  std::map<std::string, double> trainer_state; // e.g. best metric, patience counter (optional)
  std::vector<NamedArray> arrays;             // parameters and optimizer moments, order kept
};

// Throws ssmhost::Error naming `path` if the data is inconsistent (shape vs
// size, bad names) or the file cannot be written; `path` is untouched then.
void save_checkpoint(const std::string& path, const CheckpointData& data);

// Throws ssmhost::Error naming `path` if it is missing, not HDF5, truncated
// or damaged, or not an ssmhost checkpoint.
CheckpointData load_checkpoint(const std::string& path);

// Copies the array `name` of ck into dst (its shape must be `shape`), or
// throws naming `what` (e.g. "--resume run.h5.ckpt") and the array.
void restore_array(const CheckpointData& ck, const std::string& what, const std::string& name,
                   const std::vector<int64_t>& shape, float* dst);

}  // namespace ssmhost
