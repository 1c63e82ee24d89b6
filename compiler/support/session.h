// Session: what one compilation owns, freed at once by session_free.
//
// Every stage receives the session: it allocates long-lived objects in `arena`, interns
// names in `names` (so names compare by pointer), and reports to `diag`.
#ifndef DAMC_SESSION_H
#define DAMC_SESSION_H

#include <stdio.h>

#include "arena.h"
#include "diag.h"
#include "intern.h"

typedef struct {
  Arena *arena;
  Interner *names;
  DiagSink *diag;
} Session;

// `echo`: where diagnostics are also written as they happen (NULL: only collected).
Session *session_new(FILE *echo);
void session_free(Session *s);

#endif
