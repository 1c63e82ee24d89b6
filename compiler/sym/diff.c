// Reverse and forward differentiation and structured Jacobians (see diff.h).
#include "sym/diff.h"

#include <stdlib.h>
#include <string.h>

#include "support/common.h"

// Whether `e` depends on the leaf `leaf` (a state or activation leaf, by the node masks;
// other leaves by identity).
static bool depends(const ExprPool *p, ExprId e, ExprId leaf) {
  const Expr *x = expr_get(p, e), *l = expr_get(p, leaf);
  int bit = l->index < 63 ? l->index : 63;
  if (l->kind == EX_STATE) return x->states >> bit & 1;
  if (l->kind == EX_ACT) return x->acts >> bit & 1;
  if (e == leaf) return true;
  for (uint32_t i = 0; i < x->nkids; i++)
    if (depends(p, x->kids[i], leaf)) return true;
  return false;
}

static ExprId zero_like(ExprPool *p, ExprId e) {
  return expr_bcast(p, expr_const(p, 0), expr_get(p, e)->shape);
}

// The derivative f'(a) of an elementwise function, with `fa` = f(a) to reuse.
static ExprId fn_derivative(ExprPool *p, ElemFn fn, ExprId a, ExprId fa) {
  switch (fn) {
  case EF_EXP: return fa;
  case EF_LOG: return expr_pow(p, a, expr_const(p, -1));
  case EF_SQRT: return expr_scale(p, 0.5, expr_pow(p, fa, expr_const(p, -1)));
  case EF_ABS: return expr_fn(p, EF_SIGN, a);
#ifdef DAMC_FAULT_TANH_DERIVATIVE
  // A test build only (tests/CMakeLists.txt, damc_fault): the rule off by 1e-3, which damc
  // check's derivative check must catch.
  case EF_TANH: return expr_scale(p, 1.001, expr_fn(p, EF_SECH2, a));
#else
  case EF_TANH: return expr_fn(p, EF_SECH2, a);
#endif
  case EF_SIGMOID:
    // sigmoid(a) sigmoid(-a), never sigmoid (1 - sigmoid), which cancels (docs/theory.md §3.3).
    return expr_mul(p, fa, expr_fn(p, EF_SIGMOID, expr_neg(p, a)));
  case EF_SOFTPLUS: return expr_fn(p, EF_SIGMOID, a);
  case EF_RELU: return expr_fn(p, EF_STEP, a);
  case EF_LOG1P: return expr_pow(p, expr_add(p, expr_const(p, 1), a), expr_const(p, -1));
  case EF_EXPM1: return expr_fn(p, EF_EXP, a);
  case EF_COSH: return expr_fn(p, EF_SINH, a);
  case EF_SINH: return expr_fn(p, EF_COSH, a);
  case EF_LOGCOSH: return expr_fn(p, EF_TANH, a);
  case EF_STEP:
  case EF_SIGN: return expr_const(p, 0);  // zero almost everywhere
  case EF_SECH2: return expr_scale(p, -2, expr_mul(p, fa, expr_fn(p, EF_TANH, a)));
  case EF_COUNT: break;
  }
  damc_unreachable();
}

// Whether `e` is an exact zero of the chain rule: 0, or a product with the coefficient 0
// (0 * y stays beside a y that may be infinite, expr.c). A path whose partial derivative is
// such a zero adds nothing to a derivative (docs/symbolic.md, "Derivatives").
static bool is_zero(const ExprPool *p, ExprId e) {
  const Expr *x = expr_get(p, e);
  if (x->kind == EX_BCAST) x = expr_get(p, x->kids[0]);
  if (x->kind == EX_MUL) x = expr_get(p, x->kids[0]);
  return x->kind == EX_CONST && x->value == 0;
}

