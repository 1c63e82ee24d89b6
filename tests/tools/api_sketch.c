// The usage sketch of include/damc.h, compiled and run as written (extracted at build time
// into api_sketch.inc): Model B with K = 10 random +-1 memories of N = 784, retrieved from a
// cue that is memory 2 with an eighth of its signs flipped. Run in examples/.
#include <stdio.h>
#include <stdlib.h>

#include "damc.h"

enum { K = 10, N = 784 };

int main(void) {
  static double xi_data[K * N], v0[N];
  srand(3);
  for (int i = 0; i < K * N; i++) xi_data[i] = rand() & 1 ? 1.0 : -1.0;
  for (int i = 0; i < N; i++) v0[i] = xi_data[2 * N + i] * (i % 8 == 0 ? -1 : 1);
  {
#include "api_sketch.inc"
    if (err.status) {
      fprintf(stderr, "%s", err.message);
      damc_error_clear(&err);
      return 1;
    }
  }
  return 0;
}
