// Checks along trajectories of the compiled model (float64 kernels): the energy never rises
// beyond rounding (docs/theory.md §4.3) and the step of Euler, convexity and dead units at
// states along the runs (§4.2.4), and the fixed points the runs reach (fixed_points.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/checks.h"
#include "check/layer_checks.h"
#include "front/ast.h"
#include "support/common.h"

// ---- States along the trajectories (docs/theory.md §4.2.4) ----

// The states of every trajectory (each sample of each integrator's run) at the steps that
// are multiples of `stride`, which doubles (dropping the steps no longer multiples of it)
// whenever TRAJECTORY_KEEP states are held: between about half that and all of it are kept,
// spread evenly along the runs (all of them when the runs are short).
enum { TRAJECTORY_KEEP = 256 };

typedef struct {
  const Network *net;
  const int64_t *n;   // per layer
  int count;
  size_t stride;
  size_t *step;       // per state kept: its step
  double **x;         // per layer: TRAJECTORY_KEEP rows of n_A
} Trajectories;

static void trajectories_init(Trajectories *t, const Network *net, const int64_t *n) {
  *t = (Trajectories){net, n, 0, 1, xcalloc(TRAJECTORY_KEEP, sizeof(size_t)),
                      xcalloc((size_t)net->nlayers + 1, sizeof(double *))};
  for (int a = 0; a < net->nlayers; a++)
    t->x[a] = xcalloc(TRAJECTORY_KEEP * (size_t)n[a] + 1, sizeof(double));
}

static void trajectories_free(Trajectories *t) {
  for (int a = 0; a < t->net->nlayers; a++) free(t->x[a]);
  free(t->x);
  free(t->step);
}

static void trajectories_offer(Trajectories *t, const EngineState *s) {
  if (s->step % t->stride) return;
  for (size_t b = 0; b < s->batch; b++) {
    while (t->count == TRAJECTORY_KEEP) {  // full: keep the steps that are multiples of 2 stride
      t->stride *= 2;
      int kept = 0;
      for (int k = 0; k < t->count; k++) {
        if (t->step[k] % t->stride) continue;
        for (int a = 0; a < t->net->nlayers; a++)
          memmove(t->x[a] + (size_t)kept * (size_t)t->n[a], t->x[a] + (size_t)k * (size_t)t->n[a],
                  (size_t)t->n[a] * sizeof(double));
        t->step[kept++] = t->step[k];
      }
      t->count = kept;
      if (s->step % t->stride) return;
    }
    for (int a = 0; a < t->net->nlayers; a++) {
      const void *x = s->x[a] ? s->x[a] : s->u[a];  // an eliminated layer is at its u
      memcpy(t->x[a] + (size_t)t->count * (size_t)t->n[a], (const double *)x + b * (size_t)t->n[a],
             (size_t)t->n[a] * sizeof(double));
    }
    t->step[t->count++] = s->step;
  }
}

// ---- The energy monitor ----

typedef struct {
  const Network *net;
  const int64_t *n;  // per layer
  double c_r;        // 8 + 2 sqrt(longest inner product), docs/theory.md §4.3
  double *prev_e, *prev_s;  // per sample: E and its scale at the previous step
  size_t rises, steps;
  double worst;      // the largest rise over its allowance
  bool energy;       // false: no energy to watch (a directed synapse)
  Trajectories *along;
  // Scheme (c1) of §4.3 on an Euler run: the layer (-1: not watched), its tau, its state
  // and the time at the previous step, and how the bound E_{k+1} <= E_k - (1/alpha - 1/2)
  // |dv|^2 + tol_k fared.
  int c1;
  double c1_tau, *prev_x, prev_t, c1_worst;
  size_t c1_misses;
} Monitor;

static double at(const void *p, size_t k) { return ((const double *)p)[k]; }

