// damc run: the glue between the compiled kernels and the integrators of the runtime
// (damrt_integrate.h) or the discrete rule (async.c). It lays out the integrated layers as
// one row per sample, holds clamped neurons, names the layer of a non-finite value, and
// reads the final values through the eval kernel.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "support/common.h"

void engine_copy_rows(const RunCtx *r, const void *rows, void **bufs, const int *layer_buf,
                      bool to_rows) {
  size_t elem = damrt_dtype_size(r->e->dtype);
  for (int a = 0; a < r->e->net->nlayers; a++) {
    if (r->offset[a] < 0 || layer_buf[a] < 0) continue;
    size_t n = engine_layer_size(r->e, a);
    char *layer = bufs[layer_buf[a]];
    for (size_t b = 0; b < r->batch; b++) {
      char *row = (char *)rows + (b * r->dim + (size_t)r->offset[a]) * elem;
      if (to_rows) memcpy(row, layer + b * n * elem, n * elem);
      else memcpy(layer + b * n * elem, row, n * elem);
    }
  }
}

void engine_eval_rows(const RunCtx *r, const void *rows) {
  const Engine *e = r->e;
  engine_copy_rows(r, rows, r->eval_bufs, e->plans[KERNEL_EVAL]->state_buf, false);
  e->kernels[KERNEL_EVAL](r->eval_bufs, e->params, (int64_t)r->batch);
}

void engine_eval_states(const RunCtx *r, EngineArray *states) {
  const Engine *e = r->e;
  for (int a = 0; a < e->net->nlayers; a++)
    states[a] = r->offset[a] < 0 ? (EngineArray){0}
                                 : (EngineArray){e->dtype, 2, {r->batch, engine_layer_size(e, a)},
                                                 r->eval_bufs[e->plans[KERNEL_EVAL]->state_buf[a]]};
}

static DamrtStatus run_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  (void)err;
  RunCtx *r = ctx;
  const Engine *e = r->e;
  engine_copy_rows(r, x, r->rhs_bufs, e->plans[KERNEL_RHS]->state_buf, false);
  e->kernels[KERNEL_RHS](r->rhs_bufs, e->params, (int64_t)r->batch);
  engine_copy_rows(r, dxdt, r->rhs_bufs, r->dxdt_buf, true);
  return DAMRT_OK;
}

static DamrtTensor *per_sample(const double *v, size_t batch, bool batched) {
  size_t shape[1] = {batch};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, batched ? 1 : 0, shape, NULL);
  memcpy(t->data, v, (batched ? batch : 1) * sizeof(double));
  return t;
}

// Checks that every clamp mask holds 0 and 1 only (a mask with other values is most likely
// a state passed where the mask belongs); engine_batch checked that its layer has a state.
static bool check_masks(const Engine *e, const EngineArrays *arrays, StrBuf *err) {
  for (int a = 0; arrays->clamp && a < e->net->nlayers; a++) {
    const EngineArray *c = &arrays->clamp[a];
    if (!c->data) continue;
    size_t n = c->rank == 2 ? c->shape[0] * c->shape[1] : c->shape[0];
    for (size_t k = 0; k < n; k++) {
      double v = engine_get(c->dtype, c->data, k);
      if (v == 0 || v == 1) continue;
      sb_printf(err, "clamp of layer '%s' holds %.17g at index %zu: a mask holds 0 (free) and 1 "
                "(clamped) only; was a state given as the mask?\n", e->net->layers[a].name, v,
                k);
      return false;
    }
  }
  return true;
}

// 1 for each coordinate of a row held fixed by the clamp masks ([batch][dim]), or NULL.
static uint8_t *clamp_mask(const RunCtx *r, const EngineArrays *arrays) {
  uint8_t *clamp = NULL;
  for (int a = 0; a < r->e->net->nlayers; a++) {
    const EngineArray *c = arrays->clamp ? &arrays->clamp[a] : NULL;
    if (r->offset[a] < 0 || !c || !c->data) continue;
    size_t n = engine_layer_size(r->e, a);
    if (!clamp) clamp = xcalloc(r->batch * r->dim + 1, 1);
    for (size_t b = 0; b < r->batch; b++)
      for (size_t k = 0; k < n; k++)
        clamp[b * r->dim + (size_t)r->offset[a] + k] =
            engine_get(c->dtype, c->data, (c->rank == 2 ? b * n : 0) + k) == 1;
  }
  return clamp;
}

// The layer of coordinate `k` of a sample's row, and the neuron within it.
static const char *layer_of(const RunCtx *r, size_t k, size_t *neuron) {
  const Network *net = r->e->net;
  int layer = 0;
  for (int a = 0; a < net->nlayers; a++)
    if (r->offset[a] >= 0 && (size_t)r->offset[a] <= k) layer = a;
  *neuron = k - (size_t)r->offset[layer];
  return net->layers[layer].name;
}

