// The hash-consed expression DAG and its canonicalising constructors (see expr.h).
#include "sym/expr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "support/arena.h"
#include "support/common.h"

const char *const elem_fn_name[EF_COUNT] = {
#define ELEM(id, name, body) [EF_##id] = name,
#define FN(id, name, kind, arity)
#include "sym/builtins.def"
#undef ELEM
#undef FN
};

struct ExprPool {
  Arena *arena;  // nodes and child arrays: addresses stay valid as the pool grows
  Expr **nodes;  // nodes[id]; nodes[0] is unused
  size_t count, cap;
  ExprId *table;  // open addressing over structural hashes; 0 is empty
  size_t table_cap;
};

ExprPool *expr_pool_new(void) {
  ExprPool *p = xcalloc(1, sizeof *p);
  p->arena = arena_new();
  p->count = 1;
  p->cap = 1024;
  p->nodes = xcalloc(p->cap, sizeof *p->nodes);
  p->table_cap = 2048;
  p->table = xcalloc(p->table_cap, sizeof *p->table);
  return p;
}

void expr_pool_free(ExprPool *pool) {
  if (!pool) return;
  arena_free(pool->arena);
  free(pool->nodes);
  free(pool->table);
  free(pool);
}

const Expr *expr_get(const ExprPool *pool, ExprId id) {
  DAMC_ASSERT(id > 0 && id < pool->count);
  return pool->nodes[id];
}

uint32_t expr_count(const ExprPool *pool) { return (uint32_t)pool->count; }

// ---- Interning ----

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h * 0xFF51AFD7ED558CCDull;
}

static uint64_t value_bits(double v) {
  if (isnan(v)) v = NAN;  // one NaN
  if (v == 0) v = signbit(v) ? -0.0 : 0.0;
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return bits;
}

static bool same_node(const Expr *e, ExprKind kind, ExprShape shape, const ExprId *kids,
                      uint32_t nkids, double value, int index) {
  if (e->kind != kind || e->nkids != nkids || e->index != index ||
      !expr_shape_eq(e->shape, shape) || value_bits(e->value) != value_bits(value))
    return false;
  return nkids == 0 || memcmp(e->kids, kids, nkids * sizeof *kids) == 0;
}

static void rehash(ExprPool *p) {
  size_t cap = p->table_cap * 2;
  ExprId *table = xcalloc(cap, sizeof *table);
  for (size_t id = 1; id < p->count; id++) {
    size_t i = p->nodes[id]->hash & (cap - 1);
    while (table[i]) i = (i + 1) & (cap - 1);
    table[i] = (ExprId)id;
  }
  free(p->table);
  p->table = table;
  p->table_cap = cap;
}

static bool is_even(double v) { return v == 2 * floor(v / 2) && fabs(v) < 1e15; }

// Whether a node of this kind and these kids is never negative (Expr.nonneg).
static bool nonneg_node(const ExprPool *p, ExprKind kind, const ExprId *kids, uint32_t nkids,
                        double value, int index) {
  switch (kind) {
  case EX_CONST: return value >= 0;
  case EX_DIM: return true;
  case EX_ADD:
  case EX_MUL:
  case EX_SUM:
  case EX_BCAST:
  case EX_TRANSPOSE:
  case EX_OUTER:
    for (uint32_t k = 0; k < nkids; k++)
      if (!p->nodes[kids[k]]->nonneg) return false;
    return true;
  case EX_LSE1: return true;  // log(1 + sum(exp z)) >= log(1)
  case EX_POW: {
    const Expr *q = p->nodes[kids[1]];
    return p->nodes[kids[0]]->nonneg || (q->kind == EX_CONST && is_even(q->value));
  }
  case EX_FN:
    switch ((ElemFn)index) {
    case EF_EXP:
    case EF_SQRT:  // NaN below 0
    case EF_ABS:
    case EF_SIGMOID:
    case EF_SOFTPLUS:
    case EF_RELU:
    case EF_COSH:
    case EF_STEP:
    case EF_SECH2:
    case EF_LOGCOSH: return true;  // log cosh z >= log 1
    default: return false;
    }
  default: return false;
  }
}

static ExprId intern(ExprPool *p, ExprKind kind, ExprShape shape, const ExprId *kids,
                     uint32_t nkids, double value, int index) {
  uint64_t h = mix(mix(mix(kind, (uint64_t)index), value_bits(value)), (uint64_t)shape.rank);
  for (int i = 0; i < shape.rank; i++) h = mix(h, (uint64_t)shape.dims[i]);
  for (uint32_t i = 0; i < nkids; i++) h = mix(h, p->nodes[kids[i]]->hash);
  size_t i = h & (p->table_cap - 1);
  for (; p->table[i]; i = (i + 1) & (p->table_cap - 1)) {
    const Expr *e = p->nodes[p->table[i]];
    if (e->hash == h && same_node(e, kind, shape, kids, nkids, value, index)) return p->table[i];
  }
  if (p->count >= UINT32_MAX - 1) damc_internal_error(__FILE__, __LINE__, "expression pool full");
  Expr *e = arena_alloc(p->arena, sizeof *e);
  e->kind = kind;
  e->shape = shape;
  e->nkids = nkids;
  if (nkids) {
    ExprId *copy = arena_alloc(p->arena, nkids * sizeof *copy);
    memcpy(copy, kids, nkids * sizeof *copy);
    e->kids = copy;
  }
  e->value = kind == EX_CONST ? value : 0;
  e->index = index;
  e->hash = h;
  e->finite = kind == EX_CONST ? isfinite(value) : kind == EX_PARAM || kind == EX_DIM;
  if (kind == EX_ADD || kind == EX_MUL) e->finite = true;
  for (uint32_t k = 0; k < nkids; k++) {
    const Expr *kid = p->nodes[kids[k]];
    e->states |= kid->states;
    e->acts |= kid->acts;
    if (!kid->finite) e->finite = false;
  }
  e->nonneg = nonneg_node(p, kind, kids, nkids, value, index);
  int bit = index < 63 ? index : 63;
  if (kind == EX_STATE) e->states |= 1ull << bit;
  if (kind == EX_ACT) e->acts |= 1ull << bit;

  if (p->count == p->cap) grow_array((void **)&p->nodes, &p->cap, p->count + 1, sizeof *p->nodes);
  ExprId id = (ExprId)p->count++;
  p->nodes[id] = e;
  p->table[i] = id;
  if (p->count * 10 > p->table_cap * 7) rehash(p);
  return id;
}

