// Derivative consistency, docs/theory.md §4.1: g against L and H against g by central
// differences (see layer_checks.h). The step is §4.1.1's, the errors and tolerances
// §4.1.3's, kinks and the Richardson retry §4.1.5's.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/layer_internal.h"
#include "support/common.h"

// The scratch of one point.
typedef struct {
  const LayerCheckCtx *ctx;
  int64_t n;
  double *x, *xs;       // the point, and a shifted copy
  double *g, *h;        // g(x), and H(x) dense (full form) or H d (directional)
  double *gp, *gm;      // g at the shifted points
  double *kink0, *kinkv;  // kink arguments at x and at a shifted point (nkinks rows of n)
  double L, SL, gmax;
  double term_max;  // the largest entry of the terms of H (its rounding's scale)
} Point;

// A failure after the Richardson retry this close to a kink (in steps h) is a skip.
enum { KINK_WIDE = 64 };

// The sign of each kink argument at xs equals that at x (0 counts as its own sign).
static bool same_kink_signs(Point *p, const double *xs) {
  const LayerCheckCtx *ctx = p->ctx;
  if (!ctx->nkinks) return true;
  double *outs[LAYER_CHECK_MAX_KINKS];
  for (int k = 0; k < ctx->nkinks; k++) outs[k] = p->kinkv + (size_t)k * (size_t)p->n;
  layer_eval(ctx, xs, NULL, ctx->kinks, ctx->nkinks, outs, BCAST_ALL);
  for (int64_t i = 0; i < (int64_t)ctx->nkinks * p->n; i++) {
    double a = p->kink0[i], b = p->kinkv[i];
    if ((a > 0) != (b > 0) || (a < 0) != (b < 0)) return false;
  }
  return true;
}

// Kink arguments keep their signs within `radius` steps of x along coordinate i.
static bool near_kink_coord(Point *p, int64_t i, double radius) {
  const LayerCheckCtx *ctx = p->ctx;
  if (!ctx->nkinks) return false;
  double xi = p->x[i], r = radius * fd_step(xi, ctx->beta, 1);
  memcpy(p->xs, p->x, (size_t)p->n * sizeof *p->xs);
  p->xs[i] = xi + r;
  bool same = same_kink_signs(p, p->xs);
  p->xs[i] = xi - r;
  return !same || !same_kink_signs(p, p->xs);
}

// The same along the direction v with step h.
static bool near_kink_dir(Point *p, const double *v, double h, double radius) {
  if (!p->ctx->nkinks) return false;
  for (int side = -1; side <= 1; side += 2) {
    for (int64_t i = 0; i < p->n; i++) p->xs[i] = p->x[i] + side * radius * h * v[i];
    if (!same_kink_signs(p, p->xs)) return true;
  }
  return false;
}

// L and g at xs.
static double eval_lg(Point *p, const double *xs, double *g) {
  double L = NAN;
  ExprId nodes[2] = {p->ctx->eq->L, p->ctx->eq->g};
  double *outs[2] = {&L, g};
  layer_eval(p->ctx, xs, NULL, nodes, 2, outs, 0);
  return L;
}

// A NaN error (a difference that is not finite) counts as infinitely wrong.
static double nan_inf(double e) { return isnan(e) ? INFINITY : e; }

typedef struct {
  double eg, eh;  // the normalised errors of one difference (eh: the largest of its column)
} FdErr;

static void note_worst(DerivResult *r, int point, int coord, const char *what, double ratio) {
  if (!(ratio <= r->worst_ratio)) {
    r->worst_ratio = ratio;
    r->worst_point = point;
    r->worst_coord = coord;
    snprintf(r->worst_what, sizeof r->worst_what, "%s", what);
  }
}