// The sum of the magnitudes of the terms of E for sample b (docs/theory.md §4.3): per layer
// |x.g| + |L| + |I.g| and the coupling |g.(u - I)|, so that the rounding of E is allowed
// in proportion to what cancels in it.
static double energy_scale(const Monitor *m, const EngineState *s, size_t b) {
  double total = 0;
  for (int a = 0; a < m->net->nlayers; a++) {
    int64_t n = m->n[a];
    const void *x = s->x[a] ? s->x[a] : s->u[a];
    double xg = 0, ig = 0;
    for (int64_t i = 0; i < n; i++) {
      size_t k = b * (size_t)n + (size_t)i;
      double g = at(s->g[a], k), in = s->input[a] ? at(s->input[a], k) : 0;
      xg += at(x, k) * g;
      ig += in * g;
      total += fabs(at(x, k) * g) + fabs(in * g) + fabs(g * (at(s->u[a], k) - in));
    }
    total += fabs(xg - ig - at(s->part[a], b));  // |L_A|
  }
  return total;
}

static bool monitor_state(void *user, const EngineState *s) {
  Monitor *m = user;
  trajectories_offer(m->along, s);
  for (size_t b = 0; m->energy && b < s->batch; b++) {
    double e = at(s->energy, b), scale = energy_scale(m, s, b);
    if (s->step > 0) {
      double allowance = m->c_r * CHECK_EPS * (scale + m->prev_s[b]);
      double rise = e - m->prev_e[b];
      m->worst = fmax(m->worst, rise / fmax(allowance, 1e-300));
      if (rise > allowance) m->rises++;
      m->steps++;
      if (m->c1 >= 0) {
        int64_t n = m->n[m->c1];
        double alpha = (s->t - m->prev_t) / m->c1_tau, step = 0;
        for (int64_t i = 0; i < n; i++) {
          double d = at(s->x[m->c1], b * (size_t)n + (size_t)i) - m->prev_x[b * (size_t)n + (size_t)i];
          step += d * d;
        }
        double excess = rise + (1 / alpha - 0.5) * step;
        m->c1_worst = fmax(m->c1_worst, excess / fmax(allowance, 1e-300));
        m->c1_misses += excess > allowance;
      }
    }
    m->prev_e[b] = e;
    m->prev_s[b] = scale;
    if (m->c1 >= 0)
      memcpy(m->prev_x + b * (size_t)m->n[m->c1], (const double *)s->x[m->c1] + b * (size_t)m->n[m->c1],
             (size_t)m->n[m->c1] * sizeof(double));
  }
  m->prev_t = s->t;
  return true;
}

// The Euler run's item on its step: under scheme (c1) the largest safe step and how the
// sharper bound held (docs/theory.md §4.3); otherwise the order test of (c3).
static void report_euler_step(NetEnv *ne, const Monitor *m, int samples, CheckReport *r) {
  if (m->c1 < 0) {
    check_euler_order(ne, samples, r);
    return;
  }
  const char *name = ne->net->model->layers[m->c1].name;
  CheckItem *it =
      m->c1_misses
          ? report_add(r, "euler-step", "network", NULL, VERDICT_FAIL,
                       "layer '%s' has H = I and every other layer is eliminated (docs/theory.md "
                       "§4.3 (c1)), yet an Euler step decreased E by less than (1/alpha - 1/2)|dv|^2 "
                       "at %zu of %zu steps: a current or the energy is derived wrong, or an "
                       "eliminated layer's Lagrangian is not convex",
                       name, m->c1_misses, m->steps)
          : report_add(r, "euler-step", "network", NULL, VERDICT_PASS,
                       "layer '%s' has H = I and every other layer is eliminated (docs/theory.md "
                       "§4.3 (c1)): every Euler step with dt <= 2 tau_%s (alpha <= 2) decreases E "
                       "by at least (1/alpha - 1/2)|dv|^2; it did at all %zu steps of the run",
                       name, name, m->steps);
  report_number(it, "largest safe dt", 2 * m->c1_tau);
  report_number(it, "worst (dE + (1/alpha - 1/2)|dv|^2) / allowance", m->c1_worst);
}

// ---- The runs ----

