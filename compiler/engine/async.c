// The asynchronous rule for binary layers (docs/theory.md §5.3): one unit at a time, each is
// set to the sign of lower energy (ties keep it), or with noise T > 0 drawn by the heat-bath
// (Glauber) rule P(+1) = 1 / (1 + exp((E(+1) - E(-1)) / T)). A step is one sweep over the
// units, in a random permutation per sweep (or in order); a sample has converged after a
// sweep without a change.
//
// Two ways to find the energy change of a flip, the same rule:
//  - fast, O(K) a unit (Network.async_fast): each eliminated layer's state x_h = u_h is kept
//    and moved by D W[:, i] when unit i flips by D; the change of E is -sum_h (L_h(x_h + d_h)
//    - L_h(x_h)) - D I_i, the first part from the KERNEL_FLIP kernel (derived from each
//    hidden layer's Lagrangian in a form that keeps its precision);
//  - slow, for every other model: E evaluated for both signs of the unit in every sample at
//    once (a batch of 2B through the eval kernel), O(N K) a unit.
// For tests only, DAMC_ASYNC_PATH=slow in the environment forces the slow path, and
// DAMC_ASYNC_PATH=fast makes a model the fast path does not apply to an error (with why).
//
// After every sweep E is evaluated afresh: it must equal E before the sweep plus the sum of
// the accepted changes, and at T = 0 not exceed E before the sweep, both within rounding; a
// violation fails the run. The fast path also restarts its kept states from that evaluation,
// so rounding does not accumulate over sweeps.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "support/common.h"
#include "support/rng.h"


// The order of a sweep: 0..n-1, or a Fisher-Yates shuffle (for k = n-1 down to 1, swap k
// with next() mod (k+1)) of it drawn from `state`.
static void sweep_order(size_t *order, size_t n, bool sequential, Rng *state) {
  for (size_t k = 0; k < n; k++) order[k] = k;
  if (sequential) return;
  for (size_t k = n - 1; k > 0 && n > 1; k--) {
    size_t j = rng_below(state, k + 1);
    size_t t = order[k];
    order[k] = order[j];
    order[j] = t;
  }
}

// The new value of a unit at `now` given diff = E(+1) - E(-1).
static double decide(double now, double diff, double T, Rng *noise) {
  if (T > 0) {
    double p_up = 1 / (1 + exp(diff / T));
    return rng_uniform(noise) < p_up ? 1 : -1;
  }
  return diff < 0 ? 1 : diff > 0 ? -1 : now;  // ties (and NaN) keep the unit
}

typedef struct {
  RunCtx *r;
  const uint8_t *clamp;
  uint8_t *converged;
  size_t *flips;      // [batch]: units changed in this sweep
  double *sum_dE;     // [batch]: the changes of E accepted in this sweep
  double *sum_abs;    // [batch]: their magnitudes
  double *E0;         // [batch]: E before the sweep
  Rng *noise;         // [batch]: each sample's noise stream
} Sweep;

// The fast path's state: the flip kernel's buffers, and per coupling the weight's column
// (or row) of every unit, contiguous.
typedef struct {
  const Plan *plan;
  KernelFn kernel;
  void **bufs;
  int *x_buf, *d_buf, *out_buf;  // per layer (eliminated ones), or -1
  char **moves;                  // per coupling: [n_A][n_h] in the kernels' dtype
  const char **input;            // per layer: the eval buffers' input [B][n_A], or NULL
  int *unit_layer;               // per coordinate of a row
  size_t *unit_index;
} Fast;

static size_t layer_n(const Engine *e, int a) { return engine_layer_size(e, a); }

// Copies x_h = u_h of every eliminated layer from the eval buffers into the flip kernel's.
static void fast_refresh(Fast *f, const RunCtx *r) {
  const Engine *e = r->e;
  const Plan *ev = e->plans[KERNEL_EVAL];
  size_t elem = damrt_dtype_size(e->dtype);
  for (int h = 0; h < e->net->nlayers; h++) {
    if (f->x_buf[h] < 0) continue;
    int from = plan_output_buf(ev, OUT_X, h);
    memcpy(f->bufs[f->x_buf[h]], r->eval_bufs[from], r->batch * layer_n(e, h) * elem);
  }
}

