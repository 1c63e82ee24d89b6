// Hand-written Lagrangians and energy terms: compositions of every function and reduction
// of the language. Their derivatives have no closed forms here, so they are checked
// against finite differences (docs/theory.md §4.1: g against L, H against g, both with its
// tolerances), the Hessian-vector product against the dense Hessian, and H for symmetry.
// Energy terms: the currents u_A = -dE/dg(A) against finite differences of E in g(A).
// Also: written-out forms derive the same stable expressions as the prelude's.
#include "derive_fixture.h"

enum { N = 5, M = 3, POINTS = 6 };

typedef struct {
  const char *lagrangian;
  bool kinks;  // relu, abs, step: skip coordinates near 0
} Hand;

static const Hand lagrangians[] = {
    {"sum(exp(x))", false},
    {"sum(log(1 + exp(x)))", false},
    {"sum(sqrt(x^2 + 1))", false},
    {"sum(abs(x)^3) / 3", true},
    {"sum(log(cosh(2 * x))) / 2", false},
    {"sum(x * tanh(x))", false},
    {"sum(softplus(x) - log1p(x^2) / 4)", false},
    {"logsumexp(x) + 0.5 * sum(x^2)", false},
    {"log(sum(exp(2 * x))) / 2", false},
    {"norm(x)", false},
    {"mean(x^2) * len(x)", false},
    {"0.5 * dot(x, x) + sum(x)", false},
    {"sum(log1p(x^2))", false},
    {"sum(expm1(x) - x)", false},
    {"sum(cosh(x))", false},
    {"sum(sinh(x) * x)", false},
    {"sum(relu(x)^3)", true},
    {"sum(softplus(x)^2)", false},
    {"norm(x - mean(x))", false},
    {"2 * sqrt(sum(x^2) + 1) + logsumexp(-x)", false},
    {"sum(x^4) / 4 + sum(x)^2", false},
    {"sum(x)^2 + norm(x)^2", false},
    {"logsumexp(x)^2", false},
    {"sum(exp(-x^2))", false},
    {"sum(sigmoid(x) * x) + 2 * sum(x^2)", false},
    {"log(1 + sum(exp(x))) + sum(abs(x))", true},
    {"sum(tanh(x)^2 + x^2)", false},
    {"(sum(x^2) + 1)^1.5 / (1 + 0.1 * sum(exp(x)))", false},
};

static const double CBRT_EPS = 6.055454452393343e-06;

static void check_lagrangian(const Hand *c) {
  char text[512];
  snprintf(text, sizeof text, "dim N = %d;\nlayer x[N] { L = %s; }\n", N, c->lagrangian);
  Fixture f;
  CHECK(fx_open(&f, text, N, 7));
  if (!f.net) return;
  const LayerEq *l = &f.net->layers[0];
  CHECK(!l->hessian.dense);
  double max_eg = 0, max_eh = 0, max_hvp = 0;
  for (int p = 0; p < POINTS; p++) {
    double *x = f.states[0], g[N], h[N * N], gp[N], gm[N], hvp[N];
    double scale = p < 2 ? 0.5 : p < 4 ? 1 : 2;
    for (int i = 0; i < N; i++) x[i] = scale * fx_normal(&f);
    fx_eval(&f, l->g, g);
    fx_dense_hessian(&f, 0, h);
    double L = fx_eval_scalar(&f, l->L), SL = fabs(L), gmax = 0, hmax = 0;
    for (int j = 0; j < N; j++) SL += fabs(x[j] * g[j]), gmax = fmax(gmax, fabs(g[j]));
    for (int j = 0; j < N * N; j++) hmax = fmax(hmax, fabs(h[j]));
    for (int i = 0; i < N; i++) {
      double xi = x[i], hi = CBRT_EPS * fmax(1, fabs(xi));
      hi = (xi + hi) - xi;
      if (c->kinks && fabs(xi) <= 2 * hi) continue;
      double s = hi / CBRT_EPS;
      x[i] = xi + hi;
      double lp = fx_eval_scalar(&f, l->L);
      fx_eval(&f, l->g, gp);
      x[i] = xi - hi;
      double lm = fx_eval_scalar(&f, l->L);
      fx_eval(&f, l->g, gm);
      x[i] = xi;
      max_eg = fmax(max_eg, fabs((lp - lm) / (2 * hi) - g[i]) / (fabs(g[i]) + SL / s + 1));
      for (int r = 0; r < N; r++) {
        double ht = (gp[r] - gm[r]) / (2 * hi);
        max_eh = fmax(max_eh, fabs(ht - h[r * N + i]) / (fabs(h[r * N + i]) + gmax / s + 1));
      }
    }
    for (int i = 0; i < N; i++)
      for (int j = 0; j < N; j++) {
        bool sym = fabs(h[i * N + j] - h[j * N + i]) <= 4 * 2.22e-16 * hmax;
        if (!sym)
          fprintf(stderr, "  %s: H[%d,%d] = %.17g, H[%d,%d] = %.17g\n", c->lagrangian, i, j,
                  h[i * N + j], j, i, h[j * N + i]);
        CHECK(sym);
      }
    for (int i = 0; i < N; i++) f.dirs[0][i] = fx_normal(&f);
    fx_eval(&f, l->hvp, hvp);
    for (int i = 0; i < N; i++) {
      double want = 0, mag = 0;
      for (int j = 0; j < N; j++) {
        want += h[i * N + j] * f.dirs[0][j];
        mag += fabs(h[i * N + j] * f.dirs[0][j]);
      }
      max_hvp = fmax(max_hvp, fabs(hvp[i] - want) / fmax(mag, 1e-300));
    }
  }
  bool ok = max_eg <= 1e-7 && max_eh <= 1e-6 && max_hvp <= 1e-12;
  CHECK(ok);
  printf("%-50s %-22s e_g %.1e e_H %.1e hvp %.1e\n", c->lagrangian,
         l->hessian.dense ? "dense" : l->hessian.nterms ? "diagonal + low rank" : "diagonal", max_eg,
         max_eh, max_hvp);
  fx_close(&f);
}