// The power rule through the base, for n = f(z)^q with a constant q (n = sqrt(f(z)) with
// q = 1/2) where q f^(q-1) f'(z) is 0 * inf at a point where the power is smooth: at an
// overflow or underflow of f, or where relu(z) is 0. Gives the partial dn/dz in a form
// without that product (docs/symbolic.md, "Rewrites that keep derivatives finite") and
// sets *z; returns 0 when the ordinary rule applies.
static ExprId power_partial(ExprPool *p, ExprId n, ExprId *z) {
  const Expr *e = expr_get(p, n);
  double q;
  ExprId a;
  if (e->kind == EX_POW && expr_get(p, e->kids[1])->kind == EX_CONST) {
    a = e->kids[0];
    q = expr_get(p, e->kids[1])->value;
  } else if (e->kind == EX_FN && e->index == EF_SQRT) {
    a = e->kids[0];
    q = 0.5;
  } else {
    return 0;
  }
  const Expr *f = expr_get(p, a);
  if (f->kind != EX_FN) return 0;
  *z = f->kids[0];
  ExprId r;  // the logarithmic derivative f'/f, bounded where it is used
  switch ((ElemFn)f->index) {
  case EF_SIGMOID:
    if (q >= 1) return 0;
    r = expr_fn(p, EF_SIGMOID, expr_neg(p, *z));
    break;
  case EF_COSH:
    if (q >= 1) return 0;
    r = expr_fn(p, EF_TANH, *z);
    break;
  case EF_SECH2:
    if (q >= 1) return 0;
    r = expr_scale(p, -2, expr_fn(p, EF_TANH, *z));
    break;
  case EF_SINH:  // coth z has a pole at 0, where sinh^q has one for q < 0
    if (q >= 0) return 0;
    r = expr_pow(p, expr_fn(p, EF_TANH, *z), expr_const(p, -1));
    break;
  case EF_EXPM1:  // e^z / expm1(z) = -1 / expm1(-z)
    if (q >= 0) return 0;
    r = expr_neg(p, expr_pow(p, expr_fn(p, EF_EXPM1, expr_neg(p, *z)), expr_const(p, -1)));
    break;
  case EF_RELU: {
    // q step(z) (relu(z) + step(-z))^(q-1): relu(z)^(q-1) where z > 0, 0 where z < 0.
    if (q >= 1) return 0;
    ExprId w = expr_add(p, a, expr_fn(p, EF_STEP, expr_neg(p, *z)));
    return expr_mul(p, expr_scale(p, q, expr_fn(p, EF_STEP, *z)),
                    expr_pow(p, w, expr_const(p, q - 1)));
  }
  default: return 0;
  }
  return expr_mul(p, expr_scale(p, q, n), r);
}

// Sums `x` down to the shape of `target` when an operand was broadcast.
static ExprId reduce_to(ExprPool *p, ExprId x, ExprId target) {
  if (expr_get(p, target)->shape.rank == 0 && expr_get(p, x)->shape.rank > 0)
    return expr_sum(p, x);
  return x;
}

// Product of all kids of `e` but kid `skip`.
static ExprId product_except(ExprPool *p, const Expr *e, uint32_t skip) {
  ExprId *f = xmalloc(e->nkids * sizeof *f);
  uint32_t n = 0;
  for (uint32_t i = 0; i < e->nkids; i++)
    if (i != skip) f[n++] = e->kids[i];
  ExprId r = expr_mul_n(p, f, n);
  free(f);
  return r;
}

// ---- Reverse mode ----

typedef struct {
  ExprId *order;  // nodes depending on the leaf, children before parents
  size_t n, cap;
  uint8_t *seen;
} Topo;

static void topo_visit(const ExprPool *p, Topo *t, ExprId e, ExprId leaf) {
  if (t->seen[e] || !depends(p, e, leaf)) return;
  t->seen[e] = 1;
  const Expr *x = expr_get(p, e);
  for (uint32_t i = 0; i < x->nkids; i++) topo_visit(p, t, x->kids[i], leaf);
  VEC_PUSH(t->order, t->n, t->cap, e);
}