// ---- Shapes ----

ExprShape expr_shape_scalar(void) { return (ExprShape){0, {0, 0}}; }
ExprShape expr_shape_vec(int dim) { return (ExprShape){1, {dim, 0}}; }

bool expr_shape_eq(ExprShape a, ExprShape b) {
  if (a.rank != b.rank) return false;
  for (int i = 0; i < a.rank; i++)
    if (a.dims[i] != b.dims[i]) return false;
  return true;
}

static ExprShape shape_of(const ExprPool *p, ExprId e) { return p->nodes[e]->shape; }
static const Expr *node(const ExprPool *p, ExprId e) { return p->nodes[e]; }

// The shape of an elementwise combination: the first operand that is not a scalar.
static ExprShape common_shape(const ExprPool *p, const ExprId *xs, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (node(p, xs[i])->shape.rank > 0) return node(p, xs[i])->shape;
  return expr_shape_scalar();
}

// ---- Structural order ----

int expr_compare(const ExprPool *pool, ExprId a, ExprId b) {
  if (a == b) return 0;
  const Expr *x = node(pool, a), *y = node(pool, b);
  if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
  if (x->kind == EX_CONST) return x->value < y->value ? -1 : x->value > y->value ? 1 : 0;
  if (x->index != y->index) return x->index < y->index ? -1 : 1;
  if (x->shape.rank != y->shape.rank) return x->shape.rank < y->shape.rank ? -1 : 1;
  for (int i = 0; i < x->shape.rank; i++)
    if (x->shape.dims[i] != y->shape.dims[i]) return x->shape.dims[i] < y->shape.dims[i] ? -1 : 1;
  if (x->nkids != y->nkids) return x->nkids < y->nkids ? -1 : 1;
  for (uint32_t i = 0; i < x->nkids; i++) {
    int c = expr_compare(pool, x->kids[i], y->kids[i]);
    if (c) return c;
  }
  return 0;
}

// Insertion sort: operand lists are short, and qsort would need global state for the pool.
static void sort_ids(const ExprPool *p, ExprId *ids, uint32_t n) {
  for (uint32_t i = 1; i < n; i++) {
    ExprId x = ids[i];
    uint32_t j = i;
    for (; j > 0 && expr_compare(p, ids[j - 1], x) > 0; j--) ids[j] = ids[j - 1];
    ids[j] = x;
  }
}

// ---- Leaves ----

ExprId expr_const(ExprPool *pool, double value) {
  return intern(pool, EX_CONST, expr_shape_scalar(), NULL, 0, value, 0);
}

ExprId expr_leaf(ExprPool *pool, ExprKind kind, int index, ExprShape shape) {
  return intern(pool, kind, shape, NULL, 0, 0, index);
}

bool expr_is_const(const ExprPool *pool, ExprId e, double value) {
  const Expr *x = node(pool, e);
  return x->kind == EX_CONST && x->value == value;
}

static bool const_value(const ExprPool *p, ExprId e, double *v) {
  const Expr *x = node(p, e);
  if (x->kind != EX_CONST) return false;
  *v = x->value;
  return true;
}

ExprId expr_bcast(ExprPool *pool, ExprId scalar, ExprShape shape) {
  if (expr_shape_eq(node(pool, scalar)->shape, shape)) return scalar;
  DAMC_ASSERT(node(pool, scalar)->shape.rank == 0);
  return intern(pool, EX_BCAST, shape, &scalar, 1, 0, 0);
}

// A broadcast operand inside an elementwise operation is just its scalar.
static ExprId unbroadcast(const ExprPool *p, ExprId e) {
  return node(p, e)->kind == EX_BCAST ? node(p, e)->kids[0] : e;
}

// ---- Sums ----

typedef struct {
  ExprId *items;
  size_t n, cap;
} IdVec;

static void idvec_push(IdVec *v, ExprId id) { VEC_PUSH(v->items, v->n, v->cap, id); }

// Splits a term into a constant coefficient and the rest: 3*x -> (3, x); x -> (1, x).
static ExprId split_coefficient(ExprPool *p, ExprId term, double *coef) {
  const Expr *e = node(p, term);
  *coef = 1;
  if (e->kind != EX_MUL || node(p, e->kids[0])->kind != EX_CONST) return term;
  *coef = node(p, e->kids[0])->value;
  if (e->nkids == 2) return e->kids[1];
  return expr_mul_n(p, e->kids + 1, e->nkids - 1);
}

static void flatten(const ExprPool *p, ExprKind kind, const ExprId *xs, uint32_t n, IdVec *out) {
  for (uint32_t i = 0; i < n; i++) {
    ExprId x = unbroadcast(p, xs[i]);
    const Expr *e = node(p, x);
    if (e->kind == kind) flatten(p, kind, e->kids, e->nkids, out);
    else idvec_push(out, x);
  }
}

