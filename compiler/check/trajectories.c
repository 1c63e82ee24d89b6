// Checks along trajectories of the compiled model (float64 kernels): the energy never rises
// beyond rounding (docs/theory.md §4.3), and at the fixed points reached, stability in the
// range of H (§4.4.2), the spectrum of the Jacobian (§4.4.1) and dead units (§4.5).
#include <cblas.h>
#include <lapacke.h>
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

// ---- Dense matrices at a fixed point ----

// C = op(A) B for d x d row-major matrices (BLAS).
static void matmul(const double *a, bool trans_a, const double *b, double *c, int64_t d) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)d, (int)d,
              (int)d, 1.0, a, (int)d, b, (int)d, 0.0, c, (int)d);
}

// The Hessian of layer a at the current states, column by column through the derived
// Hessian-vector product: [n, n] row-major (symmetrised).
static double *layer_hessian(NetEnv *ne, int a) {
  int64_t n = ne->n[a];
  double *h = xcalloc((size_t)(n * n) + 1, sizeof *h), *col = xcalloc((size_t)n + 1, sizeof *col);
  for (int64_t j = 0; j < n; j++) {
    memset(ne->dirs[a], 0, (size_t)n * sizeof(double));
    ne->dirs[a][j] = 1;
    netenv_eval(ne, ne->net->layers[a].hvp, col);
    for (int64_t i = 0; i < n; i++) h[i * n + j] = col[i];
  }
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < i; j++) h[i * n + j] = h[j * n + i] = 0.5 * (h[i * n + j] + h[j * n + i]);
  free(col);
  return h;
}

typedef struct {
  int64_t dim;      // all layers
  int64_t *offset;  // per layer, in the stacked state
} Stack;

// Every layer's coordinates one after the other.
static Stack stack_layers(const NetEnv *ne) {
  Stack st = {0, xcalloc((size_t)ne->net->nlayers + 1, sizeof(int64_t))};
  for (int a = 0; a < ne->net->nlayers; a++) {
    st.offset[a] = st.dim;
    st.dim += ne->n[a];
  }
  return st;
}

// The checks below hold d x d matrices of the stacked state (several at once) and solve them
// densely (LU, eigenproblems: d^3). Above this size that needs gigabytes and minutes, so they
// are reported skipped, with the size, rather than left to exhaust the machine.
enum { DENSE_NETWORK_MAX = 4096 };

static bool dense_fits(const NetEnv *ne, const char *check, const char *subject, CheckReport *r) {
  int64_t d = 0;
  for (int a = 0; a < ne->net->nlayers; a++) d += ne->n[a];
  if (d <= DENSE_NETWORK_MAX) return true;
  report_add(r, check, subject, NULL, VERDICT_SKIPPED,
             "the network has %lld state coordinates, above the %d this check solves densely "
             "(d x d matrices of %.2f GB each, d^3 work); the matrix-free form is not yet "
             "implemented", (long long)d, DENSE_NETWORK_MAX, (double)d * (double)d * 8 / 1e9);
  return false;
}

// The block-diagonal 𝐇 of all layers at the current states (d x d, zero off the blocks).
static void stacked_hessian(NetEnv *ne, const Stack *st, double *hess) {
  int64_t d = st->dim;
  memset(hess, 0, (size_t)(d * d) * sizeof *hess);
  for (int a = 0; a < ne->net->nlayers; a++) {
    double *h = layer_hessian(ne, a);
    int64_t na = ne->n[a], o = st->offset[a];
    for (int64_t i = 0; i < na; i++)
      for (int64_t j = 0; j < na; j++) hess[(o + i) * d + o + j] = h[i * na + j];
    free(h);
  }
}

