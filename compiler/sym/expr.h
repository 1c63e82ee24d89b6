// The expression DAG: hash-consed, shape-typed scalar, vector and matrix expressions.
//
// Every expression the compiler derives lives in an ExprPool as an immutable node
// addressed by a 32-bit ExprId. Nodes are built only through the constructors below, which
// canonicalise before interning: n-ary sums and products are flattened and their operands
// sorted by a structural order (never by id or address), constants are folded, powers of
// one base are merged, and a/b becomes a * b^-1. Structurally equal expressions are
// therefore the same id, so common subexpressions are shared for free and derivatives of
// a DAG stay DAG-sized. Rewrites that could turn a NaN or an infinity into a number
// (x*0 -> 0, x/x -> 1) are applied only where the operand is known finite: constants,
// params and dims (params are checked finite when set; see docs/symbolic.md).
//
// Shapes are symbolic: a vector [N] or matrix [K, N] names the model's dims by index, so
// a 784-unit layer and a 10^6-unit layer give the same DAG; sizes appear only when the
// expression is evaluated or lowered.
#ifndef DAMC_EXPR_H
#define DAMC_EXPR_H

#include <stdbool.h>
#include <stdint.h>

#include "sym/builtins.h"

typedef uint32_t ExprId;  // 0 is "no expression"

typedef enum {
  // Leaves.
  EX_CONST,   // a real number (scalar)
  EX_PARAM,   // run-time scalar param `index`
  EX_DIM,     // the size of dim `index`, as a scalar
  EX_STATE,   // the state x of layer `index` (vector)
  EX_ACT,     // the activation g of layer `index`, as an independent leaf (vector)
  EX_INPUT,   // the external input I of layer `index` (vector)
  EX_WEIGHT,  // weight `index` (vector or matrix)
  EX_DIR,     // a direction vector `index` (for Hessian-vector products)
  // Elementwise, with scalar operands broadcast.
  EX_ADD,  // n-ary sum
  EX_MUL,  // n-ary product
  EX_POW,  // kids[0] ^ kids[1]
  EX_FN,   // elementwise function `fn` (an ElemFn) of kids[0]
  // Shape changes.
  EX_BCAST,      // scalar kids[0] broadcast to this node's shape
  EX_SUM,        // the sum of all elements of kids[0] (scalar)
  EX_LSE,        // log(sum(exp(kids[0]))), evaluated with the max shift (scalar)
  EX_LSE1,       // log(1 + sum(exp(kids[0]))), the same with a fixed logit 0 (scalar)
  EX_MATMUL,     // kids[0] @ kids[1] with NumPy's rules for vectors and matrices
  EX_TRANSPOSE,  // kids[0]' (matrices only)
  EX_OUTER,      // kids[0] kids[1]' (two vectors to a matrix)
  EX_KIND_COUNT
} ExprKind;

// Elementwise functions: the ELEM rows of builtins.def, each defined there once (the
// user's and the ones derivatives introduce). EF_<ID> equals the builtin FN_<ID>.
typedef enum {
#define ELEM(id, name, body) EF_##id,
#define FN(id, name, kind, arity)
#include "sym/builtins.def"
#undef ELEM
#undef FN
  EF_COUNT
} ElemFn;

extern const char *const elem_fn_name[EF_COUNT];

// The one scalar definition of each function (builtins.def), in its numerically stable
// form: constant folding and the reference interpreter both use it.
double expr_eval_fn(ElemFn fn, double x);

typedef struct {
  int8_t rank;  // 0, 1 or 2
  int dims[2];  // dim indices (meaningful below rank)
} ExprShape;

