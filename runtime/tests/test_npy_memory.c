// Reading a big weight costs no more memory than the result (docs/performance.md, "Reading
// big weights"): for each kind of file (float32 as is, float64 into float32, big-endian,
// Fortran order, a .npz member, float32 into float64), a child process reads it and measures
// its peak resident memory (getrusage ru_maxrss) before and after; the growth must stay
// within 1.25 times the tensor read plus 4 MiB, and every value must be right. Then the
// float32 range check on float64 data: a value beyond float32 and a NaN are refused, naming
// their index.
//
// The files (about 96 MiB of weights; 192 MiB as float64) are written in chunks, never held
// whole, in a temporary directory (TMPDIR or /tmp) removed at the end.
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "damrt_npy.h"
#include "damrt_npz.h"

enum { ROWS = 6000, COLS = 4000 };  // 24M elements: 96 MiB as float32
static int failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

// The value at C-order position (i, j): exact in float32.
static float value_at(size_t i, size_t j) { return (float)((i * 7 + j * 13) % 4093) * 0.25f - 500.0f; }

static void put_header(FILE *f, const char *descr, bool fortran, size_t rows, size_t cols) {
  char dict[200];
  int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': (%zu, %zu), }",
                   descr, fortran ? "True" : "False", rows, cols);
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  uint16_t hlen = (uint16_t)(n + 1 + pad);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  uint8_t le[2] = {(uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
  fwrite(le, 1, 2, f);
  fwrite(dict, 1, (size_t)n, f);
  for (size_t k = 0; k < pad; k++) fputc(' ', f);
  fputc('\n', f);
}

typedef enum { F32, F64, F32_BIG, F32_FORTRAN } FileKind;

static void write_npy(const char *path, FileKind kind) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(1);
  }
  put_header(f, kind == F64 ? "<f8" : kind == F32_BIG ? ">f4" : "<f4", kind == F32_FORTRAN, ROWS,
             COLS);
  size_t outer = kind == F32_FORTRAN ? COLS : ROWS, inner = kind == F32_FORTRAN ? ROWS : COLS;
  for (size_t a = 0; a < outer; a++)
    for (size_t b = 0; b < inner; b++) {
      float v = kind == F32_FORTRAN ? value_at(b, a) : value_at(a, b);
      if (kind == F64) {
        double d = v;
        fwrite(&d, 8, 1, f);
      } else if (kind == F32_BIG) {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        bits = __builtin_bswap32(bits);
        fwrite(&bits, 4, 1, f);
      } else {
        fwrite(&v, 4, 1, f);
      }
    }
  fclose(f);
}

