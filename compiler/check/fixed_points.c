// The fixed points of damc check (docs/theory.md §4.4): polished by Newton's method, then
// their stability in the range of H (§4.4.2), the spectrum of the Jacobian (§4.4.1), dead
// units and flat regions (§4.4.4, §4.5); and for a model without energy the residual
// Lyapunov function (§4.4.5). Networks of up to FIXED_POINT_DENSE_MAX state coordinates are
// solved with dense matrices (LAPACK); larger ones matrix-free (krylov.h).
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/checks.h"
#include "check/krylov.h"
#include "check/layer_checks.h"
#include "front/ast.h"
#include "support/common.h"

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

// The dense path holds d x d matrices of the stacked state (several at once) and solves them
// with LAPACK (LU, eigenproblems: about 10 d^3 flops): below FIXED_POINT_DENSE_MAX that is
// seconds, and the fixed points of larger networks are analysed matrix-free (krylov.h) in
// O(d m) memory. The residual Lyapunov function of a model without energy needs W' as well
// as W, which the matrix-free form does not give: it is computed densely (d matrix-vector
// products per sample) up to RESIDUAL_DENSE_MAX and skipped above, with the size.
enum { FIXED_POINT_DENSE_MAX = 1000, RESIDUAL_DENSE_MAX = 4096 };

// The number of state coordinates of the network, all layers stacked.
static int64_t state_dim(const NetEnv *ne) {
  int64_t d = 0;
  for (int a = 0; a < ne->net->nlayers; a++) d += ne->n[a];
  return d;
}

