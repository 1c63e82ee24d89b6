// Built-in function table (see builtins.h).
#include "builtins.h"

#include <string.h>

const BuiltinInfo builtin_info[FN_COUNT] = {
#define X(id, name, kind, arity) [id] = {name, kind, arity},
#include "func_table.def"
#undef X
};

int builtin_lookup(const char *name) {
  for (int i = 0; i < FN_COUNT; i++)
    if (strcmp(builtin_info[i].name, name) == 0) return i;
  return -1;
}
