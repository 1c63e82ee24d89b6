// Times the Model B step with the memory layer eliminated (u_v = Xi' softmax(beta Xi g_v),
// the rhs kernel) and its eval kernel (E too), with the products chosen three ways:
// --kernels blas (two gemm calls around a row-wise softmax), fused (one pass over Xi,
// runtime/src/kernel_fused.c; with every thread, and with one) and auto (the plan's rule), in
// one process, the contenders alternating over rounds; each contender's figure is its best
// median over the rounds. Prints one line per size with the ratios blas / fused, blas /
// fused on one thread and blas / auto. Not a test.
//
//   fused_step [ROUNDS [N K B ...]]   (default 5 rounds, the sizes of docs/performance.md)
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/damc_internal.h"
#include "damrt_kernel.h"

static const char *const MODEL =
    "dim N;\ndim K;\nparam beta = 0.5;\nlayer v[N] { L = lagr_identity(v); }\n"
    "layer h[K] { L = lagr_softmax(h, beta); tau = 0; }\nsynapse Xi[K, N] : h <-> v;\n";

static DamcModel *compile(const float *xi, size_t n, size_t k, DamcKernels kernels) {
  DamcError err = {0};
  DamcModel *m = damc_model_from_string("fused_step", MODEL, &err);
  DamcArray w = {2, {k, n, 0, 0}, xi, DAMC_F32};
  if (!m || !damc_bind_weight(m, "Xi", &w, NULL, &err) || !damc_set_kernels(m, kernels, &err) ||
      !damc_compile(m, DAMC_F32, &err)) {
    fprintf(stderr, "fused_step: %s\n", err.message);
    exit(1);
  }
  return m;
}

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 5;
  static const long defaults[] = {64, 256, 1, 784, 1000, 1, 784, 1000, 16, 4096, 4096, 16,
                                  1024, 65536, 8, 784, 10000, 64};
  long sizes[64];
  int nsizes = 0;
  if (argc > 4)
    for (int i = 2; i + 2 < argc && nsizes < 20; i += 3, nsizes++)
      for (int j = 0; j < 3; j++) sizes[3 * nsizes + j] = atol(argv[i + j]);
  else {
    nsizes = (int)(sizeof defaults / sizeof *defaults / 3);
    memcpy(sizes, defaults, sizeof defaults);
  }
  const DamcKernels kinds[4] = {DAMC_KERNELS_BLAS, DAMC_KERNELS_FUSED, DAMC_KERNELS_FUSED,
                                DAMC_KERNELS_AUTO};
  printf("%6s %6s %4s | %11s %11s %11s %11s | %10s %10s %10s | eval: %11s %11s %10s\n", "N",
         "K", "B", "blas step", "fused", "fused 1t", "auto", "blas/fused", "blas/fus1t",
         "blas/auto", "blas", "fused", "blas/fused");
  for (int s = 0; s < nsizes; s++) {
    size_t n = (size_t)sizes[3 * s], k = (size_t)sizes[3 * s + 1], b = (size_t)sizes[3 * s + 2];
    float *xi = malloc(n * k * sizeof *xi);
    uint64_t st = 12345;
    for (size_t i = 0; i < n * k; i++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      xi[i] = (float)((double)(st >> 11) / 9007199254740992.0 - 0.5) / (float)sqrt((double)n);
    }
    DamcModel *m[4];
    for (int c = 0; c < 4; c++) m[c] = compile(xi, n, k, kinds[c]);
    double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    double best_eval[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    double work = (double)n * (double)k * (double)b;
    int repeat = work < 1e6 ? 2000 : work < 1e8 ? 50 : 9;
    StrBuf err = {0};
    for (int r = 0; r < rounds; r++)
      for (int c = 0; c < 4; c++) {
        double rhs, eval;
        damrt_fused_set_thread_limit(c == 2 ? 1 : 0);  // contender 2: the fused kernel on one thread
        if (!engine_bench(damc_model_engine(m[c]), b, repeat, &rhs, &eval, &err)) {
          fprintf(stderr, "fused_step: %s\n", sb_str(&err));
          return 1;
        }
        if (rhs < best[c]) best[c] = rhs;
        if (eval < best_eval[c]) best_eval[c] = eval;
      }
    printf("%6zu %6zu %4zu | %8.1f us %8.1f us %8.1f us %8.1f us | %10.2f %10.2f %10.2f | eval: "
           "%8.1f us %8.1f us %10.2f\n",
           n, k, b, 1e6 * best[0], 1e6 * best[1], 1e6 * best[2], 1e6 * best[3], best[0] / best[1],
           best[0] / best[2], best[0] / best[3], 1e6 * best_eval[0], 1e6 * best_eval[1],
           best_eval[0] / best_eval[1]);
    fflush(stdout);
    for (int c = 0; c < 4; c++) damc_model_free(m[c]);
    free(xi);
  }
  return 0;
}
