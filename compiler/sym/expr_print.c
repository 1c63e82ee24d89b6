// Expression printing (see expr_print.h).
//
// One walker serves text and LaTeX: each construct asks `style` for its spelling.
// Precedence levels: 1 sums, 2 products and @, 3 unary minus, 4 powers, 5 atoms.
#include "sym/expr_print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  StrBuf *out;
  const ExprPool *pool;
  const ExprNames *names;
  PrintStyle style;
  ExprId root;
} Printer;

static void print(Printer *p, ExprId e, int outer);

static bool latex(const Printer *p) { return p->style == PRINT_LATEX; }
static const Expr *node(const Printer *p, ExprId e) { return expr_get(p->pool, e); }

// A name in LaTeX: Greek letter names become the letters; others are upright text.
static void put_name(Printer *p, const char *name) {
  static const char *const greek[] = {"alpha", "beta", "gamma", "delta", "epsilon", "eps",
                                      "zeta", "eta", "theta", "kappa", "lambda", "mu", "nu",
                                      "xi", "Xi", "rho", "sigma", "tau", "phi", "chi", "psi",
                                      "omega", "Omega", "Lambda", "Gamma", "Delta", "Phi", NULL};
  if (!latex(p)) {
    sb_append(p->out, name);
    return;
  }
  for (int i = 0; greek[i]; i++)
    if (strcmp(name, greek[i]) == 0) {
      sb_printf(p->out, "\\%s", strcmp(name, "eps") == 0 ? "epsilon" : name);
      return;
    }
  sb_append(p->out, "\\mathrm{");
  for (const char *c = name; *c; c++) {
    if (*c == '_') sb_putc(p->out, '\\');
    sb_putc(p->out, *c);
  }
  sb_putc(p->out, '}');
}

static void put_number(Printer *p, double v) {
  // -0 (a negated zero) reads back as such in PRINT_TEXT, which must reparse to the same
  // node; for a reader it is 0.
  if (v == 0 && p->style != PRINT_TEXT) v = 0;
  if (latex(p) && fabs(v) > 0 && (fabs(v) < 1e-4 || fabs(v) >= 1e6)) {
    int ex = (int)floor(log10(fabs(v)));
    StrBuf m = {0};
    sb_double(&m, v / pow(10, ex));
    sb_printf(p->out, "%s \\cdot 10^{%d}", sb_str(&m), ex);
    sb_free(&m);
    return;
  }
  sb_double(p->out, v);
}

static void open_paren(Printer *p, bool yes) {
  if (yes) sb_append(p->out, latex(p) ? "\\left(" : "(");
}
static void close_paren(Printer *p, bool yes) {
  if (yes) sb_append(p->out, latex(p) ? "\\right)" : ")");
}

static void call(Printer *p, const char *text_name, const char *latex_name, ExprId arg) {
  sb_append(p->out, latex(p) ? latex_name : text_name);
  open_paren(p, true);
  print(p, arg, 0);
  close_paren(p, true);
}

static double coefficient(const Printer *p, ExprId e) {
  const Expr *x = node(p, e);
  if (x->kind == EX_CONST) return x->value;
  if (x->kind == EX_MUL && node(p, x->kids[0])->kind == EX_CONST) return node(p, x->kids[0])->value;
  return 1;
}

// Prints a product with its constant coefficient replaced by `coef`.
static void print_product(Printer *p, ExprId e, double coef, int outer);

// A sum with each term's sign pulled out ("a - 2 * b") and constants last; with `negate`,
// the sum times -1 with every sign flipped. -(a - b) is stored as such (a product is not
// distributed over a sum unless the product is itself a term of a sum), so the pretty
// styles print it as b - a and PRINT_TEXT, which must reparse to the same node, as -(a - b).
static void print_sum_signed(Printer *p, ExprId e, int outer, bool negate) {
  const Expr *x = node(p, e);
  bool paren = outer > 1, first = true;
  open_paren(p, paren);
  for (int pass = 0; pass < 2; pass++)
    for (uint32_t i = 0; i < x->nkids; i++) {
      ExprId t = x->kids[i];
      if ((node(p, t)->kind == EX_CONST) != (pass == 1)) continue;
      double c = negate ? -coefficient(p, t) : coefficient(p, t);
      if (first) {
        print_product(p, t, c, 1);
      } else {
        sb_append(p->out, c < 0 ? " - " : " + ");
        print_product(p, t, fabs(c), 2);
      }
      first = false;
    }
  close_paren(p, paren);
}

