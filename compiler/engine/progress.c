// The per-step hook of a run: the trace row (trace.c), a request to stop (an interrupt),
// and the progress report of a long run
// (--progress), at most ten times a second: step, t, E, samples converged, elapsed time and
// an estimate of what is left. The estimate extrapolates the largest scaled residual of the
// stop rule (docs/cli.md), which near a fixed point decays exponentially in the steps, to the
// tolerance; before that is possible, the step limit bounds it.
#include <math.h>
#include <stdlib.h>

#include "engine/engine_internal.h"
#include "support/common.h"

// The largest tau |dx/dt| / (1 + |x|) over the samples still moving.
static double largest_residual(const RunCtx *r, const void *x, const void *dxdt,
                               const uint8_t *active) {
  DamrtDtype dt = r->e->dtype;
  double rho = 0;
  for (size_t b = 0; b < r->batch; b++) {
    if (active && !active[b]) continue;
    for (size_t i = 0; i < r->dim; i++) {
      size_t k = b * r->dim + i;
      rho = fmax(rho, r->tau[i] * fabs(engine_get(dt, dxdt, k)) / (1 + fabs(engine_get(dt, x, k))));
    }
  }
  return rho;
}

static void report(RunCtx *r, size_t step, double t, const void *x, const void *dxdt,
                   const uint8_t *active, bool done) {
  const EngineRunOptions *opt = r->opt;
  double now = clock_seconds();
  EngineProgress p = {step, opt->max_steps, t, NAN, 0, r->batch, now - r->started, NAN, done};
  size_t first_active = r->batch;
  for (size_t b = 0; b < r->batch; b++) {
    if (active && active[b]) {
      if (first_active == r->batch) first_active = b;
    } else {
      p.converged++;
    }
  }
  if (r->eval_bufs && x) {
    engine_eval_rows(r, x);
    p.energy = engine_get(r->e->dtype, r->eval_bufs[r->energy_buf],
                          first_active < r->batch ? first_active : 0);
  }
  if (!done && step > 0) {
    double per_step = p.elapsed / (double)step;
    p.remaining = per_step * (double)(opt->max_steps - step);  // the step limit bounds it
    double rho = x && dxdt && !opt->async ? largest_residual(r, x, dxdt, active) : NAN;
    if (isnan(r->first_rho)) {
      r->first_rho = rho;
      r->first_rho_step = step;
    } else if (rho > 0 && rho < r->first_rho && opt->tol > 0) {
      double rate = log(r->first_rho / rho) / (double)(step - r->first_rho_step);
      double left = log(rho / opt->tol) / rate;  // steps, at the decay seen so far
      if (left >= 0) p.remaining = fmin(p.remaining, left * per_step);
    }
  }
  r->last_report = now;
  opt->progress(opt->progress_user, &p);
}

// The network's values at the states `x`, for EngineRunOptions.on_state.
static bool report_state(RunCtx *r, size_t step, double t, const void *x, const uint8_t *active) {
  const Engine *e = r->e;
  const Plan *ev = e->plans[KERNEL_EVAL];
  int n = e->net->nlayers;
  const void **views = xcalloc(5 * (size_t)n + 1, sizeof *views);
  engine_eval_rows(r, x);
  for (int a = 0; a < n; a++) {
    int xb = ev->state_buf[a], gb = plan_output_buf(ev, OUT_G, a), ub = plan_output_buf(ev, OUT_U, a);
    int ib = ev->input_buf[a], pb = plan_output_buf(ev, OUT_PART, a);
    views[a] = xb >= 0 ? r->eval_bufs[xb] : NULL;
    views[n + a] = gb >= 0 ? r->eval_bufs[gb] : NULL;
    views[2 * n + a] = ub >= 0 ? r->eval_bufs[ub] : NULL;
    views[3 * n + a] = ib >= 0 ? r->eval_bufs[ib] : NULL;
    views[4 * n + a] = pb >= 0 ? r->eval_bufs[pb] : NULL;
  }
  EngineState s = {step, r->batch, t, e->dtype, r->eval_bufs[r->energy_buf], views, views + n,
                   views + 2 * n, views + 3 * n, views + 4 * n, active};
  bool ok = r->opt->on_state(r->opt->state_user, &s);
  free(views);
  return ok;
}

DamrtStatus run_on_step(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                        const uint8_t *active, DamrtError *err) {
  RunCtx *r = ctx;
  if (r->opt->trace) {
    DamrtStatus st = trace_step(ctx, step, t, x, dxdt, active, err);
    if (st != DAMRT_OK) return st;
  }
  if (r->opt->on_state && !report_state(r, step, t, x, active))
    return damrt_error_set(err, DAMRT_E_VALUE, "stopped by the state monitor at step %zu", step);
  if (r->opt->cancel && *r->opt->cancel)
    return damrt_error_set(err, DAMRT_E_VALUE, "the run was interrupted at step %zu (t = %g)",
                           step, t);
  if (r->opt->progress && clock_seconds() - r->last_report >= 0.1)
    report(r, step, t, x, dxdt, active, false);
  return DAMRT_OK;
}

void progress_done(RunCtx *r, size_t step, const uint8_t *active) {
  if (r->opt->progress) report(r, step, NAN, NULL, NULL, active, true);
}
