// The fused products' worker pool (src/kernel_fused.c) under many short jobs of changing
// size: 20000 calls of damrt_kernel_fused_f64 (additive mode, u = W' (z + 100)) on two to
// five threads (more than this machine's cores: threads are descheduled in the middle of
// their segment: the caller waits for it), K from 1 to 64 rows and the block rows from 1 to 8,
// every row's block map called exactly once, so that
// the number of parts and the jobs' scratch change at every call while a busy thread keeps
// the workers from being scheduled on time. Each u is compared with the direct product
// (exact: small integers). A worker that read a job and was delayed until the job ended
// could take a part of the next job's claims and run the old job, freed by then (a use
// after free; the window is a few instructions: 40 runs of the ASan build before the fix
// did not hit it; a segfault of test_engine_fused in one full-suite run, not reproduced
// since, is what it would look like). The claims now hold the job's generation, so a late
// worker finds its part taken.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "damrt_kernel.h"

enum { N = 12, KMAX = 64, CALLS = 20000 };

static int seen[4096];  // how many times the block map was called for each row, this call

// The block function: a = z + 100 (so that every row adds to u, and a row taken twice or
// never changes it), counting the calls of each row.
static void shifted_block(void **bufs, const double *params, int64_t batch, int64_t k0,
                          int64_t k1) {
  (void)params;
  const double *z = bufs[0];
  double *a = bufs[1];
  int64_t k = (int64_t)(intptr_t)bufs[2];
  for (int64_t r = k0; r < k1; r++) seen[r]++;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t r = k0; r < k1; r++) a[b * k + r] = z[b * k + r] + 100;
}

static volatile int stop;

static void *busy(void *arg) {
  (void)arg;
  volatile unsigned long x = 0;
  while (!stop) x++;
  return NULL;
}

// The same softmax product (random W and g, K = 3001, three threads; a = z + 100, the same
// softmax as of z) called six times: the
// calls of the same parity (each thread goes through its segment ascending, then descending)
// give the same bits, whatever the threads' timing (a busy thread runs meanwhile).
static int repeatable(void) {
  enum { RN = 50, RK = 3001, CALLS_EACH = 6 };
  static double w[RK * RN], g[RN], z[RK], a[RK], u[CALLS_EACH][RN], lse[CALLS_EACH];
  uint64_t x = 88172645463325252u;
  for (int i = 0; i < RK * RN + RN; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double v = (double)(x >> 11) / 9007199254740992.0 - 0.5;
    if (i < RK * RN) w[i] = v;
    else g[i - RK * RN] = 4 * v;
  }
  void *bufs[3] = {z, a, (void *)(intptr_t)RK};
  for (int c = 0; c < CALLS_EACH; c++)
    damrt_kernel_fused_f64(0, 1, RN, RK, 8, 3, w, g, z, a, &lse[c], u[c], (void *)shifted_block,
                           bufs, NULL);
  int differ = 0;
  for (int c = 2; c < CALLS_EACH; c++)
    differ += memcmp(u[c], u[c - 2], sizeof u[c]) != 0 || lse[c] != lse[c - 2];
  return differ;
}

int main(void) {
  static double w[KMAX * N], g[N], z[KMAX], a[KMAX], u[N];
  for (int i = 0; i < KMAX * N; i++) w[i] = (double)(i % 7) - 3;
  for (int j = 0; j < N; j++) g[j] = (double)(j % 5) - 2;
  damrt_set_threads(5);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, busy, NULL) == 0);
  int wrong = 0;
  for (int c = 0; c < CALLS; c++) {
    int64_t k = 1 + c % KMAX, rows = 1 + c % 8;
    int threads = 2 + c % 4;
    void *bufs[3] = {z, a, (void *)(intptr_t)k};
    memset(u, 0, sizeof u);
    memset(seen, 0, sizeof seen);
    damrt_kernel_fused_f64(1, 1, N, k, rows, threads, w, g, z, a, NULL, u,
                           (void *)shifted_block, bufs, NULL);
    for (int64_t r = 0; r < k; r++) wrong += seen[r] != 1;
    for (int j = 0; j < N; j++) {
      double want = 0;
      for (int64_t r = 0; r < k; r++) {
        double zr = 0;
        for (int i = 0; i < N; i++) zr += w[r * N + i] * g[i];
        want += (zr + 100) * w[r * N + j];
      }
      wrong += u[j] != want;
    }
  }
  int differ = repeatable();
  stop = 1;
  pthread_join(t, NULL);
  CHECK_EQ(wrong, 0);
  CHECK_EQ(differ, 0);
  printf("fused pool: %d calls of changing size on 2 to 5 threads, every row once, every u "
         "exact; a softmax product on 3 threads the same bits at every call of a parity\n",
         CALLS);
  return check_report("test_runtime_fused_pool");
}