static void print_sum(Printer *p, ExprId e, int outer) { print_sum_signed(p, e, outer, false); }

// ---- softmax(a) and ghostmax(a): exp(a - lse(a)) and exp(a - lse1(a)) ----
//
// The sum under the exp holds -lse(a) and the terms of a; but a itself may be a sum, or a
// scaled sum (beta * (W @ g(v) + D @ g(v)) in a reduced model), which the sum under the exp
// holds opened up (beta * (W @ g(v)) + beta * (D @ g(v))). Both sides are therefore compared
// as lists of terms, each a constant coefficient times a multiset of other factors.

enum { MAX_TERMS = 64, MAX_FACTORS = 16 };

typedef struct {
  double coef;
  uint32_t nf;
  ExprId f[MAX_FACTORS];  // sorted by id
} Term;

typedef struct {
  Term t[MAX_TERMS];
  uint32_t n;
  bool overflow;
} TermList;

static void sort_ids(ExprId *f, uint32_t n) {
  for (uint32_t i = 1; i < n; i++)
    for (uint32_t j = i; j > 0 && f[j - 1] > f[j]; j--) {
      ExprId t = f[j];
      f[j] = f[j - 1];
      f[j - 1] = t;
    }
}

// Appends `e` times `coef` times the factors `extra` to `out` as terms; with `open`, a sum,
// and a product holding one sum (the scaled sum the constructors open up inside a sum),
// are expanded into their terms.
static void add_terms(const Printer *p, ExprId e, double coef, const ExprId *extra, uint32_t nextra,
                      bool open, TermList *out) {
  const Expr *x = node(p, e);
  if (open && x->kind == EX_ADD) {
    for (uint32_t i = 0; i < x->nkids; i++) add_terms(p, x->kids[i], coef, extra, nextra, open, out);
    return;
  }
  ExprId f[MAX_FACTORS];
  uint32_t nf = 0;
  if (nextra > MAX_FACTORS) out->overflow = true;
  for (uint32_t i = 0; i < nextra && nf < MAX_FACTORS; i++) f[nf++] = extra[i];
  if (x->kind == EX_CONST) {
    coef *= x->value;
  } else if (x->kind == EX_MUL) {
    ExprId sum = 0;
    for (uint32_t i = 0; i < x->nkids; i++) {
      const Expr *k = node(p, x->kids[i]);
      if (k->kind == EX_CONST) coef *= k->value;
      else if (open && k->kind == EX_ADD && !sum) sum = x->kids[i];
      else if (nf < MAX_FACTORS) f[nf++] = x->kids[i];
      else out->overflow = true;
    }
    if (sum) {
      add_terms(p, sum, coef, f, nf, open, out);
      return;
    }
  } else if (nf < MAX_FACTORS) {
    f[nf++] = e;
  } else {
    out->overflow = true;
  }
  if (out->n == MAX_TERMS) {
    out->overflow = true;
    return;
  }
  Term *t = &out->t[out->n++];
  t->coef = coef;
  t->nf = nf;
  memcpy(t->f, f, nf * sizeof *f);
  sort_ids(t->f, nf);
}

static bool same_factors(const Term *a, const Term *b) {
  return a->nf == b->nf && memcmp(a->f, b->f, a->nf * sizeof *a->f) == 0;
}

// Whether two lists hold the same terms, in any order. Coefficients may differ in their
// last bits: a product of constants folded in another order.
static bool same_terms(const TermList *a, const TermList *b) {
  if (a->overflow || b->overflow || a->n != b->n) return false;
  bool used[MAX_TERMS] = {false};
  for (uint32_t i = 0; i < a->n; i++) {
    bool found = false;
    for (uint32_t j = 0; j < b->n && !found; j++)
      if (!used[j] && same_factors(&a->t[i], &b->t[j]) &&
          fabs(a->t[i].coef - b->t[j].coef) <= 1e-14 * fabs(a->t[i].coef)) {
        used[j] = found = true;
      }
    if (!found) return false;
  }
  return true;
}

