// The spectrum of a layer's Hessian and convexity (docs/theory.md §4.2.2, §4.2.3) (see
// layer_checks.h).
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/layer_internal.h"
#include "support/common.h"

enum { DENSE_FULL_N = 256, DENSE_POINTS = 16 };

const char *spectrum_method_name(SpectrumMethod m) {
  static const char *const names[] = {"diagonal", "constant diagonal + low rank",
                                      "diagonal + rank one (secular equation)", "dsyevd"};
  return names[m];
}

// ---- The structure's values ----

bool struct_eval(const LayerCheckCtx *ctx, const double *x, StructVals *sv) {
  const StructJac *j = &ctx->eq->hessian;
  int64_t n = ctx->n;
  memset(sv, 0, sizeof *sv);
  sv->n = n;
  sv->nterms = j->nterms;
  sv->d = xcalloc((size_t)n + 1, sizeof *sv->d);
  ExprId nodes[1 + 2 * JAC_MAX_TERMS];
  double *outs[1 + 2 * JAC_MAX_TERMS];
  int m = 0;
  if (j->diag) nodes[m] = j->diag, outs[m++] = sv->d;
  for (int k = 0; k < j->nterms; k++) {
    sv->u[k] = xcalloc((size_t)n + 1, sizeof *sv->u[k]);
    sv->v[k] = xcalloc((size_t)n + 1, sizeof *sv->v[k]);
    nodes[m] = j->u[k], outs[m++] = sv->u[k];
    nodes[m] = j->v[k], outs[m++] = sv->v[k];
  }
  bool ok = layer_eval(ctx, x, NULL, nodes, m, outs, BCAST_ALL);
  sv->diag_const = true;
  for (int64_t i = 1; i < n; i++) sv->diag_const &= sv->d[i] == sv->d[0];
  return ok;
}

void struct_free(StructVals *sv) {
  free(sv->d);
  for (int k = 0; k < sv->nterms; k++) {
    free(sv->u[k]);
    free(sv->v[k]);
  }
}

static void struct_dense(const StructVals *sv, double *h) {
  int64_t n = sv->n;
  memset(h, 0, (size_t)(n * n) * sizeof *h);
  for (int64_t i = 0; i < n; i++) h[i * n + i] = sv->d[i];
  for (int k = 0; k < sv->nterms; k++)
    for (int64_t r = 0; r < n; r++)
      for (int64_t c = 0; c < n; c++) h[r * n + c] += sv->u[k][r] * sv->v[k][c];
}

bool layer_dense_hessian(const LayerCheckCtx *ctx, const double *x, double *h) {
  return dense_hessian_terms(ctx, x, h, NULL);
}

// Forward: the magnitudes of the terms of a structured H (below).
static void term_norms(const StructVals *sv, double *frob, double *maxabs);

bool dense_hessian_terms(const LayerCheckCtx *ctx, const double *x, double *h, double *term_max) {
  int64_t n = ctx->n;
  if (!ctx->eq->hessian.dense) {
    StructVals sv;
    bool ok = struct_eval(ctx, x, &sv);
    struct_dense(&sv, h);
    if (term_max) {
      double frob;
      term_norms(&sv, &frob, term_max);
    }
    struct_free(&sv);
    return ok;
  }
  if (term_max) *term_max = 0;
  // Column j is H e_j, from the Hessian-vector product.
  double *e = xcalloc((size_t)n, sizeof *e), *col = xcalloc((size_t)n, sizeof *col);
  bool ok = true;
  for (int64_t j = 0; j < n; j++) {
    e[j] = 1;
    double *outs[1] = {col};
    ok &= layer_eval(ctx, x, e, &ctx->eq->hvp, 1, outs, BCAST_ALL);
    for (int64_t r = 0; r < n; r++) h[r * n + j] = col[r];
    e[j] = 0;
  }
  free(e);
  free(col);
  return ok;
}

// ---- The secular equation ----

int64_t secular_count_below(const double *d, const double *z, double rho, int64_t n, double t) {
  // Haynsworth: the inertia of [[D - t, z], [z', -1/rho]] is In(D - t) + In(-1/rho - s)
  // with s = z'(D - t)^-1 z, and also In(D - t + rho z z') + In(-1/rho).
  int64_t neg = 0;
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = d[i] - t;
    if (a < 0) neg++;
    if (z[i] != 0) s += z[i] * z[i] / (a != 0 ? a : -DBL_MIN);
  }
  if (rho == 0) return neg;
  return neg + (-1 / rho - s < 0) - (-1 / rho < 0);
}

