// A small program on damc's C API: store random +-1 patterns in Model B (a modern Hopfield
// network), start from a corrupted copy of one, run the dynamics, and report how much of
// the pattern came back.
//
//   retrieve MODEL_B.dam          (exit status 0 when the pattern is retrieved)
#include <stdio.h>
#include <stdlib.h>

#include "damc.h"

enum { K = 20 };

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s model_b.dam\n", argv[0]);
    return 2;
  }
  DamcError err = {0};
  DamcModel *m = damc_model_from_file(argv[1], &err);
  if (!m) {
    fprintf(stderr, "%s", err.message);
    damc_error_clear(&err);
    return 1;
  }
  size_t n = damc_layer_size(m, 0);  // v has a fixed size (dim N = 784)
  double *xi = malloc(K * n * sizeof *xi), *v = malloc(n * sizeof *v);
  srand(7);
  for (size_t i = 0; i < K * n; i++) xi[i] = rand() & 1 ? 1.0 : -1.0;
  // Pattern 3, with a quarter of its signs flipped.
  for (size_t i = 0; i < n; i++) v[i] = xi[3 * n + i] * (i % 4 == 0 ? -1 : 1);
  // The rows of Xi are the memories; the model reads xi in place until it is freed.
  DamcArray memories = {2, {K, n}, xi, DAMC_F64};
  int ok = damc_bind_weight(m, "Xi", &memories, NULL, &err) &&
           damc_set_param(m, "beta", 0.05, &err) && damc_compile(m, DAMC_F64, &err);
  DamcResults *r = NULL;
  if (ok) {
    DamcArray states[2] = {{1, {n}, v, DAMC_F64}, {0, {0}, NULL, 0}};
    DamcBatch batch = {states, NULL, NULL};
    // |h| grows to about n here, so the stopping tolerance on dx/dt is set accordingly.
    DamcRunOptions options = {.tol = 1e-3};
    r = damc_run(m, &batch, &options, &err);
  }
  if (!r) {
    fprintf(stderr, "%s", err.message ? err.message : "failed\n");
    damc_error_clear(&err);
    damc_model_free(m);
    return 1;
  }
  size_t count;
  const double *x = damc_result(r, "x_v", &count);
  double overlap = 0;
  for (size_t i = 0; i < n; i++) overlap += (x[i] > 0 ? 1 : -1) * (xi[3 * n + i] > 0 ? 1 : -1);
  overlap /= (double)n;
  printf("overlap with the stored pattern: %.4f (start: 0.5), E = %.6g, steps = %g\n", overlap,
         damc_result(r, "E", NULL)[0], damc_result(r, "steps", NULL)[0]);
  damc_results_free(r);
  damc_model_free(m);
  free(xi);
  free(v);
  return overlap > 0.99 ? 0 : 1;
}
