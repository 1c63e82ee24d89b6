// The compile pipeline (see engine.h): every stage, in order, in engine_compile.
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "damrt_file.h"
#include "engine/engine_internal.h"
#include "front/front.h"
#include "front/param_domain.h"
#include "support/common.h"
#include "sym/eval.h"

static Engine *engine_alloc(const char *path, const char *name, FILE *echo) {
  Engine *e = xcalloc(1, sizeof *e);
  e->s = session_new(echo);
  e->echo = echo;
  e->path = path ? intern(e->s->names, path) : NULL;
  e->name = intern(e->s->names, name);
  e->dtype = DAMRT_F32;
  e->wanted[KERNEL_RHS] = true;
  memcpy(e->phrases, engine_cli_phrases, sizeof e->phrases);
  return e;
}

Engine *engine_new(const char *path, FILE *echo) { return engine_alloc(path, path, echo); }

Engine *engine_new_text(const char *name, const char *text, size_t len, FILE *echo) {
  Engine *e = engine_alloc(NULL, name, echo);
  e->text = xmalloc(len + 1);
  memcpy(e->text, text, len);
  e->text[len] = '\0';
  e->len = len;
  return e;
}

void engine_free(Engine *e) {
  if (!e) return;
  engine_rewind(e, STAGE_NONE);  // the kernels and plans
  if (e->net)
    for (int i = 0; i < e->net->nweights; i++) damrt_tensor_free(e->converted[i]);
  network_free(e->net);
  free(e->text);
  free(e->eliminate);
  free(e->dims);
  free(e->dim_origin);
  free(e->runtime);
  free(e->params);
  free(e->param_set);
  free(e->weights);
  free(e->weight_origin);
  free(e->converted);
  free(e->weight_data);
  free(e->tau);
  session_free(e->s);
  free(e);
}

// ---- The stages ----

// read: the model file as text, through the runtime's reader: one wording for every
// subcommand and every kind of path (a directory, a FIFO, /dev/zero beyond the limit).
static bool stage_read(Engine *e, StrBuf *err) {
  if (!e->path) return true;  // text given in memory
  DamrtError derr = {0};
  if (damrt_read_text_file(e->path, ENGINE_MAX_MODEL_BYTES, &e->text, &e->len, &derr) != DAMRT_OK) {
    sb_printf(err, "%s\n", derr.message);
    return false;
  }
  return true;
}

// The diagnostics of a front-end stage that failed, into `err` (unless already echoed).
static bool front_result(Engine *e, bool ok, StrBuf *err) {
  if (!ok && !e->echo) sb_append(err, diag_text(e->s->diag));
  return ok;
}

// parse: the prelude and the file as one syntax tree.
static bool stage_parse(Engine *e, StrBuf *err) {
  e->program = front_parse_program(e->s, e->name, e->text, e->len);
  return front_result(e, e->program != NULL, err);
}

// check: the semantic checks; the Model.
static bool stage_check(Engine *e, StrBuf *err) {
  e->m = front_check(e->s, e->program, e->name);
  return front_result(e, e->m != NULL, err);
}

// derive: the network's equations; the tables that binding fills.
static bool stage_derive(Engine *e, StrBuf *err) {
  e->net = network_derive(e->s, e->m, e->eliminate, e->neliminate);
  if (!front_result(e, e->net != NULL, err)) return false;
  const Network *net = e->net;
  e->dims = xmalloc(((size_t)net->ndims + 1) * sizeof *e->dims);
  e->dim_origin = xcalloc((size_t)net->ndims + 1, sizeof *e->dim_origin);
  e->runtime = xcalloc((size_t)net->ndims + 1, sizeof *e->runtime);
  for (int i = 0; i < net->ndims; i++) e->dims[i] = net->dims[i].size;
  e->params = xcalloc((size_t)net->nparams + 1, sizeof *e->params);
  e->param_set = xcalloc((size_t)net->nparams + 1, sizeof *e->param_set);
  for (int i = 0; i < net->nparams; i++) {
    e->params[i] = net->params[i].value;
    e->param_set[i] = net->params[i].has_default;
  }
  e->weights = xcalloc((size_t)net->nweights + 1, sizeof *e->weights);
  e->weight_origin = xcalloc((size_t)net->nweights + 1, sizeof *e->weight_origin);
  e->converted = xcalloc((size_t)net->nweights + 1, sizeof *e->converted);
  e->weight_data = xcalloc((size_t)net->nweights + 1, sizeof *e->weight_data);
  e->tau = xcalloc((size_t)net->nlayers + 1, sizeof *e->tau);
  return true;
}

