// The derived activations and Hessians of every prelude Lagrangian against the closed
// forms of docs/theory.md §3 (relative 1e-12 in float64) at random points, against the oracle
// numbers of docs/theory.md §4.6, and the finite-difference checks of docs/theory.md §4.1 with their
// tolerances. Each Lagrangian is checked at several random points (a batch).
#include "derive_fixture.h"

enum { N = 6, POINTS = 8 };
static const double EPS = 2.220446049250313e-16;

typedef struct {
  const char *name;
  const char *lagrangian;  // of the state `x`
  double beta_l;           // the sharpness of docs/theory.md §4.1 (1 when there is none)
  bool kink_at_zero;       // rectified: skip FD coordinates near 0
  // Closed forms: g and the dense H at x (n = N).
  void (*closed)(const double *x, double *g, double *h);
} Case;

static const double beta = 1.7, a_leaky = 0.3, gamma_ = 1.3, delta_ = 0.2, eps_ = 1e-3;

static void diag_h(double *h, const double *d) {
  memset(h, 0, sizeof(double) * N * N);
  for (int i = 0; i < N; i++) h[i * N + i] = d[i];
}

static void c_identity(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) g[i] = x[i], d[i] = 1;
  diag_h(h, d);
}
static void c_relu(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) g[i] = x[i] > 0 ? x[i] : 0, d[i] = x[i] > 0;
  diag_h(h, d);
}
static void c_repu3(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) {
    double r = x[i] > 0 ? x[i] : 0;
    g[i] = r * r;
    d[i] = 2 * r;
  }
  diag_h(h, d);
}
static void c_leaky(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) g[i] = x[i] > 0 ? x[i] : a_leaky * x[i], d[i] = x[i] > 0 ? 1 : a_leaky;
  diag_h(h, d);
}
static void c_exp(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) g[i] = exp(beta * x[i]), d[i] = beta * exp(beta * x[i]);
  diag_h(h, d);
}
static void c_rexp(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) {
    g[i] = expm1(beta * (x[i] > 0 ? x[i] : 0));
    d[i] = x[i] > 0 ? beta * exp(beta * x[i]) : 0;
  }
  diag_h(h, d);
}
static void c_tanh(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) {
    g[i] = tanh(beta * x[i]);
    d[i] = beta / (cosh(beta * x[i]) * cosh(beta * x[i]));
  }
  diag_h(h, d);
}
static double sigma(double z) { return 1 / (1 + exp(-z)); }
static void c_sigmoid(const double *x, double *g, double *h) {
  double d[N];
  for (int i = 0; i < N; i++) {
    g[i] = sigma(beta * x[i]);
    d[i] = beta * sigma(beta * x[i]) * sigma(-beta * x[i]);
  }
  diag_h(h, d);
}
// Softmax over beta x with `extra` additional logits fixed at 0 (ghostmax: one).
static void softmax_like(const double *x, double *g, double *h, int extra) {
  double m = extra ? 0 : -INFINITY, s = 0;
  for (int i = 0; i < N; i++) m = fmax(m, beta * x[i]);
  for (int i = 0; i < N; i++) s += exp(beta * x[i] - m);
  s += extra * exp(-m);
  for (int i = 0; i < N; i++) g[i] = exp(beta * x[i] - m) / s;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) h[i * N + j] = beta * ((i == j) * g[i] - g[i] * g[j]);
}
static void c_softmax(const double *x, double *g, double *h) { softmax_like(x, g, h, 0); }
static void c_ghostmax(const double *x, double *g, double *h) { softmax_like(x, g, h, 1); }
static void c_layernorm(const double *x, double *g, double *h) {
  double m = 0, var = 0, c[N];
  for (int i = 0; i < N; i++) m += x[i] / N;
  for (int i = 0; i < N; i++) c[i] = x[i] - m, var += c[i] * c[i] / N;
  double s = sqrt(var + eps_);
  for (int i = 0; i < N; i++) g[i] = gamma_ * c[i] / s + delta_;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      h[i * N + j] = gamma_ * (((i == j) - 1.0 / N) / s - c[i] * c[j] / (N * s * s * s));
}
static void c_spherical(const double *x, double *g, double *h) {
  double r2 = eps_;
  for (int i = 0; i < N; i++) r2 += x[i] * x[i];
  double r = sqrt(r2);
  for (int i = 0; i < N; i++) g[i] = gamma_ * x[i] / r + delta_;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) h[i * N + j] = gamma_ * ((i == j) / r - x[i] * x[j] / (r * r * r));
}

