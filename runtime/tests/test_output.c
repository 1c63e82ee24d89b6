// Unit tests of damrt_output.h: whole-or-absent outputs. Write errors from a file size limit
// (in a child process, with SIGXFSZ ignored) and from /dev/full, with their messages and
// nothing left behind; devices written through and never replaced; symbolic links kept;
// directories refused; the permissions of a replaced file kept; partial commits; standard
// output; and the removal of pending temporary files by a signal.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "damrt.h"
#include "test_files.h"
#include "zip_builder.h"

static ScratchDir dir;

static const char *path_of(const char *name, char *buf) {
  return scratch_file(&dir, name, buf, 512);
}

static bool file_equals(const char *path, const char *text) {
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  bool same = bytes && size == strlen(text) && memcmp(bytes, text, size) == 0;
  free(bytes);
  return same;
}

static bool exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static void test_commit_and_abort(void) {
  DamrtError err;
  char path[512];
  path_of("out.txt", path);
  DamrtOutput *out = damrt_output_open(path, &err);
  CHECK(out != NULL && !damrt_output_is_direct(out));
  CHECK_STREQ(damrt_output_path(out), path);
  CHECK_EQ(damrt_output_write(out, "abc", 3, &err), DAMRT_OK);
  CHECK_EQ(damrt_output_printf(out, "%d-%s\n", 42, "x"), DAMRT_OK);
  fprintf(damrt_output_stream(out), "%s", "via stdio;");
  CHECK_EQ(damrt_output_write(out, "end", 3, &err), DAMRT_OK);
  CHECK(!exists(path));           // nothing at the target before the commit
  CHECK_EQ(scratch_count_temp(&dir), 1);
  CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  CHECK(file_equals(path, "abc42-x\nvia stdio;end"));
  CHECK_EQ(scratch_count_temp(&dir), 0);

  // Abort: the old content stays, the temporary file goes.
  out = damrt_output_open(path, &err);
  damrt_output_printf(out, "new");
  damrt_output_abort(out);
  CHECK(file_equals(path, "abc42-x\nvia stdio;end"));
  CHECK_EQ(scratch_count_temp(&dir), 0);

  // Large writes (past the buffer) and text longer than printf's first attempt.
  size_t big = 300000;
  char *data = malloc(big);
  for (size_t i = 0; i < big; i++) data[i] = (char)('a' + i % 26);
  out = damrt_output_open(path, &err);
  damrt_output_write(out, data, 10, &err);
  damrt_output_write(out, data, big, &err);
  damrt_output_printf(out, "%.*s", 2000, data);
  CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  size_t size;
  unsigned char *back = file_read_all(path, &size);
  CHECK(back && size == 10 + big + 2000 && memcmp(back, data, 10) == 0 &&
        memcmp(back + 10, data, big) == 0 && memcmp(back + 10 + big, data, 2000) == 0);
  free(back);
  free(data);

  // A replaced file keeps its permissions.
  chmod(path, 0600);
  out = damrt_output_open(path, &err);
  damrt_output_printf(out, "private");
  CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  CHECK(file_equals(path, "private"));
  remove(path);
}

