// The per-layer checks as items of the report, and their entry points (see layer_checks.h).
#include "check/layer_checks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/layer_internal.h"
#include "front/ast.h"
#include "support/common.h"

// The place of the layer's Lagrangian, or NULL.
static const Span *lagrangian_span(const LayerCheckCtx *ctx) {
  const Model *m = ctx->net->model;
  if (!m || ctx->layer >= m->nlayers || !m->layers[ctx->layer].lagrangian) return NULL;
  return &m->layers[ctx->layer].lagrangian->span;
}

static void subject(const LayerCheckCtx *ctx, char *buf, size_t n) {
  snprintf(buf, n, "layer %s", ctx->eq->name ? ctx->eq->name : ctx->net->layers[ctx->layer].name);
}

// "(0.12, -1.3, 0.5, 2.1, ...; |x| = 3.2)"
static void describe_x(const double *x, int64_t n, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "(");
  double norm = 0;
  for (int64_t i = 0; i < n; i++) norm += x[i] * x[i];
  for (int64_t i = 0; i < n && i < 4 && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%.4g", i ? ", " : "", x[i]);
  if (used < size)
    snprintf(buf + used, size - used, "%s; |x| = %.4g)", n > 4 ? ", ..." : "", sqrt(norm));
}

static void number_x(CheckItem *it, const char *prefix, const double *x, int64_t n) {
  char name[48];
  double norm = 0;
  for (int64_t i = 0; i < n; i++) norm += x[i] * x[i];
  snprintf(name, sizeof name, "%s |x|", prefix);
  report_number(it, name, sqrt(norm));
  for (int64_t i = 0; i < n && i < 4; i++) {
    snprintf(name, sizeof name, "%s x[%d]", prefix, (int)i);
    report_number(it, name, x[i]);
  }
}

void report_layer_derivatives(CheckReport *r, const LayerCheckCtx *ctx, const SampleSet *pts,
                              const DerivResult *res) {
  char subj[96], xs[160] = "";
  subject(ctx, subj, sizeof subj);
  const char *form = res->directional ? "along one random direction per point, against the "
                                        "derived Hessian-vector product"
                                      : "coordinate by coordinate, and along one random "
                                        "direction against the Hessian-vector product";
  CheckItem *it;
  if (res->verdict == VERDICT_SKIPPED) {
    it = report_add(r, "derivatives", subj, lagrangian_span(ctx), VERDICT_SKIPPED,
                    "no sample point could be checked: L, g or H is not finite, or every "
                    "difference crosses a kink, at all %d points", pts->count);
  } else if (res->verdict == VERDICT_PASS) {
    it = report_add(r, "derivatives", subj, lagrangian_span(ctx), VERDICT_PASS,
                    "g agrees with L, and H with g, by central differences (%s) at %d points "
                    "(docs/theory.md §4.1)", form, res->points_checked);
  } else {
    const double *x = pts->x + (size_t)res->worst_point * (size_t)ctx->n;
    describe_x(x, ctx->n, xs, sizeof xs);
    const char *what = !strcmp(res->worst_what, "e_g")   ? "g disagrees with the differences of L"
                       : !strcmp(res->worst_what, "e_H") ? "H disagrees with the differences of g"
                                                         : "H is not symmetric";
    char coord[48] = "";
    if (res->worst_coord >= 0) snprintf(coord, sizeof coord, " in coordinate %d", res->worst_coord);
    it = report_add(r, "derivatives", subj, lagrangian_span(ctx), VERDICT_FAIL,
                    "%s%s at x = %s (sample '%s'), %.3g times the tolerance, also after the "
                    "Richardson retry: the derived derivative or its stable form is wrong "
                    "(docs/theory.md §4.1)",
                    what, coord, xs, pts->label[res->worst_point], res->worst_ratio);
  }
  report_number(it, "max e_g", res->max_eg);
  report_number(it, "tolerance e_g", LAYER_TOL_EG);
  report_number(it, "max e_H", res->max_eh);
  report_number(it, "tolerance e_H", LAYER_TOL_EH);
  report_number(it, "symmetry |H-H'|max/(eps |terms|max)", res->max_sym);
  report_number(it, "tolerance symmetry", LAYER_TOL_SYM);
  report_number(it, "points checked", res->points_checked);
  report_number(it, "points skipped", res->points_skipped);
  report_number(it, res->directional ? "directions skipped at kinks" : "coordinates skipped at kinks",
                res->coords_skipped);
  report_number(it, "Richardson retries", res->retries);
  report_number(it, "Richardson retries passed", res->retries_passed);
  report_number(it, "failures near kinks skipped", res->near_kink);
  report_number(it, "beta_L", ctx->beta);
  report_number(it, "directional", res->directional);
  if (res->verdict == VERDICT_FAIL) {
    report_number(it, "worst point", res->worst_point);
    report_number(it, "worst coordinate", res->worst_coord);
    report_number(it, "worst error / tolerance", res->worst_ratio);
    number_x(it, "worst", pts->x + (size_t)res->worst_point * (size_t)ctx->n, ctx->n);
  }
}