static const Case cases[] = {
    {"identity", "lagr_identity(x)", 1, false, c_identity},
    {"relu", "lagr_relu(x)", 1, true, c_relu},
    {"repu", "lagr_repu(x, 3)", 1, true, c_repu3},
    {"leaky", "lagr_leaky(x, 0.3)", 1, true, c_leaky},
    {"exp", "lagr_exp(x, beta)", 1.7, false, c_exp},
    {"rexp", "lagr_rexp(x, beta)", 1.7, true, c_rexp},
    {"tanh", "lagr_tanh(x, beta)", 1.7, false, c_tanh},
    {"sigmoid", "lagr_sigmoid(x, beta)", 1.7, false, c_sigmoid},
    {"softmax", "lagr_softmax(x, beta)", 1.7, false, c_softmax},
    {"ghostmax", "lagr_ghostmax(x, beta = beta)", 1.7, false, c_ghostmax},
    {"layernorm", "lagr_layernorm(x, 1.3, 0.2, 1e-3)", 1, false, c_layernorm},
    {"spherical", "lagr_spherical(x, gamma = 1.3, delta = 0.2, eps = 1e-3)", 1, false, c_spherical},
};

static bool close_rel(double a, double b, double tol) {
  return fabs(a - b) <= tol * fmax(fabs(b), 1e-300) || fabs(a - b) <= 1e-300;
}

static void model_text(char *buf, size_t n, const char *lagrangian) {
  snprintf(buf, n, "dim N = %d;\n%slayer x[N] { L = %s; }\n", N,
           strstr(lagrangian, "beta)") ? "param beta = 1.7;\n" : "", lagrangian);
}

// |e_g| and |e_H| of docs/theory.md §4.1 at the current state, or -1 if skipped everywhere.
static void fd_check(Fixture *f, const Case *c, double *max_eg, double *max_eh) {
  const LayerEq *l = &f->net->layers[0];
  double *x = f->states[0], g[N], gp[N], gm[N], h[N * N];
  fx_eval(f, l->g, g);
  fx_dense_hessian(f, 0, h);
  double L = fx_eval_scalar(f, l->L), SL = fabs(L), gmax = 0;
  for (int j = 0; j < N; j++) SL += fabs(x[j] * g[j]), gmax = fmax(gmax, fabs(g[j]));
  const double cbrt_eps = 6.055454452393343e-06;
  for (int i = 0; i < N; i++) {
    double hi = cbrt_eps * fmax(1, fabs(x[i])) / fmax(1, c->beta_l);
    double xi = x[i];
    hi = (xi + hi) - xi;
    if (c->kink_at_zero && fabs(xi) <= 2 * hi) continue;
    double s = hi / cbrt_eps;
    x[i] = xi + hi;
    double lp = fx_eval_scalar(f, l->L);
    fx_eval(f, l->g, gp);
    x[i] = xi - hi;
    double lm = fx_eval_scalar(f, l->L);
    fx_eval(f, l->g, gm);
    x[i] = xi;
    double gt = (lp - lm) / (2 * hi);
    *max_eg = fmax(*max_eg, fabs(gt - g[i]) / (fabs(g[i]) + SL / s + 1));
    for (int r = 0; r < N; r++) {
      double ht = (gp[r] - gm[r]) / (2 * hi);
      *max_eh = fmax(*max_eh, fabs(ht - h[r * N + i]) / (fabs(h[r * N + i]) + gmax / s + 1));
    }
  }
}

