// Printing expressions: as model-language text (minimal parentheses, deterministic, and
// reparsable where the expression uses only the language's functions) or as LaTeX.
#ifndef DAMC_EXPR_PRINT_H
#define DAMC_EXPR_PRINT_H

#include "support/strbuf.h"
#include "sym/expr.h"

// Names of the leaves, by index. The direction of layer A prints as d_A.
typedef struct {
  const char *const *params;
  const char *const *dims;
  const char *const *layers;
  const char *const *weights;
  // Optional: a name to print instead of a whole subexpression (e.g. the buffer that holds
  // it in a kernel plan), or NULL to print the subexpression. Never applied to the root.
  const char *(*alias)(const void *ctx, ExprId e);
  const void *alias_ctx;
} ExprNames;

typedef enum {
  PRINT_TEXT,    // the model language; reparses to the same node
  PRINT_PRETTY,  // the language plus softmax(...) and ghostmax(...) for the fused forms
  PRINT_LATEX,   // LaTeX mathematics
} PrintStyle;

void expr_print(StrBuf *out, const ExprPool *pool, ExprId e, const ExprNames *names,
                PrintStyle style);

#endif
