// The Legendre term Lambda = x . g - L of the sigmoid Lagrangian in its form without
// cancellation (docs/symbolic.md, "Stable forms"): against an independent stable form at 0,
// at moderate and saturated states and at the overflow edges (relative 1e-14), the form
// is the same for lagr_sigmoid with a param, a constant and no beta, and it prints and
// reparses to the same node.
#include "derive_fixture.h"

enum { N = 16 };
static const double points[N] = {0,   1e-8, -1e-8, 0.5,  -0.5, 3,     -3,  20,
                                 -20, 40,   -40,   354, -354, 800, -800, 1e4};

// beta Lambda at z = beta x: z sigmoid(z) - softplus(z) = -|z| t / (1 + t) - log1p(t) with
// t = e^-|z|, whose two terms have one sign (the naive form cancels to -e^-z (z + 1)).
static double reference(double z) {
  double a = fabs(z), t = exp(-a);
  return -a * t / (1 + t) - log1p(t);
}

// Maps the state of layer 0 to the state of layer 1.
static ExprId rename_state(void *ctx, ExprPool *pool, const Expr *leaf) {
  (void)pool;
  const ExprId *states = ctx;
  return leaf->kind == EX_STATE && leaf->index == 0 ? states[1] : 0;
}

static void check_lambda(const char *lagrangian, double beta) {
  char text[256];
  snprintf(text, sizeof text, "dim N = %d;\nparam beta = 1.7;\nlayer xa[N] { L = %s; }\n", N,
           lagrangian);
  Fixture f;
  CHECK(fx_open(&f, text, N, 1));
  if (!f.net) return;
  // Each point alone, the other units at -1000, where their Lambda is 0 (e^-1000 = 0).
  double worst = 0;
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < N; j++) f.states[0][j] = -1000;
    f.states[0][i] = points[i];
    double got = fx_eval_scalar(&f, f.net->layers[0].legendre);
    double want = reference(beta * points[i]) / beta;
    double err = got == want ? 0 : fabs(got - want) / fabs(want);  // both 0 beyond e^-745
    worst = fmax(worst, err);
    if (!(err <= 1e-14))
      fprintf(stderr, "  %s at x = %g: Lambda = %.17g, want %.17g\n", lagrangian, points[i], got,
              want);
    CHECK(err <= 1e-14);
  }
  // The same with every unit saturated at once: Lambda = 16 * (-e^-z (z + 1)) / beta.
  for (int i = 0; i < N; i++) f.states[0][i] = 40;
  double got = fx_eval_scalar(&f, f.net->layers[0].legendre), want = N * reference(beta * 40) / beta;
  CHECK(fabs(got - want) <= 1e-14 * fabs(want));
  printf("%-28s Lambda: max rel err %.1e at 0, kinks, saturation and overflow (tol 1e-14)\n",
         lagrangian, worst);

  // The printed form reparses to the same node (as the Lagrangian of another layer).
  StrBuf printed = {0};
  expr_print(&printed, f.net->pool, f.net->layers[0].legendre, &f.net->names, PRINT_TEXT);
  char *renamed = strdup(sb_str(&printed));
  for (char *at = renamed; (at = strstr(at, "xa"));) at[1] = 'b';  // the state is the one "xa"
  sb_free(&printed);
  sb_append(&printed, renamed);
  free(renamed);
  char text2[2048];
  snprintf(text2, sizeof text2,
           "dim N = %d;\nparam beta = 1.7;\nlayer xa[N] { L = %s; }\nlayer xb[N] { L = %s; }\n", N,
           lagrangian, sb_str(&printed));
  sb_free(&printed);
  Fixture f2;
  CHECK(fx_open(&f2, text2, N, 1));
  if (f2.net) {
    ExprPool *p = f2.net->pool;
    ExprId lam = f2.net->layers[0].legendre;
    // Rename xa to xb in Lambda_a: it must be L_b's node.
    ExprId states[2] = {f2.net->layers[0].state, f2.net->layers[1].state};
    CHECK(expr_substitute(p, lam, rename_state, states) == f2.net->layers[1].L);
    fx_close(&f2);
  }
  fx_close(&f);
}

int main(void) {
  check_lambda("lagr_sigmoid(xa, beta)", 1.7);
  check_lambda("lagr_sigmoid(xa)", 1);
  check_lambda("lagr_sigmoid(xa, 3)", 3);
  check_lambda("sum(softplus(3 * xa)) / 3", 3);
  check_lambda("sum(softplus(beta * xa) / beta)", 1.7);
  return check_report("test_derive_legendre");
}