void report_layer_convexity(CheckReport *r, const LayerCheckCtx *ctx, const SampleSet *pts,
                            const ConvexResult *res, const char *points_name) {
  char subj[96], xs[160] = "";
  subject(ctx, subj, sizeof subj);
  CheckItem *it;
  if (res->verdict == VERDICT_SKIPPED) {
    it = report_add(r, "convexity", subj, lagrangian_span(ctx), VERDICT_SKIPPED,
                    "H is not finite at any of the %d %s%s", pts->count, points_name,
                    ctx->n > DENSE_MAX_N && ctx->eq->hessian.dense
                        ? ", or the layer is too large for a dense eigenvalue problem"
                        : "");
  } else if (res->verdict == VERDICT_PASS) {
    it = report_add(r, "convexity", subj, lagrangian_span(ctx), VERDICT_PASS,
                    "H is positive semidefinite at %d of the %d %s (eigenvalues: %s; "
                    "docs/theory.md §4.2)",
                    res->points_checked, pts->count, points_name, spectrum_method_name(res->method));
  } else {
    const double *x = pts->x + (size_t)res->worst_point * (size_t)ctx->n;
    describe_x(x, ctx->n, xs, sizeof xs);
    it = report_add(r, "convexity", subj, lagrangian_span(ctx), VERDICT_FAIL,
                    "L is not convex: at x = %s (sample '%s') H has the eigenvalue %.6g, below "
                    "-10 n eps |H|_F = %.3g; the energy need not decrease (docs/theory.md §1.3, "
                    "§4.2)",
                    xs, pts->label[res->worst_point], res->worst_lambda, -res->worst_tol);
  }
  report_number(it, "lambda_min", res->worst_lambda);
  report_number(it, "tolerance", -res->worst_tol);
  report_number(it, "min lambda_min/scale", res->min_rel);
  report_number(it, "tolerance/scale", -res->tol_rel);
  report_number(it, "points", res->points_checked);
  report_number(it, "points skipped", res->points_skipped);
  if (res->max_closed_gap >= 0) report_number(it, "closed-form gap/scale", res->max_closed_gap);
  if (res->verdict == VERDICT_FAIL) {
    report_number(it, "counterexample point", res->worst_point);
    report_number(it, "counterexample lambda", res->worst_lambda);
    number_x(it, "counterexample", pts->x + (size_t)res->worst_point * (size_t)ctx->n, ctx->n);
  }
}