// The terms of a sum, with c (a + b) opened up into c a + c b: a sum never holds a scaled
// sum, which keeps the form canonical however the terms were grouped (exact for c = -1).
static void flatten_sum(ExprPool *p, const ExprId *xs, uint32_t n, IdVec *out) {
  IdVec flat = {0};
  flatten(p, EX_ADD, xs, n, &flat);
  for (size_t i = 0; i < flat.n; i++) {
    const Expr *e = node(p, flat.items[i]);
    if (e->kind == EX_MUL && e->nkids == 2 && node(p, e->kids[0])->kind == EX_CONST &&
        node(p, e->kids[1])->kind == EX_ADD) {
      double c = node(p, e->kids[0])->value;
      const Expr *sum = node(p, e->kids[1]);
      for (uint32_t k = 0; k < sum->nkids; k++) {
        ExprId t = expr_scale(p, c, node(p, node(p, flat.items[i])->kids[1])->kids[k]);
        flatten(p, EX_ADD, &t, 1, out);
      }
    } else {
      idvec_push(out, flat.items[i]);
    }
  }
  free(flat.items);
}

static void split_scalar_factors(ExprPool *p, ExprId a, ExprId *scalar, ExprId *rest);

// The Legendre term of the sigmoid Lagrangian, x . g - L for L = sum(softplus(c x)) / c:
// for ca a + cb b with a = sum(x sigmoid(c x)) and b = k sum(softplus(c x)) (k a scalar),
// where cb k c = -ca, returns the same sum in the form
// cb k sum(sigmoid(z) softplus(-z) + sigmoid(-z) softplus(z)), z = c x, whose two terms
// have one sign: x sigmoid(c x) - softplus(c x) / c cancels to -e^-z (x + 1/c) for large z.
// Returns 0 when a and b are not such a pair.
static ExprId sigmoid_legendre(ExprPool *p, ExprId a, double ca, ExprId b, double cb) {
  const Expr *ea = node(p, a);
  if (ea->kind != EX_SUM || node(p, ea->kids[0])->kind != EX_MUL) return 0;
  // b = k sum(softplus(z)): the factor sum(softplus(z)) and the product k of the others.
  const Expr *eb = node(p, b);
  uint32_t at_sum = eb->kind == EX_MUL ? eb->nkids : 0;
  for (uint32_t i = 0; i < eb->nkids && eb->kind == EX_MUL; i++)
    if (node(p, eb->kids[i])->kind == EX_SUM) at_sum = i;
  ExprId sum_b = eb->kind == EX_MUL ? (at_sum < eb->nkids ? eb->kids[at_sum] : 0) : b;
  if (!sum_b || node(p, sum_b)->kind != EX_SUM) return 0;
  const Expr *sp = node(p, node(p, sum_b)->kids[0]);
  if (sp->kind != EX_FN || sp->index != EF_SOFTPLUS) return 0;
  ExprId z = sp->kids[0];
  ExprId k = expr_const(p, 1);
  if (eb->kind == EX_MUL) {
    ExprId *others = xmalloc(eb->nkids * sizeof *others);
    uint32_t no = 0;
    for (uint32_t i = 0; i < eb->nkids; i++)
      if (i != at_sum) others[no++] = node(p, b)->kids[i];
    k = expr_mul_n(p, others, no);
    free(others);
  }
  // The factor sigmoid(z) of the product in a, and the rest x.
  const Expr *prod = node(p, ea->kids[0]);
  uint32_t at = prod->nkids;
  for (uint32_t i = 0; i < prod->nkids; i++) {
    const Expr *f = node(p, prod->kids[i]);
    if (f->kind == EX_FN && f->index == EF_SIGMOID && f->kids[0] == z) at = i;
  }
  if (at == prod->nkids) return 0;
  ExprId *rest = xmalloc(prod->nkids * sizeof *rest);
  uint32_t nr = 0;
  for (uint32_t i = 0; i < prod->nkids; i++)
    if (i != at) rest[nr++] = node(p, ea->kids[0])->kids[i];
  ExprId x = expr_mul_n(p, rest, nr);
  free(rest);
  // z = c x with cb k c = -ca.
  ExprId c, zx;
  split_scalar_factors(p, z, &c, &zx);
  if (zx != x || !expr_is_const(p, expr_scale(p, cb, expr_mul(p, k, c)), -ca)) return 0;
  ExprId t1 = expr_mul(p, expr_fn(p, EF_SIGMOID, z), expr_fn(p, EF_SOFTPLUS, expr_neg(p, z)));
  ExprId t2 = expr_mul(p, expr_fn(p, EF_SIGMOID, expr_neg(p, z)), expr_fn(p, EF_SOFTPLUS, z));
  return expr_mul(p, expr_scale(p, cb, k), expr_sum(p, expr_add(p, t1, t2)));
}

