#include "runlock.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "runlog.hpp"  // utc_timestamp

namespace ssmhost {

namespace {

std::string this_host() {
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  return host;
}

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since
// boot. With the PID it names one process for good (PIDs are reused).
std::string process_start(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text)) return "";
  size_t paren = text.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return "";
  std::istringstream rest(text.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && (rest >> field); ++i)
    if (i == 22) return field;
  return "";
}

struct LockContent {
  LockHolder holder;
  std::string proc_start;
};

LockContent parse(const std::string& text) {
  LockContent c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "pid") {
      try {
        c.holder.pid = std::stol(value);
      } catch (const std::exception&) {
        c.holder.pid = 0;
      }
    } else if (key == "host") {
      c.holder.host = value;
    } else if (key == "started") {
      c.holder.started = value;
    } else if (key == "command") {
      c.holder.command = value;
    } else if (key == "proc_start") {
      c.proc_start = value;
    }
  }
  return c;
}

std::string read_all(int fd) {
  std::string text;
  char buf[4096];
  if (lseek(fd, 0, SEEK_SET) < 0) return text;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 65536) break;
  }
  return text;
}

// Whether the process a lock file names still runs (on this host; a lock
// written on another host is taken as live: we cannot look).
bool holder_alive(const LockContent& c) {
  if (c.holder.pid <= 0) return false;
  if (!c.holder.host.empty() && c.holder.host != this_host()) return true;
  if (!process_alive(c.holder.pid)) return false;
  if (!c.proc_start.empty()) {
    std::string now = process_start(c.holder.pid);
    if (!now.empty() && now != c.proc_start) return false;  // the PID was reused
  }
  return true;
}

std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return s;
}

}  // namespace

bool process_alive(long pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno == EPERM;
}

void remove_stale_temp_files(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string directory = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp-";
  DIR* dir = opendir(directory.c_str());
  if (!dir) return;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const long pid = std::stol(pid_text);
    if (pid == static_cast<long>(::getpid()) || process_alive(pid)) continue;  // its writer still runs
    ::unlink((directory + "/" + name).c_str());
  }
  closedir(dir);
}

std::string describe_run_state(const RunLogReader& r) {
  if (!r.finished()) {
    if (auto holder = RunLock::holder(r.path())) return "live: being written by " + holder->describe();
    return "not finished: its process ended before it could close the log (killed, or a write failed); "
           "`ssmhost --resume " + r.path() + ".ckpt` continues it from its last checkpoint";
  }
  const std::string status = r.status();
  if (status.empty()) return "finished (no status: written by an older ssmhost)";
  auto text = [&](const char* key) {
    auto it = r.summary_text().find(key);
    return it == r.summary_text().end() ? std::string() : it->second;
  };
  auto number = [&](const char* key) {
    auto it = r.summary_numbers().find(key);
    return it == r.summary_numbers().end() ? std::string("?") : std::to_string(static_cast<long long>(it->second));
  };
  if (status == "failed") return "failed at step " + number("failed_step") + ": " + text("message");
  if (status == "interrupted")
    return "interrupted by " + text("stopped_by") + " after step " + number("steps") + " (`ssmhost --resume " +
           text("checkpoint") + "` continues it)";
  return status + " after " + number("steps") + " steps";
}

std::string LockHolder::describe() const {
  std::string s = "process " + std::to_string(pid);
  if (!host.empty()) s += " on " + host;
  if (!started.empty()) s += " (started " + started + ")";
  if (!command.empty()) s += ": " + command;
  return s;
}

RunLock RunLock::acquire(const std::string& log_path, const std::string& command_line) {
  const std::string path = lock_path_of(log_path);
  const std::string where = "run log '" + log_path + "'";
  for (int attempt = 0; attempt < 20; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw Error(where + ": cannot create its lock file '" + path + "': " + std::strerror(errno));
    bool have_flock = true;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK || err == EINTR) {
        LockContent c = parse(read_all(fd));
        ::close(fd);
        if (err == EINTR) continue;
        throw Error(where + " is being written by " +
                    (c.holder.pid > 0 ? c.holder.describe() : std::string("another process")) +
                    "; wait for that run to end, stop it, or choose another --log (lock file '" + path + "')");
      }
      have_flock = false;  // ENOLCK, EOPNOTSUPP...: fall back to the PID alone
    }
    // The file we locked must still be the lock file: the previous holder
    // removes it (while holding the lock) before letting go.
    struct stat by_fd {}, by_name {};
    if (::fstat(fd, &by_fd) != 0 || ::stat(path.c_str(), &by_name) != 0 || by_fd.st_ino != by_name.st_ino ||
        by_fd.st_dev != by_name.st_dev) {
      ::close(fd);
      continue;
    }
    LockContent old = parse(read_all(fd));
    if (old.holder.pid > 0 && old.holder.pid != static_cast<long>(::getpid()) && holder_alive(old) &&
        (!have_flock || old.holder.host != this_host())) {
      ::close(fd);
      throw Error(where + " is being written by " + old.holder.describe() +
                  "; wait for that run to end, stop it, or choose another --log (lock file '" + path +
                  "'; if that process is gone, delete the lock file)");
    }
    // Ours. A stale lock (its writer died without removing it) is simply replaced.
    std::ostringstream content;
    content << "pid=" << ::getpid() << "\nhost=" << this_host() << "\nstarted=" << utc_timestamp()
            << "\nproc_start=" << process_start(::getpid()) << "\ncommand=" << one_line(command_line) << "\n";
    const std::string text = content.str();
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
      const std::string reason = std::strerror(errno);
      ::unlink(path.c_str());
      ::close(fd);
      throw Error(where + ": cannot write its lock file '" + path + "': " + reason);
    }
    RunLock lock;
    lock.path_ = path;
    lock.fd_ = fd;
    lock.content_ = text;
    // Best effort: a file system without fallocate, or a disk already too
    // full for it, simply runs without a reserve.
    lock.reserved_ = ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, kReserveBytes) == 0;
    return lock;
  }
  throw Error(where + ": cannot take its lock file '" + path + "' (it keeps changing)");
}

std::optional<LockHolder> RunLock::holder(const std::string& log_path) {
  int fd = ::open(lock_path_of(log_path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  LockContent c = parse(read_all(fd));
  ::close(fd);
  if (!holder_alive(c)) return std::nullopt;
  return c.holder;
}

RunLock::RunLock(RunLock&& other) noexcept
    : path_(std::move(other.path_)), content_(std::move(other.content_)), fd_(other.fd_), reserved_(other.reserved_) {
  other.fd_ = -1;
  other.reserved_ = false;
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    content_ = std::move(other.content_);
    fd_ = other.fd_;
    reserved_ = other.reserved_;
    other.fd_ = -1;
    other.reserved_ = false;
  }
  return *this;
}

bool RunLock::release_reserve() {
  if (fd_ < 0 || !reserved_) return false;
  reserved_ = false;
  // Truncating frees every block past the new end, the reserved ones too;
  // then the content goes back (into one of the blocks just freed).
  if (::ftruncate(fd_, 0) != 0) return false;
  ssize_t written = ::pwrite(fd_, content_.data(), content_.size(), 0);
  (void)written;
  return true;
}

RunLock::~RunLock() { release(); }

void RunLock::release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding the lock: see acquire()
  ::close(fd_);
  fd_ = -1;
  reserved_ = false;
}

}  // namespace ssmhost
