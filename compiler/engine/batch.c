// Executing kernels on batches: the kernels' buffers, filled from the caller's arrays in the
// kernels' dtype; results read back as float64 tensors; damc eval.
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_internal.h"
#include "support/common.h"

double engine_get(DamrtDtype dtype, const void *base, size_t k) {
  return dtype == DAMRT_F32 ? ((const float *)base)[k] : ((const double *)base)[k];
}

void engine_set(DamrtDtype dtype, void *base, size_t k, double v) {
  if (dtype == DAMRT_F32) ((float *)base)[k] = (float)v;
  else ((double *)base)[k] = v;
}

// The bytes of `count` elements of `elem` bytes, rounded to the alignment; SIZE_MAX when
// that overflows.
static size_t aligned_bytes(size_t count, size_t elem) {
  if (count > (SIZE_MAX - DAMRT_ALIGNMENT) / elem) return SIZE_MAX;
  size_t bytes = (count ? count : 1) * elem;
  return (bytes + DAMRT_ALIGNMENT - 1) / DAMRT_ALIGNMENT * DAMRT_ALIGNMENT;
}

// The machine's physical memory in bytes (SIZE_MAX when it cannot be told).
static size_t physical_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 && (size_t)pages <= SIZE_MAX / (size_t)page
             ? (size_t)pages * (size_t)page
             : SIZE_MAX;
}

void *engine_try_aligned_zeros(size_t count, size_t elem) {
  size_t bytes = aligned_bytes(count, elem);
  // Linux promises more than it has: a buffer beyond the physical memory would be granted and
  // the process killed while the zeros are written. Refuse it here.
  if (bytes == SIZE_MAX || bytes >= physical_bytes()) return NULL;
  void *p = NULL;
  if (posix_memalign(&p, DAMRT_ALIGNMENT, bytes) != 0) return NULL;
  memset(p, 0, bytes);
  return p;
}

void *engine_aligned_zeros(size_t count, size_t elem) {
  void *p = engine_try_aligned_zeros(count, elem);
  if (!p) damc_fail_out_of_memory(aligned_bytes(count, elem));
  return p;
}

DamrtTensor engine_tensor_view(const EngineArray *a) {
  DamrtTensor view = {a->dtype, a->rank, {1, 1, 1, 1}, 1, (void *)a->data};
  for (int i = 0; i < a->rank; i++) view.count *= view.shape[i] = a->shape[i];
  return view;
}