// Central differences along coordinate i with the step of §4.1.1 scaled by `scale`: the
// difference quotients of L (into *dl) and of g (into dg).
static double diff_coord(Point *p, int64_t i, double scale, double *dl, double *dg) {
  double xi = p->x[i], h = fd_step(xi, p->ctx->beta, scale);
  memcpy(p->xs, p->x, (size_t)p->n * sizeof *p->xs);
  p->xs[i] = xi + h;
  double lp = eval_lg(p, p->xs, p->gp);
  p->xs[i] = xi - h;
  double lm = eval_lg(p, p->xs, p->gm);
  *dl = (lp - lm) / (2 * h);
  for (int64_t r = 0; r < p->n; r++) dg[r] = (p->gp[r] - p->gm[r]) / (2 * h);
  return h;
}

// The errors of column i given its difference quotients, against g_i and H[:, i].
static FdErr col_errors(const Point *p, int64_t i, double s, double dl, const double *dg) {
  FdErr e;
  e.eg = fabs(dl - p->g[i]) / (fabs(p->g[i]) + p->SL / s + 1);
  e.eh = 0;
  for (int64_t r = 0; r < p->n; r++) {
    double hri = p->h[r * p->n + i];
    e.eh = fmax(e.eh, nan_inf(fabs(dg[r] - hri) / (fabs(hri) + p->gmax / s + 1)));
  }
  e.eg = nan_inf(e.eg);
  return e;
}

// The full form at one point (n <= LAYER_CHECK_DIRECTIONAL_N). Returns the number of
// coordinates checked.
static int check_full(Point *p, int point, DerivResult *r) {
  int64_t n = p->n;
  double *dg = xcalloc((size_t)n, sizeof *dg), *dg2 = xcalloc((size_t)n, sizeof *dg2);
  // Symmetry of the derived H.
  double hmax = p->term_max, asym = 0;
  for (int64_t a = 0; a < n; a++)
    for (int64_t b = 0; b < n; b++) {
      hmax = fmax(hmax, fabs(p->h[a * n + b]));
      asym = fmax(asym, fabs(p->h[a * n + b] - p->h[b * n + a]));
    }
  double sym = hmax > 0 ? asym / (CHECK_EPS * hmax) : 0;
  r->max_sym = fmax(r->max_sym, sym);
  note_worst(r, point, -1, "symmetry", sym / LAYER_TOL_SYM);
  int checked = 0;
  for (int64_t i = 0; i < n; i++) {
    if (near_kink_coord(p, i, 2)) {
      r->coords_skipped++;
      continue;
    }
    checked++;
    double dl, dl2;
    double h = diff_coord(p, i, 1, &dl, dg), s = h / CHECK_CBRT_EPS;
    FdErr e = col_errors(p, i, s, dl, dg);
    if (!(e.eg <= LAYER_TOL_EG && e.eh <= LAYER_TOL_EH)) {
      // The Richardson retry: (4 D(h/2) - D(h)) / 3, with the denominators of step h.
      r->retries++;
      diff_coord(p, i, 0.5, &dl2, dg2);
      dl2 = (4 * dl2 - dl) / 3;
      for (int64_t k = 0; k < n; k++) dg2[k] = (4 * dg2[k] - dg[k]) / 3;
      FdErr e2 = col_errors(p, i, s, dl2, dg2);
      e.eg = fmin(e.eg, e2.eg);
      e.eh = fmin(e.eh, e2.eh);
      if (e.eg <= LAYER_TOL_EG && e.eh <= LAYER_TOL_EH) r->retries_passed++;
      else if (near_kink_coord(p, i, KINK_WIDE)) {
        // Within KINK_WIDE h of a kink, where a one-sided piece with an unbounded third
        // derivative (relu(x)^p, 2 < p < 3) spoils the difference: not a wrong derivative.
        r->near_kink++;
        r->coords_skipped++;
        checked--;
        continue;
      }
    }
    r->max_eg = fmax(r->max_eg, e.eg);
    r->max_eh = fmax(r->max_eh, e.eh);
    note_worst(r, point, (int)i, "e_g", e.eg / LAYER_TOL_EG);
    note_worst(r, point, (int)i, "e_H", e.eh / LAYER_TOL_EH);
  }
  free(dg);
  free(dg2);
  return checked;
}

