// The expressions of params, sizes and numbers alone, evaluated with the values bound.
//
// A param's value is known once it is set (--set, damc_set_param, its default) and a dim's
// once the weights are bound, so every sub-expression made of them alone has a value before
// anything runs. One that is not finite would only show at run time, as a NaN or an
// infinity in some output far from its cause (a Lagrangian `x / c` with c = 0 gives
// g = +Inf): so each is an error at its place in the model, in the words of the front end's
// "division by zero: the divisor is the constant 0", naming the values that make it so.
//
// Walked: every Lagrangian, tau and energy term, with def bodies inlined per call (their
// arguments evaluated where written). At each operation whose operands are known:
//   a / b        b = 0 ("division by zero"; also when only b is known: x / 0 is never
//                finite), at the divisor
//   a ^ b        a = 0 and b < 0, or a < 0 and b not an integer, at the power
//   log, sqrt,   the argument outside the domain (log x > 0, sqrt x >= 0, log1p x > -1),
//   log1p        at the call
//   anything     a result that overflows (exp(c) with c = 1000), at the operation
// An operation with an operand that depends on a state is left to run time (docs/cli.md):
// x ^ p with p = -1 is finite wherever x is not 0. A place in the body of a prelude def is
// shown at the call of it in the model; one in a user def, with the calls that led there.
// Each place is reported once. Expressions the compiler derives from these (the derivative
// of c^x holds log(c)) are not walked: they too are checked at run time.
#ifndef DAMC_PARAM_DOMAIN_H
#define DAMC_PARAM_DOMAIN_H

#include <stdint.h>

#include "front/ast.h"
#include "support/strbuf.h"

// Reports to `sink`, as located errors, each expression of the Lagrangians, taus and energy
// terms of `m` that is not finite with the params `params` and the sizes `dims` (every one
// bound; the model's sources registered in `sink`). Returns the number of errors.
int param_domain_check(const Model *m, const double *params, const int64_t *dims,
                       DiagSink *sink);

// Appends " with the params as set (eps = 0, N = 2)": the params, then the dims, that `e`
// (of the model's top level, not inside a def body) depends on, through the defs it calls,
// with their values; nothing when it depends on none.
void param_values_text(const Model *m, const AstExpr *e, const double *params,
                       const int64_t *dims, StrBuf *out);

#endif
