// Rendering and collection of diagnostics (see diag.h).
#include "diag.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "strbuf.h"

// Source lines longer than this are shown as a window around the span.
enum { LINE_WINDOW = 120, WINDOW_LEAD = 50 };

typedef struct {
  uint32_t file, offset;  // where the error or warning is; plain messages sort first
  size_t seq;
  StrBuf text;  // the message and its notes, rendered
} Deferred;

struct DiagSink {
  FILE *echo;
  bool deferring;
  Deferred *deferred;
  size_t ndeferred, deferred_cap;
  SourceFile *files;
  size_t nfiles, cap;
  StrBuf text;
  int errors, warnings;
  bool stopped;
  bool last_dropped;  // the last error/warning was dropped, so its notes are too
};

Span span_join(Span a, Span b) {
  return (Span){a.file, a.begin < b.begin ? a.begin : b.begin, a.end > b.end ? a.end : b.end};
}

DiagSink *diag_new(FILE *echo) {
  DiagSink *s = xcalloc(1, sizeof *s);
  s->echo = echo;
  return s;
}

DiagSink *diag_fork(const DiagSink *sink, FILE *echo) {
  DiagSink *s = diag_new(echo);
  for (size_t i = 0; i < sink->nfiles; i++)
    diag_add_source(s, sink->files[i].name, sink->files[i].text, sink->files[i].len);
  return s;
}

void diag_free(DiagSink *sink) {
  if (!sink) return;
  for (size_t i = 0; i < sink->nfiles; i++) {
    free((char *)sink->files[i].name);
    free((char *)sink->files[i].text);
    free(sink->files[i].line_starts);
  }
  free(sink->files);
  for (size_t i = 0; i < sink->ndeferred; i++) sb_free(&sink->deferred[i].text);
  free(sink->deferred);
  sb_free(&sink->text);
  free(sink);
}

// Writes a rendered message (or holds it back while deferring).
static void emit(DiagSink *sink, DiagLevel level, const Span *span, const char *text) {
  if (sink->deferring) {
    if (level == DIAG_NOTE && sink->ndeferred) {
      sb_append(&sink->deferred[sink->ndeferred - 1].text, text);
      return;
    }
    Deferred d = {span ? span->file : 0, span ? span->begin : 0, sink->ndeferred, {0}};
    sb_append(&d.text, text);
    VEC_PUSH(sink->deferred, sink->ndeferred, sink->deferred_cap, d);
    return;
  }
  sb_append(&sink->text, text);
  if (sink->echo) {
    fputs(text, sink->echo);
    fflush(sink->echo);
  }
}

void diag_defer(DiagSink *sink) { sink->deferring = true; }

static int by_position(const void *a, const void *b) {
  const Deferred *x = a, *y = b;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void diag_flush(DiagSink *sink) {
  sink->deferring = false;
  if (sink->ndeferred)  // qsort's base may not be NULL, even for no elements
    qsort(sink->deferred, sink->ndeferred, sizeof *sink->deferred, by_position);
  for (size_t i = 0; i < sink->ndeferred; i++) {
    emit(sink, DIAG_ERROR, NULL, sb_str(&sink->deferred[i].text));
    sb_free(&sink->deferred[i].text);
  }
  sink->ndeferred = 0;
}

uint32_t diag_add_source(DiagSink *sink, const char *name, const char *text, uint32_t len) {
  SourceFile f = {0};
  f.name = xstrdup(name);
  f.text = xstrndup(text, len);
  f.len = len;
  VEC_PUSH(sink->files, sink->nfiles, sink->cap, f);
  return (uint32_t)(sink->nfiles - 1);
}

const SourceFile *diag_source(const DiagSink *sink, uint32_t file) {
  DAMC_ASSERT(file < sink->nfiles);
  return &sink->files[file];
}

static void build_lines(SourceFile *f) {
  if (f->line_starts) return;
  size_t cap = 0, n = 0;
  uint32_t *starts = NULL;
  VEC_PUSH(starts, n, cap, 0);
  for (uint32_t i = 0; i < f->len; i++)
    if (f->text[i] == '\n' && i + 1 < f->len) VEC_PUSH(starts, n, cap, i + 1);
  f->line_starts = starts;
  f->nlines = (uint32_t)n;
}

// Index of the line holding `offset`. An offset at the very end of a file that ends in a
// newline belongs to the last line, as gcc reports the end of input.
static uint32_t line_index(SourceFile *f, uint32_t offset) {
  build_lines(f);
  if (offset > f->len) offset = f->len;
  uint32_t lo = 0, hi = f->nlines;
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (f->line_starts[mid] <= offset) lo = mid;
    else hi = mid;
  }
  return lo;
}

static uint32_t line_end(const SourceFile *f, uint32_t start) {
  uint32_t e = start;
  while (e < f->len && f->text[e] != '\n') e++;
  if (e > start && f->text[e - 1] == '\r') e--;
  return e;
}

