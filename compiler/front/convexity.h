// The static convexity proof of each layer's Lagrangian, and the parameter rules of the
// catalogue (docs/theory.md §4.2.1 and §4.2.5).
//
// Over the checked syntax tree of a Lagrangian (def bodies inlined with their arguments, as
// derive/network.c's to_dag binds them; params by value, so that a sign can be known), every
// sub-expression gets a curvature (constant, affine, convex, concave or unknown), a sign, and
// whether it is certainly not convex or certainly not concave. The composition rules are
// those of disciplined convex programming (the DCP rules of CVX and CVXPY: sums and
// nonnegative multiples of convex terms; convex nondecreasing functions of convex terms and
// convex nonincreasing functions of concave terms), with three patterns DCP leaves to the
// user (a log-sum-exp written out, the Euclidean norm of an affine map written as a square
// root, an even power of an affine term) and the prelude's catalogue for what the rules do
// not reach (lagr_rexp). The verdict for a layer is
//   CONVEX_PROVEN     the rules, or the catalogue, prove L convex;
//   NONCONVEX_PROVEN  L is certainly not convex (a negative multiple of a strictly convex
//                     term, an odd power of a non-constant affine term, tanh of one, ...),
//                     with the sub-expression to blame and a one-line reason;
//   CONVEXITY_UNKNOWN neither (the numerical check of §4.2 decides), with the place where
//                     the rules stopped.
// Proofs of non-convexity along the gauge direction of a vector Lagrangian (-logsumexp(x))
// need a layer of two neurons or more; a layer whose size is not known yet (a dim bound when
// the weights are loaded) is taken to have at least two.
//
// sema_check runs it on every model without errors, with the params' defaults, stores the
// result in each ModelLayer and warns about NONCONVEX_PROVEN and about broken parameter
// rules. `damc check` calls convexity_analyze again with the values given by --set.
#ifndef DAMC_CONVEXITY_H
#define DAMC_CONVEXITY_H

#include <stdbool.h>
#include <stdint.h>

#include "front/ast.h"
#include "support/session.h"

enum { CONVEXITY_REASON_SIZE = 200, CONVEXITY_MAX_ISSUES = 8 };

typedef struct {
  Convexity verdict;
  // NONCONVEX_PROVEN: the sub-expression to blame; CONVEXITY_UNKNOWN: where the rules
  // stopped; CONVEX_PROVEN: the whole Lagrangian. A place inside a prelude def is given as
  // the call of that def in the user's file.
  Span span;
  // When `span` lies in the body of a user def: the outermost call of it in the Lagrangian.
  bool has_call;
  Span call;
  const char *call_name;
  char reason[CONVEXITY_REASON_SIZE];  // one line, no final period
  int nissues;  // broken parameter rules of prelude calls, in order, without repeats
  ParamRuleIssue issues[CONVEXITY_MAX_ISSUES];
} ConvexityResult;

// Analyses the Lagrangian of layer `layer` of a checked model. `params` gives every param's
// value (NaN: unknown), NULL for the defaults; `dims` every dim's size (-1: unknown), NULL
// for the model's. `sink` supplies the source text quoted in reasons (may be NULL).
void convexity_analyze(const Model *m, int layer, const double *params, const int64_t *dims,
                       const DiagSink *sink, ConvexityResult *out);

// Runs convexity_analyze on every layer with the defaults, stores the verdicts in the
// ModelLayers, and warns (in source order, under the caller's diag_defer) about Lagrangians
// proven not convex and about broken parameter rules.
void convexity_check_model(Session *s, Model *m);

// "convex (proven)", "not convex (proven)" or "unknown", for the report of damc check.
const char *convexity_verdict_text(Convexity v);

#endif
