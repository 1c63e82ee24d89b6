// The front end's entry point (see front.h).
#include "front/front.h"

#include <string.h>

#include "front/sema.h"
#include "support/common.h"

// The model's default name: the file's base name without its extension.
static const char *base_name(Session *s, const char *filename) {
  const char *slash = strrchr(filename, '/');
  const char *base = slash ? slash + 1 : filename;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return intern_n(s->names, base, n);
}

AstDecl *front_parse_program(Session *s, const char *filename, const char *text, size_t len) {
  AstDecl *prelude = front_parse(s, "<prelude>", front_prelude_text,
                                 strlen(front_prelude_text), true);
  DAMC_ASSERT(diag_error_count(s->diag) == 0);
  AstDecl *user = front_parse(s, filename, text, len, false);
  if (diag_error_count(s->diag)) return NULL;
  AstDecl **tail = &prelude;
  while (*tail) tail = &(*tail)->next;
  *tail = user;
  return prelude;
}

Model *front_check(Session *s, AstDecl *program, const char *filename) {
  return sema_check(s, program, base_name(s, filename));
}

Model *front_compile(Session *s, const char *filename, const char *text, size_t len) {
  AstDecl *program = front_parse_program(s, filename, text, len);
  return program ? front_check(s, program, filename) : NULL;
}