// Every expression of params and sizes alone must be finite (front/param_domain.h), and tau
// positive (or 0 written to eliminate a layer). The errors are located at the model's text:
// on the echo stream, else into `err`; through a sink of their own, so that a model whose
// params are set again and again (damc_set_param) says every refusal in full.
bool engine_evaluate_params(Engine *e, StrBuf *err) {
  DiagSink *sink = diag_fork(e->s->diag, e->echo);
  bool defined = param_domain_check(e->m, e->params, e->dims, sink) == 0;
  EvalEnv env = {e->dims, e->params, NULL, NULL, NULL, NULL, NULL};
  Evaluator *ev = eval_new(e->net->pool, &env);
  bool ok = defined;
  diag_defer(sink);  // in source order
  for (int a = 0; a < e->net->nlayers; a++) {
    const LayerEq *l = &e->net->layers[a];
    double tau = eval_scalar(ev, l->tau);
    e->tau[a] = tau;
    bool bad_zero = tau == 0 && !l->eliminated;
    if (isfinite(tau) && tau >= 0 && !bad_zero) continue;
    ok = false;
    if (!isfinite(tau) && !defined) continue;  // said at the operation that made it so
    // Named with the values of the params and dims it depends on: the integrators would only
    // name a coordinate. Located at tau as written, else at the layer.
    const AstExpr *written = e->m->layers[a].tau;
    NumText t;
    StrBuf values = {0};
    if (written) param_values_text(e->m, written, e->params, e->dims, &values);
    diag_error(sink, written ? written->span : e->m->layers[a].span, "tau of layer '%s' is %s%s; %s", l->name,
               number_text(tau, &t), sb_str(&values),
               !isfinite(tau) ? "a time constant must be finite (and positive, or 0 written in "
                                "the model to eliminate the layer)"
               : tau < 0      ? "it must not be negative"
                              : "write 'tau = 0;' in the model to eliminate the layer");
    sb_free(&values);
  }
  diag_flush(sink);
  eval_free(ev);
  if (!ok && !e->echo) sb_append(err, diag_text(sink));
  diag_free(sink);
  return ok;
}

// Whether every size of weight `w` is known without it (from the model, --dim or another
// weight): code that only is shown (emit) needs its sizes, not its values.
static bool weight_sized(const Engine *e, int w) {
  const ModelWeight *mw = &e->m->weights[w];
  for (int i = 0; i < mw->rank; i++)
    if (e->dims[mw->dims[i]] < 0) return false;
  return true;
}

