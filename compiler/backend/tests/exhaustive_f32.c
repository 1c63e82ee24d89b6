// Exhaustive check of the f32 math functions: every one of the 2^32 float inputs through
// the JIT'd kernel, against the reference of math_test.h, on two threads. Prints, per
// function, the largest ulp distance, how many inputs reach it and the first of them, and
// the count at 0, 1, 2, 3 and >= 4 ulp. Not a ctest test: it takes about 1 minute per
// libm function and 5 to 20 per long double reference on the 2-vCPU host. Usage:
//   exhaustive_f32 [name,name,...]     (default: every function)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_test.h"
#include "math_test.h"

enum { CHUNK = 1 << 16, N_HIST = 5 };

typedef void (*KernelF32)(float *, const float *, int64_t);

typedef struct {
  KernelF32 kernel;
  float (*ref)(float);
  uint64_t begin, end;  // the bit patterns [begin, end)
  int64_t worst;
  uint64_t n_worst;
  float worst_x;
  uint64_t hist[N_HIST];
} Job;

static void *run_job(void *arg) {
  Job *job = arg;
  float *x = malloc(sizeof *x * CHUNK), *y = malloc(sizeof *y * CHUNK);
  for (uint64_t base = job->begin; base < job->end; base += CHUNK) {
    for (int i = 0; i < CHUNK; i++) {
      uint32_t u = (uint32_t)(base + (uint64_t)i);
      memcpy(&x[i], &u, sizeof u);
    }
    job->kernel(y, x, CHUNK);
    for (int i = 0; i < CHUNK; i++) {
      int64_t d = ulp_diff_f32(y[i], job->ref(x[i]));
      job->hist[d < N_HIST - 1 ? d : N_HIST - 1]++;
      if (d > job->worst) {
        job->worst = d;
        job->n_worst = 0;
        job->worst_x = x[i];
      }
      job->n_worst += d == job->worst;
    }
  }
  free(x);
  free(y);
  return NULL;
}

int main(int argc, char **argv) {
  Jit *jit = test_jit_new();
  StrBuf err = {0};
  JitModule *m = jit_module_new(jit, "exhaustive");
  math_kernels_build(m, IRB_F32);
  if (!jit_module_optimize(jit, m, &err) || !jit_add_module_take(jit, m, &err)) {
    fprintf(stderr, "%s", sb_str(&err));
    return 1;
  }
  char want[512];
  snprintf(want, sizeof want, ",%s,", argc > 1 ? argv[1] : "");
  for (IrbMath fn = 0; fn < IRB_MATH_COUNT; fn++) {
    char key[64], name[64];
    snprintf(key, sizeof key, ",%s,", irb_math_name(fn));
    if (argc > 1 && !strstr(want, key)) continue;
    math_kernel_name(name, sizeof name, fn, IRB_F32);
    KernelF32 kernel = (KernelF32)jit_lookup(jit, name, &err);
    if (!kernel) {
      fprintf(stderr, "%s", sb_str(&err));
      return 1;
    }
    Job jobs[2] = {{kernel, math_refs[fn].ref32, 0, 1ull << 31, 0, 0, 0, {0}},
                   {kernel, math_refs[fn].ref32, 1ull << 31, 1ull << 32, 0, 0, 0, {0}}};
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) pthread_create(&threads[t], NULL, run_job, &jobs[t]);
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    Job *w = jobs[1].worst > jobs[0].worst ? &jobs[1] : &jobs[0];
    uint64_t n_worst = w->n_worst + (jobs[0].worst == jobs[1].worst ? jobs[1].n_worst : 0);
    printf("%-9s max %lld ulp (%llu inputs, first x = %a); at 0 1 2 3 >=4 ulp:",
           irb_math_name(fn), (long long)w->worst, (unsigned long long)n_worst, w->worst_x);
    for (int h = 0; h < N_HIST; h++)
      printf(" %llu", (unsigned long long)(jobs[0].hist[h] + jobs[1].hist[h]));
    printf("\n");
    fflush(stdout);
  }
  jit_free(jit, &err);
  sb_free(&err);
  return 0;
}
