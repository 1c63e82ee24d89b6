// The per-layer checks of damc check (compiler/check/layer_checks.h; docs/theory.md §4.1,
// §4.2, §4.5):
//   * every prelude Lagrangian (at 8 units: the full form and dsyevd with the closed form
//     as a cross-check; at 100: the directional form and the closed-form spectra; beta 1.7
//     and 20) and every example pass the derivative and convexity checks, each layer in
//     well under a second;
//   * hand-written non-convex Lagrangians (sum(x^3), sum(x*sigmoid(x)), -logsumexp(x)) and a
//     layer norm with a per-unit gain fail convexity with a counterexample whose eigenvalue is
//     recomputed here independently;
//   * faults injected into the derived equations (g*(1+1e-4), g + 1e-5 x^2, H and Hd, or Hd
//     alone, scaled by 1+1e-4) are caught by the derivative check; the correct equations pass;
//   * dead neurons: a relu layer's dead count is its number of non-positive coordinates; the
//     log-sum-exp null direction 1 is structural, not dead;
//   * the secular-equation eigenvalues against LAPACK, the sharpness beta_L, the sample
//     points, and the report's items.
// Tolerances are the checks' own (docs/theory.md); the few of this file say why they hold.
#include <dirent.h>
#include <lapacke.h>
#include <time.h>

#include "check/layer_checks.h"
#include "check/report.h"
#include "derive_fixture.h"
#include "front/ast.h"

static const double EPS = 2.220446049250313e-16;

// Processor time: the speed bounds below must hold however loaded the machine is.
static double cpu_seconds(void) { return (double)clock() / CLOCKS_PER_SEC; }

// The worst figures over every passing case, printed at the end.
static double worst_eg, worst_eh, worst_rel = INFINITY, worst_gap, slowest_layer;

typedef struct {
  DerivResult d;
  ConvexResult c;
  DeadResult dead;
  double beta;
  double seconds;
} Run;

// Every check on layer `a` of the fixture's network, with the equations `eq` (NULL: the
// derived ones) and the weights bound in the fixture.
static Run run_layer(Fixture *f, int a, const LayerEq *eq, uint64_t seed) {
  Run r;
  double t0 = cpu_seconds();
  LayerCheckCtx ctx;
  layer_ctx_init_eq(&ctx, f->net, a, eq ? eq : &f->net->layers[a], f->dims, f->params,
                    (const double *const *)f->weights);
  SampleSet pts;
  layer_samples(&ctx, seed, 0, &pts);
  layer_check_derivatives(&ctx, &pts, seed, &r.d);
  LayerSpectrum *spectra = layer_spectra(&ctx, &pts);
  layer_check_convexity(&ctx, &pts, spectra, &r.c);
  layer_dead_neurons(&ctx, &pts, spectra, &pts, spectra, &r.dead);
  free(spectra);
  r.beta = ctx.beta;
  r.seconds = cpu_seconds() - t0;
  sample_set_free(&pts);
  return r;
}

static void note_pass(const Run *r) {
  worst_eg = fmax(worst_eg, r->d.max_eg);
  worst_eh = fmax(worst_eh, r->d.max_eh);
  worst_rel = fmin(worst_rel, r->c.min_rel);
  worst_gap = fmax(worst_gap, r->c.max_closed_gap);
  slowest_layer = fmax(slowest_layer, r->seconds);
}

static bool open_layer(Fixture *f, const char *lagrangian, int n, double beta, const char *extra) {
  char text[1024];
  snprintf(text, sizeof text, "dim N = %d;\nparam beta = %.17g;\n%slayer x[N] { L = %s; }\n", n,
           beta, extra ? extra : "", lagrangian);
  bool ok = fx_open(f, text, n, 11);
  CHECK(ok);
  return ok;
}

// ---- Every prelude Lagrangian passes ----

typedef struct {
  const char *lagrangian;
  unsigned structural;  // NULL_* bits expected
} Prelude;

static const Prelude prelude[] = {
    {"lagr_identity(x)", 0},
    {"lagr_relu(x)", 0},
    {"lagr_repu(x, 3)", 0},
    {"lagr_repu(x, 2.5)", 0},
    {"lagr_leaky(x)", 0},
    {"lagr_leaky(x, 0.3)", 0},
    {"lagr_exp(x, beta)", 0},
    {"lagr_rexp(x, beta)", 0},
    {"lagr_tanh(x, beta)", 0},
    {"lagr_sigmoid(x, beta)", 0},
    {"lagr_softmax(x, beta)", NULL_ONES},
    {"logsumexp(beta * x) / beta", NULL_ONES},
    {"lagr_ghostmax(x, beta)", 0},
    {"lagr_layernorm(x)", NULL_ONES},
    {"lagr_layernorm(x, 1.3, 0.2, 1e-3)", NULL_ONES},
    {"lagr_layernorm(x, 2, 0, 0)", NULL_ONES | NULL_CENTRED | NULL_X},
    {"lagr_spherical(x)", 0},
    {"lagr_spherical(x, gamma = 1.3, delta = 0.2, eps = 1e-3)", 0},
    {"lagr_spherical(x, 1, 0, 0)", NULL_X},
};

