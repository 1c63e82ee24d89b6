// Parsing: the glue between the generated scanner and parser, the AST builders the grammar
// actions call, and the wording of syntax errors.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dam.tab.h"
#include "dam.yy.h"
#include "front/front.h"
#include "front/parser.h"
#include "support/strbuf.h"

const char *parser_intern(Parser *p, const char *s, size_t n) {
  return intern_n(p->s->names, s, n);
}

const char *parser_format(Parser *p, const char *fmt, ...) {
  StrBuf sb = {0};
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(&sb, fmt, ap);
  va_end(ap);
  const char *out = arena_strndup(p->s->arena, sb_str(&sb), sb.len);
  sb_free(&sb);
  return out;
}

// ---- Open delimiters, for "to match this '('" notes ----

void parser_open(Parser *p, char ch, Span span) {
  VEC_PUSH(p->open, p->nopen, p->open_cap, ((OpenDelim){ch, span}));
}

void parser_close(Parser *p, char ch) {
  // Pop up to and including the nearest matching opener; an unmatched closer pops nothing.
  for (size_t i = p->nopen; i-- > 0;)
    if (p->open[i].ch == ch) {
      p->nopen = i;
      return;
    }
}

// A ';' cannot stand inside parentheses or brackets, so it ends any left open. The count
// before it is kept: when the ';' itself is the unexpected token, those are still open.
void parser_end_statement(Parser *p, Span semi) {
  p->semi = semi;
  p->open_before_semi = p->nopen;
  while (p->nopen && p->open[p->nopen - 1].ch != '{') p->nopen--;
}

// After a syntax error the parser resynchronises at the next ';' or '}'. A '{' met first
// belongs to the broken statement (a layer whose header is wrong), so its whole block is
// skipped and only its closing '}' is returned: otherwise the ';'s inside the block would
// resynchronise the parser in the middle of the block and its '}' would be a second error.
bool parser_keep_token(Parser *p, int token) {
  if (p->skip_depth) {
    if (token == LBRACE) p->skip_depth++;
    else if (token == RBRACE && --p->skip_depth == 0) return true;
    return false;
  }
  if (p->skip_armed) {
    if (token == LBRACE) {
      p->skip_armed = false;
      p->skip_depth = 1;
      return false;
    }
    if (token == SEMI || token == RBRACE) p->skip_armed = false;
  }
  return true;
}

// Arms the skipping after an error whose unexpected token is `found` at `loc`.
static void arm_recovery(Parser *p, Span loc) {
  const char *t = p->text + loc.begin;
  if (loc.end == loc.begin) return;  // end of input
  if (*t == '{') p->skip_depth = 1;  // the unexpected token opened the block to skip
  else if (*t != ';' && *t != '}') p->skip_armed = true;
}

// ---- AST builders ----

static AstExpr *new_expr(Parser *p, AstExprKind kind, Span span, int depth) {
  AstExpr *e = ARENA_NEW(p->s->arena, AstExpr);
  e->kind = kind;
  e->span = span;
  e->depth = depth;
  if (depth > AST_MAX_DEPTH && !p->too_deep) {
    p->too_deep = true;
    diag_error(p->s->diag, span, "expression is nested too deeply (more than %d levels); "
               "damc stops reading the file here", AST_MAX_DEPTH);
  }
  return e;
}

AstExpr *ast_num(Parser *p, Span span, double value) {
  AstExpr *e = new_expr(p, AST_NUM, span, 1);
  e->num = value;
  return e;
}

AstExpr *ast_name(Parser *p, Span span, const char *name) {
  AstExpr *e = new_expr(p, AST_NAME, span, 1);
  e->name.name = name;
  return e;
}

AstExpr *ast_call(Parser *p, Span span, const char *callee, AstArg *args) {
  int depth = 0, n = 0;
  for (AstArg *a = args; a; a = a->next, n++)
    if (a->value->depth > depth) depth = a->value->depth;
  AstExpr *e = new_expr(p, AST_CALL, span, depth + 1);
  e->name.name = callee;
  e->args = args;
  e->nargs = n;
  return e;
}

AstExpr *ast_act(Parser *p, Span span, const char *layer) {
  AstExpr *e = new_expr(p, AST_ACT, span, 1);
  e->name.name = layer;
  return e;
}

AstExpr *ast_unary(Parser *p, Span span, AstExprKind kind, AstExpr *operand) {
  AstExpr *e = new_expr(p, kind, span, operand->depth + 1);
  e->lhs = operand;
  return e;
}