ExprId expr_add_n(ExprPool *pool, const ExprId *terms, uint32_t n) {
  ExprShape shape = common_shape(pool, terms, n);
  IdVec flat = {0};
  flatten_sum(pool, terms, n, &flat);
  // Collect like terms: each base with the sum of its coefficients.
  double constant = 0;
  ExprId *bases = xmalloc((flat.n + 1) * sizeof *bases);
  double *coefs = xmalloc((flat.n + 1) * sizeof *coefs);
  uint32_t nb = 0;
  for (size_t i = 0; i < flat.n; i++) {
    double c;
    if (const_value(pool, flat.items[i], &c)) {
      constant += c;
      continue;
    }
    ExprId base = split_coefficient(pool, flat.items[i], &c);
    uint32_t k = 0;
    while (k < nb && bases[k] != base) k++;
    if (k == nb) {
      bases[nb] = base;
      coefs[nb++] = 0;
    }
    coefs[k] += c;
  }
  free(flat.items);
  // The sigmoid Lagrangian's x . g - L in its form without cancellation: the pair is
  // replaced and the sum built again.
  for (uint32_t i = 0; i < nb; i++)
    for (uint32_t j = 0; j < nb; j++) {
      ExprId t = i != j ? sigmoid_legendre(pool, bases[i], coefs[i], bases[j], coefs[j]) : 0;
      if (!t) continue;
      ExprId *rest = xmalloc((nb + 1) * sizeof *rest);
      uint32_t m = 0;
      for (uint32_t k = 0; k < nb; k++)
        if (k != i && k != j) rest[m++] = expr_scale(pool, coefs[k], bases[k]);
      rest[m++] = t;
      rest[m++] = expr_const(pool, constant);
      ExprId r = expr_add_n(pool, rest, m);
      free(rest);
      free(bases);
      free(coefs);
      if (node(pool, r)->shape.rank == 0 && shape.rank > 0) r = expr_bcast(pool, r, shape);
      return r;
    }
  // exp(z) - 1 -> expm1(z): exact where exp(z) - 1 cancels.
  if (constant == -1)
    for (uint32_t k = 0; k < nb; k++) {
      const Expr *b = node(pool, bases[k]);
      if (coefs[k] == 1 && b->kind == EX_FN && b->index == EF_EXP) {
        bases[k] = expr_fn(pool, EF_EXPM1, b->kids[0]);
        constant = 0;
        break;
      }
    }
  IdVec out = {0};
  for (uint32_t k = 0; k < nb; k++) {
    // x - x is 0 only when x is finite (inf - inf is NaN).
    if (coefs[k] == 0 && node(pool, bases[k])->finite) continue;
    idvec_push(&out, coefs[k] == 1 ? bases[k] : expr_scale(pool, coefs[k], bases[k]));
  }
  free(bases);
  free(coefs);
  if (constant != 0 || out.n == 0) idvec_push(&out, expr_const(pool, constant));
  ExprId r;
  if (out.n == 1) {
    r = out.items[0];
  } else {
    sort_ids(pool, out.items, (uint32_t)out.n);
    r = intern(pool, EX_ADD, common_shape(pool, out.items, (uint32_t)out.n), out.items,
               (uint32_t)out.n, 0, 0);
  }
  free(out.items);
  if (node(pool, r)->shape.rank == 0 && shape.rank > 0) r = expr_bcast(pool, r, shape);
  return r;
}

ExprId expr_add(ExprPool *pool, ExprId a, ExprId b) {
  ExprId t[2] = {a, b};
  return expr_add_n(pool, t, 2);
}

ExprId expr_neg(ExprPool *pool, ExprId a) { return expr_scale(pool, -1, a); }

ExprId expr_sub(ExprPool *pool, ExprId a, ExprId b) {
  return expr_add(pool, a, expr_neg(pool, b));
}

ExprId expr_scale(ExprPool *pool, double c, ExprId a) {
  ExprId t[2] = {expr_const(pool, c), a};
  return expr_mul_n(pool, t, 2);
}

// ---- Products ----

// Whether `e` is sqrt(s) of an s >= 0, whose powers are powers of s.
static bool is_sqrt_of_nonneg(const ExprPool *p, ExprId e) {
  const Expr *x = node(p, e);
  return x->kind == EX_FN && x->index == EF_SQRT && node(p, x->kids[0])->nonneg;
}

// Splits a factor into base and constant exponent: x^3 -> (x, 3); x -> (x, 1); and for
// s >= 0, sqrt(s) -> (s, 1/2) and sqrt(s)^k -> (s, k/2), so that s sqrt(s) is s^(3/2).
static ExprId split_power(const ExprPool *p, ExprId f, double *exponent) {
  const Expr *e = node(p, f);
  *exponent = 1;
  if (e->kind == EX_POW && const_value(p, e->kids[1], exponent)) {
    if (!is_sqrt_of_nonneg(p, e->kids[0])) return e->kids[0];
    *exponent /= 2;
    return node(p, e->kids[0])->kids[0];
  }
  *exponent = 1;
  if (is_sqrt_of_nonneg(p, f)) {
    *exponent = 0.5;
    return e->kids[0];
  }
  return f;
}

// step(z) beside relu(z)^p with a constant p > 0 changes nothing: relu(z)^p is already 0
// where step(z) is (the derivative of a rectified power comes out in this form).
static bool step_is_redundant(const ExprPool *p, ExprId base, const ExprId *bases,
                              const double *exps, uint32_t n) {
  const Expr *e = node(p, base);
  if (e->kind != EX_FN || e->index != EF_STEP) return false;
  for (uint32_t k = 0; k < n; k++) {
    const Expr *b = node(p, bases[k]);
    if (b->kind == EX_FN && b->index == EF_RELU && b->kids[0] == e->kids[0] && exps[k] > 0)
      return true;
  }
  return false;
}

