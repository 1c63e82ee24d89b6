// Unit tests of the expression DAG: interning is idempotent, the canonical form does not
// depend on the order of construction, simplification never changes a value (random
// expressions evaluated naively against the interpreter), and the IEEE policy holds
// (x*0 and x-x survive for a state, fold for a param).
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sym/eval.h"
#include "sym/expr_print.h"
#include "sym/expr.h"

enum { N = 4, TREES = 400, MAXK = 3 };

// A random expression as plain data, evaluated without the DAG (the independent reference).
typedef enum { S_X, S_P, S_C, S_ADD, S_MUL, S_FN, S_POW, S_DIV, S_SUM, S_LSE, S_DOT } SpecOp;

typedef struct Spec {
  SpecOp op;
  int nk;
  struct Spec *k[MAXK];
  double c;   // constant, or the exponent of S_POW
  ElemFn fn;  // S_FN
  bool scalar;
} Spec;

static uint64_t rng = 12345;
static double uniform(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng >> 11) / 9007199254740992.0;
}
static int pick(int n) { return (int)(uniform() * n) % n; }

static Spec *gen(int depth) {
  Spec *s = calloc(1, sizeof *s);
  int op = depth <= 0 ? pick(3) : 3 + pick(8);
  s->op = (SpecOp)op;
  switch (s->op) {
  case S_X: break;
  case S_P: s->scalar = true; break;
  case S_C: s->c = (double)(pick(9) - 4) / 2; s->scalar = true; break;
  case S_ADD:
  case S_MUL:
    s->nk = 2 + pick(2);
    s->scalar = true;
    for (int i = 0; i < s->nk; i++) {
      s->k[i] = gen(depth - 1);
      s->scalar &= s->k[i]->scalar;
    }
    break;
  case S_FN: {
    static const ElemFn safe[] = {EF_TANH, EF_SIGMOID, EF_SOFTPLUS, EF_LOGCOSH, EF_ABS, EF_RELU};
    s->fn = safe[pick(6)];
    s->nk = 1;
    s->k[0] = gen(depth - 1);
    s->scalar = s->k[0]->scalar;
    break;
  }
  case S_POW:
    s->c = pick(3) + 1;
    s->nk = 1;
    s->k[0] = gen(depth - 1);
    s->scalar = s->k[0]->scalar;
    break;
  case S_DIV:  // a / (1 + b^2): never a division by zero
    s->nk = 2;
    s->k[0] = gen(depth - 1);
    s->k[1] = gen(depth - 1);
    s->scalar = s->k[0]->scalar && s->k[1]->scalar;
    break;
  case S_SUM:
  case S_LSE:
  case S_DOT:
    s->nk = s->op == S_DOT ? 2 : 1;
    for (int i = 0; i < s->nk; i++) s->k[i] = gen(depth - 1);
    s->scalar = true;
    break;
  }
  return s;
}

static void spec_free(Spec *s) {
  for (int i = 0; i < s->nk; i++) spec_free(s->k[i]);
  free(s);
}

// Naive evaluation: every node as N values (a scalar repeated).
static void spec_eval(const Spec *s, const double *x, double p, double *out) {
  double k[MAXK][N];
  for (int i = 0; i < s->nk; i++) spec_eval(s->k[i], x, p, k[i]);
  for (int j = 0; j < N; j++) {
    switch (s->op) {
    case S_X: out[j] = x[j]; break;
    case S_P: out[j] = p; break;
    case S_C: out[j] = s->c; break;
    case S_ADD:
      out[j] = 0;
      for (int i = 0; i < s->nk; i++) out[j] += k[i][j];
      break;
    case S_MUL:
      out[j] = 1;
      for (int i = 0; i < s->nk; i++) out[j] *= k[i][j];
      break;
    case S_FN: out[j] = expr_eval_fn(s->fn, k[0][j]); break;
    case S_POW: out[j] = pow(k[0][j], s->c); break;
    case S_DIV: out[j] = k[0][j] / (1 + k[1][j] * k[1][j]); break;
    default: break;
    }
  }
  if (s->op == S_SUM || s->op == S_LSE || s->op == S_DOT) {
    double acc = 0, m = -INFINITY;
    int n = s->k[0]->scalar && (s->op != S_DOT || s->k[1]->scalar) ? 1 : N;
    if (s->op == S_LSE) {
      for (int j = 0; j < n; j++) m = fmax(m, k[0][j]);
      for (int j = 0; j < n; j++) acc += exp(k[0][j] - m);
      acc = m + log(acc);
    } else {
      for (int j = 0; j < n; j++) acc += s->op == S_DOT ? k[0][j] * k[1][j] : k[0][j];
      if (s->op == S_SUM && n == 1) acc *= N;  // the sum of a broadcast scalar
    }
    for (int j = 0; j < N; j++) out[j] = acc;
  }
}