// Along the direction v with step h * scale: the difference quotient of L (*dl), of g (dg),
// the direction actually taken d = (x+ - x-)/(2h), and H d (into hd) with g . d (*gd).
static void diff_dir(Point *p, const double *v, double h, double *dl, double *dg, double *d,
                     double *hd, double *gd) {
  int64_t n = p->n;
  double *xm = xcalloc((size_t)n, sizeof *xm);
  for (int64_t i = 0; i < n; i++) {
    p->xs[i] = p->x[i] + h * v[i];
    xm[i] = p->x[i] - h * v[i];
    d[i] = (p->xs[i] - xm[i]) / (2 * h);
  }
  double lp = eval_lg(p, p->xs, p->gp), lm = eval_lg(p, xm, p->gm);
  *dl = (lp - lm) / (2 * h);
  for (int64_t i = 0; i < n; i++) dg[i] = (p->gp[i] - p->gm[i]) / (2 * h);
  ExprId hvp = p->ctx->eq->hvp;
  double *outs[1] = {hd};
  layer_eval(p->ctx, p->x, d, &hvp, 1, outs, BCAST_ALL);
  *gd = 0;
  for (int64_t i = 0; i < n; i++) *gd += p->g[i] * d[i];
  free(xm);
}

static FdErr dir_errors(const Point *p, double s, double dl, double gd, const double *dg,
                        const double *hd) {
  FdErr e;
  e.eg = fabs(dl - gd) / (fabs(gd) + p->SL / s + 1);
  e.eh = 0;
  for (int64_t i = 0; i < p->n; i++)
    e.eh = fmax(e.eh, nan_inf(fabs(dg[i] - hd[i]) / (fabs(hd[i]) + p->gmax / s + 1)));
  e.eg = nan_inf(e.eg);
  return e;
}

// |H - H'|_max / (eps |H|_max) for a large layer: from the dense H when its structure is
// known and it fits, otherwise by the bilinear form w'Hz - z'Hw on two random vectors.
static double symmetry_large(Point *p, Rng *rng) {
  const LayerCheckCtx *ctx = p->ctx;
  int64_t n = p->n;
  if (!ctx->eq->hessian.dense && ctx->eq->hessian.nterms == 0) return 0;
  if (!ctx->eq->hessian.dense && n <= DENSE_MAX_N) {
    double *h = xcalloc((size_t)(n * n), sizeof *h), hmax = 0, asym = 0;
    dense_hessian_terms(ctx, p->x, h, &hmax);
    for (int64_t a = 0; a < n; a++)
      for (int64_t b = 0; b < n; b++) {
        hmax = fmax(hmax, fabs(h[a * n + b]));
        asym = fmax(asym, fabs(h[a * n + b] - h[b * n + a]));
      }
    free(h);
    return hmax > 0 ? asym / (CHECK_EPS * hmax) : 0;
  }
  // Otherwise from k columns H e_a at random distinct units a, by the Hessian-vector product:
  // the k x k block of entries H_ab against H_ba, scaled by the largest entry of those
  // columns. A product with a unit vector rounds each entry as H itself does, where a
  // bilinear form w'Hz - z'Hw on random vectors would add the rounding of two n-term sums
  // and underrate |H|_max (a softmax layer of 2500 units failed that way).
  enum { K = 8 };
  int64_t k = n < K ? n : K, at[K];
  for (int64_t c = 0; c < k; c++) {
    bool again;
    do {
      at[c] = (int64_t)(rng_uniform(rng) * (double)n) % n;
      again = false;
      for (int64_t d = 0; d < c; d++) again |= at[d] == at[c];
    } while (again);
  }
  double *e = xcalloc((size_t)n, sizeof *e), *cols = xcalloc((size_t)(k * n), sizeof *cols);
  double hmax = 0, asym = 0;
  ExprId hvp = ctx->eq->hvp;
  for (int64_t c = 0; c < k; c++) {
    double *out[1] = {cols + c * n};
    e[at[c]] = 1;
    layer_eval(ctx, p->x, e, &hvp, 1, out, BCAST_ALL);
    e[at[c]] = 0;
    for (int64_t i = 0; i < n; i++) hmax = fmax(hmax, fabs(cols[c * n + i]));
  }
  for (int64_t c = 0; c < k; c++)
    for (int64_t d = 0; d < k; d++)
      asym = fmax(asym, nan_inf(fabs(cols[c * n + at[d]] - cols[d * n + at[c]])));
  free(e);
  free(cols);
  return hmax > 0 ? asym / (CHECK_EPS * hmax) : 0;
}

