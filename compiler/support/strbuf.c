// Growable strings (see strbuf.h).
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static void reserve(StrBuf *sb, size_t extra) {
  grow_array((void **)&sb->data, &sb->cap, sb->len + extra + 1, 1);
}

void sb_appendn(StrBuf *sb, const char *s, size_t n) {
  reserve(sb, n);
  memcpy(sb->data + sb->len, s, n);
  sb->len += n;
  sb->data[sb->len] = '\0';
}

void sb_append(StrBuf *sb, const char *s) { sb_appendn(sb, s, strlen(s)); }

void sb_putc(StrBuf *sb, char c) { sb_appendn(sb, &c, 1); }

void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  reserve(sb, (size_t)n);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  sb->len += (size_t)n;
}

void sb_printf(StrBuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(sb, fmt, ap);
  va_end(ap);
}

void sb_double(StrBuf *sb, double v) {
  if (isnan(v)) {
    sb_append(sb, "nan");
    return;
  }
  if (isinf(v)) {
    sb_append(sb, v < 0 ? "-inf" : "inf");
    return;
  }
  if (v == floor(v) && fabs(v) < 1e15) {
    sb_printf(sb, "%.0f", v);
    return;
  }
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  // "1e-05" -> "1e-5", "2.5e+17" -> "2.5e17": the same number, as a person writes it.
  char *e = strchr(buf, 'e');
  if (e) {
    int exponent = atoi(e + 1);
    *e = '\0';
    sb_printf(sb, "%se%d", buf, exponent);
    return;
  }
  sb_append(sb, buf);
}

const char *sb_str(const StrBuf *sb) { return sb->data ? sb->data : ""; }

void sb_clear(StrBuf *sb) {
  sb->len = 0;
  if (sb->data) sb->data[0] = '\0';
}

void sb_free(StrBuf *sb) {
  free(sb->data);
  *sb = (StrBuf){0};
}

void sb_json_string(StrBuf *sb, const char *s) {
  sb_putc(sb, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') sb_printf(sb, "\\%c", c);
    else if (c == '\n') sb_append(sb, "\\n");
    else if (c < 0x20) sb_printf(sb, "\\u%04x", c);
    else sb_putc(sb, (char)c);
  }
  sb_putc(sb, '"');
}

void sb_json_number(StrBuf *sb, double v) {
  if (isfinite(v)) sb_printf(sb, "%.17g", v);
  else sb_json_string(sb, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
}
