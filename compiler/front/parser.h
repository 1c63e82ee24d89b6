// Private interface between the bison grammar, the flex scanner and parse.c.
//
// Nothing outside the front end includes this file: the rest of the compiler sees only
// front.h. The scanner reaches the Parser through yyextra, the grammar through its
// %parse-param. Grammar actions are one-line calls to the ast_* builders below.
#ifndef DAMC_PARSER_H
#define DAMC_PARSER_H

#include "front/ast.h"
#include "support/common.h"
#include "support/session.h"

typedef struct {
  char ch;  // '(' '[' or '{'
  Span span;
} OpenDelim;

typedef struct Parser {
  Session *s;
  uint32_t file;
  bool is_prelude;
  const char *text;  // the source, for token text in messages
  uint32_t offset;   // running byte offset of the scanner
  AstDecl *decls;
  AstDecl **tail;
  OpenDelim *open;  // delimiters opened and not yet closed, innermost last
  size_t nopen, open_cap;
  const char *lex_error;  // message for the invalid token just returned, or NULL
  Span open_comment;      // where the comment being skipped began
  bool too_deep;          // an expression passed AST_MAX_DEPTH: the parse stops there
  Span semi;              // the last ';' read, and how many delimiters were open before it
  size_t open_before_semi;
  // Recovery from a syntax error: a braced block met before the next ';' is skipped whole
  // (`skip_armed`), and `skip_depth` counts the braces of the block being skipped.
  bool skip_armed;
  int skip_depth;
} Parser;

// Expressions deeper than this are rejected, so that recursive walks of the tree cannot
// exhaust the stack on adversarial input (no real model comes near it; a sum of 1000 terms
// written out is 1000 deep). The parse stops at the first such expression.
enum { AST_MAX_DEPTH = 1000 };


AstExpr *ast_num(Parser *p, Span span, double value);
AstExpr *ast_name(Parser *p, Span span, const char *name);
AstExpr *ast_call(Parser *p, Span span, const char *callee, AstArg *args);
AstExpr *ast_act(Parser *p, Span span, const char *layer);
AstExpr *ast_unary(Parser *p, Span span, AstExprKind kind, AstExpr *operand);
AstExpr *ast_binary(Parser *p, Span span, AstBinOp op, Span op_span, AstExpr *lhs,
                    AstExpr *rhs);
AstArg *ast_arg(Parser *p, const char *name, Span name_span, AstExpr *value);
AstArg *ast_arg_append(AstArg *list, AstArg *arg);
AstSize *ast_size(Parser *p, Span span, const char *name, double value);
AstSize *ast_size_append(AstSize *list, AstSize *size);
AstParam *ast_param(Parser *p, Span span, const char *name, AstExpr *default_value);
AstParam *ast_param_append(AstParam *list, AstParam *param);

AstDecl *ast_decl(Parser *p, DeclKind kind, Span span, const char *name, Span name_span);
void ast_add_decl(Parser *p, AstDecl *d);
// Layer bodies: the items are collected into a fresh decl, then the header fills it.
AstDecl *ast_layer_body(Parser *p);
void ast_layer_set_L(Parser *p, AstDecl *layer, Span item_span, AstExpr *e);
void ast_layer_set_tau(Parser *p, AstDecl *layer, Span item_span, AstExpr *e);

const char *parser_intern(Parser *p, const char *s, size_t n);
// A formatted string in the session arena (for scanner messages).
__attribute__((format(printf, 2, 3))) const char *parser_format(Parser *p, const char *fmt,
                                                               ...);
void parser_open(Parser *p, char ch, Span span);
void parser_close(Parser *p, char ch);
void parser_end_statement(Parser *p, Span semi);
// Whether the scanner should return `token`, or swallow it as part of a skipped block.
bool parser_keep_token(Parser *p, int token);

// Syntax errors (called from the grammar): an INVALID token from the scanner, a token the
// grammar cannot take (`found` and `expected` are user-facing token names), and bison's
// own failures (its stack limit, reached only by absurd nesting).
void parser_report_invalid(Parser *p, Span loc);
void parser_report_syntax(Parser *p, Span loc, const char *found, const char **expected,
                          int nexpected);
void parser_report_exhausted(Parser *p, Span loc, const char *msg);

#endif
