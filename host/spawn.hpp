// Running ssmhost itself as a child process: `bench` measures each
// combination in a fresh process (its own peak memory), `sweep` runs each
// configuration as `ssmhost train`.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace ssmhost {

// The path of the running executable (/proc/self/exe).
std::string self_executable();

// Starts `exe args...` with stdout and stderr appended to the given files
// ("" keeps the parent's). Throws ssmhost::Error when it cannot start.
pid_t spawn_process(const std::string& exe, const std::vector<std::string>& args, const std::string& stdout_path,
                    const std::string& stderr_path);

struct ChildExit {
  pid_t pid = -1;
  int status = -1;       // the exit code, or 128 + signal
  bool signaled = false;
  double peak_rss_mb = 0;  // the child's peak resident memory (wait4's rusage)
};

// Waits for `pid` (or any child when pid == -1).
ChildExit wait_process(pid_t pid);

// Runs and waits.
ChildExit run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& stdout_path,
                      const std::string& stderr_path);

// The last `max_lines` non-empty lines of a text file ("" if unreadable).
std::string tail_of_file(const std::string& path, size_t max_lines);

}  // namespace ssmhost