// The directional form at one point (n > LAYER_CHECK_DIRECTIONAL_N). Returns 1 if checked.
static int check_directional(Point *p, int point, Rng *rng, bool symmetry, DerivResult *r) {
  int64_t n = p->n;
  const LayerCheckCtx *ctx = p->ctx;
  double *v = xcalloc((size_t)n, sizeof *v), norm = 0, xmax = 0;
  for (int64_t i = 0; i < n; i++) v[i] = rng_normal(rng), norm += v[i] * v[i];
  for (int64_t i = 0; i < n; i++) v[i] /= sqrt(norm), xmax = fmax(xmax, fabs(p->x[i]));
  if (symmetry) {
    double sym = symmetry_large(p, rng);
    r->max_sym = fmax(r->max_sym, sym);
    note_worst(r, point, -1, "symmetry", sym / LAYER_TOL_SYM);
  }
  double h = CHECK_CBRT_EPS * fmax(1, xmax) / fmax(1, ctx->beta), s = h / CHECK_CBRT_EPS;
  int checked = 0;
  if (near_kink_dir(p, v, h, 2)) {
    r->coords_skipped++;
  } else {
    checked = 1;
    double *dg = xcalloc((size_t)n, sizeof *dg), *d = xcalloc((size_t)n, sizeof *d),
           *dg2 = xcalloc((size_t)n, sizeof *dg2), *d2 = xcalloc((size_t)n, sizeof *d2),
           *hd2 = xcalloc((size_t)n, sizeof *hd2);
    double dl, gd, dl2, gd2;
    diff_dir(p, v, h, &dl, dg, d, p->h, &gd);
    FdErr e = dir_errors(p, s, dl, gd, dg, p->h);
    if (!(e.eg <= LAYER_TOL_EG && e.eh <= LAYER_TOL_EH)) {
      // Richardson: (4 D(h/2) - D(h)) / 3 against (4 H d2 - H d) / 3, d and d2 being the
      // directions the two steps actually took.
      r->retries++;
      diff_dir(p, v, h / 2, &dl2, dg2, d2, hd2, &gd2);
      dl2 = (4 * dl2 - dl) / 3;
      gd2 = (4 * gd2 - gd) / 3;
      for (int64_t i = 0; i < n; i++) {
        dg2[i] = (4 * dg2[i] - dg[i]) / 3;
        hd2[i] = (4 * hd2[i] - p->h[i]) / 3;
      }
      FdErr e2 = dir_errors(p, s, dl2, gd2, dg2, hd2);
      e.eg = fmin(e.eg, e2.eg);
      e.eh = fmin(e.eh, e2.eh);
      if (e.eg <= LAYER_TOL_EG && e.eh <= LAYER_TOL_EH) {
        r->retries_passed++;
      } else if (near_kink_dir(p, v, h, KINK_WIDE)) {
        r->near_kink++;
        r->coords_skipped++;
        checked = 0;
      }
    }
    if (checked) {
      r->max_eg = fmax(r->max_eg, e.eg);
      r->max_eh = fmax(r->max_eh, e.eh);
      note_worst(r, point, -1, "e_g", e.eg / LAYER_TOL_EG);
      note_worst(r, point, -1, "e_H", e.eh / LAYER_TOL_EH);
    }
    free(dg);
    free(d);
    free(dg2);
    free(d2);
    free(hd2);
  }
  free(v);
  return checked;
}

