/* The grammar of the damc model language (docs/language.md).
 *
 * A pure, reentrant bison parser with byte-offset spans. Actions only call ast_* builders
 * (front/parser.h). Error recovery resynchronises at ';' and '}' (statements, layer items)
 * and at ')' (inside parentheses and argument lists); syntax errors are worded in
 * yyreport_syntax_error in front/parse.c, with the user-facing token names below.
 */
%require "3.8"
%define api.pure full
%define api.location.type {Span}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {void *scanner}
%parse-param {Parser *p}

%code requires {
#include "front/parser.h"
/* The span of a rule is the join of its children; an empty rule sits at the end of the
   previous symbol. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                          \
  do {                                                                       \
    if (N) (Cur) = span_join(YYRHSLOC(Rhs, 1), YYRHSLOC(Rhs, N));            \
    else {                                                                   \
      (Cur).file = YYRHSLOC(Rhs, 0).file;                                    \
      (Cur).begin = (Cur).end = YYRHSLOC(Rhs, 0).end;                        \
    }                                                                        \
  } while (0)
}

%code provides {
int yylex(YYSTYPE *yylval, Span *yylloc, void *scanner);
void yyerror(Span *loc, void *scanner, Parser *p, const char *msg);
}

%union {
  double num;
  const char *name;
  AstExpr *expr;
  AstArg *arg;
  AstSize *size;
  AstParam *param;
  AstDecl *decl;
}

%token END 0 "end of input"
%token <num> NUMBER "number"
%token <name> IDENT "name"
%token INVALID "invalid token"
%token MODEL "'model'" DIM "'dim'" PARAM "'param'" DEF "'def'" LAYER "'layer'"
       WEIGHT "'weight'" SYNAPSE "'synapse'" ENERGY "'energy'" INPUT "'input'"
       SYMMETRIC "'symmetric'" LAGR "'L'" TAU "'tau'" ACT "'g'"
%token BOTH "'<->'" ARROW "'->'"
%token SEMI "';'" COMMA "','" LPAREN "'('" RPAREN "')'" LBRACK "'['" RBRACK "']'"
       LBRACE "'{'" RBRACE "'}'" ASSIGN "'='" COLON "':'" PLUS "'+'" MINUS "'-'"
       STAR "'*'" SLASH "'/'" AT "'@'" CARET "'^'" QUOTE "transpose '''"

%type <expr> expr term unary power postfix primary
%type <arg> args arg
%type <size> sizes size
%type <param> params param
%type <decl> layer_items

%%

program:
    %empty
  | program stmt
  ;

/* Top-level statements; `error ';'` and `error '}'` resynchronise after a bad one. */
stmt:
    MODEL IDENT SEMI          { ast_add_decl(p, ast_decl(p, DECL_MODEL, @$, $2, @2)); }
  | DIM IDENT SEMI            { ast_add_decl(p, ast_decl(p, DECL_DIM, @$, $2, @2)); }
  | DIM IDENT ASSIGN expr SEMI {
      AstDecl *d = ast_decl(p, DECL_DIM, @$, $2, @2); d->value = $4; ast_add_decl(p, d); }
  | PARAM IDENT SEMI          { ast_add_decl(p, ast_decl(p, DECL_PARAM, @$, $2, @2)); }
  | PARAM IDENT ASSIGN expr SEMI {
      AstDecl *d = ast_decl(p, DECL_PARAM, @$, $2, @2); d->value = $4; ast_add_decl(p, d); }
  | DEF IDENT LPAREN params RPAREN ASSIGN expr SEMI {
      AstDecl *d = ast_decl(p, DECL_DEF, @$, $2, @2); d->params = $4; d->value = $7;
      ast_add_decl(p, d); }
  | DEF IDENT LPAREN RPAREN ASSIGN expr SEMI {
      AstDecl *d = ast_decl(p, DECL_DEF, @$, $2, @2); d->value = $6; ast_add_decl(p, d); }
  | LAYER IDENT LBRACK sizes RBRACK LBRACE layer_items RBRACE {
      AstDecl *d = $7; d->span = @$; d->name = $2; d->name_span = @2; d->shape = $4;
      ast_add_decl(p, d); }
  | WEIGHT IDENT LBRACK sizes RBRACK SEMI {
      AstDecl *d = ast_decl(p, DECL_WEIGHT, @$, $2, @2); d->shape = $4; ast_add_decl(p, d); }
  | WEIGHT IDENT LBRACK sizes RBRACK SYMMETRIC SEMI {
      AstDecl *d = ast_decl(p, DECL_WEIGHT, @$, $2, @2); d->shape = $4; d->symmetric = true;
      ast_add_decl(p, d); }
  | SYNAPSE IDENT LBRACK sizes RBRACK COLON IDENT BOTH IDENT SEMI {
      AstDecl *d = ast_decl(p, DECL_SYNAPSE, @$, $2, @2); d->shape = $4;
      d->from = $7; d->from_span = @7; d->to = $9; d->to_span = @9; ast_add_decl(p, d); }
  | SYNAPSE IDENT LBRACK sizes RBRACK COLON IDENT ARROW IDENT SEMI {
      AstDecl *d = ast_decl(p, DECL_SYNAPSE, @$, $2, @2); d->shape = $4; d->directed = true;
      d->from = $7; d->from_span = @7; d->to = $9; d->to_span = @9; ast_add_decl(p, d); }
  | ENERGY expr SEMI {
      AstDecl *d = ast_decl(p, DECL_ENERGY, @$, NULL, @1); d->value = $2; ast_add_decl(p, d); }
  | INPUT IDENT SEMI          { ast_add_decl(p, ast_decl(p, DECL_INPUT, @$, $2, @2)); }
  | SEMI                      { }
  | LAYER IDENT LBRACK sizes RBRACK LBRACE layer_items error RBRACE { yyerrok; }
  | LAYER error RBRACE        { yyerrok; }
  | error SEMI                { yyerrok; }
  | error RBRACE              { yyerrok; }
  ;

/* The items of a layer body, collected into one decl. */
layer_items:
    %empty                         { $$ = ast_layer_body(p); }
  | layer_items LAGR ASSIGN expr SEMI {
      $$ = $1; ast_layer_set_L(p, $1, span_join(@2, @5), $4); }
  | layer_items TAU ASSIGN expr SEMI  {
      $$ = $1; ast_layer_set_tau(p, $1, span_join(@2, @5), $4); }
  | layer_items error SEMI         { $$ = $1; yyerrok; }
  ;

sizes:
    size                 { $$ = $1; }
  | sizes COMMA size     { $$ = ast_size_append($1, $3); }
  ;
size:
    IDENT                { $$ = ast_size(p, @$, $1, 0); }
  | NUMBER               { $$ = ast_size(p, @$, NULL, $1); }
  ;

params:
    param                { $$ = $1; }
  | params COMMA param   { $$ = ast_param_append($1, $3); }
  ;
param:
    IDENT                { $$ = ast_param(p, @$, $1, NULL); }
  | IDENT ASSIGN expr    { $$ = ast_param(p, @$, $1, $3); }
  ;

/* Expressions, loosest first: + - ; * / @ ; unary - ; ^ (right-associative, and its right
   operand may carry a sign: 2^-1) ; postfix ' (transpose). So -x^2 is -(x^2) and 2^3^2 is
   2^9. */
expr:
    term                 { $$ = $1; }
  | expr PLUS term       { $$ = ast_binary(p, @$, OP_ADD, @2, $1, $3); if (p->too_deep) YYABORT; }
  | expr MINUS term      { $$ = ast_binary(p, @$, OP_SUB, @2, $1, $3); if (p->too_deep) YYABORT; }
  ;
term:
    unary                { $$ = $1; }
  | term STAR unary      { $$ = ast_binary(p, @$, OP_MUL, @2, $1, $3); if (p->too_deep) YYABORT; }
  | term SLASH unary     { $$ = ast_binary(p, @$, OP_DIV, @2, $1, $3); if (p->too_deep) YYABORT; }
  | term AT unary        { $$ = ast_binary(p, @$, OP_MATMUL, @2, $1, $3); if (p->too_deep) YYABORT; }
  ;
unary:
    power                { $$ = $1; }
  | MINUS unary          { $$ = ast_unary(p, @$, AST_NEG, $2); if (p->too_deep) YYABORT; }
  ;
power:
    postfix              { $$ = $1; }
  | postfix CARET unary  { $$ = ast_binary(p, @$, OP_POW, @2, $1, $3); if (p->too_deep) YYABORT; }
  ;
postfix:
    primary              { $$ = $1; }
  | postfix QUOTE        { $$ = ast_unary(p, @$, AST_TRANSPOSE, $1); if (p->too_deep) YYABORT; }
  ;
primary:
    NUMBER                         { $$ = ast_num(p, @$, $1); }
  | IDENT                          { $$ = ast_name(p, @$, $1); }
  | IDENT LPAREN RPAREN            { $$ = ast_call(p, @$, $1, NULL); }
  | IDENT LPAREN args RPAREN       { $$ = ast_call(p, @$, $1, $3); }
  | ACT LPAREN IDENT RPAREN        { $$ = ast_act(p, @$, $3); }
  | LPAREN expr RPAREN             { $$ = $2; $$->span = @$; }
  | LPAREN error RPAREN            { $$ = ast_num(p, @$, 0); }
  | IDENT LPAREN error RPAREN      { $$ = ast_call(p, @$, $1, NULL); }
  ;

args:
    arg                  { $$ = $1; }
  | args COMMA arg       { $$ = ast_arg_append($1, $3); }
  ;
arg:
    expr                 { $$ = ast_arg(p, NULL, @$, $1); }
  | IDENT ASSIGN expr    { $$ = ast_arg(p, $1, @1, $3); }
  ;

%%
/* Words a syntax error in terms of the token found and the tokens the parser could take
   there (LAC makes that list exact); the wording itself is in front/parse.c. */
static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, Parser *p) {
  (void)scanner;
  yysymbol_kind_t found = yypcontext_token(ctx);
  const Span *loc = yypcontext_location(ctx);
  if (found == YYSYMBOL_INVALID) {
    parser_report_invalid(p, *loc);
    return 0;
  }
  yysymbol_kind_t expected[48];
  int n = yypcontext_expected_tokens(ctx, expected, 48);
  if (n < 0) n = 0;
  const char *names[48];
  for (int i = 0; i < n; i++) names[i] = yysymbol_name(expected[i]);
  parser_report_syntax(p, *loc, found == YYSYMBOL_YYEMPTY ? "end of input" : yysymbol_name(found),
                       names, n);
  return 0;
}

void yyerror(Span *loc, void *scanner, Parser *p, const char *msg) {
  (void)scanner;
  parser_report_exhausted(p, *loc, msg);
}
