// The network's energy: is it bounded below (docs/theory.md §1.4), does the model have one
// (§1.5), and does it obey the energy identity (1.4) at sampled states (§4.1.6).
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/checks.h"
#include "front/ast.h"
#include "support/common.h"

// How |g| grows along rays to infinity: bounded (tanh, sigmoid, softmax, sign), linearly
// (identity, relu: a conjugate L* that grows like a square) or faster (relu^n with n > 2,
// exp: a conjugate that grows slower than a square).
typedef enum { GROWTH_BOUNDED, GROWTH_LINEAR, GROWTH_FASTER, GROWTH_UNKNOWN } Growth;

static const char *const growth_text[] = {"bounded", "growing linearly",
                                          "growing faster than linearly", "of unknown growth"};

// max |g_A| at x = t r for three directions r (all +1, all -1, alternating).
static double largest_g(NetEnv *ne, int a, double t) {
  const LayerEq *l = &ne->net->layers[a];
  int64_t n = ne->n[a];
  double *g = xcalloc((size_t)n + 1, sizeof *g), worst = 0;
  for (int dir = 0; dir < 3; dir++) {
    for (int64_t i = 0; i < n; i++)
      ne->states[a][i] = t * (dir == 0 ? 1 : dir == 1 ? -1 : (i % 2 ? -1 : 1));
    netenv_eval(ne, l->g, g);
    for (int64_t i = 0; i < n; i++) worst = isfinite(g[i]) && isfinite(worst) ? fmax(worst, fabs(g[i])) : INFINITY;
  }
  memset(ne->states[a], 0, (size_t)n * sizeof(double));
  free(g);
  return worst;
}

static Growth activation_growth(NetEnv *ne, int a) {
  double g2 = largest_g(ne, a, 1e2), g4 = largest_g(ne, a, 1e4);
  if (!isfinite(g4)) return GROWTH_FASTER;  // overflows: exponential
  if (!isfinite(g2) || g2 == 0) return g4 == 0 ? GROWTH_BOUNDED : GROWTH_UNKNOWN;
  double p = log(g4 / g2) / log(100);  // |g| ~ t^p
  return p < 0.1 ? GROWTH_BOUNDED : p < 1.1 ? (p > 0.9 ? GROWTH_LINEAR : GROWTH_UNKNOWN) : GROWTH_FASTER;
}

// The largest singular value of an m x n row-major matrix (LAPACK), or NaN.
static double norm2(const double *w, int64_t m, int64_t n) {
  double *copy = xmalloc((size_t)(m * n) * sizeof *copy), *s = xmalloc((size_t)(m < n ? m : n) * sizeof *s);
  memcpy(copy, w, (size_t)(m * n) * sizeof *copy);
  // JOBZ 'N': U and V' are not computed, but LAPACKE checks their leading dimensions.
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)m, (lapack_int)n, copy,
                                   (lapack_int)n, s, NULL, (lapack_int)m, NULL, (lapack_int)n);
  double v = info == 0 ? s[0] : NAN;
  free(copy);
  free(s);
  return v;
}

// The largest eigenvalue of a symmetric n x n matrix, or NaN.
static double lambda_max(const double *w, int64_t n) {
  double *copy = xmalloc((size_t)(n * n) * sizeof *copy), *ev = xmalloc((size_t)n * sizeof *ev);
  memcpy(copy, w, (size_t)(n * n) * sizeof *copy);
  double v = symmetric_eig(copy, n, ev, false) ? ev[n - 1] : NAN;
  free(copy);
  free(ev);
  return v;
}

// The synapse coupling layers a and b (either way), or -1.
static int synapse_between(const Model *m, int a, int b) {
  for (int i = 0; i < m->nsynapses; i++)
    if ((m->synapses[i].a == a && m->synapses[i].b == b) || (m->synapses[i].a == b && m->synapses[i].b == a))
      return i;
  return -1;
}

