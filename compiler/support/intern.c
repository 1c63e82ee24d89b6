// Open-addressing hash set of strings stored in an arena (see intern.h).
#include "intern.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "common.h"

struct Interner {
  Arena *arena;
  const char **slots;
  size_t cap, count;
};

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

Interner *intern_new(void) {
  Interner *in = xcalloc(1, sizeof *in);
  in->arena = arena_new();
  in->cap = 256;
  in->slots = xcalloc(in->cap, sizeof *in->slots);
  return in;
}

void intern_free(Interner *in) {
  if (!in) return;
  arena_free(in->arena);
  free(in->slots);
  free(in);
}

static void rehash(Interner *in) {
  size_t cap = in->cap * 2;
  const char **slots = xcalloc(cap, sizeof *slots);
  for (size_t i = 0; i < in->cap; i++) {
    const char *s = in->slots[i];
    if (!s) continue;
    size_t j = hash_bytes(s, strlen(s)) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = s;
  }
  free(in->slots);
  in->slots = slots;
  in->cap = cap;
}

const char *intern_n(Interner *in, const char *s, size_t n) {
  if ((in->count + 1) * 10 > in->cap * 7) rehash(in);
  size_t j = hash_bytes(s, n) & (in->cap - 1);
  for (; in->slots[j]; j = (j + 1) & (in->cap - 1)) {
    const char *t = in->slots[j];
    if (strncmp(t, s, n) == 0 && t[n] == '\0') return t;
  }
  const char *copy = arena_strndup(in->arena, s, n);
  in->slots[j] = copy;
  in->count++;
  return copy;
}

const char *intern(Interner *in, const char *s) { return intern_n(in, s, strlen(s)); }