static bool fast_init(Fast *f, RunCtx *r, const EngineArrays *arrays, StrBuf *err) {
  Engine *e = r->e;
  const Network *net = e->net;
  memset(f, 0, sizeof *f);
  if (!(f->kernel = engine_kernel(e, KERNEL_FLIP, err))) return false;
  f->plan = e->plans[KERNEL_FLIP];
  if (!(f->bufs = engine_alloc_buffers(e, f->plan, r->batch, 1, arrays, err))) return false;
  int n = net->nlayers;
  f->x_buf = xmalloc(((size_t)n + 1) * sizeof *f->x_buf);
  f->d_buf = xmalloc(((size_t)n + 1) * sizeof *f->d_buf);
  f->out_buf = xmalloc(((size_t)n + 1) * sizeof *f->out_buf);
  f->input = xcalloc((size_t)n + 1, sizeof *f->input);
  const Plan *ev = e->plans[KERNEL_EVAL];
  for (int a = 0; a < n; a++) {
    const LayerEq *l = &net->layers[a];
    f->x_buf[a] = l->eliminated ? f->plan->state_buf[a] : -1;
    f->d_buf[a] = l->eliminated ? f->plan->node_buf[l->dir] : -1;
    f->out_buf[a] = l->eliminated ? plan_output_buf(f->plan, OUT_FLIP, a) : -1;
    if (!l->eliminated && ev->input_buf[a] >= 0) f->input[a] = r->eval_bufs[ev->input_buf[a]];
  }
  DamrtDtype dt = e->dtype;
  size_t elem = damrt_dtype_size(dt);
  f->moves = xcalloc((size_t)net->ncouplings + 1, sizeof *f->moves);
  for (int c = 0; c < net->ncouplings; c++) {
    const NetCoupling *cp = &net->couplings[c];
    size_t na = layer_n(e, cp->layer), nh = layer_n(e, cp->hidden);
    const void *w = e->weight_data[cp->weight];
    f->moves[c] = engine_aligned_zeros(na * nh, elem);
    for (size_t i = 0; i < na; i++)
      for (size_t k = 0; k < nh; k++)
        engine_set(dt, f->moves[c], i * nh + k,
                   engine_get(dt, w, cp->transposed ? i * nh + k : k * na + i));
  }
  f->unit_layer = xmalloc((r->dim + 1) * sizeof *f->unit_layer);
  f->unit_index = xmalloc((r->dim + 1) * sizeof *f->unit_index);
  for (int a = 0; a < n; a++)
    for (size_t k = 0; r->offset[a] >= 0 && k < layer_n(e, a); k++) {
      f->unit_layer[(size_t)r->offset[a] + k] = a;
      f->unit_index[(size_t)r->offset[a] + k] = k;
    }
  fast_refresh(f, r);
  return true;
}

static void fast_free(Fast *f, const Network *net) {
  if (f->bufs) engine_free_buffers(f->plan, f->bufs);
  for (int c = 0; f->moves && c < net->ncouplings; c++) free(f->moves[c]);
  free(f->moves);
  free(f->x_buf);
  free(f->d_buf);
  free(f->out_buf);
  free(f->input);
  free(f->unit_layer);
  free(f->unit_index);
}

// y = c x (n elements of the kernels' dtype).
static void scaled_copy(DamrtDtype dt, void *y, double c, const void *x, size_t n) {
  if (dt == DAMRT_F32) {
    float cf = (float)c, *yf = y;
    const float *xf = x;
    for (size_t k = 0; k < n; k++) yf[k] = cf * xf[k];
  } else {
    double *yd = y;
    const double *xd = x;
    for (size_t k = 0; k < n; k++) yd[k] = c * xd[k];
  }
}

