// Whether a value that is not finite in the float32 kernels would be finite in float64: the
// one sample evaluated again by the model compiled in float64, so that a message blames the
// precision only when it is the cause (exp(100) overflows float32, log(-1) is NaN in both).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "support/common.h"

// Row `sample` of each array of `from` that has a batch axis; the others as they are.
static EngineArray *one_sample(const EngineArray *from, int n, size_t sample) {
  if (!from) return NULL;
  EngineArray *rows = xcalloc((size_t)n + 1, sizeof *rows);
  for (int a = 0; a < n; a++) {
    rows[a] = from[a];
    if (!from[a].data || from[a].rank != 2) continue;
    size_t row = from[a].shape[1];
    rows[a] = (EngineArray){from[a].dtype, 1, {row}, NULL};
    rows[a].data = (const char *)from[a].data + sample * row * damrt_dtype_size(from[a].dtype);
  }
  return rows;
}

// Element `index` of output `name` of kernel `kind` at sample `sample` of `at`, computed by
// the model compiled in float64, into *value; unknown when the float64 kernels did not
// compile or have no such output. damc run's x_A of an eliminated layer is the eval
// kernel's u_A.
static F64Verdict f64_value(const Engine *e, KernelKind kind, const EngineArrays *at,
                            size_t sample, const char *name, size_t index, double *value) {
  StrBuf err = {0};
  Engine *c = engine_clone(e, &err);
  F64Verdict verdict = F64_UNKNOWN;
  if (c) {
    engine_target(c, DAMRT_F64, false);
    engine_want_only(c, kind);
    int n = e->net->nlayers;
    EngineArray *state = one_sample(at->state, n, sample), *input = one_sample(at->input, n, sample),
                *direction = one_sample(at->direction, n, sample);
    EngineArrays one = {state, input, NULL, direction};
    EngineResults res = {0};
    engine_apply(c, kind, &one, &res, &err);  // its outputs are kept when one is not finite
    const DamrtTensor *t = engine_result(&res, name);
    if (!t && !strncmp(name, "x_", 2)) {
      char u[80];
      snprintf(u, sizeof u, "u_%s", name + 2);
      t = engine_result(&res, u);
    }
    if (t && index < t->count) {
      *value = ((const double *)t->data)[index];
      verdict = isfinite(*value) ? F64_FINITE : F64_NOT_FINITE;
    }
    engine_results_free(&res);
    free(state);
    free(input);
    free(direction);
    engine_free(c);
  }
  sb_free(&err);
  return verdict;
}

F64Verdict engine_precision_hint(const Engine *e, KernelKind kind, const EngineArrays *at,
                                 size_t sample, const char *name, size_t index, StrBuf *out) {
  if (e->dtype != DAMRT_F32) return F64_NOT_FINITE;  // the value is float64's
  double v;
  NumText t;
  F64Verdict verdict = f64_value(e, kind, at, sample, name, index, &v);
  switch (verdict) {
  case F64_FINITE:
    sb_printf(out, "; it overflows float32 there (in float64 it is %s): use %s",
              number_text(v, &t), e->phrases[PHRASE_F64]);
    break;
  case F64_NOT_FINITE: sb_append(out, ", in float64 too: the precision is not the cause"); break;
  case F64_UNKNOWN: sb_printf(out, " (%s may help)", e->phrases[PHRASE_F64]); break;
  }
  return verdict;
}
