// damrt_blas_rest (src/kernel_abi.c): OpenBLAS starts its worker threads when it is loaded and
// keeps them polling after each threaded call; damc stops them before it compiles or reads
// files, so that they do not take the cores. Counted in /proc/self/task: after a product big
// enough for two threads the process has more than one thread, after damrt_blas_rest it has
// one again, and the next threaded product starts them again and still gives the same result.
#define _DEFAULT_SOURCE  // sysconf
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "damrt_kernel.h"

static int threads_now(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

enum { N = 512 };

// C = A B with A = B = all ones: every element is N.
static int product_right(float *a, float *c) {
  damrt_kernel_gemm_f32(0, 0, N, N, N, a, N, a, N, c, N);
  int wrong = 0;
  for (int i = 0; i < N * N; i++) wrong += c[i] != (float)N;
  return wrong;
}

int main(void) {
  float *a = malloc(sizeof(float) * N * N), *c = malloc(sizeof(float) * N * N);
  for (int i = 0; i < N * N; i++) a[i] = 1;
  damrt_set_threads(2);
  CHECK_EQ(product_right(a, c), 0);
  int busy = threads_now();
  damrt_blas_rest();
  int rested = threads_now();
  CHECK_EQ(product_right(a, c), 0);
  int again = threads_now();
  printf("blas rest: %d threads after a product, %d after damrt_blas_rest, %d after the next\n",
         busy, rested, again);
  // On one processor OpenBLAS starts no thread: then only the count after the rest is checked.
  if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
    CHECK(busy >= 2);
    CHECK_EQ(again, busy);
  }
  CHECK_EQ(rested, 1);
  free(a);
  free(c);
  return check_report("runtime/blas_rest");
}