static void test_prelude(void) {
  static const int sizes[] = {8, 100};
  static const double betas[] = {1.7, 20};
  printf("%-55s %4s %5s %9s %9s %10s %9s %8s\n", "prelude Lagrangian", "n", "beta", "e_g", "e_H",
         "lmin/scale", "gap", "seconds");
  for (size_t c = 0; c < sizeof prelude / sizeof *prelude; c++)
    for (int s = 0; s < 2; s++)
      for (int b = 0; b < 2; b++) {
        Fixture f;
        if (!open_layer(&f, prelude[c].lagrangian, sizes[s], betas[b], NULL)) continue;
        Run r = run_layer(&f, 0, NULL, 100 + (uint64_t)c);
        bool ok = r.d.verdict == VERDICT_PASS && r.c.verdict == VERDICT_PASS;
        CHECK(r.d.verdict == VERDICT_PASS);
        CHECK(r.c.verdict == VERDICT_PASS);
        CHECK(r.d.directional == (sizes[s] > LAYER_CHECK_DIRECTIONAL_N));
        CHECK(r.d.points_checked >= 90);
        CHECK_EQ(r.dead.structural, prelude[c].structural);
        // The closed-form spectra agree with dsyevd (small layers; relative to the scale of H).
        if (sizes[s] <= LAYER_CHECK_DIRECTIONAL_N && r.c.max_closed_gap >= 0)
          CHECK(r.c.max_closed_gap <= 1e-13);
        if (!ok || b == 0)
          printf("%-55s %4d %5.1f %9.2e %9.2e %10.2e %9.2e %8.4f%s\n", prelude[c].lagrangian,
                 sizes[s], betas[b], r.d.max_eg, r.d.max_eh, r.c.min_rel, r.c.max_closed_gap,
                 r.seconds, ok ? "" : "  FAILED");
        note_pass(&r);
        // Times are printed, never asserted: a test does not fail for being slow.
        fx_close(&f);
      }
}

// ---- Every example passes ----

static const CheckItem *find_item(const CheckReport *r, const char *check, const char *subject) {
  for (size_t i = 0; i < r->count; i++)
    if (!strcmp(r->items[i].check, check) && !strcmp(r->items[i].subject, subject))
      return &r->items[i];
  return NULL;
}

static double item_number(const CheckItem *it, const char *name) {
  for (size_t k = 0; it && k < it->nnumbers; k++)
    if (!strcmp(it->numbers[k].name, name)) return it->numbers[k].value;
  return NAN;
}

static void check_example(const char *path) {
  char *text = fx_read_text(path);
  CHECK(text != NULL);
  if (!text) return;
  Fixture f;
  bool ok = fx_open(&f, text, 32, 5);  // unbound dims (K, N) get 32 units
  free(text);
  CHECK(ok);
  if (!ok) return;
  CheckReport report = {0};
  double t0 = cpu_seconds();
  check_layers(f.net, f.dims, f.params, 2024, &report);
  double seconds = cpu_seconds() - t0;
  CHECK_EQ(report.count, 3 * (size_t)f.net->nlayers);
  for (int a = 0; a < f.net->nlayers; a++) {
    char subject[96];
    snprintf(subject, sizeof subject, "layer %s", f.net->layers[a].name);
    const CheckItem *d = find_item(&report, "derivatives", subject);
    const CheckItem *c = find_item(&report, "convexity", subject);
    const CheckItem *dn = find_item(&report, "dead-neurons", subject);
    CHECK(d && c && dn);
    if (!d || !c || !dn) continue;
    CHECK(d->verdict == VERDICT_PASS);
    CHECK(c->verdict == VERDICT_PASS);
    CHECK(dn->verdict == VERDICT_PASS);
    // Each item is placed at the layer's Lagrangian.
    const Span *where = &f.m->layers[a].lagrangian->span;
    CHECK(d->has_where && d->where.begin == where->begin && d->where.end == where->end);
    CHECK(c->has_where && c->where.begin == where->begin);
    worst_eg = fmax(worst_eg, item_number(d, "max e_g"));
    worst_eh = fmax(worst_eh, item_number(d, "max e_H"));
    worst_rel = fmin(worst_rel, item_number(c, "min lambda_min/scale"));
    printf("%-40s %-10s n=%-4lld beta_L=%-4g e_g %.2e  e_H %.2e  lambda_min/scale %+.2e  dead %.2f  "
           "%s\n",
           path + (strrchr(path, '/') ? strrchr(path, '/') - path + 1 : 0), subject,
           (long long)fx_layer_size(&f, a), item_number(d, "beta_L"), item_number(d, "max e_g"),
           item_number(d, "max e_H"), item_number(c, "min lambda_min/scale"),
           item_number(dn, "dead fraction"), sb_str(&c->reason));
  }
  printf("  %d layers in %.3f s (processor time)\n", f.net->nlayers, seconds);
  // (printed above, never asserted: a test does not fail for being slow)
  slowest_layer = fmax(slowest_layer, seconds / f.net->nlayers);
  report_free(&report);
  fx_close(&f);
}