ExprId expr_mul_n(ExprPool *pool, const ExprId *factors, uint32_t n) {
  ExprShape shape = common_shape(pool, factors, n);
  IdVec flat = {0};
  flatten(pool, EX_MUL, factors, n, &flat);
  double coef = 1;
  ExprId *bases = xmalloc((flat.n + 1) * sizeof *bases);
  double *exps = xmalloc((flat.n + 1) * sizeof *exps);
  uint32_t nb = 0;
  for (size_t i = 0; i < flat.n; i++) {
    double c;
    if (const_value(pool, flat.items[i], &c)) {
      coef *= c;
      continue;
    }
    double e;
    ExprId base = split_power(pool, flat.items[i], &e);
    uint32_t k = 0;
    // Merging x^a * x^b is exact in meaning when a and b have one sign, or when x is a
    // param, dim or constant (finite and, where it divides, nonzero by the model's own
    // terms). x * x^-1 for a state x stays as it is: it is NaN at 0.
    while (k < nb && !(bases[k] == base &&
                       (exps[k] * e > 0 || node(pool, base)->finite)))
      k++;
    if (k == nb) {
      bases[nb] = base;
      exps[nb++] = 0;
    }
    exps[k] += e;
  }
  free(flat.items);
  IdVec out = {0};
  for (uint32_t k = 0; k < nb; k++) {
    if (exps[k] == 0) continue;
    // 0 * y is 0 for finite y; only factors that may be infinite or NaN stay beside a 0.
    if (coef == 0 && node(pool, bases[k])->finite) continue;
    if (step_is_redundant(pool, bases[k], bases, exps, nb)) continue;
    idvec_push(&out, exps[k] == 1 ? bases[k] : expr_pow(pool, bases[k], expr_const(pool, exps[k])));
  }
  free(bases);
  free(exps);
  ExprId r;
  if (out.n == 0) {
    r = expr_const(pool, coef);
  } else {
    sort_ids(pool, out.items, (uint32_t)out.n);
    if (coef != 1) {
      idvec_push(&out, 0);
      memmove(out.items + 1, out.items, (out.n - 1) * sizeof *out.items);
      out.items[0] = expr_const(pool, coef);
    }
    r = out.n == 1 ? out.items[0]
                   : intern(pool, EX_MUL, common_shape(pool, out.items, (uint32_t)out.n),
                            out.items, (uint32_t)out.n, 0, 0);
  }
  free(out.items);
  if (node(pool, r)->shape.rank == 0 && shape.rank > 0) r = expr_bcast(pool, r, shape);
  return r;
}

ExprId expr_mul(ExprPool *pool, ExprId a, ExprId b) {
  ExprId t[2] = {a, b};
  return expr_mul_n(pool, t, 2);
}

ExprId expr_div(ExprPool *pool, ExprId a, ExprId b) {
  return expr_mul(pool, a, expr_pow(pool, b, expr_const(pool, -1)));
}

static bool is_integer(double v) { return v == floor(v) && fabs(v) < 1e15; }

ExprId expr_pow(ExprPool *pool, ExprId base, ExprId exponent) {
  base = unbroadcast(pool, base);
  ExprShape shape = node(pool, base)->shape;
  if (node(pool, exponent)->shape.rank > shape.rank) shape = node(pool, exponent)->shape;
  exponent = unbroadcast(pool, exponent);
  double e, b;
  if (const_value(pool, exponent, &e)) {
    if (e == 1) return base;
    if (e == 0) return expr_bcast(pool, expr_const(pool, 1), shape);  // pow(x, 0) is 1, even for NaN
    if (const_value(pool, base, &b) && isfinite(pow(b, e))) return expr_const(pool, pow(b, e));
    const Expr *x = node(pool, base);
    // step(z)^k = step(z) for k > 0: it is 0 or 1.
    if (e > 0 && node(pool, base)->kind == EX_FN && node(pool, base)->index == EF_STEP)
      return expr_bcast(pool, base, shape);
    // The rewrites of docs/symbolic.md, "Rewrites that keep derivatives finite": a power
    // of a function that is not differentiable where the power is (or that overflows where
    // the power does not) becomes one power of the inner argument.
    if (x->kind == EX_FN) {
      ExprId z = x->kids[0];
      // abs(z)^k = z^k for an even integer k.
      if (x->index == EF_ABS && is_even(e)) return expr_bcast(pool, expr_pow(pool, z, exponent), shape);
      // exp(z)^p = exp(p z).
      if (x->index == EF_EXP)
        return expr_bcast(pool, expr_fn(pool, EF_EXP, expr_scale(pool, e, z)), shape);
      // sqrt(s)^p = s^(p/2) for s >= 0, when p is even or p > 1 (sqrt(s)^-1 and
      // sqrt(s)^-3 stay: they are the canonical s^(k/2), see below).
      if (x->index == EF_SQRT && node(pool, z)->nonneg && (is_even(e) || e > 1))
        return expr_bcast(pool, expr_pow(pool, z, expr_const(pool, e / 2)), shape);
    }
    double inner;
    if (x->kind == EX_POW && const_value(pool, x->kids[1], &inner)) {
      ExprId y = x->kids[0];
      // (y^a)^b = y^(a b) where both are defined alike: y >= 0, or b an integer and a an
      // integer too (or a b not one: then both are NaN for y < 0).
      if (node(pool, y)->nonneg || (is_integer(e) && (is_integer(inner) || !is_integer(inner * e))))
        return expr_pow(pool, y, expr_const(pool, inner * e));
      // (y^a)^b = |y|^(a b) for an even integer a.
      if (is_even(inner))
        return expr_bcast(pool, expr_pow(pool, expr_fn(pool, EF_ABS, y), expr_const(pool, inner * e)), shape);
    }
    // The canonical s^(k/2) of an s >= 0, k odd: sqrt(s) for k = 1, sqrt(s)^k for k < 0,
    // s^(k/2) for k >= 3 (split_power reads all three as powers of s).
    if (x->nonneg && is_integer(2 * e) && !is_integer(e) && e < 1) {
      ExprId r = expr_fn(pool, EF_SQRT, base);
      if (e != 0.5) r = expr_pow(pool, r, expr_const(pool, 2 * e));
      return expr_bcast(pool, r, shape);
    }
    // (a b)^k = a^k b^k for an integer k: one form for products, with the constant
    // coefficient in front (a / (b c) and a * b^-1 * c^-1 are one node).
    if (x->kind == EX_MUL && is_integer(e)) {
      double c = node(pool, x->kids[0])->kind == EX_CONST ? node(pool, x->kids[0])->value : 1;
      if (isfinite(pow(c, e)) && pow(c, e) != 0) {
        uint32_t n = x->nkids;
        ExprId *f = xmalloc(n * sizeof *f);
        for (uint32_t i = 0; i < n; i++)
          f[i] = node(pool, node(pool, base)->kids[i])->kind == EX_CONST
                     ? expr_const(pool, pow(c, e))
                     : expr_pow(pool, node(pool, base)->kids[i], exponent);
        ExprId r = expr_mul_n(pool, f, n);
        free(f);
        return r;
      }
    }
    // 1 / (1 + exp(-z)) -> sigmoid(z), which never overflows.
    if (e == -1 && x->kind == EX_ADD && x->nkids == 2 && expr_is_const(pool, x->kids[0], 1)) {
      const Expr *t = node(pool, x->kids[1]);
      if (t->kind == EX_FN && t->index == EF_EXP)
        return expr_fn(pool, EF_SIGMOID, expr_neg(pool, t->kids[0]));
    }
  }
  ExprId kids[2] = {base, exponent};
  return intern(pool, EX_POW, shape, kids, 2, 0, 0);
}

