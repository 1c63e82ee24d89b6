// The engine (see engine.h).
#include "engine/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/kernels.h"
#include "front/front.h"
#include "front/sema.h"
#include "support/common.h"
#include "sym/eval.h"

struct Engine {
  Session *s;
  Model *m;
  Network *net;
  int64_t *dims;          // per dim; -1 while unbound
  const char **dim_origin;  // per dim: the weight that bound it, for messages
  double *params;
  bool *param_set;
  DamrtTensor **weights;  // per weight, float64 as read; NULL until bound
  const char **weight_origin;
  DamrtDtype dtype;
  DamrtTensor **weights_real;  // per weight, in the kernels' precision
  double *tau;  // per layer, evaluated
  Plan *plans[2];
  // The step kernel is compiled by engine_prepare, the eval kernel when first needed (a run
  // starts stepping without it). For emit both are compiled into one showable module.
  Kernels *code[2];
  KernelFn kernels[2];
  bool showable;
};


Engine *engine_open(const char *path, FILE *echo, StrBuf *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    sb_printf(err, "damc: error: cannot open '%s'\n", path);
    return NULL;
  }
  StrBuf text = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_appendn(&text, chunk, n);
  fclose(f);
  Engine *e = engine_open_text(path, sb_str(&text), text.len, echo, err);
  sb_free(&text);
  return e;
}

Engine *engine_open_text(const char *name, const char *text, size_t len, FILE *echo,
                         StrBuf *err) {
  Engine *e = xcalloc(1, sizeof *e);
  e->s = session_new(echo);
  e->m = front_compile(e->s, name, text, len);
  if (e->m) e->net = network_derive(e->s, e->m, NULL, 0);
  if (!e->net) {
    sb_append(err, diag_text(e->s->diag));
    engine_free(e);
    return NULL;
  }
  const Model *m = e->m;
  e->dims = xmalloc(((size_t)m->ndims + 1) * sizeof *e->dims);
  e->dim_origin = xcalloc((size_t)m->ndims + 1, sizeof *e->dim_origin);
  for (int i = 0; i < m->ndims; i++) e->dims[i] = m->dims[i].value;
  e->params = xcalloc((size_t)m->nparams + 1, sizeof *e->params);
  e->param_set = xcalloc((size_t)m->nparams + 1, sizeof *e->param_set);
  for (int i = 0; i < m->nparams; i++) {
    e->params[i] = m->params[i].value;
    e->param_set[i] = m->params[i].has_default;
  }
  e->weights = xcalloc((size_t)m->nweights + 1, sizeof *e->weights);
  e->weights_real = xcalloc((size_t)m->nweights + 1, sizeof *e->weights_real);
  e->weight_origin = xcalloc((size_t)m->nweights + 1, sizeof *e->weight_origin);
  e->tau = xcalloc((size_t)m->nlayers + 1, sizeof *e->tau);
  return e;
}

void engine_free(Engine *e) {
  if (!e) return;
  if (e->m)
    for (int i = 0; i < e->m->nweights; i++) {
      damrt_tensor_free(e->weights[i]);
      damrt_tensor_free(e->weights_real[i]);
    }
  kernels_free(e->code[0]);
  kernels_free(e->code[1]);
  for (int k = 0; k < 2; k++) plan_free(e->plans[k]);
  network_free(e->net);
  free(e->dims);
  free(e->dim_origin);
  free(e->params);
  free(e->param_set);
  free(e->weights);
  free(e->weights_real);
  free(e->weight_origin);
  free(e->tau);
  session_free(e->s);
  free(e);
}

const Network *engine_network(const Engine *e) { return e->net; }

size_t engine_layer_size(const Engine *e, int a) {
  int64_t n = e->dims[e->m->layers[a].dim];
  return n > 0 ? (size_t)n : 0;
}

// "[K, N]" with the sizes known so far: "[K=100, N=784]".
static void declared_shape(const Engine *e, const ModelWeight *w, StrBuf *out) {
  sb_putc(out, '[');
  for (int i = 0; i < w->rank; i++) {
    const ModelDim *d = &e->m->dims[w->dims[i]];
    if (i) sb_append(out, ", ");
    if (d->name && e->dims[w->dims[i]] > 0)
      sb_printf(out, "%s=%lld", d->name, (long long)e->dims[w->dims[i]]);
    else if (d->name) sb_append(out, d->name);
    else sb_printf(out, "%lld", (long long)d->value);
  }
  sb_putc(out, ']');
}