// exp(a - lse(a)) (or lse1) printed as softmax(a) (ghostmax(a)) in the pretty styles.
static bool print_softmax(Printer *p, const Expr *x) {
  if (p->style == PRINT_TEXT || x->kind != EX_FN || x->index != EF_EXP) return false;
  const Expr *s = node(p, x->kids[0]);
  if (s->kind != EX_ADD) return false;
  for (uint32_t i = 0; i < s->nkids; i++) {
    const Expr *t = node(p, s->kids[i]);
    if (t->kind != EX_MUL || t->nkids != 2 || !expr_is_const(p->pool, t->kids[0], -1)) continue;
    const Expr *l = node(p, t->kids[1]);
    if (l->kind != EX_LSE && l->kind != EX_LSE1) continue;
    // The other terms must add up to the logits of the lse: as they stand, or with the
    // logits' sums opened up.
    ExprId logits = l->kids[0];
    bool match = s->nkids == 2 && s->kids[1 - i] == logits;
    for (int open = 0; open < 2 && !match; open++) {
      TermList *rest = calloc(2, sizeof *rest), *want = rest + 1;
      if (!rest) return false;
      for (uint32_t j = 0; j < s->nkids; j++)
        if (j != i) add_terms(p, s->kids[j], 1, NULL, 0, false, rest);
      add_terms(p, logits, 1, NULL, 0, open, want);
      match = same_terms(rest, want);
      free(rest);
    }
    if (!match) return false;
    const char *name = l->kind == EX_LSE ? "softmax" : "ghostmax";
    if (latex(p)) sb_printf(p->out, "\\operatorname{%s}", name);
    else sb_append(p->out, name);
    open_paren(p, true);
    print(p, logits, 0);
    close_paren(p, true);
    return true;
  }
  return false;
}

static void print_factor_list(Printer *p, const ExprId *f, uint32_t n, bool negate_exp) {
  for (uint32_t i = 0; i < n; i++) {
    if (i) sb_append(p->out, latex(p) ? " \\, " : " * ");
    const Expr *x = node(p, f[i]);
    double e;
    if (negate_exp && x->kind == EX_POW && node(p, x->kids[1])->kind == EX_CONST &&
        (e = -node(p, x->kids[1])->value) != 1) {
      print(p, x->kids[0], 5);
      sb_append(p->out, latex(p) ? "^{" : "^");
      put_number(p, e);
      if (latex(p)) sb_putc(p->out, '}');
    } else if (negate_exp && x->kind == EX_POW) {
      print(p, x->kids[0], 3);
    } else {
      print(p, f[i], 3);
    }
  }
}