// y += x (n elements of the kernels' dtype).
static void add_to(DamrtDtype dt, void *y, const void *x, size_t n) {
  if (dt == DAMRT_F32) {
    float *yf = y;
    const float *xf = x;
    for (size_t k = 0; k < n; k++) yf[k] += xf[k];
  } else {
    double *yd = y;
    const double *xd = x;
    for (size_t k = 0; k < n; k++) yd[k] += xd[k];
  }
}

// Unit j of every sample by the fast path: the change of E of its flip, then the rule.
static void fast_unit(Fast *f, Sweep *s, char *x, size_t j) {
  RunCtx *r = s->r;
  const Engine *e = r->e;
  const Network *net = e->net;
  DamrtDtype dt = e->dtype;
  size_t batch = r->batch, dim = r->dim, elem = damrt_dtype_size(dt);
  int a = f->unit_layer[j];
  size_t i = f->unit_index[j], na = layer_n(e, a);
  // d_h = D W[:, i] for every eliminated layer, D = -2 sigma_j the flip (zero where unit j
  // does not reach the layer, and for samples that do not move). A layer reaches a hidden
  // one through one weight at most (derive_async).
  for (int h = 0; h < net->nlayers; h++)
    if (f->d_buf[h] >= 0) memset(f->bufs[f->d_buf[h]], 0, batch * layer_n(e, h) * elem);
  for (int c = 0; c < net->ncouplings; c++) {
    const NetCoupling *cp = &net->couplings[c];
    if (cp->layer != a || f->d_buf[cp->hidden] < 0) continue;
    size_t nh = layer_n(e, cp->hidden);
    char *d = f->bufs[f->d_buf[cp->hidden]];
    for (size_t b = 0; b < batch; b++) {
      if (s->converged[b] || (s->clamp && s->clamp[b * dim + j])) continue;
      double D = -2 * engine_get(dt, x, b * dim + j);
      scaled_copy(dt, d + b * nh * elem, D, f->moves[c] + i * nh * elem, nh);
    }
  }
  f->kernel(f->bufs, e->params, (int64_t)batch);
  for (size_t b = 0; b < batch; b++) {
    if (s->converged[b] || (s->clamp && s->clamp[b * dim + j])) continue;
    double now = engine_get(dt, x, b * dim + j), D = -2 * now;
    // E(-now) - E(now)
    double dE = f->input[a] ? -D * engine_get(dt, f->input[a], b * na + i) : 0;
    for (int h = 0; h < net->nlayers; h++)
      if (f->out_buf[h] >= 0) dE -= engine_get(dt, f->bufs[f->out_buf[h]], b);
    double next = decide(now, now > 0 ? -dE : dE, r->opt->noise_T, &s->noise[b]);
    if (next == now) continue;
    engine_set(dt, x, b * dim + j, next);
    s->flips[b]++;
    s->sum_dE[b] += dE;
    s->sum_abs[b] += fabs(dE);
    for (int h = 0; h < net->nlayers; h++) {
      if (f->x_buf[h] < 0 || f->d_buf[h] < 0) continue;
      size_t nh = layer_n(e, h);
      add_to(dt, (char *)f->bufs[f->x_buf[h]] + b * nh * elem,
             (char *)f->bufs[f->d_buf[h]] + b * nh * elem, nh);
    }
  }
}

// The slow path's buffers: the eval kernel on two copies of every sample.
typedef struct {
  void **bufs;
  char *pair;
  RunCtx pr;
} Slow;