// The coupling 𝐖 = du/dg (all layers stacked), by central differences of the derived
// currents in the activations at the fixed point's g (exact for synapses: u is linear).
static double *coupling(NetEnv *ne, const Stack *st) {
  const Network *net = ne->net;
  int64_t d = st->dim;
  double *w = xcalloc((size_t)(d * d) + 1, sizeof *w);
  double *up = xcalloc((size_t)d + 1, sizeof *up), *down = xcalloc((size_t)d + 1, sizeof *down);
  for (int b = 0; b < net->nlayers; b++)
    for (int64_t k = 0; k < ne->n[b]; k++) {
      // u is linear in g through synapses (any step is exact); through energy terms the
      // central difference errs by O(h^2) = 1e-8 relative and its rounding by eps/h = 2e-12.
      double g0 = ne->acts[b][k], h = 1e-4 * fmax(1, fabs(g0));
      for (int side = 0; side < 2; side++) {
        ne->acts[b][k] = g0 + (side ? -h : h);
        for (int a = 0; a < net->nlayers; a++)  // only the currents that read g(b)
          if (coupled(net, a, b))
            netenv_eval(ne, net->layers[a].u, (side ? down : up) + st->offset[a]);
          else
            memset((side ? down : up) + st->offset[a], 0, (size_t)ne->n[a] * sizeof(double));
      }
      ne->acts[b][k] = g0;
      int64_t j = st->offset[b] + k;
      for (int64_t i = 0; i < d; i++) w[i * d + j] = (up[i] - down[i]) / (2 * h);
    }
  free(up);
  free(down);
  return w;
}

// How much E changes when the dead units of layer a (H_ii = 0 and g_i = 0: rectified
// units below threshold) move further into their dead region, x_i -> 2 x_i - 1: zero to
// rounding along a flat region (docs/theory.md §4.4.4). NaN when the layer has none.
static double flat_region_change(NetEnv *ne, int a, const double *h) {
  const Network *net = ne->net;
  int64_t n = ne->n[a];
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  if (net->layers[a].eliminated) return NAN;
  double *saved = xmalloc((size_t)n * sizeof *saved + 1);
  memcpy(saved, ne->states[a], (size_t)n * sizeof *saved);
  double before = netenv_scalar(ne, energy);
  int moved = 0;
  for (int64_t i = 0; i < n; i++)
    if (h[i * n + i] == 0 && ne->acts[a][i] == 0) {
      ne->states[a][i] = 2 * ne->states[a][i] - 1;
      moved++;
    }
  double after = moved ? netenv_scalar(ne, energy) : before;
  memcpy(ne->states[a], saved, (size_t)n * sizeof *saved);
  free(saved);
  return moved ? after - before : NAN;
}

// The residual r = u(x) - x of every layer (stacked) and its largest scaled entry
// |r_i| / (1 + |x|_inf) (docs/theory.md §4.4.1). Sets the activations to g(x).
static double residual(NetEnv *ne, const Stack *st, double *r) {
  const Network *net = ne->net;
  double xmax = 0, rmax = 0;
  for (int a = 0; a < net->nlayers; a++) netenv_eval(ne, net->layers[a].g, ne->acts[a]);
  for (int a = 0; a < net->nlayers; a++) {
    netenv_eval(ne, net->layers[a].u, r + st->offset[a]);
    for (int64_t i = 0; i < ne->n[a]; i++) {
      r[st->offset[a] + i] -= ne->states[a][i];
      xmax = fmax(xmax, fabs(ne->states[a][i]));
      rmax = fmax(rmax, fabs(r[st->offset[a] + i]));
    }
  }
  return rmax / (1 + xmax);
}

// Newton's method on r(x) = 𝐖g(x) + I - x, whose Jacobian is 𝐖𝐇 - I (docs/theory.md §4.4.1),
// from the state the run reached, until |r|_inf <= 1e-10 (1 + |x|_inf) or 8 steps. Returns
// the last scaled residual; `steps` gets the number of steps taken.
static double polish(NetEnv *ne, const Stack *st, const double *w, int *steps) {
  int64_t d = st->dim;
  double *r = xcalloc((size_t)d + 1, sizeof *r);
  double rho = residual(ne, st, r);
  for (*steps = 0; *steps < 8 && rho > 1e-10; ++*steps) {
    double *jac = xcalloc((size_t)(d * d) + 1, sizeof *jac);
    double *hess = xcalloc((size_t)(d * d) + 1, sizeof *hess);
    stacked_hessian(ne, st, hess);
    matmul(w, false, hess, jac, d);
    for (int64_t i = 0; i < d; i++) {
      jac[i * d + i] -= 1;
      r[i] = -r[i];
    }
    lapack_int *pivots = xcalloc((size_t)d + 1, sizeof *pivots);
    bool solved = LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)d, 1, jac, (lapack_int)d, pivots, r, 1) == 0;
    free(pivots);
    free(jac);
    free(hess);
    if (!solved) break;  // 𝐖𝐇 - I singular: a marginal point; keep the run's state
    for (int a = 0; a < ne->net->nlayers; a++)
      for (int64_t i = 0; i < ne->n[a]; i++) ne->states[a][i] += r[st->offset[a] + i];
    rho = residual(ne, st, r);
  }
  free(r);
  return rho;
}

