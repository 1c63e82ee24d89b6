// Session lifetime (see session.h).
#include "session.h"

#include <stdlib.h>

#include "common.h"

Session *session_new(FILE *echo) {
  Session *s = xcalloc(1, sizeof *s);
  s->arena = arena_new();
  s->names = intern_new();
  s->diag = diag_new(echo);
  return s;
}

void session_free(Session *s) {
  if (!s) return;
  arena_free(s->arena);
  intern_free(s->names);
  diag_free(s->diag);
  free(s);
}
