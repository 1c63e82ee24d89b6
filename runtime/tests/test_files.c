// Unit tests of damrt_file.h and of how every reader refuses what it cannot read: whole text
// files with a size limit (/dev/zero stops at the limit), the same messages for a directory
// or a missing file from the .npy, .npz and text readers, a .npz refused from a pipe, and
// whether two paths name the same file (hard links, symbolic links, relative and absolute
// spellings, files that do not exist yet, devices).
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "../src/fileio.h"
#include "check.h"
#include "damrt.h"
#include "damrt_kernel.h"
#include "test_files.h"

static ScratchDir dir;

static const char *path_of(const char *name, char *buf) {
  return scratch_file(&dir, name, buf, 512);
}

static void test_read_text(void) {
  DamrtError err;
  char path[512], expected[1200], *text;
  size_t size;
  path_of("model.dam", path);
  file_write_all(path, "net x\n", 6);
  CHECK_EQ(damrt_read_text_file(path, 6, &text, &size, &err), DAMRT_OK);
  CHECK(text && size == 6 && strcmp(text, "net x\n") == 0);
  free(text);
  // One byte over the limit: measured before reading.
  CHECK_EQ(damrt_read_text_file(path, 5, &text, &size, &err), DAMRT_E_UNSUPPORTED);
  CHECK(text == NULL);
  snprintf(expected, sizeof expected, "'%s' is larger than the limit of 5 bytes", path);
  CHECK_STREQ(err.message, expected);
  file_write_all(path, "", 0);
  CHECK_EQ(damrt_read_text_file(path, 100, &text, &size, &err), DAMRT_OK);
  CHECK(text && size == 0 && text[0] == '\0');
  free(text);
  remove(path);

  // /dev/zero never ends: reading stops at the limit.
  CHECK_EQ(damrt_read_text_file("/dev/zero", 1 << 20, &text, &size, &err),
           DAMRT_E_UNSUPPORTED);
  CHECK_STREQ(err.message, "'/dev/zero' is larger than the limit of 1048576 bytes");
  CHECK_EQ(damrt_read_text_file("/dev/null", 10, &text, &size, &err), DAMRT_OK);
  CHECK(text && size == 0);
  free(text);

  // A pipe of known content, longer than the first buffer.
  int fds[2];
  CHECK(pipe(fds) == 0);
  char chunk[1000];
  memset(chunk, 'q', sizeof chunk);
  for (int i = 0; i < 10; i++) CHECK(write(fds[1], chunk, sizeof chunk) == sizeof chunk);
  close(fds[1]);
  char pipe_path[64];
  snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", fds[0]);
  CHECK_EQ(damrt_read_text_file(pipe_path, 10000, &text, &size, &err), DAMRT_OK);
  CHECK(text && size == 10000 && text[9999] == 'q' && text[10000] == '\0');
  free(text);
  close(fds[0]);
}

