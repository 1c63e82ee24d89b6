// The matrix-free Krylov methods of damc check (compiler/check/krylov.h) against LAPACK on
// dense matrices:
//   * GMRES(m), restarted, on nonsymmetric systems W H - I of the fixed-point Newton step
//     (d = 40, 200; m = 30 forces restarts at 200): x against dgesv's to 1e-9 relative
//     (the solver's tolerance 1e-12 times the condition number, below 1e3 here);
//   * the largest eigenvalue of W H in the H product (Lanczos) for a symmetric W and a
//     positive semidefinite H with a null space (dead units), against the dense
//     lambda_max(B'WB), B = Q diag(sqrt(lambda)) (dsyevd), to 1e-10 (1 + |lambda|): the
//     Lanczos bound is asked for below 1e-12; and H = 0 gives an empty range.
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "check/krylov.h"

static uint64_t state = 88172645463325252ull;

static double normal(void) {
  double u[2];
  for (int k = 0; k < 2; k++) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    u[k] = ((double)(state >> 11) + 0.5) / 9007199254740992.0;
  }
  return sqrt(-2 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

typedef struct {
  int64_t d;
  const double *a;  // the matrix applied, d x d row-major
} Dense;

static void apply(void *user, const double *x, double *y) {
  const Dense *m = user;
  for (int64_t i = 0; i < m->d; i++) {
    y[i] = 0;
    for (int64_t j = 0; j < m->d; j++) y[i] += m->a[i * m->d + j] * x[j];
  }
}

// A symmetric d x d matrix with entries N(0, s^2), and a PSD one Q diag(lam) Q' with `nulls`
// zero eigenvalues (the others in (0, 1]).
static void symmetric(double *w, int64_t d, double s) {
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j <= i; j++) w[i * d + j] = w[j * d + i] = s * normal();
}

static void semidefinite(double *h, int64_t d, int64_t nulls) {
  double *q = calloc((size_t)(d * d), sizeof *q), *lam = calloc((size_t)d, sizeof *lam);
  symmetric(q, d, 1);
  LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, q, (lapack_int)d, lam);
  for (int64_t k = 0; k < d; k++) lam[k] = k < nulls ? 0 : 0.05 + 0.95 * fabs(normal()) / 3;
  memset(h, 0, (size_t)(d * d) * sizeof *h);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++)
      for (int64_t k = 0; k < d; k++) h[i * d + j] += q[i * d + k] * lam[k] * q[j * d + k];
  free(q);
  free(lam);
}

static void test_gmres(int64_t d, int m) {
  double *w = calloc((size_t)(d * d), sizeof *w), *h = calloc((size_t)(d * d), sizeof *h);
  double *a = calloc((size_t)(d * d), sizeof *a), *lu = calloc((size_t)(d * d), sizeof *lu);
  double *b = calloc((size_t)d, sizeof *b), *x = calloc((size_t)d, sizeof *x), *want = calloc((size_t)d, sizeof *want);
  symmetric(w, d, 0.5 / sqrt((double)d));
  semidefinite(h, d, d / 10);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) {
      double s = 0;
      for (int64_t k = 0; k < d; k++) s += w[i * d + k] * h[k * d + j];
      a[i * d + j] = s - (i == j);  // W H - I
    }
  for (int64_t i = 0; i < d; i++) want[i] = b[i] = normal();
  memcpy(lu, a, (size_t)(d * d) * sizeof *lu);
  lapack_int *piv = calloc((size_t)d, sizeof *piv);
  CHECK(LAPACKE_dgesv(LAPACK_ROW_MAJOR, (lapack_int)d, 1, lu, (lapack_int)d, piv, want, 1) == 0);
  Dense op = {d, a};
  double resid = krylov_gmres(apply, &op, d, b, x, m, 4 * (int)d, 1e-12);
  double err = 0, size = 0;
  for (int64_t i = 0; i < d; i++) err = fmax(err, fabs(x[i] - want[i])), size = fmax(size, fabs(want[i]));
  CHECK(resid <= 1e-11);
  CHECK(err <= 1e-9 * size);
  printf("gmres d=%lld m=%d: residual %.1e, |x - x_lapack| / |x| %.1e\n", (long long)d, m, resid, err / size);
  // b = 0: x = 0 and a zero residual, without a product.
  memset(b, 0, (size_t)d * sizeof *b);
  CHECK(krylov_gmres(apply, &op, d, b, x, m, 10, 1e-12) == 0 && x[0] == 0);
  free(w), free(h), free(a), free(lu), free(b), free(x), free(want), free(piv);
}

// lambda_max(B'WB) densely: B = Q diag(sqrt(lam)).
static double dense_top(const double *h, const double *w, int64_t d) {
  double *q = malloc((size_t)(d * d) * sizeof *q), *lam = calloc((size_t)d, sizeof *lam);
  double *k = calloc((size_t)(d * d), sizeof *k);
  memcpy(q, h, (size_t)(d * d) * sizeof *q);
  LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d, q, (lapack_int)d, lam);
  for (int64_t i = 0; i < d; i++)
    for (int64_t j = 0; j < d; j++) q[i * d + j] *= sqrt(fmax(lam[j], 0));
  double *wq = calloc((size_t)(d * d), sizeof *wq);  // W B, then B' (W B): 2 d^3
  for (int64_t a = 0; a < d; a++)
    for (int64_t b = 0; b < d; b++)
      for (int64_t j = 0; j < d; j++) wq[a * d + j] += w[a * d + b] * q[b * d + j];
  for (int64_t i = 0; i < d; i++)
    for (int64_t a = 0; a < d; a++)
      for (int64_t j = 0; j < d; j++) k[i * d + j] += q[a * d + i] * wq[a * d + j];
  free(wq);
  LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)d, k, (lapack_int)d, lam);
  double top = lam[d - 1];
  free(q), free(lam), free(k);
  return top;
}

typedef struct {
  Dense h, w;
} Pair;

static void apply_h(void *user, const double *x, double *y) { apply(&((Pair *)user)->h, x, y); }
static void apply_w(void *user, const double *x, double *y) { apply(&((Pair *)user)->w, x, y); }

static void test_top(int64_t d, int64_t nulls, double scale) {
  double *w = calloc((size_t)(d * d), sizeof *w), *h = calloc((size_t)(d * d), sizeof *h);
  double *start = calloc((size_t)d, sizeof *start);
  symmetric(w, d, scale / sqrt((double)d));
  semidefinite(h, d, nulls);
  for (int64_t i = 0; i < d; i++) start[i] = normal();
  Pair p = {{d, h}, {d, w}};
  KrylovTop t = krylov_top_eig(apply_h, apply_w, &p, d, (int)d, 1e-12, start);
  double want = dense_top(h, w, d);
  CHECK(!t.h_zero && fabs(t.top - want) <= 1e-10 * (1 + fabs(want)));
  printf("lanczos d=%lld nulls=%lld: top %.15g (dense %.15g) in %d steps, bound %.1e\n", (long long)d,
         (long long)nulls, t.top, want, t.steps, t.bound);
  memset(h, 0, (size_t)(d * d) * sizeof *h);
  t = krylov_top_eig(apply_h, apply_w, &p, d, (int)d, 1e-12, start);
  CHECK(t.h_zero && t.top == 0);
  free(w), free(h), free(start);
}

int main(void) {
  test_gmres(40, 30);
  test_gmres(200, 30);
  test_top(30, 0, 1);
  test_top(120, 40, 3);
  test_top(200, 199, 2);  // rank one: one nonzero eigenvalue
  return check_report("test_check_krylov");
}
