// The report of damc check (see report.h).
#include "check/report.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/common.h"

const char *verdict_name(Verdict v) {
  static const char *const names[] = {"pass", "warn", "fail", "skipped"};
  return names[v];
}

CheckItem *report_add(CheckReport *r, const char *check, const char *subject, const Span *where,
                      Verdict v, const char *fmt, ...) {
  CheckItem item = {{0}, {0}, {0, 0, 0}, where != NULL, v, {0}, NULL, 0, 0, NULL, 0, 0};
  snprintf(item.check, sizeof item.check, "%s", check);
  snprintf(item.subject, sizeof item.subject, "%s", subject);
  if (where) item.where = *where;
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(&item.reason, fmt, ap);
  va_end(ap);
  // A reason may end with an error message's newline: the report lays its lines out itself.
  while (item.reason.len && item.reason.data[item.reason.len - 1] == '\n')
    item.reason.data[--item.reason.len] = '\0';
  VEC_PUSH(r->items, r->count, r->cap, item);
  return &r->items[r->count - 1];
}

void report_number(CheckItem *item, const char *name, double value) {
  CheckNumber n = {{0}, value};
  assert(strlen(name) < sizeof n.name);  // a cut name would be looked up in vain
  snprintf(n.name, sizeof n.name, "%s", name);
  VEC_PUSH(item->numbers, item->nnumbers, item->cap, n);
}

void report_vector(CheckItem *item, const char *name, const double *values, size_t count) {
  CheckVector v = {{0}, xmalloc(count * sizeof(double) + 1), count};
  assert(strlen(name) < sizeof v.name);
  snprintf(v.name, sizeof v.name, "%s", name);
  if (count) memcpy(v.values, values, count * sizeof(double));
  VEC_PUSH(item->vectors, item->nvectors, item->vcap, v);
}

void report_free(CheckReport *r) {
  for (size_t i = 0; i < r->count; i++) {
    sb_free(&r->items[i].reason);
    free(r->items[i].numbers);
    for (size_t k = 0; k < r->items[i].nvectors; k++) free(r->items[i].vectors[k].values);
    free(r->items[i].vectors);
  }
  free(r->items);
  *r = (CheckReport){0};
}

Verdict report_worst(const CheckReport *r) {
  Verdict worst = VERDICT_PASS;
  for (size_t i = 0; i < r->count; i++) {
    Verdict v = r->items[i].verdict;
    if (v == VERDICT_FAIL || (v == VERDICT_WARN && worst != VERDICT_FAIL)) worst = v;
  }
  return worst;
}

// "model.dam:4:9", or "" without a place.
static void place(const CheckItem *item, const DiagSink *sink, char *buf, size_t n) {
  buf[0] = '\0';
  if (!item->has_where || !sink) return;
  uint32_t line, col;
  diag_line_col((DiagSink *)sink, item->where.file, item->where.begin, &line, &col);
  snprintf(buf, n, "%s:%u:%u", diag_source(sink, item->where.file)->name, line, col);
}

// One item in full: verdict, check, subject, place, the whole reason, then its numbers and
// vectors indented.
static void print_item(const CheckItem *it, const DiagSink *sink, StrBuf *out) {
  char where[300];
  place(it, sink, where, sizeof where);
  sb_printf(out, "%-7s %-16s %-16s %s%s%s\n", verdict_name(it->verdict), it->check, it->subject,
            where, where[0] ? ": " : "", sb_str(&it->reason));
  for (size_t k = 0; k < it->nnumbers; k++)
    sb_printf(out, "%44s%-28s %.6g\n", "", it->numbers[k].name,
              isnan(it->numbers[k].value) ? NAN : it->numbers[k].value);  // "nan", never "-nan"
  for (size_t k = 0; k < it->nvectors; k++) {
    const CheckVector *v = &it->vectors[k];
    sb_printf(out, "%44s%-28s", "", v->name);
    for (size_t j = 0; j < v->count; j++) {
      if (v->count > 8 && j == 4) {
        sb_printf(out, " ... (%zu values)", v->count);
        j = v->count - 4;
      }
      sb_printf(out, " %.6g", isnan(v->values[j]) ? NAN : v->values[j]);
    }
    sb_putc(out, '\n');
  }
}

// The group an item is shown in: its layer ("layer v"), or the network.
static const char *group_of(const CheckItem *it) {
  return strncmp(it->subject, "layer ", 6) ? "network" : it->subject;
}

