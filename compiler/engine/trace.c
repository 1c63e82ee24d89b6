// The CSV trace of a run (--trace): one row per accepted step and sample, with the energy,
// each layer's part of it and each layer's largest |dx/dt|, so a user can plot E(t) and see
// which layer is still moving.
#include <math.h>
#include <stdlib.h>

#include "engine/engine_internal.h"
#include "support/common.h"

void trace_header(const RunCtx *r) {
  FILE *f = r->opt->trace;
  const Network *net = r->e->net;
  fprintf(f, "step,%st,E", r->batched ? "sample," : "");
  for (int a = 0; a < net->nlayers; a++)
    fprintf(f, ",E_%s,max|dxdt_%s|", net->layers[a].name, net->layers[a].name);
  fputc('\n', f);
}

DamrtStatus trace_step(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                       const uint8_t *active, DamrtError *err) {
  (void)active;
  RunCtx *r = ctx;
  const Engine *e = r->e;
  FILE *f = r->opt->trace;
  engine_eval_rows(r, x);
  size_t elem = damrt_dtype_size(e->dtype);
  for (size_t b = 0; b < r->batch; b++) {
    fprintf(f, "%zu,", step);
    if (r->batched) fprintf(f, "%zu,", b);
    double energy = engine_get(e->dtype, r->eval_bufs[r->energy_buf], b);
    if (!isfinite(energy) && r->trace_bad_E_step == SIZE_MAX) {
      r->trace_bad_E_step = step;
      EngineArray *states = xcalloc((size_t)e->net->nlayers + 1, sizeof *states);
      engine_eval_states(r, states);
      EngineArrays at = {states, r->input, NULL, NULL};
      engine_precision_hint(e, KERNEL_EVAL, &at, b, "E", 0, &r->trace_bad_E_hint);
      free(states);
    }
    fprintf(f, "%.17g,%.17g", t, energy);
    for (int a = 0; a < e->net->nlayers; a++) {
      fprintf(f, ",%.17g", engine_get(e->dtype, r->eval_bufs[r->part_buf[a]], b));
      double mx = 0;
      if (r->offset[a] >= 0) {
        size_t n = engine_layer_size(e, a);
        const char *row = (const char *)dxdt + (b * r->dim + (size_t)r->offset[a]) * elem;
        for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(engine_get(e->dtype, row, k)));
      }
      fprintf(f, ",%.17g", mx);
    }
    fputc('\n', f);
  }
  // A write that failed (a full disk) stops the run; the writer's owner names the reason.
  if (ferror(f)) return damrt_error_set(err, DAMRT_E_IO, "the trace could not be written");
  return DAMRT_OK;
}
