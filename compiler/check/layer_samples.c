// What the per-layer checks read off a Lagrangian (its sharpness, kinks, singular points)
// and the sample points of docs/theory.md §4.2.4 (see layer_checks.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check/layer_internal.h"
#include "support/common.h"

// ---- Shared helpers ----

Rng rng_for(uint64_t seed, int layer, int purpose) {
  Rng r = {seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(layer + 1))};
  r.s ^= 0x8cb92ba72f3d8dd7ull * (uint64_t)(purpose + 1);
  rng_next(&r);
  return r;
}

bool layer_eval(const LayerCheckCtx *ctx, const double *x, const double *dir, const ExprId *nodes,
                int count, double *const *outs, uint64_t bcast) {
  int nl = ctx->net->nlayers;
  const double **states = xcalloc((size_t)nl + 1, sizeof *states);
  const double **dirs = xcalloc((size_t)nl + 1, sizeof *dirs);
  states[ctx->layer] = x;
  dirs[ctx->layer] = dir;
  EvalEnv env = {ctx->dims, ctx->params, states, NULL, NULL, ctx->weights, dirs};
  Evaluator *ev = eval_new(ctx->net->pool, &env);
  bool finite = true;
  for (int k = 0; k < count; k++) {
    int64_t m;
    const double *v = eval_node(ev, nodes[k], &m);
    if (m == 1 && ((bcast >> (k < 63 ? k : 63)) & 1)) {
      for (int64_t i = 0; i < ctx->n; i++) outs[k][i] = v[0];
    } else {
      memcpy(outs[k], v, (size_t)m * sizeof *v);
    }
    for (int64_t i = 0; i < m; i++) finite &= isfinite(v[i]) != 0;
  }
  eval_free(ev);
  free(states);
  free(dirs);
  return finite;
}

double layer_eval_const(const LayerCheckCtx *ctx, ExprId e) {
  double v = NAN;
  double *outs[1] = {&v};
  if (expr_get(ctx->net->pool, e)->shape.rank == 0) layer_eval(ctx, NULL, NULL, &e, 1, outs, 0);
  return v;
}

void walk_nodes(const ExprPool *pool, const ExprId *roots, int nroots, NodeVisit visit, void *cl) {
  uint32_t count = expr_count(pool);
  uint8_t *seen = xcalloc(count + 1, 1);
  ExprId *stack = NULL;
  size_t depth = 0, cap = 0;
  for (int r = 0; r < nroots; r++)
    if (roots[r]) VEC_PUSH(stack, depth, cap, roots[r]);
  while (depth) {
    ExprId id = stack[--depth];
    if (seen[id]) continue;
    seen[id] = 1;
    const Expr *e = expr_get(pool, id);
    visit(cl, pool, id, e);
    for (uint32_t k = 0; k < e->nkids; k++)
      if (!seen[e->kids[k]]) VEC_PUSH(stack, depth, cap, e->kids[k]);
  }
  free(stack);
  free(seen);
}

int layer_roots(const LayerCheckCtx *ctx, ExprId *roots) {
  const LayerEq *l = ctx->eq;
  int n = 0;
  roots[n++] = l->L;
  roots[n++] = l->g;
  if (l->hessian.dense) {
    roots[n++] = l->hvp;
  } else {
    if (l->hessian.diag) roots[n++] = l->hessian.diag;
    for (int k = 0; k < l->hessian.nterms; k++) {
      roots[n++] = l->hessian.u[k];
      roots[n++] = l->hessian.v[k];
    }
  }
  return n;
}

// ---- Sharpness ----

typedef struct {
  const LayerCheckCtx *ctx;
  double beta;
} SharpWalk;

// The scale |a| of an argument a x + (terms of unknown scale or constant), or NaN.
static double lin_scale(const LayerCheckCtx *ctx, ExprId id) {
  const ExprPool *pool = ctx->net->pool;
  const Expr *e = expr_get(pool, id);
  if (!depends_on_layer(e, ctx->layer)) return NAN;
  switch (e->kind) {
  case EX_STATE: return e->index == ctx->layer ? 1 : NAN;
  case EX_BCAST: return lin_scale(ctx, e->kids[0]);
  case EX_FN:
    return e->index == EF_RELU || e->index == EF_ABS ? lin_scale(ctx, e->kids[0]) : NAN;
  case EX_ADD: {
    double best = NAN;
    for (uint32_t k = 0; k < e->nkids; k++) {
      double s = lin_scale(ctx, e->kids[k]);
      if (!isnan(s) && !(s <= best)) best = s;
    }
    return best;
  }
  case EX_MUL: {
    double scale = 1;
    ExprId var = 0;
    for (uint32_t k = 0; k < e->nkids; k++) {
      const Expr *kid = expr_get(pool, e->kids[k]);
      if (depends_on_layer(kid, ctx->layer)) {
        if (var) return NAN;
        var = e->kids[k];
      } else {
        if (kid->shape.rank != 0 || kid->states || kid->acts) return NAN;
        scale *= fabs(layer_eval_const(ctx, e->kids[k]));
      }
    }
    return var ? scale * lin_scale(ctx, var) : NAN;
  }
  default: return NAN;
  }
}

