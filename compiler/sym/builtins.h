// The table of built-in functions (builtins.def) as C data, for the front end: names,
// kinds and arities.
#ifndef DAMC_BUILTINS_H
#define DAMC_BUILTINS_H

typedef enum {
#define ELEM(id, name, body) FN_##id,
#define FN(id, name, kind, arity) FN_##id,
#include "sym/builtins.def"
#undef ELEM
#undef FN
  FN_COUNT
} BuiltinFn;

typedef enum { FNK_ELEM, FNK_REDUCE, FNK_DOT, FNK_TRANSPOSE, FNK_LEN } BuiltinKind;

typedef struct {
  const char *name;
  BuiltinKind kind;
  int arity;
} BuiltinInfo;

extern const BuiltinInfo builtin_info[FN_COUNT];

// The builtin called `name`, or -1.
int builtin_lookup(const char *name);

#endif
