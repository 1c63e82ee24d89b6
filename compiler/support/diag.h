// Diagnostics: source files, spans and the sink every compiler stage reports to.
//
// Positions are byte offsets (a Span) into a source file registered with the sink; line and
// column are computed only when a message is rendered. Rendering follows gcc and clang:
//
//   model.dam:12:14: error: unexpected ')'; expected a number, a name or '('
//      12 |   L = (x * ) + 1;
//         |            ^
//
// followed by `note:` lines for related places. Stages never exit: they report here and
// return failure values, and the driver decides what to do. The sink renders every message
// into a text buffer (for the C API) and, when given a stream, also writes it there at once.
// After DIAG_MAX_ERRORS errors it prints one "too many errors" note and drops the rest;
// warnings past DIAG_MAX_WARNINGS are dropped the same way.
#ifndef DAMC_DIAG_H
#define DAMC_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { DIAG_MAX_ERRORS = 20, DIAG_MAX_WARNINGS = 50 };

typedef struct {
  uint32_t file;        // index returned by diag_add_source
  uint32_t begin, end;  // byte offsets, end exclusive
} Span;

// The smallest span covering `a` and `b` (of the same file).
Span span_join(Span a, Span b);

typedef struct {
  const char *name;  // as given by the user, used in messages
  const char *text;  // owned copy, NUL-terminated (the text may itself contain NULs)
  uint32_t len;
  uint32_t *line_starts;  // lazily built
  uint32_t nlines;
} SourceFile;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagLevel;

typedef struct DiagSink DiagSink;

// `echo` may be NULL: then messages are only collected (see diag_text).
DiagSink *diag_new(FILE *echo);
// A new sink for the sources of `sink` (the same file indices, so that its spans render),
// with messages and limits of its own: a check made again and again on one model (a param
// set anew) reports in full each time, whatever was reported before.
DiagSink *diag_fork(const DiagSink *sink, FILE *echo);
void diag_free(DiagSink *sink);

// Registers a copy of `text` under `name`; returns its file index for Spans. Inputs over
// 4 GiB cannot be represented and are refused by the caller before this point.
uint32_t diag_add_source(DiagSink *sink, const char *name, const char *text, uint32_t len);
const SourceFile *diag_source(const DiagSink *sink, uint32_t file);

__attribute__((format(printf, 3, 4))) void diag_error(DiagSink *sink, Span span,
                                                     const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void diag_warning(DiagSink *sink, Span span,
                                                       const char *fmt, ...);
// A note belongs to the error or warning just reported and is dropped with it.
__attribute__((format(printf, 3, 4))) void diag_note(DiagSink *sink, Span span,
                                                    const char *fmt, ...);
// An error with no source position: "damc: error: MSG".
__attribute__((format(printf, 2, 3))) void diag_error_plain(DiagSink *sink,
                                                           const char *fmt, ...);
void diag_vreport(DiagSink *sink, DiagLevel level, const Span *span, const char *fmt,
                  va_list ap);

// While deferring, messages are held back; diag_flush then emits them ordered by source
// position (a note stays with its error). A checker that works in passes uses this so that
// errors read top to bottom, as the file does.
void diag_defer(DiagSink *sink);
void diag_flush(DiagSink *sink);

int diag_error_count(const DiagSink *sink);
int diag_warning_count(const DiagSink *sink);
// True once the error limit was reached: stages should stop producing work.
bool diag_stopped(const DiagSink *sink);
// Everything reported so far, rendered.
const char *diag_text(const DiagSink *sink);

// 1-based line and byte column of `offset` in `file`.
void diag_line_col(DiagSink *sink, uint32_t file, uint32_t offset, uint32_t *line,
                   uint32_t *col);

#endif
