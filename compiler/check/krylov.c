// Matrix-free Krylov methods (see krylov.h).
#include "check/krylov.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

static double dot(const double *x, const double *y, int64_t d) {
  double s = 0;
  for (int64_t i = 0; i < d; i++) s += x[i] * y[i];
  return s;
}

static void axpy(double a, const double *x, double *y, int64_t d) {
  for (int64_t i = 0; i < d; i++) y[i] += a * x[i];
}

// |b - A x| / |b|, with one product.
static double relative_residual(KrylovOp a, void *user, int64_t d, const double *b,
                                const double *x, double *work) {
  a(user, x, work);
  double r = 0, nb = sqrt(dot(b, b, d));
  for (int64_t i = 0; i < d; i++) r += (b[i] - work[i]) * (b[i] - work[i]);
  return nb > 0 ? sqrt(r) / nb : 0;
}

double krylov_gmres(KrylovOp a, void *user, int64_t d, const double *b, double *x, int m,
                    int max_products, double tol) {
  memset(x, 0, (size_t)d * sizeof *x);
  double nb = sqrt(dot(b, b, d));
  if (nb == 0) return 0;
  size_t ud = (size_t)d;
  double *v = xcalloc((size_t)(m + 1) * ud + 1, sizeof *v);   // the Krylov basis, row by row
  double *h = xcalloc((size_t)((m + 1) * m) + 1, sizeof *h);  // Hessenberg, (m+1) x m
  double *cs = xcalloc((size_t)m + 1, sizeof *cs), *sn = xcalloc((size_t)m + 1, sizeof *sn);
  double *g = xcalloc((size_t)m + 2, sizeof *g), *y = xcalloc((size_t)m + 1, sizeof *y);
  double *w = xcalloc(ud + 1, sizeof *w);
  int products = 0;
  double resid = 1;
  while (products < max_products && resid > tol) {
    // r = b - A x; its norm starts the least-squares right-hand side g.
    a(user, x, w);
    products++;
    for (int64_t i = 0; i < d; i++) v[i] = b[i] - w[i];
    double beta = sqrt(dot(v, v, d));
    if (beta <= tol * nb) break;
    for (int64_t i = 0; i < d; i++) v[i] /= beta;
    memset(g, 0, (size_t)(m + 2) * sizeof *g);
    g[0] = beta;
    int j = 0;
    while (j < m && products < max_products) {
      double *vj = v + (size_t)j * ud, *vn = v + (size_t)(j + 1) * ud;
      a(user, vj, vn);
      products++;
      for (int k = 0; k <= j; k++) {  // modified Gram-Schmidt
        h[k * m + j] = dot(vn, v + (size_t)k * ud, d);
        axpy(-h[k * m + j], v + (size_t)k * ud, vn, d);
      }
      double hn = sqrt(dot(vn, vn, d));
      h[(j + 1) * m + j] = hn;
      for (int k = 0; k < j; k++) {  // the previous rotations on the new column
        double t = cs[k] * h[k * m + j] + sn[k] * h[(k + 1) * m + j];
        h[(k + 1) * m + j] = -sn[k] * h[k * m + j] + cs[k] * h[(k + 1) * m + j];
        h[k * m + j] = t;
      }
      double r = hypot(h[j * m + j], hn);
      cs[j] = r > 0 ? h[j * m + j] / r : 1;
      sn[j] = r > 0 ? hn / r : 0;
      h[j * m + j] = r;
      h[(j + 1) * m + j] = 0;
      g[j + 1] = -sn[j] * g[j];
      g[j] *= cs[j];
      j++;
      resid = fabs(g[j]) / nb;
      if (resid <= tol || hn == 0) break;  // converged, or an exact (lucky) breakdown
      for (int64_t i = 0; i < d; i++) vn[i] /= hn;
    }
    // x += V y with R y = g (upper triangular, j x j).
    for (int k = j - 1; k >= 0; k--) {
      double s = g[k];
      for (int l = k + 1; l < j; l++) s -= h[k * m + l] * y[l];
      y[k] = h[k * m + k] != 0 ? s / h[k * m + k] : 0;
    }
    for (int k = 0; k < j; k++) axpy(y[k], v + (size_t)k * ud, x, d);
  }
  resid = relative_residual(a, user, d, b, x, w);
  free(v);
  free(h);
  free(cs);
  free(sn);
  free(g);
  free(y);
  free(w);
  return resid;
}

