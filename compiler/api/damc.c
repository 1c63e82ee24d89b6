// The C API (include/damc.h), over the engine.
#include "damc.h"
#include "api/damc_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check/check.h"
#include "engine/engine.h"
#include "support/common.h"

struct DamcModel {
  Engine *engine;       // the engine in use: of the precision selected last, or the only one
  Engine *engines[3];   // per DamcPrecision: the engine compiled for it, or NULL
  DamrtDtype dtype;
  bool compiled;
  char *explain[2];     // damc_explain's texts (plain, LaTeX), made when first asked for
  char *warnings;       // damc_model_warnings: of the last compile or set param, or NULL
};

struct DamcResults {
  EngineResults list;
};

void damc_error_clear(DamcError *err) {
  if (!err) return;
  free(err->message);
  err->message = NULL;
  err->status = 0;
}

// Moves the text of `sb` into `err` with `status`; returns 0 (the failure value).
static int fail(DamcError *err, int status, StrBuf *sb) {
  if (err) {
    damc_error_clear(err);
    err->status = status;
    err->message = xstrdup(sb_str(sb));
  }
  sb_free(sb);
  return 0;
}

// fail for an operation of engine `e`. A failure is never reported without words: an empty
// text (a bug: some path failed without saying why) becomes a message that says so, unless
// the engine said it on its echo stream (damc_model_open with one: the command line).
static int fail_in(const Engine *e, DamcError *err, int status, StrBuf *sb) {
  if (sb->len == 0 && !(e && engine_echo(e)))
    sb_append(sb, "internal error: the call failed without a reason (a bug in damc; please "
                  "report it)\n");
  return fail(err, status, sb);
}

