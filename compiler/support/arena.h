// Arena: a bump allocator whose blocks are all freed at once.
//
// The AST, interned names and every other per-compilation object live in arenas owned by
// the compilation, so nothing in the front end is freed one by one, bison needs no
// %destructor for error recovery, and LeakSanitizer stays clean.
#ifndef DAMC_ARENA_H
#define DAMC_ARENA_H

#include <stddef.h>

typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *arena);
// Returns `size` zeroed bytes aligned for any type; lives until arena_free.
void *arena_alloc(Arena *arena, size_t size);
char *arena_strndup(Arena *arena, const char *s, size_t n);

#define ARENA_NEW(arena, type) ((type *)arena_alloc((arena), sizeof(type)))

#endif