void diag_line_col(DiagSink *sink, uint32_t file, uint32_t offset, uint32_t *line,
                   uint32_t *col) {
  SourceFile *f = &sink->files[file];
  uint32_t li = line_index(f, offset);
  uint32_t start = f->line_starts[li];
  uint32_t end = line_end(f, start);
  if (offset > end) offset = end;
  *line = li + 1;
  *col = offset - start + 1;
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one.
static int utf8_len(const unsigned char *s, uint32_t n) {
  int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
                               : (s[0] >> 3) == 30 ? 4 : 0;
  if (len == 0 || (uint32_t)len > n) return 0;
  for (int i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

// Appends bytes [from, to) of a source line: tabs kept, other control characters and bytes
// that are not UTF-8 shown as '?', so a message never carries raw binary. When
// `caret_from` <= `caret_to` it instead writes the matching caret run: one space (or tab)
// per displayed column before the span, '^' and '~' under it.
static void put_line_part(StrBuf *out, const SourceFile *f, uint32_t from, uint32_t to,
                          bool carets, uint32_t caret_from, uint32_t caret_to) {
  const unsigned char *t = (const unsigned char *)f->text;
  for (uint32_t i = from; i < to;) {
    int n = utf8_len(t + i, to - i);
    char shown = t[i] == '\t' ? '\t' : (n == 1 && t[i] >= 0x20 && t[i] != 0x7f) ? (char)t[i]
                                      : n > 1 ? 0 : '?';
    if (n < 1) n = 1;
    if (!carets) {
      if (shown) sb_putc(out, shown);
      else sb_appendn(out, f->text + i, (size_t)n);
    } else if (i < caret_from) {
      sb_putc(out, shown == '\t' ? '\t' : ' ');
    } else if (i < caret_to) {
      sb_putc(out, i == caret_from ? '^' : '~');
    } else {
      break;
    }
    i += (uint32_t)n;
  }
}

static void render_excerpt(DiagSink *sink, StrBuf *out, const Span *span) {
  SourceFile *f = &sink->files[span->file];
  uint32_t li = line_index(f, span->begin);
  uint32_t start = f->line_starts[li], end = line_end(f, start);
  uint32_t b = span->begin < start ? start : span->begin;
  if (b > end) b = end;
  uint32_t e = span->end > end ? end : span->end;
  if (e < b) e = b;

  uint32_t from = start, to = end;
  if (end - start > LINE_WINDOW) {
    from = b - start > WINDOW_LEAD ? b - WINDOW_LEAD : start;
    to = from + LINE_WINDOW < end ? from + LINE_WINDOW : end;
    // Never cut a UTF-8 sequence in two.
    while (from > start && (f->text[from] & 0xC0) == 0x80) from--;
    while (to < end && (f->text[to] & 0xC0) == 0x80) to++;
    if (e > to) e = to;
  }
  const char *pre = from > start ? "..." : "";
  sb_printf(out, "%5u | %s", li + 1, pre);
  put_line_part(out, f, from, to, false, 0, 0);
  sb_printf(out, "%s\n      | %s", to < end ? "..." : "", *pre ? "   " : "");
  if (b == e) {
    // An empty span (the end of input): a lone caret just after what precedes it.
    put_line_part(out, f, from, b, true, b, b);
    sb_putc(out, '^');
  } else {
    put_line_part(out, f, from, e, true, b, e);
  }
  sb_putc(out, '\n');
}

void diag_vreport(DiagSink *sink, DiagLevel level, const Span *span, const char *fmt,
                  va_list ap) {
  if (level == DIAG_NOTE) {
    if (sink->last_dropped) return;
  } else {
    sink->last_dropped = sink->stopped;
    if (sink->stopped) return;
    if (level == DIAG_ERROR && sink->errors == DIAG_MAX_ERRORS) {
      sink->stopped = sink->last_dropped = true;
      emit(sink, DIAG_ERROR, span, "damc: note: too many errors; stopping\n");
      return;
    }
    if (level == DIAG_WARNING && sink->warnings >= DIAG_MAX_WARNINGS) {
      if (sink->warnings++ == DIAG_MAX_WARNINGS) {
        emit(sink, DIAG_WARNING, span, "damc: note: too many warnings; not showing the rest\n");
      }
      sink->last_dropped = true;
      return;
    }
    if (level == DIAG_ERROR) sink->errors++;
    else sink->warnings++;
  }
  static const char *const names[] = {"error", "warning", "note"};
  StrBuf msg = {0};
  if (span) {
    uint32_t line, col;
    diag_line_col(sink, span->file, span->begin, &line, &col);
    sb_printf(&msg, "%s:%u:%u: %s: ", sink->files[span->file].name, line, col,
              names[level]);
  } else {
    sb_printf(&msg, "damc: %s: ", names[level]);
  }
  sb_vprintf(&msg, fmt, ap);
  sb_putc(&msg, '\n');
  if (span) render_excerpt(sink, &msg, span);
  emit(sink, level, span, sb_str(&msg));
  sb_free(&msg);
}

#define DEFINE_REPORT(fn, level)                                               \
  void fn(DiagSink *sink, Span span, const char *fmt, ...) {                   \
    va_list ap;                                                                \
    va_start(ap, fmt);                                                         \
    diag_vreport(sink, level, &span, fmt, ap);                                 \
    va_end(ap);                                                                \
  }
DEFINE_REPORT(diag_error, DIAG_ERROR)
DEFINE_REPORT(diag_warning, DIAG_WARNING)
DEFINE_REPORT(diag_note, DIAG_NOTE)

void diag_error_plain(DiagSink *sink, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vreport(sink, DIAG_ERROR, NULL, fmt, ap);
  va_end(ap);
}

int diag_error_count(const DiagSink *sink) { return sink->errors; }
int diag_warning_count(const DiagSink *sink) { return sink->warnings; }
bool diag_stopped(const DiagSink *sink) { return sink->stopped; }
const char *diag_text(const DiagSink *sink) { return sb_str(&sink->text); }