// bind: every weight given (but for code that is only shown, when its sizes are known) and
// every param set; tau; the weights in the kernels' dtype.
static bool stage_bind(Engine *e, StrBuf *err) {
  const Network *net = e->net;
  bool ok = true;
  StrBuf how = {0};
  for (int w = 0; w < net->nweights; w++)
    if (!e->weights[w].data && !(e->showable && weight_sized(e, w))) {
      StrBuf want = {0};
      engine_declared_shape(e, w, &want);
      sb_printf(err, "weight '%s' %s is missing: give it with %s\n", net->weights[w].name,
                sb_str(&want), engine_phrase(e, PHRASE_WEIGHT, net->weights[w].name, NULL, &how));
      sb_free(&want);
      ok = false;
    }
  // A dim that no tensor fixed and the model does not size (a missing weight says so
  // itself, with its shape: only then is a dim named here).
  for (int d = 0; ok && d < net->ndims; d++)
    if (e->dims[d] < 0 && net->dims[d].name) {
      const char *name = net->dims[d].name;
      sb_printf(err, "dim '%s' has no size: no tensor fixes it; give it ", name);
      if (engine_phrase(e, PHRASE_DIM_SIZE, name, "SIZE", &how))
        sb_printf(err, "with %s or ", sb_str(&how));
      sb_printf(err, "in the model ('dim %s = ...;')\n", name);
    }
  for (int d = 0; ok && d < net->ndims; d++) ok = e->dims[d] >= 0 || !net->dims[d].name;
  for (int i = 0; i < net->nparams; i++)
    if (!e->param_set[i]) {
      sb_printf(err, "param '%s' has no default: give it with %s\n", net->params[i].name,
                engine_phrase(e, PHRASE_PARAM_VALUE, net->params[i].name, "VALUE", &how));
      ok = false;
    }
  for (int i = 0; i < net->nparams && e->dtype == DAMRT_F32; i++)
    if (fabs(e->params[i]) > FLT_MAX) {
      sb_printf(err, "param '%s' = %.17g does not fit float32 (largest %.9g): use %s\n",
                net->params[i].name, e->params[i], (double)FLT_MAX, e->phrases[PHRASE_F64]);
      ok = false;
    }
  // A number of the model (or of its derivation) beyond float32 would be inf in the kernels.
  for (uint32_t id = 1; ok && e->dtype == DAMRT_F32 && id < expr_count(net->pool); id++) {
    const Expr *x = expr_get(net->pool, id);
    if (x->kind == EX_CONST && isfinite(x->value) && fabs(x->value) > FLT_MAX) {
      NumText t;
      sb_printf(err, "the model's equations hold the number %s, which does not fit float32 "
                "(largest %.9g): use %s\n", number_text(x->value, &t), (double)FLT_MAX,
                e->phrases[PHRASE_F64]);
      ok = false;
    }
  }
  sb_free(&how);
  if (!ok || !engine_evaluate_params(e, err)) return false;
  for (int w = 0; w < net->nweights; w++) {
    const EngineArray *a = &e->weights[w];
    if (!a->data) continue;  // emit without it: engine_kernel refuses to run such code
    char label[300];
    snprintf(label, sizeof label, "%s: weight '%s'", e->weight_origin[w], net->weights[w].name);
    if (!engine_check_range(e, a, label, err) || !engine_weight_to_kernels(e, w, err))
      return false;
  }
  return true;
}

bool engine_weight_to_kernels(Engine *e, int w, StrBuf *err) {
  const EngineArray *a = &e->weights[w];
  if (a->dtype == e->dtype) {  // used in place
    damrt_tensor_free(e->converted[w]);
    e->converted[w] = NULL;
    e->weight_data[w] = a->data;
    return true;
  }
  size_t count = 1;
  for (int i = 0; i < a->rank; i++) count *= a->shape[i];
  if (e->converted[w] && (e->converted[w]->dtype != e->dtype || e->converted[w]->count != count)) {
    damrt_tensor_free(e->converted[w]);
    e->converted[w] = NULL;
  }
  if (!e->converted[w]) e->converted[w] = damrt_tensor_new(e->dtype, a->rank, a->shape, NULL);
  if (!e->converted[w]) {
    sb_printf(err, "weight '%s': out of memory converting it to %s\n", e->net->weights[w].name,
              damrt_dtype_name(e->dtype));
    return false;
  }
  for (size_t k = 0; k < e->converted[w]->count; k++)
    engine_set(e->dtype, e->converted[w]->data, k, engine_get(a->dtype, a->data, k));
  e->weight_data[w] = e->converted[w]->data;
  return true;
}

// plan: the equations of each wanted kernel scheduled for the bound sizes.
static bool stage_plan(Engine *e, StrBuf *err) {
  for (int k = 0; k < KERNEL_KINDS; k++) {
    if (!e->wanted[k] || e->plans[k]) continue;
    if (!(e->plans[k] = plan_build_kernels(e->net, e->dims, e->runtime, (KernelKind)k, e->kernel_choice,
                                           e->dtype == DAMRT_F32 ? 4 : 8, err))) {
      sb_putc(err, '\n');
      return false;
    }
  }
  return true;
}