AstExpr *ast_binary(Parser *p, Span span, AstBinOp op, Span op_span, AstExpr *lhs,
                    AstExpr *rhs) {
  // A chain continues through its left operand without nesting deeper (AstExpr.depth).
  int depth = lhs->depth > rhs->depth + 1 ? lhs->depth : rhs->depth + 1;
  AstExpr *e = new_expr(p, AST_BINARY, span, depth);
  e->op = op;
  e->op_span = op_span;
  e->lhs = lhs;
  e->rhs = rhs;
  return e;
}

AstExpr **ast_spine(const AstExpr *e, size_t *n) {
  AstExpr **spine = NULL;
  size_t cap = 0;
  *n = 0;
  for (; e->kind == AST_BINARY; e = e->lhs) VEC_PUSH(spine, *n, cap, (AstExpr *)e);
  return spine;
}

AstArg *ast_arg(Parser *p, const char *name, Span name_span, AstExpr *value) {
  AstArg *a = ARENA_NEW(p->s->arena, AstArg);
  a->name = name;
  a->name_span = name_span;
  a->value = value;
  return a;
}

// Appending walks the list: argument, size and parameter lists are a handful long.
#define APPEND(type, list, item)                                               \
  do {                                                                         \
    type **link = &(list);                                                     \
    while (*link) link = &(*link)->next;                                       \
    *link = (item);                                                            \
  } while (0)

AstArg *ast_arg_append(AstArg *list, AstArg *arg) {
  APPEND(AstArg, list, arg);
  return list;
}

AstSize *ast_size(Parser *p, Span span, const char *name, double value) {
  AstSize *s = ARENA_NEW(p->s->arena, AstSize);
  s->name = name;
  s->value = value;
  s->span = span;
  return s;
}

AstSize *ast_size_append(AstSize *list, AstSize *size) {
  APPEND(AstSize, list, size);
  return list;
}

AstParam *ast_param(Parser *p, Span span, const char *name, AstExpr *default_value) {
  AstParam *a = ARENA_NEW(p->s->arena, AstParam);
  a->name = name;
  a->span = span;
  a->default_value = default_value;
  return a;
}

AstParam *ast_param_append(AstParam *list, AstParam *param) {
  APPEND(AstParam, list, param);
  return list;
}

AstDecl *ast_decl(Parser *p, DeclKind kind, Span span, const char *name, Span name_span) {
  AstDecl *d = ARENA_NEW(p->s->arena, AstDecl);
  d->kind = kind;
  d->span = span;
  d->name = name;
  d->name_span = name_span;
  return d;
}

void ast_add_decl(Parser *p, AstDecl *d) {
  d->in_prelude = p->is_prelude;
  for (AstSize *s = d->shape; s; s = s->next) d->rank++;
  for (AstParam *a = d->params; a; a = a->next) d->nparams++;
  *p->tail = d;
  p->tail = &d->next;
}

AstDecl *ast_layer_body(Parser *p) {
  Span none = {p->file, p->offset, p->offset};
  return ast_decl(p, DECL_LAYER, none, NULL, none);
}

void ast_layer_set_L(Parser *p, AstDecl *layer, Span item_span, AstExpr *e) {
  if (layer->lagrangian) {
    diag_error(p->s->diag, item_span, "the layer's Lagrangian 'L' is given twice");
    diag_note(p->s->diag, layer->lagrangian_span, "first given here");
    return;
  }
  layer->lagrangian = e;
  layer->lagrangian_span = item_span;
}

void ast_layer_set_tau(Parser *p, AstDecl *layer, Span item_span, AstExpr *e) {
  if (layer->tau) {
    diag_error(p->s->diag, item_span, "the layer's time constant 'tau' is given twice");
    diag_note(p->s->diag, layer->tau->span, "first given here");
    return;
  }
  layer->tau = e;
}

// ---- Syntax errors ----

void parser_report_invalid(Parser *p, Span loc) {
  diag_error(p->s->diag, loc, "%s", p->lex_error ? p->lex_error : "invalid token");
  arm_recovery(p, loc);
}

void parser_report_exhausted(Parser *p, Span loc, const char *msg) {
  if (strcmp(msg, "memory exhausted") == 0)
    diag_error(p->s->diag, loc, "expression is nested too deeply to parse");
  else
    diag_error(p->s->diag, loc, "%s", msg);
}

static bool has(const char **names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return true;
  return false;
}

// Removes `group` from `names` when all of its members are there; returns whether it did.
static bool take_group(const char **names, int *n, const char *const *group) {
  for (const char *const *g = group; *g; g++)
    if (!has(names, *n, *g)) return false;
  int k = 0;
  for (int i = 0; i < *n; i++) {
    bool member = false;
    for (const char *const *g = group; *g; g++) member |= strcmp(names[i], *g) == 0;
    if (!member) names[k++] = names[i];
  }
  *n = k;
  return true;
}

