// Dead neurons and flat directions, docs/theory.md §4.5: structural null directions, dead
// and saturated units, nullity (see layer_checks.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/layer_internal.h"
#include "support/common.h"

void structural_nulls_name(unsigned bits, char *buf, size_t n) {
  // Any two of 1, x and x - mean(x) span the third: name two, 1 first.
  if ((bits & NULL_ONES) && (bits & NULL_CENTRED)) bits &= ~(unsigned)NULL_X;
  if ((bits & NULL_ONES) && (bits & NULL_X)) bits &= ~(unsigned)NULL_CENTRED;
  if ((bits & NULL_X) && (bits & NULL_CENTRED)) bits &= ~(unsigned)NULL_CENTRED;
  snprintf(buf, n, "%s%s%s%s%s%s", bits ? "span{" : "none", bits & NULL_ONES ? "1" : "",
           (bits & NULL_ONES) && (bits & ~NULL_ONES) ? ", " : "",
           bits & NULL_CENTRED ? "x - mean(x)" : "",
           (bits & NULL_CENTRED) && (bits & NULL_X) ? ", " : "",
           bits & NULL_X ? "x}" : bits ? "}" : "");
}

unsigned layer_structural_nulls(const LayerCheckCtx *ctx, const SampleSet *pts,
                                const LayerSpectrum *spectra, int *dim) {
  int64_t n = ctx->n;
  const StructJac *j = &ctx->eq->hessian;
  // An additive layer has no structural directions: its null directions are its dead units.
  unsigned bits = !j->dense && j->nterms == 0 ? 0 : NULL_ONES | NULL_X | NULL_CENTRED;
  int seen[3] = {0, 0, 0};
  double *d = xcalloc((size_t)n + 1, sizeof *d), *hd = xcalloc((size_t)n + 1, sizeof *hd);
  LayerSpectrum *own = spectra || !bits ? NULL : layer_spectra(ctx, pts);
  if (own) spectra = own;
  for (int k = 0; k < pts->count && bits; k++) {
    const double *x = pts->x + (size_t)k * (size_t)n;
    const LayerSpectrum *sp = &spectra[k];
    if (!sp->computed || !sp->finite) continue;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) mean += x[i] / (double)n;
    for (int c = 0; c < 3; c++) {
      unsigned bit = 1u << c;
      if (!(bits & bit)) continue;
      double dd = 0;
      for (int64_t i = 0; i < n; i++) {
        d[i] = bit == NULL_ONES ? 1 : bit == NULL_X ? x[i] : x[i] - mean;
        dd += d[i] * d[i];
      }
      if (dd == 0) continue;
      double *outs[1] = {hd}, hh = 0;
      if (!layer_eval(ctx, x, d, &ctx->eq->hvp, 1, outs, BCAST_ALL)) continue;
      for (int64_t i = 0; i < n; i++) hh += hd[i] * hd[i];
      seen[c]++;
      if (sqrt(hh) > LAYER_TOL_PSD * (double)n * CHECK_EPS * sp->scale * sqrt(dd)) bits &= ~bit;
    }
  }
  free(own);
  for (int c = 0; c < 3; c++)
    if (!seen[c]) bits &= ~(1u << c);
  free(d);
  free(hd);
  int count = (bits & 1) + ((bits >> 1) & 1) + ((bits >> 2) & 1);
  // Any two of 1, x and x - mean(x) span all three (x = (x - mean x) + mean x 1).
  *dim = count > 2 ? 2 : count;
  return bits;
}

void layer_dead_at(const LayerCheckCtx *ctx, const double *x, int structural_dim,
                   const LayerSpectrum *spectrum, DeadAt *out) {
  int64_t n = ctx->n;
  memset(out, 0, sizeof *out);
  const StructJac *j = &ctx->eq->hessian;
  out->additive = !j->dense && j->nterms == 0;
  if (!out->additive && spectrum && !spectrum->computed) return;  // a point left out
  double *hii = xcalloc((size_t)n + 1, sizeof *hii);
  if (j->dense) {
    if (n > DENSE_MAX_N) {
      free(hii);
      return;
    }
    double *h = xcalloc((size_t)(n * n), sizeof *h);
    out->finite = layer_dense_hessian(ctx, x, h);
    for (int64_t i = 0; i < n; i++) hii[i] = h[i * n + i];
    free(h);
  } else {
    StructVals sv;
    out->finite = struct_eval(ctx, x, &sv);
    for (int64_t i = 0; i < n; i++) {
      hii[i] = sv.d[i];
      for (int k = 0; k < sv.nterms; k++) hii[i] += sv.u[k][i] * sv.v[k][i];
    }
    struct_free(&sv);
  }
  if (out->finite) {
    ExprId g = ctx->eq->g;
    double *gx = xcalloc((size_t)n + 1, sizeof *gx);
    out->finite = layer_eval(ctx, x, NULL, &g, 1, &gx, 0);
    for (int64_t i = 0; i < n; i++) out->signal |= gx[i] != 0;
    free(gx);
  }
  if (out->finite) {
    double sat = LAYER_DELTA_SAT * ctx->beta;
    if (out->additive) {
      double hmax = 1, amax = 0;
      for (int64_t i = 0; i < n; i++) hmax = fmax(hmax, hii[i]), amax = fmax(amax, fabs(hii[i]));
      for (int64_t i = 0; i < n; i++) {
        bool dead = hii[i] == 0 || fabs(hii[i]) <= (double)n * CHECK_EPS * hmax;
        out->dead += dead;
        out->saturated += !dead && fabs(hii[i]) < sat;
        out->nullity += fabs(hii[i]) <= (double)n * CHECK_EPS * amax;
      }
    } else {
      LayerSpectrum own;
      if (!spectrum) {
        layer_spectrum(ctx, x, false, &own);
        own.computed = true;
        spectrum = &own;
      }
      out->finite = spectrum->computed && spectrum->finite;
      out->nullity = spectrum->nullity;
      out->dead = out->nullity > structural_dim ? out->nullity - structural_dim : 0;
      for (int64_t i = 0; i < n; i++) out->saturated += fabs(hii[i]) < sat;
    }
  }
  free(hii);
}

void layer_dead_neurons(const LayerCheckCtx *ctx, const SampleSet *samples,
                        const LayerSpectrum *sample_spectra, const SampleSet *states,
                        const LayerSpectrum *state_spectra, DeadResult *out) {
  memset(out, 0, sizeof *out);
  out->structural = layer_structural_nulls(ctx, samples, sample_spectra, &out->structural_dim);
  int64_t n = ctx->n;
  for (int k = 0; k < states->count; k++) {
    DeadAt at;
    layer_dead_at(ctx, states->x + (size_t)k * (size_t)n, out->structural_dim,
                  state_spectra ? &state_spectra[k] : NULL, &at);
    out->additive = at.additive;
    if (!at.finite) {
      out->states_skipped++;
      continue;
    }
    out->states++;
    out->dead_fraction += n ? (double)at.dead / (double)n : 0;
    out->saturated_fraction += n ? (double)at.saturated / (double)n : 0;
    out->mean_nullity += (double)at.nullity;
    if (at.nullity > out->max_nullity) out->max_nullity = at.nullity;
    out->entirely_dead += n > out->structural_dim && at.dead >= n - out->structural_dim && !at.signal;
  }
  if (out->states) {
    out->dead_fraction /= out->states;
    out->saturated_fraction /= out->states;
    out->mean_nullity /= out->states;
  }
}