static void tensor_shape(const DamrtTensor *t, StrBuf *out) {
  sb_putc(out, '[');
  for (int i = 0; i < t->rank; i++) sb_printf(out, "%s%zu", i ? ", " : "", t->shape[i]);
  sb_putc(out, ']');
}

bool engine_bind_weight(Engine *e, const char *name, DamrtTensor *t, const char *origin,
                        StrBuf *err) {
  const Model *m = e->m;
  int w = -1;
  for (int i = 0; i < m->nweights; i++)
    if (strcmp(m->weights[i].name, name) == 0) w = i;
  if (w < 0) {
    sb_printf(err, "%s: tensor '%s' is not a weight of model '%s' (its weights:", origin, name,
              m->name);
    for (int i = 0; i < m->nweights; i++) sb_printf(err, " %s", m->weights[i].name);
    sb_append(err, ")\n");
    damrt_tensor_free(t);
    return false;
  }
  const ModelWeight *mw = &m->weights[w];
  StrBuf want = {0}, have = {0};
  bool ok = t->rank == mw->rank;
  for (int i = 0; ok && i < mw->rank; i++) {
    int d = mw->dims[i];
    if (e->dims[d] > 0 && (size_t)e->dims[d] != t->shape[i]) ok = false;
  }
  if (!ok) {
    declared_shape(e, mw, &want);
    tensor_shape(t, &have);
    sb_printf(err, "%s: tensor '%s' has shape %s, but the model declares '%s' as %s", origin,
              name, sb_str(&have), name, sb_str(&want));
    for (int i = 0; i < mw->rank && i < t->rank; i++) {
      int d = mw->dims[i];
      if (e->dims[d] > 0 && (size_t)e->dims[d] != t->shape[i] && e->dim_origin[d])
        sb_printf(err, " (%s = %lld from weight '%s')", m->dims[d].name, (long long)e->dims[d],
                  e->dim_origin[d]);
    }
    sb_putc(err, '\n');
    sb_free(&want);
    sb_free(&have);
    damrt_tensor_free(t);
    return false;
  }
  if (e->weights[w]) {
    sb_printf(err, "%s: weight '%s' is given twice (first from %s)\n", origin, name,
              e->weight_origin[w]);
    damrt_tensor_free(t);
    return false;
  }
  DamrtError derr = {0};
  char label[256];
  snprintf(label, sizeof label, "%s: tensor '%s'", origin, name);
  if (damrt_tensor_check_finite(t, label, &derr) != DAMRT_OK) {
    sb_printf(err, "%s\n", derr.message);
    damrt_tensor_free(t);
    return false;
  }
  if (mw->symmetric) {
    size_t n = t->shape[0];
    const double *a = t->data;
    double scale = 0, worst = 0;
    size_t wi = 0, wj = 0;
    for (size_t i = 0; i < n * n; i++) scale = fmax(scale, fabs(a[i]));
    for (size_t i = 0; i < n; i++)
      for (size_t j = 0; j < i; j++)
        if (fabs(a[i * n + j] - a[j * n + i]) > worst) {
          worst = fabs(a[i * n + j] - a[j * n + i]);
          wi = i;
          wj = j;
        }
    // Symmetric up to the rounding of float32 data (a symmetric coupling written by NumPy
    // is usually exactly symmetric).
    if (worst > 1e-6 * scale) {
      sb_printf(err, "%s: weight '%s' must be symmetric (it is a %s), but [%zu, %zu] = %.17g "
                "and [%zu, %zu] = %.17g\n", origin, name,
                mw->synapse >= 0 ? "self-synapse" : "'symmetric' weight", wi, wj,
                a[wi * n + wj], wj, wi, a[wj * n + wi]);
      damrt_tensor_free(t);
      return false;
    }
  }
  for (int i = 0; i < mw->rank; i++)
    if (e->dims[mw->dims[i]] < 0) {
      e->dims[mw->dims[i]] = (int64_t)t->shape[i];
      e->dim_origin[mw->dims[i]] = mw->name;
    }
  e->weights[w] = t;
  e->weight_origin[w] = intern(e->s->names, origin);
  return true;
}

bool engine_set_param(Engine *e, const char *name, double value, StrBuf *err) {
  for (int i = 0; i < e->m->nparams; i++)
    if (strcmp(e->m->params[i].name, name) == 0) {
      if (!isfinite(value)) {
        sb_printf(err, "--set %s: the value must be a finite number\n", name);
        return false;
      }
      e->params[i] = value;
      e->param_set[i] = true;
      return true;
    }
  sb_printf(err, "--set %s: model '%s' has no param '%s' (its params:", name, e->m->name, name);
  for (int i = 0; i < e->m->nparams; i++) sb_printf(err, " %s", e->m->params[i].name);
  sb_append(err, e->m->nparams ? ")\n" : " none)\n");
  return false;
}