// The bytes of the first `chars` characters of UTF-8 text `s` (all of it when shorter): a
// line is cut between characters, never inside one, and its width counted in characters.
static size_t utf8_prefix(const char *s, int chars) {
  size_t i = 0;
  for (int c = 0; s[i] && c < chars; c++)
    do i++;
    while (((unsigned char)s[i] & 0xC0) == 0x80);
  return i;
}

void report_print_text(const CheckReport *r, const DiagSink *sink, bool details, StrBuf *out) {
  size_t counts[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < r->count; i++) counts[r->items[i].verdict]++;
  sb_printf(out, "%s: %zu passed, %zu warnings, %zu failed, %zu skipped\n\n",
            verdict_name(report_worst(r)), counts[VERDICT_PASS], counts[VERDICT_WARN],
            counts[VERDICT_FAIL], counts[VERDICT_SKIPPED]);
  if (details) {
    for (size_t i = 0; i < r->count; i++) print_item(&r->items[i], sink, out);
    return;
  }
  // Failures and warnings first, in full; then one line an item, grouped by layer and the
  // network, its reason cut to the line.
  bool any = false;
  for (size_t i = 0; i < r->count; i++)
    if (r->items[i].verdict == VERDICT_FAIL || r->items[i].verdict == VERDICT_WARN) {
      print_item(&r->items[i], sink, out);
      any = true;
    }
  if (any) sb_putc(out, '\n');
  for (size_t g = 0; g < r->count; g++) {
    const char *group = group_of(&r->items[g]);
    bool first = true;  // the group's first item: its header
    for (size_t i = 0; i < g && first; i++) first = strcmp(group_of(&r->items[i]), group) != 0;
    if (!first) continue;
    char where[300] = "";
    for (size_t i = g; i < r->count && !where[0]; i++)
      if (!strcmp(group_of(&r->items[i]), group) && strcmp(group, "network")) place(&r->items[i], sink, where, sizeof where);
    sb_printf(out, "%s%s%s%s\n", group, where[0] ? " (" : "", where, where[0] ? ")" : "");
    for (size_t i = g; i < r->count; i++) {
      const CheckItem *it = &r->items[i];
      if (strcmp(group_of(it), group)) continue;
      char line[200];
      int used = snprintf(line, sizeof line, "  %-7s %-16s %-14s ", verdict_name(it->verdict), it->check,
                          strcmp(group, "network") && !strcmp(it->subject, group) ? "" : it->subject);
      const char *reason = sb_str(&it->reason);
      int room = 118 - used;
      size_t cut = utf8_prefix(reason, room);
      if (!reason[cut]) sb_printf(out, "%s%s\n", line, reason);
      else sb_printf(out, "%s%.*s...\n", line, (int)utf8_prefix(reason, room - 3), reason);
    }
  }
  sb_append(out, "\n(--details: every item in full with its numbers; --json: everything)\n");
}

void report_print_json(const CheckReport *r, const DiagSink *sink, const char *model, StrBuf *out) {
  sb_append(out, "{\"model\": ");
  sb_json_string(out, model);
  sb_append(out, ", \"verdict\": ");
  sb_json_string(out, verdict_name(report_worst(r)));
  sb_append(out, ", \"items\": [");
  for (size_t i = 0; i < r->count; i++) {
    const CheckItem *it = &r->items[i];
    char where[300];
    place(it, sink, where, sizeof where);
    sb_append(out, i ? ",\n  {" : "\n  {");
    sb_append(out, "\"check\": ");
    sb_json_string(out, it->check);
    sb_append(out, ", \"subject\": ");
    sb_json_string(out, it->subject);
    sb_append(out, ", \"where\": ");
    sb_json_string(out, where);
    sb_append(out, ", \"verdict\": ");
    sb_json_string(out, verdict_name(it->verdict));
    sb_append(out, ", \"reason\": ");
    sb_json_string(out, sb_str(&it->reason));
    sb_append(out, ", \"numbers\": {");
    for (size_t k = 0; k < it->nnumbers; k++) {
      if (k) sb_append(out, ", ");
      sb_json_string(out, it->numbers[k].name);
      sb_append(out, ": ");
      sb_json_number(out, it->numbers[k].value);
    }
    sb_append(out, "}, \"vectors\": {");
    for (size_t k = 0; k < it->nvectors; k++) {
      sb_append(out, k ? ", " : "");
      sb_json_string(out, it->vectors[k].name);
      sb_append(out, ": [");
      for (size_t j = 0; j < it->vectors[k].count; j++) {
        sb_append(out, j ? ", " : "");
        sb_json_number(out, it->vectors[k].values[j]);
      }
      sb_putc(out, ']');
    }
    sb_append(out, "}}");
  }
  sb_append(out, "\n]}\n");
}
