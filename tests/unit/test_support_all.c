// Unit tests of the support layer: arena, interner, strings and diagnostic rendering.
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "support/arena.h"
#include "support/diag.h"
#include "support/intern.h"
#include "support/strbuf.h"

static void test_arena(void) {
  Arena *a = arena_new();
  char *p = arena_alloc(a, 10);
  CHECK(p != NULL && ((uintptr_t)p & 15) == 0);
  for (int i = 0; i < 10; i++) CHECK_EQ(p[i], 0);
  char *big = arena_alloc(a, 1 << 20);  // larger than a block
  big[(1 << 20) - 1] = 1;
  CHECK_STREQ(arena_strndup(a, "hello world", 5), "hello");
  arena_free(a);
}

static void test_intern(void) {
  Interner *in = intern_new();
  const char *a = intern(in, "beta");
  char buf[] = "beta_x";
  CHECK(intern_n(in, buf, 4) == a);
  CHECK(intern(in, "beta_x") != a);
  // Many names force rehashing; every one stays canonical.
  const char *first[2000];
  for (int i = 0; i < 2000; i++) {
    char name[16];
    snprintf(name, sizeof name, "n%d", i);
    first[i] = intern(in, name);
  }
  for (int i = 0; i < 2000; i++) {
    char name[16];
    snprintf(name, sizeof name, "n%d", i);
    CHECK(intern(in, name) == first[i]);
  }
  intern_free(in);
}

static void test_strbuf(void) {
  StrBuf sb = {0};
  CHECK_STREQ(sb_str(&sb), "");
  sb_printf(&sb, "%d-%s", 42, "x");
  CHECK_STREQ(sb_str(&sb), "42-x");
  sb_clear(&sb);
  double values[] = {0.1, 1.0 / 3, 8, 1e-300, -2.5e17, 0.05};
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    sb_clear(&sb);
    sb_double(&sb, values[i]);
    CHECK(strtod(sb_str(&sb), NULL) == values[i]);
  }
  sb_clear(&sb);
  sb_double(&sb, 0.1);
  CHECK_STREQ(sb_str(&sb), "0.1");
  sb_free(&sb);
}

static void test_diag(void) {
  DiagSink *d = diag_new(NULL);
  const char *src = "dim N = 3;\n\tlayer v[N] { L = x; }\n";
  uint32_t f = diag_add_source(d, "m.dam", src, (uint32_t)strlen(src));
  uint32_t at = (uint32_t)(strstr(src, "x;") - src);
  diag_error(d, (Span){f, at, at + 1}, "unknown name '%s'", "x");
  diag_note(d, (Span){f, 4, 5}, "see here");
  CHECK_STREQ(diag_text(d),
              "m.dam:2:19: error: unknown name 'x'\n"
              "    2 | \tlayer v[N] { L = x; }\n"
              "      | \t                 ^\n"
              "m.dam:1:5: note: see here\n"
              "    1 | dim N = 3;\n"
              "      |     ^\n");
  CHECK_EQ(diag_error_count(d), 1);
  diag_free(d);

  // The end of a file that ends in a newline is reported on its last line.
  d = diag_new(NULL);
  f = diag_add_source(d, "e.dam", "a;\n", 3);
  uint32_t line, col;
  diag_line_col(d, f, 3, &line, &col);
  CHECK_EQ(line, 1);
  CHECK_EQ(col, 3);
  // Spans are clipped to their first line, and the caret run covers the span.
  diag_error(d, (Span){f, 0, 3}, "m");
  CHECK(strstr(diag_text(d), "| ^~\n") != NULL);
  diag_free(d);

  // Non-UTF-8 bytes are shown as '?', a long line as a window around the span.
  d = diag_new(NULL);
  char line_buf[1000];
  memset(line_buf, 'a', sizeof line_buf);
  line_buf[500] = (char)0xff;
  f = diag_add_source(d, "l.dam", line_buf, sizeof line_buf);
  diag_error(d, (Span){f, 500, 501}, "bad byte");
  const char *text = diag_text(d);
  CHECK(strstr(text, "l.dam:1:501: error: bad byte\n") == text);
  CHECK(strstr(text, "...") != NULL);
  CHECK(strstr(text, "?") != NULL);
  CHECK(strlen(text) < 400);
  diag_free(d);

  // After the limit, errors and their notes are dropped with one message.
  d = diag_new(NULL);
  f = diag_add_source(d, "x.dam", "x", 1);
  for (int i = 0; i < DIAG_MAX_ERRORS + 5; i++) {
    diag_error(d, (Span){f, 0, 1}, "e%d", i);
    diag_note(d, (Span){f, 0, 1}, "n%d", i);
  }
  CHECK(diag_stopped(d));
  CHECK_EQ(diag_error_count(d), DIAG_MAX_ERRORS);
  CHECK(strstr(diag_text(d), "too many errors") != NULL);
  CHECK(strstr(diag_text(d), "n20") == NULL);
  diag_free(d);
}

int main(void) {
  test_arena();
  test_intern();
  test_strbuf();
  test_diag();
  return check_report("test_support_all");
}