// Unit j of every sample by the slow path: E at both signs of the unit, then the rule.
static void slow_unit(Slow *sl, Sweep *s, char *x, size_t j) {
  RunCtx *r = s->r;
  Engine *e = r->e;
  DamrtDtype dt = e->dtype;
  size_t batch = r->batch, dim = r->dim, elem = damrt_dtype_size(dt);
  const void *energy = sl->bufs[r->energy_buf];
  for (size_t b = 0; b < batch; b++)
    for (int sign = 0; sign < 2; sign++) {
      memcpy(sl->pair + (2 * b + (size_t)sign) * dim * elem, x + b * dim * elem, dim * elem);
      engine_set(dt, sl->pair, (2 * b + (size_t)sign) * dim + j, sign ? -1 : 1);
    }
  engine_copy_rows(&sl->pr, sl->pair, sl->bufs, e->plans[KERNEL_EVAL]->state_buf, false);
  e->kernels[KERNEL_EVAL](sl->bufs, e->params, (int64_t)(2 * batch));
  for (size_t b = 0; b < batch; b++) {
    if (s->converged[b] || (s->clamp && s->clamp[b * dim + j])) continue;
    double up = engine_get(dt, energy, 2 * b), down = engine_get(dt, energy, 2 * b + 1);
    double now = engine_get(dt, x, b * dim + j);
    double next = decide(now, up - down, r->opt->noise_T, &s->noise[b]);
    if (next == now) continue;
    engine_set(dt, x, b * dim + j, next);
    double dE = next > 0 ? up - down : down - up;
    s->flips[b]++;
    s->sum_dE[b] += dE;
    s->sum_abs[b] += fabs(dE);
  }
}

// E after a sweep against E before it and the changes accepted: equal within rounding, and
// at T = 0 not higher. The rounding allowed: 32 eps (1 + flips) (|E0| + |E1| + sum |dE|), each
// energy and each change carrying a few roundings of the energies involved.
static DamrtStatus check_sweep(Sweep *s, size_t step, DamrtError *derr) {
  RunCtx *r = s->r;
  const Engine *e = r->e;
  double eps = e->dtype == DAMRT_F32 ? 0x1p-23 : 0x1p-52;
  const void *energy = r->eval_bufs[r->energy_buf];
  for (size_t b = 0; b < r->batch; b++) {
    double E1 = engine_get(e->dtype, energy, b), E0 = s->E0[b];
    s->E0[b] = E1;
    if (s->converged[b] || s->flips[b] == 0 || !isfinite(E0) || !isfinite(E1)) continue;
    double tol = 32 * eps * (1 + (double)s->flips[b]) * (fabs(E0) + fabs(E1) + s->sum_abs[b]);
    if (fabs(E1 - E0 - s->sum_dE[b]) > tol)
      return damrt_error_set(derr, DAMRT_E_VALUE, "the async rule's energy changes do not add up "
                             "in sweep %zu, sample %zu: E went from %.17g to %.17g, but the %zu "
                             "flips changed it by %.17g (rounding allows %.3g); this is a bug in "
                             "damc, please report it", step, b, E0, E1, s->flips[b],
                             s->sum_dE[b], tol);
    if (r->opt->noise_T == 0 && E1 > E0 + tol)
      return damrt_error_set(derr, DAMRT_E_VALUE, "the async rule raised E in sweep %zu, sample "
                             "%zu: from %.17g to %.17g (rounding allows %.3g); this is a bug in "
                             "damc, please report it", step, b, E0, E1, tol);
  }
  return DAMRT_OK;
}