static void test_examples(const char *root) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/examples", root);
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  int count = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".dam")) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    check_example(path);
    count++;
  }
  if (d) closedir(d);
  CHECK(count >= 5);
}

// ---- Non-convex Lagrangians fail convexity with a counterexample ----

// The smallest eigenvalue of the symmetric part of a dense matrix, by LAPACK, independently
// of the check's own path.
static double lambda_min_dense(const double *h, int n) {
  if (n <= 0) return NAN;
  double *a = calloc((size_t)n * (size_t)n, sizeof *a), *w = calloc((size_t)n, sizeof *w);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) a[i * n + j] = (h[i * n + j] + h[j * n + i]) / 2;
  LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, a, n, w);
  double m = w[0];
  free(a);
  free(w);
  return m;
}

static double sig(double z) { return 1 / (1 + exp(-z)); }
// F'' of each Lagrangian, in closed form: the counterexample's eigenvalue recomputed.
static double lmin_cube(const double *x, int n) {
  double m = INFINITY;
  for (int i = 0; i < n; i++) m = fmin(m, 6 * x[i]);
  return m;
}
static double lmin_silu(const double *x, int n) {
  double m = INFINITY;
  for (int i = 0; i < n; i++) {
    double s = sig(x[i]);
    m = fmin(m, s * (1 - s) * (2 + x[i] * (1 - 2 * s)));
  }
  return m;
}
static double lmin_neg_lse(const double *x, int n) {
  double mx = -INFINITY, z = 0, p[128], h[128 * 128];
  for (int i = 0; i < n; i++) mx = fmax(mx, x[i]);
  for (int i = 0; i < n; i++) z += exp(x[i] - mx);
  for (int i = 0; i < n; i++) p[i] = exp(x[i] - mx) / z;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) h[i * n + j] = -((i == j) * p[i] - p[i] * p[j]);
  return lambda_min_dense(h, n);
}

static void check_nonconvex(const char *lagrangian, int n, double (*lmin)(const double *, int)) {
  Fixture f;
  if (!open_layer(&f, lagrangian, n, 1, NULL)) return;
  Run r = run_layer(&f, 0, NULL, 3);
  CHECK(r.c.verdict == VERDICT_FAIL);
  CHECK(r.d.verdict == VERDICT_PASS);  // the derivatives are right; L is not convex
  CHECK(r.c.worst_point >= 0 && r.c.worst_lambda < -r.c.worst_tol);
  // The counterexample, recomputed: the same state has the same negative eigenvalue.
  LayerCheckCtx ctx;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  SampleSet pts;
  layer_samples(&ctx, 3, 0, &pts);
  const double *x = pts.x + (size_t)r.c.worst_point * (size_t)n;
  double want = lmin(x, n);
  CHECK(fabs(r.c.worst_lambda - want) <= 1e-12 * fmax(1, fabs(want)));
  // The report: FAIL, with the state and the eigenvalue.
  CheckReport report = {0};
  report_layer_convexity(&report, &ctx, &pts, &r.c, "sample points");
  CHECK(report.items[0].verdict == VERDICT_FAIL);
  CHECK(strstr(sb_str(&report.items[0].reason), "not convex") != NULL);
  CHECK(item_number(&report.items[0], "counterexample lambda") == r.c.worst_lambda);
  CHECK(item_number(&report.items[0], "counterexample x[0]") == x[0]);
  printf("%-28s n=%-3d FAIL convexity: lambda %.4g at '%s' (|x| %.3g), closed form %.4g\n",
         lagrangian, n, r.c.worst_lambda, pts.label[r.c.worst_point],
         item_number(&report.items[0], "counterexample |x|"), want);
  printf("    %s\n", sb_str(&report.items[0].reason));
  report_free(&report);
  sample_set_free(&pts);
  fx_close(&f);
}