// λ_max(Bᵀ𝐖B) for 𝐇 = BBᵀ, B = Q diag(sqrt(max(λ, 0))) (docs/theory.md §4.4.2); NaN when
// LAPACK fails. `w` must be symmetric.
static double lambda_max_bwb(const double *hess, const double *w, int64_t d) {
  double *q = xmalloc((size_t)(d * d) * sizeof *q + 1), *lam = xcalloc((size_t)d + 1, sizeof *lam);
  memcpy(q, hess, (size_t)(d * d) * sizeof *q);
  double top = NAN;
  if (symmetric_eig(q, d, lam, true)) {
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++) q[i * d + j] *= sqrt(fmax(lam[j], 0));
    double *wb = xcalloc((size_t)(d * d) + 1, sizeof *wb), *k = xcalloc((size_t)(d * d) + 1, sizeof *k);
    matmul(w, false, q, wb, d);
    matmul(q, true, wb, k, d);
    if (symmetric_eig(k, d, lam, false)) top = lam[d - 1];
    free(wb);
    free(k);
  }
  free(q);
  free(lam);
  return top;
}

typedef struct {
  bool ok;
  double most, least, imag;  // the extremes of the real parts, the largest |imaginary part|
  double *re;                // every real part, ascending (d of them; owned)
} JacobianSpectrum;

static int ascending(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

// The spectrum of J = T⁻¹(𝐖𝐇 - I) (docs/theory.md §4.4.1), for models without eliminated
// layers.
static JacobianSpectrum jacobian_spectrum(const NetEnv *ne, const Stack *st, const double *w,
                                          const double *hess, const double *tau) {
  int64_t d = st->dim;
  JacobianSpectrum js = {false, -INFINITY, INFINITY, 0, xcalloc((size_t)d + 1, sizeof(double))};
  double *jac = xcalloc((size_t)(d * d) + 1, sizeof *jac), *re = js.re,
         *im = xcalloc((size_t)d + 1, sizeof *im);
  matmul(w, false, hess, jac, d);
  for (int a = 0; a < ne->net->nlayers; a++)
    for (int64_t i = st->offset[a]; i < st->offset[a] + ne->n[a]; i++)
      for (int64_t j = 0; j < d; j++) jac[i * d + j] = (jac[i * d + j] - (i == j)) / tau[a];
  if (LAPACKE_dgeev(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)d, jac, (lapack_int)d, re, im, NULL, 1,
                    NULL, 1) == 0) {
    js.ok = true;
    for (int64_t i = 0; i < d; i++) {
      js.most = fmax(js.most, re[i]);
      js.least = fmin(js.least, re[i]);
      js.imag = fmax(js.imag, fabs(im[i]));
    }
    qsort(re, (size_t)d, sizeof *re, ascending);
  }
  free(jac);
  free(im);
  return js;
}