// The probe behind the rules: E along rays x = t d (every layer with a state at once) for
// t = 10, 100, 1000, 10000 and 11 directions d (all +1, all -1, alternating, 8 random). A ray
// on which E falls at every step to below -1000 (1 + |E(0)|) is a counterexample: E is not
// bounded below. Returns whether one was found (and reported).
static bool probe_rays(NetEnv *ne, CheckReport *r) {
  const Network *net = ne->net;
  int n = net->nlayers;
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  for (int a = 0; a < n; a++) memset(ne->states[a], 0, (size_t)ne->n[a] * sizeof(double));
  double e0 = netenv_scalar(ne, energy);
  bool found = false;
  double **d = xcalloc((size_t)n + 1, sizeof *d);
  for (int a = 0; a < n; a++) d[a] = xcalloc((size_t)ne->n[a] + 1, sizeof(double));
  for (int dir = 0; dir < 11 && !found && isfinite(e0); dir++) {
    for (int a = 0; a < n; a++)
      for (int64_t i = 0; i < ne->n[a]; i++)
        d[a][i] = net->layers[a].eliminated ? 0
                  : dir == 0                ? 1
                  : dir == 1                ? -1
                  : dir == 2                ? (i % 2 ? -1 : 1)
                                            : netenv_normal(ne);
    double e[4];
    bool falls = true;
    for (int k = 0; k < 4; k++) {
      double t = pow(10, k + 1);
      for (int a = 0; a < n; a++)
        for (int64_t i = 0; i < ne->n[a]; i++) ne->states[a][i] = t * d[a][i];
      e[k] = netenv_scalar(ne, energy);
      falls &= isfinite(e[k]) && (k == 0 || e[k] < e[k - 1]);
    }
    if (!falls || e[3] > -1000 * (1 + fabs(e0))) continue;
    found = true;
    CheckItem *it = report_add(
        r, "bounded-energy", "network", NULL, VERDICT_WARN,
        "E can go to -infinity: along the ray x = t d (d %s) it falls from %.4g at t = 10 to "
        "%.4g at t = 10^4 (docs/theory.md §1.4): an energy term outgrows the Lagrangians' "
        "Legendre transforms", dir == 0 ? "all +1" : dir == 1 ? "all -1" : dir == 2 ? "alternating +1, -1" : "random normal",
        e[0], e[3]);
    report_number(it, "E(0)", e0);
    report_number(it, "E(10 d)", e[0]);
    report_number(it, "E(10^4 d)", e[3]);
  }
  for (int a = 0; a < n; a++) {
    free(d[a]);
    memset(ne->states[a], 0, (size_t)ne->n[a] * sizeof(double));
  }
  free(d);
  return found;
}

void check_bounded_energy(NetEnv *ne, bool have_weights, CheckReport *r) {
  const Network *net = ne->net;
  const Model *m = net->model;
  int n = net->nlayers;
  Growth *growth = xcalloc((size_t)n + 1, sizeof *growth);
  for (int a = 0; a < n; a++) growth[a] = activation_growth(ne, a);
  int problems = 0, undecided = 0;
  for (int a = 0; a < n; a++)
    for (int b = a; b < n; b++) {
      if (!(coupled(net, a, b) || coupled(net, b, a))) continue;
      Growth ga = growth[a], gb = growth[b];
      if (ga == GROWTH_BOUNDED || gb == GROWTH_BOUNDED) continue;
      char subject[96];
      snprintf(subject, sizeof subject, a == b ? "layer %s" : "layers %s, %s", m->layers[a].name,
               m->layers[b].name);
      if (ga == GROWTH_FASTER || gb == GROWTH_FASTER) {
        int fast = ga == GROWTH_FASTER ? a : b, other = fast == a ? b : a;
        char partner[160];
        if (a == b) snprintf(partner, sizeof partner, "itself");
        else snprintf(partner, sizeof partner, "layer '%s', whose activation is %s", m->layers[other].name,
                      growth_text[growth[other]]);
        report_add(r, "bounded-energy", subject, &m->layers[fast].span, VERDICT_WARN,
                   "E can go to -infinity: the activation of layer '%s' grows faster than "
                   "linearly (its conjugate grows slower than a square) and it is coupled to "
                   "%s (docs/theory.md §1.4, rule 3); give %s a bounded activation (tanh, "
                   "sigmoid, softmax)", m->layers[fast].name, partner, a == b ? "it" : "one of them");
        problems++;
        continue;
      }
      if (ga != GROWTH_LINEAR || gb != GROWTH_LINEAR) {
        report_add(r, "bounded-energy", subject, &m->layers[a].span, VERDICT_SKIPPED,
                   "the growth of an activation is not known to the rules of docs/theory.md §1.4");
        undecided++;
        continue;
      }
      // Two layers with quadratic conjugates: bounded when the coupling is at most 1.
      int s = synapse_between(m, a, b);
      if (s < 0 || !have_weights) {
        report_add(r, "bounded-energy", subject, &m->layers[a].span, VERDICT_SKIPPED,
                   s < 0 ? (a == b ? "a linearly growing activation coupled to itself by an energy "
                                     "term: no rule of docs/theory.md §1.4 decides it"
                                   : "two linearly growing activations coupled by an energy term: "
                                     "no rule of docs/theory.md §1.4 decides it")
                         : "two linearly growing activations: E is bounded when the coupling's "
                           "norm is at most 1, which needs the weights");
        undecided++;
        continue;
      }
      const ModelWeight *w = &m->weights[m->synapses[s].weight];
      int64_t rows = ne->env.dims[w->dims[0]], cols = w->rank == 2 ? ne->env.dims[w->dims[1]] : 1;
      const double *data = ne->weights[m->synapses[s].weight];
      double size = a == b ? lambda_max(data, rows) : norm2(data, rows, cols);
      CheckItem *it = report_add(
          r, "bounded-energy", subject, &m->synapses[s].span, size <= 1 ? VERDICT_PASS : VERDICT_WARN,
          size <= 1 ? "two linearly growing activations coupled by '%s', whose %s is at most 1: E is bounded below"
                    : "E can go to -infinity: two linearly growing activations coupled by '%s', whose %s exceeds 1 "
                      "(docs/theory.md §1.4, rule 2); scale the weight down or bound an activation",
          w->name, a == b ? "largest eigenvalue" : "largest singular value");
      report_number(it, a == b ? "lambda_max(W)" : "norm2(W)", size);
      problems += size > 1;
    }
  // The rules decide pairs of layers; the rays test E itself, where weights are known.
  bool values = have_weights || net->nweights == 0;
  if (problems == 0 && values && probe_rays(ne, r)) problems++;
  if (problems == 0 && undecided == 0)
    report_add(r, "bounded-energy", "network", NULL, VERDICT_PASS,
               "no coupling found that lets E go to -infinity (docs/theory.md §1.4)");
  else if (problems == 0)
    report_add(r, "bounded-energy", "network", NULL, VERDICT_SKIPPED,
               "no rule of docs/theory.md §1.4 decides %d coupling(s)%s", undecided,
               values ? "; E did not fall without bound along the 11 rays probed (no proof)" : "");
  free(growth);
}