// Builds the spec; with `shuffle`, commutative operands in a random order and n-ary sums
// and products as random binary nests.
static ExprId build(ExprPool *pool, const Spec *s, bool shuffle) {
  ExprId k[MAXK];
  for (int i = 0; i < s->nk; i++) k[i] = build(pool, s->k[i], shuffle);
  if (shuffle && (s->op == S_ADD || s->op == S_MUL))
    for (int i = s->nk - 1; i > 0; i--) {
      int j = pick(i + 1);
      ExprId t = k[i];
      k[i] = k[j];
      k[j] = t;
    }
  switch (s->op) {
  case S_X: return expr_leaf(pool, EX_STATE, 0, expr_shape_vec(0));
  case S_P: return expr_leaf(pool, EX_PARAM, 0, expr_shape_scalar());
  case S_C: return expr_const(pool, s->c);
  case S_ADD:
  case S_MUL: {
    if (!shuffle || s->nk == 2) return s->op == S_ADD ? expr_add_n(pool, k, (uint32_t)s->nk)
                                                      : expr_mul_n(pool, k, (uint32_t)s->nk);
    ExprId acc = k[0];
    for (int i = 1; i < s->nk; i++)
      acc = s->op == S_ADD ? expr_add(pool, acc, k[i]) : expr_mul(pool, acc, k[i]);
    return acc;
  }
  case S_FN: return expr_fn(pool, s->fn, k[0]);
  case S_POW: return expr_pow(pool, k[0], expr_const(pool, s->c));
  case S_DIV:
    return expr_div(pool, k[0], expr_add(pool, expr_const(pool, 1), expr_mul(pool, k[1], k[1])));
  case S_SUM:  // a scalar operand is broadcast to the vector first
    return expr_sum(pool, s->k[0]->scalar ? expr_bcast(pool, k[0], expr_shape_vec(0)) : k[0]);
  case S_LSE: return expr_lse(pool, k[0]);  // of a scalar: the scalar itself
  case S_DOT: {
    ExprId a = k[0], b = k[1];
    if (s->k[0]->scalar && s->k[1]->scalar) return expr_mul(pool, a, b);
    if (s->k[0]->scalar) a = expr_bcast(pool, a, expr_shape_vec(0));
    if (s->k[1]->scalar) b = expr_bcast(pool, b, expr_shape_vec(0));
    return expr_dot(pool, a, b);
  }
  }
  return 0;
}

