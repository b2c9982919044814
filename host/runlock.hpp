// One writer per run log: a lock file beside the log (`<log>.lock`).
//
// The writer holds an exclusive flock() on the lock file for as long as it
// writes the log and its checkpoint, and writes its PID, host, start time and
// command line into it. The kernel drops the flock when the process ends in
// any way (kill -9 included), so a lock file left by a dead process is stale
// and is taken over; its PID is checked as well, for file systems where
// flock() is not available. Readers (`ssmhost report`, h5py) never take the
// lock: they only read the lock file to say who is writing.
#pragma once

#include <optional>
#include <string>

namespace ssmhost {

// What a lock file says about its writer.
struct LockHolder {
  long pid = 0;
  std::string host, started, command;
  // "process 1234 on host h (started 2024-05-01T12:00:00Z): ssmhost --task ..."
  std::string describe() const;
};

class RunLock {
 public:
  RunLock() = default;
  // Takes the lock of the run log at `log_path`; throws ssmhost::Error naming
  // the running writer when another live process holds it, or when the lock
  // file cannot be made. A stale lock (its process is gone) is taken over.
  static RunLock acquire(const std::string& log_path, const std::string& command_line);

  // The live writer of `log_path`, if any. Creates, locks and changes nothing.
  static std::optional<LockHolder> holder(const std::string& log_path);

  static std::string lock_path_of(const std::string& log_path) { return log_path + ".lock"; }

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();  // release()

  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }  // the lock file
  // Removes the lock file and drops the lock. Calling it again does nothing.
  void release();

  // The lock file also keeps some disk space in reserve (kReserveBytes,
  // allocated past its end: its size stays a few hundred bytes). When a
  // write fails on a full disk, giving that space back lets the run log
  // still take its last rows and its summary (status "failed"). Returns
  // whether there was a reserve to give back.
  static constexpr long kReserveBytes = 4L << 20;
  bool release_reserve();

 private:
  std::string path_;
  std::string content_;
  int fd_ = -1;
  bool reserved_ = false;
};

// Removes `<path>.tmp-<pid>` files beside `path` whose process is gone (left
// by a run killed while it wrote a new run log or checkpoint).
void remove_stale_temp_files(const std::string& path);

class RunLogReader;
// How a run ended, in one line, for `ssmhost report`: "completed after 2000
// steps", "failed at step 17: <message>", "interrupted by SIGINT after step
// 600 (...)", "live: being written by process 1234 ...", or "not finished:
// its process ended before it could close the log ...".
std::string describe_run_state(const RunLogReader& r);

// True when a process with this PID runs on this machine (or exists but is
// not ours to signal).
bool process_alive(long pid);

}  // namespace ssmhost