// ---- Functions ----


ExprId expr_fn(ExprPool *pool, ElemFn fn, ExprId a) {
  ExprShape shape = node(pool, a)->shape;
  a = unbroadcast(pool, a);
  const Expr *x = node(pool, a);
  double v;
  if (const_value(pool, a, &v)) {
    double r = expr_eval_fn(fn, v);
    if (isfinite(r)) return expr_bcast(pool, expr_const(pool, r), shape);
  }
  // The rewrites of docs/symbolic.md, "Rewrites that keep derivatives finite".
  // abs(s) = relu(s) = s for s >= 0 (NaN stays NaN).
  if ((fn == EF_ABS || fn == EF_RELU) && x->nonneg) return expr_bcast(pool, a, shape);
  // f(abs(z)) = f(z) for the even functions cosh, logcosh and sech2.
  if ((fn == EF_COSH || fn == EF_LOGCOSH || fn == EF_SECH2) && x->kind == EX_FN &&
      x->index == EF_ABS)
    return expr_bcast(pool, expr_fn(pool, fn, x->kids[0]), shape);
  if (fn == EF_SQRT) {
    double q;
    // sqrt(y^a) = y^(a/2) for y >= 0, and |y|^(a/2) for an even integer a.
    if (x->kind == EX_POW && const_value(pool, x->kids[1], &q)) {
      if (node(pool, x->kids[0])->nonneg)
        return expr_bcast(pool, expr_pow(pool, x->kids[0], expr_const(pool, q / 2)), shape);
      if (is_even(q))
        return expr_bcast(pool, expr_pow(pool, expr_fn(pool, EF_ABS, x->kids[0]),
                                         expr_const(pool, q / 2)), shape);
    }
    // sqrt(exp z) = exp(z / 2).
    if (x->kind == EX_FN && x->index == EF_EXP)
      return expr_bcast(pool, expr_fn(pool, EF_EXP, expr_scale(pool, 0.5, x->kids[0])), shape);
  }
  // exp(log s) = s for s >= 0 (exp(log 0) = exp(-inf) = 0).
  if (fn == EF_EXP && x->kind == EX_FN && x->index == EF_LOG && node(pool, x->kids[0])->nonneg)
    return expr_bcast(pool, x->kids[0], shape);
  if (fn == EF_LOG) {
    // log(sigmoid z) = -softplus(-z);  log(sech2 z) = -2 logcosh(z).
    if (x->kind == EX_FN && x->index == EF_SIGMOID)
      return expr_bcast(pool, expr_neg(pool, expr_fn(pool, EF_SOFTPLUS, expr_neg(pool, x->kids[0]))), shape);
    if (x->kind == EX_FN && x->index == EF_SECH2)
      return expr_bcast(pool, expr_scale(pool, -2, expr_fn(pool, EF_LOGCOSH, x->kids[0])), shape);
    // log(cosh z) -> logcosh z;  log(sum(exp z)) -> lse z;  log(exp z) -> z.
    if (x->kind == EX_FN && x->index == EF_COSH)
      return expr_bcast(pool, expr_fn(pool, EF_LOGCOSH, x->kids[0]), shape);
    if (x->kind == EX_FN && x->index == EF_EXP) return expr_bcast(pool, x->kids[0], shape);
    if (x->kind == EX_SUM && node(pool, x->kids[0])->kind == EX_FN &&
        node(pool, x->kids[0])->index == EF_EXP)
      return expr_lse(pool, node(pool, x->kids[0])->kids[0]);
    // log(1 + y): softplus for y = exp z, lse1 for y = sum(exp z), else log1p(y).
    if (x->kind == EX_ADD && x->nkids == 2 && expr_is_const(pool, x->kids[0], 1)) {
      ExprId y = x->kids[1];
      const Expr *t = node(pool, y);
      if (t->kind == EX_FN && t->index == EF_EXP)
        return expr_bcast(pool, expr_fn(pool, EF_SOFTPLUS, t->kids[0]), shape);
      if (t->kind == EX_SUM && node(pool, t->kids[0])->kind == EX_FN &&
          node(pool, t->kids[0])->index == EF_EXP)
        return expr_lse1(pool, node(pool, t->kids[0])->kids[0]);
      return expr_bcast(pool, expr_fn(pool, EF_LOG1P, y), shape);
    }
  }
  return expr_bcast(pool, intern(pool, EX_FN, node(pool, a)->shape, &a, 1, 0, (int)fn), shape);
}