typedef struct {
  ExprKind kind;
  ExprShape shape;
  uint32_t nkids;
  const ExprId *kids;  // owned by the pool
  double value;        // EX_CONST
  int index;           // leaves: param/dim/layer/weight/direction index; EX_FN: the ElemFn
  uint64_t hash;       // structural hash (does not depend on ids)
  uint64_t states;     // bit i: depends on EX_STATE of layer i (layers >= 64 share bit 63)
  uint64_t acts;       // bit i: depends on EX_ACT of layer i
  bool finite;         // known finite for every binding: constants, params, dims
  // Known never negative for every binding: each element is >= 0 (a zero may be -0) or
  // NaN. Sums, products and sums of elements of such nodes, even powers, any power of such
  // a node, exp, sqrt, abs, relu, softplus, sigmoid, step, cosh, sech2, dims and constants
  // >= 0 (docs/symbolic.md, "Rewrites that keep derivatives finite").
  bool nonneg;
} Expr;

typedef struct ExprPool ExprPool;

ExprPool *expr_pool_new(void);
void expr_pool_free(ExprPool *pool);
const Expr *expr_get(const ExprPool *pool, ExprId id);
uint32_t expr_count(const ExprPool *pool);

// Leaves.
ExprId expr_const(ExprPool *pool, double value);
ExprId expr_leaf(ExprPool *pool, ExprKind kind, int index, ExprShape shape);

// Elementwise arithmetic with broadcasting; operands must be scalars or share one shape
// (the front end has checked this). Canonicalising; see the file comment.
ExprId expr_add(ExprPool *pool, ExprId a, ExprId b);
ExprId expr_sub(ExprPool *pool, ExprId a, ExprId b);
ExprId expr_mul(ExprPool *pool, ExprId a, ExprId b);
ExprId expr_div(ExprPool *pool, ExprId a, ExprId b);
ExprId expr_neg(ExprPool *pool, ExprId a);
ExprId expr_pow(ExprPool *pool, ExprId base, ExprId exponent);
ExprId expr_scale(ExprPool *pool, double c, ExprId a);
ExprId expr_add_n(ExprPool *pool, const ExprId *terms, uint32_t n);
ExprId expr_mul_n(ExprPool *pool, const ExprId *factors, uint32_t n);
ExprId expr_fn(ExprPool *pool, ElemFn fn, ExprId a);

// Shape changes.
ExprId expr_bcast(ExprPool *pool, ExprId scalar, ExprShape shape);
ExprId expr_sum(ExprPool *pool, ExprId a);
ExprId expr_lse(ExprPool *pool, ExprId a);
ExprId expr_lse1(ExprPool *pool, ExprId a);
ExprId expr_matmul(ExprPool *pool, ExprId a, ExprId b);
ExprId expr_transpose(ExprPool *pool, ExprId a);
ExprId expr_outer(ExprPool *pool, ExprId u, ExprId v);
// dot(a, b) = sum(a * b); mean(a) = sum(a) / len(a); norm(a) = sqrt(sum(a^2)).
ExprId expr_dot(ExprPool *pool, ExprId a, ExprId b);

// Shape helpers.
ExprShape expr_shape_scalar(void);
ExprShape expr_shape_vec(int dim);
bool expr_shape_eq(ExprShape a, ExprShape b);
// The number of elements of `shape`, as an expression (1, or a product of EX_DIMs).
ExprId expr_numel(ExprPool *pool, ExprShape shape);

// Structural order used to sort operands: negative, zero (same id) or positive.
int expr_compare(const ExprPool *pool, ExprId a, ExprId b);

// Replaces leaves: `map(kind, index)` returns the replacement of a leaf, or 0 to keep it.
// Rebuilds through the constructors, so the result is canonical. Memoised per call.
typedef ExprId (*ExprLeafMap)(void *ctx, ExprPool *pool, const Expr *leaf);
ExprId expr_substitute(ExprPool *pool, ExprId root, ExprLeafMap map, void *ctx);

// `root` with the leaf `leaf` set to an exact zero, where 0 * y is taken to be 0 for every
// y. Only for expressions known to be affine in the leaf (elimination, docs/theory.md §2),
// where this is the exact value and not an IEEE shortcut.
ExprId expr_at_zero(ExprPool *pool, ExprId root, ExprId leaf);

// True when `e` is the constant `value`.
bool expr_is_const(const ExprPool *pool, ExprId e, double value);

#endif