// The layer norm with a gain gam per unit (a weight: the language keeps weights out of
// Lagrangians, so the equations are built here): the activation g = gam * (x - mean x)/s,
// which is the gradient of no Lagrangian (docs/theory.md §3.2): its Jacobian diag(gam) H is
// not symmetric, and its quadratic form is indefinite whenever gam is not constant
// (v = 1 + t w: v'diag(gam)Hv = t (H gam).w + O(t^2)), so the energy can rise. Also the
// Lagrangian N sqrt(mean(gam (x - mean x)^2) + eps), convex for gam >= 0, not with a negative gain.
static void check_layernorm_gain(int n) {
  Fixture f;
  if (!open_layer(&f, "lagr_layernorm(x)", n, 1, "weight gam[N];\n")) return;
  ExprPool *p = f.net->pool;
  const LayerEq *l = &f.net->layers[0];
  ExprId gam = expr_leaf(p, EX_WEIGHT, 0, expr_get(p, l->state)->shape);
  for (int i = 0; i < n; i++) f.weights[0][i] = 0.5 + (double)((i * 7) % 5) / 2;  // 0.5 .. 2.5
  // The activation with a per-unit gain.
  LayerEq act = *l;
  act.g = expr_mul(p, gam, l->g);
  act.hessian = diff_jacobian(p, act.g, l->state);
  act.hvp = act.hessian.dense ? diff_jvp(p, act.g, l->state, l->dir)
                              : diff_jac_apply(p, &act.hessian, l->dir);
  Run r = run_layer(&f, 0, &act, 9);
  CHECK(r.d.verdict == VERDICT_FAIL);  // g is not the gradient of L, H not symmetric
  CHECK(r.c.verdict == VERDICT_FAIL);
  CHECK(r.c.worst_lambda < -r.c.worst_tol);
  printf("layer norm, gain per unit (activation), n=%d: derivatives %s (max e_g %.2g, symmetry %.3g eps|H|), "
         "convexity FAIL, lambda %.4g (tolerance %.3g)\n",
         n, verdict_name(r.d.verdict), r.d.max_eg, r.d.max_sym, r.c.worst_lambda, -r.c.worst_tol);
  // The Lagrangian with a per-unit gain inside: convex with the gains above, not with one
  // negative gain.
  ExprId N = expr_numel(p, expr_get(p, l->state)->shape);
  ExprId c = expr_sub(p, l->state, expr_div(p, expr_sum(p, l->state), N));
  ExprId var = expr_div(p, expr_sum(p, expr_mul(p, gam, expr_pow(p, c, expr_const(p, 2)))), N);
  LayerEq lag = *l;
  lag.L = expr_mul(p, N, expr_pow(p, expr_add(p, var, expr_const(p, 1e-5)), expr_const(p, 0.5)));
  lag.g = diff_grad(p, lag.L, l->state);
  lag.hessian = diff_jacobian(p, lag.g, l->state);
  lag.hvp = lag.hessian.dense ? diff_jvp(p, lag.g, l->state, l->dir)
                              : diff_jac_apply(p, &lag.hessian, l->dir);
  r = run_layer(&f, 0, &lag, 9);
  CHECK(r.d.verdict == VERDICT_PASS);
  CHECK(r.c.verdict == VERDICT_PASS);
  f.weights[0][1] = -0.7;
  r = run_layer(&f, 0, &lag, 9);
  CHECK(r.d.verdict == VERDICT_PASS);
  CHECK(r.c.verdict == VERDICT_FAIL);
  printf("layer norm, gain per unit (Lagrangian, one gain -0.7), n=%d: convexity FAIL, lambda %.4g\n",
         n, r.c.worst_lambda);
  fx_close(&f);
}

static void test_nonconvex(void) {
  check_nonconvex("sum(x^3)", 8, lmin_cube);
  check_nonconvex("sum(x^3)", 100, lmin_cube);
  check_nonconvex("sum(x*sigmoid(x))", 8, lmin_silu);
  check_nonconvex("sum(x*sigmoid(x))", 100, lmin_silu);
  check_nonconvex("-logsumexp(x)", 8, lmin_neg_lse);
  check_nonconvex("-logsumexp(x)", 100, lmin_neg_lse);
  check_layernorm_gain(8);
  check_layernorm_gain(100);
}

// ---- Injected faults are caught ----

typedef enum { FAULT_G_SCALE, FAULT_G_SQUARE, FAULT_H_SCALE, FAULT_HVP } Fault;

static void check_fault(const char *lagrangian, int n, Fault fault) {
  Fixture f;
  if (!open_layer(&f, lagrangian, n, 1.7, NULL)) return;
  ExprPool *p = f.net->pool;
  const LayerEq *l = &f.net->layers[0];
  Run good = run_layer(&f, 0, NULL, 21);
  CHECK(good.d.verdict == VERDICT_PASS);
  LayerEq bad = *l;
  const char *what = "";
  switch (fault) {
  case FAULT_G_SCALE:
    bad.g = expr_scale(p, 1 + 1e-4, l->g);
    what = "g*(1+1e-4)";
    break;
  case FAULT_G_SQUARE:
    bad.g = expr_add(p, l->g, expr_scale(p, 1e-5, expr_pow(p, l->state, expr_const(p, 2))));
    what = "g + 1e-5 x^2";
    break;
  case FAULT_H_SCALE:  // the small form reads H's structure, the directional one H d
    if (bad.hessian.diag) bad.hessian.diag = expr_scale(p, 1 + 1e-4, l->hessian.diag);
    for (int k = 0; k < bad.hessian.nterms; k++) bad.hessian.u[k] = expr_scale(p, 1 + 1e-4, l->hessian.u[k]);
    bad.hvp = expr_scale(p, 1 + 1e-4, l->hvp);
    what = "H*(1+1e-4)";
    break;
  case FAULT_HVP:  // the Hessian-vector product alone (the kernels' form of H)
    bad.hvp = expr_scale(p, 1 + 1e-4, l->hvp);
    what = "Hd*(1+1e-4)";
    break;
  }
  Run r = run_layer(&f, 0, &bad, 21);
  CHECK(r.d.verdict == VERDICT_FAIL);
  printf("%-28s n=%-3d correct: e_g %.1e e_H %.1e PASS; %-13s e_g %.1e e_H %.1e %s (worst: %s)\n",
         lagrangian, n, good.d.max_eg, good.d.max_eh, what, r.d.max_eg, r.d.max_eh,
         verdict_name(r.d.verdict), r.d.worst_what);
  fx_close(&f);
}

