// Semantic analysis (see sema.h).
//
// The checker works in passes over the declarations: (1) register every name, (2) give
// dims and params their values, (3) resolve layer sizes, weight shapes, synapses and
// inputs, (4) resolve the names of def bodies and find recursion, (5) check every
// Lagrangian, tau and energy expression with shapes, instantiating defs per call, and
// (6) report dims that can never be bound and things declared but never used.
// An expression whose check failed gets the error shape, which every later check accepts
// silently: one mistake gives one message.
#include "front/sema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front/convexity.h"
#include "support/common.h"
#include "support/strbuf.h"
#include "support/suggest.h"
#include "sym/builtins.h"

typedef enum { SYM_DIM, SYM_PARAM, SYM_DEF, SYM_LAYER, SYM_WEIGHT } SymKind;

static const char *const sym_kind_name[] = {"dim", "param", "def", "layer", "weight"};

typedef struct {
  const char *name;  // interned; NULL marks an empty slot
  SymKind kind;
  int index;
  AstDecl *decl;
} Symbol;

enum { SHAPE_ERROR = -1 };
typedef struct {
  int rank;  // 0 scalar, 1 vector, 2 matrix, SHAPE_ERROR after a reported error
  int d[2];  // dim indices
} Shape;

static const Shape SCALAR = {0, {0, 0}};
static const Shape ERROR_SHAPE = {SHAPE_ERROR, {0, 0}};

typedef enum {
  CTX_DIM_SIZE,    // a dim's value: numbers and earlier dims
  CTX_PARAM_DEFAULT,  // a param's default: numbers and dims
  CTX_DEFAULT,     // a def parameter's default: numbers, params, dims
  CTX_DEF,         // resolving a def body's names (no shapes yet)
  CTX_LAGRANGIAN,  // layer `layer`'s L
  CTX_TAU,         // layer `layer`'s tau
  CTX_ENERGY,      // an energy term
} CtxKind;

// One def being instantiated: its argument shapes and the call that instantiated it.
typedef struct Frame {
  AstDecl *def;
  Shape *args;
  Span call;
  const struct Frame *up;
} Frame;

typedef struct {
  CtxKind kind;
  int layer;
  AstDecl *def;        // CTX_DEF: the def whose body is resolved
  const Frame *frame;  // innermost instantiation
} Ctx;

typedef struct {
  Session *s;
  DiagSink *d;
  Model *m;
  Symbol *table;  // open addressing, keyed by the interned name pointer
  size_t table_cap;
  bool *param_used, *weight_used, *layer_used;
} Checker;

// ---- Symbol table ----

static size_t slot_of(const Checker *c, const char *name) {
  size_t h = (size_t)(uintptr_t)name;
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return (h >> 7) & (c->table_cap - 1);
}

static Symbol *lookup(const Checker *c, const char *name) {
  for (size_t i = slot_of(c, name);; i = (i + 1) & (c->table_cap - 1)) {
    if (!c->table[i].name) return NULL;
    if (c->table[i].name == name) return &c->table[i];
  }
}

// Suggests the nearest known name: of the kinds in `mask` (bit per SymKind), builtins
// when `functions`, and the arguments of the def being resolved.
static const char *suggest(const Checker *c, const char *name, unsigned mask, bool functions,
                           const AstDecl *def) {
  Suggestion s = suggest_begin(name);
  for (size_t i = 0; i < c->table_cap; i++) {
    const Symbol *sym = &c->table[i];
    if (sym->name && (mask >> sym->kind & 1)) suggest_consider(&s, sym->name);
  }
  if (functions)
    for (int i = 0; i < FN_COUNT; i++) suggest_consider(&s, builtin_info[i].name);
  if (def)
    for (const AstParam *a = def->params; a; a = a->next) suggest_consider(&s, a->name);
  return s.best;
}

#define MASK(k) (1u << (k))
#define VALUE_KINDS (MASK(SYM_DIM) | MASK(SYM_PARAM) | MASK(SYM_LAYER) | MASK(SYM_WEIGHT))

static void report_unknown(Checker *c, Span span, const char *what, const char *name,
                           const char *suggestion) {
  if (suggestion)
    diag_error(c->d, span, "unknown %s '%s'; did you mean '%s'?", what, name, suggestion);
  else
    diag_error(c->d, span, "unknown %s '%s'", what, name);
}

static void note_declared(Checker *c, const Symbol *sym) {
  if (sym->decl->in_prelude)
    diag_note(c->d, sym->decl->name_span, "'%s' is a %s defined in the prelude", sym->name,
              sym_kind_name[sym->kind]);
  else
    diag_note(c->d, sym->decl->name_span, "'%s' is declared here as a %s", sym->name,
              sym_kind_name[sym->kind]);
}

// ---- Shapes ----

static bool same_dim(const Checker *c, int a, int b) {
  return a == b || (c->m->dims[a].value > 0 && c->m->dims[a].value == c->m->dims[b].value);
}

static bool same_shape(const Checker *c, Shape a, Shape b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; i++)
    if (!same_dim(c, a.d[i], b.d[i])) return false;
  return true;
}

static void dim_text(const Model *m, int dim, StrBuf *sb) {
  if (m->dims[dim].name) sb_append(sb, m->dims[dim].name);
  else sb_printf(sb, "%lld", (long long)m->dims[dim].value);
}

void sema_shape_text(const Model *m, int rank, const int *dims, char *buf, size_t size) {
  StrBuf sb = {0};
  if (rank == 0) {
    sb_append(&sb, "scalar");
  } else {
    sb_putc(&sb, '[');
    for (int i = 0; i < rank; i++) {
      if (i) sb_append(&sb, ", ");
      dim_text(m, dims[i], &sb);
    }
    sb_putc(&sb, ']');
  }
  snprintf(buf, size, "%s", sb_str(&sb));
  sb_free(&sb);
}