static void sharp_visit(void *cl, const ExprPool *pool, ExprId id, const Expr *e) {
  (void)pool;
  (void)id;
  SharpWalk *w = cl;
  bool sharp = e->kind == EX_LSE || e->kind == EX_LSE1;
  if (e->kind == EX_FN)
    switch (e->index) {
    case EF_EXP: case EF_EXPM1: case EF_TANH: case EF_LOGCOSH: case EF_SIGMOID:
    case EF_SOFTPLUS: case EF_SECH2: case EF_COSH: case EF_SINH: sharp = true; break;
    default: break;
    }
  if (!sharp) return;
  double s = lin_scale(w->ctx, e->kids[0]);
  if (isfinite(s) && s > 0 && (w->beta < 0 || s > w->beta)) w->beta = s;
}

double layer_sharpness(const Network *net, ExprId L, int layer, const int64_t *dims,
                       const double *params) {
  LayerCheckCtx ctx = {.net = net, .layer = layer, .eq = &net->layers[layer], .dims = dims,
                       .params = params};
  SharpWalk w = {&ctx, -1};
  walk_nodes(net->pool, &L, 1, sharp_visit, &w);
  return w.beta > 0 ? w.beta : 1;
}

// ---- Kinks and singular points ----

static void add_unique(ExprId *list, int *count, int cap, ExprId id) {
  for (int i = 0; i < *count; i++)
    if (list[i] == id) return;
  if (*count < cap) list[(*count)++] = id;
}

static void kink_visit(void *cl, const ExprPool *pool, ExprId id, const Expr *e) {
  (void)id;
  LayerCheckCtx *ctx = cl;
  if (e->kind == EX_LSE || e->kind == EX_LSE1) ctx->has_lse = true;
  if (e->kind == EX_FN && (e->index == EF_RELU || e->index == EF_ABS || e->index == EF_STEP ||
                           e->index == EF_SIGN)) {
    if (depends_on_layer(expr_get(pool, e->kids[0]), ctx->layer))
      add_unique(ctx->kinks, &ctx->nkinks, LAYER_CHECK_MAX_KINKS, e->kids[0]);
  }
  ExprId base = 0;
  if (e->kind == EX_FN && e->index == EF_SQRT) base = e->kids[0];
  if (e->kind == EX_POW) {
    const Expr *p = expr_get(pool, e->kids[1]);
    if (p->kind == EX_CONST && (p->value < 0 || p->value != floor(p->value))) base = e->kids[0];
  }
  if (base) {
    const Expr *b = expr_get(pool, base);
    if (b->shape.rank == 0 && depends_on_layer(b, ctx->layer))
      add_unique(ctx->singular, &ctx->nsingular, LAYER_CHECK_MAX_SINGULAR, base);
  }
}

// The breakpoint of a kink argument a x_i + b with one a != 0 and one b for every unit.
static bool kink_break(const LayerCheckCtx *ctx, ExprId arg, double *at) {
  if (expr_get(ctx->net->pool, arg)->shape.rank != 1) return false;
  int64_t n = ctx->n;
  double *x = xcalloc((size_t)n, sizeof *x), *v0 = xcalloc((size_t)n, sizeof *v0),
         *v1 = xcalloc((size_t)n, sizeof *v1), *vr = xcalloc((size_t)n, sizeof *vr);
  bool ok = layer_eval(ctx, x, NULL, &arg, 1, &v0, BCAST_ALL);
  for (int64_t i = 0; i < n; i++) x[i] = 1;
  ok = ok && layer_eval(ctx, x, NULL, &arg, 1, &v1, BCAST_ALL);
  Rng r = rng_for(0x6b696e6bull, ctx->layer, 0);
  for (int64_t i = 0; i < n; i++) x[i] = 3 * rng_normal(&r);
  ok = ok && layer_eval(ctx, x, NULL, &arg, 1, &vr, BCAST_ALL);
  double a = v1[0] - v0[0], b = v0[0];
  ok = ok && a != 0;
  for (int64_t i = 0; ok && i < n; i++) {
    double mag = fabs(a * x[i]) + fabs(b);
    ok = fabs(v1[i] - v0[i] - a) <= 1e-12 * fabs(a) && fabs(v0[i] - b) <= 1e-12 * fabs(b) &&
         fabs(vr[i] - (a * x[i] + b)) <= 1e-10 * mag;
  }
  if (ok) *at = -b / a;
  free(x);
  free(v0);
  free(v1);
  free(vr);
  return ok;
}