bool engine_check_range(const Engine *e, const EngineArray *a, const char *label, StrBuf *err) {
  if (e->dtype != DAMRT_F32 || a->dtype != DAMRT_F64 || !a->data) return true;
  DamrtTensor view = engine_tensor_view(a);
  for (size_t k = 0; k < view.count; k++) {
    double v = ((const double *)a->data)[k];
    if (fabs(v) <= FLT_MAX) continue;
    size_t index[DAMRT_MAX_RANK];
    damrt_tensor_unravel(&view, k, index);
    if (isfinite(v)) sb_printf(err, "%s: %.17g at [", label, v);
    else sb_printf(err, "%s has %s at [", label, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
    for (int i = 0; i < view.rank; i++) sb_printf(err, "%s%zu", i ? ", " : "", index[i]);
    if (!isfinite(v))  // not a matter of range: no precision takes it
      sb_append(err, "]: give finite numbers\n");
    else
      sb_printf(err, "] does not fit float32 (largest %.9g): use %s\n", (double)FLT_MAX,
                e->phrases[PHRASE_F64]);
    return false;
  }
  return true;
}

bool engine_check_results(const Engine *e, KernelKind kind, const EngineResults *r,
                          size_t first, bool batched, const EngineArrays *at, StrBuf *err) {
  for (size_t i = first; i < r->count; i++) {
    const DamrtTensor *t = r->items[i].tensor;
    for (size_t k = 0; k < t->count; k++) {
      double v = ((const double *)t->data)[k];
      if (isfinite(v)) continue;
      size_t per = batched && t->rank > 0 ? t->count / t->shape[0] : t->count;
      size_t sample = batched ? k / per : 0, index = batched ? k % per : k;
      sb_printf(err, "output '%s' is %s at sample %zu, index %zu: the model is not finite at "
                "these states and params", r->items[i].name,
                isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", sample, index);
      engine_precision_hint(e, kind, at, sample, r->items[i].name, index, err);
      sb_putc(err, '\n');
      return false;
    }
  }
  return true;
}

// Whether an array's shape describes at most the machine's memory: a shape that claims more
// (a C caller's size_t gone wrong) is refused before any of its elements is read.
static bool shape_fits(const EngineArray *t, const char *label, StrBuf *err) {
  size_t limit = physical_bytes(), bytes = damrt_dtype_size(t->dtype);
  bool fits = true;
  for (int i = 0; i < t->rank && fits; i++)
    fits = t->shape[i] <= limit / bytes && (bytes *= t->shape[i]) <= limit;
  if (!fits) {
    StrBuf have = {0};
    engine_shape_text(t->rank, t->shape, &have);
    sb_printf(err, "%s has shape %s: more elements than this machine's memory (%zu bytes) "
              "holds\n", label, sb_str(&have), limit);
    sb_free(&have);
  }
  return fits;
}

bool engine_batch(const Engine *e, const EngineArrays *arrays, size_t *batch, bool *batched,
                  StrBuf *err) {
  static const char *const what[4] = {"state", "input", "clamp", "direction"};
  const EngineArray *all[4] = {arrays->state, arrays->input, arrays->clamp, arrays->direction};
  if (!engine_check_layer_arrays(e, arrays, err)) return false;
  *batch = 1;
  *batched = false;
  const char *first = NULL;
  for (int kind = 0; kind < 4; kind++) {
    if (!all[kind]) continue;
    for (int a = 0; a < e->net->nlayers; a++) {
      const EngineArray *t = &all[kind][a];
      if (!t->data) continue;
      const char *layer = e->net->layers[a].name;
      int64_t n = e->dims[e->net->layers[a].dim];
      if ((t->rank != 1 && t->rank != 2) || (int64_t)t->shape[t->rank - 1] != n) {
        StrBuf have = {0};
        engine_shape_text(t->rank, t->shape, &have);
        sb_printf(err, "%s of layer '%s' has shape %s, but layer '%s' has %lld neurons: give "
                  "[%lld] or [B, %lld]", what[kind], layer, sb_str(&have), layer,
                  (long long)n, (long long)n, (long long)n);
        engine_dim_origin(e, e->net->layers[a].dim, t->shape[t->rank - 1], err);
        sb_putc(err, '\n');
        sb_free(&have);
        return false;
      }
      char label[200];
      snprintf(label, sizeof label, "%s of layer '%s'", what[kind], layer);
      // A state or input that is not finite is the caller's, said as such (not as an output
      // that overflows); the clamp masks are checked by the run.
      if (!shape_fits(t, label, err) || (kind != 2 && !engine_check_finite(t, label, err)) ||
          !engine_check_range(e, t, label, err))
        return false;
      if (t->rank == 2) {
        if (*batched && t->shape[0] != *batch) {
          sb_printf(err, "%s of layer '%s' has a batch of %zu, but %s has %zu\n", what[kind],
                    layer, t->shape[0], first, *batch);
          return false;
        }
        *batched = true;
        *batch = t->shape[0];
        first = layer;
      }
    }
  }
  if (*batch == 0) {
    sb_append(err, "the batch is empty (0 samples)\n");
    return false;
  }
  return true;
}

void **engine_alloc_buffers(const Engine *e, const Plan *plan, size_t batch, size_t copies,
                            const EngineArrays *arrays, StrBuf *err) {
  size_t elem = damrt_dtype_size(e->dtype);
  void **bufs = xcalloc((size_t)plan->nbufs + 1, sizeof *bufs);
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    if (b->role == PB_WEIGHT) {
      bufs[i] = (void *)e->weight_data[b->index];
      continue;
    }
    if (b->role == PB_SIZES) {  // read by the kernels, never written
      bufs[i] = e->dims;
      continue;
    }
    size_t n = (size_t)plan_size(plan, b->numel), samples = b->batched ? batch * copies : 1;
    bool fits = !b->batched || (copies && batch <= SIZE_MAX / copies && n <= SIZE_MAX / samples);
    if (!fits || !(bufs[i] = engine_try_aligned_zeros(n * samples, elem))) {
      // A value of the API, not an abort: a caller (Python) lives on after a batch too large.
      sb_printf(err, "out of memory: the kernel's buffer '%s' needs %zu x %zu elements of %zu "
                "bytes (%.3g GB) for a batch of %zu samples; use a smaller batch\n", b->name,
                samples, n, elem, (double)samples * (double)n * (double)elem / 1e9, batch);
      engine_free_buffers(plan, bufs);
      return NULL;
    }
    const EngineArray *from = b->role == PB_STATE       ? arrays->state
                              : b->role == PB_INPUT     ? arrays->input
                              : b->role == PB_DIRECTION ? arrays->direction
                                                        : NULL;
    const EngineArray *src = from ? &from[b->index] : NULL;
    if (!src || !src->data) continue;
    for (size_t s = 0; s < samples; s++) {
      size_t row = src->rank == 2 ? s / copies * n : 0;
      for (size_t k = 0; k < n; k++)
        engine_set(e->dtype, bufs[i], s * n + k, engine_get(src->dtype, src->data, row + k));
    }
  }
  return bufs;
}

void engine_free_buffers(const Plan *plan, void **bufs) {
  if (!bufs) return;
  for (int i = 0; i < plan->nbufs; i++)
    if (plan->bufs[i].role != PB_WEIGHT && plan->bufs[i].role != PB_SIZES) free(bufs[i]);
  free(bufs);
}

void engine_add_result(EngineResults *out, const char *name, DamrtTensor *t) {
  EngineResult r = {"", t};
  snprintf(r.name, sizeof r.name, "%s", name);
  VEC_PUSH(out->items, out->count, out->cap, r);
}

void engine_add_buffer_result(const Engine *e, EngineResults *out, const char *name,
                              const Plan *plan, int buf, const void *data, size_t batch,
                              bool batched) {
  const PlanBuf *b = &plan->bufs[buf];
  size_t numel = (size_t)plan_size(plan, b->numel);
  size_t shape[2] = {0, 0};
  int rank = 0;
  if (batched) shape[rank++] = batch;
  if (b->rank > 0) shape[rank++] = numel;
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, rank, shape, NULL);
  size_t n = numel * (batched ? batch : 1);
  // An unbatched buffer (a value of the weights alone) is the same for every sample.
  for (size_t k = 0; k < n; k++)
    ((double *)t->data)[k] = engine_get(e->dtype, data, b->batched ? k : k % numel);
  engine_add_result(out, name, t);
}