// Shape text in a rotating set of buffers, so one message can name several shapes.
static const char *shape_str(const Checker *c, Shape s) {
  static char bufs[4][160];
  static int next;
  char *buf = bufs[next++ % 4];
  sema_shape_text(c->m, s.rank, s.d, buf, sizeof bufs[0]);
  return buf;
}

// ---- Errors inside def instantiations ----

// Reports an error and, when it lies in a def body, the calls that led there.
__attribute__((format(printf, 4, 5))) static void error_at(Checker *c, const Ctx *ctx,
                                                          Span span, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vreport(c->d, DIAG_ERROR, &span, fmt, ap);
  va_end(ap);
  int shown = 0;
  for (const Frame *f = ctx->frame; f && shown < 4; f = f->up, shown++)
    diag_note(c->d, f->call, "in this call of '%s'", f->def->name);
}

// ---- Constant evaluation (dim values, param defaults, tau) ----

// Evaluates numbers, params (by their defaults), bound dims and + - * / ^. Returns false
// for anything else, or when a param has no default.
static bool uses_param(const AstExpr *e) {
  for (; e; e = e->lhs) {  // left operands in a loop: a chain is as deep as it is long
    if (e->kind == AST_NAME && e->ref == REF_PARAM) return true;
    if (e->rhs && uses_param(e->rhs)) return true;
  }
  return false;
}

// a op b for the operators a constant may use; false for '@'.
static bool const_binary(AstBinOp op, double a, double b, double *out) {
  switch (op) {
  case OP_ADD: *out = a + b; return true;
  case OP_SUB: *out = a - b; return true;
  case OP_MUL: *out = a * b; return true;
  case OP_DIV: *out = a / b; return true;
  case OP_POW: *out = pow(a, b); return true;
  case OP_MATMUL: return false;
  }
  return false;
}

static bool const_eval(const Checker *c, const AstExpr *e, double *out) {
  double a, b;
  switch (e->kind) {
  case AST_NUM:
    *out = e->num;
    return true;
  case AST_NAME:
    if (e->ref == REF_PARAM && c->m->params[e->ref_index].has_default) {
      *out = c->m->params[e->ref_index].value;
      return true;
    }
    if (e->ref == REF_DIM && c->m->dims[e->ref_index].value > 0) {
      *out = (double)c->m->dims[e->ref_index].value;
      return true;
    }
    return false;
  case AST_NEG:
    if (!const_eval(c, e->lhs, &a)) return false;
    *out = -a;
    return true;
  case AST_BINARY: {
    size_t n;
    AstExpr **spine = ast_spine(e, &n);
    bool ok = const_eval(c, spine[n - 1]->lhs, &a);
    for (size_t i = n; ok && i-- > 0;)
      ok = const_eval(c, spine[i]->rhs, &b) && const_binary(spine[i]->op, a, b, &a);
    free(spine);
    *out = a;
    return ok;
  }
  default:
    return false;
  }
}

// ---- Expressions ----

static Shape check(Checker *c, AstExpr *e, const Ctx *ctx);

static const char *ctx_place(const Ctx *ctx) {
  switch (ctx->kind) {
  case CTX_DIM_SIZE: return "a dim's size";
  case CTX_PARAM_DEFAULT: return "a param's default";
  case CTX_DEFAULT: return "a default argument";
  case CTX_LAGRANGIAN: return "a Lagrangian";
  case CTX_TAU: return "'tau'";
  case CTX_ENERGY: return "an energy term";
  case CTX_DEF: return "a def";
  }
  return "";
}

static void resolve_name(Checker *c, AstExpr *e, const Ctx *ctx) {
  const char *name = e->name.name;
  if (ctx->kind == CTX_DEF) {
    int i = 0;
    for (const AstParam *a = ctx->def->params; a; a = a->next, i++)
      if (a->name == name) {
        e->ref = REF_ARG;
        e->ref_index = i;
        return;
      }
  }
  Symbol *sym = lookup(c, name);
  if (!sym) {
    report_unknown(c, e->span, "name", name,
                   suggest(c, name, VALUE_KINDS, false,
                           ctx->kind == CTX_DEF ? ctx->def : NULL));
    return;
  }
  switch (sym->kind) {
  case SYM_DIM: e->ref = REF_DIM; break;
  case SYM_PARAM: e->ref = REF_PARAM; break;
  case SYM_WEIGHT: e->ref = REF_WEIGHT; break;
  case SYM_LAYER:
    if (ctx->kind == CTX_DEF) {
      diag_error(c->d, e->span,
                 "a def cannot use the state of layer '%s'; pass it as an argument", name);
      return;
    }
    e->ref = REF_STATE;
    break;
  case SYM_DEF:
    diag_error(c->d, e->span, "'%s' is a function; call it with arguments", name);
    note_declared(c, sym);
    return;
  }
  e->ref_index = sym->index;
}

// The span of a call's function name.
static Span callee_span(const AstExpr *call) {
  Span s = call->span;
  s.end = s.begin + (uint32_t)strlen(call->name.name);
  return s;
}

static void resolve_call(Checker *c, AstExpr *e, const Ctx *ctx) {
  const char *name = e->name.name;
  int fn = builtin_lookup(name);
  if (fn >= 0) {
    e->ref = REF_BUILTIN;
    e->ref_index = fn;
    return;
  }
  Symbol *sym = lookup(c, name);
  if (!sym) {
    report_unknown(c, callee_span(e), "function", name,
                   suggest(c, name, MASK(SYM_DEF), true, NULL));
    return;
  }
  if (sym->kind != SYM_DEF) {
    diag_error(c->d, callee_span(e), "'%s' is a %s, not a function", name,
               sym_kind_name[sym->kind]);
    note_declared(c, sym);
    return;
  }
  e->ref = REF_DEF;
  e->ref_def = sym->decl;
}