double secular_eigenvalue(const double *d, const double *z, double rho, int64_t n, int64_t k) {
  double lo = INFINITY, hi = -INFINITY, zz = 0;
  for (int64_t i = 0; i < n; i++) lo = fmin(lo, d[i]), hi = fmax(hi, d[i]), zz += z[i] * z[i];
  lo += fmin(0, rho * zz);
  hi += fmax(0, rho * zz);
  double pad = 4 * DBL_EPSILON * (fabs(lo) + fabs(hi)) + DBL_MIN;
  lo -= pad;
  hi += pad;
  for (int it = 0; it < 200; it++) {
    double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    if (secular_count_below(d, z, rho, n, mid) >= k + 1) hi = mid;
    else lo = mid;
  }
  return lo + (hi - lo) / 2;
}

// ---- Spectra ----

typedef struct {
  double lambda_min, lambda_max, abs_max, frob;
  int64_t nullity;
  // Given: the largest entry of the terms H is assembled from; with abs_max, the scale of
  // the matrix_rank rule (rounding in assembling H is relative to its terms).
  double term_max;
} Spec;

// The null threshold of the matrix_rank rule.
static double null_thr(const Spec *s, int64_t n) {
  return (double)n * CHECK_EPS * fmax(s->abs_max, s->term_max);
}

// The magnitude of the terms of H = diag(d) + sum_k u_k v_k': the Frobenius norm and (a
// bound on) the largest entry of A = |diag(d)| + sum_k |u_k| |v_k|'.
static void term_norms(const StructVals *sv, double *frob, double *maxabs) {
  int64_t n = sv->n;
  int K = sv->nterms;
  double f2 = 0, off = 0, diag = 0;
  for (int64_t i = 0; i < n; i++) {
    double di = fabs(sv->d[i]), row = di;
    f2 += di * di;
    for (int k = 0; k < K; k++) {
      double t = fabs(sv->u[k][i] * sv->v[k][i]);
      f2 += 2 * di * t;
      row += t;
    }
    diag = fmax(diag, row);
  }
  for (int k = 0; k < K; k++) {
    double ua = 0, vb = 0;
    for (int64_t i = 0; i < n; i++) ua = fmax(ua, fabs(sv->u[k][i])), vb = fmax(vb, fabs(sv->v[k][i]));
    off += ua * vb;
    for (int l = 0; l < K; l++) {
      double uu = 0, vv = 0;
      for (int64_t i = 0; i < n; i++)
        uu += fabs(sv->u[k][i] * sv->u[l][i]), vv += fabs(sv->v[k][i] * sv->v[l][i]);
      f2 += uu * vv;
    }
  }
  *frob = sqrt(f2);
  *maxabs = fmax(diag, off);
}

static void spec_from_eigs(const double *w, int64_t n, Spec *s) {
  s->lambda_min = w[0], s->lambda_max = w[n - 1];
  s->abs_max = fmax(fabs(w[0]), fabs(w[n - 1]));
  s->frob = 0;
  s->nullity = 0;
  for (int64_t i = 0; i < n; i++) s->frob += w[i] * w[i];
  s->frob = sqrt(s->frob);
  for (int64_t i = 0; i < n; i++) s->nullity += fabs(w[i]) <= null_thr(s, n);
}

// dsyevd on the symmetric part of a dense n x n matrix (overwritten): the quadratic form
// x'Hx that the energy's decrease needs (eq. 1.4), H itself when it is symmetric, as it is
// unless a derivative is wrong. False if LAPACK fails.
static bool dense_spec(double *h, int64_t n, Spec *s) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < i; j++) h[i * n + j] = h[j * n + i] = (h[i * n + j] + h[j * n + i]) / 2;
  double *w = xcalloc((size_t)n, sizeof *w);
  lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)n, h, (lapack_int)n, w);
  if (info == 0) spec_from_eigs(w, n, s);
  free(w);
  return info == 0;
}