// Evaluates each layer's tau with the params as set.
static bool evaluate_tau(Engine *e, StrBuf *err) {
  EvalEnv env = {e->dims, e->params, NULL, NULL, NULL, NULL, NULL};
  Evaluator *ev = eval_new(e->net->pool, &env);
  bool ok = true;
  for (int a = 0; a < e->net->nlayers; a++) {
    double tau = eval_scalar(ev, e->net->layers[a].tau);
    e->tau[a] = tau;
    const char *name = e->m->layers[a].name;
    if (!(tau >= 0)) {
      sb_printf(err, "tau of layer '%s' is %g with the params as set; it must not be negative\n",
                name, tau);
      ok = false;
    } else if (tau == 0 && !e->net->layers[a].eliminated) {
      sb_printf(err, "tau of layer '%s' is 0 with the params as set; write 'tau = 0;' in the "
                "model to eliminate the layer\n", name);
      ok = false;
    }
  }
  eval_free(ev);
  return ok;
}

// Compiles the kernel of `kind` if it is not yet.
static bool need_kernel(Engine *e, PlanKind kind, StrBuf *err) {
  if (e->kernels[kind]) return true;
  const Plan *plan = e->plans[kind];
  const char *name = plan_kernel_name(kind);
  e->code[kind] = kernels_compile(&plan, &name, 1, e->dtype == DAMRT_F32, e->m->name, false, err);
  if (!e->code[kind]) return false;
  e->kernels[kind] = kernels_lookup(e->code[kind], name, err);
  return e->kernels[kind] != NULL;
}

bool engine_prepare(Engine *e, DamrtDtype dtype, bool showable, StrBuf *err) {
  const Model *m = e->m;
  bool ok = true;
  for (int w = 0; w < m->nweights; w++)
    if (!e->weights[w]) {
      StrBuf want = {0};
      declared_shape(e, &m->weights[w], &want);
      sb_printf(err, "weight '%s' %s is missing: give it with --weights FILE.npz or --weight "
                "%s=FILE.npy\n", m->weights[w].name, sb_str(&want), m->weights[w].name);
      sb_free(&want);
      ok = false;
    }
  for (int i = 0; i < m->nparams; i++)
    if (!e->param_set[i]) {
      sb_printf(err, "param '%s' has no default: give it with --set %s=VALUE\n",
                m->params[i].name, m->params[i].name);
      ok = false;
    }
  if (!ok || !evaluate_tau(e, err)) return false;

  e->dtype = dtype;
  for (int w = 0; w < m->nweights; w++) {
    DamrtError derr = {0};
    e->weights_real[w] = damrt_tensor_convert(e->weights[w], dtype, &derr);
    if (!e->weights_real[w]) {
      sb_printf(err, "%s\n", derr.message);
      return false;
    }
  }
  for (int k = 0; k < 2; k++) {
    e->plans[k] = plan_build(e->net, e->dims, (PlanKind)k, err);
    if (!e->plans[k]) return false;
  }
  e->showable = showable;
  if (showable) {
    const Plan *plans[2] = {e->plans[0], e->plans[1]};
    const char *names[2] = {plan_kernel_name(PLAN_RHS), plan_kernel_name(PLAN_EVAL)};
    e->code[0] = kernels_compile(plans, names, 2, dtype == DAMRT_F32, m->name, true, err);
    for (int k = 0; k < 2 && e->code[0]; k++)
      if (!(e->kernels[k] = kernels_lookup(e->code[0], names[k], err))) return false;
    return e->code[0] != NULL;
  }
  return need_kernel(e, PLAN_RHS, err);
}

const Plan *engine_plan(const Engine *e, PlanKind kind) { return e->plans[kind]; }

char *engine_kernels_text(Engine *e, bool assembly, StrBuf *err) {
  return kernels_text(e->code[0], assembly, err);
}

bool engine_write_object(Engine *e, const char *path, StrBuf *err) {
  return kernels_write_object(e->code[0], path, err);
}

