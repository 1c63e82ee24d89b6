// Unit tests of the .npz reader and writer: round trips through stored and deflated
// archives, keys, the messages for missing keys and damaged archives, and the atomic
// replacement when writing fails. (npy_interop.py checks archives written by NumPy.)
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "check.h"
#include "damrt.h"
#include "test_files.h"

typedef struct {
  DamrtTensor *w, *beta, *empty;
  DamrtNamedTensor items[3];
} Fixture;

static void fixture_new(Fixture *f) {
  size_t shape_w[2] = {2, 3}, shape_empty[2] = {0, 4};
  f->w = damrt_tensor_new(DAMRT_F64, 2, shape_w, NULL);
  for (int i = 0; i < 6; i++) ((double *)f->w->data)[i] = 1.0 / (i + 1);
  f->beta = damrt_tensor_new(DAMRT_F32, 0, NULL, NULL);
  *(float *)f->beta->data = 8.0f;
  f->empty = damrt_tensor_new(DAMRT_F32, 2, shape_empty, NULL);
  f->items[0] = (DamrtNamedTensor){"Xi", f->w};
  f->items[1] = (DamrtNamedTensor){"beta", f->beta};
  f->items[2] = (DamrtNamedTensor){"empty", f->empty};
}

static void fixture_free(Fixture *f) {
  damrt_tensor_free(f->w);
  damrt_tensor_free(f->beta);
  damrt_tensor_free(f->empty);
}

static unsigned char *find_bytes(unsigned char *hay, size_t size, const char *needle,
                                 size_t len) {
  for (size_t i = 0; i + len <= size; i++)
    if (memcmp(hay + i, needle, len) == 0) return hay + i;
  return NULL;
}

static mode_t new_file_mode(void) {
  mode_t mask = umask(0);
  umask(mask);
  return 0666 & ~mask;
}

// Checks that `npz` holds exactly the fixture's tensors.
static void check_contents(DamrtNpz *npz, const Fixture *f) {
  DamrtError err;
  CHECK_EQ(damrt_npz_count(npz), 3);
  CHECK_STREQ(damrt_npz_key(npz, 0), "Xi");
  CHECK_STREQ(damrt_npz_key(npz, 1), "beta");
  CHECK_STREQ(damrt_npz_key(npz, 2), "empty");
  CHECK(damrt_npz_has(npz, "beta") && !damrt_npz_has(npz, "Beta"));
  DamrtTensor *w = damrt_npz_read(npz, "Xi", DAMRT_F64, &err);
  CHECK(w && w->rank == 2 && w->shape[1] == 3 && memcmp(w->data, f->w->data, 48) == 0);
  DamrtTensor *w32 = damrt_npz_read(npz, "Xi", DAMRT_F32, &err);
  CHECK(w32 && ((float *)w32->data)[2] == (float)(1.0 / 3));
  DamrtTensor *beta = damrt_npz_read(npz, "beta", DAMRT_F64, &err);
  CHECK(beta && beta->rank == 0 && *(double *)beta->data == 8.0);
  DamrtTensor *empty = damrt_npz_read(npz, "empty", DAMRT_F32, &err);
  CHECK(empty && empty->count == 0 && empty->shape[1] == 4);
  damrt_tensor_free(w);
  damrt_tensor_free(w32);
  damrt_tensor_free(beta);
  damrt_tensor_free(empty);
}

static void test_round_trip(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  const DamrtNpzCompression modes[2] = {DAMRT_NPZ_STORED, DAMRT_NPZ_DEFLATED};
  for (int m = 0; m < 2; m++) {
    scratch_file(dir, m ? "deflated.npz" : "stored.npz", path, sizeof path);
    CHECK_EQ(damrt_npz_write(path, f->items, 3, modes[m], &err), DAMRT_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == new_file_mode());
    DamrtNpz *npz = damrt_npz_open(path, &err);
    CHECK(npz != NULL);
    if (!npz) continue;
    check_contents(npz, f);
    CHECK(damrt_npz_read(npz, "xi", DAMRT_F64, &err) == NULL);
    CHECK_EQ(err.code, DAMRT_E_NOT_FOUND);
    snprintf(expected, sizeof expected,
             "'%s': no tensor 'xi'; the archive holds 'Xi', 'beta', 'empty'", path);
    CHECK_STREQ(err.message, expected);
    damrt_npz_close(npz);

    size_t size = 0;
    unsigned char *bytes = file_read_all(path, &size);
    npz = damrt_npz_open_memory(bytes, size, "mem.npz", &err);
    CHECK(npz != NULL);
    if (npz) check_contents(npz, f);
    damrt_npz_close(npz);
    free(bytes);
  }
  CHECK_EQ(scratch_count_temp(dir), 0);
}

static void test_empty_archive(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "none.npz", path, sizeof path);
  CHECK_EQ(damrt_npz_write(path, NULL, 0, DAMRT_NPZ_STORED, &err), DAMRT_OK);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 22 && memcmp(bytes, "PK\x05\x06", 4) == 0);
  free(bytes);
  DamrtNpz *npz = damrt_npz_open(path, &err);
  CHECK(npz && damrt_npz_count(npz) == 0);
  if (npz) {
    CHECK(damrt_npz_read(npz, "x", DAMRT_F64, &err) == NULL);
    snprintf(expected, sizeof expected, "'%s': no tensor 'x'; the archive holds no tensors",
             path);
    CHECK_STREQ(err.message, expected);
  }
  damrt_npz_close(npz);
}

