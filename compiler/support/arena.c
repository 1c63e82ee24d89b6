// Bump allocation in chained blocks (see arena.h).
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { ARENA_BLOCK = 64 * 1024, ARENA_ALIGN = 16 };

typedef struct Block {
  struct Block *prev;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} Block;

struct Arena {
  Block *top;
};

Arena *arena_new(void) { return xcalloc(1, sizeof(Arena)); }

void arena_free(Arena *arena) {
  if (!arena) return;
  for (Block *b = arena->top, *prev; b; b = prev) {
    prev = b->prev;
    free(b);
  }
  free(arena);
}

void *arena_alloc(Arena *arena, size_t size) {
  size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  Block *b = arena->top;
  if (!b || b->cap - b->used < size) {
    size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    b = xmalloc(sizeof(Block) + cap);
    b->prev = arena->top;
    b->used = 0;
    b->cap = cap;
    arena->top = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char *arena_strndup(Arena *arena, const char *s, size_t n) {
  char *p = arena_alloc(arena, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}