// Stability, the Jacobian's spectrum and dead units at one fixed point (states set in `ne`).
static void check_fixed_point(NetEnv *ne, const double *tau, int index, CheckReport *r) {
  const Network *net = ne->net;
  const Model *m = net->model;
  int n = net->nlayers;
  Stack st = stack_layers(ne);
  int64_t d = st.dim;
  char subject[64];
  snprintf(subject, sizeof subject, "fixed point %d", index);
  int newton = 0;
  for (int a = 0; a < n; a++) netenv_eval(ne, net->layers[a].g, ne->acts[a]);
  // 𝐖 = du/dg at the run's state: exact for synapses (u is linear in g); for energy terms
  // it changes little over the Newton steps, which then converge linearly.
  double *w = coupling(ne, &st);
  double rho = polish(ne, &st, w, &newton);  // also sets g at the fixed point
  double *hess = xcalloc((size_t)(d * d) + 1, sizeof *hess);
  bool eliminated = false;
  for (int a = 0; a < n; a++) {
    eliminated |= net->layers[a].eliminated;
    double *h = layer_hessian(ne, a);
    double flat = flat_region_change(ne, a, h);  // before the eigensolver overwrites h
    int64_t na = ne->n[a], o = st.offset[a];
    for (int64_t i = 0; i < na; i++)
      for (int64_t j = 0; j < na; j++) hess[(o + i) * d + o + j] = h[i * na + j];
    // Dead units (§4.5): the nullity of H_A beyond its structural null directions.
    double *ev = xcalloc((size_t)na + 1, sizeof *ev);
    if (symmetric_eig(h, na, ev, false)) {
      // The rule of NumPy's matrix_rank: an eigenvalue at most n eps lambda_max is zero.
      double top = fmax(fabs(ev[na - 1]), fabs(ev[0])), limit = (double)na * CHECK_EPS * top;
      int64_t nullity = 0;
      for (int64_t i = 0; i < na; i++) nullity += fabs(ev[i]) <= limit;  // a negative one is not null
      double gmax = 0;
      for (int64_t i = 0; i < na; i++) gmax = fmax(gmax, fabs(ne->acts[a][i]));
      // Every direction flat: dead when the activation is 0 (rectified units below their
      // threshold), saturated when it is not (tanh at +-1, a softmax whose winner takes all).
      bool dead = nullity == na && gmax == 0, saturated = nullity == na && gmax > 0;
      char layer[96];
      snprintf(layer, sizeof layer, "layer %s", m->layers[a].name);
      if (nullity > 0) {
        CheckItem *it = report_add(
            r, "fixed-point-dead", layer, &m->layers[a].span, dead ? VERDICT_WARN : VERDICT_PASS,
            dead ? "every unit of layer '%s' is dead at fixed point %d (g = 0, H = 0): the layer is "
                   "in effect disconnected there; remedies: leaky relu, eps > 0 in norms, or adding "
                   "(lambda/2)|x|^2 (docs/theory.md §4.5)"
            : saturated ? "layer '%s' is saturated at fixed point %d (H = 0, g != 0: the winner takes "
                          "all); its flat directions decay at the rate 1/tau (docs/theory.md §4.4.2)"
                        : "layer '%s' has flat directions at fixed point %d (the null space of H: dead "
                          "or structural, docs/theory.md §4.5)",
            m->layers[a].name, index);
        report_number(it, "nullity", (double)nullity);
        report_number(it, "flat fraction", (double)nullity / (double)na);
        if (!isnan(flat)) report_number(it, "E change along the flat region", flat);
      }
    }
    free(ev);
    free(h);
  }
  JacobianSpectrum js = {false, 0, 0, 0, NULL};
  // The general eigenproblem costs about 10 d^3: up to d = 1000 (a second or two).
  if (!eliminated && d <= 1000) js = jacobian_spectrum(ne, &st, w, hess, tau);
  CheckItem *it = NULL;
  if (net->has_directed) {
    // No energy: 𝐖 is not symmetric and the criterion of §4.4.2 does not hold; the
    // Jacobian's spectrum decides (§1.5).
    Verdict v = !js.ok ? VERDICT_SKIPPED : js.most < -CHECK_MARGIN ? VERDICT_PASS : js.most > CHECK_MARGIN ? VERDICT_FAIL : VERDICT_WARN;
    it = report_add(r, "stability", subject, NULL, v,
                    !js.ok ? "the Jacobian's spectrum is not computed for a model with eliminated layers"
                    : v == VERDICT_PASS ? "stable: every eigenvalue of J has a negative real part (docs/theory.md §1.5)"
                    : v == VERDICT_FAIL ? "unstable: an eigenvalue of J has a positive real part (docs/theory.md §1.5)"
                                        : "marginal: the largest real part of eig(J) is 0 to 1e-8");
  } else {
    for (int64_t i = 0; i < d; i++)  // 𝐖 of an energy model is symmetric; take its symmetric part
      for (int64_t j = 0; j < i; j++) w[i * d + j] = w[j * d + i] = 0.5 * (w[i * d + j] + w[j * d + i]);
    double top = lambda_max_bwb(hess, w, d);
    Verdict v = isnan(top) ? VERDICT_SKIPPED : top < 1 - CHECK_MARGIN ? VERDICT_PASS : top > 1 + CHECK_MARGIN ? VERDICT_FAIL : VERDICT_WARN;
    it = report_add(r, "stability", subject, NULL, v,
                    v == VERDICT_SKIPPED ? "LAPACK could not diagonalise H or B'WB"
                    : v == VERDICT_PASS  ? "stable: lambda_max(B'WB) < 1 (docs/theory.md §4.4.2); "
                                           "its flat region, if any, lies in its basin (§4.4.4)"
                    : v == VERDICT_FAIL  ? "unstable: lambda_max(B'WB) > 1 (docs/theory.md §4.4.2): "
                                           "the run came to rest at a saddle or a maximum"
                                         : "marginal: lambda_max(B'WB) = 1 to 1e-8 (docs/theory.md §4.4.2)");
    report_number(it, "lambda_max(B'WB)", top);
  }
  report_number(it, "residual |u - x|_inf / (1 + |x|_inf)", rho);
  report_number(it, "Newton steps", newton);
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  if (!net->has_directed) report_number(it, "E", netenv_scalar(ne, energy));
  if (js.ok) {
    report_number(it, "max Re eig(J)", js.most);
    report_number(it, "min Re eig(J)", js.least);
    report_number(it, "max |Im eig(J)|", js.imag);
    report_vector(it, js.imag == 0 ? "eig(J)" : "Re eig(J)", js.re, (size_t)d);
  }
  double *x = xcalloc((size_t)d + 1, sizeof *x);
  for (int a = 0; a < n; a++) memcpy(x + st.offset[a], ne->states[a], (size_t)ne->n[a] * sizeof *x);
  report_vector(it, "x*", x, (size_t)d);
  free(x);
  free(js.re);
  free(w);
  free(hess);
  free(st.offset);
}