static void test_bad_items(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "bad.npz", path, sizeof path);
  DamrtNamedTensor twice[2] = {{"a", f->w}, {"a", f->beta}};
  CHECK_EQ(damrt_npz_write(path, twice, 2, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected, "'%s': key 'a' is given twice", path);
  CHECK_STREQ(err.message, expected);
  DamrtNamedTensor unnamed[2] = {{"a", f->w}, {"", f->beta}};
  CHECK_EQ(damrt_npz_write(path, unnamed, 2, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected, "'%s': tensor 1 has an empty key", path);
  CHECK_STREQ(err.message, expected);
  DamrtTensor broken = *f->w;
  broken.count = 5;
  DamrtNamedTensor bad[1] = {{"w", &broken}};
  CHECK_EQ(damrt_npz_write(path, bad, 1, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected,
           "'%s': tensor 'w': element count 5 does not match the shape (2, 3)", path);
  CHECK_STREQ(err.message, expected);
  struct stat st;
  CHECK(stat(path, &st) != 0);  // nothing was created
  CHECK_EQ(scratch_count_temp(dir), 0);
}

static void test_write_failure(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "big.npz", path, sizeof path);
  file_write_all(path, "old", 3);
  size_t shape[1] = {100000};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, NULL);
  DamrtNamedTensor items[1] = {{"t", t}};
  struct rlimit saved, small;
  getrlimit(RLIMIT_FSIZE, &saved);
  small = saved;
  small.rlim_cur = 65536;
  signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  DamrtStatus status = damrt_npz_write(path, items, 1, DAMRT_NPZ_STORED, &err);
  setrlimit(RLIMIT_FSIZE, &saved);
  CHECK_EQ(status, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot write: File too large", path);
  CHECK_STREQ(err.message, expected);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 3 && memcmp(bytes, "old", 3) == 0);
  free(bytes);
  CHECK_EQ(scratch_count_temp(dir), 0);

  scratch_file(dir, "missing/x.npz", path, sizeof path);
  CHECK_EQ(damrt_npz_write(path, items, 1, DAMRT_NPZ_DEFLATED, &err), DAMRT_E_IO);
  CHECK(strstr(err.message, "cannot create a temporary file in its directory") != NULL);
  damrt_tensor_free(t);
}

static void test_open_failures(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "nonexistent.npz", path, sizeof path);
  CHECK(damrt_npz_open(path, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot open: No such file or directory", path);
  CHECK_STREQ(err.message, expected);

  CHECK(damrt_npz_open(dir->path, &err) == NULL);
  snprintf(expected, sizeof expected, "'%s': is a directory", dir->path);
  CHECK_STREQ(err.message, expected);

  const char *not_zip = "this is not an archive at all";
  const char *why = ": not a zip archive, or a truncated one (no end-of-central-directory "
                    "record); a .npz file is a zip archive of .npy files";
  CHECK(damrt_npz_open_memory(not_zip, strlen(not_zip), "t.npz", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  snprintf(expected, sizeof expected, "t.npz%s", why);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open_memory("", 0, "t.npz", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  CHECK_STREQ(err.message, "t.npz: not a zip archive (it is empty)");

  // Cut and damaged copies of a stored archive.
  scratch_file(dir, "good.npz", path, sizeof path);
  damrt_npz_write(path, f->items, 3, DAMRT_NPZ_STORED, &err);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(damrt_npz_open_memory(bytes, size - 1, "t.npz", &err) == NULL);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open_memory(bytes, size / 2, "t.npz", &err) == NULL);
  CHECK_STREQ(err.message, expected);
  // Flip the first data byte of 'Xi' (the first member; its .npy header is 128 bytes).
  unsigned char *npy = find_bytes(bytes, size, "\x93NUMPY", 6);
  npy[128] ^= 0x40;
  DamrtNpz *npz = damrt_npz_open_memory(bytes, size, "t.npz", &err);
  CHECK(npz != NULL);
  if (npz) {
    CHECK(damrt_npz_read(npz, "Xi", DAMRT_F64, &err) == NULL);
    CHECK_EQ(err.code, DAMRT_E_FORMAT);
    CHECK_STREQ(err.message, "t.npz: tensor 'Xi': corrupt data (CRC mismatch)");
    DamrtTensor *beta = damrt_npz_read(npz, "beta", DAMRT_F64, &err);
    CHECK(beta != NULL);
    damrt_tensor_free(beta);
  }
  damrt_npz_close(npz);
  free(bytes);
}

int main(void) {
  ScratchDir dir;
  scratch_new(&dir);
  Fixture f;
  fixture_new(&f);
  test_round_trip(&dir, &f);
  test_empty_archive(&dir);
  test_bad_items(&dir, &f);
  test_write_failure(&dir);
  test_open_failures(&dir, &f);
  fixture_free(&f);
  scratch_free(&dir);
  return check_report("runtime/npz");
}