static void resolve_act(Checker *c, AstExpr *e) {
  const char *name = e->name.name;
  Symbol *sym = lookup(c, name);
  if (!sym) {
    report_unknown(c, e->span, "layer", name, suggest(c, name, MASK(SYM_LAYER), false, NULL));
    return;
  }
  if (sym->kind != SYM_LAYER) {
    diag_error(c->d, e->span, "g() takes a layer, but '%s' is a %s", name,
               sym_kind_name[sym->kind]);
    note_declared(c, sym);
    return;
  }
  e->ref = REF_LAYER;
  e->ref_index = sym->index;
}

// Where a name may be used depends on the context; the rules of docs/language.md.
static Shape check_name(Checker *c, AstExpr *e, const Ctx *ctx) {
  const Model *m = c->m;
  switch (e->ref) {
  case REF_NONE: return ERROR_SHAPE;
  case REF_ARG: return ctx->frame ? ctx->frame->args[e->ref_index] : ERROR_SHAPE;
  case REF_DIM: return SCALAR;
  case REF_PARAM:
    // A param changes at run time; sizes and other defaults are fixed at compile time.
    if (ctx->kind == CTX_DIM_SIZE || ctx->kind == CTX_PARAM_DEFAULT) break;
    c->param_used[e->ref_index] = true;
    return SCALAR;
  case REF_WEIGHT: {
    if (ctx->kind != CTX_ENERGY) {
      error_at(c, ctx, e->span, "weight '%s' cannot be used in %s; weights couple layers "
               "in 'synapse' and 'energy' statements", e->name.name, ctx_place(ctx));
      return ERROR_SHAPE;
    }
    c->weight_used[e->ref_index] = true;
    const ModelWeight *w = &m->weights[e->ref_index];
    if (w->rank < 0) return ERROR_SHAPE;  // its shape was wrong, and reported
    return (Shape){w->rank, {w->dims[0], w->dims[1]}};
  }
  case REF_STATE: {
    const ModelLayer *l = &m->layers[e->ref_index];
    if (ctx->kind == CTX_LAGRANGIAN && ctx->layer == e->ref_index)
      return l->dim < 0 ? ERROR_SHAPE : (Shape){1, {l->dim, 0}};
    if (ctx->kind == CTX_LAGRANGIAN)
      error_at(c, ctx, e->span, "the Lagrangian of layer '%s' cannot use the state of "
               "another layer ('%s')", m->layers[ctx->layer].name, l->name);
    else if (ctx->kind == CTX_ENERGY)
      error_at(c, ctx, e->span, "an energy term cannot use the state of layer '%s'; use its "
               "activation g(%s)", l->name, l->name);
    else
      error_at(c, ctx, e->span, "the state of layer '%s' cannot be used in %s", l->name,
               ctx_place(ctx));
    return ERROR_SHAPE;
  }
  default: damc_unreachable();
  }
  error_at(c, ctx, e->span, "param '%s' cannot be used in %s, which is fixed when the model "
           "is compiled", e->name.name, ctx_place(ctx));
  return ERROR_SHAPE;
}

static const char *op_text(AstBinOp op) {
  static const char *const text[] = {"+", "-", "*", "/", "@", "^"};
  return text[op];
}

// The shape of `e` from those of its operands, `a` and `b`.
static Shape binary_shape(Checker *c, const AstExpr *e, Shape a, Shape b, const Ctx *ctx) {
  if (a.rank == SHAPE_ERROR || b.rank == SHAPE_ERROR) return ERROR_SHAPE;
  if (e->op != OP_MATMUL) {
    if (a.rank == 0) return b;
    if (b.rank == 0) return a;
    if (same_shape(c, a, b)) return a;
    error_at(c, ctx, e->op_span, "operands of '%s' have different shapes: %s and %s",
             op_text(e->op), shape_str(c, a), shape_str(c, b));
    return ERROR_SHAPE;
  }
  if (a.rank == 0 || b.rank == 0) {
    error_at(c, ctx, e->op_span, "'@' multiplies vectors and matrices, but its %s operand "
             "is a scalar; use '*' to scale", a.rank == 0 ? "left" : "right");
    return ERROR_SHAPE;
  }
  int inner_a = a.d[a.rank - 1], inner_b = b.d[0];
  if (!same_dim(c, inner_a, inner_b)) {
    error_at(c, ctx, e->op_span, "sizes do not match in '@' of %s and %s", shape_str(c, a),
             shape_str(c, b));
    return ERROR_SHAPE;
  }
  Shape r = {0, {0, 0}};
  if (a.rank == 2) r.d[r.rank++] = a.d[0];
  if (b.rank == 2) r.d[r.rank++] = b.d[1];
  return r;
}

// A divisor that is the constant 0 (numbers and sized dims; not a param, which --set may
// change) would only show at run time, as an Inf far from its cause. The chain's shape is
// then an error, so that nothing built on it (a param's default, tau) is reported again.
static Shape check_divisor(Checker *c, const AstExpr *e, Shape s, const Ctx *ctx) {
  double v;
  if (e->op != OP_DIV || uses_param(e->rhs) || !const_eval(c, e->rhs, &v) || v != 0) return s;
  error_at(c, ctx, e->rhs->span, "division by zero: the divisor is the constant 0");
  return ERROR_SHAPE;
}

// A chain a + b * c - d ... from its innermost node out, over its spine (ast_spine).
static Shape check_binary(Checker *c, AstExpr *e, const Ctx *ctx) {
  size_t n;
  AstExpr **spine = ast_spine(e, &n);
  Shape a = check(c, spine[n - 1]->lhs, ctx);
  for (size_t i = n; i-- > 0;) {
    a = binary_shape(c, spine[i], a, check(c, spine[i]->rhs, ctx), ctx);
    a = check_divisor(c, spine[i], a, ctx);
  }
  free(spine);
  return a;
}