// ---- Models without energy: the residual Lyapunov function (§4.4.5) ----

// At `samples` random states: with r = u(x) - x and the flow xdot = (I - 𝐖𝐇)ᵀ r, the function
// V = |r|^2 / 2 has dV/dt = -|xdot|^2 <= 0 for any 𝐖 and any symmetric 𝐇 (docs/theory.md
// §4.4.5). Checked by central differences of V along xdot, with the tolerance of §4.1.6.
void check_residual_lyapunov(NetEnv *ne, int samples, CheckReport *rep) {
  const Network *net = ne->net;
  if (!dense_fits(ne, "residual-lyapunov", "network", rep)) return;
  int n = net->nlayers;
  Stack st = stack_layers(ne);
  int64_t d = st.dim;
  double worst = 0, rises = 0;
  double *r = xcalloc((size_t)d + 1, sizeof *r), *flow = xcalloc((size_t)d + 1, sizeof *flow);
  for (int s = 0; s < samples; s++) {
    for (int a = 0; a < n; a++)
      for (int64_t i = 0; i < ne->n[a]; i++) ne->states[a][i] = netenv_normal(ne);
    netenv_set_inputs(ne, 0, true);
    residual(ne, &st, r);
    double *w = coupling(ne, &st), *hess = xcalloc((size_t)(d * d) + 1, sizeof *hess);
    stacked_hessian(ne, &st, hess);
    // flow = (I - 𝐖𝐇)ᵀ r = r - 𝐇ᵀ 𝐖ᵀ r
    double *wt_r = xcalloc((size_t)d + 1, sizeof *wt_r), predicted = 0, fmax_ = 0;
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++) wt_r[j] += w[i * d + j] * r[i];
    for (int64_t j = 0; j < d; j++) {
      double hw = 0;
      for (int64_t i = 0; i < d; i++) hw += hess[i * d + j] * wt_r[i];
      flow[j] = r[j] - hw;
      predicted -= flow[j] * flow[j];
      fmax_ = fmax(fmax_, fabs(flow[j]));
    }
    double delta = CHECK_CBRT_EPS / fmax(1, fmax_), v[2];
    for (int side = 0; side < 2; side++) {
      for (int a = 0; a < n; a++)
        for (int64_t i = 0; i < ne->n[a]; i++)
          ne->states[a][i] += (side ? -2 : 1) * delta * flow[st.offset[a] + i];
      residual(ne, &st, r);
      v[side] = 0;
      for (int64_t i = 0; i < d; i++) v[side] += 0.5 * r[i] * r[i];
    }
    double fd = (v[0] - v[1]) / (2 * delta);
    worst = fmax(worst, fabs(fd - predicted) / (1 + fabs(predicted)));
    rises = fmax(rises, fd / (1 + fabs(predicted)));
    free(w);
    free(hess);
    free(wt_r);
  }
  // A rise is judged with the difference's own tolerance (§4.1.6): below it, dV/dt > 0 cannot
  // be told from the error of the central difference.
  bool ok = worst <= 1e-6 && rises <= 1e-6;
  CheckItem *it = report_add(
      rep, "residual-lyapunov", "network", NULL, ok ? VERDICT_PASS : VERDICT_FAIL,
      ok ? "V = |u - x|^2 / 2 decreases along xdot = (I - WH)' (u - x) at %d sampled states: a "
           "Lyapunov function for the fixed points of this model without energy (docs/theory.md §4.4.5)"
         : "V = |u - x|^2 / 2 does not decrease as docs/theory.md §4.4.5 says at %d sampled "
           "states: a current or a Hessian is derived wrong",
      samples);
  report_number(it, "max |FD - dV/dt| / (1 + |dV/dt|)", worst);
  free(r);
  free(flow);
  free(st.offset);
}

