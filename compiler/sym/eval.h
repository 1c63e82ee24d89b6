// The reference interpreter: any DAG node evaluated on concrete arrays in float64.
//
// It is deliberately plain (naive loops, one value per node, memoised for one binding of
// the leaves), because its job is to be obviously right: the JIT kernels and the derived
// formulas are tested against it. Reductions use the stable forms of docs/theory.md §3.3.
#ifndef DAMC_EVAL_H
#define DAMC_EVAL_H

#include <stdint.h>

#include "sym/expr.h"

// Values of the leaves. Arrays are row-major float64; an entry may be NULL when no
// expression evaluated uses that leaf.
typedef struct {
  const int64_t *dims;    // size of each dim
  const double *params;   // value of each param
  const double *const *states;   // x of each layer
  const double *const *acts;     // g of each layer (for EX_ACT leaves)
  const double *const *inputs;   // I of each layer
  const double *const *weights;  // each weight
  const double *const *dirs;     // direction vectors
} EvalEnv;

typedef struct Evaluator Evaluator;

Evaluator *eval_new(const ExprPool *pool, const EvalEnv *env);
void eval_free(Evaluator *ev);
// The value of `e` (its number of elements in *numel); valid until eval_free.
const double *eval_node(Evaluator *ev, ExprId e, int64_t *numel);
// The value of a scalar node.
double eval_scalar(Evaluator *ev, ExprId e);
// The number of elements of a shape under the env's dims.
int64_t eval_numel(const EvalEnv *env, ExprShape shape);

#endif