void report_layer_dead(CheckReport *r, const LayerCheckCtx *ctx, const DeadResult *res,
                       const char *states_name) {
  char subj[96], structural[64];
  subject(ctx, subj, sizeof subj);
  structural_nulls_name(res->structural, structural, sizeof structural);
  // A binary layer (g = sign(x)) has H = 0 by design: its units are switches, not dead.
  bool all_dead = res->states && res->entirely_dead == res->states && !ctx->eq->binary;
  CheckItem *it;
  if (!res->states) {
    it = report_add(r, "dead-neurons", subj, lagrangian_span(ctx), VERDICT_SKIPPED,
                    "H is not finite at any of the %d %s", res->states_skipped, states_name);
    report_number(it, "states skipped", res->states_skipped);
    return;
  }
  it = report_add(
      r, "dead-neurons", subj, lagrangian_span(ctx),
      all_dead ? VERDICT_WARN : VERDICT_PASS,
      "at %d %s: %.1f%% of the units dead and %.1f%% saturated on average (%s layer), nullity of "
      "H %.2f on average and %lld at most; structural null directions: %s (not counted as dead)%s",
      res->states, states_name, 100 * res->dead_fraction, 100 * res->saturated_fraction,
      res->additive ? "additive" : "vector", res->mean_nullity, (long long)res->max_nullity,
      structural,
      all_dead ? "; the layer is entirely dead at every state, in effect disconnected: "
                 "consider leaky relu, ghostmax, eps > 0 in norms or + (lambda/2)|x|^2 "
                 "(docs/theory.md §4.5)"
               : "");
  report_number(it, "dead fraction", res->dead_fraction);
  report_number(it, "saturated fraction", res->saturated_fraction);
  report_number(it, "mean nullity", res->mean_nullity);
  report_number(it, "max nullity", (double)res->max_nullity);
  report_number(it, "structural nullity", res->structural_dim);
  report_number(it, "states", res->states);
  report_number(it, "states skipped", res->states_skipped);
  report_number(it, "entirely dead states", res->entirely_dead);
}

void check_layers(const Network *net, const int64_t *dims, const double *params, uint64_t seed,
                  CheckReport *report) {
  for (int a = 0; a < net->nlayers; a++) {
    LayerCheckCtx ctx;
    layer_ctx_init(&ctx, net, a, dims, params);
    SampleSet pts;
    layer_samples(&ctx, seed, 0, &pts);  // 0: the default count per scale
    DerivResult dr;
    layer_check_derivatives(&ctx, &pts, seed, &dr);
    report_layer_derivatives(report, &ctx, &pts, &dr);
    LayerSpectrum *spectra = layer_spectra(&ctx, &pts);
    ConvexResult cr;
    layer_check_convexity(&ctx, &pts, spectra, &cr);
    report_layer_convexity(report, &ctx, &pts, &cr, "sample points");
    DeadResult de;
    layer_dead_neurons(&ctx, &pts, spectra, &pts, spectra, &de);
    report_layer_dead(report, &ctx, &de, "sample points");
    free(spectra);
    sample_set_free(&pts);
  }
}

CheckItem *check_layer_at_states(const Network *net, int layer, const int64_t *dims,
                         const double *params, const double *states, int nstates,
                         const char *states_name, uint64_t seed, CheckReport *report) {
  LayerCheckCtx ctx;
  layer_ctx_init(&ctx, net, layer, dims, params);
  SampleSet pts, given = {.n = ctx.n};
  layer_samples(&ctx, seed, 0, &pts);
  for (int k = 0; k < nstates; k++) {
    char label[48];
    snprintf(label, sizeof label, "%s #%d", states_name, k);
    sample_set_add(&given, states + (size_t)k * (size_t)ctx.n, label);
  }
  LayerSpectrum *spectra = layer_spectra(&ctx, &given);
  ConvexResult cr;
  layer_check_convexity(&ctx, &given, spectra, &cr);
  report_layer_convexity(report, &ctx, &given, &cr, states_name);
  DeadResult de;
  layer_dead_neurons(&ctx, &pts, NULL, &given, spectra, &de);
  report_layer_dead(report, &ctx, &de, states_name);
  free(spectra);
  sample_set_free(&pts);
  sample_set_free(&given);
  return &report->items[report->count - 1];
}
