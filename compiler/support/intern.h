// Interner: one canonical copy of each distinct name, so names compare by pointer.
#ifndef DAMC_INTERN_H
#define DAMC_INTERN_H

#include <stddef.h>

typedef struct Interner Interner;

Interner *intern_new(void);
void intern_free(Interner *in);
// Returns the canonical NUL-terminated copy of s[0..n); it lives until intern_free.
const char *intern_n(Interner *in, const char *s, size_t n);
const char *intern(Interner *in, const char *s);

#endif