// The message of a run that failed from the states `arrays`: a non-finite value named by its
// layer and neuron.
static void report_failure(const RunCtx *r, const DamrtRunResult *res, const DamrtError *derr,
                           const EngineArrays *arrays, StrBuf *err) {
  if (!res->nonfinite.found) {
    sb_printf(err, "%s\n", derr->message);
    return;
  }
  const DamrtNonfinite *nf = &res->nonfinite;
  size_t neuron;
  const char *layer = layer_of(r, nf->coordinate, &neuron);
  NumText t, v;
  bool f32 = r->e->dtype == DAMRT_F32;
  if (nf->step == 0 && nf->in_dxdt) {
    sb_printf(err, "dx/dt of layer '%s' is %g at t = 0 (sample %zu, neuron %zu) although the "
              "initial state is finite", layer, nf->value, nf->sample, neuron);
    // A param, an input or an initial value makes it so, unless float32 alone does.
    char name[80];
    snprintf(name, sizeof name, "dxdt_%s", layer);
    StrBuf hint = {0};
    if (engine_precision_hint(r->e, KERNEL_EVAL, arrays, nf->sample, name, neuron, &hint) == F64_FINITE)
      sb_append(err, sb_str(&hint));
    else
      sb_append(err, ": a param, an input or an initial value is bad there");
    sb_putc(err, '\n');
    sb_free(&hint);
  } else if (nf->step == 0)
    sb_printf(err, "the initial state of layer '%s' is %g (sample %zu, neuron %zu)\n", layer,
              nf->value, nf->sample, neuron);
  else {
    // inf: the state grew without bound (or overflowed the float type); NaN: a function was
    // taken outside its domain (log, sqrt of a negative number) or inf - inf.
    const char *const *say = r->e->phrases;
    sb_printf(err, "the run %s: layer '%s', sample %zu, neuron %zu is %s at step %zu (t = %s): ",
              isnan(nf->value) ? "failed" : "diverged", layer, nf->sample, neuron,
              number_text(nf->value, &v), nf->step, number_text(nf->t, &t));
    // float64 is no remedy for float64 kernels
    if (isnan(nf->value) && f32)
      sb_printf(err, "a function was evaluated outside its domain (a log or a square root of a "
                "negative number, or inf - inf); a smaller %s or %s may avoid it\n",
                say[PHRASE_DT], say[PHRASE_F64]);
    else if (isnan(nf->value))
      sb_printf(err, "a function was evaluated outside its domain (a log or a square root of a "
                "negative number, or inf - inf); a smaller %s may avoid it\n", say[PHRASE_DT]);
    else if (f32)
      sb_printf(err, "the state grew without bound (is E bounded below? %s says) or beyond the "
                "float type (%s)\n", say[PHRASE_CHECK], say[PHRASE_F64]);
    else
      sb_printf(err, "the state grew without bound (is E bounded below? %s says)\n",
                say[PHRASE_CHECK]);
  }
}

// The warning of a run in which some samples did not converge: how many, where the largest
// residual is, and what to change.
// iterate's samples stopped in a cycle of period 2 get their own warning: more steps would
// not help them.
static void report_unconverged(const RunCtx *r, const DamrtRunResult *res, const size_t *steps,
                               EngineResults *out) {
  if (res->unconverged == 0 || r->opt->tol <= 0) return;
  size_t neuron;
  NumText rho, tol;
  const char *const *say = r->e->phrases;
  if (res->cycled > 0) {
    const DamrtResidual *c = &res->cycle;
    const char *layer = layer_of(r, c->coordinate, &neuron);
    sb_printf(&out->warning, "%zu of %zu samples did not converge: the iteration alternates "
              "between two states (sample %zu: after step %zu the state is back within tol = %s "
              "of the one two steps before, while a step changes layer '%s', neuron %zu by "
              "tau |dx/dt| / (1 + |x|) = %s); x <- u of coupled integrated layers overshoots, "
              "so more steps will not help: eliminate the hidden layer (tau = 0 in the model; "
              "%s shows the result) or use %s",
              res->cycled, r->batch, c->sample, steps[c->sample], number_text(r->opt->tol, &tol),
              layer, neuron, number_text(c->value, &rho), say[PHRASE_EXPLAIN], say[PHRASE_DOPRI5]);
  }
  if (res->unconverged == res->cycled) return;
  const DamrtResidual *w = &res->worst;
  const char *layer = layer_of(r, w->coordinate, &neuron);
  sb_printf(&out->warning, "%s%zu of %zu samples did not converge in %zu steps; the largest "
            "residual is in layer '%s' (sample %zu, neuron %zu): tau |dx/dt| / (1 + |x|) = %s "
            "> tol = %s; raise %s, or %s%s",
            out->warning.len ? "\n" : "", res->unconverged - res->cycled, r->batch, res->steps,
            layer, w->sample, neuron, number_text(w->value, &rho), number_text(r->opt->tol, &tol),
            say[PHRASE_MAX_STEPS], say[PHRASE_TOL],
            // dopri5's own error (rtol) sets how small a change it can resolve
            r->opt->method == DAMRT_DOPRI5 ? " (with dopri5, keep tol >= 30 rtol)" : "");
}

