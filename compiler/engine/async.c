// The asynchronous rule for binary layers (docs/theory.md §5.3): one neuron at a time, each
// is set to the sign of lower energy, keeping its value on ties. E is evaluated for both
// signs of the neuron in every sample at once (a batch of 2B through the eval kernel); a
// step is one sweep over the neurons in order, and a sample has converged after a sweep
// without a change.
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "support/common.h"

DamrtStatus async_run(RunCtx *r, char *x, const uint8_t *clamp, const EngineArrays *arrays,
                      size_t *steps, uint8_t *converged, StrBuf *err) {
  Engine *e = r->e;
  const Network *net = e->net;
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    if (!l->eliminated && !l->binary) {
      sb_printf(err, "--method async needs binary layers (g = sign(x), e.g. L = sum(abs(x))), "
                "but layer '%s' is not\n", l->name);
      return DAMRT_E_ARGUMENT;
    }
  }
  KernelFn eval = e->kernels[KERNEL_EVAL];
  const Plan *ev = e->plans[KERNEL_EVAL];
  DamrtDtype dt = e->dtype;
  size_t batch = r->batch, dim = r->dim, elem = damrt_dtype_size(dt);
  // Two copies of every sample: the neuron at +1 and at -1.
  void **bufs = engine_alloc_buffers(e, ev, batch, 2, arrays);
  char *pair = engine_aligned_zeros(2 * batch * dim, elem);
  const void *energy = bufs[r->energy_buf];
  RunCtx pr = *r;
  pr.batch = 2 * batch;
  for (size_t k = 0; k < batch * dim; k++) engine_set(dt, x, k, engine_get(dt, x, k) < 0 ? -1 : 1);
  char *zeros = engine_aligned_zeros(batch * dim, elem);
  size_t *flips = xcalloc(batch, sizeof *flips);
  uint8_t *active = xmalloc(batch);
  for (size_t b = 0; b < batch; b++) active[b] = !converged[b];
  DamrtError derr = {0};
  DamrtStatus st = run_on_step(r, 0, 0, x, zeros, active, &derr);
  for (size_t step = 1; step <= r->opt->max_steps && st == DAMRT_OK; step++) {
    memset(flips, 0, batch * sizeof *flips);
    for (size_t j = 0; j < dim && st == DAMRT_OK; j++) {
      // A sweep of a large layer takes long: an interrupt is honoured between units.
      if (r->opt->cancel && *r->opt->cancel) {
        st = damrt_error_set(&derr, DAMRT_E_VALUE, "the run was interrupted in sweep %zu, at unit %zu",
                             step, j);
        break;
      }
      for (size_t b = 0; b < batch; b++)
        for (int sign = 0; sign < 2; sign++) {
          memcpy(pair + (2 * b + (size_t)sign) * dim * elem, x + b * dim * elem, dim * elem);
          engine_set(dt, pair, (2 * b + (size_t)sign) * dim + j, sign ? -1 : 1);
        }
      engine_copy_rows(&pr, pair, bufs, ev->state_buf, false);
      eval(bufs, e->params, (int64_t)(2 * batch));
      for (size_t b = 0; b < batch; b++) {
        if (converged[b] || (clamp && clamp[b * dim + j])) continue;
        double up = engine_get(dt, energy, 2 * b), down = engine_get(dt, energy, 2 * b + 1);
        double now = engine_get(dt, x, b * dim + j);
        double best = up < down ? 1 : down < up ? -1 : now;  // ties keep the neuron
        if (best != now) {
          engine_set(dt, x, b * dim + j, best);
          flips[b]++;
        }
      }
    }
    if (st != DAMRT_OK) break;
    bool all = true;
    for (size_t b = 0; b < batch; b++) {
      if (!converged[b] && flips[b] == 0) converged[b] = 1;
      if (!converged[b]) steps[b] = step;
      active[b] = !converged[b];
      all &= converged[b] != 0;
    }
    st = run_on_step(r, step, (double)step, x, zeros, active, &derr);
    if (all) break;
  }
  if (st != DAMRT_OK) sb_printf(err, "%s\n", derr.message);
  free(flips);
  free(active);
  free(zeros);
  free(pair);
  engine_free_buffers(ev, bufs);
  return st;
}
