// Built-in function table (see builtins.h).
#include "builtins.h"

#include <string.h>

const BuiltinInfo builtin_info[FN_COUNT] = {
#define ELEM(id, name, body) [FN_##id] = {name, FNK_ELEM, 1},
#define FN(id, name, kind, arity) [FN_##id] = {name, kind, arity},
#include "sym/builtins.def"
#undef ELEM
#undef FN
};

int builtin_lookup(const char *name) {
  for (int i = 0; i < FN_COUNT; i++)
    if (strcmp(builtin_info[i].name, name) == 0) return i;
  return -1;
}