// Binds a def call's arguments to the def's parameters; fills `bound` with the argument
// expression (or default) of each parameter. False after reporting an error.
static bool bind_arguments(Checker *c, AstExpr *call, const Ctx *ctx, AstDecl *def,
                           AstExpr **bound) {
  AstParam **params = arena_alloc(c->s->arena, sizeof *params * (size_t)(def->nparams + 1));
  int np = 0;
  for (AstParam *a = def->params; a; a = a->next) params[np++] = a;
  bool ok = true, named_seen = false;
  int pos = 0;
  for (AstArg *arg = call->args; arg; arg = arg->next) {
    int slot = -1;
    if (!arg->name) {
      if (named_seen) {
        error_at(c, ctx, arg->value->span, "a positional argument cannot follow a named one");
        return false;
      }
      if (pos >= np) {
        error_at(c, ctx, arg->value->span, "'%s' takes %d argument%s, but %d %s given",
                 def->name, np, np == 1 ? "" : "s", call->nargs,
                 call->nargs == 1 ? "was" : "were");
        diag_note(c->d, def->name_span, "'%s' is defined here", def->name);
        return false;
      }
      slot = pos++;
    } else {
      named_seen = true;
      for (int i = 0; i < np; i++)
        if (params[i]->name == arg->name) slot = i;
      if (slot < 0) {
        Suggestion s = suggest_begin(arg->name);
        for (int i = 0; i < np; i++) suggest_consider(&s, params[i]->name);
        if (s.best)
          error_at(c, ctx, arg->name_span, "'%s' has no parameter '%s'; did you mean '%s'?",
                   def->name, arg->name, s.best);
        else
          error_at(c, ctx, arg->name_span, "'%s' has no parameter '%s'", def->name, arg->name);
        ok = false;
        continue;
      }
      if (bound[slot]) {
        error_at(c, ctx, arg->name_span, "argument '%s' of '%s' is given twice", arg->name,
                 def->name);
        ok = false;
        continue;
      }
    }
    bound[slot] = arg->value;
  }
  for (int i = 0; ok && i < np; i++) {
    if (bound[i]) continue;
    if (params[i]->default_value) {
      bound[i] = params[i]->default_value;
      continue;
    }
    error_at(c, ctx, call->span, "the call of '%s' is missing argument '%s'", def->name,
             params[i]->name);
    diag_note(c->d, params[i]->span, "'%s' is declared here", params[i]->name);
    ok = false;
  }
  return ok;
}

static Shape check_def_call(Checker *c, AstExpr *e, const Ctx *ctx) {
  AstDecl *def = e->ref_def;
  AstExpr **bound = arena_alloc(c->s->arena, sizeof *bound * (size_t)(def->nparams + 1));
  if (def->unusable || !bind_arguments(c, e, ctx, def, bound)) {
    for (AstArg *a = e->args; a; a = a->next) check(c, a->value, ctx);
    return ERROR_SHAPE;
  }
  Shape *args = arena_alloc(c->s->arena, sizeof *args * (size_t)(def->nparams + 1));
  bool ok = true;
  for (int i = 0; i < def->nparams; i++) {
    // A default is checked where it is written (pass 4), not in the caller's context.
    bool is_default = true;
    for (AstArg *a = e->args; a; a = a->next) is_default &= a->value != bound[i];
    args[i] = is_default ? SCALAR : check(c, bound[i], ctx);
    ok &= args[i].rank != SHAPE_ERROR;
  }
  if (!ok || def->unusable) return ERROR_SHAPE;
  e->bound_args = bound;
  Frame frame = {def, args, e->span, ctx->frame};
  Ctx inner = *ctx;
  inner.frame = &frame;
  int errors = diag_error_count(c->d);
  Shape r = check(c, def->value, &inner);
  // One bad instantiation is enough to report; later calls would repeat it.
  if (diag_error_count(c->d) > errors) def->unusable = true;
  return r;
}

static Shape check_builtin(Checker *c, AstExpr *e, const Ctx *ctx) {
  const BuiltinInfo *fn = &builtin_info[e->ref_index];
  Shape args[2] = {ERROR_SHAPE, ERROR_SHAPE};
  int i = 0;
  bool ok = true;
  for (AstArg *a = e->args; a; a = a->next, i++) {
    Shape s = check(c, a->value, ctx);
    if (i < 2) args[i] = s;
    ok &= s.rank != SHAPE_ERROR;
    if (a->name) {
      error_at(c, ctx, a->name_span, "built-in function '%s' takes no named arguments",
               fn->name);
      return ERROR_SHAPE;
    }
  }
  if (e->nargs != fn->arity) {
    error_at(c, ctx, e->span, "'%s' takes %d argument%s, but %d %s given", fn->name,
             fn->arity, fn->arity == 1 ? "" : "s", e->nargs, e->nargs == 1 ? "was" : "were");
    return ERROR_SHAPE;
  }
  if (!ok) return ERROR_SHAPE;
  switch (fn->kind) {
  case FNK_ELEM: return args[0];
  case FNK_REDUCE:
  case FNK_LEN: return SCALAR;
  case FNK_TRANSPOSE:
    if (args[0].rank == 2) return (Shape){2, {args[0].d[1], args[0].d[0]}};
    return args[0];
  case FNK_DOT:
    if (!same_shape(c, args[0], args[1])) {
      error_at(c, ctx, e->span, "the arguments of 'dot' have different shapes: %s and %s",
               shape_str(c, args[0]), shape_str(c, args[1]));
      return ERROR_SHAPE;
    }
    return SCALAR;
  }
  damc_unreachable();
}

static void resolve(Checker *c, AstExpr *e, const Ctx *ctx) {
  if (e->resolved) return;
  e->resolved = true;
  if (e->kind == AST_NAME) resolve_name(c, e, ctx);
  else if (e->kind == AST_CALL) resolve_call(c, e, ctx);
  else if (e->kind == AST_ACT) resolve_act(c, e);
}

