// Output files written whole or not at all (see damrt_output.h).
//
// An output is a file descriptor with a 64 KiB buffer of its own (not stdio's, so that the
// reason of every failed write is kept) and a sticky error: the first failure is stored in
// the output and every later call returns it. Regular targets get a temporary file that is
// listed in the pending table until it is renamed or removed.
#define _GNU_SOURCE  // fopencookie
#include "damrt_output.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "util.h"

enum {
  BUFFER_SIZE = 1 << 16,
  TEMP_ATTEMPTS = 100,     // temporary names tried (collisions: leftovers of a crashed
                           // process with the same pid, or concurrent writers of a target)
  PENDING_SLOTS = 32,      // outputs with a temporary file at one time that signals clean up
  PENDING_PATH_SIZE = 4096,
};

// ---------------------------------------------------------------------------------------
// The pending table: the runtime's only global state, written by the threads that open and
// finish outputs and read by signal handlers. A slot is FREE, CLAIMED (its path being
// written: a handler skips it) or READY (a handler may unlink its path).

enum { SLOT_FREE, SLOT_CLAIMED, SLOT_READY };

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the pending table needs lock-free atomic ints");

static struct {
  atomic_int state;
  char path[PENDING_PATH_SIZE];
} pending[PENDING_SLOTS];

// A free slot, now CLAIMED, or -1 when the table is full (the output then works as well,
// but a signal would leave its temporary file behind).
static int slot_claim(void) {
  for (int i = 0; i < PENDING_SLOTS; i++) {
    int expected = SLOT_FREE;
    if (atomic_compare_exchange_strong(&pending[i].state, &expected, SLOT_CLAIMED)) return i;
  }
  return -1;
}

static void slot_publish(int slot, const char *path) {
  if (slot < 0) return;
  atomic_store(&pending[slot].state, SLOT_CLAIMED);
  size_t len = strlen(path);
  if (len >= PENDING_PATH_SIZE) return;  // stays CLAIMED: never unlinked by a handler
  memcpy(pending[slot].path, path, len + 1);
  atomic_store(&pending[slot].state, SLOT_READY);
}

static void slot_release(int slot) {
  if (slot >= 0) atomic_store(&pending[slot].state, SLOT_FREE);
}

void damrt_output_remove_pending(void) {
  for (int i = 0; i < PENDING_SLOTS; i++)
    if (atomic_load(&pending[i].state) == SLOT_READY) unlink(pending[i].path);
}

static const int CLEANUP_SIGNALS[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE};

static void cleanup_handler(int sig) {
  int saved = errno;
  damrt_output_remove_pending();
  // The handler was installed with SA_RESETHAND: the signal's action is the default again,
  // and raising it kills the process once the handler returns (it is blocked until then).
  raise(sig);
  errno = saved;
}

DamrtStatus damrt_output_install_signal_handlers(DamrtError *err) {
  for (size_t i = 0; i < sizeof CLEANUP_SIGNALS / sizeof *CLEANUP_SIGNALS; i++) {
    struct sigaction old, act;
    if (sigaction(CLEANUP_SIGNALS[i], NULL, &old) != 0)
      return damrt_error_errno(err, errno, "cannot install a signal handler");
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) continue;
    memset(&act, 0, sizeof act);
    act.sa_handler = cleanup_handler;
    act.sa_flags = SA_RESETHAND;
    sigemptyset(&act.sa_mask);
    if (sigaction(CLEANUP_SIGNALS[i], &act, NULL) != 0)
      return damrt_error_errno(err, errno, "cannot install a signal handler");
  }
  struct sigaction old;
  if (sigaction(SIGXFSZ, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
      old.sa_handler == SIG_DFL)
    signal(SIGXFSZ, SIG_IGN);
  return DAMRT_OK;
}

// ---------------------------------------------------------------------------------------
// Outputs