// ---- The runs ----

// `samples` random initial states per layer ([samples, n_A], standard normal), or the
// user's arrays.
static EngineArray *initial_states(NetEnv *ne, int samples, double **data) {
  int n = ne->net->nlayers;
  EngineArray *states = xcalloc((size_t)n + 1, sizeof *states);
  for (int a = 0; a < n; a++) {
    data[a] = xcalloc((size_t)(samples * ne->n[a]) + 1, sizeof(double));
    for (int64_t i = 0; i < samples * ne->n[a]; i++) data[a][i] = netenv_normal(ne);
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
    // At most 2000 steps: the energy monitor needs no convergence, and dopri5 (whose fixed
    // points are analysed) converges in far fewer.
    EngineRunOptions ro = {methods[i], false, 0, 1e-9, 1e-11, 1e-7, 2000, 0, 0, NULL, NULL, NULL,
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
  bool fits = dense_fits(ne, "stability", "network", r);
  for (size_t b = 0; fits && conv && checked < 3 && b < samples; b++) {
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
    for (int c = 0; c < checked && !same_as_before; c++) {
      double diff = 0, size = 0;
      for (int a = 0; a < n; a++)
        for (int64_t i = 0; i < ne->n[a]; i++) {
          diff = fmax(diff, fabs(ne->states[a][i] - seen[c * n + a][i]));
          size = fmax(size, fabs(ne->states[a][i]));
        }
      // Runs stopped by the f64 rule tau|dx/dt| <= 1e-7 (1 + |x|) land within about that of
      // their fixed point: ten times it still tells two attractors apart.
      same_as_before = diff <= 1e-6 * (1 + size);
    }
    if (same_as_before) continue;
    for (int a = 0; a < n; a++) {
      seen[checked * n + a] = xmalloc((size_t)ne->n[a] * sizeof(double) + 1);
      memcpy(seen[checked * n + a], ne->states[a], (size_t)ne->n[a] * sizeof(double));
    }
    check_fixed_point(ne, tau, checked++, r);
  }
  for (int i = 0; i < 4 * n; i++) free(seen[i]);
  free(seen);
  if (ok && fits && checked == 0)
    report_add(r, "stability", "network", NULL, VERDICT_SKIPPED,
               "no dopri5 run converged, so no fixed point was checked");
  engine_results_free(&last);
  for (int a = 0; a < n; a++) free(data[a]);
  free(data);
  free(states);
  free(tau);
  return ok;
}
