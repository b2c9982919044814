/* faultfs: an LD_PRELOAD library for tests that makes chosen writes fail as
 * on a full disk (or with an I/O error), so that ssmhost's handling of them
 * can be tested without a small file system.
 *
 * Environment (read once):
 *   SSM_FAULT_FILE        glob (fnmatch) on the base name of the files to hit,
 *                         e.g. "run.h5", "run.h5.tmp-*", "run.h5.ckpt.tmp-*".
 *                         A file renamed into a matching name is hit from then on.
 *   SSM_FAULT_SKIP_FILES  the first N matching files opened for writing are
 *                         spared (default 0)
 *   SSM_FAULT_ARM_ON      glob: writes fail only after SSM_FAULT_ARM_AFTER
 *                         (default 1) renames onto a name matching it
 *                         (e.g. "run.h5.ckpt": after the first checkpoint)
 *   SSM_FAULT_ERRNO       ENOSPC (default) or EIO
 * Writes (write, pwrite, pwritev, fallocate, ftruncate that grows) to a hit
 * file then fail with that errno, and each failure is counted in the file
 * named by SSM_FAULT_COUNT, if given (one line per failure). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_init = 0;
static const char* g_pattern = NULL;
static const char* g_arm_on = NULL;
static int g_arm_after = 1, g_renames = 0;
static int g_skip = 0, g_seen = 0;
static int g_errno = ENOSPC;
static const char* g_count_file = NULL;
static char* g_path[MAX_FDS];  /* the name a written file is known by */
static int g_spared[MAX_FDS];  /* opened while SKIP_FILES still counted */

static void init(void) {
  if (g_init) return;
  g_init = 1;
  g_pattern = getenv("SSM_FAULT_FILE");
  g_arm_on = getenv("SSM_FAULT_ARM_ON");
  const char* s = getenv("SSM_FAULT_ARM_AFTER");
  if (s) g_arm_after = atoi(s);
  s = getenv("SSM_FAULT_SKIP_FILES");
  if (s) g_skip = atoi(s);
  s = getenv("SSM_FAULT_ERRNO");
  if (s && strcmp(s, "EIO") == 0) g_errno = EIO;
  g_count_file = getenv("SSM_FAULT_COUNT");
}

static const char* base_name(const char* path) {
  const char* slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int matches(const char* path) { return g_pattern && path && fnmatch(g_pattern, base_name(path), 0) == 0; }

static void track(int fd, const char* path, int flags) {
  if (fd < 0 || fd >= MAX_FDS || !path) return;
  pthread_mutex_lock(&g_mutex);
  init();
  free(g_path[fd]);
  g_path[fd] = NULL;
  g_spared[fd] = 0;
  if ((flags & O_ACCMODE) != O_RDONLY) {
    g_path[fd] = strdup(path);
    if (matches(path) && g_seen++ < g_skip) g_spared[fd] = 1;
  }
  pthread_mutex_unlock(&g_mutex);
}

/* Whether a write to fd must fail now; counts the failure. */
static int hit(int fd) {
  if (fd < 0 || fd >= MAX_FDS) return 0;
  pthread_mutex_lock(&g_mutex);
  init();
  int fail = g_path[fd] && !g_spared[fd] && matches(g_path[fd]) && (!g_arm_on || g_renames >= g_arm_after);
  if (fail && g_count_file) {
    FILE* f = fopen(g_count_file, "a");
    if (f) {
      fprintf(f, "%s\n", base_name(g_path[fd]));
      fclose(f);
    }
  }
  pthread_mutex_unlock(&g_mutex);
  if (fail) errno = g_errno;
  return fail;
}

#define REAL(name) \
  static __typeof__(&name) real_##name = NULL; \
  if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

int open(const char* path, int flags, ...) {
  REAL(open);
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  int fd = real_open(path, flags, mode);
  track(fd, path, flags);
  return fd;
}

int open64(const char* path, int flags, ...) {
  REAL(open64);
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  int fd = real_open64(path, flags, mode);
  track(fd, path, flags);
  return fd;
}

int openat(int dirfd, const char* path, int flags, ...) {
  REAL(openat);
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  int fd = real_openat(dirfd, path, flags, mode);
  track(fd, path, flags);
  return fd;
}

int creat(const char* path, mode_t mode) { return open(path, O_CREAT | O_WRONLY | O_TRUNC, mode); }

int close(int fd) {
  REAL(close);
  if (fd >= 0 && fd < MAX_FDS) {
    pthread_mutex_lock(&g_mutex);
    free(g_path[fd]);
    g_path[fd] = NULL;
    g_spared[fd] = 0;
    pthread_mutex_unlock(&g_mutex);
  }
  return real_close(fd);
}

static void renamed(const char* from, const char* to) {
  pthread_mutex_lock(&g_mutex);
  init();
  for (int fd = 0; fd < MAX_FDS; ++fd)
    if (g_path[fd] && strcmp(g_path[fd], from) == 0) {
      free(g_path[fd]);
      g_path[fd] = strdup(to);
    }
  if (g_arm_on && fnmatch(g_arm_on, base_name(to), 0) == 0) ++g_renames;
  pthread_mutex_unlock(&g_mutex);
}

int rename(const char* from, const char* to) {
  REAL(rename);
  int r = real_rename(from, to);
  if (r == 0) renamed(from, to);
  return r;
}

int renameat(int fromfd, const char* from, int tofd, const char* to) {
  REAL(renameat);
  int r = real_renameat(fromfd, from, tofd, to);
  if (r == 0) renamed(from, to);
  return r;
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(write);
  if (hit(fd)) return -1;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite);
  if (hit(fd)) return -1;
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  REAL(pwrite64);
  if (hit(fd)) return -1;
  return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  REAL(writev);
  if (hit(fd)) return -1;
  return real_writev(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec* iov, int n, off_t off) {
  REAL(pwritev);
  if (hit(fd)) return -1;
  return real_pwritev(fd, iov, n, off);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  REAL(fallocate);
  if (hit(fd)) return -1;
  return real_fallocate(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len) {
  REAL(posix_fallocate);
  if (hit(fd)) return g_errno;
  return real_posix_fallocate(fd, off, len);
}

int ftruncate(int fd, off_t len) {
  REAL(ftruncate);
  struct stat st;
  if (fstat(fd, &st) == 0 && len > st.st_size && hit(fd)) return -1;
  return real_ftruncate(fd, len);
}