static void test_case(const Case *c) {
  char text[512];
  model_text(text, sizeof text, c->lagrangian);
  Fixture f;
  CHECK(fx_open(&f, text, N, 42));
  if (!f.net) return;
  double max_eg = 0, max_eh = 0, worst = 0;
  for (int p = 0; p < POINTS; p++) {
    double scale = p < 3 ? 0.3 : p < 6 ? 1.0 : 3.0;
    for (int i = 0; i < N; i++) f.states[0][i] = scale * fx_normal(&f);
    double g[N], h[N * N], gc[N], hc[N * N], hvp[N], d[N];
    c->closed(f.states[0], gc, hc);
    fx_eval(&f, f.net->layers[0].g, g);
    fx_dense_hessian(&f, 0, h);
    double hmax = 0;
    for (int i = 0; i < N * N; i++) hmax = fmax(hmax, fabs(hc[i]));
    for (int i = 0; i < N; i++) {
      if (!close_rel(g[i], gc[i], 1e-12)) {
        CHECK(close_rel(g[i], gc[i], 1e-12));
        fprintf(stderr, "  %s: g[%d] = %.17g, closed form %.17g\n", c->name, i, g[i], gc[i]);
      }
      worst = fmax(worst, fabs(g[i] - gc[i]) / fmax(fabs(gc[i]), 1e-300));
    }
    // H entries: relative 1e-12 of the largest entry (off-diagonal terms cancel).
    for (int i = 0; i < N * N; i++) {
      bool ok = fabs(h[i] - hc[i]) <= 1e-12 * hmax;
      if (!ok) fprintf(stderr, "  %s: H[%d] = %.17g, closed form %.17g\n", c->name, i, h[i], hc[i]);
      CHECK(ok);
    }
    // The Hessian-vector product expression agrees with the dense H.
    for (int i = 0; i < N; i++) f.dirs[0][i] = d[i] = fx_normal(&f);
    fx_eval(&f, f.net->layers[0].hvp, hvp);
    for (int i = 0; i < N; i++) {
      double want = 0, mag = 0;
      for (int j = 0; j < N; j++) want += hc[i * N + j] * d[j], mag += fabs(hc[i * N + j] * d[j]);
      CHECK(fabs(hvp[i] - want) <= 1e-12 * fmax(mag, 1e-300));
    }
    fd_check(&f, c, &max_eg, &max_eh);
    // Symmetry of the derived H (docs/theory.md §4.1: |H - H'| <= 4 eps |H|).
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) CHECK(fabs(h[i * N + j] - h[j * N + i]) <= 4 * EPS * hmax);
  }
  CHECK(max_eg <= 1e-7);
  CHECK(max_eh <= 1e-6);
  printf("%-10s max rel err of g %.1e, FD e_g %.1e (tol 1e-7), e_H %.1e (tol 1e-6)\n", c->name,
         worst, max_eg, max_eh);
  fx_close(&f);
}

// Theory.md §4.6 oracles, 1e-13 relative.
typedef struct {
  const char *lagrangian;
  int n;
  double x[4], L, g[4], hdiag[4];
} Oracle;