static const char *describe_expected(const char *name) {
  if (strcmp(name, "name") == 0) return "a name";
  if (strcmp(name, "number") == 0) return "a number";
  return name;
}

void parser_report_syntax(Parser *p, Span loc, const char *found, const char **expected,
                          int n) {
  static const char *const declarations[] = {"'model'", "'dim'", "'param'", "'def'",
                                             "'layer'", "'weight'", "'synapse'",
                                             "'energy'", "'input'", NULL};
  static const char *const expressions[] = {"number", "name", "'('", "'-'", "'g'", NULL};
  static const char *const operators[] = {"'+'", "'*'", "'/'", "'@'", "'^'", NULL};
  static const char *const implied_by_operators[] = {"'-'", "transpose '''", NULL};
  StrBuf msg = {0};

  sb_append(&msg, "unexpected ");
  uint32_t len = loc.end - loc.begin;
  if (strcmp(found, "name") == 0 || strcmp(found, "number") == 0)
    sb_printf(&msg, "%s '%.*s%s'", found, len > 40 ? 40 : (int)len, p->text + loc.begin,
              len > 40 ? "..." : "");
  else if (found[0] == '\'' && ((found[1] >= 'a' && found[1] <= 'z') || found[1] == 'L'))
    sb_printf(&msg, "keyword %s", found);
  else
    sb_append(&msg, found);

  // Group the expected tokens into phrases; `names` is a copy, `expected` stays whole.
  const char *names[64];
  int nn = n < 64 ? n : 64;
  memcpy(names, expected, (size_t)nn * sizeof *names);
  const char *phrases[68];
  int np = 0;
  if (take_group(names, &nn, declarations)) phrases[np++] = "a declaration";
  if (take_group(names, &nn, expressions)) phrases[np++] = "an expression";
  bool ops = take_group(names, &nn, operators);
  if (ops) take_group(names, &nn, implied_by_operators);
  for (int i = 0; i < nn; i++) phrases[np++] = describe_expected(names[i]);
  if (ops) phrases[np++] = "an operator";
  for (int i = 0; i < np; i++)
    sb_printf(&msg, "%s%s", i == 0 ? "; expected " : i == np - 1 ? " or " : ", ", phrases[i]);
  if ((strcmp(found, "'g'") == 0 || strcmp(found, "'L'") == 0 || strcmp(found, "'tau'") == 0) &&
      has(expected, n, "name"))
    sb_printf(&msg, " (%s is a keyword)", found);
  diag_error(p->s->diag, loc, "%s", sb_str(&msg));
  sb_free(&msg);
  arm_recovery(p, loc);

  // Point at the innermost delimiter still open whose closer is what was expected. An
  // opener that is itself the unexpected token does not count; when the unexpected token
  // is a ';', the delimiters it closed are still open.
  size_t depth = loc.begin == p->semi.begin && loc.end == p->semi.end ? p->open_before_semi
                                                                      : p->nopen;
  for (size_t i = depth; i-- > 0;) {
    OpenDelim *d = &p->open[i];
    if (d->span.begin == loc.begin) continue;
    const char *closer = d->ch == '(' ? "')'" : d->ch == '[' ? "']'" : "'}'";
    if (has(expected, n, closer) || (ops && d->ch == '('))
      diag_note(p->s->diag, d->span, "to match this '%c'", d->ch);
    break;
  }
}

// ---- Entry points ----

AstDecl *front_parse(Session *s, const char *filename, const char *text, size_t len,
                     bool is_prelude) {
  if (len > UINT32_MAX / 2) {
    diag_error_plain(s->diag, "'%s' is too large (%zu bytes; at most 2 GiB)", filename, len);
    return NULL;
  }
  // A UTF-8 byte order mark, which some editors write first, is not part of the model.
  if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3;
  uint32_t file = diag_add_source(s->diag, filename, text, (uint32_t)len);
  Parser p = {0};
  p.s = s;
  p.file = file;
  p.text = diag_source(s->diag, file)->text;
  p.tail = &p.decls;
  p.is_prelude = is_prelude;

  yyscan_t scanner;
  if (yylex_init_extra(&p, &scanner) != 0) damc_internal_error(__FILE__, __LINE__, "scanner");
  YY_BUFFER_STATE buf = yy_scan_bytes(p.text, (int)len, scanner);
  yyparse(scanner, &p);
  yy_delete_buffer(buf, scanner);
  yylex_destroy(scanner);
  free(p.open);
  return p.decls;
}
