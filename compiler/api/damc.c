// The C API (include/damc.h), over the engine.
#include "damc.h"
#include "api/damc_internal.h"

#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "support/common.h"

struct DamcModel {
  Engine *engine;
  DamrtDtype dtype;
  bool compiled;
};

struct DamcResults {
  EngineResult items[512];
  int n;
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

static DamcModel *wrap(Engine *e, StrBuf *sb, DamcError *err) {
  if (!e) {
    fail(err, 1, sb);
    return NULL;
  }
  sb_free(sb);
  DamcModel *m = xcalloc(1, sizeof *m);
  m->engine = e;
  return m;
}

DamcModel *damc_model_from_file(const char *path, DamcError *err) {
  StrBuf sb = {0};
  return wrap(engine_open(path, NULL, &sb), &sb, err);
}

DamcModel *damc_model_from_string(const char *name, const char *text, DamcError *err) {
  StrBuf sb = {0};
  return wrap(engine_open_text(name, text, strlen(text), NULL, &sb), &sb, err);
}

void damc_model_free(DamcModel *model) {
  if (!model) return;
  engine_free(model->engine);
  free(model);
}

int damc_layer_count(const DamcModel *model) {
  return engine_network(model->engine)->model->nlayers;
}

const char *damc_layer_name(const DamcModel *model, int layer) {
  return engine_network(model->engine)->model->layers[layer].name;
}

size_t damc_layer_size(const DamcModel *model, int layer) {
  return engine_layer_size(model->engine, layer);
}

Engine *damc_model_engine(DamcModel *model) { return model->engine; }

int damc_bind_weight(DamcModel *model, const char *name, int rank, const size_t *shape,
                     const double *data, const char *origin, DamcError *err) {
  StrBuf sb = {0};
  if (rank < 0 || rank > 4 || !data) {
    sb_append(&sb, "damc_bind_weight: rank must be 0 to 4 and data not NULL");
    return fail(err, 2, &sb);
  }
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, rank, shape, NULL);
  if (!t) {
    sb_append(&sb, "damc_bind_weight: the shape is too large");
    return fail(err, 2, &sb);
  }
  memcpy(t->data, data, t->count * sizeof(double));
  if (!engine_bind_weight(model->engine, name, t, origin ? origin : "damc_bind_weight", &sb))
    return fail(err, 1, &sb);
  sb_free(&sb);
  return 1;
}

int damc_set_param(DamcModel *model, const char *name, double value, DamcError *err) {
  StrBuf sb = {0};
  if (!engine_set_param(model->engine, name, value, &sb)) return fail(err, 1, &sb);
  sb_free(&sb);
  return 1;
}

int damc_compile(DamcModel *model, DamcPrecision precision, DamcError *err) {
  return damc_compile_showable(model, precision, false, err);
}

int damc_compile_showable(DamcModel *model, DamcPrecision precision, bool showable,
                          DamcError *err) {
  StrBuf sb = {0};
  if (model->compiled) {
    sb_append(&sb, "damc_compile: the model is already compiled");
    return fail(err, 2, &sb);
  }
  model->dtype = precision == DAMC_F32 ? DAMRT_F32 : DAMRT_F64;
  if (!engine_prepare(model->engine, model->dtype, showable, &sb)) return fail(err, 1, &sb);
  model->compiled = true;
  sb_free(&sb);
  return 1;
}