static double magnitude(const double *v, int n) {
  double m = 0;
  for (int i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
  return m;
}

static void test_random_trees(void) {
  int64_t dims[1] = {N};
  double params[1] = {0.7};
  double x[N] = {0.3, -1.2, 0.8, 2.1};
  const double *states[1] = {x};
  EvalEnv env = {dims, params, states, NULL, NULL, NULL, NULL};
  int mismatches = 0;
  for (int t = 0; t < TREES; t++) {
    ExprPool *pool = expr_pool_new();
    Spec *s = gen(1 + pick(4));
    ExprId a = build(pool, s, false);
    ExprId b = build(pool, s, false);
    CHECK_EQ(a, b);  // interning is idempotent
    ExprId c = build(pool, s, true);
    if (c != a) {
      mismatches++;
      const char *params_n[] = {"p"}, *layers_n[] = {"x"}, *dims_n[] = {"N"};
      ExprNames names = {params_n, dims_n, layers_n, NULL, NULL, NULL};
      StrBuf sa = {0}, sc = {0};
      expr_print(&sa, pool, a, &names, PRINT_TEXT);
      expr_print(&sc, pool, c, &names, PRINT_TEXT);
      fprintf(stderr, "tree %d builds as\n  %s\nand, shuffled, as\n  %s\n", t, sb_str(&sa), sb_str(&sc));
      sb_free(&sa);
      sb_free(&sc);
    }
    CHECK_EQ(c, a);  // order of construction does not matter
    double want[N], got[N];
    spec_eval(s, x, params[0], want);
    Evaluator *ev = eval_new(pool, &env);
    int64_t n;
    const double *v = eval_node(ev, a, &n);
    for (int j = 0; j < N; j++) got[j] = v[n == 1 ? 0 : j];
    eval_free(ev);
    double scale = fmax(magnitude(want, N), 1);
    for (int j = 0; j < N; j++) {
      bool ok = fabs(got[j] - want[j]) <= 1e-12 * scale || (isnan(got[j]) && isnan(want[j]));
      if (!ok) fprintf(stderr, "tree %d: %.17g vs %.17g\n", t, got[j], want[j]);
      CHECK(ok);
    }
    spec_free(s);
    expr_pool_free(pool);
  }
  printf("%d random trees: %d built differently when shuffled\n", TREES, mismatches);
}

static void test_ieee_policy(void) {
  ExprPool *p = expr_pool_new();
  ExprId x = expr_leaf(p, EX_STATE, 0, expr_shape_vec(0));
  ExprId beta = expr_leaf(p, EX_PARAM, 0, expr_shape_scalar());
  ExprId zero = expr_const(p, 0);
  // x * 0 and x - x keep NaN and inf: they are not folded for a state.
  CHECK(!expr_is_const(p, expr_mul(p, x, zero), 0));
  CHECK(expr_get(p, expr_sub(p, x, x))->kind != EX_BCAST);
  // For a param (finite by contract) they fold.
  CHECK(expr_is_const(p, expr_mul(p, beta, zero), 0));
  CHECK(expr_is_const(p, expr_sub(p, beta, beta), 0));
  // beta * (1 / beta) cancels; x * (1 / x) does not (it is NaN at 0).
  CHECK(expr_is_const(p, expr_mul(p, beta, expr_div(p, expr_const(p, 1), beta)), 1));
  CHECK(!expr_is_const(p, expr_mul(p, x, expr_div(p, expr_const(p, 1), x)), 1));
  // x + x is 2x; -(-x) is x; x^1 is x; x^0 is 1 (pow(x, 0) is 1 even for NaN).
  CHECK_EQ(expr_add(p, x, x), expr_scale(p, 2, x));
  CHECK_EQ(expr_neg(p, expr_neg(p, x)), x);
  CHECK_EQ(expr_pow(p, x, expr_const(p, 1)), x);
  // Folding never produces an infinity or a NaN: log(0) stays symbolic.
  CHECK(expr_get(p, expr_fn(p, EF_LOG, zero))->kind == EX_FN);
  CHECK(expr_get(p, expr_div(p, expr_const(p, 1), zero))->kind != EX_CONST);
  // Stable rewrites.
  ExprId one = expr_const(p, 1);
  CHECK_EQ(expr_fn(p, EF_LOG, expr_add(p, one, expr_fn(p, EF_EXP, x))), expr_fn(p, EF_SOFTPLUS, x));
  CHECK_EQ(expr_fn(p, EF_LOG, expr_fn(p, EF_COSH, x)), expr_fn(p, EF_LOGCOSH, x));
  CHECK_EQ(expr_sub(p, expr_fn(p, EF_EXP, x), one), expr_fn(p, EF_EXPM1, x));
  CHECK_EQ(expr_fn(p, EF_LOG, expr_sum(p, expr_fn(p, EF_EXP, x))), expr_lse(p, x));
  CHECK_EQ(expr_div(p, one, expr_add(p, one, expr_fn(p, EF_EXP, expr_neg(p, x)))),
           expr_fn(p, EF_SIGMOID, x));
  CHECK_EQ(expr_fn(p, EF_LOG, expr_add(p, one, x)), expr_fn(p, EF_LOG1P, x));
  expr_pool_free(p);
}

int main(void) {
  test_random_trees();
  test_ieee_policy();
  return check_report("test_sym_expr");
}
