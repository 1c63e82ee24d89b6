// The expressions of params and sizes alone, evaluated with the values bound (see
// param_domain.h).
#include "front/param_domain.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "support/common.h"
#include "sym/builtins.h"
#include "sym/expr.h"

// A value: known when the expression depends on params, dims and numbers alone. A known
// value is a scalar (params, dims and numbers are, and so is every function of them).
typedef struct {
  bool known;
  double value;
} Val;

static const Val UNKNOWN = {false, 0};

static Val known(double v) { return (Val){true, v}; }

// The body of a def being walked: its call, the arguments (or defaults) as written in the
// caller's scope `up`, and their values.
typedef struct Env {
  const AstExpr *call;  // NULL at the top of a Lagrangian, tau or energy term
  AstExpr *const *bound;
  const Val *args;
  const struct Env *up;
} Env;

typedef struct {
  const Model *m;
  const double *params;
  const int64_t *dims;
  DiagSink *sink;
  Span *reported;  // the places reported, each once
  size_t nreported, cap;
  int errors;
} Walk;

// ---- The values named in a message ----

// Marks in `used` the params (0 .. nparams-1) and dims (nparams ..) that `e` depends on.
static void mark_leaves(const Model *m, const AstExpr *e, const Env *env, bool *used) {
  switch (e->kind) {
  case AST_NAME:
    if (e->ref == REF_PARAM) used[e->ref_index] = true;
    if (e->ref == REF_DIM) used[m->nparams + e->ref_index] = true;
    if (e->ref == REF_ARG) mark_leaves(m, env->bound[e->ref_index], env->up, used);
    return;
  case AST_NEG:
  case AST_TRANSPOSE: mark_leaves(m, e->lhs, env, used); return;
  case AST_BINARY:
    // The left operands in a loop: a chain is as deep as it is long (ast_spine).
    for (; e->kind == AST_BINARY; e = e->lhs) mark_leaves(m, e->rhs, env, used);
    mark_leaves(m, e, env, used);
    return;
  case AST_CALL:
    if (e->ref == REF_DEF) {  // the body, which reaches the arguments it uses
      Env inner = {e, e->bound_args, NULL, env};
      mark_leaves(m, e->ref_def->value, &inner, used);
      return;
    }
    for (const AstArg *a = e->args; a; a = a->next) mark_leaves(m, a->value, env, used);
    return;
  default: return;
  }
}

static void values_text(const Model *m, const AstExpr *e, const Env *env, const double *params,
                        const int64_t *dims, StrBuf *out) {
  size_t n = (size_t)m->nparams + (size_t)m->ndims;
  bool *used = xcalloc(n + 1, sizeof *used);
  mark_leaves(m, e, env, used);
  const char *sep = " with the params as set (";
  for (size_t i = 0; i < n; i++) {
    if (!used[i]) continue;
    NumText v;
    bool param = i < (size_t)m->nparams;
    size_t d = i - (size_t)m->nparams;
    sb_printf(out, "%s%s = %s", sep, param ? m->params[i].name : m->dims[d].name,
              number_text(param ? params[i] : (double)dims[d], &v));
    sep = ", ";
  }
  if (*sep == ',') sb_putc(out, ')');
  free(used);
}

void param_values_text(const Model *m, const AstExpr *e, const double *params,
                       const int64_t *dims, StrBuf *out) {
  values_text(m, e, NULL, params, dims, out);
}

// ---- Reports ----

// "WHAT: DETAIL with the params as set (c = 0)" at `at`, the values being those `about`
// depends on.
static void report(Walk *w, const Env *env, Span at, const AstExpr *about, const char *what,
                   const char *detail) {
  // A place in the prelude is shown at the call of its def in the model (the outermost,
  // should one prelude def call another), with the calls of user defs that led there.
  const char *prelude = NULL;
  const Env *calls = env;
  for (const Env *f = env; f && f->call; f = f->up)
    if (f->call->ref_def->in_prelude) {
      at = f->call->span;
      prelude = f->call->ref_def->name;
      calls = f->up;
    }
  for (size_t i = 0; i < w->nreported; i++)
    if (w->reported[i].file == at.file && w->reported[i].begin == at.begin &&
        w->reported[i].end == at.end)
      return;
  VEC_PUSH(w->reported, w->nreported, w->cap, at);
  StrBuf values = {0}, in = {0};
  values_text(w->m, about, env, w->params, w->dims, &values);
  if (prelude) sb_printf(&in, " in '%s'", prelude);
  diag_error(w->sink, at, "%s%s: %s%s", what, sb_str(&in), detail, sb_str(&values));
  int shown = 0;
  for (const Env *f = calls; f && f->call && shown < 4; f = f->up, shown++)
    diag_note(w->sink, f->call->span, "in this call of '%s'", f->call->ref_def->name);
  sb_free(&values);
  sb_free(&in);
  w->errors++;
}

// The value `v` of operation `e`, reported when it overflowed.
static Val result(Walk *w, const AstExpr *e, double v, const Env *env) {
  if (isfinite(v)) return known(v);
  NumText t;
  char detail[64];
  snprintf(detail, sizeof detail, "it is %s", number_text(v, &t));
  report(w, env, e->span, e, "overflow", detail);
  return UNKNOWN;
}

// ---- The walk ----

static Val walk(Walk *w, const AstExpr *e, const Env *env);