static bool dense_fits(const NetEnv *ne, const char *check, const char *subject, CheckReport *r) {
  int64_t d = state_dim(ne);
  if (d <= RESIDUAL_DENSE_MAX) return true;
  report_add(r, check, subject, NULL, VERDICT_SKIPPED,
             "the network has %lld state coordinates, above the %d this check solves densely "
             "(d x d matrices of %.2f GB each); it needs W' as well as W, which the matrix-free "
             "form does not have", (long long)d, RESIDUAL_DENSE_MAX, (double)d * (double)d * 8 / 1e9);
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
  ne->couplings++;
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

// Whether 𝐖 = du/dg is the same at every state: no derivative of the currents in the
// activations depends on an activation (the gradient of sum_A d_A . u_A in each g).
static bool coupling_constant(const Network *net) {
  ExprPool *p = net->pool;
  ExprId s = expr_const(p, 0);
  for (int a = 0; a < net->nlayers; a++) s = expr_add(p, s, expr_dot(p, net->layers[a].dir, net->layers[a].u));
  for (int b = 0; b < net->nlayers; b++)
    if (expr_get(p, diff_grad(p, s, net->layers[b].act))->acts) return false;
  return true;
}

// How much E changes when the dead units of layer a (`dead`: H_ii = 0 and g_i = 0,
// rectified units below threshold) move further into their dead region, x_i -> 2 x_i - 1:
// zero to rounding along a flat region (docs/theory.md §4.4.4). NaN when the layer has none.
static double flat_region_change(NetEnv *ne, int a, const bool *dead) {
  const Network *net = ne->net;
  int64_t n = ne->n[a];
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  if (net->layers[a].eliminated) return NAN;
  double *saved = xmalloc((size_t)n * sizeof *saved + 1);
  memcpy(saved, ne->states[a], (size_t)n * sizeof *saved);
  double before = netenv_scalar(ne, energy);
  int moved = 0;
  for (int64_t i = 0; i < n; i++)
    if (dead[i]) {
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

// One Newton step's linear solve, (𝐖𝐇 - I) delta = rhs, delta over rhs (d values); false
// when it cannot be solved (𝐖𝐇 - I singular to working precision).
typedef bool (*NewtonSolve)(void *user, double *rhs);

// Newton's method on r(x) = 𝐖g(x) + I - x, whose Jacobian is 𝐖𝐇 - I (docs/theory.md §4.4.1),
// from the states set in `ne`, until |r|_inf <= 1e-10 (1 + |x|_inf) and the last step is at
// most 1e-10 (1 + |x|_inf), or 64 steps. The step criterion matters at a degenerate point:
// where 𝐖𝐇 - I is (nearly) singular the residual is of higher order in the distance (x^3/3
// for x = tanh(x)), |r| is small long before x is near the point, and Newton converges only
// linearly. Leaves the states and activations at the last iterate.
static Polished newton(NetEnv *ne, const Stack *st, NewtonSolve solve, void *user) {
  int64_t d = st->dim;
  double *r = xcalloc((size_t)d + 1, sizeof *r);
  Polished p = {residual(ne, st, r), INFINITY, 0, false, NULL};
  for (; p.steps < 64; p.steps++) {
    double xmax = 0;
    for (int a = 0; a < ne->net->nlayers; a++)
      for (int64_t i = 0; i < ne->n[a]; i++) xmax = fmax(xmax, fabs(ne->states[a][i]));
    if ((p.resolved = p.rho <= 1e-10 && p.step <= 1e-10 * (1 + xmax))) break;
    for (int64_t i = 0; i < d; i++) r[i] = -r[i];
    if (!solve(user, r)) break;  // singular: a marginal point; keep the last iterate
    double dmax = 0;
    for (int a = 0; a < ne->net->nlayers; a++)
      for (int64_t i = 0; i < ne->n[a]; i++) {
        ne->states[a][i] += r[st->offset[a] + i];
        dmax = fmax(dmax, fabs(r[st->offset[a] + i]));
      }
    p.step = dmax / (1 + xmax);
    p.rho = residual(ne, st, r);
  }
  free(r);
  return p;
}

typedef struct {
  NetEnv *ne;
  const Stack *st;
  const double *w;
} DenseNewton;

// By LU (LAPACK) on 𝐖𝐇 - I with 𝐇 at the current states and 𝐖 fixed: exact for synapses (u
// is linear in g); through energy terms 𝐖 changes little and Newton converges linearly.
static bool dense_solve(void *user, double *rhs) {
  DenseNewton *dn = user;
  int64_t d = dn->st->dim;
  double *jac = xcalloc((size_t)(d * d) + 1, sizeof *jac);
  double *hess = xcalloc((size_t)(d * d) + 1, sizeof *hess);
  stacked_hessian(dn->ne, dn->st, hess);
  matmul(dn->w, false, hess, jac, d);
  for (int64_t i = 0; i < d; i++) jac[i * d + i] -= 1;
  lapack_int *pivots = xcalloc((size_t)d + 1, sizeof *pivots);
  bool solved = LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)d, 1, jac, (lapack_int)d, pivots, rhs, 1) == 0;
  free(pivots);
  free(jac);
  free(hess);
  return solved;
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

// The numbers of Newton's method on an item.
static void report_newton(CheckItem *it, const Polished *pol) {
  report_number(it, "residual |u - x|_inf / (1 + |x|_inf)", pol->rho);
  report_number(it, "Newton steps", pol->steps);
  report_number(it, "last Newton step / (1 + |x|_inf)", pol->step);
}

// The stability item of a fixed point of a model with an energy: lambda_max(B'WB) against 1
// (docs/theory.md §4.4.2), within CHECK_MARGIN plus `slack` (the Lanczos bound) marginal; a
// point Newton did not resolve is a warning whatever lambda says, since lambda was taken
// away from the point. `matrix_free`: the state coordinates, or 0 for the dense path.
static CheckItem *report_stability(CheckReport *r, const char *subject, double top, double slack,
                                   const Polished *pol, int64_t matrix_free) {
  char how[96] = "";
  if (matrix_free) snprintf(how, sizeof how, ", matrix-free: %lld state coordinates", (long long)matrix_free);
  double band = CHECK_MARGIN + slack;
  CheckItem *it;
  if (isnan(top))
    it = report_add(r, "stability", subject, NULL, VERDICT_SKIPPED,
                    "LAPACK could not diagonalise H, B'WB or the Lanczos tridiagonal%s", how);
  else if (!pol->resolved && fabs(top - 1) > band)
    it = report_add(r, "stability", subject, NULL, VERDICT_WARN,
                    "not resolved: Newton's method did not reach |u - x| <= 1e-10 with a step <= "
                    "1e-10 in %d steps (a degenerate or marginal fixed point, where it converges "
                    "only linearly); lambda_max(B'WB) at the last iterate is %.9g (docs/theory.md "
                    "§4.4.1%s)", pol->steps, top, how);
  else if (pol->resolved && top < 1 - band)
    it = report_add(r, "stability", subject, NULL, VERDICT_PASS,
                    "stable: lambda_max(B'WB) < 1 (docs/theory.md §4.4.2%s); its flat region, if "
                    "any, lies in its basin (§4.4.4)", how);
  else if (pol->resolved && top > 1 + band)
    it = report_add(r, "stability", subject, NULL, VERDICT_FAIL,
                    "unstable: lambda_max(B'WB) > 1 (docs/theory.md §4.4.2%s): the run came to "
                    "rest at a saddle or a maximum", how);
  else
    it = report_add(r, "stability", subject, NULL, VERDICT_WARN,
                    "marginal: lambda_max(B'WB) = 1 within %.1e (docs/theory.md §4.4.2%s)%s", band,
                    how, pol->resolved ? "" : "; Newton's method converged only linearly, as it "
                                              "does at a degenerate point");
  report_number(it, "lambda_max(B'WB)", top);
  report_newton(it, pol);
  return it;
}

// Stability, the Jacobian's spectrum and dead units at one fixed point (states set in `ne`).
static void dense_fixed_point(NetEnv *ne, const double *tau, int index, const Polished *pol,
                              CheckReport *r) {
  const Network *net = ne->net;
  const Model *m = net->model;
  int n = net->nlayers;
  Stack st = stack_layers(ne);
  int64_t d = st.dim;
  char subject[64];
  snprintf(subject, sizeof subject, "fixed point %d", index);
  for (int a = 0; a < n; a++) netenv_eval(ne, net->layers[a].g, ne->acts[a]);
  // 𝐖 = du/dg at the fixed point: Newton's when the same at every state, else computed here.
  double *own = pol->w ? NULL : coupling(ne, &st), *w = own ? own : pol->w;
  double *hess = xcalloc((size_t)(d * d) + 1, sizeof *hess);
  bool eliminated = false;
  for (int a = 0; a < n; a++) {
    eliminated |= net->layers[a].eliminated;
    double *h = layer_hessian(ne, a);
    int64_t na = ne->n[a], o = st.offset[a];
    bool *dead_units = xcalloc((size_t)na + 1, sizeof *dead_units);
    for (int64_t i = 0; i < na; i++) dead_units[i] = h[i * na + i] == 0 && ne->acts[a][i] == 0;
    double flat = flat_region_change(ne, a, dead_units);  // before the eigensolver overwrites h
    free(dead_units);
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
  if (!eliminated) js = jacobian_spectrum(ne, &st, w, hess, tau);
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
    // 𝐖 of an energy model is symmetric; take its symmetric part (in place: Newton's is not
    // used after this).
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < i; j++) w[i * d + j] = w[j * d + i] = 0.5 * (w[i * d + j] + w[j * d + i]);
    it = report_stability(r, subject, lambda_max_bwb(hess, w, d), 0, pol, 0);
  }
  if (net->has_directed) report_newton(it, pol);
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
  free(own);
  free(hess);
  free(st.offset);
}

// ---- Matrix-free (docs/theory.md §4.4 with krylov.h) ----

typedef struct {
  NetEnv *ne;
  const Stack *st;
  double *up, *down, *hx;  // d each
} Ops;

// y = 𝐇 x: every layer's Hessian-vector product.
static void op_hessian(void *user, const double *x, double *y) {
  Ops *o = user;
  for (int a = 0; a < o->ne->net->nlayers; a++) {
    memcpy(o->ne->dirs[a], x + o->st->offset[a], (size_t)o->ne->n[a] * sizeof(double));
    netenv_eval(o->ne, o->ne->net->layers[a].hvp, y + o->st->offset[a]);
  }
}

// out = 𝐖 y = (du/dg) y at the current activations, by a central difference of the currents
// along y: exact for synapses (u is linear in g); through energy terms, the step keeps every
// activation within 1e-4 (1 + |g|) of its value, as the dense coupling() does.
static void op_coupling(void *user, const double *y, double *out) {
  Ops *o = user;
  NetEnv *ne = o->ne;
  const Network *net = ne->net;
  double ymax = 0, gmax = 0;
  for (int64_t i = 0; i < o->st->dim; i++) ymax = fmax(ymax, fabs(y[i]));
  if (ymax == 0) {
    memset(out, 0, (size_t)o->st->dim * sizeof *out);
    return;
  }
  for (int b = 0; b < net->nlayers; b++)
    for (int64_t k = 0; k < ne->n[b]; k++) gmax = fmax(gmax, fabs(ne->acts[b][k]));
  double h = 1e-4 * fmax(1, gmax) / ymax;
  for (int side = 0; side < 2; side++) {
    for (int b = 0; b < net->nlayers; b++)
      for (int64_t k = 0; k < ne->n[b]; k++) ne->acts[b][k] += (side ? -2 : 1) * h * y[o->st->offset[b] + k];
    for (int a = 0; a < net->nlayers; a++)
      netenv_eval(ne, net->layers[a].u, (side ? o->down : o->up) + o->st->offset[a]);
  }
  for (int b = 0; b < net->nlayers; b++)
    for (int64_t k = 0; k < ne->n[b]; k++) ne->acts[b][k] += h * y[o->st->offset[b] + k];
  for (int64_t i = 0; i < o->st->dim; i++) out[i] = (o->up[i] - o->down[i]) / (2 * h);
}

// y = (𝐖𝐇 - I) x: the Jacobian of r(x) = u(x) - x.
static void op_newton(void *user, const double *x, double *y) {
  Ops *o = user;
  op_hessian(o, x, o->hx);
  op_coupling(o, o->hx, y);
  for (int64_t i = 0; i < o->st->dim; i++) y[i] -= x[i];
}

// Stability, dead units and flat regions at one fixed point of a network too large for
// d x d matrices: Newton-GMRES polishes it, Lanczos in the H product gives lambda_max(B'WB),
// and each layer's convexity and dead units at the point come from its structured spectrum
// (layer_checks.h). The Jacobian's spectrum is not computed (it would need d eigenvalues).
static void krylov_fixed_point(NetEnv *ne, int index, uint64_t seed, const Polished *pol,
                               CheckReport *r) {
  const Network *net = ne->net;
  int n = net->nlayers;
  Stack st = stack_layers(ne);
  int64_t d = st.dim;
  Ops ops = {ne, &st, xcalloc((size_t)d + 1, sizeof(double)), xcalloc((size_t)d + 1, sizeof(double)),
             xcalloc((size_t)d + 1, sizeof(double))};
  for (int a = 0; a < n; a++) netenv_eval(ne, net->layers[a].g, ne->acts[a]);
  double *start = xcalloc((size_t)d + 1, sizeof *start);
  for (int64_t i = 0; i < d; i++) start[i] = netenv_normal(ne);
  KrylovTop top = krylov_top_eig(op_hessian, op_coupling, &ops, d, d < 300 ? (int)d : 300, 1e-12, start);
  char subject[64];
  snprintf(subject, sizeof subject, "fixed point %d", index);
  CheckItem *it = report_stability(r, subject, top.top, top.bound, pol, d);
  report_number(it, "Lanczos bound", top.bound);
  report_number(it, "Lanczos steps", top.steps);
  ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
  report_number(it, "E", netenv_scalar(ne, energy));
  double *x = xcalloc((size_t)d + 1, sizeof *x);
  for (int a = 0; a < n; a++) memcpy(x + st.offset[a], ne->states[a], (size_t)ne->n[a] * sizeof *x);
  report_vector(it, "x*", x, (size_t)d);
  free(x);
  // Per layer: convexity and dead units at the point; the flat region of its dead units
  // (g_i = 0 and H_ii = 0, by the Hessian-vector product with e_i, for the units with g_i = 0).
  for (int a = 0; a < n; a++) {
    CheckItem *dead_item =
        check_layer_at_states(net, a, ne->env.dims, ne->env.params, ne->states[a], 1, subject, seed, r);
    int64_t na = ne->n[a];
    bool *dead = xcalloc((size_t)na + 1, sizeof *dead);
    double *col = xcalloc((size_t)na + 1, sizeof *col);
    for (int64_t i = 0; i < na; i++) {
      if (ne->acts[a][i] != 0) continue;
      memset(ne->dirs[a], 0, (size_t)na * sizeof(double));
      ne->dirs[a][i] = 1;
      netenv_eval(ne, net->layers[a].hvp, col);
      dead[i] = col[i] == 0;
    }
    double flat = flat_region_change(ne, a, dead);
    if (!isnan(flat)) report_number(dead_item, "E change along the flat region", flat);
    free(dead);
    free(col);
  }
  free(start);
  free(ops.up);
  free(ops.down);
  free(ops.hx);
  free(st.offset);
}

// GMRES on 𝐖(𝐇v) - v, from delta = 0, to 1e-12 relative (at most 400 products); a solve that
// does not get below 1e-6 counts as singular.
static bool krylov_solve(void *user, double *rhs) {
  Ops *o = user;
  int64_t d = o->st->dim;
  double *delta = xcalloc((size_t)d + 1, sizeof *delta);
  bool ok = krylov_gmres(op_newton, o, d, rhs, delta, 50, 400, 1e-12) <= 1e-6;
  memcpy(rhs, delta, (size_t)d * sizeof *delta);
  free(delta);
  return ok;
}

Polished fixed_point_polish(NetEnv *ne) {
  Stack st = stack_layers(ne);
  for (int a = 0; a < ne->net->nlayers; a++) netenv_eval(ne, ne->net->layers[a].g, ne->acts[a]);
  Polished p;
  if (st.dim <= FIXED_POINT_DENSE_MAX) {
    // 𝐖 = du/dg at the run's state (see dense_solve), kept for the analysis of the point
    // when it is the same there.
    double *w = coupling(ne, &st);
    DenseNewton dn = {ne, &st, w};
    p = newton(ne, &st, dense_solve, &dn);
    if (coupling_constant(ne->net)) p.w = w;
    else free(w);
  } else {
    Ops ops = {ne, &st, xcalloc((size_t)st.dim + 1, sizeof(double)),
               xcalloc((size_t)st.dim + 1, sizeof(double)), xcalloc((size_t)st.dim + 1, sizeof(double))};
    p = newton(ne, &st, krylov_solve, &ops);
    free(ops.up);
    free(ops.down);
    free(ops.hx);
  }
  free(st.offset);
  return p;
}

void polished_free(Polished *p) {
  free(p->w);
  p->w = NULL;
}

void check_fixed_point(NetEnv *ne, const double *tau, int index, uint64_t seed, const Polished *pol,
                       CheckReport *r) {
  int64_t d = state_dim(ne);
  if (d <= FIXED_POINT_DENSE_MAX) dense_fixed_point(ne, tau, index, pol, r);
  else if (ne->net->has_directed)
    report_add(r, "stability", "network", NULL, VERDICT_SKIPPED,
               "the network has %lld state coordinates, above the %d the Jacobian's spectrum is "
               "computed for, and without an energy (a directed synapse) the matrix-free "
               "criterion of docs/theory.md §4.4.2 does not hold", (long long)d, FIXED_POINT_DENSE_MAX);
  else krylov_fixed_point(ne, index, seed, pol, r);
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