// Resolves (once) and checks `e` in `ctx`, returning its shape. In CTX_DEF it only
// resolves names: a def's shapes are known per call.
static Shape check(Checker *c, AstExpr *e, const Ctx *ctx) {
  resolve(c, e, ctx);
  if (ctx->kind == CTX_DEF) {
    for (AstExpr *x = e; x; x = x->lhs) {  // left operands in a loop, as in uses_param
      resolve(c, x, ctx);
      for (AstArg *a = x->args; a; a = a->next) check(c, a->value, ctx);
      if (x->rhs) check(c, x->rhs, ctx);
    }
    return ERROR_SHAPE;
  }
  switch (e->kind) {
  case AST_NUM: return SCALAR;
  case AST_NAME: return check_name(c, e, ctx);
  case AST_ACT:
    if (e->ref == REF_NONE) return ERROR_SHAPE;
    if (ctx->kind != CTX_ENERGY) {
      error_at(c, ctx, e->span, "g(%s) can only be used in 'energy' terms%s", e->name.name,
               ctx->kind == CTX_LAGRANGIAN ? "; a Lagrangian uses its layer's state" : "");
      return ERROR_SHAPE;
    }
    c->layer_used[e->ref_index] = true;
    if (c->m->layers[e->ref_index].dim < 0) return ERROR_SHAPE;  // its size was wrong, and reported
    return (Shape){1, {c->m->layers[e->ref_index].dim, 0}};
  case AST_NEG: return check(c, e->lhs, ctx);
  case AST_TRANSPOSE: {
    Shape s = check(c, e->lhs, ctx);
    if (s.rank == 2) return (Shape){2, {s.d[1], s.d[0]}};
    return s;
  }
  case AST_BINARY: return check_binary(c, e, ctx);
  case AST_CALL:
    if (e->ref == REF_NONE) {
      for (AstArg *a = e->args; a; a = a->next) check(c, a->value, ctx);
      return ERROR_SHAPE;
    }
    if (ctx->kind == CTX_DIM_SIZE || ctx->kind == CTX_PARAM_DEFAULT || ctx->kind == CTX_DEFAULT) {
      error_at(c, ctx, e->span, "a function cannot be called in %s", ctx_place(ctx));
      return ERROR_SHAPE;
    }
    if (e->ref == REF_BUILTIN) return check_builtin(c, e, ctx);
    return check_def_call(c, e, ctx);
  }
  damc_unreachable();
}

// ---- Declarations ----

// Whether the name of `d` was declared before: then reported at `d`, with a note at the
// first declaration, and `d` is marked a duplicate. A duplicate is left out of the model and
// not checked further: its body would be checked against the first declaration's symbol
// (a layer's own state would be "another layer"), one mistake giving several messages.
static bool is_duplicate(Checker *c, AstDecl *d) {
  Symbol *old = lookup(c, d->name);
  if (!old) return false;
  diag_error(c->d, d->name_span, "'%s' is already declared", d->name);
  note_declared(c, old);
  d->duplicate = true;
  return true;
}

static void add_symbol(Checker *c, AstDecl *d, SymKind kind, int index) {
  // A name that shadows a builtin is reported but still registered, so that its uses do
  // not add "unknown name" errors.
  if (builtin_lookup(d->name) >= 0)
    diag_error(c->d, d->name_span, "'%s' is a built-in function and cannot be redeclared",
               d->name);
  size_t i = slot_of(c, d->name);
  while (c->table[i].name) i = (i + 1) & (c->table_cap - 1);
  c->table[i] = (Symbol){d->name, kind, index, d};
}

// A dim for a size literal: one per distinct value.
static int literal_dim(Checker *c, AstSize *s) {
  Model *m = c->m;
  for (int i = 0; i < m->ndims; i++)
    if (!m->dims[i].name && m->dims[i].value == (int64_t)s->value) return i;
  m->dims[m->ndims] = (ModelDim){NULL, s->span, (int64_t)s->value};
  return m->ndims++;
}

static bool valid_size(double v) { return v >= 1 && v <= 2147483647.0 && v == floor(v); }

// The dim index of a size in a shape, or -1 after an error.
static int resolve_size(Checker *c, AstSize *s) {
  if (!s->name) {
    if (!valid_size(s->value)) {
      diag_error(c->d, s->span, "a size must be an integer from 1 to 2147483647");
      return -1;
    }
    return literal_dim(c, s);
  }
  Symbol *sym = lookup(c, s->name);
  if (!sym) {
    report_unknown(c, s->span, "dim", s->name, suggest(c, s->name, MASK(SYM_DIM), false, NULL));
    return -1;
  }
  if (sym->kind != SYM_DIM) {
    diag_error(c->d, s->span, "'%s' is a %s, not a dim", s->name, sym_kind_name[sym->kind]);
    note_declared(c, sym);
    return -1;
  }
  return sym->index;
}

// Resolves the sizes of a decl's shape into `dims`; false after an error.
static bool resolve_shape(Checker *c, AstDecl *d, int *dims) {
  int i = 0;
  bool ok = true;
  for (AstSize *s = d->shape; s && i < 2; s = s->next) {
    int dim = resolve_size(c, s);
    ok &= dim >= 0;
    dims[i++] = dim < 0 ? 0 : dim;
  }
  return ok;
}

static void check_dim_value(Checker *c, AstDecl *d) {
  ModelDim *dim = &c->m->dims[d->index];
  if (!d->value) return;
  Ctx ctx = {CTX_DIM_SIZE, -1, NULL, NULL};
  double v;
  if (check(c, d->value, &ctx).rank == SHAPE_ERROR) return;
  if (!const_eval(c, d->value, &v)) {
    diag_error(c->d, d->value->span, "the size of dim '%s' must be a constant", d->name);
    return;
  }
  if (!valid_size(v)) {
    NumText buf;
    diag_error(c->d, d->value->span, "the size of dim '%s' must be an integer from 1 to "
               "2147483647, not %s", d->name, number_text(v, &buf));
    return;
  }
  dim->value = (int64_t)v;
}