// The batch as per-layer tensors for the engine (copies: the engine converts them anyway).
static bool to_arrays(DamcModel *model, const DamcBatch *batch, EngineArrays *arrays, StrBuf *sb) {
  int n = damc_layer_count(model);
  const DamcArray *src[3] = {batch->states, batch->inputs, batch->clamps};
  DamrtTensor **dst[3];
  bool ok = true;
  for (int k = 0; k < 3; k++) {
    dst[k] = xcalloc((size_t)n + 1, sizeof(DamrtTensor *));
    for (int a = 0; src[k] && a < n; a++) {
      const DamcArray *in = &src[k][a];
      if (!in->data) continue;
      if (in->rank != 1 && in->rank != 2) {
        sb_printf(sb, "layer '%s': an array of rank %d; give [n] or [B, n]\n",
                  damc_layer_name(model, a), in->rank);
        ok = false;
        continue;
      }
      dst[k][a] = damrt_tensor_new(DAMRT_F64, in->rank, in->shape, NULL);
      memcpy(dst[k][a]->data, in->data, dst[k][a]->count * sizeof(double));
    }
  }
  *arrays = (EngineArrays){dst[0], dst[1], dst[2]};
  if (!model->compiled) {
    sb_append(sb, "the model is not compiled: call damc_compile first\n");
    return false;
  }
  return ok;
}

static void free_arrays(DamcModel *model, EngineArrays *arrays) {
  DamrtTensor **all[3] = {arrays->state, arrays->input, arrays->clamp};
  for (int k = 0; k < 3; k++) {
    for (int a = 0; a < damc_layer_count(model); a++) damrt_tensor_free(all[k][a]);
    free(all[k]);
  }
}

static DamcResults *finish(DamcResults *r, int n, DamcError *err, StrBuf *sb) {
  if (n < 0) {
    free(r);
    fail(err, 1, sb);
    return NULL;
  }
  r->n = n;
  sb_free(sb);
  return r;
}

DamcResults *damc_eval(DamcModel *model, const DamcBatch *batch, DamcError *err) {
  StrBuf sb = {0};
  EngineArrays arrays;
  DamcResults *r = xcalloc(1, sizeof *r);
  int n = to_arrays(model, batch, &arrays, &sb) ? engine_eval(model->engine, &arrays, r->items, 512, &sb) : -1;
  free_arrays(model, &arrays);
  return finish(r, n, err, &sb);
}

DamcResults *damc_run(DamcModel *model, const DamcBatch *batch, const DamcRunOptions *options,
                      DamcError *err) {
  DamcRunOptions d = {0};
  if (options) d = *options;
  bool single = model->dtype == DAMRT_F32;
  EngineRunOptions o = {d.method == DAMC_EULER ? DAMRT_EULER
                        : d.method == DAMC_RK4 ? DAMRT_RK4
                                               : DAMRT_DOPRI5,
                        d.method == DAMC_ASYNC,
                        d.dt,
                        d.rtol > 0 ? d.rtol : single ? 1e-6 : 1e-9,
                        d.atol > 0 ? d.atol : single ? 1e-8 : 1e-11,
                        d.tol > 0 ? d.tol : d.tol < 0 ? 0 : single ? 1e-4 : 1e-6,
                        d.max_steps ? d.max_steps : 10000,
                        d.noise_T,
                        d.seed,
                        d.trace};
  StrBuf sb = {0};
  EngineArrays arrays;
  DamcResults *r = xcalloc(1, sizeof *r);
  int n = to_arrays(model, batch, &arrays, &sb) ? engine_run(model->engine, &arrays, &o, r->items, 512, &sb) : -1;
  free_arrays(model, &arrays);
  return finish(r, n, err, &sb);
}

const double *damc_result(const DamcResults *results, const char *name, size_t *count) {
  for (int i = 0; i < results->n; i++)
    if (!strcmp(results->items[i].name, name)) {
      if (count) *count = results->items[i].tensor->count;
      return results->items[i].tensor->data;
    }
  return NULL;
}

size_t damc_results_count(const DamcResults *results) { return (size_t)results->n; }

const char *damc_results_at(const DamcResults *results, size_t i, DamcArray *array) {
  const DamrtTensor *t = results->items[i].tensor;
  *array = (DamcArray){t->rank, {t->rank > 0 ? t->shape[0] : 0, t->rank > 1 ? t->shape[1] : 0},
                       t->data};
  return results->items[i].name;
}

void damc_results_free(DamcResults *results) {
  if (!results) return;
  for (int i = 0; i < results->n; i++) damrt_tensor_free(results->items[i].tensor);
  free(results);
}
