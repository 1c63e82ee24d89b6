// damc bench: the median time of one call of each kernel on a batch, states filled with a
// fixed pattern of moderate size (so that no exp over- or underflows while timing).
#include <math.h>
#include <stdlib.h>

#include "engine/engine_internal.h"
#include "support/common.h"

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

bool engine_bench(Engine *e, size_t batch, int repeat, double *rhs_seconds, double *eval_seconds,
                  StrBuf *err) {
  if (batch == 0 || repeat <= 0) {
    sb_append(err, "the batch and the repeat count must be positive\n");
    return false;
  }
  if (!engine_kernel(e, KERNEL_EVAL, err)) return false;
  EngineArrays none = {NULL, NULL, NULL, NULL};
  double *times = xmalloc((size_t)repeat * sizeof *times);
  for (int k = 0; k < KERNEL_MODEL_KINDS; k++) {
    const Plan *plan = e->plans[k];
    void **bufs = engine_alloc_buffers(e, plan, batch, 1, &none, err);
    if (!bufs) {
      free(times);
      return false;
    }
    for (int i = 0; i < plan->nbufs; i++) {
      const PlanBuf *b = &plan->bufs[i];
      if (b->role != PB_STATE && b->role != PB_INPUT) continue;
      size_t n = (size_t)plan_size(plan, b->numel) * batch;
      for (size_t j = 0; j < n; j++) engine_set(e->dtype, bufs[i], j, 0.5 * sin(0.7 * (double)j + i));
    }
    e->kernels[k](bufs, e->params, (int64_t)batch);  // warm-up
    for (int r = 0; r < repeat; r++) {
      double t0 = clock_seconds();
      e->kernels[k](bufs, e->params, (int64_t)batch);
      times[r] = clock_seconds() - t0;
    }
    qsort(times, (size_t)repeat, sizeof *times, compare_doubles);
    *(k == KERNEL_RHS ? rhs_seconds : eval_seconds) = times[repeat / 2];
    engine_free_buffers(plan, bufs);
  }
  free(times);
  return true;
}