static void test_faults(void) {
  static const char *lagrangians[] = {"lagr_tanh(x, beta)", "lagr_softmax(x, beta)",
                                      "lagr_layernorm(x)", "lagr_relu(x)"};
  for (size_t k = 0; k < sizeof lagrangians / sizeof *lagrangians; k++)
    for (int n = 8; n <= 100; n += 92)
      for (int fault = 0; fault < 4; fault++) check_fault(lagrangians[k], n, (Fault)fault);
}

// ---- Dead neurons ----

static void test_dead_relu(void) {
  Fixture f;
  if (!open_layer(&f, "lagr_relu(x)", 8, 1, NULL)) return;
  LayerCheckCtx ctx;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  // States with a known number of non-positive coordinates (0 counts: H = step(0) = 0).
  static const double states[3][8] = {{-1, 2, -0.5, 0, 3, -2, 1, 0.1},
                                      {1, 2, 3, 4, 5, 6, 7, 8},
                                      {-1e-3, -5, 0, 0, -7, 1e-9, -1e300, 2}};
  static const int nonpos[3] = {4, 0, 6};
  for (int s = 0; s < 3; s++) {
    DeadAt at;
    layer_dead_at(&ctx, states[s], 0, NULL, &at);
    CHECK(at.finite && at.additive);
    CHECK_EQ(at.dead, nonpos[s]);
    CHECK_EQ(at.nullity, nonpos[s]);
  }
  // Random states: the count is the number of non-positive coordinates, every time.
  for (int s = 0; s < 50; s++) {
    double x[8];
    int want = 0;
    for (int i = 0; i < 8; i++) x[i] = fx_normal(&f), want += x[i] <= 0;
    DeadAt at;
    layer_dead_at(&ctx, x, 0, NULL, &at);
    CHECK_EQ(at.dead, want);
  }
  // The report at given states.
  CheckReport report = {0};
  check_layer_at_states(f.net, 0, f.dims, f.params, &states[0][0], 3, "fixed points", 1, &report);
  CHECK_EQ(report.count, 2);  // convexity, then dead neurons
  CHECK(!strcmp(report.items[0].check, "convexity") && report.items[0].verdict == VERDICT_PASS);
  CHECK(item_number(&report.items[0], "points") == 3);
  CHECK(strstr(sb_str(&report.items[0].reason), "3 fixed points") != NULL);
  CHECK_NEAR(item_number(&report.items[1], "dead fraction"), (4 + 0 + 6) / 24.0, 1e-15);
  CHECK(item_number(&report.items[1], "structural nullity") == 0);
  CHECK(strstr(sb_str(&report.items[1].reason), "3 fixed points") != NULL);
  printf("relu dead units: %s\n", sb_str(&report.items[1].reason));
  report_free(&report);
  fx_close(&f);
  // A leaky relu has no dead unit (away from its kink: step(0) = 0 on both sides there).
  if (!open_layer(&f, "lagr_leaky(x, 0.3)", 8, 1, NULL)) return;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  static const double leaky_state[8] = {-1, 2, -0.5, 0.25, 3, -2, 1, 0.1};
  DeadAt at;
  layer_dead_at(&ctx, leaky_state, 0, NULL, &at);
  CHECK_EQ(at.dead, 0);
  fx_close(&f);
}