ExprId diff_grad(ExprPool *p, ExprId root, ExprId leaf) {
  DAMC_ASSERT(expr_get(p, root)->shape.rank == 0);
  Topo t = {0};
  uint32_t count = expr_count(p);
  t.seen = xcalloc(count, 1);
  topo_visit(p, &t, root, leaf);
  free(t.seen);
  if (t.n == 0) {
    free(t.order);
    return zero_like(p, leaf);
  }
  // Adjoints of the nodes that existed before the walk (new nodes are never on the path).
  ExprId *adj = xcalloc(count, sizeof *adj);
  adj[root] = expr_const(p, 1);
  for (size_t i = t.n; i-- > 0;) {
    ExprId n = t.order[i];
    ExprId bar = adj[n];
    if (!bar || n == leaf || is_zero(p, bar)) continue;
    ExprId z, part = power_partial(p, n, &z);
    if (part) {
      ExprId c = reduce_to(p, expr_mul(p, bar, part), z);
      if (!is_zero(p, c)) adj[z] = adj[z] ? expr_add(p, adj[z], c) : c;
      continue;
    }
    const Expr *e = expr_get(p, n);
    ExprId contrib[2] = {0, 0};  // for two-kid nodes; n-ary nodes add directly
    bool d0 = e->nkids > 0 && depends(p, e->kids[0], leaf);
    bool d1 = e->nkids > 1 && depends(p, e->kids[1], leaf);
    switch (e->kind) {
    case EX_ADD:
    case EX_MUL:
      for (uint32_t k = 0; k < e->nkids; k++) {
        ExprId kid = expr_get(p, n)->kids[k];
        if (!depends(p, kid, leaf)) continue;
        ExprId c = e->kind == EX_ADD ? bar : expr_mul(p, bar, product_except(p, expr_get(p, n), k));
        c = reduce_to(p, c, kid);
        if (is_zero(p, c)) continue;
        adj[kid] = adj[kid] ? expr_add(p, adj[kid], c) : c;
      }
      continue;
    case EX_POW: {
      ExprId a = e->kids[0], q = e->kids[1];
      if (d0)
        contrib[0] = expr_mul(p, bar, expr_mul(p, q, expr_pow(p, a, expr_sub(p, q, expr_const(p, 1)))));
      if (d1) contrib[1] = expr_mul(p, bar, expr_mul(p, n, expr_fn(p, EF_LOG, a)));
      break;
    }
    case EX_FN: {
      // A derivative that is identically 0 (step, sign) contributes no term at all.
      ExprId d = fn_derivative(p, (ElemFn)e->index, e->kids[0], n);
      if (!expr_is_const(p, d, 0)) contrib[0] = expr_mul(p, bar, d);
      break;
    }
    case EX_BCAST: contrib[0] = expr_sum(p, bar); break;
    case EX_SUM: contrib[0] = expr_bcast(p, bar, expr_get(p, e->kids[0])->shape); break;
    case EX_LSE:
    case EX_LSE1:
      // The softmax exp(a - lse(a)): every exponent is <= 0, so it cannot overflow.
      contrib[0] = expr_mul(p, bar, expr_fn(p, EF_EXP, expr_sub(p, e->kids[0], n)));
      break;
    case EX_MATMUL: {
      ExprId a = e->kids[0], b = e->kids[1];
      if (d0)
        contrib[0] = expr_get(p, b)->shape.rank == 1 ? expr_outer(p, bar, b)
                                                     : expr_matmul(p, bar, expr_transpose(p, b));
      if (d1) contrib[1] = expr_matmul(p, expr_transpose(p, a), bar);
      break;
    }
    case EX_TRANSPOSE: contrib[0] = expr_transpose(p, bar); break;
    case EX_OUTER:
      if (d0) contrib[0] = expr_matmul(p, bar, e->kids[1]);
      if (d1) contrib[1] = expr_matmul(p, expr_transpose(p, bar), e->kids[0]);
      break;
    default: damc_unreachable();
    }
    e = expr_get(p, n);
    for (uint32_t k = 0; k < e->nkids && k < 2; k++) {
      ExprId kid = e->kids[k];
      if (!contrib[k] || !depends(p, kid, leaf)) continue;
      ExprId c = reduce_to(p, contrib[k], kid);
      if (is_zero(p, c)) continue;
      adj[kid] = adj[kid] ? expr_add(p, adj[kid], c) : c;
    }
  }
  ExprId r = adj[leaf] ? adj[leaf] : zero_like(p, leaf);
  if (expr_get(p, r)->shape.rank == 0 && expr_get(p, leaf)->shape.rank > 0)
    r = expr_bcast(p, r, expr_get(p, leaf)->shape);
  free(adj);
  free(t.order);
  return r;
}