struct DamrtOutput {
  char *path;     // as given
  char label[DAMRT_LABEL_SIZE];
  char *target;   // the file the temporary file is renamed onto (links followed)
  char *temp;     // the temporary file, NULL when written through
  int fd;
  bool owns_fd;   // false for standard output
  int slot;       // in the pending table, or -1
  uint8_t *buf;
  size_t used;    // bytes in buf
  uint64_t base;  // position of buf[0]
  FILE *stream;
  DamrtError error;  // the first failure; code DAMRT_OK while there is none
};

static DamrtStatus fail(DamrtOutput *out, int errnum, const char *what) {
  if (out->error.code == DAMRT_OK)
    damrt_error_errno(&out->error, errnum, "%s: %s", out->label, what);
  return out->error.code;
}

DamrtStatus damrt_output_status(const DamrtOutput *out, DamrtError *err) {
  if (out->error.code != DAMRT_OK && err) *err = out->error;
  return out->error.code;
}

const char *damrt_output_path(const DamrtOutput *out) { return out->path; }
const char *damrt_output_label(const DamrtOutput *out) { return out->label; }
bool damrt_output_is_direct(const DamrtOutput *out) { return !out->temp; }

static void output_free(DamrtOutput *out) {
  free(out->path);
  free(out->target);
  free(out->temp);
  free(out->buf);
  free(out);
}

static DamrtOutput *output_new(const char *path, DamrtError *err) {
  DamrtOutput *out = calloc(1, sizeof *out);
  if (out) {
    out->path = strdup(path);
    out->buf = malloc(BUFFER_SIZE);
    out->fd = -1;
    out->slot = -1;
  }
  if (!out || !out->path || !out->buf) {
    char label[DAMRT_LABEL_SIZE];
    damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", damrt_path_label(path, label));
    if (out) output_free(out);
    return NULL;
  }
  damrt_path_label(path, out->label);
  return out;
}

// Creates the temporary file next to `out->target`, with `mode` (or the default mode when
// `keep_mode` is false).
static DamrtStatus create_temp(DamrtOutput *out, bool keep_mode, mode_t mode, DamrtError *err) {
  size_t cap = strlen(out->target) + 48;
  out->temp = malloc(cap);
  if (!out->temp) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", out->label);
  out->slot = slot_claim();
  int saved = 0;
  for (int n = 0; n < TEMP_ATTEMPTS; n++) {
    snprintf(out->temp, cap, "%s.tmp.%ld.%d", out->target, (long)getpid(), n);
    // Published before it exists, so that no signal between its creation and its
    // publication can leave it behind; a handler unlinking a name we failed to create
    // only removes a leftover with our pid.
    slot_publish(out->slot, out->temp);
    out->fd = open(out->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out->fd >= 0) {
      // The replacement keeps the permissions of the file it replaces (a private file
      // stays private); failing to set them leaves the default mode, which is no reason
      // to fail the output.
      if (keep_mode) (void)fchmod(out->fd, mode & 0777);
      return DAMRT_OK;
    }
    saved = errno;
    if (saved != EEXIST) break;
  }
  slot_release(out->slot);
  out->slot = -1;
  free(out->temp);
  out->temp = NULL;
  return damrt_error_errno(err, saved, "%s: cannot create a temporary file in its directory",
                           out->label);
}

// Opens `path` itself for writing through. O_NOCTTY: a terminal never becomes ours.
static DamrtStatus open_direct(DamrtOutput *out, const char *path, int flags, DamrtError *err) {
  out->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | flags);
  out->owns_fd = true;
  if (out->fd < 0) return damrt_error_errno(err, errno, "%s: cannot open", out->label);
  return DAMRT_OK;
}