const DamrtTensor *engine_result(const EngineResults *r, const char *name) {
  for (size_t i = 0; i < r->count; i++)
    if (!strcmp(r->items[i].name, name)) return r->items[i].tensor;
  return NULL;
}

void engine_results_free(EngineResults *r) {
  for (size_t i = 0; i < r->count; i++) damrt_tensor_free(r->items[i].tensor);
  free(r->items);
  sb_free(&r->warning);
  *r = (EngineResults){0};
}

bool engine_eval(Engine *e, const EngineArrays *arrays, EngineResults *out, StrBuf *err) {
  return engine_apply(e, KERNEL_EVAL, arrays, out, err);
}

bool engine_apply(Engine *e, KernelKind kind, const EngineArrays *arrays, EngineResults *out,
                  StrBuf *err) {
  size_t batch;
  bool batched;
  KernelFn kernel;
  if (!engine_batch(e, arrays, &batch, &batched, err) || !(kernel = engine_kernel(e, kind, err)))
    return false;
  const Plan *plan = e->plans[kind];
  void **bufs = engine_alloc_buffers(e, plan, batch, 1, arrays, err);
  if (!bufs) return false;
  kernel(bufs, e->params, (int64_t)batch);
  size_t first = out->count;
  for (int i = 0; i < plan->noutputs; i++) {
    const PlanOutput *o = &plan->outputs[i];
    if (o->what == OUT_X) continue;  // an eliminated layer's state, reported as u
    engine_add_buffer_result(e, out, o->name, plan, o->buf, bufs[o->buf], batch, batched);
  }
  engine_free_buffers(plan, bufs);
  return engine_check_results(e, kind, out, first, batched, arrays, err);
}