static void print_product(Printer *p, ExprId e, double coef, int outer) {
  const Expr *x = node(p, e);
  if (x->kind == EX_CONST) {
    put_number(p, coef);
    return;
  }
  if (x->kind != EX_MUL) {
    if (coef == 1) {
      print(p, e, outer);
    } else if (coef == -1) {
      // -a @ b is (-a) @ b, the same value: no parentheses needed around products.
      open_paren(p, outer > 2);
      sb_putc(p->out, '-');
      print(p, e, 2);
      close_paren(p, outer > 2);
    } else {
      open_paren(p, outer > 2);
      put_number(p, coef);
      sb_append(p->out, latex(p) ? " \\, " : " * ");
      print(p, e, 3);
      close_paren(p, outer > 2);
    }
    return;
  }
  // Split the factors into numerator and denominator (negative constant powers).
  ExprId num[64], den[64];
  uint32_t nn = 0, nd = 0;
  for (uint32_t i = node(p, x->kids[0])->kind == EX_CONST ? 1 : 0; i < x->nkids && nn < 64 && nd < 64; i++) {
    const Expr *f = node(p, x->kids[i]);
    if (f->kind == EX_POW && node(p, f->kids[1])->kind == EX_CONST && node(p, f->kids[1])->value < 0)
      den[nd++] = x->kids[i];
    else
      num[nn++] = x->kids[i];
  }
  if (nn == 1 && nd == 0 && (coef == 1 || coef == -1)) {
    // A single factor left: print it as if it stood alone.
    open_paren(p, coef == -1 && outer > 2);
    if (coef == -1) sb_putc(p->out, '-');
    print(p, num[0], coef == -1 ? 2 : outer);
    close_paren(p, coef == -1 && outer > 2);
    return;
  }
  bool paren = outer > (coef == -1 ? 3 : 2);
  open_paren(p, paren);
  if (coef == -1) sb_putc(p->out, '-');
  if (latex(p) && nd) {
    if (coef != 1 && coef != -1) {
      put_number(p, coef);
      sb_append(p->out, " \\, ");
    }
    sb_append(p->out, "\\frac{");
    if (nn) print_factor_list(p, num, nn, false);
    else sb_putc(p->out, '1');
    sb_append(p->out, "}{");
    print_factor_list(p, den, nd, true);
    sb_putc(p->out, '}');
  } else {
    bool wrote = false;
    if (coef != 1 && coef != -1) {
      put_number(p, coef);
      wrote = true;
    }
    if (nn) {
      if (wrote) sb_append(p->out, latex(p) ? " \\, " : " * ");
      print_factor_list(p, num, nn, false);
      wrote = true;
    }
    if (!wrote) sb_putc(p->out, '1');
    if (nd) {
      sb_append(p->out, " / ");
      bool group = nd > 1 || node(p, den[0])->kind == EX_POW;
      if (nd == 1) {
        const Expr *f = node(p, den[0]);
        double ex = -node(p, f->kids[1])->value;
        group = false;
        if (ex == 1) print(p, f->kids[0], 5);
        else {
          print(p, f->kids[0], 5);
          sb_putc(p->out, '^');
          put_number(p, ex);
        }
      } else {
        open_paren(p, group);
        print_factor_list(p, den, nd, true);
        close_paren(p, group);
      }
    }
  }
  close_paren(p, paren);
}

static void print_leaf(Printer *p, const Expr *x) {
  const ExprNames *n = p->names;
  switch (x->kind) {
  case EX_CONST: put_number(p, x->value); break;
  case EX_PARAM: put_name(p, n->params[x->index]); break;
  case EX_DIM: put_name(p, n->dims[x->index]); break;
  case EX_STATE:
    if (latex(p)) {
      sb_append(p->out, "x_{");
      put_name(p, n->layers[x->index]);
      sb_putc(p->out, '}');
    } else {
      sb_append(p->out, n->layers[x->index]);
    }
    break;
  case EX_ACT:
    sb_append(p->out, latex(p) ? "g_{" : "g(");
    put_name(p, n->layers[x->index]);
    sb_putc(p->out, latex(p) ? '}' : ')');
    break;
  case EX_INPUT:
    sb_append(p->out, latex(p) ? "I_{" : "I_");
    put_name(p, n->layers[x->index]);
    if (latex(p)) sb_putc(p->out, '}');
    break;
  case EX_WEIGHT: put_name(p, n->weights[x->index]); break;
  case EX_DIR:
    sb_append(p->out, latex(p) ? "d_{" : "d_");
    put_name(p, n->layers[x->index]);
    if (latex(p)) sb_putc(p->out, '}');
    break;
  default: break;
  }
}