static void check_param_default(Checker *c, AstDecl *d) {
  ModelParam *p = &c->m->params[d->index];
  if (!d->value) return;
  Ctx ctx = {CTX_PARAM_DEFAULT, -1, NULL, NULL};
  if (check(c, d->value, &ctx).rank == SHAPE_ERROR) return;
  if (!const_eval(c, d->value, &p->value) || !isfinite(p->value)) {
    diag_error(c->d, d->value->span, "the default of param '%s' must be a finite number",
               d->name);
    return;
  }
  p->has_default = true;
}

static int layer_named(Checker *c, const char *name, Span span) {
  Symbol *sym = lookup(c, name);
  if (!sym) {
    report_unknown(c, span, "layer", name, suggest(c, name, MASK(SYM_LAYER), false, NULL));
    return -1;
  }
  if (sym->kind != SYM_LAYER) {
    diag_error(c->d, span, "'%s' is a %s, not a layer", name, sym_kind_name[sym->kind]);
    note_declared(c, sym);
    return -1;
  }
  return sym->index;
}

static Span span_of_sizes(const AstDecl *d) {
  Span span = d->shape->span;
  for (const AstSize *s = d->shape; s; s = s->next) span = span_join(span, s->span);
  return span;
}

static void check_layer_header(Checker *c, AstDecl *d) {
  ModelLayer *l = &c->m->layers[d->index];
  if (d->rank != 1) {
    diag_error(c->d, span_of_sizes(d), "a layer is a vector of neurons: give one size, not %d",
               d->rank);
    return;
  }
  int dim;
  if (resolve_shape(c, d, &dim)) l->dim = dim;
  else l->dim = -1;
}

static void check_weight(Checker *c, AstDecl *d) {
  ModelWeight *w = &c->m->weights[d->index];
  if (d->kind == DECL_WEIGHT && d->rank > 2) {
    diag_error(c->d, span_of_sizes(d), "a weight is a vector or a matrix: give one or two "
               "sizes, not %d", d->rank);
    w->rank = -1;
    return;
  }
  if (d->kind == DECL_SYNAPSE && d->rank != 2) {
    diag_error(c->d, span_of_sizes(d), "a synapse's weight is a matrix: give two sizes, "
               "not %d", d->rank);
    w->rank = -1;
    return;
  }
  w->rank = d->rank;
  if (!resolve_shape(c, d, w->dims)) {
    w->rank = -1;
    return;
  }
  if (d->symmetric && (w->rank != 2 || !same_dim(c, w->dims[0], w->dims[1]))) {
    Shape s = {w->rank, {w->dims[0], w->dims[1]}};
    diag_error(c->d, span_of_sizes(d), "a symmetric weight must be square, but '%s' is %s",
               d->name, shape_str(c, s));
  }
}

static void check_synapse(Checker *c, AstDecl *d) {
  ModelWeight *w = &c->m->weights[d->index];
  ModelSynapse *syn = &c->m->synapses[w->synapse];
  int from = layer_named(c, d->from, d->from_span), to = layer_named(c, d->to, d->to_span);
  // `from <-> to`: W is [n_from, n_to]. `from -> to`: `to` receives W g(from), so W is
  // [n_to, n_from].
  syn->a = d->directed ? to : from;
  syn->b = d->directed ? from : to;
  syn->directed = d->directed;
  syn->span = d->span;
  if (from < 0 || to < 0 || w->rank != 2) return;
  c->layer_used[from] = c->layer_used[to] = true;
  const ModelLayer *la = &c->m->layers[syn->a], *lb = &c->m->layers[syn->b];
  if (la->dim < 0 || lb->dim < 0) return;
  Shape have = {2, {w->dims[0], w->dims[1]}};
  if (from == to && !same_dim(c, w->dims[0], w->dims[1])) {
    diag_error(c->d, span_of_sizes(d), "the weight of a self-synapse must be square, but "
               "'%s' is %s", d->name, shape_str(c, have));
    return;
  }
  if (from == to && !d->directed) w->symmetric = true;
  Shape want = {2, {la->dim, lb->dim}};
  if (!same_shape(c, have, want)) {
    diag_error(c->d, span_of_sizes(d), "weight '%s' is %s, but '%s %s %s' needs %s: one "
               "row per neuron of '%s' and one column per neuron of '%s'", d->name,
               shape_str(c, have), d->from, d->directed ? "->" : "<->", d->to,
               shape_str(c, want), la->name, lb->name);
  }
}

static void check_input(Checker *c, AstDecl *d) {
  int layer = layer_named(c, d->name, d->name_span);
  if (layer < 0) return;
  ModelLayer *l = &c->m->layers[layer];
  if (l->has_input) {
    diag_error(c->d, d->span, "layer '%s' already has an input", d->name);
    diag_note(c->d, l->input_span, "first declared here");
    return;
  }
  l->has_input = true;
  l->input_span = d->span;
  c->layer_used[layer] = true;
}

// ---- Defs: names, defaults and recursion ----

static void collect_calls(AstExpr *e, AstDecl ***out, size_t *n, size_t *cap) {
  for (; e; e = e->lhs) {  // left operands in a loop, as in uses_param
    if (e->kind == AST_CALL && e->ref == REF_DEF) VEC_PUSH(*out, *n, *cap, e->ref_def);
    for (AstArg *a = e->args; a; a = a->next) collect_calls(a->value, out, n, cap);
    if (e->rhs) collect_calls(e->rhs, out, n, cap);
  }
}

// Depth-first search of the call graph from `def`; `path` holds the defs on the stack.
static void find_recursion(Checker *c, AstDecl *def, AstDecl ***path, size_t *depth,
                           size_t *cap) {
  if (def->visit == 2) return;
  if (def->visit == 1) {
    size_t start = 0;
    while ((*path)[start] != def) start++;
    StrBuf chain = {0};
    for (size_t i = start; i < *depth; i++) {
      sb_printf(&chain, "%s -> ", (*path)[i]->name);
      (*path)[i]->unusable = true;
    }
    sb_append(&chain, def->name);
    diag_error(c->d, def->name_span, "def '%s' is recursive (%s); defs are inlined, so they "
               "cannot call themselves", def->name, sb_str(&chain));
    sb_free(&chain);
    return;
  }
  def->visit = 1;
  VEC_PUSH(*path, *depth, *cap, def);
  AstDecl **callees = NULL;
  size_t n = 0, ncap = 0;
  collect_calls(def->value, &callees, &n, &ncap);
  for (size_t i = 0; i < n; i++) find_recursion(c, callees[i], path, depth, cap);
  free(callees);
  (*depth)--;
  def->visit = 2;
}