// codegen: the planned kernels not yet generated, as one module: from the cache of compiled
// kernels when it holds them (engine/kcache.h), else generated, optimised and compiled to
// machine code (and stored in the cache).
static bool stage_codegen(Engine *e, StrBuf *err) {
  const Plan *plans[KERNEL_KINDS];
  int n = 0;
  for (int k = 0; k < KERNEL_KINDS; k++)
    if (e->plans[k] && !e->modules[k] && !e->prefetch[k]) plans[n++] = e->plans[k];
  if (n == 0) return true;
  CodeRequest req = {e->net->name, e->text, e->len, e->eliminate, e->neliminate,
                     e->dims, e->net->ndims, e->dtype == DAMRT_F32,
                     plan_kernels_name(e->kernel_choice), e->showable};
  bool compiled;
  Code *module = code_get(plans, n, &req, &compiled, err);
  if (!module) return false;
  if (compiled) e->compile_count++;
  for (int i = 0; i < n; i++) e->modules[plans[i]->kind] = module;
  return true;
}

// Drops the module of kernel `kind` (from every kind it holds) when one of them could not be
// found in it, and steps the engine back to the plan stage: nothing is kept that claims a
// kernel it lacks, and the next engine_compile generates the module again.
static void drop_module(Engine *e, KernelKind kind) {
  Code *m = e->modules[kind];
  for (int k = 0; k < KERNEL_KINDS; k++)
    if (e->modules[k] == m) {
      e->modules[k] = NULL;
      e->kernels[k] = NULL;
    }
  code_free(m);
  if (e->done > STAGE_PLAN) e->done = STAGE_PLAN;
}

// jit: the kernels' addresses (the machine code was made or loaded by codegen).
static bool stage_jit(Engine *e, StrBuf *err) {
  for (int k = 0; k < KERNEL_KINDS; k++) {
    if (!e->modules[k] || e->kernels[k]) continue;
    if (!(e->kernels[k] = (KernelFn)code_lookup(e->modules[k], kernel_name((KernelKind)k), err))) {
      drop_module(e, (KernelKind)k);
      return false;
    }
  }
  return true;
}

// ---- The pipeline ----

typedef bool (*Stage)(Engine *e, StrBuf *err);

static bool run_stage(Engine *e, EngineStage stage, EngineStage last, Stage fn, StrBuf *err) {
  if (e->done >= stage || stage > last) return true;
  if (!fn(e, err)) return false;
  e->done = stage;
  return true;
}

bool engine_compile(Engine *e, EngineStage last, StrBuf *err) {
  return run_stage(e, STAGE_READ, last, stage_read, err)          // file -> text
      && run_stage(e, STAGE_PARSE, last, stage_parse, err)        // text -> syntax tree
      && run_stage(e, STAGE_CHECK, last, stage_check, err)        // tree -> checked Model
      && run_stage(e, STAGE_DERIVE, last, stage_derive, err)      // Model -> Network
      && run_stage(e, STAGE_BIND, last, stage_bind, err)          // tensors -> sizes, tau
      && run_stage(e, STAGE_PLAN, last, stage_plan, err)          // Network -> Plans
      && run_stage(e, STAGE_CODEGEN, last, stage_codegen, err)    // Plans -> module
      && run_stage(e, STAGE_JIT, last, stage_jit, err);           // module -> kernels
}

void engine_eliminate(Engine *e, const int *layers, int n) {
  DAMC_ASSERT(e->done < STAGE_DERIVE);
  free(e->eliminate);
  e->eliminate = xmalloc(((size_t)n + 1) * sizeof *e->eliminate);
  memcpy(e->eliminate, layers, (size_t)n * sizeof *layers);
  e->neliminate = n;
}

// ---- Compiling a kernel on another thread ----

struct Prefetch {
  pthread_t thread;
  const Plan *plan;
  CodeRequest req;
  Code *code;  // the result, once joined
  bool compiled;
  StrBuf err;
};

static void *prefetch_main(void *arg) {
  struct Prefetch *p = arg;
  const Plan *plans[1] = {p->plan};
  p->code = code_get(plans, 1, &p->req, &p->compiled, &p->err);
  return NULL;
}