DamrtOutput *damrt_output_open(const char *path, DamrtError *err) {
  if (!path || !*path) {
    damrt_error_set(err, DAMRT_E_ARGUMENT, "the output path is empty");
    return NULL;
  }
  DamrtOutput *out = output_new(path, err);
  if (!out) return NULL;
  // What the path finally names decides, before following links by name: /dev/stdout is
  // a link to /proc/self/fd/1, whose contents ("pipe:[1234]") name no file.
  struct stat final, st;
  bool has_final = stat(path, &final) == 0, exists = false;
  bool is_regular = has_final && S_ISREG(final.st_mode);
  DamrtStatus status = DAMRT_OK;
  if (has_final && S_ISDIR(final.st_mode)) {
    status = damrt_error_set(err, DAMRT_E_IO, "%s: is a directory", out->label);
  } else if (has_final && !is_regular) {
    // A device, a FIFO, a socket: written through (or refused by open with its reason).
    status = open_direct(out, path, 0, err);
  } else {
    status = damrt_path_follow(path, out->label, &out->target, &st, &exists, err);
    if (status == DAMRT_OK && is_regular && (!exists || st.st_ino != final.st_ino ||
                                             st.st_dev != final.st_dev)) {
      // A link that reaches a regular file which has no name of its own (a deleted file
      // still open, behind /proc/self/fd/N): there is nothing to rename onto, so it is
      // written through.
      status = open_direct(out, path, O_TRUNC, err);
    } else if (status == DAMRT_OK) {
      status = create_temp(out, exists, exists ? st.st_mode : 0, err);
      out->owns_fd = true;
    }
  }
  if (status != DAMRT_OK) {
    output_free(out);
    return NULL;
  }
  return out;
}

DamrtOutput *damrt_output_open_stdout(DamrtError *err) {
  DamrtOutput *out = output_new("-", err);
  if (!out) return NULL;
  snprintf(out->label, sizeof out->label, "standard output");
  out->fd = STDOUT_FILENO;
  out->owns_fd = false;
  // What the program already printed through stdio comes first.
  fflush(stdout);
  return out;
}

// Writes all `n` bytes to the descriptor.
static DamrtStatus write_all(DamrtOutput *out, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(out->fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    // write returns 0 only for n == 0, but a device may report "no progress" that way.
    if (w <= 0) return fail(out, w < 0 ? errno : EIO, "cannot write");
    p += w;
    n -= (size_t)w;
    out->base += (uint64_t)w;
  }
  return DAMRT_OK;
}

static DamrtStatus flush(DamrtOutput *out) {
  if (out->error.code != DAMRT_OK) return out->error.code;
  DamrtStatus status = write_all(out, out->buf, out->used);
  out->used = 0;
  return status;
}

DamrtStatus damrt_output_write(DamrtOutput *out, const void *data, size_t n, DamrtError *err) {
  DamrtStatus status = out->error.code;
  if (status == DAMRT_OK) {
    if (out->used + n > BUFFER_SIZE) status = flush(out);
    if (status == DAMRT_OK && n >= BUFFER_SIZE) {
      status = write_all(out, data, n);
    } else if (status == DAMRT_OK && n > 0) {
      memcpy(out->buf + out->used, data, n);
      out->used += n;
    }
  }
  return damrt_output_status(out, err);
}

DamrtStatus damrt_output_printf(DamrtOutput *out, const char *fmt, ...) {
  if (out->error.code != DAMRT_OK) return out->error.code;
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (len < 0) return fail(out, errno, "cannot format text");
  if ((size_t)len < sizeof small) return damrt_output_write(out, small, (size_t)len, NULL);
  char *big = malloc((size_t)len + 1);
  if (!big) return fail(out, ENOMEM, "cannot format text");
  va_start(ap, fmt);
  vsnprintf(big, (size_t)len + 1, fmt, ap);
  va_end(ap);
  DamrtStatus status = damrt_output_write(out, big, (size_t)len, NULL);
  free(big);
  return status;
}

static ssize_t cookie_write(void *cookie, const char *buf, size_t size) {
  DamrtOutput *out = cookie;
  if (damrt_output_write(out, buf, size, NULL) != DAMRT_OK) {
    errno = EIO;
    return 0;  // fopencookie's convention for an error
  }
  return (ssize_t)size;
}