bool engine_batch(const Engine *e, const EngineArrays *arrays, size_t *batch, bool *batched,
                  StrBuf *err) {
  *batch = 1;
  *batched = false;
  const char *first = NULL;
  for (int kind = 0; kind < 3; kind++) {
    DamrtTensor **ts = kind == 0 ? arrays->state : kind == 1 ? arrays->input : arrays->clamp;
    if (!ts) continue;
    for (int a = 0; a < e->m->nlayers; a++) {
      const DamrtTensor *t = ts[a];
      if (!t) continue;
      const char *what = kind == 0 ? "state" : kind == 1 ? "input" : "clamp";
      int64_t n = e->dims[e->m->layers[a].dim];
      StrBuf have = {0};
      tensor_shape(t, &have);
      if ((t->rank != 1 && t->rank != 2) || (int64_t)t->shape[t->rank - 1] != n) {
        sb_printf(err, "%s of layer '%s' has shape %s, but layer '%s' has %lld neurons: give "
                  "[%lld] or [B, %lld]\n", what, e->m->layers[a].name, sb_str(&have),
                  e->m->layers[a].name, (long long)n, (long long)n, (long long)n);
        sb_free(&have);
        return false;
      }
      sb_free(&have);
      if (t->rank == 2) {
        if (*batched && t->shape[0] != *batch) {
          sb_printf(err, "%s of layer '%s' has a batch of %zu, but %s has %zu\n", what,
                    e->m->layers[a].name, t->shape[0], first, *batch);
          return false;
        }
        *batched = true;
        *batch = t->shape[0];
        first = e->m->layers[a].name;
      }
    }
  }
  if (*batch == 0) {
    sb_append(err, "the batch is empty (0 samples)\n");
    return false;
  }
  return true;
}

// `count` zeroed elements of `elem` bytes, aligned for the widest vector loads.
static void *aligned_zeros(size_t count, size_t elem) {
  size_t bytes = (count ? count : 1) * elem;
  bytes = (bytes + DAMRT_ALIGNMENT - 1) / DAMRT_ALIGNMENT * DAMRT_ALIGNMENT;
  void *p = NULL;
  if (posix_memalign(&p, DAMRT_ALIGNMENT, bytes) != 0)
    damc_internal_error(__FILE__, __LINE__, "out of memory");
  memset(p, 0, bytes);
  return p;
}

static double element(const Engine *e, const void *base, size_t k) {
  return e->dtype == DAMRT_F32 ? ((const float *)base)[k] : ((const double *)base)[k];
}

static void set_element(const Engine *e, void *base, size_t k, double v) {
  if (e->dtype == DAMRT_F32) ((float *)base)[k] = (float)v;
  else ((double *)base)[k] = v;
}

// Allocates the buffers of `plan` for `batch` samples (aligned, like tensors), each sample
// of the arrays given `copies` times in a row (1 usually; 2 for the async rule's pairs);
// fills the states and inputs, points to the weights. A single-sample array is repeated
// over the batch.
static void **alloc_buffers(Engine *e, const Plan *plan, size_t batch, size_t copies,
                            const EngineArrays *arrays) {
  size_t elem = damrt_dtype_size(e->dtype);
  void **bufs = xcalloc((size_t)plan->nbufs + 1, sizeof *bufs);
  for (int i = 0; i < plan->nbufs; i++) {
    const PlanBuf *b = &plan->bufs[i];
    if (b->role == PB_WEIGHT) {
      bufs[i] = e->weights_real[b->index]->data;
      continue;
    }
    size_t n = (size_t)b->numel, samples = b->batched ? batch * copies : 1;
    bufs[i] = aligned_zeros(n * samples, elem);
    DamrtTensor **from = b->role == PB_STATE ? arrays->state : b->role == PB_INPUT ? arrays->input : NULL;
    const DamrtTensor *src = from ? from[b->index] : NULL;
    if (!src) continue;
    for (size_t s = 0; s < samples; s++) {
      const double *row = (const double *)src->data + (src->rank == 2 ? s / copies * n : 0);
      for (size_t k = 0; k < n; k++) set_element(e, bufs[i], s * n + k, row[k]);
    }
  }
  return bufs;
}

static void free_buffers(const Plan *plan, void **bufs) {
  for (int i = 0; i < plan->nbufs; i++)
    if (plan->bufs[i].role != PB_WEIGHT) free(bufs[i]);
  free(bufs);
}