double expr_eval_fn(ElemFn fn, double x) {
#define F(fn) fn
#define LN2 0.69314718055994530942
  switch (fn) {
#define ELEM(id, name, body) \
  case EF_##id:              \
    return body;
#define FN(id, name, kind, arity)
#include "sym/builtins.def"
#undef ELEM
#undef FN
#undef F
#undef LN2
  case EF_COUNT: break;
  }
  damc_unreachable();
}


// ---- Reductions and products of arrays ----

// Splits the factors of a product into the scalar ones and the rest.
static void split_scalar_factors(ExprPool *p, ExprId a, ExprId *scalar, ExprId *rest) {
  const Expr *e = node(p, a);
  if (e->kind != EX_MUL) {
    *scalar = expr_const(p, 1);
    *rest = a;
    return;
  }
  IdVec s = {0}, r = {0};
  for (uint32_t i = 0; i < e->nkids; i++)
    idvec_push(node(p, e->kids[i])->shape.rank == 0 ? &s : &r, e->kids[i]);
  *scalar = expr_mul_n(p, s.items, (uint32_t)s.n);
  *rest = expr_mul_n(p, r.items, (uint32_t)r.n);
  free(s.items);
  free(r.items);
}

// sum(t_1 + ... + t_n) as sum(t_1) + ... + sum(t_n) (a scalar t_k sums to len * t_k), when
// some of these cancel: sum(x - mean(x)) is 0. Returns 0 when nothing cancels, and the sum
// stays as it is. Exact for finite values; the one exception to the IEEE policy besides
// expr_at_zero (docs/symbolic.md): with an infinite or NaN element the original is NaN.
static ExprId sum_cancelling(ExprPool *pool, ExprId a) {
  const Expr *e = node(pool, a);
  uint32_t n = e->nkids;
  ExprId *bases = xmalloc(n * sizeof *bases);
  double *coefs = xmalloc(n * sizeof *coefs);
  uint32_t nb = 0;
  bool cancels = false;
  for (uint32_t k = 0; k < n; k++) {
    ExprId kid = node(pool, a)->kids[k];
    ExprId t = node(pool, kid)->shape.rank == 0
                   ? expr_mul(pool, kid, expr_numel(pool, node(pool, a)->shape))
                   : expr_sum(pool, kid);
    double c;
    ExprId base = split_coefficient(pool, t, &c);
    uint32_t i = 0;
    while (i < nb && bases[i] != base) i++;
    if (i == nb) {
      bases[nb] = base;
      coefs[nb++] = 0;
    }
    coefs[i] += c;
    if (coefs[i] == 0) cancels = true;
  }
  ExprId r = 0;
  if (cancels) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < nb; i++)
      if (coefs[i] != 0) bases[m++] = expr_scale(pool, coefs[i], bases[i]);
    r = m ? expr_add_n(pool, bases, m) : expr_const(pool, 0);
  }
  free(bases);
  free(coefs);
  return r;
}

ExprId expr_sum(ExprPool *pool, ExprId a) {
  const Expr *e = node(pool, a);
  if (e->shape.rank == 0) return a;
  if (e->kind == EX_BCAST) return expr_mul(pool, e->kids[0], expr_numel(pool, e->shape));
  if (e->kind == EX_ADD) {
    ExprId r = sum_cancelling(pool, a);
    if (r) return r;
    e = node(pool, a);
  }
  // sum(c x) = c sum(x) for scalar factors c.
  ExprId scalar, rest;
  split_scalar_factors(pool, a, &scalar, &rest);
  if (!expr_is_const(pool, scalar, 1)) return expr_mul(pool, scalar, expr_sum(pool, rest));
  return intern(pool, EX_SUM, expr_shape_scalar(), &a, 1, 0, 0);
}

ExprId expr_lse(ExprPool *pool, ExprId a) {
  if (node(pool, a)->shape.rank == 0) return a;
  return intern(pool, EX_LSE, expr_shape_scalar(), &a, 1, 0, 0);
}

ExprId expr_lse1(ExprPool *pool, ExprId a) {
  if (node(pool, a)->shape.rank == 0) return expr_fn(pool, EF_SOFTPLUS, a);
  return intern(pool, EX_LSE1, expr_shape_scalar(), &a, 1, 0, 0);
}

ExprId expr_dot(ExprPool *pool, ExprId a, ExprId b) {
  return expr_sum(pool, expr_mul(pool, a, b));
}

ExprId expr_transpose(ExprPool *pool, ExprId a) {
  const Expr *e = node(pool, a);
  if (e->shape.rank < 2) return a;
  if (e->kind == EX_TRANSPOSE) return e->kids[0];
  ExprShape s = {2, {e->shape.dims[1], e->shape.dims[0]}};
  return intern(pool, EX_TRANSPOSE, s, &a, 1, 0, 0);
}

