// The machine's ceilings for `make bench`'s roofline (bench/bench.py), measured in the same
// run as the kernels: the OpenBLAS sgemm peak (square products, 1 and 2 threads, the best of
// two sizes) and the read bandwidth (a vectorised sum, 1 and 2 threads) at working sets that
// fit L2, L3 and only DRAM. Prints "key value" lines. About 3 seconds.
#define _GNU_SOURCE
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_gflops(int n, int threads) {
  openblas_set_num_threads(threads);
  size_t nn = (size_t)n * (size_t)n;
  float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
  for (size_t i = 0; i < nn; i++) {
    a[i] = (float)(i % 13) * 0.01f;
    b[i] = (float)(i % 7) * 0.02f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
  double best = 1e30, total = 0;
  for (int r = 0; r < 40 && (total < 0.4 || r < 3); r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    double t = now() - t0;
    total += t;
    if (t < best) best = t;
  }
  free(a);
  free(b);
  free(c);
  return 2.0 * (double)nn * n / best * 1e-9;
}

typedef float v16 __attribute__((vector_size(64)));
typedef struct {
  const v16 *p;
  size_t nv;
  int reps;
  pthread_barrier_t *bar;
  double t;
  float sink;
} Job;

static void *reader(void *arg) {
  Job *j = arg;
  v16 r0 = {0}, r1 = {0}, r2 = {0}, r3 = {0};
  double best = 1e30;
  for (int it = 0; it < 9; it++) {
    pthread_barrier_wait(j->bar);
    double t0 = now();
    for (int rep = 0; rep < j->reps; rep++) {
      for (size_t i = 0; i + 4 <= j->nv; i += 4) {
        r0 += j->p[i];
        r1 += j->p[i + 1];
        r2 += j->p[i + 2];
        r3 += j->p[i + 3];
      }
      __asm__ volatile("" : "+x"(r0), "+x"(r1), "+x"(r2), "+x"(r3));
    }
    pthread_barrier_wait(j->bar);
    double t = now() - t0;
    if (t < best) best = t;
  }
  v16 r = r0 + r1 + r2 + r3;
  j->sink = r[0];
  j->t = best;
  return NULL;
}

// GB/s reading `bytes` (split between the threads) over and over.
static double read_bw(size_t bytes, int threads) {
  size_t nv = bytes / 64;
  v16 *p = aligned_alloc(64, nv * 64);
  for (size_t i = 0; i < nv; i++) p[i] = (v16){1.f};
  int reps = (int)((256u << 20) / bytes);
  if (reps < 1) reps = 1;
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)threads);
  pthread_t th[2];
  Job jobs[2];
  for (int t = 0; t < threads; t++) {
    jobs[t] = (Job){p + nv * (size_t)t / (size_t)threads, nv / (size_t)threads, reps, &bar, 0, 0};
    pthread_create(&th[t], NULL, reader, &jobs[t]);
  }
  double tmax = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(th[t], NULL);
    if (jobs[t].t > tmax) tmax = jobs[t].t;
  }
  pthread_barrier_destroy(&bar);
  free(p);
  return (double)(nv / (size_t)threads * (size_t)threads) * 64.0 * reps / tmax * 1e-9;
}

int main(int argc, char **argv) {
  int quick = argc > 1 && !strcmp(argv[1], "--quick");
  printf("openblas_core %s\n", openblas_get_corename());
  for (int th = 1; th <= 2; th++) {
    double best = 0;
    for (int n = 1024; n <= (quick ? 1024 : 2048); n *= 2) {
      double g = sgemm_gflops(n, th);
      if (g > best) best = g;
    }
    printf("sgemm_t%d_gflops %.1f\n", th, best);
  }
  struct { const char *name; size_t bytes; } ws[] = {
      {"L2", 384u << 10}, {"L3", 8u << 20}, {"DRAM", quick ? 128u << 20 : 384u << 20}};
  for (int w = 0; w < 3; w++)
    for (int th = 1; th <= 2; th++)
      printf("read_%s_t%d_GBs %.1f\n", ws[w].name, th, read_bw(ws[w].bytes, th));
  return 0;
}