// The largest eigenvalue of the j x j tridiagonal (alpha, beta) and the last component of its
// eigenvector (LAPACK dstev); false when LAPACK fails.
static bool tridiagonal_top(const double *alpha, const double *beta, int j, double *top,
                            double *last) {
  double *dd = xmalloc((size_t)j * sizeof *dd + 1), *e = xcalloc((size_t)j + 1, sizeof *e);
  double *z = xmalloc((size_t)(j * j) * sizeof *z + 1);
  memcpy(dd, alpha, (size_t)j * sizeof *dd);
  if (j > 1) memcpy(e, beta, (size_t)(j - 1) * sizeof *e);
  bool ok = LAPACKE_dstev(LAPACK_ROW_MAJOR, 'V', j, dd, e, z, j) == 0;
  if (ok) {
    *top = dd[j - 1];                   // ascending
    *last = z[(j - 1) * j + (j - 1)];   // row j-1 (the last component), column j-1
  }
  free(dd);
  free(e);
  free(z);
  return ok;
}

KrylovTop krylov_top_eig(KrylovOp hop, KrylovOp wop, void *user, int64_t d, int m, double tol,
                         const double *start) {
  KrylovTop out = {NAN, NAN, 0, false};
  size_t ud = (size_t)d;
  if (m > d) m = (int)d;
  // The Lanczos vectors q_j and H q_j (the product's other side), row by row.
  double *q = xcalloc((size_t)(m + 1) * ud + 1, sizeof *q), *hq = xcalloc((size_t)(m + 1) * ud + 1, sizeof *hq);
  double *alpha = xcalloc((size_t)m + 1, sizeof *alpha), *beta = xcalloc((size_t)m + 1, sizeof *beta);
  double *w = xcalloc(ud + 1, sizeof *w), *hw = xcalloc(ud + 1, sizeof *hw);
  memcpy(q, start, ud * sizeof *q);
  hop(user, q, hq);
  double norm = sqrt(fmax(dot(q, hq, d), 0));
  if (norm == 0) {
    out = (KrylovTop){0, 0, 0, true};
    goto done;
  }
  for (int64_t i = 0; i < d; i++) q[i] /= norm, hq[i] /= norm;
  for (int j = 0; j < m; j++) {
    double *hqj = hq + (size_t)j * ud;
    wop(user, hqj, w);  // W H q_j
    alpha[j] = dot(w, hqj, d);
    // Full reorthogonalisation in the H product, twice ("twice is enough").
    for (int pass = 0; pass < 2; pass++)
      for (int k = 0; k <= j; k++) axpy(-dot(w, hq + (size_t)k * ud, d), q + (size_t)k * ud, w, d);
    hop(user, w, hw);
    beta[j] = sqrt(fmax(dot(w, hw, d), 0));
    out.steps = j + 1;
    double top, last;
    if (!tridiagonal_top(alpha, beta, j + 1, &top, &last)) break;
    out.top = top;
    out.bound = fabs(beta[j] * last);
    // Converged, or an invariant subspace (beta ~ 0: the Ritz values are exact).
    if (out.bound <= tol * (1 + fabs(top))) break;
    if (j + 1 < m) {
      for (int64_t i = 0; i < d; i++) {
        q[(size_t)(j + 1) * ud + (size_t)i] = w[i] / beta[j];
        hq[(size_t)(j + 1) * ud + (size_t)i] = hw[i] / beta[j];
      }
    }
  }
done:
  free(q);
  free(hq);
  free(alpha);
  free(beta);
  free(w);
  free(hw);
  return out;
}
