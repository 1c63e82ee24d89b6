// The reference interpreter (see eval.h).
#include "sym/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

struct Evaluator {
  const ExprPool *pool;
  const EvalEnv *env;
  double **values;  // per node, NULL until computed
  uint32_t nvalues;
};

Evaluator *eval_new(const ExprPool *pool, const EvalEnv *env) {
  Evaluator *ev = xcalloc(1, sizeof *ev);
  ev->pool = pool;
  ev->env = env;
  ev->nvalues = expr_count(pool);
  ev->values = xcalloc(ev->nvalues, sizeof *ev->values);
  return ev;
}

void eval_free(Evaluator *ev) {
  if (!ev) return;
  for (uint32_t i = 0; i < ev->nvalues; i++) free(ev->values[i]);
  free(ev->values);
  free(ev);
}

int64_t eval_numel(const EvalEnv *env, ExprShape shape) {
  int64_t n = 1;
  for (int i = 0; i < shape.rank; i++) n *= env->dims[shape.dims[i]];
  return n;
}

static const double *leaf_data(const EvalEnv *env, const Expr *e) {
  const double *const *table = e->kind == EX_STATE    ? env->states
                               : e->kind == EX_ACT    ? env->acts
                               : e->kind == EX_INPUT  ? env->inputs
                               : e->kind == EX_WEIGHT ? env->weights
                                                      : env->dirs;
  DAMC_ASSERT(table && table[e->index]);
  return table[e->index];
}

// Element i of a kid, broadcasting a scalar kid.
static inline double at(const double *v, int64_t n, int64_t i) { return n == 1 ? v[0] : v[i]; }

static double *compute(Evaluator *ev, const Expr *e, int64_t n) {
  const EvalEnv *env = ev->env;
  double *out = xcalloc((size_t)(n ? n : 1), sizeof *out);
  int64_t kn[2] = {0, 0};
  const double *k0 = e->nkids > 0 ? eval_node(ev, e->kids[0], &kn[0]) : NULL;
  const double *k1 = e->nkids > 1 ? eval_node(ev, e->kids[1], &kn[1]) : NULL;
  switch (e->kind) {
  case EX_CONST: out[0] = e->value; break;
  case EX_PARAM: out[0] = env->params[e->index]; break;
  case EX_DIM: out[0] = (double)env->dims[e->index]; break;
  case EX_STATE:
  case EX_ACT:
  case EX_INPUT:
  case EX_WEIGHT:
  case EX_DIR: memcpy(out, leaf_data(env, e), (size_t)n * sizeof *out); break;
  case EX_ADD:
  case EX_MUL:
    for (int64_t i = 0; i < n; i++) out[i] = at(k0, kn[0], i);
    for (uint32_t k = 1; k < e->nkids; k++) {
      int64_t m;
      const double *v = eval_node(ev, e->kids[k], &m);
      for (int64_t i = 0; i < n; i++) {
        if (e->kind == EX_ADD) out[i] += at(v, m, i);
        else out[i] *= at(v, m, i);
      }
    }
    break;
  case EX_POW:
    for (int64_t i = 0; i < n; i++) out[i] = pow(at(k0, kn[0], i), at(k1, kn[1], i));
    break;
  case EX_FN:
    for (int64_t i = 0; i < n; i++) out[i] = expr_eval_fn((ElemFn)e->index, k0[i]);
    break;
  case EX_BCAST:
    for (int64_t i = 0; i < n; i++) out[i] = k0[0];
    break;
  case EX_SUM:
    for (int64_t i = 0; i < kn[0]; i++) out[0] += k0[i];
    break;
  case EX_LSE:
  case EX_LSE1: {
    // Shift by the largest logit (0 counts as one for LSE1) so no exp overflows.
    double m = e->kind == EX_LSE1 ? 0 : -INFINITY;
    for (int64_t i = 0; i < kn[0]; i++) m = fmax(m, k0[i]);
    if (isinf(m)) {
      out[0] = m;
      break;
    }
    double s = e->kind == EX_LSE1 ? exp(-m) : 0;
    for (int64_t i = 0; i < kn[0]; i++) s += exp(k0[i] - m);
    out[0] = m + log(s);
    break;
  }
  case EX_MATMUL: {
    const ExprShape sa = expr_get(ev->pool, e->kids[0])->shape;
    const ExprShape sb = expr_get(ev->pool, e->kids[1])->shape;
    int64_t rows = env->dims[sa.dims[0]], inner = env->dims[sa.dims[1]];
    int64_t cols = sb.rank == 2 ? env->dims[sb.dims[1]] : 1;
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        double s = 0;
        for (int64_t k = 0; k < inner; k++) s += k0[i * inner + k] * k1[k * cols + j];
        out[i * cols + j] = s;
      }
    break;
  }
  case EX_TRANSPOSE: {
    int64_t rows = env->dims[e->shape.dims[0]], cols = env->dims[e->shape.dims[1]];
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) out[i * cols + j] = k0[j * rows + i];
    break;
  }
  case EX_OUTER:
    for (int64_t i = 0; i < kn[0]; i++)
      for (int64_t j = 0; j < kn[1]; j++) out[i * kn[1] + j] = k0[i] * k1[j];
    break;
  default: damc_unreachable();
  }
  return out;
}

const double *eval_node(Evaluator *ev, ExprId id, int64_t *numel) {
  const Expr *e = expr_get(ev->pool, id);
  int64_t n = eval_numel(ev->env, e->shape);
  if (numel) *numel = n;
  DAMC_ASSERT(id < ev->nvalues);
  if (!ev->values[id]) ev->values[id] = compute(ev, e, n);
  return ev->values[id];
}

double eval_scalar(Evaluator *ev, ExprId e) {
  int64_t n;
  const double *v = eval_node(ev, e, &n);
  DAMC_ASSERT(n == 1);
  return v[0];
}