static void test_lse_structural(void) {
  for (int n = 8; n <= 100; n += 92) {
    Fixture f;
    if (!open_layer(&f, "lagr_softmax(x, 2)", n, 1, NULL)) continue;
    LayerCheckCtx ctx;
    layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
    SampleSet pts;
    layer_samples(&ctx, 4, 0, &pts);
    int dim;
    CHECK_EQ(layer_structural_nulls(&ctx, &pts, NULL, &dim), NULL_ONES);
    CHECK_EQ(dim, 1);
    // At states where every p_i is well above eps: nullity 1, structural, no dead unit.
    double *states = calloc((size_t)(10 * n), sizeof *states);
    for (int s = 0; s < 10; s++)
      for (int i = 0; i < n; i++) states[s * n + i] = 0.5 * fx_normal(&f);
    for (int s = 0; s < 10; s++) {
      DeadAt at;
      layer_dead_at(&ctx, states + s * n, dim, NULL, &at);
      CHECK(!at.additive);
      CHECK_EQ(at.nullity, 1);
      CHECK_EQ(at.dead, 0);
    }
    CheckReport report = {0};
    check_layer_at_states(f.net, 0, f.dims, f.params, states, 10, "states", 4, &report);
    const CheckItem *it = &report.items[1];  // after the convexity item
    CHECK(report.count == 2 && report.items[0].verdict == VERDICT_PASS);
    CHECK(it->verdict == VERDICT_PASS);
    CHECK(item_number(it, "dead fraction") == 0);
    CHECK(item_number(it, "structural nullity") == 1);
    CHECK(item_number(it, "mean nullity") == 1);
    CHECK(strstr(sb_str(&it->reason), "structural null directions: span{1}") != NULL);
    if (n == 8) printf("log-sum-exp: %s\n", sb_str(&it->reason));
    // A losing competitor (p_i ~ e^-60) is in effect dead: nullity 2, one dead unit.
    states[0] = -30;
    DeadAt at;
    layer_dead_at(&ctx, states, dim, NULL, &at);
    CHECK_EQ(at.nullity, 2);
    CHECK_EQ(at.dead, 1);
    report_free(&report);
    free(states);
    sample_set_free(&pts);
    fx_close(&f);
  }
}

// ---- The pieces ----

static void test_secular(void) {
  uint64_t rng = 77;
  for (int trial = 0; trial < 40; trial++) {
    int n = 1 + trial % 37;
    double d[40], z[40], h[40 * 40], w[40], rho = (trial % 2 ? 1 : -1) * (0.1 + trial / 10.0);
    for (int i = 0; i < n; i++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      d[i] = (double)(rng >> 11) / 9007199254740992.0 * 4 - (trial % 3 == 0 ? 0 : 2);
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      z[i] = trial % 5 == 0 && i % 3 == 0 ? 0 : (double)(rng >> 11) / 9007199254740992.0 - 0.5;
      if (trial % 7 == 0 && i > 0) d[i] = d[i - 1];  // repeated diagonal values
    }
    double scale = 0;
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) h[i * n + j] = (i == j) * d[i] + rho * z[i] * z[j],
                                  scale = fmax(scale, fabs(h[i * n + j]));
    LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, h, n, w);
    for (int k = 0; k < n; k++) {
      double s = secular_eigenvalue(d, z, rho, n, k);
      // Bisection to a few ulps of the bracket; LAPACK's error is p(n) eps |H|.
      if (!(fabs(s - w[k]) <= 64 * n * EPS * scale))
        fprintf(stderr, "  secular trial %d k %d: %.17g vs %.17g\n", trial, k, s, w[k]);
      CHECK(fabs(s - w[k]) <= 64 * n * EPS * scale);
    }
    CHECK_EQ(secular_count_below(d, z, rho, n, w[n - 1] + 1), n);
  }
}

static void test_sharpness(void) {
  static const struct {
    const char *lagrangian;
    double beta;
  } cases[] = {
      {"lagr_identity(x)", 1},       {"lagr_tanh(x, 2.5)", 2.5},   {"lagr_softmax(x, beta)", 8},
      {"logsumexp(beta * x) / beta", 8}, {"lagr_rexp(x, 3)", 3},    {"lagr_sigmoid(x, 0.5)", 0.5},
      {"sum(exp(2 * x + 1))", 2},    {"lagr_layernorm(x)", 1},     {"lagr_ghostmax(x, beta)", 8},
      {"sum(softplus(beta * x)) / beta + 0.05 * sum(x^2)", 8}, {"lagr_relu(x)", 1},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    Fixture f;
    if (!open_layer(&f, cases[k].lagrangian, 6, 8, NULL)) continue;
    double b = layer_sharpness(f.net, f.net->layers[0].L, 0, f.dims, f.params);
    if (fabs(b - cases[k].beta) > 1e-15 * cases[k].beta)
      fprintf(stderr, "  sharpness of %s: %g, want %g\n", cases[k].lagrangian, b, cases[k].beta);
    CHECK_NEAR(b, cases[k].beta, 1e-15);
    fx_close(&f);
  }
}