FILE *damrt_output_stream(DamrtOutput *out) {
  if (out->stream) return out->stream;
  cookie_io_functions_t io = {NULL, cookie_write, NULL, NULL};
  out->stream = fopencookie(out, "w", io);
  if (!out->stream) {
    fail(out, errno ? errno : ENOMEM, "cannot create a stream");
    return NULL;
  }
  // Unbuffered: the output buffers, and writes through the stream and through
  // damrt_output_write stay in order.
  setvbuf(out->stream, NULL, _IONBF, 0);
  return out->stream;
}

static void close_stream(DamrtOutput *out) {
  if (!out->stream) return;
  if (fflush(out->stream) != 0 || ferror(out->stream)) fail(out, EIO, "cannot write");
  fclose(out->stream);
  out->stream = NULL;
}

bool damrt_output_can_seek(DamrtOutput *out) {
  return lseek(out->fd, 0, SEEK_CUR) >= 0;
}

uint64_t damrt_output_tell(const DamrtOutput *out) { return out->base + out->used; }

DamrtStatus damrt_output_seek(DamrtOutput *out, uint64_t offset, DamrtError *err) {
  DamrtStatus status = flush(out);
  if (status == DAMRT_OK) {
    if (offset > INT64_MAX || lseek(out->fd, (off_t)offset, SEEK_SET) < 0)
      status = fail(out, offset > INT64_MAX ? EINVAL : errno, "cannot seek");
    else
      out->base = offset;  // devices such as /dev/null report 0 whatever the offset
  }
  return damrt_output_status(out, err);
}

// Flushes and closes everything; when all went well and `final` is not NULL, renames the
// temporary file to `final`. Removes the temporary file otherwise. Frees `out`.
static DamrtStatus finish(DamrtOutput *out, const char *final, DamrtError *err) {
  close_stream(out);
  flush(out);
  // Without the sync, a crash soon after the rename could leave the new name pointing at
  // data that never reached the disk. Devices and FIFOs have nothing to sync.
  if (out->temp && out->error.code == DAMRT_OK && fsync(out->fd) != 0)
    fail(out, errno, "cannot write");
  if (out->owns_fd && out->fd >= 0 && close(out->fd) != 0) fail(out, errno, "cannot write");
  out->fd = -1;
  if (out->temp && out->error.code == DAMRT_OK && final && rename(out->temp, final) != 0) {
    char label[DAMRT_LABEL_SIZE];
    damrt_error_errno(&out->error, errno, "%s: cannot replace the file",
                      damrt_path_label(final, label));
  }
  if (out->temp && (out->error.code != DAMRT_OK || !final)) unlink(out->temp);
  slot_release(out->slot);
  DamrtStatus status = damrt_output_status(out, err);
  output_free(out);
  return status;
}

DamrtStatus damrt_output_commit(DamrtOutput *out, DamrtError *err) {
  return finish(out, out->target, err);
}

DamrtStatus damrt_output_commit_partial(DamrtOutput *out, char **partial_path,
                                        DamrtError *err) {
  if (partial_path) *partial_path = NULL;
  const char *source = out->temp ? out->target : out->path;
  size_t len = strlen(source) + sizeof ".partial";
  char *name = malloc(len);
  if (!name) {
    fail(out, ENOMEM, "cannot keep the partial output");
    return finish(out, NULL, err);
  }
  snprintf(name, len, out->temp ? "%s.partial" : "%s", source);
  DamrtStatus status = finish(out, name, err);
  if (status == DAMRT_OK && partial_path) *partial_path = name;
  else free(name);
  return status;
}

void damrt_output_abort(DamrtOutput *out) {
  if (!out) return;
  // Nothing written now matters: drop the buffer instead of writing it.
  out->used = 0;
  if (out->error.code == DAMRT_OK) out->error.code = DAMRT_E_IO;
  finish(out, NULL, NULL);
}