static void print(Printer *p, ExprId e, int outer) {
  const Expr *x = node(p, e);
  if (p->names->alias && e != p->root) {
    const char *alias = p->names->alias(p->names->alias_ctx, e);
    if (alias) {
      sb_append(p->out, alias);
      return;
    }
  }
  switch (x->kind) {
  case EX_CONST:
    open_paren(p, x->value < 0 && outer > 2);
    put_number(p, x->value);
    close_paren(p, x->value < 0 && outer > 2);
    return;
  case EX_ADD: print_sum(p, e, outer); return;
  case EX_MUL:
    if (p->style != PRINT_TEXT && x->nkids == 2 && expr_is_const(p->pool, x->kids[0], -1) &&
        node(p, x->kids[1])->kind == EX_ADD) {
      print_sum_signed(p, x->kids[1], outer, true);
      return;
    }
    print_product(p, e, coefficient(p, e), outer);
    return;
  case EX_POW: {
    bool paren = outer > 4;
    open_paren(p, paren);
    print(p, x->kids[0], 5);
    const Expr *q = node(p, x->kids[1]);
    if (latex(p)) {
      sb_append(p->out, "^{");
      print(p, x->kids[1], 0);
      sb_putc(p->out, '}');
    } else {
      sb_putc(p->out, '^');
      if (q->kind == EX_CONST) put_number(p, q->value);
      else print(p, x->kids[1], 4);
    }
    close_paren(p, paren);
    return;
  }
  case EX_FN:
    if (print_softmax(p, x)) return;
    if (latex(p)) {
      static const char *const tex[EF_COUNT] = {
          "\\exp", "\\log", "\\sqrt", "\\left|", "\\tanh", "\\sigma", "\\operatorname{softplus}",
          "\\operatorname{relu}", "\\operatorname{log1p}", "\\operatorname{expm1}", "\\cosh",
          "\\sinh", "\\operatorname{logcosh}", "\\Theta", "\\operatorname{sign}",
          "\\operatorname{sech}^2"};
      if (x->index == EF_ABS) {
        sb_append(p->out, "\\left|");
        print(p, x->kids[0], 0);
        sb_append(p->out, "\\right|");
      } else if (x->index == EF_SQRT) {
        sb_append(p->out, "\\sqrt{");
        print(p, x->kids[0], 0);
        sb_putc(p->out, '}');
      } else {
        call(p, "", tex[x->index], x->kids[0]);
      }
    } else {
      call(p, elem_fn_name[x->index], "", x->kids[0]);
    }
    return;
  case EX_BCAST: print(p, x->kids[0], outer); return;
  case EX_SUM: {
    const Expr *a = node(p, x->kids[0]);
    if (a->kind == EX_MUL && a->nkids == 2 && node(p, a->kids[0])->shape.rank > 0 &&
        node(p, a->kids[1])->shape.rank > 0) {
      if (latex(p)) {
        bool pa = outer > 2;
        open_paren(p, pa);
        print(p, a->kids[0], 5);
        sb_append(p->out, " \\cdot ");
        print(p, a->kids[1], 5);
        close_paren(p, pa);
      } else {
        sb_append(p->out, "dot(");
        print(p, a->kids[0], 0);
        sb_append(p->out, ", ");
        print(p, a->kids[1], 0);
        sb_putc(p->out, ')');
      }
      return;
    }
    if (latex(p)) {
      bool pa = outer > 2;
      open_paren(p, pa);
      sb_append(p->out, "\\sum ");
      print(p, x->kids[0], 5);
      close_paren(p, pa);
    } else {
      call(p, "sum", "", x->kids[0]);
    }
    return;
  }
  case EX_LSE: call(p, "logsumexp", "\\operatorname{lse}", x->kids[0]); return;
  case EX_LSE1:
    if (latex(p)) {
      sb_append(p->out, "\\log\\left(1 + \\sum \\exp");
      open_paren(p, true);
      print(p, x->kids[0], 0);
      close_paren(p, true);
      sb_append(p->out, "\\right)");
    } else {
      sb_append(p->out, "log(1 + sum(exp(");
      print(p, x->kids[0], 0);
      sb_append(p->out, ")))");
    }
    return;
  case EX_MATMUL: {
    bool paren = outer > 2;
    open_paren(p, paren);
    print(p, x->kids[0], 2);
    sb_append(p->out, latex(p) ? " " : " @ ");
    print(p, x->kids[1], 3);
    close_paren(p, paren);
    return;
  }
  case EX_TRANSPOSE:
    print(p, x->kids[0], 5);
    sb_append(p->out, latex(p) ? "^\\top" : "'");
    return;
  case EX_OUTER:
    if (latex(p)) {
      print(p, x->kids[0], 5);
      sb_append(p->out, " ");
      print(p, x->kids[1], 5);
      sb_append(p->out, "^\\top");
    } else {
      sb_append(p->out, "outer(");
      print(p, x->kids[0], 0);
      sb_append(p->out, ", ");
      print(p, x->kids[1], 0);
      sb_putc(p->out, ')');
    }
    return;
  default: print_leaf(p, x); return;
  }
}

void expr_print(StrBuf *out, const ExprPool *pool, ExprId e, const ExprNames *names,
                PrintStyle style) {
  Printer p = {out, pool, names, style, e};
  print(&p, e, 0);
}