static void test_samples(void) {
  Fixture f;
  if (!open_layer(&f, "lagr_rexp(x, 4)", 5, 1, NULL)) return;
  LayerCheckCtx ctx;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  CHECK(ctx.beta == 4);
  CHECK_EQ(ctx.nbreaks, 1);
  CHECK(ctx.breaks[0] == 0);
  SampleSet a, b;
  layer_samples(&ctx, 99, 0, &a);
  layer_samples(&ctx, 99, 0, &b);
  CHECK_EQ(a.count, b.count);
  CHECK(memcmp(a.x, b.x, (size_t)(a.count * a.n) * sizeof *a.x) == 0);  // deterministic
  // 3 x 32 Gaussian points, the origin, 3 around the kink at 0, 3 at the overflow edge.
  CHECK_EQ(a.count, 96 + 1 + 3 + 3);
  int scale_hits[3] = {0, 0, 0};
  for (int k = 0; k < 96; k++) {
    double ss = 0;
    for (int i = 0; i < 5; i++) ss += a.x[k * 5 + i] * a.x[k * 5 + i];
    double rms = sqrt(ss / 5) * ctx.beta;  // about 0.1, 1 or 10
    scale_hits[k / 32] += rms > 0.01 * pow(10, k / 32) && rms < 4 * pow(10, k / 32 - 1) * 10;
  }
  CHECK(scale_hits[0] >= 30 && scale_hits[1] >= 30 && scale_hits[2] >= 30);
  CHECK_STREQ(a.label[96], "origin");
  double h = 6.055454452393343e-06 / 4;
  CHECK(fabs(a.x[97 * 5] - 2 * h) <= 1e-20 && fabs(a.x[98 * 5] + 2 * h) <= 1e-20);
  CHECK(a.x[100 * 5] == 30.0 / 4 && a.x[101 * 5] == -30.0 / 4);
  sample_set_free(&b);
  layer_samples(&ctx, 100, 0, &b);
  CHECK(memcmp(a.x, b.x, 96 * 5 * sizeof *a.x) != 0);  // another seed, other points
  sample_set_free(&a);
  sample_set_free(&b);
  fx_close(&f);
  // Log-sum-exp: the one-hot logit at +20/beta; the sphere with eps = 0 has no origin.
  if (!open_layer(&f, "lagr_softmax(x, 5)", 4, 1, NULL)) return;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  layer_samples(&ctx, 1, 2, &a);
  CHECK_STREQ(a.label[a.count - 1], "one-hot logit +20/beta");
  CHECK(a.x[(a.count - 1) * 4] == 4.0 && a.x[(a.count - 1) * 4 + 1] == 0);
  sample_set_free(&a);
  fx_close(&f);
  if (!open_layer(&f, "lagr_spherical(x, 1, 0, 0)", 4, 1, NULL)) return;
  layer_ctx_init(&ctx, f.net, 0, f.dims, f.params);
  layer_samples(&ctx, 1, 2, &a);
  for (int k = 0; k < a.count; k++) CHECK(strcmp(a.label[k], "origin") != 0);
  sample_set_free(&a);
  fx_close(&f);
}

// Hand-written Lagrangians (those of test_derive_handwritten.c, convex or not) pass the
// derivative check at every sample point where they are finite.
static void test_handwritten_derivatives(void) {
  static const char *lagrangians[] = {
      "sum(log(1 + exp(x)))", "sum(sqrt(x^2 + 1))", "sum(abs(x)^3) / 3", "sum(x * tanh(x))",
      "sum(log(cosh(2 * x))) / 2", "logsumexp(x) + 0.5 * sum(x^2)", "norm(x)",
      "sum(log1p(x^2))", "sum(relu(x)^3)", "norm(x - mean(x))", "logsumexp(x)^2",
      "sum(exp(-x^2))", "log(1 + sum(exp(x))) + sum(abs(x))", "0.5 * sum(relu(x - mean(x))^2)",
      "(sum(x^2) + 1)^1.5 / (1 + 0.1 * sum(exp(x)))", "sum(cosh(x))"};
  for (size_t k = 0; k < sizeof lagrangians / sizeof *lagrangians; k++)
    for (int n = 5; n <= 70; n += 65) {
      Fixture f;
      if (!open_layer(&f, lagrangians[k], n, 1, NULL)) continue;
      Run r = run_layer(&f, 0, NULL, 31);
      if (r.d.verdict != VERDICT_PASS)
        fprintf(stderr, "  %s n=%d: %s e_g %.2g e_H %.2g sym %.2g\n", lagrangians[k], n,
                verdict_name(r.d.verdict), r.d.max_eg, r.d.max_eh, r.d.max_sym);
      CHECK(r.d.verdict == VERDICT_PASS);
      worst_eg = fmax(worst_eg, r.d.max_eg);
      worst_eh = fmax(worst_eh, r.d.max_eh);
      fx_close(&f);
    }
}