// c I + sum_k u_k v_k': c on the complement of span{u, v}, and the eigenvalues of the
// restriction Q'HQ (m x m) on it. False when the span is the whole space.
static bool low_rank_spec(const StructVals *sv, Spec *s) {
  int64_t n = sv->n;
  int nv = 2 * sv->nterms, m = 0;
  double *q = xcalloc((size_t)(nv * n) + 1, sizeof *q), big = 0;
  for (int k = 0; k < nv; k++)
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs((k % 2 ? sv->v : sv->u)[k / 2][i]));
  for (int k = 0; k < nv && m < n; k++) {
    double *col = q + (size_t)m * (size_t)n, norm0 = 0, norm = 0;
    for (int64_t i = 0; i < n; i++) col[i] = (k % 2 ? sv->v : sv->u)[k / 2][i], norm0 += col[i] * col[i];
    for (int pass = 0; pass < 2; pass++)  // modified Gram-Schmidt, twice
      for (int b = 0; b < m; b++) {
        double dot = 0, *qb = q + (size_t)b * (size_t)n;
        for (int64_t i = 0; i < n; i++) dot += qb[i] * col[i];
        for (int64_t i = 0; i < n; i++) col[i] -= dot * qb[i];
      }
    for (int64_t i = 0; i < n; i++) norm += col[i] * col[i];
    if (norm0 == 0 || sqrt(norm) <= 1e-10 * sqrt(norm0) || sqrt(norm) <= 1e-300 * big) continue;
    for (int64_t i = 0; i < n; i++) col[i] /= sqrt(norm);
    m++;
  }
  if (m >= n) {
    free(q);
    return false;
  }
  double c = sv->d[0], *mat = xcalloc((size_t)(m * m) + 1, sizeof *mat);
  double *qu = xcalloc((size_t)m + 1, sizeof *qu), *qv = xcalloc((size_t)m + 1, sizeof *qv);
  for (int k = 0; k < sv->nterms; k++) {
    for (int b = 0; b < m; b++) {
      qu[b] = qv[b] = 0;
      for (int64_t i = 0; i < n; i++) qu[b] += q[(size_t)b * (size_t)n + (size_t)i] * sv->u[k][i],
                                      qv[b] += q[(size_t)b * (size_t)n + (size_t)i] * sv->v[k][i];
    }
    for (int a = 0; a < m; a++)
      for (int b = 0; b < m; b++) mat[a * m + b] += qu[a] * qv[b];
  }
  for (int a = 0; a < m; a++) {
    mat[a * m + a] += c;
    for (int b = 0; b < a; b++) mat[a * m + b] = mat[b * m + a] = (mat[a * m + b] + mat[b * m + a]) / 2;
  }
  double *w = xcalloc((size_t)m + 1, sizeof *w);
  bool ok = m == 0 || LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', m, mat, m, w) == 0;
  if (ok) {
    int64_t rest = n - m;
    s->lambda_min = m ? fmin(w[0], c) : c;
    s->lambda_max = m ? fmax(w[m - 1], c) : c;
    s->abs_max = fmax(fabs(s->lambda_min), fabs(s->lambda_max));
    double thr = null_thr(s, n), f2 = (double)rest * c * c;
    s->nullity = fabs(c) <= thr ? rest : 0;
    for (int b = 0; b < m; b++) f2 += w[b] * w[b], s->nullity += fabs(w[b]) <= thr;
    s->frob = sqrt(f2);
  }
  free(q);
  free(mat);
  free(qu);
  free(qv);
  free(w);
  return ok;
}