ExprId expr_matmul(ExprPool *pool, ExprId a, ExprId b) {
  ExprShape sa = shape_of(pool, a), sb = shape_of(pool, b);
  DAMC_ASSERT(sa.rank >= 1 && sb.rank >= 1);
  // Pull scalar factors out, so that (beta * W) @ v and beta * (W @ v) are one node.
  ExprId ca, ra, cb, rb;
  split_scalar_factors(pool, a, &ca, &ra);
  split_scalar_factors(pool, b, &cb, &rb);
  ExprId scale = expr_mul(pool, ca, cb);
  if (!expr_is_const(pool, scale, 1))
    return expr_mul(pool, scale, expr_matmul(pool, ra, rb));
  if (sa.rank == 1 && sb.rank == 1) return expr_dot(pool, a, b);
  // v @ W is W' @ v: one form for vector-matrix products.
  if (sa.rank == 1) return expr_matmul(pool, expr_transpose(pool, b), a);
  ExprShape s = {0, {0, 0}};
  s.dims[s.rank++] = sa.dims[0];
  if (sb.rank == 2) s.dims[s.rank++] = sb.dims[1];
  ExprId kids[2] = {a, b};
  return intern(pool, EX_MATMUL, s, kids, 2, 0, 0);
}

ExprId expr_outer(ExprPool *pool, ExprId u, ExprId v) {
  ExprShape s = {2, {shape_of(pool, u).dims[0], shape_of(pool, v).dims[0]}};
  ExprId kids[2] = {u, v};
  return intern(pool, EX_OUTER, s, kids, 2, 0, 0);
}

ExprId expr_numel(ExprPool *pool, ExprShape shape) {
  ExprId n = expr_const(pool, 1);
  for (int i = 0; i < shape.rank; i++)
    n = expr_mul(pool, n, expr_leaf(pool, EX_DIM, shape.dims[i], expr_shape_scalar()));
  return n;
}

// ---- Substitution ----

typedef struct {
  ExprLeafMap map;
  void *ctx;
  ExprId *memo;  // indexed by id; 0 when not yet rebuilt
  uint32_t memo_len;
} Subst;

static ExprId rebuild(ExprPool *p, const Expr *e, const ExprId *k) {
  switch (e->kind) {
  case EX_ADD: return expr_add_n(p, k, e->nkids);
  case EX_MUL: return expr_mul_n(p, k, e->nkids);
  case EX_POW: return expr_pow(p, k[0], k[1]);
  case EX_FN: return expr_fn(p, (ElemFn)e->index, k[0]);
  case EX_BCAST: return expr_bcast(p, k[0], e->shape);
  case EX_SUM: return expr_sum(p, k[0]);
  case EX_LSE: return expr_lse(p, k[0]);
  case EX_LSE1: return expr_lse1(p, k[0]);
  case EX_MATMUL: return expr_matmul(p, k[0], k[1]);
  case EX_TRANSPOSE: return expr_transpose(p, k[0]);
  case EX_OUTER: return expr_outer(p, k[0], k[1]);
  default: damc_unreachable();
  }
}

static ExprId subst_rec(ExprPool *p, Subst *s, ExprId id) {
  if (id < s->memo_len && s->memo[id]) return s->memo[id];
  const Expr *e = p->nodes[id];
  ExprId r = id;
  if (e->nkids == 0) {
    ExprId m = s->map(s->ctx, p, e);
    if (m) r = m;
  } else {
    ExprId *kids = xmalloc(e->nkids * sizeof *kids);
    bool changed = false;
    for (uint32_t i = 0; i < e->nkids; i++) {
      kids[i] = subst_rec(p, s, e->kids[i]);
      changed |= kids[i] != e->kids[i];
    }
    e = p->nodes[id];
    if (changed) r = rebuild(p, e, kids);
    free(kids);
  }
  if (id < s->memo_len) s->memo[id] = r;
  return r;
}

ExprId expr_substitute(ExprPool *pool, ExprId root, ExprLeafMap map, void *ctx) {
  Subst s = {map, ctx, NULL, (uint32_t)pool->count};
  s.memo = xcalloc(s.memo_len, sizeof *s.memo);
  ExprId r = subst_rec(pool, &s, root);
  free(s.memo);
  return r;
}

// ---- Setting a leaf to zero ----

static bool is_zero(const ExprPool *p, ExprId e) {
  e = unbroadcast(p, e);
  return node(p, e)->kind == EX_CONST && node(p, e)->value == 0;
}

static ExprId zero_rec(ExprPool *p, ExprId id, ExprId leaf, ExprId *memo) {
  if (memo[id]) return memo[id];
  const Expr *e = node(p, id);
  ExprShape shape = e->shape;
  ExprId r = id;
  if (id == leaf) {
    r = expr_bcast(p, expr_const(p, 0), shape);
  } else if (e->nkids) {
    uint32_t n = e->nkids;
    ExprId *kids = xmalloc(n * sizeof *kids);
    bool changed = false, any_zero = false;
    for (uint32_t i = 0; i < n; i++) {
      kids[i] = zero_rec(p, node(p, id)->kids[i], leaf, memo);
      changed |= kids[i] != node(p, id)->kids[i];
      any_zero |= is_zero(p, kids[i]);
    }
    e = node(p, id);
    bool annihilates = e->kind == EX_MUL || e->kind == EX_MATMUL || e->kind == EX_OUTER ||
                       e->kind == EX_SUM || e->kind == EX_TRANSPOSE || e->kind == EX_BCAST;
    if (any_zero && annihilates) r = expr_bcast(p, expr_const(p, 0), shape);
    else if (changed) r = rebuild(p, e, kids);
    free(kids);
  }
  memo[id] = r;
  return r;
}

ExprId expr_at_zero(ExprPool *pool, ExprId root, ExprId leaf) {
  ExprId *memo = xcalloc(pool->count, sizeof *memo);
  ExprId r = zero_rec(pool, root, leaf, memo);
  free(memo);
  return r;
}