static void check_def(Checker *c, AstDecl *d) {
  for (AstParam *a = d->params; a; a = a->next) {
    for (AstParam *b = d->params; b != a; b = b->next)
      if (b->name == a->name) {
        diag_error(c->d, a->span, "parameter '%s' of '%s' is declared twice", a->name, d->name);
        d->unusable = true;
      }
    if (builtin_lookup(a->name) >= 0)
      diag_error(c->d, a->span, "'%s' is a built-in function and cannot name a parameter",
                 a->name);
    if (!a->default_value) continue;
    Ctx ctx = {CTX_DEFAULT, -1, NULL, NULL};
    Shape s = check(c, a->default_value, &ctx);
    if (s.rank > 0)
      diag_error(c->d, a->default_value->span, "a default argument must be a scalar");
  }
  Ctx ctx = {CTX_DEF, -1, d, NULL};
  check(c, d->value, &ctx);
}

// ---- Layers and energies ----

static void check_layer_body(Checker *c, AstDecl *d) {
  ModelLayer *l = &c->m->layers[d->index];
  if (!d->lagrangian) {
    diag_error(c->d, d->name_span, "layer '%s' has no Lagrangian; add 'L = ...;' to its body",
               d->name);
  } else if (l->dim >= 0) {
    Ctx ctx = {CTX_LAGRANGIAN, d->index, NULL, NULL};
    Shape s = check(c, d->lagrangian, &ctx);
    if (s.rank > 0)
      diag_error(c->d, d->lagrangian->span, "the Lagrangian of layer '%s' must be a scalar, "
                 "but this is %s%s", d->name, shape_str(c, s),
                 s.rank == 1 ? "; did you mean sum(...)?" : "");
  }
  if (!d->tau) return;
  Ctx ctx = {CTX_TAU, d->index, NULL, NULL};
  Shape s = check(c, d->tau, &ctx);
  if (s.rank == SHAPE_ERROR) return;
  if (s.rank > 0) {
    diag_error(c->d, d->tau->span, "'tau' must be a scalar, but this is %s", shape_str(c, s));
    return;
  }
  double tau;
  if (!const_eval(c, d->tau, &tau)) return;  // checked at run time, with the params set
  NumText buf;
  const char *defaults = uses_param(d->tau) ? " (with the params' defaults)" : "";
  if (!isfinite(tau))
    diag_error(c->d, d->tau->span, "'tau' of layer '%s' must be finite, but it is %s%s", d->name,
               number_text(tau, &buf), defaults);
  else if (tau < 0)
    diag_error(c->d, d->tau->span, "'tau' of layer '%s' must not be negative, but it is %s%s",
               d->name, number_text(tau, &buf), defaults);
  if (tau == 0) {
    for (int i = 0; i < c->m->nsynapses; i++) {
      const ModelSynapse *syn = &c->m->synapses[i];
      if (syn->a == d->index && syn->b == d->index) {
        diag_error(c->d, d->tau->span, "layer '%s' has tau = 0, so it is solved instantly as "
                   "x = u, but its self-synapse makes u depend on g(%s)", d->name, d->name);
        diag_note(c->d, syn->span, "the self-synapse");
        break;
      }
    }
  }
}

static void check_energy(Checker *c, AstDecl *d) {
  ModelEnergy *en = &c->m->energies[d->index];
  en->expr = d->value;
  en->span = d->span;
  Ctx ctx = {CTX_ENERGY, -1, NULL, NULL};
  Shape s = check(c, d->value, &ctx);
  if (s.rank > 0)
    diag_error(c->d, d->value->span, "an energy term must be a scalar, but this is %s%s",
               shape_str(c, s), s.rank == 1 ? "; did you mean sum(...) or dot(...)?" : "");
}

// ---- The passes ----

static int count(const AstDecl *decls, DeclKind kind) {
  int n = 0;
  for (const AstDecl *d = decls; d; d = d->next) n += d->kind == kind;
  return n;
}

static void register_decls(Checker *c, AstDecl *decls, const char *default_name) {
  Model *m = c->m;
  const AstDecl *model_decl = NULL;
  for (AstDecl *d = decls; d; d = d->next) {
    bool named = d->kind != DECL_MODEL && d->kind != DECL_ENERGY && d->kind != DECL_INPUT;
    if (named && is_duplicate(c, d)) continue;
    switch (d->kind) {
    case DECL_MODEL:
      if (model_decl) {
        diag_error(c->d, d->span, "the model is already named");
        diag_note(c->d, model_decl->span, "named here");
      }
      model_decl = d;
      m->name = d->name;
      break;
    case DECL_DIM:
      d->index = m->ndims++;
      m->dims[d->index] = (ModelDim){d->name, d->name_span, -1};
      add_symbol(c, d, SYM_DIM, d->index);
      break;
    case DECL_PARAM:
      d->index = m->nparams++;
      m->params[d->index] = (ModelParam){d->name, d->name_span, 0, false};
      add_symbol(c, d, SYM_PARAM, d->index);
      break;
    case DECL_DEF:
      add_symbol(c, d, SYM_DEF, 0);
      break;
    case DECL_LAYER:
      d->index = m->nlayers++;
      m->layers[d->index] = (ModelLayer){.name = d->name, .span = d->name_span, .dim = -1,
                                         .lagrangian = d->lagrangian, .tau = d->tau,
                                         .input_span = d->span};
      add_symbol(c, d, SYM_LAYER, d->index);
      break;
    case DECL_WEIGHT:
    case DECL_SYNAPSE:
      d->index = m->nweights++;
      m->weights[d->index] = (ModelWeight){d->name, d->name_span, 0, {0, 0}, d->symmetric, -1};
      if (d->kind == DECL_SYNAPSE) m->weights[d->index].synapse = m->nsynapses++;
      if (d->kind == DECL_SYNAPSE) m->synapses[m->nsynapses - 1].weight = d->index;
      add_symbol(c, d, SYM_WEIGHT, d->index);
      break;
    case DECL_ENERGY:
      d->index = m->nenergies++;
      break;
    case DECL_INPUT:
      break;
    }
  }
  if (!m->name) m->name = intern(c->s->names, default_name);
}

