// The front end: .dam text to a checked Model, or located diagnostics.
//
// front_compile parses the prelude (front/prelude.dam, built into the compiler) and the
// user's file into one program, then runs the semantic checks of sema.h. Syntax errors stop
// before the semantic checks, so a broken statement cannot cause follow-on errors.
#ifndef DAMC_FRONT_H
#define DAMC_FRONT_H

#include <stddef.h>

#include "front/ast.h"
#include "support/session.h"

// Parses and checks `text` (which need not be NUL-terminated) as the file `filename`.
// Returns the model (in the session arena), or NULL after reporting errors to s->diag.
// The two stages it runs, for the pipeline (engine/engine.h) to run one by one:
Model *front_compile(Session *s, const char *filename, const char *text, size_t len);
// The prelude and the user's file as one program (prelude first); NULL after syntax errors.
AstDecl *front_parse_program(Session *s, const char *filename, const char *text, size_t len);
// The semantic checks (sema.h) of a parsed program; the model, or NULL after errors.
Model *front_check(Session *s, AstDecl *program, const char *filename);

// Parses one file into a list of declarations without checking it (for tests and the
// fuzzer); NULL only when the file could not be read as a whole. Errors go to s->diag.
AstDecl *front_parse(Session *s, const char *filename, const char *text, size_t len,
                     bool is_prelude);

// The prelude's source text.
extern const char front_prelude_text[];

#endif