DamrtStatus async_run(RunCtx *r, char *x, const uint8_t *clamp, const EngineArrays *arrays,
                      size_t *steps, uint8_t *converged, StrBuf *err) {
  Engine *e = r->e;
  const Network *net = e->net;
  for (int a = 0; a < net->nlayers; a++) {
    const LayerEq *l = &net->layers[a];
    if (!l->eliminated && !l->binary) {
      sb_printf(err, "%s needs binary layers (g = sign(x), e.g. L = sum(abs(x))), but layer "
                "'%s' is not\n", e->phrases[PHRASE_ASYNC], l->name);
      return DAMRT_E_ARGUMENT;
    }
  }
  const char *force = getenv("DAMC_ASYNC_PATH");
  if (force && !strcmp(force, "fast") && !net->async_fast) {
    sb_printf(err, "DAMC_ASYNC_PATH=fast, but the fast async rule does not apply: %s\n",
              net->async_slow_why);
    return DAMRT_E_ARGUMENT;
  }
  bool fast = net->async_fast && !(force && !strcmp(force, "slow"));
  DamrtDtype dt = e->dtype;
  size_t batch = r->batch, dim = r->dim, elem = damrt_dtype_size(dt);
  for (size_t k = 0; k < batch * dim; k++) engine_set(dt, x, k, engine_get(dt, x, k) < 0 ? -1 : 1);
  engine_eval_rows(r, x);
  Fast f = {0};
  Slow sl = {0};
  if (fast && !fast_init(&f, r, arrays, err)) {
    fast_free(&f, net);
    return DAMRT_E_VALUE;
  }
  if (!fast) {
    // Two copies of every sample: the unit at +1 and at -1.
    if (!(sl.bufs = engine_alloc_buffers(e, e->plans[KERNEL_EVAL], batch, 2, arrays, err)))
      return DAMRT_E_VALUE;
    sl.pair = engine_aligned_zeros(2 * batch * dim, elem);
    sl.pr = *r;
    sl.pr.batch = 2 * batch;
  }
  Sweep s = {r, clamp, converged, xcalloc(batch, sizeof(size_t)), xcalloc(batch, sizeof(double)),
             xcalloc(batch, sizeof(double)), xcalloc(batch, sizeof(double)),
             xcalloc(batch, sizeof(Rng))};
  // Sample b's noise: the stream started at output b + 1 of the stream of ~seed.
  Rng noise_seeds = {~r->opt->seed};
  for (size_t b = 0; b < batch; b++) {
    s.E0[b] = engine_get(dt, r->eval_bufs[r->energy_buf], b);
    s.noise[b] = (Rng){rng_next(&noise_seeds)};
  }
  Rng order_state = {r->opt->seed};
  size_t *order = xmalloc((dim + 1) * sizeof *order);
  char *zeros = engine_aligned_zeros(batch * dim, elem);
  uint8_t *active = xmalloc(batch);
  for (size_t b = 0; b < batch; b++) active[b] = !converged[b];
  DamrtError derr = {0};
  DamrtStatus st = run_on_step(r, 0, 0, x, zeros, active, &derr);
  for (size_t step = 1; step <= r->opt->max_steps && st == DAMRT_OK; step++) {
    memset(s.flips, 0, batch * sizeof *s.flips);
    memset(s.sum_dE, 0, batch * sizeof *s.sum_dE);
    memset(s.sum_abs, 0, batch * sizeof *s.sum_abs);
    sweep_order(order, dim, r->opt->sequential, &order_state);
    for (size_t k = 0; k < dim && st == DAMRT_OK; k++) {
      // A sweep of a large layer takes long: an interrupt is honoured between units.
      if (r->opt->cancel && *r->opt->cancel) {
        st = damrt_error_set(&derr, DAMRT_E_VALUE, "the run was interrupted in sweep %zu, at unit %zu",
                             step, k);
        break;
      }
      if (fast) fast_unit(&f, &s, x, order[k]);
      else slow_unit(&sl, &s, x, order[k]);
    }
    if (st != DAMRT_OK) break;
    engine_eval_rows(r, x);
    if ((st = check_sweep(&s, step, &derr)) != DAMRT_OK) break;
    if (fast) fast_refresh(&f, r);
    bool all = true;
    for (size_t b = 0; b < batch; b++) {
      if (!converged[b] && s.flips[b] == 0) converged[b] = 1;
      if (!converged[b]) steps[b] = step;
      active[b] = !converged[b];
      all &= converged[b] != 0;
    }
    st = run_on_step(r, step, (double)step, x, zeros, active, &derr);
    if (all) break;
  }
  if (st != DAMRT_OK) sb_printf(err, "%s\n", derr.message);
  free(s.flips);
  free(s.sum_dE);
  free(s.sum_abs);
  free(s.E0);
  free(s.noise);
  free(order);
  free(active);
  free(zeros);
  if (fast) fast_free(&f, net);
  else {
    free(sl.pair);
    engine_free_buffers(e->plans[KERNEL_EVAL], sl.bufs);
  }
  return st;
}