// ---- Forward mode ----

typedef struct {
  ExprId leaf, dir;
  ExprId *memo;
  uint32_t memo_len;
} Jvp;

static ExprId jvp_rec(ExprPool *p, Jvp *j, ExprId n) {
  if (!depends(p, n, j->leaf)) return 0;  // 0: a zero tangent
  if (n == j->leaf) return j->dir;
  if (n < j->memo_len && j->memo[n]) return j->memo[n];
  ExprId z, part = power_partial(p, n, &z);
  if (part) {
    ExprId dz = jvp_rec(p, j, z);
    ExprId r = dz ? expr_mul(p, dz, part) : 0;
    if (r && is_zero(p, r)) r = 0;
    if (r && expr_get(p, r)->shape.rank < expr_get(p, n)->shape.rank)
      r = expr_bcast(p, r, expr_get(p, n)->shape);
    if (n < j->memo_len) j->memo[n] = r;
    return r;
  }
  const Expr *e = expr_get(p, n);
  uint32_t nk = e->nkids;
  ExprId *dk = xmalloc((nk + 1) * sizeof *dk);
  for (uint32_t k = 0; k < nk; k++) dk[k] = jvp_rec(p, j, expr_get(p, n)->kids[k]);
  e = expr_get(p, n);
  ExprId r = 0;
  switch (e->kind) {
  case EX_ADD: {
    ExprId *terms = xmalloc((nk + 1) * sizeof *terms);
    uint32_t m = 0;
    for (uint32_t k = 0; k < nk; k++)
      if (dk[k]) terms[m++] = dk[k];
    r = expr_add_n(p, terms, m);
    free(terms);
    break;
  }
  case EX_MUL:
    for (uint32_t k = 0; k < nk; k++) {
      if (!dk[k]) continue;
      ExprId t = expr_mul(p, dk[k], product_except(p, expr_get(p, n), k));
      r = r ? expr_add(p, r, t) : t;
    }
    break;
  case EX_POW: {
    ExprId a = e->kids[0], q = e->kids[1];
    if (dk[0])
      r = expr_mul(p, dk[0], expr_mul(p, q, expr_pow(p, a, expr_sub(p, q, expr_const(p, 1)))));
    if (dk[1]) {
      ExprId t = expr_mul(p, dk[1], expr_mul(p, n, expr_fn(p, EF_LOG, a)));
      r = r ? expr_add(p, r, t) : t;
    }
    break;
  }
  // A kid whose tangent is an exact zero (0: the chain rule dropped it) gives none.
  case EX_FN: {
    if (!dk[0]) break;
    ExprId d = fn_derivative(p, (ElemFn)e->index, e->kids[0], n);
    r = expr_is_const(p, d, 0) ? 0 : expr_mul(p, dk[0], d);
    break;
  }
  case EX_BCAST: r = dk[0] ? expr_bcast(p, dk[0], e->shape) : 0; break;
  case EX_SUM: r = dk[0] ? expr_sum(p, dk[0]) : 0; break;
  case EX_LSE:
  case EX_LSE1:
    r = dk[0] ? expr_dot(p, dk[0], expr_fn(p, EF_EXP, expr_sub(p, e->kids[0], n))) : 0;
    break;
  case EX_MATMUL:
    if (dk[0]) r = expr_matmul(p, dk[0], e->kids[1]);
    if (dk[1]) {
      ExprId t = expr_matmul(p, e->kids[0], dk[1]);
      r = r ? expr_add(p, r, t) : t;
    }
    break;
  case EX_TRANSPOSE: r = dk[0] ? expr_transpose(p, dk[0]) : 0; break;
  case EX_OUTER:
    if (dk[0]) r = expr_outer(p, dk[0], e->kids[1]);
    if (dk[1]) {
      ExprId t = expr_outer(p, e->kids[0], dk[1]);
      r = r ? expr_add(p, r, t) : t;
    }
    break;
  default: damc_unreachable();
  }
  free(dk);
  if (r && is_zero(p, r)) r = 0;
  if (r && expr_get(p, r)->shape.rank < expr_get(p, n)->shape.rank)
    r = expr_bcast(p, r, expr_get(p, n)->shape);
  if (n < j->memo_len) j->memo[n] = r;
  return r;
}