// The float64 tensor of buffer `buf` ([B, n] or [n] when not batched, [B] or [] for scalars).
static DamrtTensor *result_tensor(const Engine *e, const Plan *plan, int buf, const void *data,
                                  size_t batch, bool batched) {
  const PlanBuf *b = &plan->bufs[buf];
  size_t shape[3];
  int rank = 0;
  if (batched) shape[rank++] = batch;
  if (expr_get(e->net->pool, b->node)->shape.rank > 0) shape[rank++] = (size_t)b->numel;
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, rank, shape, NULL);
  size_t n = (size_t)b->numel * (batched ? batch : 1);
  for (size_t k = 0; k < n; k++) ((double *)t->data)[k] = element(e, data, k);
  return t;
}

int engine_eval(Engine *e, const EngineArrays *arrays, EngineResult *out, int max, StrBuf *err) {
  size_t batch;
  bool batched;
  if (!engine_batch(e, arrays, &batch, &batched, err) || !need_kernel(e, PLAN_EVAL, err)) return -1;
  const Plan *plan = e->plans[PLAN_EVAL];
  void **bufs = alloc_buffers(e, plan, batch, 1, arrays);
  e->kernels[PLAN_EVAL](bufs, e->params, (int64_t)batch);
  int n = 0;
  for (int i = 0; i < plan->noutputs && n < max; i++) {
    const PlanOutput *o = &plan->outputs[i];
    if (o->name[0] == 'x') continue;  // an eliminated layer's state, reported as u
    snprintf(out[n].name, sizeof out[n].name, "%s", o->name);
    out[n].tensor = result_tensor(e, plan, o->buf, bufs[o->buf], batch, batched);
    n++;
  }
  free_buffers(plan, bufs);
  return n;
}

// ---- Runs ----

// The integrator's state is one row of all integrated layers per sample; the kernels read
// one array per layer. The right-hand side copies between the two (cheap next to the
// products) through buffers allocated once, before the run.
typedef struct {
  Engine *e;
  size_t batch, dim;
  bool batched;
  int *offset;      // per layer: its first coordinate in a sample's row, or -1 (eliminated)
  int *dxdt_buf;    // per layer: the rhs plan's dxdt output buffer, or -1
  int *part_buf;    // per layer: the eval plan's E_A output buffer
  int energy_buf;   // the eval plan's E
  void **rhs_bufs;  // the rhs plan's buffers
  void **eval_bufs; // the eval plan's buffers (for the trace)
  const EngineRunOptions *opt;
} RunCtx;

// Copies between the rows of the integrator's state and the per-layer buffers `layer_buf`.
static void copy_rows(const RunCtx *r, const void *rows, void **bufs, const int *layer_buf,
                      bool to_rows) {
  size_t elem = damrt_dtype_size(r->e->dtype);
  for (int a = 0; a < r->e->m->nlayers; a++) {
    if (r->offset[a] < 0 || layer_buf[a] < 0) continue;
    size_t n = (size_t)r->e->dims[r->e->m->layers[a].dim];
    char *layer = bufs[layer_buf[a]];
    for (size_t b = 0; b < r->batch; b++) {
      char *row = (char *)rows + (b * r->dim + (size_t)r->offset[a]) * elem;
      if (to_rows) memcpy(row, layer + b * n * elem, n * elem);
      else memcpy(layer + b * n * elem, row, n * elem);
    }
  }
}

static DamrtStatus run_rhs(void *ctx, const void *x, void *dxdt, DamrtError *err) {
  (void)err;
  RunCtx *r = ctx;
  copy_rows(r, x, r->rhs_bufs, r->e->plans[PLAN_RHS]->state_buf, false);
  r->e->kernels[PLAN_RHS](r->rhs_bufs, r->e->params, (int64_t)r->batch);
  copy_rows(r, dxdt, r->rhs_bufs, r->dxdt_buf, true);
  return DAMRT_OK;
}

// One CSV row per accepted step (per sample in a batch): step, t, E, then per layer its
// energy part E_A and max |dx_A/dt|.
static DamrtStatus trace_step(void *ctx, size_t step, double t, const void *x, const void *dxdt,
                              const uint8_t *active, DamrtError *err) {
  (void)active;
  (void)err;
  RunCtx *r = ctx;
  const Engine *e = r->e;
  const Plan *plan = e->plans[PLAN_EVAL];
  FILE *f = r->opt->trace;
  copy_rows(r, x, r->eval_bufs, plan->state_buf, false);
  e->kernels[PLAN_EVAL](r->eval_bufs, e->params, (int64_t)r->batch);
  size_t elem = damrt_dtype_size(e->dtype);
  for (size_t b = 0; b < r->batch; b++) {
    fprintf(f, "%zu,", step);
    if (r->batched) fprintf(f, "%zu,", b);
    fprintf(f, "%.17g,%.17g", t, element(e, r->eval_bufs[r->energy_buf], b));
    for (int a = 0; a < e->m->nlayers; a++) {
      fprintf(f, ",%.17g", element(e, r->eval_bufs[r->part_buf[a]], b));
      double mx = 0;
      if (r->offset[a] >= 0) {
        size_t n = (size_t)e->dims[e->m->layers[a].dim];
        const char *row = (const char *)dxdt + (b * r->dim + (size_t)r->offset[a]) * elem;
        for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(element(e, row, k)));
      }
      fprintf(f, ",%.17g", mx);
    }
    fputc('\n', f);
  }
  return DAMRT_OK;
}