void engine_prefetch(Engine *e, KernelKind kind) {
  if (e->done < STAGE_BIND || e->showable || e->modules[kind] || e->prefetch[kind]) return;
  for (int w = 0; w < e->net->nweights; w++)
    if (!e->weights[w].data) return;
  StrBuf err = {0};
  if (!e->plans[kind] &&
      !(e->plans[kind] = plan_build_kernels(e->net, e->dims, e->runtime, kind, e->kernel_choice,
                                            e->dtype == DAMRT_F32 ? 4 : 8, &err))) {
    sb_free(&err);  // engine_kernel plans it again and reports
    return;
  }
  sb_free(&err);
  e->wanted[kind] = true;  // planned: engine_want has nothing more to do
  struct Prefetch *p = xcalloc(1, sizeof *p);
  p->plan = e->plans[kind];
  p->req = (CodeRequest){e->net->name, e->text, e->len, e->eliminate, e->neliminate,
                         e->dims, e->net->ndims, e->dtype == DAMRT_F32,
                         plan_kernels_name(e->kernel_choice), false};
  if (pthread_create(&p->thread, NULL, prefetch_main, p) != 0) {
    free(p);  // compiled when asked for, as without a thread
    return;
  }
  e->prefetch[kind] = p;
}

// Waits for the kernel being compiled on another thread and installs it; false, with its
// message, when that failed.
static bool prefetch_finish(Engine *e, KernelKind kind, StrBuf *err) {
  struct Prefetch *p = e->prefetch[kind];
  e->prefetch[kind] = NULL;
  pthread_join(p->thread, NULL);
  bool ok = p->code != NULL;
  if (ok) {
    e->modules[kind] = p->code;
    if (p->compiled) e->compile_count++;
    ok = (e->kernels[kind] = (KernelFn)code_lookup(p->code, kernel_name(kind), err)) != NULL;
    if (!ok) drop_module(e, kind);  // compiled again at the next engine_compile
  } else {
    sb_append(err, sb_str(&p->err));
  }
  sb_free(&p->err);
  free(p);
  return ok;
}

void engine_rewind(Engine *e, EngineStage stage) {
  for (int k = 0; k < KERNEL_KINDS; k++)  // what the threads compile belongs to this state
    if (e->prefetch[k] && e->done > stage) {
      StrBuf ignored = {0};
      prefetch_finish(e, (KernelKind)k, &ignored);
      sb_free(&ignored);
    }
  if (e->done <= stage) return;
  // Plans depend on the sizes (bind), code on the plans and the dtype.
  for (int k = 0; k < KERNEL_KINDS; k++) {
    for (int j = k + 1; j < KERNEL_KINDS; j++)
      if (e->modules[j] == e->modules[k]) e->modules[j] = NULL;
    code_free(e->modules[k]);
    e->modules[k] = NULL;
    e->kernels[k] = NULL;
    if (stage < STAGE_PLAN) {
      plan_free(e->plans[k]);
      e->plans[k] = NULL;
    }
  }
  e->done = stage;
}

void engine_target(Engine *e, DamrtDtype dtype, bool showable) {
  DAMC_ASSERT(e->done >= STAGE_DERIVE);
  engine_rewind(e, STAGE_DERIVE);
  e->dtype = dtype;
  e->showable = showable;
  // A shown module holds the model's kernels (emit --ir, --asm, --obj).
  if (showable)
    for (int k = 0; k < KERNEL_MODEL_KINDS; k++) e->wanted[k] = true;
}

void engine_set_kernels(Engine *e, PlanKernels kernels) {
  if (e->kernel_choice == kernels) return;
  if (e->done > STAGE_BIND) engine_rewind(e, STAGE_BIND);
  e->kernel_choice = kernels;
}

void engine_vary_dim(Engine *e, int d) {
  DAMC_ASSERT(e->done >= STAGE_DERIVE && d >= 0 && d < e->net->ndims);
  if (e->runtime[d]) return;
  if (e->done > STAGE_BIND) engine_rewind(e, STAGE_BIND);  // plans with the size as a number
  e->runtime[d] = true;
}

void engine_want(Engine *e, KernelKind kind) {
  if (e->wanted[kind]) return;
  e->wanted[kind] = true;
  if (e->done > STAGE_BIND) e->done = STAGE_BIND;  // plan, generate and compile it too
}

void engine_want_only(Engine *e, KernelKind kind) {
  DAMC_ASSERT(e->done < STAGE_PLAN);
  for (int k = 0; k < KERNEL_KINDS; k++) e->wanted[k] = k == (int)kind;
}