ExprId diff_jvp(ExprPool *p, ExprId root, ExprId leaf, ExprId dir) {
  Jvp j = {leaf, dir, NULL, expr_count(p)};
  j.memo = xcalloc(j.memo_len, sizeof *j.memo);
  ExprId r = jvp_rec(p, &j, root);
  free(j.memo);
  return r ? r : zero_like(p, root);
}

// ---- Structured Jacobians ----

static StructJac jac_zero(void) { return (StructJac){false, 0, 0, {0}, {0}}; }
static StructJac jac_dense(void) { return (StructJac){true, 0, 0, {0}, {0}}; }

// Splits a vector into a scalar factor and the rest: (c v) -> (c, v); a broadcast scalar c
// -> (c, 0), where 0 stands for the vector of ones.
static ExprId split_scalar(ExprPool *p, ExprId e, ExprId *vec) {
  const Expr *x = expr_get(p, e);
  if (x->kind == EX_BCAST) {
    *vec = 0;
    return x->kids[0];
  }
  if (x->shape.rank == 0) {
    *vec = 0;
    return e;
  }
  if (x->kind != EX_MUL) {
    *vec = e;
    return expr_const(p, 1);
  }
  ExprId *s = xmalloc(x->nkids * sizeof *s), *r = xmalloc(x->nkids * sizeof *r);
  uint32_t ns = 0, nr = 0;
  for (uint32_t i = 0; i < x->nkids; i++) {
    ExprId k = expr_get(p, e)->kids[i];
    if (expr_get(p, k)->shape.rank == 0) s[ns++] = k;
    else r[nr++] = k;
  }
  ExprId scalar = expr_mul_n(p, s, ns);
  *vec = expr_mul_n(p, r, nr);
  free(s);
  free(r);
  return scalar;
}

// Adds the rank-one term u v' to `j`, merging it with a term whose u or v is the same vector
// up to a scalar factor: a u v' + b u w' = u (a v + b w)'. So the rank is that of the
// distinct directions (softplus(logsumexp z) is diagonal plus rank one, not two).
static void jac_add_term(ExprPool *p, StructJac *j, ExprId u, ExprId v) {
  if (j->dense || is_zero(p, u) || is_zero(p, v)) return;
  for (int k = 0; k < j->nterms; k++) {
    if (j->v[k] == v) {
      j->u[k] = expr_add(p, j->u[k], u);
      return;
    }
    if (j->u[k] == u) {
      j->v[k] = expr_add(p, j->v[k], v);
      return;
    }
  }
  ExprShape shape = expr_get(p, u)->shape;
  for (int k = 0; k < j->nterms; k++) {
    ExprId ru, rk, sv, sk;
    ExprId a = split_scalar(p, u, &ru), b = split_scalar(p, j->u[k], &rk);
    if (ru == rk) {
      j->u[k] = ru ? ru : expr_bcast(p, expr_const(p, 1), shape);
      j->v[k] = expr_add(p, expr_mul(p, b, j->v[k]), expr_mul(p, a, v));
      return;
    }
    a = split_scalar(p, v, &sv);
    b = split_scalar(p, j->v[k], &sk);
    if (sv == sk) {
      j->v[k] = sv ? sv : expr_bcast(p, expr_const(p, 1), shape);
      j->u[k] = expr_add(p, expr_mul(p, b, j->u[k]), expr_mul(p, a, u));
      return;
    }
  }
  if (j->nterms == JAC_MAX_TERMS) {
    *j = jac_dense();
    return;
  }
  j->u[j->nterms] = u;
  j->v[j->nterms++] = v;
}