// `samples` random initial states per integrated layer ([samples, n_A], standard normal),
// or the user's arrays. An eliminated layer takes none (x = u), but its values are drawn
// all the same, so that the states of the others do not depend on which layers are.
static EngineArray *initial_states(NetEnv *ne, int samples, double **data) {
  int n = ne->net->nlayers;
  EngineArray *states = xcalloc((size_t)n + 1, sizeof *states);
  for (int a = 0; a < n; a++) {
    data[a] = xcalloc((size_t)(samples * ne->n[a]) + 1, sizeof(double));
    for (int64_t i = 0; i < samples * ne->n[a]; i++) data[a][i] = netenv_normal(ne);
    if (!ne->net->layers[a].eliminated)
      states[a] = (EngineArray){DAMRT_F64, 2, {(size_t)samples, (size_t)ne->n[a]}, data[a]};
  }
  return states;
}

bool check_trajectories(Engine *e, NetEnv *ne, const CheckOptions *opt, CheckReport *r, StrBuf *err) {
  const Network *net = ne->net;
  int n = net->nlayers;
  double **data = xcalloc((size_t)n + 1, sizeof *data);
  EngineArray *states = NULL;
  EngineArrays arrays = opt->arrays ? *opt->arrays : (EngineArrays){NULL, NULL, NULL, NULL};
  // Trajectories from at most 8 sampled states: each is a run of every integrator.
  if (!arrays.state) arrays.state = states = initial_states(ne, opt->samples < 8 ? opt->samples : 8, data);
  int64_t longest = 0;
  for (int a = 0; a < n; a++) longest = ne->n[a] > longest ? ne->n[a] : longest;
  double *tau = xcalloc((size_t)n + 1, sizeof *tau);
  for (int a = 0; a < n; a++) tau[a] = netenv_scalar(ne, net->layers[a].tau);
  static const DamrtMethod methods[] = {DAMRT_EULER, DAMRT_RK4, DAMRT_DOPRI5};
  static const char *const names[] = {"euler", "rk4", "dopri5"};
  bool ok = true;
  EngineResults last = {0};
  Trajectories along;
  trajectories_init(&along, net, ne->n);
  int c1 = euler_c1_layer(ne);
  for (int i = 0; i < 3 && ok; i++) {
    size_t batch;
    bool batched;
    if (!engine_batch(e, &arrays, &batch, &batched, err)) {
      ok = false;
      break;
    }
    Monitor mon = {net, ne->n, 8 + 2 * sqrt((double)longest), xcalloc(batch + 1, sizeof(double)),
                   xcalloc(batch + 1, sizeof(double)), 0, 0, 0, !net->has_directed, &along,
                   methods[i] == DAMRT_EULER ? c1 : -1, c1 >= 0 ? tau[c1] : 0,
                   xcalloc(batch * (size_t)(c1 >= 0 ? ne->n[c1] : 0) + 1, sizeof(double)), 0, 0, 0};
    // The energy monitor needs no convergence: euler and rk4 take at most 1000 steps of
    // tau_min / 10 (100 tau_min, the bulk of the cost of checking a large model); dopri5,
    // whose fixed points are analysed, at most 2000, and converges in far fewer.
    size_t max_steps = methods[i] == DAMRT_DOPRI5 ? 2000 : 1000;
    EngineRunOptions ro = {methods[i], false, 0, 1e-9, 1e-11, 1e-7, max_steps, 0, 0, NULL, NULL, NULL,
                           NULL, monitor_state, &mon, false};
    EngineResults res = {0};
    StrBuf run_err = {0};
    bool ran = engine_run(e, &arrays, &ro, &res, &run_err);
    char subject[32];
    snprintf(subject, sizeof subject, "%s", names[i]);
    if (!ran) {
      report_add(r, "energy-decrease", subject, NULL, VERDICT_FAIL, "the run failed: %s",
                 sb_str(&run_err));
    } else if (!net->has_directed) {
      CheckItem *it = report_add(
          r, "energy-decrease", subject, NULL, mon.rises ? VERDICT_FAIL : VERDICT_PASS,
          mon.rises ? "E rose beyond its rounding at %zu of %zu steps (docs/theory.md §4.3)"
                    : "E never rose beyond its rounding over %zu steps of %zu samples (docs/theory.md §4.3)",
          mon.rises ? mon.rises : mon.steps, mon.rises ? mon.steps : batch);
      report_number(it, "largest rise / allowance", mon.worst);
      report_number(it, "c_r", mon.c_r);
      if (methods[i] == DAMRT_EULER) report_euler_step(ne, &mon, opt->samples, r);
    }
    sb_free(&run_err);
    free(mon.prev_e);
    free(mon.prev_s);
    free(mon.prev_x);
    if (i == 2 && ran) last = res;
    else engine_results_free(&res);
  }
  // Convexity and dead units where the network actually goes (§4.2.4), not only at the
  // layers' sample points.
  for (int a = 0; ok && along.count && a < n; a++)
    check_layer_at_states(net, a, ne->env.dims, ne->env.params, along.x[a], along.count,
                          "states along trajectories", opt->seed, r);
  trajectories_free(&along);
  // The fixed points dopri5 reached: the first three samples that converged.
  const double *conv = NULL;
  size_t samples = 0;
  for (size_t i = 0; i < last.count; i++)
    if (!strcmp(last.items[i].name, "converged")) {
      conv = last.items[i].tensor->data;
      samples = last.items[i].tensor->rank ? last.items[i].tensor->shape[0] : 1;
    }
  // Distinct fixed points only (samples often reach the same one): up to three.
  int checked = 0;
  double **seen = xcalloc(4 * (size_t)n + 1, sizeof *seen);
  for (size_t b = 0; conv && checked < 3 && b < samples; b++) {
    if (conv[b] != 1) continue;
    netenv_set_inputs(ne, b, false);  // the fixed point of the inputs this sample ran with
    bool same_as_before = false;
    for (int a = 0; a < n; a++) {
      char name[80];
      snprintf(name, sizeof name, "x_%s", net->layers[a].name);
      for (size_t i = 0; i < last.count; i++)
        if (!strcmp(last.items[i].name, name))
          memcpy(ne->states[a], (const double *)last.items[i].tensor->data + b * (size_t)ne->n[a],
                 (size_t)ne->n[a] * sizeof(double));
    }
    // Compared after Newton's method: runs that stopped near one fixed point (slowly, at a
    // degenerate one) are then at the same place.
    Polished pol = fixed_point_polish(ne);
    for (int c = 0; c < checked && !same_as_before; c++) {
      double diff = 0, size = 0;
      for (int a = 0; a < n; a++)
        for (int64_t i = 0; i < ne->n[a]; i++) {
          diff = fmax(diff, fabs(ne->states[a][i] - seen[c * n + a][i]));
          size = fmax(size, fabs(ne->states[a][i]));
        }
      // Resolved points are known to 1e-10 (1 + |x|); unresolved ones (linear convergence)
      // to about the run's rule tau|dx/dt| <= 1e-7 (1 + |x|): 1e-6 tells attractors apart.
      same_as_before = diff <= 1e-6 * (1 + size);
    }
    if (!same_as_before) {
      for (int a = 0; a < n; a++) {
        seen[checked * n + a] = xmalloc((size_t)ne->n[a] * sizeof(double) + 1);
        memcpy(seen[checked * n + a], ne->states[a], (size_t)ne->n[a] * sizeof(double));
      }
      check_fixed_point(ne, tau, checked++, opt->seed, &pol, r);
    }
    polished_free(&pol);
  }
  for (int i = 0; i < 4 * n; i++) free(seen[i]);
  free(seen);
  if (ok && checked == 0)
    report_add(r, "stability", "network", NULL, VERDICT_SKIPPED,
               "no dopri5 run converged, so no fixed point was checked");
  engine_results_free(&last);
  for (int a = 0; a < n; a++) free(data[a]);
  free(data);
  free(states);
  free(tau);
  return ok;
}
