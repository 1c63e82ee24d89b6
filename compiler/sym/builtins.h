// The table of built-in functions (func_table.def) as C data.
#ifndef DAMC_BUILTINS_H
#define DAMC_BUILTINS_H

typedef enum {
#define X(id, name, kind, arity) id,
#include "func_table.def"
#undef X
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