static void test_oracles(void) {
  static const Oracle oracles[] = {
      {"lagr_softmax(x, 1)", 3, {1, 2, 3}, 3.40760596444438,
       {0.0900305731703805, 0.244728471054798, 0.665240955774822},
       {0.0819250690649932, 0.184836446509979, 0.222695426534623}},
      {"lagr_softmax(x, 2)", 3, {0.5, -1, 2}, 2.0254728817615,
       {0.047314155221824, 0.00235563308079668, 0.950330211697379},
       {0.0901510518749384, 0.00470016814717067, 0.0944054008651871}},
      {"lagr_spherical(x, 1, 0, 0)", 3, {3, 4, 0}, 5, {0.6, 0.8, 0}, {0.128, 0.072, 0.2}},
      {"lagr_layernorm(x, 1, 0, 1e-5)", 4, {1, 2, 3, 4}, 4.47215384350762,
       {-1.34163541996893, -0.447211806656309, 0.447211806656309, 1.34163541996893},
       {0.268330303893034, 0.626096887085416, 0.626096887085416, 0.268330303893034}},
      {"lagr_tanh(x, 1)", 4, {-1, 0, 0.5, 2}, 1.87889808479917,
       {-0.761594155955765, 0, 0.46211715726001, 0.964027580075817},
       {0.419974341614026, 1, 0.786447732965927, 0.0706508248531645}},
      {"lagr_sigmoid(x, 1)", 3, {-2, 0, 3}, 3.86866254317666,
       {0.119202922022118, 0.5, 0.952574126822433},
       {0.104993585403507, 0.25, 0.0451766597309121}},
      {"lagr_repu(x, 3)", 3, {-1, 0.5, 2}, 2.70833333333333, {0, 0.25, 4}, {0, 1, 4}},
      {"lagr_exp(x, 1)", 3, {-1, 0, 1}, 4.08616126963049,
       {0.367879441171442, 1, 2.71828182845905}, {0.367879441171442, 1, 2.71828182845905}},
      {"lagr_ghostmax(x, 1)", 3, {1, 2, 3}, 3.4401896985612,
       {0.0871443187420326, 0.23688281808991, 0.643914259887972}, {0, 0, 0}},
  };
  for (size_t k = 0; k < sizeof oracles / sizeof *oracles; k++) {
    const Oracle *o = &oracles[k];
    char text[256];
    snprintf(text, sizeof text, "dim N = %d; layer x[N] { L = %s; }", o->n, o->lagrangian);
    Fixture f;
    CHECK(fx_open(&f, text, o->n, 1));
    if (!f.net) continue;
    memcpy(f.states[0], o->x, sizeof(double) * (size_t)o->n);
    double g[4], h[16];
    CHECK_NEAR(fx_eval_scalar(&f, f.net->layers[0].L), o->L, 1e-13);
    fx_eval(&f, f.net->layers[0].g, g);
    fx_dense_hessian(&f, 0, h);
    for (int i = 0; i < o->n; i++) {
      CHECK(fabs(g[i] - o->g[i]) <= 1e-13 * fabs(o->g[i]) + 1e-16);
      if (o->hdiag[0] || o->hdiag[1])
        CHECK(fabs(h[i * o->n + i] - o->hdiag[i]) <= 1e-13 * fabs(o->hdiag[i]) + 1e-16);
    }
    fx_close(&f);
  }
  // O1's full Hessian and its null vector: H (1, 1, 1) = 0.
  Fixture f;
  CHECK(fx_open(&f, "dim N = 3; layer x[N] { L = lagr_softmax(x); }", 3, 1));
  double x[3] = {1, 2, 3}, h[9];
  memcpy(f.states[0], x, sizeof x);
  fx_dense_hessian(&f, 0, h);
  CHECK_NEAR(h[1], -0.0220330445201743, 1e-13);
  CHECK_NEAR(h[2], -0.0598920245448189, 1e-13);
  CHECK_NEAR(h[5], -0.162803401989804, 1e-13);
  // Each row sums to beta (g_i - g_i sum_j g_j), zero up to the rounding of sum_j g_j.
  for (int i = 0; i < 3; i++) CHECK(fabs(h[3 * i] + h[3 * i + 1] + h[3 * i + 2]) <= 4 * EPS * 0.23);
  CHECK_NEAR(fx_eval_scalar(&f, f.net->layers[0].legendre), -0.832395581839939, 1e-13);
  fx_close(&f);
}

// The Hessian structures the issue names: additive -> diagonal, softmax -> diagonal plus
// rank one, layer norm -> diagonal plus low rank; none dense.
static void test_structures(void) {
  static const struct {
    const char *lagrangian;
    int max_terms;
  } expect[] = {
      {"lagr_identity(x)", 0}, {"lagr_tanh(x)", 0},     {"lagr_rexp(x)", 0},
      // Layer norm is diagonal plus rank two (sum(x - mean(x)) is 0, docs/symbolic.md).
      {"lagr_softmax(x, 3)", 1}, {"lagr_ghostmax(x)", 1}, {"lagr_layernorm(x)", 2},
      {"lagr_spherical(x)", 1},
  };
  for (size_t k = 0; k < sizeof expect / sizeof *expect; k++) {
    char text[256];
    model_text(text, sizeof text, expect[k].lagrangian);
    Fixture f;
    CHECK(fx_open(&f, text, N, 1));
    const StructJac *h = &f.net->layers[0].hessian;
    CHECK(!h->dense);
    CHECK(h->nterms <= expect[k].max_terms);
    if (h->nterms > expect[k].max_terms)
      fprintf(stderr, "  %s: %d rank-one terms\n", expect[k].lagrangian, h->nterms);
    fx_close(&f);
  }
}

int main(void) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) test_case(&cases[i]);
  test_oracles();
  test_structures();
  return check_report("test_derive_lagrangians");
}