// The final values: x and g of every layer, E, and per sample steps and converged.
static void final_results(RunCtx *r, const char *x, const size_t *steps,
                          const uint8_t *converged, EngineResults *out) {
  const Engine *e = r->e;
  const Plan *ev = e->plans[KERNEL_EVAL];
  engine_eval_rows(r, x);
  char name[80];
  for (int a = 0; a < e->net->nlayers; a++) {
    int buf = ev->state_buf[a];
    snprintf(name, sizeof name, "x_%s", e->net->layers[a].name);
    engine_add_buffer_result(e, out, name, ev, buf, r->eval_bufs[buf], r->batch, r->batched);
    buf = plan_output_buf(ev, OUT_G, a);
    snprintf(name, sizeof name, "g_%s", e->net->layers[a].name);
    engine_add_buffer_result(e, out, name, ev, buf, r->eval_bufs[buf], r->batch, r->batched);
  }
  engine_add_buffer_result(e, out, "E", ev, r->energy_buf, r->eval_bufs[r->energy_buf], r->batch,
                           r->batched);
  double *v = xmalloc(r->batch * sizeof *v);
  for (size_t b = 0; b < r->batch; b++) v[b] = (double)steps[b];
  engine_add_result(out, "steps", per_sample(v, r->batch, r->batched));
  for (size_t b = 0; b < r->batch; b++) v[b] = converged[b];
  engine_add_result(out, "converged", per_sample(v, r->batch, r->batched));
  free(v);
}

// Compiles the eval kernel (the final values, the trace and the async rule's energies need
// it; a run without those starts stepping before it is compiled) and gives it buffers.
static bool attach_eval(RunCtx *r, const EngineArrays *arrays, StrBuf *err) {
  Engine *e = r->e;
  if (r->eval_bufs) return true;
  if (!engine_kernel(e, KERNEL_EVAL, err)) return false;
  const Plan *ev = e->plans[KERNEL_EVAL];
  r->energy_buf = plan_output_buf(ev, OUT_ENERGY, -1);
  for (int a = 0; a < e->net->nlayers; a++) r->part_buf[a] = plan_output_buf(ev, OUT_PART, a);
  r->eval_bufs = engine_alloc_buffers(e, ev, r->batch, 1, arrays, err);
  return r->eval_bufs != NULL;
}

