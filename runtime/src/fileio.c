// Opening inputs, following links, whole text files and file identity (see fileio.h and
// damrt_file.h).
#define _XOPEN_SOURCE 700  // realpath
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damrt_file.h"
#include "util.h"

const char *damrt_path_label(const char *path, char buf[DAMRT_LABEL_SIZE]) {
  snprintf(buf, DAMRT_LABEL_SIZE, "'%s'", path);
  return buf;
}

FILE *damrt_file_open_read(const char *path, const char *label, bool *is_regular,
                           size_t *size, DamrtError *err) {
  *is_regular = false;
  *size = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    // Linux opens a directory for reading; other systems may say EISDIR here.
    if (errno == EISDIR) damrt_error_set(err, DAMRT_E_IO, "%s: is a directory", label);
    else damrt_error_errno(err, errno, "%s: cannot open", label);
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    damrt_error_errno(err, errno, "%s: cannot open", label);
    fclose(f);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    damrt_error_set(err, DAMRT_E_IO, "%s: is a directory", label);
    fclose(f);
    return NULL;
  }
  *is_regular = S_ISREG(st.st_mode);
  *size = *is_regular ? (size_t)st.st_size : 0;
  return f;
}

// A part of a read shared among threads: [start, start + n) of the file's bytes from
// `offset`, into `buf` + start.
typedef struct {
  int fd;
  uint64_t offset;
  char *buf;
  size_t start, n;
  size_t got;  // bytes read before the end of the file
  int error;   // errno of a failed pread, or 0
} ReadPart;

// Reads one part by chunks, so that a thread's pages are faulted in as it goes.
static void *read_part(void *arg) {
  ReadPart *p = arg;
  enum { CHUNK = 1 << 20 };
  while (p->got < p->n) {
    size_t want = p->n - p->got < CHUNK ? p->n - p->got : CHUNK;
    ssize_t r = pread(p->fd, p->buf + p->start + p->got, want,
                      (off_t)(p->offset + p->start + p->got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) p->error = errno;
    if (r <= 0) break;
    p->got += (size_t)r;
  }
  return NULL;
}

// Reads below this size, or parts smaller than half of it, are not worth a thread.
enum { PARALLEL_READ_MIN = 16 << 20, READ_THREADS_MAX = 8 };

DamrtStatus damrt_file_read_at(FILE *f, uint64_t offset, void *buf, size_t n, size_t *got,
                               const char *label, DamrtError *err) {
  int threads = damrt_thread_limit();
  if (threads > READ_THREADS_MAX) threads = READ_THREADS_MAX;
  if ((size_t)threads > n / (PARALLEL_READ_MIN / 2)) threads = (int)(n / (PARALLEL_READ_MIN / 2));
  if (n < PARALLEL_READ_MIN || threads < 1) threads = 1;
  ReadPart parts[READ_THREADS_MAX];
  pthread_t tid[READ_THREADS_MAX];
  bool started[READ_THREADS_MAX] = {false};
  size_t each = n / (size_t)threads / 4096 * 4096;  // page-aligned parts (the last takes the rest)
  for (int i = 0; i < threads; i++)
    parts[i] = (ReadPart){fileno(f), offset, buf, each * (size_t)i,
                          i == threads - 1 ? n - each * (size_t)i : each, 0, 0};
  // Part 0 is read by this thread; a thread that cannot start leaves its part to it too.
  for (int i = 1; i < threads; i++)
    started[i] = pthread_create(&tid[i], NULL, read_part, &parts[i]) == 0;
  read_part(&parts[0]);
  for (int i = 1; i < threads; i++) {
    if (started[i]) pthread_join(tid[i], NULL);
    else read_part(&parts[i]);
  }
  // The bytes read are those up to the first part that came short.
  *got = 0;
  for (int i = 0; i < threads; i++) {
    if (parts[i].error) return damrt_error_errno(err, parts[i].error, "%s: read error", label);
    *got += parts[i].got;
    if (parts[i].got < parts[i].n) break;
  }
  return DAMRT_OK;
}

// How many links are followed before giving up, as Linux's own limit.
enum { LINK_HOPS = 40 };

// The target `contents` of the link at `link`, as a path usable from the working directory.
static char *link_target(const char *link, const char *contents) {
  const char *slash = strrchr(link, '/');
  if (contents[0] == '/' || !slash) return strdup(contents);
  size_t dir_len = (size_t)(slash - link) + 1;
  char *joined = malloc(dir_len + strlen(contents) + 1);
  if (!joined) return NULL;
  memcpy(joined, link, dir_len);
  strcpy(joined + dir_len, contents);
  return joined;
}

DamrtStatus damrt_path_follow(const char *path, const char *label, char **target,
                              struct stat *st, bool *exists, DamrtError *err) {
  char *cur = strdup(path);
  *target = NULL;
  *exists = false;
  if (!cur) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  for (int hop = 0;; hop++) {
    if (lstat(cur, st) != 0) break;
    if (!S_ISLNK(st->st_mode)) {
      *exists = true;
      break;
    }
    if (hop == LINK_HOPS) {
      free(cur);
      return damrt_error_errno(err, ELOOP, "%s: cannot follow the symbolic link", label);
    }
    // st_size is the length of the link's contents, except in /proc where it is 0.
    size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : PATH_MAX;
    char *contents = malloc(cap);
    ssize_t n = contents ? readlink(cur, contents, cap) : -1;
    if (n < 0 || (size_t)n >= cap) {
      int saved = contents ? (n < 0 ? errno : ENAMETOOLONG) : ENOMEM;
      free(contents);
      free(cur);
      return damrt_error_errno(err, saved, "%s: cannot read the symbolic link", label);
    }
    contents[n] = '\0';
    char *next = link_target(cur, contents);
    free(contents);
    free(cur);
    if (!next) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
    cur = next;
  }
  *target = cur;
  return DAMRT_OK;
}

DamrtStatus damrt_read_text_file(const char *path, size_t max_bytes, char **text,
                                 size_t *size, DamrtError *err) {
  char label[DAMRT_LABEL_SIZE];
  damrt_path_label(path, label);
  *text = NULL;
  *size = 0;
  bool is_regular;
  size_t file_size;
  FILE *f = damrt_file_open_read(path, label, &is_regular, &file_size, err);
  if (!f) return DAMRT_E_IO;
  DamrtStatus status = DAMRT_OK;
  if (is_regular && file_size > max_bytes) {
    fclose(f);
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED, "%s is larger than the limit of %zu bytes",
                           label, max_bytes);
  }
  // A regular file's size is only a hint (it may grow while being read): the loop reads at
  // most one byte more than the limit, whatever the file turns out to hold.
  size_t limit = max_bytes < SIZE_MAX / 2 ? max_bytes : SIZE_MAX / 2;
  size_t cap = is_regular ? file_size + 1 : 4096, used = 0;
  if (cap > limit + 1) cap = limit + 1;
  char *buf = malloc(cap + 1);
  while (buf) {
    if (used == cap) {
      if (cap == limit + 1) break;
      size_t grown = cap > limit / 2 ? limit + 1 : cap * 2;
      char *bigger = realloc(buf, grown + 1);
      if (!bigger) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = bigger;
      cap = grown;
    }
    size_t n = fread(buf + used, 1, cap - used, f);
    used += n;
    if (n == 0) {
      if (ferror(f)) status = damrt_error_errno(err, errno, "%s: cannot read", label);
      break;
    }
  }
  if (!buf)
    status = damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  else if (status == DAMRT_OK && used > limit)
    status = damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                             "%s is larger than the limit of %zu bytes", label, max_bytes);
  fclose(f);
  if (status != DAMRT_OK) {
    free(buf);
    return status;
  }
  buf[used] = '\0';
  *text = buf;
  *size = used;
  return DAMRT_OK;
}

