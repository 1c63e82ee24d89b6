// Differentiation on the expression DAG, at the level of vectors and matrices.
//
// diff_grad is reverse accumulation: one walk from a scalar root down to a vector leaf
// (a layer's state x_A, or an activation leaf g(A)), giving every node an adjoint of its own
// shape, with the rules of docs/symbolic.md. The derivative rules produce the stable forms
// (softmax as exp(a - lse a), tanh' as sech2, sigmoid' as sigmoid(z) sigmoid(-z)).
//
// diff_jvp is forward accumulation of a directional derivative: the tangent of a root
// along `dir` (an expression of the leaf's shape). It is the Jacobian-vector product of
// any expression, and the Hessian-vector product of a Lagrangian when applied to g.
//
// diff_jacobian gives the Jacobian of a vector expression of x in the closed algebra
// J = diag(d) + sum_k u_k v_k' (docs/symbolic.md §3), or reports that it is dense. For a
// Lagrangian's gradient this is the Hessian with its structure: additive Lagrangians give a
// pure diagonal, softmax a diagonal plus one rank-one term, layer norm two.
#ifndef DAMC_DIFF_H
#define DAMC_DIFF_H

#include "sym/expr.h"

// The gradient of the scalar `root` with respect to the leaf `leaf` (same shape as leaf).
ExprId diff_grad(ExprPool *pool, ExprId root, ExprId leaf);

// The derivative of `root` along `dir` at the leaf `leaf` (same shape as root).
ExprId diff_jvp(ExprPool *pool, ExprId root, ExprId leaf, ExprId dir);

enum { JAC_MAX_TERMS = 6 };

typedef struct {
  bool dense;      // no closed structure was found; use diff_jvp for products
  ExprId diag;     // vector (or broadcast scalar) d; 0 for a zero diagonal
  int nterms;      // rank-one terms u_k v_k'
  ExprId u[JAC_MAX_TERMS], v[JAC_MAX_TERMS];
} StructJac;

// The Jacobian of the vector `e` with respect to the vector leaf `leaf` (same shape).
StructJac diff_jacobian(ExprPool *pool, ExprId e, ExprId leaf);

// J v for a structured Jacobian: d * v + sum_k u_k (v_k . v), O(n (1 + k)).
ExprId diff_jac_apply(ExprPool *pool, const StructJac *j, ExprId v);

#endif