void check_energy_identity(NetEnv *ne, int samples, CheckReport *r) {
  const Network *net = ne->net;
  int n = net->nlayers;
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  double worst = 0, largest = 0, rises = 0, worst_rounding = 0;
  double **xdot = xcalloc((size_t)n + 1, sizeof *xdot);
  for (int s = 0; s < samples; s++) {
    for (int a = 0; a < n; a++)
      for (int64_t i = 0; i < ne->n[a]; i++) ne->states[a][i] = netenv_normal(ne);
    netenv_set_inputs(ne, 0, true);  // the I.g terms of E and I in u are checked too
    double xdot_max, predicted = netenv_energy_rate(ne, xdot, &xdot_max);
    // docs/theory.md §4.1.6: delta = eps^(1/3) / max(1, |xdot|_inf).
    double delta = CHECK_CBRT_EPS / fmax(1, xdot_max), e[2];
    for (int side = 0; side < 2; side++) {
      for (int a = 0; a < n; a++)
        for (int64_t i = 0; xdot[a] && i < ne->n[a]; i++)
          ne->states[a][i] += (side ? -2 : 1) * delta * xdot[a][i];
      e[side] = netenv_scalar(ne, energy);
    }
    double fd = (e[0] - e[1]) / (2 * delta);
    // E's own rounding, a few eps of the terms that cancel in it (sum |x.g| + |L| per layer,
    // and |E|), divided by 2 delta, bounds what the difference can resolve: a layer of sign
    // units, whose Lambda = x.sign(x) - sum|x| is 0 up to that rounding, needs it.
    for (int a = 0; a < n; a++)
      for (int64_t i = 0; xdot[a] && i < ne->n[a]; i++) ne->states[a][i] += delta * xdot[a][i];
    double terms = fabs(netenv_scalar(ne, energy));
    for (int a = 0; a < n; a++) {
      const LayerEq *l = &net->layers[a];
      double *g = xcalloc((size_t)ne->n[a] + 1, sizeof *g);
      netenv_eval(ne, l->g, g);
      for (int64_t i = 0; i < ne->n[a]; i++)
        terms += fabs(ne->states[a][i] * g[i]) + fabs(ne->inputs[a][i] * g[i]);
      terms += fabs(netenv_scalar(ne, l->L));
      free(g);
    }
    double rounding = 64 * CHECK_EPS * terms / (2 * delta);
    worst_rounding = fmax(worst_rounding, rounding / (1 + fabs(predicted)));
    double err = fmax(0, fabs(fd - predicted) - rounding) / (1 + fabs(predicted));
    worst = isnan(err) ? INFINITY : fmax(worst, err);
    largest = fmax(largest, fabs(predicted));
    rises = fmax(rises, predicted / (1 + fabs(predicted)));
  }
  for (int a = 0; a < n; a++) free(xdot[a]);
  free(xdot);
  bool ok = worst <= 1e-6 && rises <= 1e-12;
  CheckItem *it = report_add(
      r, "energy-identity", "network", NULL, ok ? VERDICT_PASS : VERDICT_FAIL,
      ok ? "dE/dt = -sum tau xdot' H xdot (docs/theory.md eq. 1.4) holds at %d sampled states"
         : "dE/dt disagrees with -sum tau xdot' H xdot (docs/theory.md eq. 1.4) at %d sampled "
           "states, or is positive: the energy, the currents or a Hessian is derived wrong",
      samples);
  report_number(it, "max |FD - (1.4)| beyond rounding / (1 + |(1.4)|)", worst);
  report_number(it, "E's rounding / 2 delta, relative", worst_rounding);
  report_number(it, "tolerance", 1e-6);
  report_number(it, "largest |dE/dt|", largest);
}

void check_has_energy(const Network *net, CheckReport *r) {
  const Model *m = net->model;
  if (!net->has_directed) return;
  for (int i = 0; i < m->nsynapses; i++)
    if (m->synapses[i].directed)
      report_add(r, "no-energy", "network", &m->synapses[i].span, VERDICT_WARN,
                 "the directed synapse '%s' adds to the currents without an energy: E is not "
                 "guaranteed to decrease and the energy checks are skipped; the fixed points and "
                 "their stability are checked instead (docs/theory.md §1.5)",
                 m->weights[m->synapses[i].weight].name);
}