static DamrtTensor *per_sample(const double *v, size_t batch, bool batched) {
  size_t shape[1] = {batch};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, batched ? 1 : 0, shape, NULL);
  memcpy(t->data, v, (batched ? batch : 1) * sizeof(double));
  return t;
}

// The asynchronous rule for binary layers (see engine.h): E is evaluated for both signs of
// one neuron at a time, in every sample at once (a batch of 2B). x holds the states (signs).
static DamrtStatus run_async(RunCtx *r, char *x, const uint8_t *clamp, const EngineArrays *arrays,
                             size_t *steps, uint8_t *converged, StrBuf *err) {
  Engine *e = r->e;
  const Model *m = e->m;
  for (int a = 0; a < m->nlayers; a++) {
    const LayerEq *l = &e->net->layers[a];
    const Expr *g = expr_get(e->net->pool, l->g);
    if (!l->eliminated && !(g->kind == EX_FN && g->index == EF_SIGN && g->kids[0] == l->state)) {
      sb_printf(err, "--method async needs binary layers (g = sign(x), e.g. L = sum(abs(x))), "
                "but layer '%s' is not\n", m->layers[a].name);
      return DAMRT_E_ARGUMENT;
    }
  }
  const Plan *ev = e->plans[PLAN_EVAL];
  size_t batch = r->batch, dim = r->dim, elem = damrt_dtype_size(e->dtype);
  // Two copies of every sample: the neuron at +1 and at -1.
  void **bufs = alloc_buffers(e, ev, batch, 2, arrays);
  char *pair = aligned_zeros(2 * batch * dim, elem);
  const void *energy = bufs[r->energy_buf];
  RunCtx pr = *r;
  pr.batch = 2 * batch;
  for (size_t k = 0; k < batch * dim; k++) set_element(e, x, k, element(e, x, k) < 0 ? -1 : 1);
  char *zeros = aligned_zeros(batch * dim, elem);
  DamrtStatus st = DAMRT_OK;
  size_t step = 0;
  if (r->opt->trace) st = trace_step(r, 0, 0, x, zeros, converged, NULL);
  for (step = 1; step <= r->opt->max_steps && st == DAMRT_OK; step++) {
    size_t *flips = xcalloc(batch, sizeof *flips);
    for (size_t j = 0; j < dim; j++) {
      for (size_t b = 0; b < batch; b++)
        for (int sign = 0; sign < 2; sign++) {
          memcpy(pair + (2 * b + (size_t)sign) * dim * elem, x + b * dim * elem, dim * elem);
          set_element(e, pair, (2 * b + (size_t)sign) * dim + j, sign ? -1 : 1);
        }
      copy_rows(&pr, pair, bufs, ev->state_buf, false);
      e->kernels[PLAN_EVAL](bufs, e->params, (int64_t)(2 * batch));
      for (size_t b = 0; b < batch; b++) {
        if (converged[b] || (clamp && clamp[b * dim + j])) continue;
        double up = element(e, energy, 2 * b), down = element(e, energy, 2 * b + 1);
        double now = element(e, x, b * dim + j);
        double best = up < down ? 1 : down < up ? -1 : now;  // ties keep the neuron
        if (best != now) {
          set_element(e, x, b * dim + j, best);
          flips[b]++;
        }
      }
    }
    bool all = true;
    for (size_t b = 0; b < batch; b++) {
      if (!converged[b] && flips[b] == 0) converged[b] = 1;
      if (!converged[b]) steps[b] = step;
      all &= converged[b] != 0;
    }
    free(flips);
    if (r->opt->trace) st = trace_step(r, step, (double)step, x, zeros, converged, NULL);
    if (all) break;
  }
  free(zeros);
  free(pair);
  free_buffers(ev, bufs);
  return st;
}

