// The abstract syntax tree of a .dam file, and the checked model built from it.
//
// The parser builds AstDecl and AstExpr nodes in the session arena (names interned, every
// node with its Span). Semantic analysis (sema.h) then resolves every name in place (the
// `ref` fields below) and collects the declarations into a Model: the checked program the
// symbolic layer derives from. Expressions stay as syntax until then because `def`s are
// shape-polymorphic: a def body is checked, and later inlined, once per call.
#ifndef DAMC_AST_H
#define DAMC_AST_H

#include <stdbool.h>
#include <stdint.h>

#include "support/diag.h"

typedef enum {
  AST_NUM,        // num
  AST_NAME,       // name: a dim, param, layer state, weight or def argument
  AST_CALL,       // call: a builtin, a def or a prelude function
  AST_ACT,        // g(A): name is the layer
  AST_NEG,        // -operand
  AST_TRANSPOSE,  // operand'
  AST_BINARY,     // lhs op rhs
} AstExprKind;

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MATMUL, OP_POW } AstBinOp;

// What a name or call resolved to (filled by sema).
typedef enum {
  REF_NONE,     // unresolved, or an error was reported for it
  REF_DIM,      // index into Model.dims (a size used as a number)
  REF_PARAM,    // index into Model.params
  REF_STATE,    // index into Model.layers: the layer's own state inside its Lagrangian
  REF_LAYER,    // index into Model.layers: the layer named by g(A)
  REF_WEIGHT,   // index into Model.weights
  REF_ARG,      // index of an argument of the enclosing def
  REF_BUILTIN,  // BuiltinFn
  REF_DEF,      // the AstDecl of a def (user or prelude)
} RefKind;

typedef struct AstExpr AstExpr;
typedef struct AstArg AstArg;
typedef struct AstDecl AstDecl;

struct AstArg {
  const char *name;  // NULL for a positional argument
  Span name_span;
  AstExpr *value;
  AstArg *next;
};

struct AstExpr {
  AstExprKind kind;
  Span span;
  // Nesting depth, bounded (AST_MAX_DEPTH) so that every recursive walk is safe. The left
  // operand of a binary node does not count: a chain a + b + c ... nests to the left as
  // deep as it is long, and walkers loop over it (ast_spine) instead of recursing.
  int depth;
  RefKind ref;
  int ref_index;
  AstDecl *ref_def;  // for REF_DEF
  bool resolved;     // names below were resolved (def bodies are resolved once)
  union {
    double num;
    struct {
      const char *name;
    } name;  // AST_NAME, AST_ACT (the layer), AST_CALL (the callee)
  };
  AstArg *args;  // AST_CALL
  int nargs;
  AstExpr **bound_args;  // sema, calls of defs: the argument (or default) of each parameter
  AstBinOp op;   // AST_BINARY
  Span op_span;  // AST_BINARY
  AstExpr *lhs;  // AST_BINARY; AST_NEG and AST_TRANSPOSE use lhs as the operand
  AstExpr *rhs;
};

// The binary nodes down the left spine of `e`, a binary node: e first, the one whose left
// operand is not binary last (*n of them), in an array the caller frees. A walker recurses
// into their right operands and the innermost's left one, and loops over the spine.
AstExpr **ast_spine(const AstExpr *e, size_t *n);

// A size in a shape: a dim's name or an integer literal.
typedef struct AstSize {
  const char *name;  // NULL for a literal
  double value;
  Span span;
  struct AstSize *next;
} AstSize;

typedef struct AstParam {
  const char *name;
  Span span;
  AstExpr *default_value;  // NULL when required
  struct AstParam *next;
} AstParam;

typedef enum {
  DECL_MODEL,
  DECL_DIM,
  DECL_PARAM,
  DECL_DEF,
  DECL_LAYER,
  DECL_WEIGHT,
  DECL_SYNAPSE,
  DECL_ENERGY,
  DECL_INPUT,
} DeclKind;

struct AstDecl {
  DeclKind kind;
  Span span;       // the whole statement
  const char *name;  // NULL for energy
  Span name_span;
  bool in_prelude;
  AstDecl *next;
  AstExpr *value;     // dim/param value (may be NULL), def body, energy expression
  AstParam *params;   // def
  int nparams;
  AstSize *shape;     // layer size, weight/synapse shape
  int rank;
  AstExpr *lagrangian;  // layer
  Span lagrangian_span;
  AstExpr *tau;         // layer; NULL means the default 1
  bool symmetric;       // weight
  const char *from, *to;  // synapse: `from <-> to` or `from -> to`
  Span from_span, to_span;
  bool directed;
  // Filled by sema: the decl's index in its Model array, and for defs the state of the
  // recursion search and whether the def is unusable (recursive or already reported).
  int index;
  uint8_t visit;  // 0 unvisited, 1 on the search stack, 2 done
  bool unusable;
  bool duplicate;  // its name was declared before (reported): not in the model, not checked
};

// ---- The checked model ----

typedef struct {
  const char *name;  // NULL for a size written as a literal
  Span span;
  int64_t value;     // -1 while unbound (bound from a weight's shape when loaded)
} ModelDim;

typedef struct {
  const char *name;
  Span span;
  double value;  // the default
  bool has_default;
} ModelParam;

typedef struct {
  const char *name;
  Span span;
  int rank;     // 1 or 2
  int dims[2];  // indices into Model.dims
  bool symmetric;
  int synapse;  // index into Model.synapses, or -1 for a `weight`
} ModelWeight;

// The static convexity proof of a Lagrangian (front/convexity.h, docs/theory.md §4.2.5).
typedef enum { CONVEXITY_UNKNOWN, CONVEX_PROVEN, NONCONVEX_PROVEN } Convexity;

// A parameter of a prelude Lagrangian outside its range (docs/theory.md §4.2.1).
typedef struct {
  Span span;   // the argument, or the call when the default is used
  Span call;   // the call of the prelude Lagrangian
  bool fatal;  // outside the range where the Lagrangian is admissible; false: advice only
  char text[200];  // "'beta' of lagr_softmax must be positive, but it is -1"
} ParamRuleIssue;

typedef struct {
  const char *name;
  Span span;
  int dim;  // index into Model.dims
  AstExpr *lagrangian;
  AstExpr *tau;  // NULL: 1
  bool has_input;
  Span input_span;
  // Filled by sema (front/convexity.h) with the params' defaults; damc check re-evaluates
  // with --set. The span is the sub-expression to blame (NONCONVEX_PROVEN), where the rules
  // stopped (CONVEXITY_UNKNOWN) or the Lagrangian (CONVEX_PROVEN); the reason is one line.
  Convexity convexity;
  Span convexity_span;
  const char *convexity_reason;
  const ParamRuleIssue *param_issues;
  int nparam_issues;
} ModelLayer;

// `synapse W : a <-> b` (energy -g(a).(W g(b)); W is [n_a, n_b]) or, with `directed`,
// `synapse W : b -> a` (a receives W g(b), no energy).
typedef struct {
  int weight;
  int a, b;  // indices into Model.layers
  bool directed;
  Span span;
} ModelSynapse;

typedef struct {
  AstExpr *expr;
  Span span;
} ModelEnergy;

typedef struct Model {
  const char *name;  // from `model NAME;`, or the file's base name
  ModelDim *dims;
  int ndims;
  ModelParam *params;
  int nparams;
  ModelLayer *layers;
  int nlayers;
  ModelWeight *weights;
  int nweights;
  ModelSynapse *synapses;
  int nsynapses;
  ModelEnergy *energies;
  int nenergies;
  AstDecl *decls;  // every declaration, prelude first, in source order
} Model;

#endif