static Val binary(Walk *w, const AstExpr *e, Val a, Val b, const Env *env) {
  // x / 0 is not finite whatever x is.
  if (e->op == OP_DIV && b.known && b.value == 0) {
    report(w, env, e->rhs->span, e->rhs, "division by zero", "the divisor is 0");
    return UNKNOWN;
  }
  if (!a.known || !b.known || e->op == OP_MATMUL) return UNKNOWN;  // '@' takes no scalars
  if (e->op != OP_POW)
    return result(w, e,
                  e->op == OP_ADD   ? a.value + b.value
                  : e->op == OP_SUB ? a.value - b.value
                  : e->op == OP_MUL ? a.value * b.value
                                    : a.value / b.value,
                  env);
  double v = pow(a.value, b.value);
  if (isfinite(v)) return known(v);
  NumText x, y;
  char detail[96];
  if (a.value == 0) {
    snprintf(detail, sizeof detail, "the base is 0 and the exponent %s", number_text(b.value, &y));
    report(w, env, e->span, e, "zero to a negative power", detail);
  } else if (a.value < 0 && b.value != floor(b.value)) {
    snprintf(detail, sizeof detail, "the base is %s and the exponent %s",
             number_text(a.value, &x), number_text(b.value, &y));
    report(w, env, e->span, e, "a negative number to a fractional power", detail);
  } else {
    return result(w, e, v, env);
  }
  return UNKNOWN;
}

// The functions defined on part of the line (docs/language.md, "Built-in functions").
static const char *outside_domain(int fn) {
  switch (fn) {
  case FN_LOG: return "log of a number that is not positive";
  case FN_SQRT: return "square root of a negative number";
  case FN_LOG1P: return "log1p of a number not above -1";
  default: return NULL;
  }
}

static Val call_builtin(Walk *w, const AstExpr *e, const Env *env) {
  Val a = walk(w, e->args->value, env);
  Val b = e->args->next ? walk(w, e->args->next->value, env) : UNKNOWN;
  switch (builtin_info[e->ref_index].kind) {
  case FNK_ELEM: {
    if (!a.known) return UNKNOWN;
    double v = expr_eval_fn((ElemFn)e->ref_index, a.value);  // ELEM rows: FN_x == EF_x
    const char *what = outside_domain(e->ref_index);
    if (isfinite(v) || !what) return result(w, e, v, env);
    NumText t;
    char detail[64];
    snprintf(detail, sizeof detail, "the argument is %s", number_text(a.value, &t));
    report(w, env, e->span, e, what, detail);
    return UNKNOWN;
  }
  case FNK_DOT: return a.known && b.known ? result(w, e, a.value * b.value, env) : UNKNOWN;
  case FNK_LEN: return a.known ? known(1) : UNKNOWN;
  case FNK_TRANSPOSE: return a;
  case FNK_REDUCE:
    // Of one element: sum, mean and logsumexp are that element, norm its magnitude.
    if (!a.known) return UNKNOWN;
    return known(e->ref_index == FN_NORM ? fabs(a.value) : a.value);
  }
  return UNKNOWN;
}

static Val call_def(Walk *w, const AstExpr *e, const Env *env) {
  const AstDecl *def = e->ref_def;
  Val *args = xmalloc(((size_t)def->nparams + 1) * sizeof *args);
  for (int i = 0; i < def->nparams; i++) args[i] = walk(w, e->bound_args[i], env);
  Env inner = {e, e->bound_args, args, env};
  Val r = walk(w, def->value, &inner);
  free(args);
  return r;
}

static Val walk(Walk *w, const AstExpr *e, const Env *env) {
  switch (e->kind) {
  case AST_NUM: return known(e->num);
  case AST_NAME:
    if (e->ref == REF_PARAM) return known(w->params[e->ref_index]);
    if (e->ref == REF_DIM) return known((double)w->dims[e->ref_index]);
    if (e->ref == REF_ARG) return env->args[e->ref_index];
    return UNKNOWN;  // a state or a weight
  case AST_NEG: {
    Val a = walk(w, e->lhs, env);
    return a.known ? known(-a.value) : UNKNOWN;
  }
  case AST_TRANSPOSE: return walk(w, e->lhs, env);
  case AST_BINARY: {
    size_t n;
    AstExpr **spine = ast_spine(e, &n);
    Val a = walk(w, spine[n - 1]->lhs, env);
    for (size_t i = n; i-- > 0;) a = binary(w, spine[i], a, walk(w, spine[i]->rhs, env), env);
    free(spine);
    return a;
  }
  case AST_CALL: return e->ref == REF_DEF ? call_def(w, e, env) : call_builtin(w, e, env);
  default: return UNKNOWN;  // g(A)
  }
}

int param_domain_check(const Model *m, const double *params, const int64_t *dims,
                       DiagSink *sink) {
  Walk w = {m, params, dims, sink, NULL, 0, 0, 0};
  diag_defer(sink);  // in source order, as the front end's errors
  for (int a = 0; a < m->nlayers; a++) {
    walk(&w, m->layers[a].lagrangian, NULL);
    if (m->layers[a].tau) walk(&w, m->layers[a].tau, NULL);
  }
  for (int i = 0; i < m->nenergies; i++) walk(&w, m->energies[i].expr, NULL);
  diag_flush(sink);
  free(w.reported);
  return w.errors;
}