// Hessians without a closed spectrum: seven rank-one terms (more than the structure keeps:
// H is built from n Hessian-vector products), and a diagonal that is not constant plus two
// terms; small (every point) and large (16 points) layers, all passing, in well under a second.
static void test_unstructured(void) {
#define SEVEN                                                                   \
  "logsumexp(x) + logsumexp(2*x)/2 + logsumexp(3*x)/3 + logsumexp(4*x)/4 + " \
  "lagr_ghostmax(x) + lagr_ghostmax(x, 2) + lagr_ghostmax(x, 3)"
  static const struct {
    const char *lagrangian;
    int n;
    bool dense;
  } cases[] = {{SEVEN, 8, true}, {SEVEN, 200, true},
               {"0.5 * sum(relu(x - mean(x))^2)", 8, false},
               {"0.5 * sum(relu(x - mean(x))^2)", 300, false}};
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    Fixture f;
    if (!open_layer(&f, cases[k].lagrangian, cases[k].n, 1, NULL)) continue;
    CHECK(f.net->layers[0].hessian.dense == cases[k].dense);
    Run r = run_layer(&f, 0, NULL, 41);
    CHECK(r.d.verdict == VERDICT_PASS);
    CHECK(r.c.verdict == VERDICT_PASS);
    CHECK(!cases[k].dense || r.c.method == SPECTRUM_DENSE);
    CHECK(cases[k].n > 256 || (cases[k].dense && cases[k].n > 64) ? r.c.points_checked <= 16
                                                                 : r.c.points_checked >= 100);
    // The time is printed, never asserted: a test does not fail for being slow.
    note_pass(&r);
    printf("%-40.40s n=%-3d %s: e_g %.2e e_H %.2e, lambda_min/scale %+.2e at %d points, %.3f s\n",
           cases[k].lagrangian, cases[k].n, cases[k].dense ? "no structure" : "diag + rank 2",
           r.d.max_eg, r.d.max_eh, r.c.min_rel, r.c.points_checked, r.seconds);
    fx_close(&f);
  }
#undef SEVEN
  // H from Hessian-vector products (the path of a dense H) equals H from its structure.
  Fixture f;
  if (!open_layer(&f, "lagr_layernorm(x, 1.3, 0.2, 1e-3) + lagr_softmax(x, 2)", 7, 1, NULL)) return;
  LayerEq dense = f.net->layers[0];
  dense.hessian.dense = true;
  LayerCheckCtx a, b;
  layer_ctx_init(&a, f.net, 0, f.dims, f.params);
  layer_ctx_init_eq(&b, f.net, 0, &dense, f.dims, f.params, NULL);
  double x[7], ha[49], hb[49], hmax = 0;
  for (int i = 0; i < 7; i++) x[i] = fx_normal(&f);
  CHECK(layer_dense_hessian(&a, x, ha));
  CHECK(layer_dense_hessian(&b, x, hb));
  for (int i = 0; i < 49; i++) hmax = fmax(hmax, fabs(ha[i]));
  for (int i = 0; i < 49; i++) CHECK(fabs(ha[i] - hb[i]) <= 1e-13 * hmax);
  LayerSpectrum sa, sb;
  layer_spectrum(&a, x, true, &sa);
  layer_spectrum(&b, x, true, &sb);
  CHECK(fabs(sa.lambda_min - sb.lambda_min) <= 1e-13 * sa.frob);
  CHECK(fabs(sa.lambda_max - sb.lambda_max) <= 1e-13 * sa.frob);
  fx_close(&f);
}

// The text report cuts a long reason between characters (a '§' is two bytes of UTF-8) and
// counts its width in characters: every line of the summary (passes are listed one line an
// item; problems come first, in full) valid UTF-8 and at most 120 characters wide.
static void test_report_cut(void) {
  CheckReport r = {0};
  for (int shift = 0; shift < 4; shift++) {  // every alignment of the cut against the '§'s
    StrBuf reason = {0};
    for (int k = 0; k < shift; k++) sb_putc(&reason, 'x');
    for (int k = 0; k < 80; k++) sb_append(&reason, "§1.4 ");
    report_add(&r, "energy-bound", "network", NULL, VERDICT_PASS, "%s", sb_str(&reason));
    sb_free(&reason);
  }
  StrBuf out = {0};
  report_print_text(&r, NULL, false, &out);
  int width = 0, widest = 0, bad = 0;
  for (const unsigned char *p = (const unsigned char *)sb_str(&out); *p; p++) {
    if (*p == '\n') {
      width = 0;
      continue;
    }
    if ((*p & 0xC0) == 0x80) continue;  // a continuation byte: the same character
    int follow = *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : *p >= 0xC0 ? 1 : 0;
    for (int k = 1; k <= follow; k++) bad += (p[k] & 0xC0) != 0x80;
    widest = ++width > widest ? width : widest;
  }
  CHECK(bad == 0 && widest <= 120);
  printf("report: long reasons cut between characters, widest line %d characters\n", widest);
  sb_free(&out);
  report_free(&r);
}

int main(int argc, char **argv) {
  test_report_cut();
  test_secular();
  test_sharpness();
  test_samples();
  test_prelude();
  test_examples(argc > 1 ? argv[1] : ".");
  test_nonconvex();
  test_faults();
  test_dead_relu();
  test_lse_structural();
  test_handwritten_derivatives();
  test_unstructured();
  printf("passing cases: worst e_g %.2e (tolerance 1e-7), worst e_H %.2e (tolerance 1e-6), "
         "smallest lambda_min/scale %.2e (tolerance -10 n eps), closed-form gap %.2e, slowest "
         "layer %.3f s\n",
         worst_eg, worst_eh, worst_rel, worst_gap, slowest_layer);
  return check_report("test_check_layers");
}
