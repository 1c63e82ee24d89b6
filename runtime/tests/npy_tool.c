// A command-line window on the runtime's readers and writers, driven by npy_interop.py,
// which compares what it prints and writes with NumPy.
//
//   npy_tool dump f32|f64 FILE...
//     For each FILE (a .npz when its name ends in .npz, else a .npy) prints "== FILE",
//     then for a .npz a "keys K..." line, then per tensor
//       tensor KEY rank R shape D...
//       values V...          (every element in C order, %.17g, exact for both dtypes)
//     or "error STATUS: MESSAGE" where reading failed. Failures are output, not exit codes,
//     so one run can go through hundreds of damaged files.
//   npy_tool time f32|f64 FILE [REPEAT]
//     Reads FILE (member "Xi" of a .npz) REPEAT times (default 5), as damc reads a weight
//     (float32 range checked), and prints the best time in seconds (scripts/bench_read.py).
//   npy_tool copy f32|f64 stored|deflated IN OUT [IN OUT]...
//     Reads each IN and writes it to OUT with the runtime's writer (every tensor of a .npz,
//     in order, into a .npz with that compression). Exits 1 at the first failure.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "damrt.h"

static bool is_npz(const char *path) {
  size_t len = strlen(path);
  return len >= 4 && strcmp(path + len - 4, ".npz") == 0;
}

static void print_error(const DamrtError *err) {
  printf("error %s: %s\n", damrt_status_name(err->code), err->message);
}

static void print_tensor(const char *key, const DamrtTensor *t) {
  printf("tensor %s rank %d shape", key, t->rank);
  for (int d = 0; d < t->rank; d++) printf(" %zu", t->shape[d]);
  printf("\nvalues");
  for (size_t i = 0; i < t->count; i++)
    printf(" %.17g", t->dtype == DAMRT_F32 ? ((const float *)t->data)[i]
                                           : ((const double *)t->data)[i]);
  printf("\n");
}

static void dump(const char *path, DamrtDtype want) {
  DamrtError err;
  printf("== %s\n", path);
  if (!is_npz(path)) {
    DamrtTensor *t = damrt_npy_read(path, want, &err);
    if (t) print_tensor("-", t);
    else print_error(&err);
    damrt_tensor_free(t);
    return;
  }
  DamrtNpz *npz = damrt_npz_open(path, &err);
  if (!npz) {
    print_error(&err);
    return;
  }
  printf("keys");
  for (size_t i = 0; i < damrt_npz_count(npz); i++) printf(" %s", damrt_npz_key(npz, i));
  printf("\n");
  for (size_t i = 0; i < damrt_npz_count(npz); i++) {
    DamrtTensor *t = damrt_npz_read(npz, damrt_npz_key(npz, i), want, &err);
    if (t) print_tensor(damrt_npz_key(npz, i), t);
    else print_error(&err);
    damrt_tensor_free(t);
  }
  damrt_npz_close(npz);
}

static DamrtStatus copy_npz(const char *in, const char *out, DamrtDtype want,
                            DamrtNpzCompression compression, DamrtError *err) {
  DamrtNpz *npz = damrt_npz_open(in, err);
  if (!npz) return err->code;
  size_t n = damrt_npz_count(npz);
  DamrtTensor **tensors = calloc(n ? n : 1, sizeof *tensors);
  DamrtNamedTensor *items = calloc(n ? n : 1, sizeof *items);
  DamrtStatus status = DAMRT_OK;
  for (size_t i = 0; i < n && status == DAMRT_OK; i++) {
    tensors[i] = damrt_npz_read(npz, damrt_npz_key(npz, i), want, err);
    items[i] = (DamrtNamedTensor){damrt_npz_key(npz, i), tensors[i], DAMRT_STORE_TENSOR};
    if (!tensors[i]) status = err->code;
  }
  if (status == DAMRT_OK) status = damrt_npz_write(out, items, n, compression, err);
  for (size_t i = 0; i < n; i++) damrt_tensor_free(tensors[i]);
  free(tensors);
  free(items);
  damrt_npz_close(npz);
  return status;
}

static DamrtStatus copy(const char *in, const char *out, DamrtDtype want,
                        DamrtNpzCompression compression, DamrtError *err) {
  if (is_npz(in)) return copy_npz(in, out, want, compression, err);
  DamrtTensor *t = damrt_npy_read(in, want, err);
  if (!t) return err->code;
  DamrtStatus status = damrt_npy_write(out, t, err);
  damrt_tensor_free(t);
  return status;
}

static int usage(void) {
  fprintf(stderr, "usage: npy_tool dump f32|f64 FILE...\n"
                  "       npy_tool copy f32|f64 stored|deflated IN OUT [IN OUT]...\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 3 || (strcmp(argv[2], "f32") != 0 && strcmp(argv[2], "f64") != 0)) return usage();
  DamrtDtype want = strcmp(argv[2], "f32") == 0 ? DAMRT_F32 : DAMRT_F64;
  if (strcmp(argv[1], "dump") == 0) {
    for (int i = 3; i < argc; i++) dump(argv[i], want);
    return 0;
  }
  if (strcmp(argv[1], "time") == 0) {
    int repeat = argc > 4 ? atoi(argv[4]) : 5;
    double best = 1e300;
    for (int r = 0; r < repeat; r++) {
      struct timespec t0, t1;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      DamrtError err;
      unsigned flags = want == DAMRT_F32 ? DAMRT_READ_F32_RANGE : 0;
      DamrtTensor *t = NULL;
      if (is_npz(argv[3])) {
        DamrtNpz *z = damrt_npz_open(argv[3], &err);
        if (z) t = damrt_npz_read_flags(z, "Xi", want, flags, &err);
        if (z) damrt_npz_close(z);
      } else {
        t = damrt_npy_read_flags(argv[3], want, flags, &err);
      }
      clock_gettime(CLOCK_MONOTONIC, &t1);
      if (!t) {
        fprintf(stderr, "error: %s\n", err.message);
        return 1;
      }
      damrt_tensor_free(t);
      double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
      if (s < best) best = s;
    }
    printf("%.6f\n", best);
    return 0;
  }
  if (strcmp(argv[1], "copy") != 0 || argc < 6 || (argc - 4) % 2 != 0) return usage();
  DamrtNpzCompression compression =
      strcmp(argv[3], "deflated") == 0 ? DAMRT_NPZ_DEFLATED : DAMRT_NPZ_STORED;
  for (int i = 4; i < argc; i += 2) {
    DamrtError err;
    if (copy(argv[i], argv[i + 1], want, compression, &err) != DAMRT_OK) {
      fprintf(stderr, "error: %s\n", err.message);
      return 1;
    }
  }
  return 0;
}