// The readers open paths the same way: the same message for a directory and for a missing
// file, whichever reads it.
static void test_reader_messages(void) {
  DamrtError err;
  char expected[1200], missing[512];
  char *text;
  size_t size;
  snprintf(expected, sizeof expected, "'%s': is a directory", dir.path);
  CHECK(damrt_npy_read(dir.path, DAMRT_F64, &err) == NULL);
  CHECK_STREQ(err.message, expected);
  DamrtNpyInfo info;
  CHECK_EQ(damrt_npy_read_info(dir.path, &info, &err), DAMRT_E_IO);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open(dir.path, &err) == NULL);
  CHECK_STREQ(err.message, expected);
  CHECK_EQ(damrt_read_text_file(dir.path, 100, &text, &size, &err), DAMRT_E_IO);
  CHECK_STREQ(err.message, expected);

  path_of("missing.npz", missing);
  snprintf(expected, sizeof expected, "'%s': cannot open: No such file or directory", missing);
  CHECK(damrt_npy_read(missing, DAMRT_F64, &err) == NULL);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open(missing, &err) == NULL);
  CHECK_STREQ(err.message, expected);
  CHECK_EQ(damrt_read_text_file(missing, 100, &text, &size, &err), DAMRT_E_IO);
  CHECK_STREQ(err.message, expected);

  // A .npz archive from a pipe (`cat w.npz | damc ... /dev/stdin`): refused at once, without
  // reading from the pipe; a device likewise.
  int fds[2];
  CHECK(pipe(fds) == 0);
  char pipe_path[64];
  snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", fds[0]);
  CHECK(damrt_npz_open(pipe_path, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_UNSUPPORTED);
  snprintf(expected, sizeof expected,
           "'%s': a .npz archive must be a regular file (it needs seeking)", pipe_path);
  CHECK_STREQ(err.message, expected);
  close(fds[0]);
  close(fds[1]);
  char fifo[512];
  path_of("w.npz", fifo);
  CHECK(mkfifo(fifo, 0600) == 0);  // no writer: opening it would wait forever
  CHECK(damrt_npz_open(fifo, &err) == NULL);
  snprintf(expected, sizeof expected,
           "'%s': a .npz archive must be a regular file (it needs seeking)", fifo);
  CHECK_STREQ(err.message, expected);
  remove(fifo);
  CHECK(damrt_npz_open("/dev/zero", &err) == NULL);
  CHECK_STREQ(err.message, "'/dev/zero': a .npz archive must be a regular file (it needs "
                           "seeking)");

  // A .npy file can stream from a pipe.
  CHECK(pipe(fds) == 0);
  snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", fds[0]);
  size_t shape[1] = {3};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, NULL);
  ((double *)t->data)[2] = 7;
  char npy[512];
  path_of("x.npy", npy);
  CHECK_EQ(damrt_npy_write(npy, t, &err), DAMRT_OK);
  size_t npy_size = 0;
  unsigned char *bytes = file_read_all(npy, &npy_size);
  CHECK(write(fds[1], bytes, npy_size) == (ssize_t)npy_size);
  close(fds[1]);
  DamrtTensor *back = damrt_npy_read(pipe_path, DAMRT_F32, &err);
  CHECK(back && back->count == 3 && ((float *)back->data)[2] == 7);
  damrt_tensor_free(back);
  close(fds[0]);
  // A pipe that ends early: the declared size was allocated, the data is missing.
  CHECK(pipe(fds) == 0);
  snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", fds[0]);
  CHECK(write(fds[1], bytes, npy_size - 4) == (ssize_t)npy_size - 4);
  close(fds[1]);
  CHECK(damrt_npy_read(pipe_path, DAMRT_F64, &err) == NULL);
  snprintf(expected, sizeof expected,
           "'%s': truncated data: shape (3,) of '<f8' needs 24 bytes, only 20 present",
           pipe_path);
  CHECK_STREQ(err.message, expected);
  close(fds[0]);
  free(bytes);
  remove(npy);
  damrt_tensor_free(t);
}

static void test_same_file(void) {
  char a[512], b[512], hard[512], soft[512], c[512], d[512], dangling[512];
  path_of("a.npz", a);
  path_of("b.npz", b);
  path_of("hard.npz", hard);
  path_of("soft.npz", soft);
  path_of("c.npz", c);
  path_of("d.npz", d);
  path_of("dangling.npz", dangling);
  file_write_all(a, "a", 1);
  file_write_all(b, "b", 1);
  CHECK(link(a, hard) == 0);
  CHECK(symlink("a.npz", soft) == 0);
  CHECK(symlink("c.npz", dangling) == 0);
  CHECK(damrt_same_file(a, a));
  CHECK(!damrt_same_file(a, b));
  CHECK(damrt_same_file(a, hard));
  CHECK(damrt_same_file(hard, soft));
  CHECK(damrt_same_file(soft, a));
  // Files that do not exist yet: the same when they resolve to one path.
  CHECK(damrt_same_file(c, c));
  CHECK(!damrt_same_file(c, d));
  CHECK(damrt_same_file(dangling, c));  // the output would be created there
  CHECK(!damrt_same_file(a, c));
  CHECK(!damrt_same_file(c, a));

  // Relative and absolute spellings, from inside the directory.
  char cwd[1024];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(dir.path) == 0);
  char dotted[600];
  snprintf(dotted, sizeof dotted, "../%s/a.npz", strrchr(dir.path, '/') + 1);
  CHECK(damrt_same_file("a.npz", a));
  CHECK(damrt_same_file("./a.npz", dotted));
  CHECK(damrt_same_file("c.npz", c));
  CHECK(damrt_same_file("./sub/../c.npz", c) == false);  // no "sub": compared as written
  CHECK(damrt_same_file("c.npz", "./c.npz"));
  CHECK(!damrt_same_file("c.npz", "d.npz"));
  CHECK(chdir(cwd) == 0);

  // Character devices may be named twice (/dev/null as two outputs, a terminal for input
  // and output).
  CHECK(!damrt_same_file("/dev/null", "/dev/null"));
  remove(a);
  remove(b);
  remove(hard);
  remove(soft);
  remove(dangling);
}

