#include "spawn.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <deque>

#include "error.hpp"

extern char** environ;

namespace ssmhost {

std::string self_executable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the path of the running ssmhost (/proc/self/exe)");
  buf[n] = 0;
  return buf;
}

pid_t spawn_process(const std::string& exe, const std::vector<std::string>& args, const std::string& stdout_path,
                    const std::string& stderr_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stdout_path.empty())
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (!stderr_path.empty()) {
    if (stderr_path == stdout_path)
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    else
      posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                       0644);
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error("cannot start '" + exe + "': " + std::strerror(rc));
  return pid;
}

ChildExit wait_process(pid_t pid) {
  ChildExit e;
  int raw = 0;
  struct rusage ru {};
  pid_t got;
  do {
    got = wait4(pid, &raw, 0, &ru);
  } while (got < 0 && errno == EINTR);
  if (got < 0) throw Error(std::string("waiting for a child process failed: ") + std::strerror(errno));
  e.pid = got;
  if (WIFEXITED(raw)) e.status = WEXITSTATUS(raw);
  if (WIFSIGNALED(raw)) {
    e.signaled = true;
    e.status = 128 + WTERMSIG(raw);
  }
  e.peak_rss_mb = ru.ru_maxrss / 1024.0;  // KiB on Linux
  return e;
}

ChildExit run_process(const std::string& exe, const std::vector<std::string>& args, const std::string& stdout_path,
                      const std::string& stderr_path) {
  return wait_process(spawn_process(exe, args, stdout_path, stderr_path));
}

std::string tail_of_file(const std::string& path, size_t max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    // A progress line redrawn with \r: keep what was shown last.
    size_t cr = line.find_last_of('\r');
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (line.empty()) continue;
    lines.push_back(line);
    if (lines.size() > max_lines) lines.pop_front();
  }
  std::string out;
  for (const std::string& l : lines) out += (out.empty() ? "" : "\n") + l;
  return out;
}

}  // namespace ssmhost