int engine_run(Engine *e, const EngineArrays *arrays, const EngineRunOptions *opt,
               EngineResult *out, int max, StrBuf *err) {
  const Model *m = e->m;
  RunCtx r = {e, 0, 0, false, NULL, NULL, NULL, -1, NULL, NULL, opt};
  if (!engine_batch(e, arrays, &r.batch, &r.batched, err)) return -1;
  const Plan *rhs = e->plans[PLAN_RHS], *ev = e->plans[PLAN_EVAL];
  r.offset = xmalloc(((size_t)m->nlayers + 1) * sizeof *r.offset);
  r.dxdt_buf = xmalloc(((size_t)m->nlayers + 1) * sizeof *r.dxdt_buf);
  r.part_buf = xmalloc(((size_t)m->nlayers + 1) * sizeof *r.part_buf);
  r.energy_buf = plan_output_buf(ev, "E", -1);
  double min_tau = INFINITY;
  for (int a = 0; a < m->nlayers; a++) {
    r.dxdt_buf[a] = plan_output_buf(rhs, "dxdt", a);
    r.part_buf[a] = plan_output_buf(ev, "E", a);
    r.offset[a] = e->net->layers[a].eliminated ? -1 : (int)r.dim;
    if (!e->net->layers[a].eliminated) {
      r.dim += (size_t)e->dims[m->layers[a].dim];
      min_tau = fmin(min_tau, e->tau[a]);
    }
  }
  int nresults = -1;
  if (r.dim == 0) {
    sb_append(err, "every layer is eliminated (tau = 0): there is nothing to integrate; use "
                   "damc eval\n");
    goto done;
  }
  size_t elem = damrt_dtype_size(e->dtype);
  r.rhs_bufs = alloc_buffers(e, rhs, r.batch, 1, arrays);
  r.eval_bufs = alloc_buffers(e, ev, r.batch, 1, arrays);
  char *x = aligned_zeros(r.batch * r.dim, elem);
  copy_rows(&r, x, r.rhs_bufs, rhs->state_buf, true);  // the initial states, as converted
  double *tau = xmalloc((r.dim + 1) * sizeof *tau);
  uint8_t *clamp = NULL;
  for (int a = 0; a < m->nlayers; a++) {
    if (r.offset[a] < 0) continue;
    size_t n = (size_t)e->dims[m->layers[a].dim];
    for (size_t k = 0; k < n; k++) tau[(size_t)r.offset[a] + k] = e->tau[a];
    const DamrtTensor *c = arrays->clamp ? arrays->clamp[a] : NULL;
    if (!c) continue;
    if (!clamp) clamp = xcalloc(r.batch * r.dim + 1, 1);
    for (size_t b = 0; b < r.batch; b++)
      for (size_t k = 0; k < n; k++)
        clamp[b * r.dim + (size_t)r.offset[a] + k] =
            ((const double *)c->data)[(c->rank == 2 ? b * n : 0) + k] != 0;
  }
  DamrtSystem sys = {run_rhs, &r, r.batch, r.dim, e->dtype, tau};
  DamrtRunOptions ro = {opt->method, opt->dt > 0 ? opt->dt : 0.1 * min_tau, 0, opt->rtol,
                        opt->atol, opt->max_steps, opt->tol, clamp, opt->noise_T, opt->seed,
                        opt->trace ? trace_step : NULL, &r};
  size_t *steps = xcalloc(r.batch, sizeof *steps);
  uint8_t *converged = xcalloc(r.batch, 1);
  DamrtRunResult res = {0, 0, steps, NULL, converged, {0}};
  if (opt->trace) {
    fprintf(opt->trace, "step,%st,E", r.batched ? "sample," : "");
    for (int a = 0; a < m->nlayers; a++)
      fprintf(opt->trace, ",E_%s,max|dxdt_%s|", m->layers[a].name, m->layers[a].name);
    fputc('\n', opt->trace);
  }
  DamrtError derr = {0};
  DamrtStatus st = DAMRT_OK;
  if ((opt->trace || opt->async) && !need_kernel(e, PLAN_EVAL, err)) {
    st = DAMRT_E_VALUE;
  } else if (opt->async) {
    st = run_async(&r, x, clamp, arrays, steps, converged, err);
  } else {
    st = damrt_integrate(&sys, &ro, x, &res, &derr);
    if (st == DAMRT_OK && !need_kernel(e, PLAN_EVAL, err)) st = DAMRT_E_VALUE;
  }
  if (st != DAMRT_OK && err->len) {
    // The eval kernel did not compile; its message is in err.
  } else if (st != DAMRT_OK) {
    if (res.nonfinite.found) {
      // Name the layer and the neuron instead of the coordinate.
      int layer = 0;
      for (int a = 0; a < m->nlayers; a++)
        if (r.offset[a] >= 0 && (size_t)r.offset[a] <= res.nonfinite.coordinate) layer = a;
      sb_printf(err, "the run diverged: layer '%s', sample %zu, neuron %zu is %g at step %zu "
                "(t = %g)\n", m->layers[layer].name, res.nonfinite.sample,
                res.nonfinite.coordinate - (size_t)r.offset[layer], res.nonfinite.value,
                res.nonfinite.step, res.nonfinite.t);
    } else {
      sb_printf(err, "%s\n", derr.message);
    }
  } else {
    // The final values: the eval kernel at the final states.
    copy_rows(&r, x, r.eval_bufs, ev->state_buf, false);
    e->kernels[PLAN_EVAL](r.eval_bufs, e->params, (int64_t)r.batch);
    nresults = 0;
    for (int a = 0; a < m->nlayers && nresults + 2 <= max; a++) {
      int buf = ev->state_buf[a];
      snprintf(out[nresults].name, sizeof out[nresults].name, "x_%s", m->layers[a].name);
      out[nresults++].tensor = result_tensor(e, ev, buf, r.eval_bufs[buf], r.batch, r.batched);
      buf = plan_output_buf(ev, "g", a);
      snprintf(out[nresults].name, sizeof out[nresults].name, "g_%s", m->layers[a].name);
      out[nresults++].tensor = result_tensor(e, ev, buf, r.eval_bufs[buf], r.batch, r.batched);
    }
    if (nresults + 3 <= max) {
      snprintf(out[nresults].name, sizeof out[nresults].name, "E");
      out[nresults++].tensor =
          result_tensor(e, ev, r.energy_buf, r.eval_bufs[r.energy_buf], r.batch, r.batched);
      double *v = xmalloc(r.batch * sizeof *v);
      for (size_t b = 0; b < r.batch; b++) v[b] = (double)steps[b];
      snprintf(out[nresults].name, sizeof out[nresults].name, "steps");
      out[nresults++].tensor = per_sample(v, r.batch, r.batched);
      for (size_t b = 0; b < r.batch; b++) v[b] = converged[b];
      snprintf(out[nresults].name, sizeof out[nresults].name, "converged");
      out[nresults++].tensor = per_sample(v, r.batch, r.batched);
      free(v);
    }
  }
  free(steps);
  free(converged);
  free(clamp);
  free(tau);
  free(x);
  free_buffers(rhs, r.rhs_bufs);
  free_buffers(ev, r.eval_bufs);
done:
  free(r.offset);
  free(r.dxdt_buf);
  free(r.part_buf);
  return nresults;
}

