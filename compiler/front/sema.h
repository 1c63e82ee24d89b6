// Semantic analysis: resolves names and checks a parsed program, producing a Model.
//
// Checks, each reported at the place that causes it: unknown and duplicate names (with a
// "did you mean" suggestion), names that shadow built-in functions, arity and named
// arguments, shapes at the operator that mixes them, Lagrangians that are not scalars or
// that use another layer's state, weights or g(), states inside `energy`, synapse weights
// whose shape does not match their layers (self-synapses must be square), `tau` that is
// negative or not a scalar constant of params, dims that can never be bound, and recursive
// `def`s. A def is shape-polymorphic: its names are resolved once, its shapes per call.
// A model without errors then gets the static convexity proof of every Lagrangian
// (front/convexity.h): its verdict in each ModelLayer, and warnings for Lagrangians proven
// not convex and for parameters of prelude Lagrangians out of range.
#ifndef DAMC_SEMA_H
#define DAMC_SEMA_H

#include "front/ast.h"
#include "support/session.h"

// Checks `decls` (the prelude's and the user's, in order). Returns the model, or NULL
// after reporting errors. `default_name` names the model when it has no `model` statement.
Model *sema_check(Session *s, AstDecl *decls, const char *default_name);

// "[K, N]", "[N]" or "scalar" for a shape given as dim indices (rank 0, 1 or 2).
void sema_shape_text(const Model *m, int rank, const int *dims, char *buf, size_t size);

#endif
