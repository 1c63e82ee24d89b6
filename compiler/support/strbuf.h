// StrBuf: a growable, always NUL-terminated string, for building messages and printouts.
#ifndef DAMC_STRBUF_H
#define DAMC_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
  char *data;  // NUL-terminated; NULL until the first append
  size_t len, cap;
} StrBuf;

void sb_append(StrBuf *sb, const char *s);
void sb_appendn(StrBuf *sb, const char *s, size_t n);
void sb_putc(StrBuf *sb, char c);
__attribute__((format(printf, 2, 3))) void sb_printf(StrBuf *sb, const char *fmt, ...);
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap);
// Appends a double in the shortest form that reads back to the same value.
void sb_double(StrBuf *sb, double v);
// JSON (RFC 8259): `s` as a string literal, quotes, backslashes and control characters
// escaped; `v` as a number to 17 digits, or (as JSON has none) "NaN", "Infinity" or
// "-Infinity" as strings.
void sb_json_string(StrBuf *sb, const char *s);
void sb_json_number(StrBuf *sb, double v);
const char *sb_str(const StrBuf *sb);  // "" when empty
void sb_clear(StrBuf *sb);
void sb_free(StrBuf *sb);

#endif