static void test_refused_targets(void) {
  DamrtError err;
  char path[512], expected[1200];
  CHECK(damrt_output_open(dir.path, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': is a directory", dir.path);
  CHECK_STREQ(err.message, expected);

  path_of("missing/out.npz", path);
  CHECK(damrt_output_open(path, &err) == NULL);
  snprintf(expected, sizeof expected,
           "'%s': cannot create a temporary file in its directory: No such file or directory",
           path);
  CHECK_STREQ(err.message, expected);

  CHECK(damrt_output_open("", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_ARGUMENT);

  // A symbolic link to itself.
  path_of("loop", path);
  symlink("loop", path);
  CHECK(damrt_output_open(path, &err) == NULL);
  snprintf(expected, sizeof expected,
           "'%s': cannot follow the symbolic link: Too many levels of symbolic links", path);
  CHECK_STREQ(err.message, expected);
  remove(path);
  CHECK_EQ(scratch_count_temp(&dir), 0);
}

// ---------------------------------------------------------------------------------------
// Write errors from a file size limit, in a child process.

typedef enum { WRITE_OUTPUT, WRITE_NPY, WRITE_NPZ_STORED, WRITE_NPZ_DEFLATED } Writer;

typedef struct {
  Writer writer;
  const char *path;
} LimitCase;

// Writes 800 KB of incompressible data with a 64 KiB file size limit; exits 3 when the
// writer reports DAMRT_E_IO, 4 when it succeeds, 5 for another status.
static int write_over_limit(void *arg, char *message, size_t cap) {
  const LimitCase *c = arg;
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit;
  getrlimit(RLIMIT_FSIZE, &limit);
  limit.rlim_cur = 65536;
  setrlimit(RLIMIT_FSIZE, &limit);
  size_t shape[1] = {100000};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, NULL);
  uint64_t x = 88172645463325252u;
  for (size_t i = 0; i < t->count; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ((double *)t->data)[i] = (double)(x >> 11);
  }
  DamrtError err = {DAMRT_OK, ""};
  DamrtStatus status = DAMRT_OK;
  DamrtNamedTensor items[1] = {{"t", t, DAMRT_STORE_TENSOR}};
  switch (c->writer) {
  case WRITE_OUTPUT: {
    DamrtOutput *out = damrt_output_open(c->path, &err);
    if (!out) break;
    for (int i = 0; i < 100; i++) damrt_output_write(out, t->data, 8000, NULL);
    status = damrt_output_commit(out, &err);
    break;
  }
  case WRITE_NPY: status = damrt_npy_write(c->path, t, &err); break;
  case WRITE_NPZ_STORED:
    status = damrt_npz_write(c->path, items, 1, DAMRT_NPZ_STORED, &err);
    break;
  case WRITE_NPZ_DEFLATED:
    status = damrt_npz_write(c->path, items, 1, DAMRT_NPZ_DEFLATED, &err);
    break;
  }
  damrt_tensor_free(t);
  snprintf(message, cap, "%s", err.message);
  return status == DAMRT_E_IO ? 3 : status == DAMRT_OK ? 4 : 5;
}

static void test_file_size_limit(void) {
  const char *names[4] = {"limit.txt", "limit.npy", "limit_stored.npz", "limit_deflated.npz"};
  for (int w = 0; w < 4; w++) {
    for (int has_old = 0; has_old < 2; has_old++) {
      char path[512], message[1024], expected[1200];
      path_of(names[w], path);
      remove(path);
      if (has_old) file_write_all(path, "old", 3);
      LimitCase c = {(Writer)w, path};
      int status = run_in_child(write_over_limit, &c, message, sizeof message);
      CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
      snprintf(expected, sizeof expected, "'%s': cannot write: File too large", path);
      CHECK_STREQ(message, expected);
      // No truncated target, no temporary file: the old file as it was, or nothing.
      if (has_old) CHECK(file_equals(path, "old"));
      else CHECK(!exists(path));
      CHECK_EQ(scratch_count_temp(&dir), 0);
      remove(path);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Devices, FIFOs, pipes and standard output: written through, never replaced.

static bool is_char_device(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 && S_ISCHR(st.st_mode);
}

static void test_devices(void) {
  DamrtError err;
  size_t shape[2] = {3, 4};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 2, shape, NULL);
  DamrtNamedTensor items[1] = {{"w", t, DAMRT_STORE_TENSOR}};

  // /dev/full: every write fails with ENOSPC, and each writer says so.
  DamrtOutput *out = damrt_output_open("/dev/full", &err);
  CHECK(out && damrt_output_is_direct(out));
  if (out) {
    CHECK_EQ(damrt_output_printf(out, "buffered, so no error yet"), DAMRT_OK);
    CHECK_EQ(damrt_output_commit(out, &err), DAMRT_E_IO);
    CHECK_STREQ(err.message, "'/dev/full': cannot write: No space left on device");
  }
  err.message[0] = '\0';
  CHECK_EQ(damrt_npy_write("/dev/full", t, &err), DAMRT_E_IO);
  CHECK_STREQ(err.message, "'/dev/full': cannot write: No space left on device");
  err.message[0] = '\0';
  CHECK_EQ(damrt_npz_write("/dev/full", items, 1, DAMRT_NPZ_DEFLATED, &err), DAMRT_E_IO);
  CHECK_STREQ(err.message, "'/dev/full': cannot write: No space left on device");
  CHECK(is_char_device("/dev/full"));

  // /dev/null: written through, and still a device afterwards. (The writes only happen
  // when the output really is direct, so a broken runtime cannot replace /dev/null.)
  out = damrt_output_open("/dev/null", &err);
  CHECK(out && damrt_output_is_direct(out));
  if (out && damrt_output_is_direct(out)) {
    damrt_output_printf(out, "discarded");
    CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
    char *partial = NULL;
    out = damrt_output_open("/dev/null", &err);
    CHECK_EQ(damrt_output_commit_partial(out, &partial, &err), DAMRT_OK);
    CHECK_STREQ(partial, "/dev/null");
    free(partial);
    CHECK_EQ(damrt_npz_write("/dev/null", items, 1, DAMRT_NPZ_STORED, &err), DAMRT_OK);
    CHECK_EQ(damrt_npy_write("/dev/null", t, &err), DAMRT_OK);
  } else {
    damrt_output_abort(out);
  }
  CHECK(is_char_device("/dev/null"));

  // A pipe (through /dev/fd/N, a link to "pipe:[...]"): text goes through, a .npz archive
  // is refused before anything is written, as it needs seeking.
  int fds[2];
  CHECK(pipe(fds) == 0);
  char path[64], expected[256];
  snprintf(path, sizeof path, "/dev/fd/%d", fds[1]);
  out = damrt_output_open(path, &err);
  CHECK(out && damrt_output_is_direct(out));
  if (out) {
    damrt_output_printf(out, "through the pipe");
    CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  }
  char got[64] = "";
  ssize_t n = read(fds[0], got, sizeof got - 1);
  CHECK(n == 16 && memcmp(got, "through the pipe", 16) == 0);
  CHECK_EQ(damrt_npz_write(path, items, 1, DAMRT_NPZ_STORED, &err), DAMRT_E_UNSUPPORTED);
  snprintf(expected, sizeof expected,
           "'%s': a .npz archive cannot be written to a pipe or a terminal (writing it needs "
           "seeking)",
           path);
  CHECK_STREQ(err.message, expected);
  close(fds[0]);
  close(fds[1]);

  // A FIFO in the scratch directory stays a FIFO (a reader is opened first, so that
  // opening it for writing does not block).
  char fifo[512];
  path_of("fifo", fifo);
  CHECK(mkfifo(fifo, 0600) == 0);
  int reader = open(fifo, O_RDONLY | O_NONBLOCK);
  out = damrt_output_open(fifo, &err);
  CHECK(out && damrt_output_is_direct(out));
  if (out) {
    damrt_output_printf(out, "fifo");
    CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  }
  n = read(reader, got, sizeof got - 1);
  CHECK(n == 4 && memcmp(got, "fifo", 4) == 0);
  close(reader);
  struct stat st;
  CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
  remove(fifo);
  CHECK_EQ(scratch_count_temp(&dir), 0);
  damrt_tensor_free(t);
}

// Standard output redirected to /dev/full, then to a pipe.
static int write_stdout(void *arg, char *message, size_t cap) {
  const char *target = arg;
  int fd = open(target, O_WRONLY);
  dup2(fd, STDOUT_FILENO);
  close(fd);
  DamrtError err = {DAMRT_OK, ""};
  DamrtOutput *out = damrt_output_open_stdout(&err);
  damrt_output_printf(out, "result\n");
  DamrtStatus status = damrt_output_commit(out, &err);
  snprintf(message, cap, "%s", err.message);
  return status == DAMRT_OK ? 0 : 3;
}

static void test_stdout(void) {
  char message[512];
  int status = run_in_child(write_stdout, "/dev/full", message, sizeof message);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  CHECK_STREQ(message, "standard output: cannot write: No space left on device");
  char path[512];
  path_of("stdout.txt", path);
  file_write_all(path, "", 0);
  status = run_in_child(write_stdout, path, message, sizeof message);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(file_equals(path, "result\n"));
  remove(path);
}

// ---------------------------------------------------------------------------------------
// Symbolic links stay links; the file they name gets the content.

static void test_symlinks(void) {
  DamrtError err;
  char target[512], link[512], link2[512], dangling[512], created[512];
  path_of("target.npy", target);
  path_of("link.npy", link);
  path_of("link2.npy", link2);
  file_write_all(target, "old", 3);
  CHECK(symlink("target.npy", link) == 0);   // relative to the link's directory
  CHECK(symlink(link, link2) == 0);          // absolute, to the first link
  size_t shape[1] = {2};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, NULL);
  ((double *)t->data)[1] = 5;
  for (int via = 0; via < 2; via++) {
    CHECK_EQ(damrt_npy_write(via ? link2 : link, t, &err), DAMRT_OK);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(lstat(link2, &st) == 0 && S_ISLNK(st.st_mode));
    char contents[512] = "";
    CHECK(readlink(link, contents, sizeof contents - 1) == 10 &&
          strcmp(contents, "target.npy") == 0);
    DamrtTensor *back = damrt_npy_read(target, DAMRT_F64, &err);
    CHECK(back && back->count == 2 && ((double *)back->data)[1] == 5 + via);
    damrt_tensor_free(back);
    ((double *)t->data)[1] = 6;
  }
  // A dangling link: the file it names is created, the link stays.
  path_of("dangling.txt", dangling);
  path_of("created.txt", created);
  CHECK(symlink("created.txt", dangling) == 0);
  DamrtOutput *out = damrt_output_open(dangling, &err);
  damrt_output_printf(out, "made");
  CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  struct stat st;
  CHECK(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode));
  CHECK(file_equals(created, "made"));
  // A link to a device writes through to the device.
  char devlink[512];
  path_of("null_link", devlink);
  CHECK(symlink("/dev/null", devlink) == 0);
  out = damrt_output_open(devlink, &err);
  CHECK(out && damrt_output_is_direct(out));
  if (out && damrt_output_is_direct(out)) CHECK_EQ(damrt_output_commit(out, &err), DAMRT_OK);
  else damrt_output_abort(out);
  CHECK(lstat(devlink, &st) == 0 && S_ISLNK(st.st_mode));
  CHECK(is_char_device("/dev/null"));
  CHECK_EQ(scratch_count_temp(&dir), 0);
  remove(devlink);
  remove(link2);
  remove(link);
  remove(target);
  remove(dangling);
  remove(created);
  damrt_tensor_free(t);
}

// ---------------------------------------------------------------------------------------
// Partial commits

static void test_partial(void) {
  DamrtError err;
  char path[512], partial_path[600];
  path_of("TRACE.csv", path);
  snprintf(partial_path, sizeof partial_path, "%s.partial", path);
  for (int has_old = 0; has_old < 2; has_old++) {
    if (has_old) file_write_all(path, "old", 3);
    DamrtOutput *out = damrt_output_open(path, &err);
    fprintf(damrt_output_stream(out), "step,E\n0,1.5\n");
    char *name = NULL;
    CHECK_EQ(damrt_output_commit_partial(out, &name, &err), DAMRT_OK);
    CHECK_STREQ(name, partial_path);
    free(name);
    CHECK(file_equals(partial_path, "step,E\n0,1.5\n"));
    if (has_old) CHECK(file_equals(path, "old"));
    else CHECK(!exists(path));
    CHECK_EQ(scratch_count_temp(&dir), 0);
  }
  remove(path);
  remove(partial_path);
}

// ---------------------------------------------------------------------------------------
// Signals

// Opens two outputs, writes, installs the handlers and gets SIGINT: the process must die
// of SIGINT with no temporary file left.
static int interrupted(void *arg, char *message, size_t cap) {
  (void)message, (void)cap;
  const char *paths = arg;
  DamrtError err;
  DamrtOutput *a = damrt_output_open(paths, &err);
  DamrtOutput *b = damrt_output_open(paths + 512, &err);
  if (!a || !b) return 10;
  damrt_output_printf(a, "half");
  damrt_output_printf(b, "written");
  damrt_output_commit(b, &err);  // committed: not pending any more
  b = damrt_output_open(paths + 512, &err);
  if (damrt_output_install_signal_handlers(&err) != DAMRT_OK) return 11;
  raise(SIGINT);
  return 12;  // not reached
}

static int xfsz_ignored(void *arg, char *message, size_t cap) {
  (void)arg, (void)message, (void)cap;
  signal(SIGXFSZ, SIG_DFL);
  damrt_output_install_signal_handlers(NULL);
  struct sigaction act;
  sigaction(SIGXFSZ, NULL, &act);
  return act.sa_handler == SIG_IGN ? 0 : 1;
}

static void test_signals(void) {
  char paths[1024];
  path_of("interrupted.npz", paths);
  path_of("committed.txt", paths + 512);
  int status = run_in_child(interrupted, paths, (char[8]){0}, 8);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
  CHECK_EQ(scratch_count_temp(&dir), 0);
  CHECK(!exists(paths));
  CHECK(file_equals(paths + 512, "written"));
  remove(paths + 512);

  // The same without a signal: damrt_output_remove_pending removes what is pending.
  DamrtError err;
  DamrtOutput *out = damrt_output_open(paths, &err);
  CHECK_EQ(scratch_count_temp(&dir), 1);
  damrt_output_remove_pending();
  CHECK_EQ(scratch_count_temp(&dir), 0);
  CHECK_EQ(damrt_output_commit(out, &err), DAMRT_E_IO);  // its file is gone
  CHECK(!exists(paths));

  status = run_in_child(xfsz_ignored, NULL, (char[8]){0}, 8);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
  scratch_new(&dir);
  test_commit_and_abort();
  test_refused_targets();
  test_file_size_limit();
  test_devices();
  test_stdout();
  test_symlinks();
  test_partial();
  test_signals();
  scratch_free(&dir);
  return check_report("runtime/output");
}
