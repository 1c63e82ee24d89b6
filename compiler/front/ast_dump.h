// Printing a checked model back as text, every expression fully parenthesised, so tests
// can see exactly how a file was parsed (precedence, associativity, named arguments).
#ifndef DAMC_AST_DUMP_H
#define DAMC_AST_DUMP_H

#include "front/ast.h"
#include "support/strbuf.h"

void ast_dump_expr(StrBuf *out, const AstExpr *e);
// The user's declarations of `m` (not the prelude's), one per line, in source order.
void ast_dump_model(StrBuf *out, const Model *m);

#endif