static void jac_accumulate(ExprPool *p, StructJac *acc, const StructJac *b) {
  if (acc->dense || b->dense) {
    *acc = jac_dense();
    return;
  }
  if (b->diag && !is_zero(p, b->diag))
    acc->diag = acc->diag ? expr_add(p, acc->diag, b->diag) : b->diag;
  for (int k = 0; k < b->nterms; k++) jac_add_term(p, acc, b->u[k], b->v[k]);
}

// diag(d) J: the algebra closes because diag(d) diag(e) = diag(d e) and
// diag(d) u v' = (d u) v'.
static StructJac jac_scale_rows(ExprPool *p, ExprId d, StructJac j) {
  if (j.dense) return j;
  if (j.diag) j.diag = expr_mul(p, d, j.diag);
  for (int k = 0; k < j.nterms; k++) j.u[k] = expr_mul(p, d, j.u[k]);
  return j;
}

static StructJac jacobian(ExprPool *p, ExprId e, ExprId leaf);

// The Jacobian contribution of an operand `a` of an elementwise node, with partial
// derivative `partial` (elementwise): a vector operand gives diag(partial) J(a), a scalar
// one the rank-one term partial grad(a)'.
static StructJac operand_jacobian(ExprPool *p, ExprId a, ExprId partial, ExprId leaf,
                                  ExprShape shape) {
  if (!depends(p, a, leaf) || is_zero(p, partial)) return jac_zero();
  if (expr_get(p, a)->shape.rank == 0) {
    StructJac j = jac_zero();
    jac_add_term(p, &j, expr_bcast(p, partial, shape), diff_grad(p, a, leaf));
    return j;
  }
  return jac_scale_rows(p, partial, jacobian(p, a, leaf));
}

static StructJac jacobian(ExprPool *p, ExprId n, ExprId leaf) {
  if (!depends(p, n, leaf)) return jac_zero();
  if (n == leaf) return (StructJac){false, expr_const(p, 1), 0, {0}, {0}};
  const Expr *e = expr_get(p, n);
  ExprShape shape = e->shape;
  ExprId z, part = power_partial(p, n, &z);
  if (part) return operand_jacobian(p, z, part, leaf, shape);
  e = expr_get(p, n);
  StructJac acc = jac_zero();
  switch (e->kind) {
  case EX_ADD:
  case EX_MUL:
    for (uint32_t k = 0; k < e->nkids; k++) {
      ExprId kid = expr_get(p, n)->kids[k];
      ExprId partial = e->kind == EX_ADD ? expr_const(p, 1) : product_except(p, expr_get(p, n), k);
      StructJac j = operand_jacobian(p, kid, partial, leaf, shape);
      jac_accumulate(p, &acc, &j);
    }
    return acc;
  case EX_POW: {
    ExprId a = e->kids[0], q = e->kids[1];
    ExprId da = expr_mul(p, q, expr_pow(p, a, expr_sub(p, q, expr_const(p, 1))));
    ExprId dq = expr_mul(p, n, expr_fn(p, EF_LOG, a));
    StructJac ja = operand_jacobian(p, a, da, leaf, shape);
    StructJac jq = operand_jacobian(p, q, dq, leaf, shape);
    jac_accumulate(p, &ja, &jq);
    return ja;
  }
  case EX_FN:
    return operand_jacobian(p, e->kids[0], fn_derivative(p, (ElemFn)e->index, e->kids[0], n),
                            leaf, shape);
  case EX_BCAST: return operand_jacobian(p, e->kids[0], expr_const(p, 1), leaf, shape);
  default:
    return jac_dense();  // products with weights and the like: no closed structure
  }
}

StructJac diff_jacobian(ExprPool *p, ExprId e, ExprId leaf) {
  DAMC_ASSERT(expr_shape_eq(expr_get(p, e)->shape, expr_get(p, leaf)->shape));
  return jacobian(p, e, leaf);
}

ExprId diff_jac_apply(ExprPool *p, const StructJac *j, ExprId v) {
  DAMC_ASSERT(!j->dense);
  ExprId r = j->diag ? expr_mul(p, j->diag, v) : zero_like(p, v);
  for (int k = 0; k < j->nterms; k++)
    r = expr_add(p, r, expr_mul(p, j->u[k], expr_dot(p, j->v[k], v)));
  return r;
}
