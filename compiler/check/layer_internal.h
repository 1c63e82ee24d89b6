// What the files of the per-layer checks share (layer_checks.h is the interface): the
// evaluation of a layer's expressions at a state, a deterministic random stream, walks over
// an expression's nodes.
#ifndef DAMC_CHECK_LAYER_INTERNAL_H
#define DAMC_CHECK_LAYER_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "check/layer_checks.h"
#include "support/rng.h"
#include "sym/eval.h"


// The largest layer whose H is made dense (for dsyevd, or from Hessian-vector products).
enum { DENSE_MAX_N = 2048 };

// A stream for (seed, layer, purpose), independent of the others.
Rng rng_for(uint64_t seed, int layer, int purpose);

// Evaluates `count` nodes of the layer's equations with its state at x and its direction at
// `dir` (NULL: none), copying each value into outs[k] (`numel` values; a scalar node gives 1
// value, or n when bit k of `bcast` is set). Returns false when a value is not finite.
bool layer_eval(const LayerCheckCtx *ctx, const double *x, const double *dir, const ExprId *nodes,
                int count, double *const *outs, uint64_t bcast);
#define BCAST_ALL (~0ull)

// The value of an expression that depends on no state (constants, params, dims, weights).
double layer_eval_const(const LayerCheckCtx *ctx, ExprId e);

// Calls `visit` once on each node reachable from the roots.
typedef void (*NodeVisit)(void *cl, const ExprPool *pool, ExprId id, const Expr *e);
void walk_nodes(const ExprPool *pool, const ExprId *roots, int nroots, NodeVisit visit, void *cl);

// True when `e` depends on the state of `layer`.
static inline bool depends_on_layer(const Expr *e, int layer) {
  return (e->states >> (layer < 63 ? layer : 63)) & 1;
}

// The roots of the layer's L, g and H (its diagonal and rank-one terms, or the HVP when it
// is dense); returns their number (at most 2 + 1 + 2 JAC_MAX_TERMS).
int layer_roots(const LayerCheckCtx *ctx, ExprId *roots);

// The step of §4.1.1 at x_i, exactly representable: (x + h) - x.
static inline double fd_step(double x, double beta, double scale) {
  double h = scale * CHECK_CBRT_EPS * (1 > fabs(x) ? 1 : fabs(x)) / (beta > 1 ? beta : 1);
  return (x + h) - x;
}

// The values of H's structure at a state: H = diag(d) + sum_k u_k v_k'.
typedef struct {
  int64_t n;
  int nterms;
  bool diag_const;  // d is one value for every unit (a scalar diagonal, or none)
  double *d;
  double *u[JAC_MAX_TERMS], *v[JAC_MAX_TERMS];
} StructVals;

// Evaluates the structure at x (not for a dense H). Returns false when a value is not finite.
bool struct_eval(const LayerCheckCtx *ctx, const double *x, StructVals *sv);
void struct_free(StructVals *sv);

// layer_dense_hessian, and the largest entry of the terms H is assembled from,
// |diag(d)| + sum_k |u_k||v_k|' (0 for an H without structure), into *term_max (or NULL):
// the scale of its rounding.
bool dense_hessian_terms(const LayerCheckCtx *ctx, const double *x, double *h, double *term_max);

#endif