// An argument the caller must give (a model, a name, a path, a text) that is NULL: status 2
// and a message naming the function and the argument, never a crash.
#define REQUIRE(arg, failed)                                        \
  do {                                                              \
    if (!(arg)) {                                                   \
      StrBuf sb_ = {0};                                             \
      sb_printf(&sb_, "%s: %s is NULL\n", __func__, #arg);          \
      fail(err, 2, &sb_);                                           \
      return failed;                                                \
    }                                                               \
  } while (0)

// A model through the pipeline up to its equations (engine.h); NULL when it is wrong.
static DamcModel *open_model(Engine *e, DamcError *err) {
  StrBuf sb = {0};
  if (!engine_compile(e, STAGE_DERIVE, &sb)) {
    engine_free(e);
    fail(err, 1, &sb);
    return NULL;
  }
  sb_free(&sb);
  DamcModel *m = xcalloc(1, sizeof *m);
  m->engine = e;
  return m;
}

// The C API's words in the engine's messages: its functions and values, where the command
// line (damc_model_open) names its flags.
static const char *const api_phrases[PHRASE_COUNT] = {
    [PHRASE_WEIGHT] = "damc_bind_weight(model, \"{name}\", ...)",
    [PHRASE_WEIGHTS] = "with damc_bind_weight",
    [PHRASE_DIM] = "damc_set_dim(model, \"{name}\", {value})",
    [PHRASE_DIM_SIZE] = "damc_set_dim(model, \"{name}\", {value})",
    [PHRASE_DIM_ORIGIN] = "damc_set_dim",
    [PHRASE_PARAM] = "damc_set_param(model, \"{name}\", {value})",
    [PHRASE_PARAM_VALUE] = "damc_set_param(model, \"{name}\", {value})",
    [PHRASE_F64] = "damc_use_precision(model, DAMC_F64)",
    [PHRASE_DT] = "DamcRunOptions.dt",
    [PHRASE_TOL] = "DamcRunOptions.tol",
    [PHRASE_MAX_STEPS] = "DamcRunOptions.max_steps",
    [PHRASE_DOPRI5] = "DAMC_DOPRI5",
    [PHRASE_ASYNC] = "DAMC_ASYNC",
    [PHRASE_EULER] = "DAMC_EULER",
    [PHRASE_EVAL] = "damc_eval",
    [PHRASE_CHECK] = "damc_check",
    [PHRASE_EXPLAIN] = "damc_explain",
};

// An engine whose messages speak to a caller of the C API.
static Engine *api_engine(Engine *e) {
  for (int p = 0; p < PHRASE_COUNT; p++) engine_set_phrase(e, (EnginePhrase)p, api_phrases[p]);
  return e;
}

DamcModel *damc_model_from_file(const char *path, DamcError *err) {
  REQUIRE(path, NULL);
  return open_model(api_engine(engine_new(path, NULL)), err);
}

DamcModel *damc_model_open(const char *path, FILE *echo, DamcError *err) {
  REQUIRE(path, NULL);
  return open_model(engine_new(path, echo), err);
}

DamcModel *damc_model_from_string(const char *name, const char *text, DamcError *err) {
  REQUIRE(name, NULL);
  REQUIRE(text, NULL);
  return open_model(api_engine(engine_new_text(name, text, strlen(text), NULL)), err);
}

void damc_model_free(DamcModel *model) {
  if (!model) return;
  // Every engine once: the first compiled is the model's own, the others its clones.
  if (model->engine != model->engines[DAMC_F32] && model->engine != model->engines[DAMC_F64])
    engine_free(model->engine);
  engine_free(model->engines[DAMC_F32]);
  engine_free(model->engines[DAMC_F64]);
  free(model->explain[0]);
  free(model->explain[1]);
  free(model->warnings);
  free(model);
}

// Queries without an error value: 0 or NULL for a NULL model or an index out of range.
int damc_layer_count(const DamcModel *model) {
  return model ? engine_network(model->engine)->nlayers : 0;
}

const char *damc_layer_name(const DamcModel *model, int layer) {
  return layer >= 0 && layer < damc_layer_count(model)
             ? engine_network(model->engine)->layers[layer].name
             : NULL;
}

size_t damc_layer_size(const DamcModel *model, int layer) {
  return layer >= 0 && layer < damc_layer_count(model) ? engine_layer_size(model->engine, layer)
                                                       : 0;
}

Engine *damc_model_engine(DamcModel *model) { return model->engine; }

int damc_weight_count(const DamcModel *model) {
  return model ? engine_network(model->engine)->nweights : 0;
}

const char *damc_weight_name(const DamcModel *model, int weight) {
  return weight >= 0 && weight < damc_weight_count(model)
             ? engine_network(model->engine)->weights[weight].name
             : NULL;
}

int damc_param_count(const DamcModel *model) {
  return model ? engine_network(model->engine)->nparams : 0;
}

const char *damc_param_name(const DamcModel *model, int param) {
  return param >= 0 && param < damc_param_count(model)
             ? engine_network(model->engine)->params[param].name
             : NULL;
}

EngineArray damc_engine_array(const DamcArray *a) {
  EngineArray v = {a->dtype == DAMC_F32 ? DAMRT_F32 : DAMRT_F64, a->rank, {0}, a->data};
  for (int i = 0; i < a->rank && i < DAMRT_MAX_RANK; i++) v.shape[i] = a->shape[i];
  return v;
}

static bool valid_array(const DamcArray *a) {
  return a->rank >= 0 && a->rank <= DAMRT_MAX_RANK &&
         (a->dtype == 0 || a->dtype == DAMC_F32 || a->dtype == DAMC_F64);
}

int damc_bind_weight(DamcModel *model, const char *name, const DamcArray *weight,
                     const char *origin, DamcError *err) {
  REQUIRE(model, 0);
  REQUIRE(name, 0);
  StrBuf sb = {0};
  if (!weight || !weight->data || !valid_array(weight)) {
    sb_append(&sb, "damc_bind_weight: give data, a rank from 0 to 4 and a dtype of 0, "
                   "DAMC_F32 or DAMC_F64\n");
    return fail(err, 2, &sb);
  }
  if (model->compiled) {
    sb_append(&sb, "damc_bind_weight: the model is already compiled (damc_rebind_weight replaces a "
                   "bound weight)\n");
    return fail(err, 2, &sb);
  }
  EngineArray w = damc_engine_array(weight);
  if (!engine_bind_weight(model->engine, name, &w, origin ? origin : "damc_bind_weight", &sb))
    return fail_in(model->engine, err, 1, &sb);
  sb_free(&sb);
  return 1;
}



int damc_set_dim(DamcModel *model, const char *name, int64_t size, DamcError *err) {
  REQUIRE(model, 0);
  REQUIRE(name, 0);
  StrBuf sb = {0};
  if (model->compiled) {
    sb_append(&sb, "damc_set_dim: the model is already compiled\n");
    return fail(err, 2, &sb);
  }
  if (!engine_set_dim(model->engine, name, size, &sb)) return fail_in(model->engine, err, 1, &sb);
  sb_free(&sb);
  return 1;
}

// The warnings of the params as set, from the engine in use (compiled).
static void take_warnings(DamcModel *model) {
  StrBuf sb = {0};
  engine_warn_param_rules(model->engine, &sb);
  free(model->warnings);
  model->warnings = xstrdup(sb_str(&sb));
  sb_free(&sb);
}

const char *damc_model_warnings(const DamcModel *model) {
  return model && model->warnings ? model->warnings : "";
}

// (The command line compiles with damc_compile_to and says the warnings itself, on stderr.)
int damc_compile(DamcModel *model, DamcPrecision precision, DamcError *err) {
  if (!damc_compile_to(model, precision, false, STAGE_JIT, err)) return 0;
  take_warnings(model);
  return 1;
}

int damc_compile_to(DamcModel *model, DamcPrecision precision, bool showable, EngineStage last,
                    DamcError *err) {
  REQUIRE(model, 0);
  StrBuf sb = {0};
  if (model->compiled) {
    sb_append(&sb, "damc_compile: the model is already compiled\n");
    return fail(err, 2, &sb);
  }
  if (precision != DAMC_F32 && precision != DAMC_F64) {
    sb_append(&sb, "damc_compile: the precision is DAMC_F32 or DAMC_F64\n");
    return fail(err, 2, &sb);
  }
  model->dtype = precision == DAMC_F32 ? DAMRT_F32 : DAMRT_F64;
  engine_target(model->engine, model->dtype, showable);
  if (!engine_compile(model->engine, last, &sb)) return fail_in(model->engine, err, 1, &sb);
  model->compiled = true;
  model->engines[precision] = model->engine;
  sb_free(&sb);
  return 1;
}

int damc_set_kernels(DamcModel *model, DamcKernels kernels, DamcError *err) {
  REQUIRE(model, 0);
  if (kernels != DAMC_KERNELS_AUTO && kernels != DAMC_KERNELS_BLAS && kernels != DAMC_KERNELS_FUSED) {
    StrBuf sb = {0};
    sb_append(&sb, "damc_set_kernels: DAMC_KERNELS_AUTO, DAMC_KERNELS_BLAS or DAMC_KERNELS_FUSED\n");
    return fail(err, 2, &sb);
  }
  PlanKernels k = kernels == DAMC_KERNELS_BLAS ? PLAN_KERNELS_BLAS
                  : kernels == DAMC_KERNELS_FUSED ? PLAN_KERNELS_FUSED : PLAN_KERNELS_AUTO;
  for (int p = 0; p < 3; p++)
    if (model->engines[p] && model->engines[p] != model->engine) engine_set_kernels(model->engines[p], k);
  engine_set_kernels(model->engine, k);
  return 1;
}

int damc_use_precision(DamcModel *model, DamcPrecision precision, DamcError *err) {
  REQUIRE(model, 0);
  StrBuf sb = {0};
  if (precision != DAMC_F32 && precision != DAMC_F64) {
    sb_append(&sb, "damc_use_precision: the precision is DAMC_F32 or DAMC_F64\n");
    return fail(err, 2, &sb);
  }
  if (!model->compiled) return damc_compile(model, precision, err);
  if (!model->engines[precision]) {
    // A copy of the model with the same weights (read in place) and params, compiled for
    // the other precision; the kernels compiled before are kept.
    Engine *e = engine_clone(model->engine, &sb);
    if (!e) return fail_in(model->engine, err, 1, &sb);
    engine_target(e, precision == DAMC_F32 ? DAMRT_F32 : DAMRT_F64, false);
    if (!engine_compile(e, STAGE_JIT, &sb)) {
      engine_free(e);
      return fail_in(model->engine, err, 1, &sb);
    }
    model->engines[precision] = e;
  }
  model->engine = model->engines[precision];
  model->dtype = precision == DAMC_F32 ? DAMRT_F32 : DAMRT_F64;
  sb_free(&sb);
  return 1;
}

unsigned damc_model_compile_count(const DamcModel *model) {
  unsigned n = 0;
  for (int p = DAMC_F32; model && p <= DAMC_F64; p++)
    if (model->engines[p]) n += engine_compile_count(model->engines[p]);
  return n;
}

// The engines a weight or a param goes to: every compiled one, or the model's own.
static int engines_of(DamcModel *model, Engine **out) {
  int n = 0;
  for (int p = DAMC_F32; p <= DAMC_F64; p++)
    if (model->engines[p]) out[n++] = model->engines[p];
  if (n == 0) out[n++] = model->engine;
  return n;
}

int damc_set_param(DamcModel *model, const char *name, double value, DamcError *err) {
  REQUIRE(model, 0);
  REQUIRE(name, 0);
  StrBuf sb = {0};
  Engine *engines[2];
  int n = engines_of(model, engines);
  // A value that is not a number is a bad argument (as damc_run's options are); a name the
  // model lacks, or a tau the value makes invalid, is the model's.
  for (int i = 0; i < n; i++)
    if (!engine_set_param(engines[i], name, value, &sb))
      return fail(err, isfinite(value) ? 1 : 2, &sb);
  if (model->compiled) take_warnings(model);
  sb_free(&sb);
  return 1;
}

int damc_set_phrase(DamcModel *model, DamcPhrase phrase, const char *text, DamcError *err) {
  REQUIRE(model, 0);
  static const EnginePhrase engine_of[] = {
      [DAMC_PHRASE_WEIGHT] = PHRASE_WEIGHT,         [DAMC_PHRASE_WEIGHTS] = PHRASE_WEIGHTS,
      [DAMC_PHRASE_DIM] = PHRASE_DIM,               [DAMC_PHRASE_DIM_SIZE] = PHRASE_DIM_SIZE,
      [DAMC_PHRASE_DIM_ORIGIN] = PHRASE_DIM_ORIGIN, [DAMC_PHRASE_PARAM] = PHRASE_PARAM,
      [DAMC_PHRASE_PARAM_VALUE] = PHRASE_PARAM_VALUE, [DAMC_PHRASE_F64] = PHRASE_F64,
      [DAMC_PHRASE_DT] = PHRASE_DT,                 [DAMC_PHRASE_TOL] = PHRASE_TOL,
      [DAMC_PHRASE_MAX_STEPS] = PHRASE_MAX_STEPS,   [DAMC_PHRASE_DOPRI5] = PHRASE_DOPRI5,
      [DAMC_PHRASE_ASYNC] = PHRASE_ASYNC,           [DAMC_PHRASE_EULER] = PHRASE_EULER,
      [DAMC_PHRASE_EVAL] = PHRASE_EVAL,             [DAMC_PHRASE_CHECK] = PHRASE_CHECK,
      [DAMC_PHRASE_EXPLAIN] = PHRASE_EXPLAIN,
  };
  size_t n = sizeof engine_of / sizeof *engine_of;
  if ((unsigned)phrase >= n || (!text && phrase != DAMC_PHRASE_DIM_SIZE)) {
    StrBuf sb = {0};
    sb_printf(&sb, "damc_set_phrase: phrase %d is from DAMC_PHRASE_WEIGHT to DAMC_PHRASE_EXPLAIN, "
              "and its text NULL for DAMC_PHRASE_DIM_SIZE only\n", (int)phrase);
    return fail(err, 2, &sb);
  }
  Engine *engines[2];
  int count = engines_of(model, engines);
  for (int i = 0; i < count; i++) engine_set_phrase(engines[i], engine_of[phrase], text);
  return 1;
}

int damc_rebind_weight(DamcModel *model, const char *name, const DamcArray *weight,
                       const char *origin, DamcError *err) {
  REQUIRE(model, 0);
  REQUIRE(name, 0);
  StrBuf sb = {0};
  if (!weight || !weight->data || !valid_array(weight)) {
    sb_append(&sb, "damc_rebind_weight: give data, a rank from 0 to 4 and a dtype of 0, "
                   "DAMC_F32 or DAMC_F64\n");
    return fail(err, 2, &sb);
  }
  Engine *engines[2];
  int n = engines_of(model, engines);
  EngineArray w = damc_engine_array(weight);
  for (int i = 0; i < n; i++)
    if (!engine_rebind_weight(engines[i], name, &w, origin ? origin : "damc_rebind_weight", &sb))
      return fail_in(engines[i], err, 1, &sb);
  sb_free(&sb);
  return 1;
}

int damc_result_copy(const DamcResults *results, const char *name, void *out,
                     DamcPrecision dtype, size_t count, DamcError *err) {
  StrBuf sb = {0};
  size_t have = 0;
  const double *r = results && name ? damc_result(results, name, &have) : NULL;
  if (!r) {
    sb_printf(&sb, "damc_result_copy: there is no result '%s'\n", name ? name : "(null)");
    return fail(err, 2, &sb);
  }
  if (!out || count != have || (dtype != 0 && dtype != DAMC_F32 && dtype != DAMC_F64)) {
    sb_printf(&sb, "damc_result_copy: result '%s' has %zu values; give a buffer of %zu "
              "values of DAMC_F32 or DAMC_F64 (given: %zu)\n", name, have, have, count);
    return fail(err, 2, &sb);
  }
  if (dtype == DAMC_F32)
    for (size_t i = 0; i < count; i++) ((float *)out)[i] = (float)r[i];
  else if (count)
    memcpy(out, r, count * sizeof *r);
  sb_free(&sb);
  return 1;
}

const char *damc_explain(DamcModel *model, int latex) {
  if (!model) return NULL;
  int k = latex ? 1 : 0;
  if (!model->explain[k]) {
    StrBuf out = {0};
    network_explain(&out, engine_network(model->engine), latex ? PRINT_LATEX : PRINT_PRETTY);
    model->explain[k] = xstrdup(sb_str(&out));
    sb_free(&out);
  }
  return model->explain[k];
}

// Copies at most `cap` - 1 bytes of [s, s + n) into `dst`, NUL-terminated.
static void copy_text(char *dst, size_t cap, const char *s, size_t n) {
  if (n >= cap) n = cap - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

// Parses one line of diagnostics text: "FILE:LINE:COL: SEVERITY: MESSAGE" (located), an
// unlocated message, or a line of a source excerpt ("    3 | ...": false).
static bool parse_diagnostic(const char *s, size_t n, DamcDiagnostic *d) {
  memset(d, 0, sizeof *d);
  if (n == 0 || s[0] == ' ') return false;
  static const char *const severities[] = {"error", "warning", "note"};
  // FILE ends at the last ':' followed by LINE:COL: SEVERITY: before the end of the line.
  for (size_t i = n; i-- > 0;) {
    if (s[i] != ':') continue;
    size_t j = i + 1;
    unsigned long line = 0, col = 0;
    size_t k = j;
    while (k < n && s[k] >= '0' && s[k] <= '9') line = line * 10 + (unsigned)(s[k++] - '0');
    if (k == j || k >= n || s[k] != ':') continue;
    size_t c = ++k;
    while (k < n && s[k] >= '0' && s[k] <= '9') col = col * 10 + (unsigned)(s[k++] - '0');
    if (k == c || k + 1 >= n || s[k] != ':' || s[k + 1] != ' ') continue;
    k += 2;
    for (int v = 0; v < 3; v++) {
      size_t len = strlen(severities[v]);
      if (k + len + 1 < n && !strncmp(s + k, severities[v], len) && s[k + len] == ':') {
        copy_text(d->file, sizeof d->file, s, i);
        d->line = (unsigned)line;
        d->column = (unsigned)col;
        copy_text(d->severity, sizeof d->severity, severities[v], len);
        size_t m = k + len + 1;
        while (m < n && s[m] == ' ') m++;
        copy_text(d->message, sizeof d->message, s + m, n - m);
        return true;
      }
    }
  }
  copy_text(d->severity, sizeof d->severity, "error", 5);
  copy_text(d->message, sizeof d->message, s, n);
  return true;
}

size_t damc_error_diagnostic_count(const DamcError *err) {
  size_t count = 0;
  DamcDiagnostic d;
  for (const char *s = err && err->message ? err->message : ""; *s;) {
    size_t n = strcspn(s, "\n");
    count += parse_diagnostic(s, n, &d);
    s += n + (s[n] == '\n');
  }
  return count;
}

int damc_error_diagnostic(const DamcError *err, size_t i, DamcDiagnostic *diagnostic) {
  size_t k = 0;
  for (const char *s = err && err->message ? err->message : ""; *s;) {
    size_t n = strcspn(s, "\n");
    if (parse_diagnostic(s, n, diagnostic) && k++ == i) return 1;
    s += n + (s[n] == '\n');
  }
  memset(diagnostic, 0, sizeof *diagnostic);
  return 0;
}

// The batch as the engine's per-layer views (no copies).
typedef struct {
  EngineArray *all[3];
  EngineArrays arrays;
} Views;

// False on a bad argument (an array of a bad rank or dtype, a model not compiled).
static bool to_views(DamcModel *model, const DamcBatch *batch, Views *v, StrBuf *sb) {
  int n = damc_layer_count(model);
  const DamcArray *src[3] = {batch ? batch->states : NULL, batch ? batch->inputs : NULL,
                             batch ? batch->clamps : NULL};
  bool ok = true;
  for (int k = 0; k < 3; k++) {
    v->all[k] = src[k] ? xcalloc((size_t)n + 1, sizeof(EngineArray)) : NULL;
    for (int a = 0; src[k] && a < n; a++) {
      if (!src[k][a].data) continue;
      if (!valid_array(&src[k][a])) {
        sb_printf(sb, "layer '%s': an array of rank %d and dtype %d; give [n] or [B, n] of "
                  "DAMC_F32 or DAMC_F64\n", damc_layer_name(model, a), src[k][a].rank,
                  (int)src[k][a].dtype);
        ok = false;
        continue;
      }
      v->all[k][a] = damc_engine_array(&src[k][a]);
    }
  }
  v->arrays = (EngineArrays){v->all[0], v->all[1], v->all[2], NULL};
  if (!model->compiled) {
    sb_append(sb, "the model is not compiled: call damc_compile first\n");
    return false;
  }
  return ok;
}

static void free_views(Views *v) {
  for (int k = 0; k < 3; k++) free(v->all[k]);
}

// The results, or NULL with `status` (1: the model, a tensor or the run; 2: a bad argument).
static DamcResults *finish(const DamcModel *model, DamcResults *r, int status, DamcError *err,
                           StrBuf *sb) {
  if (status) {
    engine_results_free(&r->list);
    free(r);
    fail_in(model->engine, err, status, sb);
    return NULL;
  }
  sb_free(sb);
  return r;
}

// Kernel `kind` at the batch's states, every output reported.
static DamcResults *apply(DamcModel *model, KernelKind kind, const DamcBatch *batch,
                          DamcError *err) {
  REQUIRE(model, NULL);
  StrBuf sb = {0};
  Views v;
  DamcResults *r = xcalloc(1, sizeof *r);
  int status = !to_views(model, batch, &v, &sb)                                    ? 2
               : !engine_apply(model->engine, kind, &v.arrays, &r->list, &sb) ? 1
                                                                                   : 0;
  free_views(&v);
  return finish(model, r, status, err, &sb);
}

DamcResults *damc_eval(DamcModel *model, const DamcBatch *batch, DamcError *err) {
  return apply(model, KERNEL_EVAL, batch, err);
}

DamcResults *damc_energy(DamcModel *model, const DamcBatch *batch, DamcError *err) {
  return apply(model, KERNEL_ENERGY, batch, err);
}

// The engine's progress report, handed on in the API's type.
static void progress_relay(void *user, const EngineProgress *p) {
  const DamcRunOptions *o = user;
  DamcProgress d = {p->step, p->max_steps, p->t, p->energy, p->converged, p->batch,
                    p->elapsed, p->remaining, p->done};
  o->progress(o->progress_user, &d);
}

// A kernel of derivatives at the batch's states along `directions`.
static DamcResults *derivative(DamcModel *model, KernelKind kind, const DamcBatch *batch,
                               const DamcArray *directions, DamcError *err) {
  REQUIRE(model, NULL);
  StrBuf sb = {0};
  Views v;
  DamcResults *r = xcalloc(1, sizeof *r);
  int n = damc_layer_count(model);
  EngineArray *dirs = xcalloc((size_t)n + 1, sizeof *dirs);
  bool ok = to_views(model, batch, &v, &sb);
  for (int a = 0; ok && directions && a < n; a++) {
    if (!directions[a].data) continue;
    ok = valid_array(&directions[a]);
    if (!ok) sb_printf(&sb, "layer '%s': a direction of rank %d; give [n] or [B, n]\n",
                       damc_layer_name(model, a), directions[a].rank);
    dirs[a] = damc_engine_array(&directions[a]);
  }
  v.arrays.direction = dirs;
  int status = !ok ? 2 : !engine_apply(model->engine, kind, &v.arrays, &r->list, &sb) ? 1 : 0;
  free_views(&v);
  free(dirs);
  return finish(model, r, status, err, &sb);
}

DamcResults *damc_hvp(DamcModel *model, const DamcBatch *batch, const DamcArray *directions,
                      DamcError *err) {
  return derivative(model, KERNEL_HVP, batch, directions, err);
}

DamcResults *damc_jvp(DamcModel *model, const DamcBatch *batch, const DamcArray *directions,
                      DamcError *err) {
  return derivative(model, KERNEL_JVP, batch, directions, err);
}

bool damc_engine_run_options(const DamcModel *model, const DamcRunOptions *d,
                             EngineRunOptions *o, StrBuf *sb) {
  bool single = model->dtype == DAMRT_F32;
  *o = (EngineRunOptions){d->method == DAMC_EULER     ? DAMRT_EULER
                          : d->method == DAMC_RK4     ? DAMRT_RK4
                          : d->method == DAMC_ITERATE ? DAMRT_ITERATE
                                                      : DAMRT_DOPRI5,
                          d->method == DAMC_ASYNC,
                          d->dt,
                          d->rtol > 0 ? d->rtol : single ? 1e-6 : 1e-9,
                          d->atol > 0 ? d->atol : single ? 1e-8 : 1e-11,
                          d->tol > 0 ? d->tol : d->tol < 0 ? 0 : single ? DAMRT_TOL_F32 : DAMRT_TOL_F64,
                          d->max_steps ? d->max_steps : 10000,
                          d->noise_T,
                          d->seed,
                          d->trace,
                          d->progress ? progress_relay : NULL,
                          (void *)d,
                          d->cancel,
                          NULL,
                          NULL,
                          d->order == DAMC_ORDER_SEQUENTIAL};
  // A number that is not one is refused, not replaced by a default: 0 asks for the default.
  const struct {
    const char *name;
    double value;
    bool negative_ok;  // tol < 0: never stop early
  } numbers[] = {{"dt", d->dt, false}, {"rtol", d->rtol, false}, {"atol", d->atol, false},
                 {"tol", d->tol, true}};
  for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
    if (!isfinite(numbers[i].value) || (!numbers[i].negative_ok && numbers[i].value < 0)) {
      sb_printf(sb, "%s = %g: expected a finite number%s (0: the default)\n", numbers[i].name,
                numbers[i].value, numbers[i].negative_ok ? "" : " >= 0");
      return false;
    }
  if (d->order != DAMC_ORDER_RANDOM && d->order != DAMC_ORDER_SEQUENTIAL) {
    sb_printf(sb, "the order of the units (%d) is DAMC_ORDER_RANDOM or DAMC_ORDER_SEQUENTIAL\n",
              (int)d->order);
    return false;
  }
  // Options that belong to another method are refused, not ignored (as the command line
  // does), and the methods named in the caller's words (a binding's keywords).
  StrBuf euler = {0}, async = {0};
  engine_phrase(model->engine, PHRASE_EULER, NULL, NULL, &euler);
  engine_phrase(model->engine, PHRASE_ASYNC, NULL, NULL, &async);
  bool ok = true;
  if (d->order == DAMC_ORDER_SEQUENTIAL && d->method != DAMC_ASYNC) {
    sb_printf(sb, "the order of the units is an option of %s only\n", sb_str(&async));
    ok = false;
  } else if (d->noise_T != 0 && (d->method != DAMC_EULER && d->method != DAMC_ASYNC)) {
    sb_printf(sb, "noise_T = %g: noise is an option of %s and %s only\n", d->noise_T,
              sb_str(&euler), sb_str(&async));
    ok = false;
  }
  sb_free(&euler);
  sb_free(&async);
  if (!ok) return false;
  if (!(d->noise_T >= 0) || isinf(d->noise_T)) {
    sb_printf(sb, "noise_T = %g: the temperature is a finite number >= 0\n", d->noise_T);
    return false;
  }
  return true;
}

DamcResults *damc_run(DamcModel *model, const DamcBatch *batch, const DamcRunOptions *options,
                      DamcError *err) {
  REQUIRE(model, NULL);
  DamcRunOptions d = {0};
  if (options) d = *options;
  EngineRunOptions o;
  StrBuf sb = {0};
  Views v;
  DamcResults *r = xcalloc(1, sizeof *r);
  if (!damc_engine_run_options(model, &d, &o, &sb)) return finish(model, r, 2, err, &sb);
  int status = !to_views(model, batch, &v, &sb)                            ? 2
               : !engine_run(model->engine, &v.arrays, &o, &r->list, &sb) ? 1
                                                                          : 0;
  free_views(&v);
  return finish(model, r, status, err, &sb);
}

struct DamcCheckReport {
  CheckReport report;
  char **where;  // per item
  StrBuf json;
};

DamcCheckReport *damc_check(DamcModel *model, uint64_t seed, int samples, DamcError *err) {
  REQUIRE(model, NULL);
  StrBuf sb = {0};
  DamcCheckReport *r = xcalloc(1, sizeof *r);
  if (!check_run(model->engine, seed, samples > 0 ? samples : 20, NULL, &r->report, &sb)) {
    damc_check_free(r);
    fail_in(model->engine, err, 1, &sb);
    return NULL;
  }
  sb_free(&sb);
  const DiagSink *sink = engine_diagnostics(model->engine);
  report_print_json(&r->report, sink, engine_network(model->engine)->name, &r->json);
  r->where = xcalloc(r->report.count + 1, sizeof *r->where);
  for (size_t i = 0; i < r->report.count; i++) {
    const CheckItem *it = &r->report.items[i];
    StrBuf w = {0};
    if (it->has_where) {
      uint32_t line, col;
      diag_line_col((DiagSink *)sink, it->where.file, it->where.begin, &line, &col);
      sb_printf(&w, "%s:%u:%u", diag_source(sink, it->where.file)->name, line, col);
    }
    r->where[i] = xstrdup(sb_str(&w));
    sb_free(&w);
  }
  return r;
}

size_t damc_check_count(const DamcCheckReport *report) { return report->report.count; }

void damc_check_item(const DamcCheckReport *report, size_t i, DamcCheckItem *item) {
  const CheckItem *it = &report->report.items[i];
  *item = (DamcCheckItem){it->check, it->subject, report->where[i], verdict_name(it->verdict),
                          sb_str(&it->reason)};
}

double damc_check_number(const DamcCheckReport *report, size_t i, const char *name) {
  const CheckItem *it = &report->report.items[i];
  for (size_t k = 0; k < it->nnumbers; k++)
    if (!strcmp(it->numbers[k].name, name)) return it->numbers[k].value;
  return NAN;
}

const double *damc_check_vector(const DamcCheckReport *report, size_t i, const char *name,
                                size_t *count) {
  const CheckItem *it = &report->report.items[i];
  for (size_t k = 0; k < it->nvectors; k++)
    if (!strcmp(it->vectors[k].name, name)) {
      if (count) *count = it->vectors[k].count;
      return it->vectors[k].values;
    }
  if (count) *count = 0;
  return NULL;
}

const char *damc_check_verdict(const DamcCheckReport *report) {
  return verdict_name(report_worst(&report->report));
}

const char *damc_check_json(const DamcCheckReport *report) { return sb_str(&report->json); }

void damc_check_free(DamcCheckReport *report) {
  if (!report) return;
  for (size_t i = 0; report->where && i < report->report.count; i++) free(report->where[i]);
  free(report->where);
  report_free(&report->report);
  sb_free(&report->json);
  free(report);
}

const double *damc_result(const DamcResults *results, const char *name, size_t *count) {
  for (size_t i = 0; i < results->list.count; i++)
    if (!strcmp(results->list.items[i].name, name)) {
      if (count) *count = results->list.items[i].tensor->count;
      return results->list.items[i].tensor->data;
    }
  return NULL;
}

size_t damc_results_count(const DamcResults *results) { return results->list.count; }

const char *damc_results_warning(const DamcResults *results) {
  return results->list.warning.len ? sb_str(&results->list.warning) : NULL;
}

const char *damc_results_at(const DamcResults *results, size_t i, DamcArray *array) {
  const DamrtTensor *t = results->list.items[i].tensor;
  *array = (DamcArray){t->rank, {0}, t->data, DAMC_F64};
  for (int k = 0; k < t->rank; k++) array->shape[k] = t->shape[k];
  return results->list.items[i].name;
}

void damc_results_free(DamcResults *results) {
  if (!results) return;
  engine_results_free(&results->list);
  free(results);
}