Model *sema_check(Session *s, AstDecl *decls, const char *default_name) {
  Arena *arena = s->arena;
  Model *m = ARENA_NEW(arena, Model);
  m->decls = decls;
  int nsizes = 0, nweights = count(decls, DECL_WEIGHT) + count(decls, DECL_SYNAPSE);
  for (const AstDecl *d = decls; d; d = d->next) nsizes += d->rank;
  int ndims = count(decls, DECL_DIM) + nsizes, nlayers = count(decls, DECL_LAYER);
  m->dims = arena_alloc(arena, sizeof *m->dims * (size_t)(ndims + 1));
  m->params = arena_alloc(arena, sizeof *m->params * (size_t)(count(decls, DECL_PARAM) + 1));
  m->layers = arena_alloc(arena, sizeof *m->layers * (size_t)(nlayers + 1));
  m->weights = arena_alloc(arena, sizeof *m->weights * (size_t)(nweights + 1));
  m->synapses = arena_alloc(arena, sizeof *m->synapses * (size_t)(count(decls, DECL_SYNAPSE) + 1));
  m->energies = arena_alloc(arena, sizeof *m->energies * (size_t)(count(decls, DECL_ENERGY) + 1));

  Checker c = {s, s->diag, m, NULL, 64, NULL, NULL, NULL};
  size_t nnames = 0;
  for (const AstDecl *d = decls; d; d = d->next) nnames++;
  while (c.table_cap < 2 * nnames + 2) c.table_cap *= 2;
  c.table = xcalloc(c.table_cap, sizeof *c.table);
  c.param_used = xcalloc((size_t)count(decls, DECL_PARAM) + 1, sizeof(bool));
  c.weight_used = xcalloc((size_t)nweights + 1, sizeof(bool));
  c.layer_used = xcalloc((size_t)nlayers + 1, sizeof(bool));

  diag_defer(s->diag);
  register_decls(&c, decls, default_name);
  // Duplicates (reported) take no further part.
  for (AstDecl *d = decls; d; d = d->next) {
    if (d->duplicate) continue;
    if (d->kind == DECL_DIM) check_dim_value(&c, d);
    if (d->kind == DECL_PARAM) check_param_default(&c, d);
  }
  for (AstDecl *d = decls; d; d = d->next) {
    if (d->duplicate) continue;
    if (d->kind == DECL_LAYER) check_layer_header(&c, d);
    if (d->kind == DECL_WEIGHT || d->kind == DECL_SYNAPSE) check_weight(&c, d);
  }
  for (AstDecl *d = decls; d; d = d->next) {
    if (d->duplicate) continue;
    if (d->kind == DECL_SYNAPSE) check_synapse(&c, d);
    if (d->kind == DECL_INPUT) check_input(&c, d);
    if (d->kind == DECL_DEF) check_def(&c, d);
  }
  AstDecl **path = NULL;
  size_t depth = 0, path_cap = 0;
  for (AstDecl *d = decls; d; d = d->next)
    if (d->kind == DECL_DEF && !d->duplicate) find_recursion(&c, d, &path, &depth, &path_cap);
  free(path);
  for (AstDecl *d = decls; d; d = d->next) {
    if (diag_stopped(s->diag)) break;
    if (d->duplicate) continue;
    if (d->kind == DECL_LAYER) check_layer_body(&c, d);
    if (d->kind == DECL_ENERGY) check_energy(&c, d);
  }

  // The symbolic layer tracks which layers an expression depends on in 64-bit masks.
  if (m->nlayers > 64)
    diag_error(s->diag, m->layers[64].span, "a model may have at most 64 layers; this is "
               "layer %d", m->nlayers > 0 ? 65 : 0);

  for (AstDecl *d = decls; d; d = d->next) {
    // After an error, "never used" may only mean "used wrongly": say nothing then.
    if (d->in_prelude || diag_error_count(s->diag)) continue;
    if (d->kind == DECL_WEIGHT && !c.weight_used[d->index])
      diag_warning(s->diag, d->name_span, "weight '%s' is declared but never used", d->name);
    if (d->kind == DECL_PARAM && !c.param_used[d->index])
      diag_warning(s->diag, d->name_span, "param '%s' is declared but never used", d->name);
    if (d->kind == DECL_LAYER && !c.layer_used[d->index] && m->nlayers > 1)
      diag_warning(s->diag, d->name_span, "layer '%s' is not connected to anything: no synapse, "
                   "energy term or input uses it", d->name);
  }

  if (m->nlayers == 0 && !diag_error_count(s->diag)) {
    Span start = {1, 0, 0};
    for (AstDecl *d = decls; d; d = d->next)
      if (!d->in_prelude) start.file = d->span.file;
    diag_error(s->diag, start, "the model declares no layer; a model needs at least one "
               "'layer'");
  }

  // The static convexity proof (docs/theory.md §4.2.5), on models without errors.
  if (!diag_error_count(s->diag)) convexity_check_model(s, m);

  diag_flush(s->diag);
  free(c.table);
  free(c.param_used);
  free(c.weight_used);
  free(c.layer_used);
  return diag_error_count(s->diag) ? NULL : m;
}