// Energy terms in a model of two quadratic layers v[N], h[M] with weights W[M, N], b[M].
static const char *const energies[] = {
    "-dot(g(h), W @ g(v))",
    "-0.5 * dot(g(h)^2, W @ g(v)^2)",
    "-logsumexp(W @ g(v) + g(h))",
    "-sum(tanh(W @ g(v)) * g(h))",
    "-dot(b, g(h)) - 0.1 * sum(g(v)^4)",
    "-dot(g(h), W @ g(v))^2 / 4",
    "-norm(W' @ g(h) - g(v))",
    "-sum(softplus(g(h) + b)) * mean(g(v))",
    "-dot(W' @ (g(h) * b), sigmoid(g(v)))",
    "-sum(exp(-(W @ g(v) - g(h))^2))",
};

static void check_energy(const char *energy) {
  char text[512];
  snprintf(text, sizeof text,
           "dim N = %d; dim M = %d;\nlayer v[N] { L = lagr_identity(v); }\n"
           "layer h[M] { L = lagr_identity(h); }\nweight W[M, N];\nweight b[M];\nenergy %s;\n",
           N, M, energy);
  Fixture f;
  CHECK(fx_open(&f, text, N, 11));
  if (!f.net) return;
  double worst = 0;
  for (int p = 0; p < POINTS; p++) {
    for (int a = 0; a < 2; a++)
      for (int64_t i = 0; i < fx_layer_size(&f, a); i++) f.acts[a][i] = fx_normal(&f);
    for (int a = 0; a < 2; a++) {
      int64_t n = fx_layer_size(&f, a);
      double u[N];
      fx_eval(&f, f.net->layers[a].u, u);
      for (int64_t i = 0; i < n; i++) {
        double gi = f.acts[a][i], h = CBRT_EPS * fmax(1, fabs(gi));
        h = (gi + h) - gi;
        f.acts[a][i] = gi + h;
        double ep = fx_eval_scalar(&f, f.net->energy_int);
        f.acts[a][i] = gi - h;
        double em = fx_eval_scalar(&f, f.net->energy_int);
        f.acts[a][i] = gi;
        double fd = -(ep - em) / (2 * h);
        worst = fmax(worst, fabs(fd - u[i]) / (fabs(u[i]) + 1));
      }
    }
  }
  CHECK(worst <= 1e-7);
  printf("energy %-44s u against FD: %.1e\n", energy, worst);
  fx_close(&f);
}

typedef struct {
  ExprId from, to;
} Rename;

static ExprId rename_leaf(void *ctx, ExprPool *pool, const Expr *leaf) {
  const Rename *r = ctx;
  (void)pool;
  return leaf->kind == EX_STATE && leaf->index == 1 ? r->to : 0;
}

// Layer b's L, written out, derives exactly layer a's g (the same DAG node after renaming
// b's state to a's): the stable forms come from rewriting, not from prelude names.
static void check_same_derivation(const char *prelude_form, const char *written_form) {
  char text[512];
  snprintf(text, sizeof text,
           "dim N = 4; param beta = 2.5;\nlayer a[N] { L = %s; }\nlayer b[N] { L = %s; }\n",
           prelude_form, written_form);
  Fixture f;
  CHECK(fx_open(&f, text, 4, 3));
  if (!f.net) return;
  Rename r = {f.net->layers[1].state, f.net->layers[0].state};
  ExprId gb = expr_substitute(f.net->pool, f.net->layers[1].g, rename_leaf, &r);
  bool same = gb == f.net->layers[0].g;
  CHECK(same);
  if (!same) {
    StrBuf sa = {0}, sb = {0};
    expr_print(&sa, f.net->pool, f.net->layers[0].g, &f.net->names, PRINT_TEXT);
    expr_print(&sb, f.net->pool, gb, &f.net->names, PRINT_TEXT);
    fprintf(stderr, "  %s -> %s\n  %s -> %s\n", prelude_form, sb_str(&sa), written_form,
            sb_str(&sb));
    sb_free(&sa);
    sb_free(&sb);
  }
  fx_close(&f);
}

int main(void) {
  for (size_t i = 0; i < sizeof lagrangians / sizeof *lagrangians; i++)
    check_lagrangian(&lagrangians[i]);
  for (size_t i = 0; i < sizeof energies / sizeof *energies; i++) check_energy(energies[i]);
  check_same_derivation("lagr_softmax(a, beta)", "logsumexp(beta * b) / beta");
  check_same_derivation("lagr_softmax(a, beta)", "log(sum(exp(beta * b))) / beta");
  check_same_derivation("lagr_ghostmax(a, beta)", "log(1 + sum(exp(beta * b))) / beta");
  check_same_derivation("lagr_tanh(a, beta)", "sum(log(cosh(beta * b))) / beta");
  check_same_derivation("lagr_sigmoid(a, beta)", "sum(log(1 + exp(beta * b))) / beta");
  check_same_derivation("lagr_rexp(a, beta)", "sum(exp(beta * relu(b))) / beta - sum(relu(b))");
  return check_report("test_derive_handwritten");
}