// ---- Timing ----

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

bool engine_bench(Engine *e, size_t batch, int repeat, double *rhs_seconds, double *eval_seconds,
                  StrBuf *err) {
  if (batch == 0 || repeat <= 0) {
    sb_append(err, "the batch and the repeat count must be positive\n");
    return false;
  }
  if (!need_kernel(e, PLAN_EVAL, err)) return false;
  EngineArrays none = {NULL, NULL, NULL};
  double *times = xmalloc((size_t)repeat * sizeof *times);
  for (int k = 0; k < 2; k++) {
    const Plan *plan = e->plans[k];
    void **bufs = alloc_buffers(e, plan, batch, 1, &none);
    // States of moderate size, so that no exp over- or underflows while timing.
    for (int i = 0; i < plan->nbufs; i++) {
      const PlanBuf *b = &plan->bufs[i];
      if (b->role != PB_STATE && b->role != PB_INPUT) continue;
      size_t n = (size_t)b->numel * batch;
      for (size_t j = 0; j < n; j++) set_element(e, bufs[i], j, 0.5 * sin(0.7 * (double)j + i));
    }
    e->kernels[k](bufs, e->params, (int64_t)batch);  // warm-up
    for (int r = 0; r < repeat; r++) {
      double t0 = clock_seconds();
      e->kernels[k](bufs, e->params, (int64_t)batch);
      times[r] = clock_seconds() - t0;
    }
    qsort(times, (size_t)repeat, sizeof *times, compare_doubles);
    *(k == PLAN_RHS ? rhs_seconds : eval_seconds) = times[repeat / 2];
    free_buffers(plan, bufs);
  }
  free(times);
  return true;
}