// damrt_file_read_at splits a big read among threads (page-aligned parts, the last one taking
// the rest): every byte lands in its place for any thread count, from an odd offset, with the
// FILE's position untouched; a file shorter than asked gives the bytes up to its end; a read
// error is reported. And a big .npy read the same way holds exactly the file's data.
static void test_parallel_read(void) {
  char path[512];
  path_of("big.bin", path);
  const size_t size = (40u << 20) + 4093;  // over the 16 MiB below which one thread reads
  unsigned char *bytes = malloc(size), *back = malloc(size + (1 << 20));
  uint32_t x = 12345;
  for (size_t i = 0; i < size; i++) bytes[i] = (unsigned char)((x = x * 1664525u + 1013904223u) >> 24);
  file_write_all(path, bytes, size);
  FILE *f = fopen(path, "rb");
  DamrtError err;
  const int threads[] = {1, 2, 3, 5, 8, 64};
  for (size_t t = 0; t < sizeof threads / sizeof *threads; t++) {
    damrt_set_threads(threads[t]);
    size_t got = 0;
    memset(back, 0, size);
    CHECK_EQ(damrt_file_read_at(f, 13, back, size - 13, &got, "'big.bin'", &err), DAMRT_OK);
    CHECK_EQ(got, size - 13);
    CHECK(memcmp(back, bytes + 13, size - 13) == 0);
    CHECK_EQ(ftell(f), 0);
    // Asking for 1 MiB more than the file holds: the bytes up to its end.
    CHECK_EQ(damrt_file_read_at(f, 7, back, size - 7 + (1 << 20), &got, "'big.bin'", &err),
             DAMRT_OK);
    CHECK_EQ(got, size - 7);
    CHECK(memcmp(back, bytes + 7, size - 7) == 0);
    CHECK_EQ(damrt_file_read_at(f, size + 100, back, 20u << 20, &got, "'big.bin'", &err), DAMRT_OK);
    CHECK_EQ(got, 0);
  }
  fclose(f);
  // A directory opens for reading on Linux; reading it fails.
  FILE *d = fopen(dir.path, "rb");
  if (d) {
    size_t got = 1;
    CHECK_EQ(damrt_file_read_at(d, 0, back, 20u << 20, &got, "'dir'", &err), DAMRT_E_IO);
    CHECK_STREQ(err.message, "'dir': read error: Is a directory");
    fclose(d);
  }

  // A float32 .npy of 10.5 M elements (42 MB), read with one and with two threads.
  const size_t count = 10u * 1024 * 1024 + 512 * 1024 + 3;
  size_t shape[1] = {count};
  DamrtTensor *w = damrt_tensor_new(DAMRT_F32, 1, shape, &err);
  for (size_t i = 0; i < count; i++) ((float *)w->data)[i] = (float)(i % 1000003) * 0.5f - 7;
  path_of("big.npy", path);
  CHECK_EQ(damrt_npy_write(path, w, &err), DAMRT_OK);
  for (int t = 1; t <= 2; t++) {
    damrt_set_threads(t);
    DamrtTensor *r = damrt_npy_read(path, DAMRT_F32, &err);
    CHECK(r && r->count == count && memcmp(r->data, w->data, count * sizeof(float)) == 0);
    damrt_tensor_free(r);
  }
  damrt_tensor_free(w);
  remove(path);
  path_of("big.bin", path);
  remove(path);
  free(bytes);
  free(back);
}

int main(void) {
  scratch_new(&dir);
  test_read_text();
  test_reader_messages();
  test_same_file();
  test_parallel_read();
  scratch_free(&dir);
  return check_report("runtime/files");
}