// diag(d) + u v' with u = alpha v: the secular equation with rho = alpha, z = v.
static bool secular_spec(const StructVals *sv, Spec *s) {
  int64_t n = sv->n;
  const double *u = sv->u[0], *v = sv->v[0];
  double uv = 0, vv = 0, umax = 0;
  for (int64_t i = 0; i < n; i++) uv += u[i] * v[i], vv += v[i] * v[i], umax = fmax(umax, fabs(u[i]));
  double alpha = vv > 0 ? uv / vv : 0;
  for (int64_t i = 0; i < n; i++)
    if (fabs(u[i] - alpha * v[i]) > 1e-12 * umax) return false;
  s->lambda_min = secular_eigenvalue(sv->d, v, alpha, n, 0);
  s->lambda_max = secular_eigenvalue(sv->d, v, alpha, n, n - 1);
  s->abs_max = fmax(fabs(s->lambda_min), fabs(s->lambda_max));
  double d2 = 0, dz = 0;
  for (int64_t i = 0; i < n; i++) d2 += sv->d[i] * sv->d[i], dz += sv->d[i] * v[i] * v[i];
  s->frob = sqrt(fmax(0, d2 + 2 * alpha * dz + alpha * alpha * vv * vv));
  double thr = null_thr(s, n);
  s->nullity = secular_count_below(sv->d, v, alpha, n, nextafter(thr, INFINITY)) -
               secular_count_below(sv->d, v, alpha, n, -thr);
  return true;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

// The closed form of the structure's spectrum, when it has one.
static bool closed_spec(const StructVals *sv, SpectrumMethod *method, Spec *s) {
  if (sv->nterms == 0) {
    double *w = xcalloc((size_t)sv->n, sizeof *w);
    memcpy(w, sv->d, (size_t)sv->n * sizeof *w);
    qsort(w, (size_t)sv->n, sizeof *w, cmp_double);
    spec_from_eigs(w, sv->n, s);
    free(w);
    *method = SPECTRUM_DIAGONAL;
    return true;
  }
  if (sv->diag_const && low_rank_spec(sv, s)) {
    *method = SPECTRUM_LOW_RANK;
    return true;
  }
  if (sv->nterms == 1 && secular_spec(sv, s)) {
    *method = SPECTRUM_SECULAR;
    return true;
  }
  return false;
}

static void set_out(LayerSpectrum *out, SpectrumMethod m, const Spec *s) {
  out->method = m;
  out->lambda_min = s->lambda_min, out->lambda_max = s->lambda_max;
  out->abs_max = s->abs_max, out->frob = s->frob, out->nullity = s->nullity;
}

void layer_spectrum(const LayerCheckCtx *ctx, const double *x, bool cross_check,
                    LayerSpectrum *out) {
  int64_t n = ctx->n;
  memset(out, 0, sizeof *out);
  if (n == 0) {
    out->finite = true;
    return;
  }
  Spec s = {0};
  if (ctx->eq->hessian.dense) {
    if (n > DENSE_MAX_N) return;
    double *h = xcalloc((size_t)(n * n), sizeof *h);
    out->finite = layer_dense_hessian(ctx, x, h) && dense_spec(h, n, &s);
    if (out->finite) set_out(out, SPECTRUM_DENSE, &s);
    out->scale = out->frob;
    free(h);
    return;
  }
  StructVals sv;
  out->finite = struct_eval(ctx, x, &sv);
  if (out->finite) {
    SpectrumMethod m;
    Spec cs = {0};
    term_norms(&sv, &out->scale, &s.term_max);
    cs.term_max = s.term_max;
    bool closed = closed_spec(&sv, &m, &cs);
    if (closed && n > LAYER_CHECK_DIRECTIONAL_N) {
      set_out(out, m, &cs);
    } else if (n <= DENSE_MAX_N) {
      double *h = xcalloc((size_t)(n * n), sizeof *h);
      struct_dense(&sv, h);
      out->finite = dense_spec(h, n, &s);
      if (out->finite) set_out(out, SPECTRUM_DENSE, &s);
      if (closed && cross_check) out->has_closed = true, out->closed_lambda_min = cs.lambda_min;
      free(h);
    } else {
      out->finite = false;
    }
  }
  struct_free(&sv);
}

// ---- Convexity ----

// Whether the layer's spectrum needs dsyevd at a large size (no closed form is expected).
static bool needs_dense(const LayerCheckCtx *ctx) {
  const StructJac *j = &ctx->eq->hessian;
  if (j->dense) return true;
  if (j->nterms == 0 || j->nterms == 1) return false;
  return !j->diag || expr_get(ctx->net->pool, j->diag)->shape.rank != 0 ? true : false;
}

LayerSpectrum *layer_spectra(const LayerCheckCtx *ctx, const SampleSet *pts) {
  int64_t n = ctx->n;
  LayerSpectrum *sp = xcalloc((size_t)pts->count + 1, sizeof *sp);
  // A large layer without a closed form is checked at DENSE_POINTS of its points.
  int stride = 1;
  // So is one whose H has no structure above LAYER_CHECK_DIRECTIONAL_N units: each point
  // costs n Hessian-vector products.
  bool many = ctx->eq->hessian.dense ? n > LAYER_CHECK_DIRECTIONAL_N : n > DENSE_FULL_N;
  if (many && needs_dense(ctx)) stride = (pts->count + DENSE_POINTS - 1) / DENSE_POINTS;
  for (int k = 0; k < pts->count; k += stride) {
    layer_spectrum(ctx, pts->x + (size_t)k * (size_t)n, n <= LAYER_CHECK_DIRECTIONAL_N, &sp[k]);
    sp[k].computed = true;
  }
  return sp;
}

void layer_check_convexity(const LayerCheckCtx *ctx, const SampleSet *pts,
                           const LayerSpectrum *spectra, ConvexResult *out) {
  int64_t n = ctx->n;
  *out = (ConvexResult){.worst_point = -1, .min_rel = INFINITY, .max_closed_gap = -1,
                        .tol_rel = LAYER_TOL_PSD * (double)n * CHECK_EPS};
  LayerSpectrum *own = spectra ? NULL : layer_spectra(ctx, pts);
  if (own) spectra = own;
  for (int k = 0; k < pts->count; k++) {
    const LayerSpectrum *sp = &spectra[k];
    if (!sp->computed) continue;
    if (!sp->finite) {
      out->points_skipped++;
      continue;
    }
    out->points_checked++;
    out->method = sp->method;
    double rel = sp->scale > 0 ? sp->lambda_min / sp->scale : 0, tol = out->tol_rel * sp->scale;
    if (rel < out->min_rel) {
      out->min_rel = rel;
      out->worst_point = k;
      out->worst_lambda = sp->lambda_min;
      out->worst_tol = tol;
    }
    if (sp->has_closed && sp->scale > 0)
      out->max_closed_gap =
          fmax(out->max_closed_gap, fabs(sp->closed_lambda_min - sp->lambda_min) / sp->scale);
  }
  free(own);
  if (!out->points_checked) {
    out->min_rel = 0;
    out->verdict = VERDICT_SKIPPED;
  } else {
    out->verdict = out->worst_lambda < -out->worst_tol ? VERDICT_FAIL : VERDICT_PASS;
  }
}