// In a child (whose memory does not count here): the .npz of the float32 weight.
static void write_npz(const char *path) {
  pid_t pid = fork();
  if (pid == 0) {
    size_t shape[2] = {ROWS, COLS};
    DamrtTensor *t = damrt_tensor_new(DAMRT_F32, 2, shape, NULL);
    if (!t) _exit(1);
    float *d = t->data;
    for (size_t i = 0; i < ROWS; i++)
      for (size_t j = 0; j < COLS; j++) d[i * COLS + j] = value_at(i, j);
    DamrtNamedTensor item = {"Xi", t, 0};
    _exit(damrt_npz_write(path, &item, 1, DAMRT_NPZ_STORED, NULL) == DAMRT_OK ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writing %s", path);
}

static long maxrss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Reads `path` (member "Xi" of a .npz when `npz`) as `want` in a child; checks the values and
// that the peak memory grew by at most 1.25 times the result plus 4 MiB.
static void measure(const char *what, const char *path, bool npz, DamrtDtype want) {
  int fds[2];
  if (pipe(fds) != 0) exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    long before = maxrss_kib();
    DamrtError err = {0};
    DamrtTensor *t = NULL;
    if (npz) {
      DamrtNpz *z = damrt_npz_open(path, &err);
      if (z) t = damrt_npz_read_flags(z, "Xi", want, DAMRT_READ_F32_RANGE, &err);
      if (z) damrt_npz_close(z);
    } else {
      t = damrt_npy_read_flags(path, want, DAMRT_READ_F32_RANGE, &err);
    }
    long after = maxrss_kib();
    long bad = t ? 0 : -1;
    for (size_t i = 0; t && i < ROWS; i += 7)
      for (size_t j = 0; j < COLS; j += 3) {
        double v = want == DAMRT_F32 ? ((float *)t->data)[i * COLS + j] : ((double *)t->data)[i * COLS + j];
        if (v != value_at(i, j)) bad++;
      }
    long msg[3] = {before, after, bad};
    if (write(fds[1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(2);
    if (!t) fprintf(stderr, "%s: %s\n", what, err.message);
    _exit(0);
  }
  close(fds[1]);
  long msg[3] = {0, 0, -1};
  ssize_t got = read(fds[0], msg, sizeof msg);
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  CHECK(got == (ssize_t)sizeof msg && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child", what);
  double result_mib = (double)ROWS * COLS * (want == DAMRT_F32 ? 4 : 8) / (1 << 20);
  double grew_mib = (double)(msg[1] - msg[0]) / 1024;
  printf("%-34s result %6.1f MiB, peak memory grew %6.1f MiB (%.3fx)\n", what, result_mib, grew_mib,
         grew_mib / result_mib);
  CHECK(msg[2] == 0, "%s: %ld wrong values", what, msg[2]);
  CHECK(grew_mib <= 1.25 * result_mib + 4, "%s: peak memory grew %.1f MiB for a %.1f MiB result",
        what, grew_mib, result_mib);
}

// A small float64 file with `bad` at [1, 2]: refused as float32, naming the index.
static void range_check(const char dir[4096]) {
  char path[4200];
  snprintf(path, sizeof path, "%s/range.npy", dir);
  double bads[] = {1e39, -INFINITY, NAN};
  for (size_t b = 0; b < sizeof bads / sizeof bads[0]; b++) {
    for (int fortran = 0; fortran < 2; fortran++) {
      FILE *f = fopen(path, "wb");
      put_header(f, "<f8", fortran, 3, 4);
      for (int k = 0; k < 12; k++) {
        // C order: (1, 2) is element 6; Fortran order: element 2 * 3 + 1 = 7.
        double v = k == (fortran ? 7 : 6) ? bads[b] : (double)k;
        fwrite(&v, 8, 1, f);
      }
      fclose(f);
      DamrtError err = {0};
      DamrtTensor *t = damrt_npy_read_flags(path, DAMRT_F32, DAMRT_READ_F32_RANGE, &err);
      CHECK(!t && err.code == DAMRT_E_VALUE && strstr(err.message, "at [1, 2]") &&
                strstr(err.message, isnan(bads[b])    ? "' has NaN at"
                                   : isinf(bads[b]) ? "' has -Inf at"
                                                    : "does not fit float32"),
            "bad value %g (fortran %d): %s", bads[b], fortran, t ? "read" : err.message);
      damrt_tensor_free(t);
      err = (DamrtError){0};
      // Without the flag, a C cast (as before); as float64, the value itself.
      t = damrt_npy_read(path, DAMRT_F64, &err);
      CHECK(t && (isnan(bads[b]) ? isnan(((double *)t->data)[6]) : ((double *)t->data)[6] == bads[b]),
            "as float64");
      damrt_tensor_free(t);
    }
  }
  // The largest float32 and float64 values within it pass.
  FILE *f = fopen(path, "wb");
  put_header(f, "<f8", false, 1, 2);
  double ok[2] = {FLT_MAX, -FLT_MAX};
  fwrite(ok, 8, 2, f);
  fclose(f);
  DamrtError err = {0};
  DamrtTensor *t = damrt_npy_read_flags(path, DAMRT_F32, DAMRT_READ_F32_RANGE, &err);
  CHECK(t && ((float *)t->data)[0] == FLT_MAX && ((float *)t->data)[1] == -FLT_MAX, "FLT_MAX passes");
  damrt_tensor_free(t);
  remove(path);
}

int main(void) {
  const char *tmp = getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/damrt_npy_memory.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char path[4200];
  static const struct {
    const char *what;
    FileKind kind;
    DamrtDtype want;
  } cases[] = {
      {"float32 .npy -> float32", F32, DAMRT_F32},
      {"float64 .npy -> float32 (checked)", F64, DAMRT_F32},
      {"big-endian float32 -> float32", F32_BIG, DAMRT_F32},
      {"Fortran-order float32 -> float32", F32_FORTRAN, DAMRT_F32},
      {"float32 .npy -> float64", F32, DAMRT_F64},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    snprintf(path, sizeof path, "%s/w.npy", dir);
    write_npy(path, cases[c].kind);
    measure(cases[c].what, path, false, cases[c].want);
    remove(path);
  }
  snprintf(path, sizeof path, "%s/w.npz", dir);
  write_npz(path);
  measure("float32 .npz member -> float32", path, true, DAMRT_F32);
  remove(path);
  range_check(dir);
  rmdir(dir);
  if (failures) {
    fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}
