// The dense fixed-point path of damc check (compiler/check/fixed_points.c): the coupling
// 𝐖 = du/dg, d x d and 2d evaluations of the currents, is computed once per fixed point when
// it is the same at every state, and the stability it gives is the closed form's:
//   * the classic network x = T tanh(x) (a self-synapse: u = T g is linear in g) from a state
//     near its origin: Newton's method polishes it to 0, and lambda_max(B'WB) = lambda_max(T)
//     = 0.6 there (B = I: tanh'(0) = 1), to 1e-10 (the central differences of 𝐖 are exact for
//     a linear u up to their rounding, eps/h = 2e-12). One coupling: Newton's, kept for the
//     analysis (before, the analysis computed a second one);
//   * u = g^2 / 2 (the energy -sum(g^3) / 6): 𝐖 = diag(g) depends on the state, so Newton's,
//     taken at the start x = 0.01..0.04, is not the point's; computed again at the origin,
//     where lambda_max(B'WB) = 0 (Newton's 𝐖 would give 0.04). Two couplings.
#include "check/checks.h"
#include "derive_fixture.h"

// lambda_max(B'WB) of the stability item of fixed point 0, or NaN.
static double lambda_max(const CheckReport *r) {
  for (size_t i = 0; i < r->count; i++) {
    const CheckItem *it = &r->items[i];
    if (strcmp(it->check, "stability") != 0) continue;
    for (size_t k = 0; k < it->nnumbers; k++)
      if (!strcmp(it->numbers[k].name, "lambda_max(B'WB)")) return it->numbers[k].value;
  }
  return NAN;
}

// Polishes the fixed point near x_i = 0.01 (i + 1) of the 4-unit model `text` (weight 0, if
// any, set to `w`) and checks it; the couplings computed and lambda_max(B'WB).
static unsigned fixed_point(const char *text, const double *w, double *top) {
  Fixture f;
  if (!fx_open(&f, text, 4, 1)) {
    CHECK(false);
    return 0;
  }
  if (w) memcpy(f.weights[0], w, 16 * sizeof *w);
  NetEnv ne;
  netenv_init(&ne, f.net, f.dims, f.params, (const double *const *)f.weights, 7);
  for (int i = 0; i < 4; i++) ne.states[0][i] = 0.01 * (i + 1);
  Polished pol = fixed_point_polish(&ne);
  CHECK(pol.resolved);
  double tau[1] = {1};
  CheckReport r = {0};
  check_fixed_point(&ne, tau, 0, 7, &pol, &r);
  for (int i = 0; i < 4; i++) CHECK(fabs(ne.states[0][i]) <= 1e-10);  // the origin
  *top = lambda_max(&r);
  unsigned couplings = ne.couplings;
  polished_free(&pol);
  report_free(&r);
  netenv_free(&ne);
  fx_close(&f);
  return couplings;
}

int main(void) {
  // Two blocks [[0.3, 0.3], [0.3, 0.3]] (eigenvalues 0.6, 0) and [[0.1, -0.2], [-0.2, 0.1]]
  // (0.3, -0.1).
  static const double t[16] = {0.3, 0.3, 0, 0, 0.3, 0.3, 0, 0, 0, 0, 0.1, -0.2, 0, 0, -0.2, 0.1};
  double top;
  unsigned n = fixed_point("dim N = 4;\nlayer a[N] { L = lagr_tanh(a); }\nsynapse T[N, N] : a <-> a;\n",
                           t, &top);
  CHECK_EQ(n, 1);
  CHECK_NEAR(top, 0.6, 1e-10);
  n = fixed_point("dim N = 4;\nlayer a[N] { L = lagr_identity(a); }\nenergy -sum(g(a)^3) / 6;\n", NULL, &top);
  CHECK_EQ(n, 2);
  CHECK(fabs(top) <= 1e-10);
  return check_report("test_check_fixed_points");
}