// `path` made absolute and free of symbolic links, "." and "..", as far as it exists: the
// longest existing directory is resolved by realpath and the rest appended. NULL when out
// of memory.
static char *canonical_path(const char *path) {
  char *followed;
  struct stat st;
  bool exists;
  if (damrt_path_follow(path, "", &followed, &st, &exists, NULL) != DAMRT_OK) return NULL;
  char *resolved = realpath(followed, NULL);
  if (resolved) {
    free(followed);
    return resolved;
  }
  // The file does not exist: resolve its directory and keep its name.
  char *slash = strrchr(followed, '/');
  const char *dir = slash ? (slash == followed ? "/" : followed) : ".";
  const char *name = slash ? slash + 1 : followed;
  if (slash && slash != followed) *slash = '\0';
  char *dir_resolved = realpath(dir, NULL);
  char *out = NULL;
  if (dir_resolved) {
    size_t len = strlen(dir_resolved) + strlen(name) + 2;
    out = malloc(len);
    if (out) snprintf(out, len, "%s/%s", strcmp(dir_resolved, "/") ? dir_resolved : "", name);
    free(dir_resolved);
  } else {
    // Not even the directory exists: compare the paths as written.
    if (slash && slash != followed) *slash = '/';
    out = strdup(followed);
  }
  free(followed);
  return out;
}

bool damrt_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  bool has_a = stat(a, &sa) == 0;
  int errno_a = errno;
  bool has_b = stat(b, &sb) == 0;
  int errno_b = errno;
  if (has_a && has_b)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && !S_ISCHR(sa.st_mode);
  if ((has_a && errno_b == ENOENT) || (has_b && errno_a == ENOENT)) return false;
  char *ca = canonical_path(a), *cb = canonical_path(b);
  bool same = ca && cb && strcmp(ca, cb) == 0;
  free(ca);
  free(cb);
  return same;
}
