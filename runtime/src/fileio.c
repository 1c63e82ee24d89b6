// Opening inputs and replacing outputs atomically (see fileio.h).
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

FILE *damrt_file_open_read(const char *path, bool *has_size, size_t *size, DamrtError *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    damrt_error_errno(err, errno, "%s: cannot open", path);
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0) {
    damrt_error_errno(err, errno, "%s: cannot open", path);
    fclose(f);
    return NULL;
  }
  if (S_ISDIR(st.st_mode)) {
    damrt_error_set(err, DAMRT_E_IO, "%s: cannot read: it is a directory", path);
    fclose(f);
    return NULL;
  }
  *has_size = S_ISREG(st.st_mode);
  *size = *has_size ? (size_t)st.st_size : 0;
  return f;
}

// Candidate temporary names tried before giving up; collisions only come from leftovers of
// crashed writers with the same pid, or from concurrent writers of the same target.
enum { TEMP_ATTEMPTS = 100 };

DamrtStatus damrt_atomic_begin(DamrtAtomicFile *f, const char *target, DamrtError *err) {
  size_t cap = strlen(target) + 48;
  f->target = target;
  f->temp = malloc(cap);
  if (!f->temp)
    return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", target);
  int saved = 0;
  for (int n = 0; n < TEMP_ATTEMPTS; n++) {
    snprintf(f->temp, cap, "%s.tmp.%ld.%d", target, (long)getpid(), n);
    int fd = open(f->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      close(fd);
      return DAMRT_OK;
    }
    saved = errno;
    if (saved != EEXIST) break;
  }
  DamrtStatus status = damrt_error_errno(
      err, saved, "%s: cannot create the temporary file '%s'", target, f->temp);
  free(f->temp);
  f->temp = NULL;
  return status;
}

DamrtStatus damrt_atomic_commit(DamrtAtomicFile *f, DamrtError *err) {
  // Without the sync, a crash soon after the rename could leave the new name pointing at
  // data that never reached the disk.
  int fd = open(f->temp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int saved = errno;
    if (fd >= 0) close(fd);
    damrt_atomic_abort(f);
    return damrt_error_errno(err, saved, "%s: cannot sync the temporary file", f->target);
  }
  close(fd);
  if (rename(f->temp, f->target) != 0) {
    int saved = errno;
    damrt_atomic_abort(f);
    return damrt_error_errno(err, saved, "%s: cannot replace the file", f->target);
  }
  free(f->temp);
  f->temp = NULL;
  return DAMRT_OK;
}

void damrt_atomic_abort(DamrtAtomicFile *f) {
  remove(f->temp);
  free(f->temp);
  f->temp = NULL;
}