void layer_check_derivatives(const LayerCheckCtx *ctx, const SampleSet *pts, uint64_t seed,
                             DerivResult *out) {
  int64_t n = ctx->n;
  *out = (DerivResult){.directional = n > LAYER_CHECK_DIRECTIONAL_N, .worst_point = -1,
                       .worst_coord = -1, .worst_ratio = -1};
  Point p = {.ctx = ctx, .n = n};
  p.xs = xcalloc((size_t)n + 1, sizeof *p.xs);
  p.g = xcalloc((size_t)n + 1, sizeof *p.g);
  p.h = xcalloc(out->directional ? (size_t)n + 1 : (size_t)(n * n) + 1, sizeof *p.h);
  p.gp = xcalloc((size_t)n + 1, sizeof *p.gp);
  p.gm = xcalloc((size_t)n + 1, sizeof *p.gm);
  p.kink0 = xcalloc((size_t)(ctx->nkinks * n) + 1, sizeof *p.kink0);
  p.kinkv = xcalloc((size_t)(ctx->nkinks * n) + 1, sizeof *p.kinkv);
  Rng rng = rng_for(seed, ctx->layer, 2);
  for (int k = 0; k < pts->count; k++) {
    p.x = pts->x + (size_t)k * (size_t)n;
    // L, g, the kink and singular arguments at x.
    ExprId nodes[2 + LAYER_CHECK_MAX_KINKS + LAYER_CHECK_MAX_SINGULAR];
    double *outs[2 + LAYER_CHECK_MAX_KINKS + LAYER_CHECK_MAX_SINGULAR], sing[LAYER_CHECK_MAX_SINGULAR];
    int m = 0;
    nodes[m] = ctx->eq->L, outs[m++] = &p.L;
    nodes[m] = ctx->eq->g, outs[m++] = p.g;
    for (int j = 0; j < ctx->nkinks; j++) nodes[m] = ctx->kinks[j], outs[m++] = p.kink0 + (size_t)j * (size_t)n;
    for (int j = 0; j < ctx->nsingular; j++) nodes[m] = ctx->singular[j], outs[m++] = &sing[j];
    bool ok = layer_eval(ctx, p.x, NULL, nodes, m, outs, ((1ull << ctx->nkinks) - 1) << 2);
    for (int j = 0; j < ctx->nsingular; j++) ok &= sing[j] >= LAYER_SINGULAR_MIN;
    if (ok && !out->directional) ok = dense_hessian_terms(ctx, p.x, p.h, &p.term_max);
    if (!ok) {
      out->points_skipped++;
      continue;
    }
    p.SL = fabs(p.L);
    p.gmax = 0;
    for (int64_t i = 0; i < n; i++) p.SL += fabs(p.x[i] * p.g[i]), p.gmax = fmax(p.gmax, fabs(p.g[i]));
    int checked;
    if (out->directional) {
      checked = check_directional(&p, k, &rng, true, out);
    } else {
      // Coordinate by coordinate against H's structure, then along one random direction
      // against the Hessian-vector product (what the kernels use; it overwrites p.h).
      checked = check_full(&p, k, out);
      if (checked) check_directional(&p, k, &rng, false, out);
    }
    if (checked) out->points_checked++;
    else out->points_skipped++;
  }
  free(p.xs);
  free(p.g);
  free(p.h);
  free(p.gp);
  free(p.gm);
  free(p.kink0);
  free(p.kinkv);
  bool pass = out->max_eg <= LAYER_TOL_EG && out->max_eh <= LAYER_TOL_EH &&
              out->max_sym <= LAYER_TOL_SYM;
  out->verdict = !out->points_checked ? VERDICT_SKIPPED : pass ? VERDICT_PASS : VERDICT_FAIL;
}