KernelFn engine_kernel(Engine *e, KernelKind kind, StrBuf *err) {
  for (int w = 0; w < e->net->nweights; w++)
    if (!e->weights[w].data) {
      sb_printf(err, "weight '%s' is missing: the model was compiled to be shown, without it; "
                "give it to run the kernels\n", e->net->weights[w].name);
      return NULL;
    }
  if (e->prefetch[kind] && !prefetch_finish(e, kind, err)) return NULL;
  engine_want(e, kind);
  if (!engine_compile(e, STAGE_JIT, err)) return NULL;
  if (!e->kernels[kind]) {  // a bug: the pipeline is done but holds no such kernel
    sb_printf(err, "internal error: the %s kernel was not compiled (a bug in damc; please "
              "report it)\n", kernel_name(kind));
    engine_rewind(e, STAGE_BIND);  // the next call plans and compiles again
  }
  return e->kernels[kind];
}

// ---- What the stages produced ----

const Model *engine_model(const Engine *e) { return e->m; }
const Network *engine_network(const Engine *e) { return e->net; }

int engine_layer_index(const Engine *e, const char *name) {
  for (int a = 0; a < e->m->nlayers; a++)
    if (strcmp(e->m->layers[a].name, name) == 0) return a;
  return -1;
}

const int64_t *engine_dims(const Engine *e) { return e->dims; }
const double *engine_params(const Engine *e) { return e->params; }
const void *engine_weight(const Engine *e, int w) { return e->weight_data[w]; }
bool engine_weight_bound(const Engine *e, int w) { return e->weights[w].data != NULL; }

Engine *engine_clone(const Engine *e, StrBuf *err) {
  Engine *c = engine_new_text(e->name, e->text, e->len, NULL);
  for (int p = 0; p < PHRASE_COUNT; p++) engine_set_phrase(c, (EnginePhrase)p, e->phrases[p]);
  if (e->neliminate) engine_eliminate(c, e->eliminate, e->neliminate);
  c->kernel_choice = e->kernel_choice;
  bool ok = engine_compile(c, STAGE_DERIVE, err);
  c->echo = e->echo;  // what binding finds is for the caller to see (the rest `e` has said)
  for (int d = 0; ok && d < e->net->ndims; d++)  // sizes given by --dim (no weight bound them)
    if (e->dims[d] > 0 && e->net->dims[d].size <= 0 && !e->dim_origin[d])
      ok = engine_set_dim(c, e->net->dims[d].name, e->dims[d], err);
  for (int w = 0; ok && w < e->net->nweights; w++)
    if (e->weights[w].data) ok = engine_bind_weight(c, e->net->weights[w].name, &e->weights[w], e->weight_origin[w], err);
  for (int i = 0; ok && i < e->net->nparams; i++)
    if (e->param_set[i]) ok = engine_set_param(c, e->net->params[i].name, e->params[i], err);
  if (ok) return c;
  engine_free(c);
  return NULL;
}
const DiagSink *engine_diagnostics(const Engine *e) { return e->s->diag; }
FILE *engine_echo(const Engine *e) { return e->echo; }

unsigned engine_compile_count(const Engine *e) { return e->compile_count; }

int engine_weight_index(const Engine *e, const char *name) {
  for (int w = 0; w < e->m->nweights; w++)
    if (strcmp(e->m->weights[w].name, name) == 0) return w;
  return -1;
}

int engine_param_index(const Engine *e, const char *name) {
  for (int i = 0; i < e->m->nparams; i++)
    if (strcmp(e->m->params[i].name, name) == 0) return i;
  return -1;
}

size_t engine_layer_size(const Engine *e, int a) {
  int64_t n = e->dims[e->net->layers[a].dim];
  return n > 0 ? (size_t)n : 0;
}

const Plan *engine_plan(const Engine *e, KernelKind kind) { return e->plans[kind]; }

char *engine_kernels_text(Engine *e, bool assembly, StrBuf *err) {
  return code_text(e->modules[KERNEL_RHS], assembly, err);
}

bool engine_object_code(Engine *e, StrBuf *bytes, StrBuf *err) {
  return code_object(e->modules[KERNEL_RHS], bytes, err);
}
