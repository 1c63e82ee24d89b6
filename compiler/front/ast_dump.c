// Fully parenthesised printing of the AST (see ast_dump.h).
#include "front/ast_dump.h"

#include <stdlib.h>

#include "front/sema.h"

void ast_dump_expr(StrBuf *out, const AstExpr *e) {
  static const char *const ops[] = {"+", "-", "*", "/", "@", "^"};
  switch (e->kind) {
  case AST_NUM: sb_double(out, e->num); break;
  case AST_NAME: sb_append(out, e->name.name); break;
  case AST_ACT: sb_printf(out, "g(%s)", e->name.name); break;
  case AST_CALL:
    sb_printf(out, "%s(", e->name.name);
    for (const AstArg *a = e->args; a; a = a->next) {
      if (a != e->args) sb_append(out, ", ");
      if (a->name) sb_printf(out, "%s = ", a->name);
      ast_dump_expr(out, a->value);
    }
    sb_putc(out, ')');
    break;
  case AST_NEG:
    sb_append(out, "(-");
    ast_dump_expr(out, e->lhs);
    sb_putc(out, ')');
    break;
  case AST_TRANSPOSE:
    sb_putc(out, '(');
    ast_dump_expr(out, e->lhs);
    sb_append(out, ")'");
    break;
  case AST_BINARY: {
    // (((a + b) + c) + d): a chain over its spine, not recursively (ast_spine).
    size_t n;
    AstExpr **spine = ast_spine(e, &n);
    for (size_t i = 0; i < n; i++) sb_putc(out, '(');
    ast_dump_expr(out, spine[n - 1]->lhs);
    for (size_t i = n; i-- > 0;) {
      sb_printf(out, " %s ", ops[spine[i]->op]);
      ast_dump_expr(out, spine[i]->rhs);
      sb_putc(out, ')');
    }
    free(spine);
    break;
  }
  }
}

static void dump_shape(StrBuf *out, const Model *m, int rank, const int *dims) {
  char buf[160];
  sema_shape_text(m, rank, dims, buf, sizeof buf);
  sb_append(out, buf);
}

void ast_dump_model(StrBuf *out, const Model *m) {
  sb_printf(out, "model %s\n", m->name);
  for (const AstDecl *d = m->decls; d; d = d->next) {
    if (d->in_prelude) continue;
    switch (d->kind) {
    case DECL_MODEL: break;
    case DECL_DIM:
      if (m->dims[d->index].value > 0)
        sb_printf(out, "dim %s = %lld\n", d->name, (long long)m->dims[d->index].value);
      else
        sb_printf(out, "dim %s (bound when weights are loaded)\n", d->name);
      break;
    case DECL_PARAM:
      sb_printf(out, "param %s", d->name);
      if (m->params[d->index].has_default) {
        sb_append(out, " = ");
        sb_double(out, m->params[d->index].value);
      }
      sb_putc(out, '\n');
      break;
    case DECL_DEF:
      sb_printf(out, "def %s(", d->name);
      for (const AstParam *a = d->params; a; a = a->next) {
        sb_printf(out, "%s%s", a == d->params ? "" : ", ", a->name);
        if (a->default_value) {
          sb_append(out, " = ");
          ast_dump_expr(out, a->default_value);
        }
      }
      sb_append(out, ") = ");
      ast_dump_expr(out, d->value);
      sb_putc(out, '\n');
      break;
    case DECL_LAYER: {
      const ModelLayer *l = &m->layers[d->index];
      sb_printf(out, "layer %s", d->name);
      dump_shape(out, m, 1, &l->dim);
      sb_append(out, "\n  L = ");
      ast_dump_expr(out, l->lagrangian);
      sb_append(out, "\n  tau = ");
      if (l->tau) ast_dump_expr(out, l->tau);
      else sb_append(out, "1 (default)");
      sb_putc(out, '\n');
      break;
    }
    case DECL_WEIGHT:
    case DECL_SYNAPSE: {
      const ModelWeight *w = &m->weights[d->index];
      sb_printf(out, "%s %s", d->kind == DECL_WEIGHT ? "weight" : "synapse", d->name);
      dump_shape(out, m, w->rank, w->dims);
      if (d->kind == DECL_SYNAPSE)
        sb_printf(out, " : %s %s %s", d->from, d->directed ? "->" : "<->", d->to);
      if (w->symmetric) sb_append(out, " symmetric");
      sb_putc(out, '\n');
      break;
    }
    case DECL_ENERGY:
      sb_append(out, "energy ");
      ast_dump_expr(out, d->value);
      sb_putc(out, '\n');
      break;
    case DECL_INPUT: sb_printf(out, "input %s\n", d->name); break;
    }
  }
}
