// The report of `damc check`: one item per check and subject (a layer, a term, a param, the
// network), each with a verdict, the reason, the numbers behind it and the source place it
// concerns; printed for people (verdicts first, then the numbers) or as JSON (everything).
//
// The checks themselves (docs/theory.md §4) live in the other files of compiler/check/ and
// only add items here.
#ifndef DAMC_CHECK_REPORT_H
#define DAMC_CHECK_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "support/diag.h"
#include "support/strbuf.h"

// The float64 constants the checks' tolerances are written in (docs/theory.md §4.1).
#define CHECK_EPS 2.220446049250313e-16
#define CHECK_CBRT_EPS 6.055454452393343e-06  // eps^(1/3), the step of §4.1.1
// A decision on a number that is 0 (or 1) at a marginal fixed point: within this band of it,
// the verdict is "marginal" (warn), as rounding of the Newton-polished point (|r| <= 1e-10,
// §4.4.3) through a d x d eigenproblem can move it by about that much.
#define CHECK_MARGIN 1e-8

typedef enum { VERDICT_PASS, VERDICT_WARN, VERDICT_FAIL, VERDICT_SKIPPED } Verdict;

typedef struct {
  char name[96];  // written by the checks themselves: report_number asserts it fits
  double value;
} CheckNumber;

typedef struct {
  char name[96];
  double *values;  // owned
  size_t count;
} CheckVector;

typedef struct {
  char check[32];     // "derivatives", "convexity", "bounded-energy", "energy-decrease", ...
  char subject[96];   // "layer v", "network", "param beta", "energy term 1"
  Span where;         // the source place it concerns (file 0, 0..0: none)
  bool has_where;
  Verdict verdict;
  StrBuf reason;      // one or more sentences: why, and for a failure what to change
  CheckNumber *numbers;
  size_t nnumbers, cap;
  CheckVector *vectors;  // a spectrum or a state: all of it in JSON, its ends in the text
  size_t nvectors, vcap;
} CheckItem;

typedef struct {
  CheckItem *items;
  size_t count, cap;
} CheckReport;

// Adds an item; `where` may be NULL. Returns it, to add numbers to.
__attribute__((format(printf, 6, 7))) CheckItem *report_add(CheckReport *r, const char *check,
                                                           const char *subject,
                                                           const Span *where, Verdict v,
                                                           const char *fmt, ...);
void report_number(CheckItem *item, const char *name, double value);
// Adds a copy of `values[0..count)`.
void report_vector(CheckItem *item, const char *name, const double *values, size_t count);
void report_free(CheckReport *r);

// The worst verdict of the report (FAIL > WARN > PASS; SKIPPED counts as PASS).
Verdict report_worst(const CheckReport *r);

// For people: a line of counts; then, unless `details`, the failures and warnings in full
// and one line an item (its reason cut to the line) grouped by layer and the network, so that
// a model's report fits a screen; with `details`, every item in full: verdict, check,
// subject, place, reason, then its numbers indented (of a vector, at most its first and last
// four values). `sink` turns spans into FILE:LINE:COL.
void report_print_text(const CheckReport *r, const DiagSink *sink, bool details, StrBuf *out);
// Every item and number as one JSON object: {"model": ..., "verdict": ..., "items": [...]}.
void report_print_json(const CheckReport *r, const DiagSink *sink, const char *model, StrBuf *out);

const char *verdict_name(Verdict v);

#endif