bool engine_run(Engine *e, const EngineArrays *arrays, const EngineRunOptions *opt,
                EngineResults *out, StrBuf *err) {
  const Network *net = e->net;
  RunCtx r = {e, 0, 0, false, NULL, NULL, NULL, -1, NULL, NULL, opt, NULL,
              clock_seconds(), clock_seconds(), NAN, 0, SIZE_MAX, {0}, arrays->input};
  if (!engine_batch(e, arrays, &r.batch, &r.batched, err) || !check_masks(e, arrays, err))
    return false;
  // The final values need the eval kernel: compiled on another thread meanwhile (the step
  // kernel and the first steps do not wait for it), unless already compiled or cached.
  engine_prefetch(e, KERNEL_EVAL);
  if (!engine_kernel(e, KERNEL_RHS, err)) return false;
  const Plan *rhs = e->plans[KERNEL_RHS];
  r.offset = xmalloc(((size_t)net->nlayers + 1) * sizeof *r.offset);
  r.dxdt_buf = xmalloc(((size_t)net->nlayers + 1) * sizeof *r.dxdt_buf);
  r.part_buf = xmalloc(((size_t)net->nlayers + 1) * sizeof *r.part_buf);
  double min_tau = INFINITY;
  for (int a = 0; a < net->nlayers; a++) {
    r.dxdt_buf[a] = plan_output_buf(rhs, OUT_DXDT, a);
    r.offset[a] = net->layers[a].eliminated ? -1 : (int)r.dim;
    if (!net->layers[a].eliminated) {
      r.dim += engine_layer_size(e, a);
      min_tau = fmin(min_tau, e->tau[a]);
    }
  }
  bool ok = false;
  if (r.dim == 0) {
    sb_printf(err, "every layer is eliminated (tau = 0): there is nothing to integrate; use %s\n",
              e->phrases[PHRASE_EVAL]);
    goto done;
  }
  size_t elem = damrt_dtype_size(e->dtype);
  // The states' buffers first: when they fit, so does x, the same values in rows.
  if (!(r.rhs_bufs = engine_alloc_buffers(e, rhs, r.batch, 1, arrays, err))) goto done;
  char *x = engine_aligned_zeros(r.batch * r.dim, elem);
  engine_copy_rows(&r, x, r.rhs_bufs, rhs->state_buf, true);  // the initial states, as converted
  double *tau = xmalloc((r.dim + 1) * sizeof *tau);
  for (int a = 0; a < net->nlayers; a++)
    for (size_t k = 0; r.offset[a] >= 0 && k < engine_layer_size(e, a); k++)
      tau[(size_t)r.offset[a] + k] = e->tau[a];
  r.tau = tau;
  uint8_t *clamp = clamp_mask(&r, arrays);
  DamrtSystem sys = {run_rhs, &r, r.batch, r.dim, e->dtype, tau};
  // iterate: t counts the updates.
  double dt = opt->method == DAMRT_ITERATE ? 1 : opt->dt > 0 ? opt->dt : 0.1 * min_tau;
  DamrtRunOptions ro = {opt->method, dt, 0, opt->rtol,
                        opt->atol, opt->max_steps, opt->tol, clamp, opt->noise_T, opt->seed,
                        opt->trace || opt->progress || opt->cancel || opt->on_state ? run_on_step : NULL,
                        &r};
  size_t *steps = xcalloc(r.batch, sizeof *steps);
  uint8_t *converged = xcalloc(r.batch, 1);
  DamrtRunResult res = {0, 0, steps, NULL, converged, {0}};
  DamrtError derr = {0};
  size_t before = err->len;
  DamrtStatus st = DAMRT_OK;
  if ((opt->trace || opt->async || opt->progress || opt->on_state) && !attach_eval(&r, arrays, err))
    st = DAMRT_E_VALUE;
  else {
    if (opt->trace) trace_header(&r);
    st = opt->async ? async_run(&r, x, clamp, arrays, steps, converged, err)
                    : damrt_integrate(&sys, &ro, x, &res, &derr);
  }
  if (st != DAMRT_OK && err->len == before) report_failure(&r, &res, &derr, arrays, err);
  ok = st == DAMRT_OK && attach_eval(&r, arrays, err);
  size_t first = out->count;
  if (ok) final_results(&r, x, steps, converged, out);
  if (opt->progress) {
    for (size_t b = 0; b < r.batch; b++) converged[b] = !converged[b];  // as `active`
    progress_done(&r, opt->async ? steps[0] : res.steps, converged);
    for (size_t b = 0; b < r.batch; b++) converged[b] = !converged[b];
  }
  if (ok && !opt->async) {
    report_unconverged(&r, &res, steps, out);
    out->cycled = res.cycled;
  }
  size_t still = 0;
  for (size_t b = 0; opt->async && b < r.batch; b++) still += !converged[b];
  if (ok && still && opt->noise_T == 0)  // with noise, units keep changing by design
    sb_printf(&out->warning, "%zu of %zu samples still changed in sweep %zu; raise %s", still,
              r.batch, opt->max_steps, e->phrases[PHRASE_MAX_STEPS]);
  // The states stayed finite (or the run failed above), but E at some traced step did not:
  // the trace shows it, and it must not pass unremarked.
  if (ok && r.trace_bad_E_step != SIZE_MAX)
    sb_printf(&out->warning, "%sE is not finite at step %zu of the trace, though the states are%s",
              out->warning.len ? "\n" : "", r.trace_bad_E_step, sb_str(&r.trace_bad_E_hint));
  if (ok) {  // the final values, at the final states
    EngineArray *states = xcalloc((size_t)net->nlayers + 1, sizeof *states);
    engine_eval_states(&r, states);
    EngineArrays at = {states, arrays->input, NULL, NULL};
    ok = engine_check_results(e, KERNEL_EVAL, out, first, r.batched, &at, err);
    free(states);
  }
  sb_free(&r.trace_bad_E_hint);
  free(steps);
  free(converged);
  free(clamp);
  free(tau);
  free(x);
  engine_free_buffers(rhs, r.rhs_bufs);
  if (r.eval_bufs) engine_free_buffers(e->plans[KERNEL_EVAL], r.eval_bufs);
done:
  free(r.offset);
  free(r.dxdt_buf);
  free(r.part_buf);
  return ok;
}