void layer_ctx_init_eq(LayerCheckCtx *ctx, const Network *net, int layer, const LayerEq *eq,
                       const int64_t *dims, const double *params, const double *const *weights) {
  memset(ctx, 0, sizeof *ctx);
  ctx->net = net;
  ctx->layer = layer;
  ctx->eq = eq;
  ctx->dims = dims;
  ctx->params = params;
  ctx->weights = weights;
  ctx->n = dims[net->layers[layer].dim];
  SharpWalk w = {ctx, -1};
  walk_nodes(net->pool, &eq->L, 1, sharp_visit, &w);
  ctx->beta = w.beta > 0 ? w.beta : 1;
  ExprId roots[2 + 1 + 2 * JAC_MAX_TERMS];
  int nroots = layer_roots(ctx, roots);
  walk_nodes(net->pool, roots, nroots, kink_visit, ctx);
  // The has_lse flag is about L alone.
  ctx->has_lse = false;
  LayerCheckCtx probe = *ctx;
  probe.nkinks = probe.nsingular = 0;
  walk_nodes(net->pool, &eq->L, 1, kink_visit, &probe);
  ctx->has_lse = probe.has_lse;
  for (int k = 0; k < ctx->nkinks && ctx->nbreaks < LAYER_CHECK_MAX_BREAKS; k++) {
    double at;
    if (!kink_break(ctx, ctx->kinks[k], &at)) continue;
    bool seen = false;
    for (int j = 0; j < ctx->nbreaks; j++) seen |= fabs(ctx->breaks[j] - at) <= 1e-12 * (1 + fabs(at));
    if (!seen) ctx->breaks[ctx->nbreaks++] = at;
  }
}

void layer_ctx_init(LayerCheckCtx *ctx, const Network *net, int layer, const int64_t *dims,
                    const double *params) {
  layer_ctx_init_eq(ctx, net, layer, &net->layers[layer], dims, params, NULL);
}

// ---- Sample points ----

void sample_set_add(SampleSet *s, const double *x, const char *label) {
  if (s->count == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 128;
    s->x = xrealloc(s->x, (size_t)s->cap * (size_t)s->n * sizeof *s->x);
    s->label = xrealloc(s->label, (size_t)s->cap * sizeof *s->label);
  }
  memcpy(s->x + (size_t)s->count * (size_t)s->n, x, (size_t)s->n * sizeof *x);
  snprintf(s->label[s->count], sizeof s->label[0], "%s", label);
  s->count++;
}

void sample_set_free(SampleSet *s) {
  free(s->x);
  free(s->label);
  *s = (SampleSet){0};
}

// L, g and H are finite at x.
static bool defined_at(const LayerCheckCtx *ctx, const double *x) {
  ExprId roots[2 + 1 + 2 * JAC_MAX_TERMS];
  int nroots = layer_roots(ctx, roots);
  int64_t n = ctx->n;
  double *buf = xcalloc((size_t)(nroots * n + 1), sizeof *buf), *ones = xcalloc((size_t)n, sizeof *ones);
  double *outs[2 + 1 + 2 * JAC_MAX_TERMS];
  for (int k = 0; k < nroots; k++) outs[k] = buf + k * n;
  for (int64_t i = 0; i < n; i++) ones[i] = 1;
  bool ok = layer_eval(ctx, x, ones, roots, nroots, outs, BCAST_ALL);
  free(buf);
  free(ones);
  return ok;
}

void layer_samples(const LayerCheckCtx *ctx, uint64_t seed, int per_scale, SampleSet *out) {
  int64_t n = ctx->n;
  *out = (SampleSet){.n = n};
  if (per_scale <= 0) per_scale = LAYER_CHECK_SAMPLES;
  double beta = ctx->beta, *x = xcalloc((size_t)n + 1, sizeof *x);
  char label[48];
  Rng r = rng_for(seed, ctx->layer, 1);
  static const double scales[3] = {0.1, 1, 10};
  for (int s = 0; s < 3; s++)
    for (int p = 0; p < per_scale; p++) {
      for (int64_t i = 0; i < n; i++) x[i] = scales[s] / beta * rng_normal(&r);
      snprintf(label, sizeof label, "N(0, (%g/beta)^2) #%d", scales[s], p);
      sample_set_add(out, x, label);
    }
  memset(x, 0, (size_t)n * sizeof *x);
  if (defined_at(ctx, x)) sample_set_add(out, x, "origin");
  for (int k = 0; k < ctx->nbreaks; k++) {
    double at = ctx->breaks[k], h = fd_step(at, beta, 1);
    for (int side = 0; side < 3; side++) {
      for (int64_t i = 0; i < n; i++)
        x[i] = at + (side == 0 ? 2 * h : side == 1 ? -2 * h : (i % 2 ? -2 * h : 2 * h));
      snprintf(label, sizeof label, "kink %g %s", at, side == 0 ? "+2h" : side == 1 ? "-2h" : "+-2h");
      sample_set_add(out, x, label);
    }
  }
  for (int side = 0; side < 3; side++) {
    for (int64_t i = 0; i < n; i++)
      x[i] = (side == 0 ? 30 : side == 1 ? -30 : (i % 2 ? -30 : 30)) / beta;
    sample_set_add(out, x, side == 0 ? "beta x = +30" : side == 1 ? "beta x = -30" : "beta x = +-30");
  }
  if (ctx->has_lse && n > 0) {
    memset(x, 0, (size_t)n * sizeof *x);
    x[0] = 20 / beta;
    sample_set_add(out, x, "one-hot logit +20/beta");
  }
  free(x);
}
