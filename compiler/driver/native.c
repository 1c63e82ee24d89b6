// The subcommands that compile a model to native kernels: eval, run and emit.
//
// They are clients of the C API (include/damc.h): one option parser reads the tensors
// (--weights, --weight, --set), the per-layer arrays (--state, --input, --init, --clamp) and
// --precision into a DamcModel, and eval and run go through damc_eval and damc_run. Every
// problem is reported with the file, the tensor and the shapes. emit and bench, the
// compiler's own tools, also reach the engine under the model (api/damc_internal.h).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damrt_kernel.h"
#include "damrt_npy.h"
#include "damrt_npz.h"
#include "driver/driver.h"
#include "api/damc_internal.h"
#include "engine/engine.h"
#include "lower/emit_c.h"
#include "support/common.h"

typedef struct {
  const char *command;
  const char *model;
  DamcModel *damc;
  Engine *engine;  // the engine under `damc`
  DamrtDtype dtype;
  const char *out;
  EngineArrays arrays;
  int nlayers;
  // emit
  bool plan, ir, asm_text;
  const char *obj;
  const char *c_source;  // --c: the C file (its header is written next to it)
  // run
  DamcRunOptions run;
  const char *trace;
  // bench
  size_t batch;
  int repeat;
  double load_seconds, compile_seconds, ready_seconds;
} Options;



// A number option's value; false when it is not a number in [lo, hi].
static bool parse_number(const char *text, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (*text == '\0' || *end || errno || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

// The options of damc run; 1 when `opt` is one (its value parsed), 0 when it is not, or
// the exit status of a usage error.
static int parse_run_option(Options *o, const char *opt, const char *val) {
  DamcRunOptions *r = &o->run;
  double v;
  if (!strcmp(opt, "--method")) {
    if (!strcmp(val, "euler")) r->method = DAMC_EULER;
    else if (!strcmp(val, "rk4")) r->method = DAMC_RK4;
    else if (!strcmp(val, "dopri5")) r->method = DAMC_DOPRI5;
    else if (!strcmp(val, "async")) r->method = DAMC_ASYNC;
    else return usage_error("run", "--method %s: expected euler, rk4, dopri5 or async", val);
    return 1;
  }
  struct { const char *name; double lo, hi, *dst; } numbers[] = {
      {"--dt", 1e-300, 1e300, &r->dt},     {"--rtol", 0, 1, &r->rtol},
      {"--atol", 1e-300, 1e300, &r->atol}, {"--tol", 0, 1e300, &r->tol},
      {"--noise", 0, 1e300, &r->noise_T},
  };
  for (size_t i = 0; i < ARRAY_LEN(numbers); i++)
    if (!strcmp(opt, numbers[i].name)) {
      if (!parse_number(val, numbers[i].lo, numbers[i].hi, numbers[i].dst)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s %%s: expected a number from %g to %g", opt, numbers[i].lo,
                 numbers[i].hi);
        return usage_error("run", msg, val);
      }
      return 1;
    }
  if (!strcmp(opt, "--max-steps") || !strcmp(opt, "--seed") || !strcmp(opt, "--threads")) {
    if (!parse_number(val, 0, 9007199254740992.0, &v) || v != floor(v))
      return usage_error("run", "expected a whole number, not '%s'", val);
    if (!strcmp(opt, "--max-steps") && v < 1) return usage_error("run", "--max-steps %s: at least 1", val);
    if (!strcmp(opt, "--max-steps")) r->max_steps = (size_t)v;
    else if (!strcmp(opt, "--seed")) r->seed = (uint64_t)v;
    else if (v < 1) return usage_error("run", "--threads %s: at least 1", val);
    else damrt_set_threads((int)v);
    return 1;
  }
  if (!strcmp(opt, "--trace")) {
    o->trace = val;
    return 1;
  }
  return 0;
}

// Splits "A=FILE" at the first '='; false when there is none.
static bool split_pair(const char *arg, char *key, size_t keysize, const char **value) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1] || (size_t)(eq - arg) >= keysize) return false;
  memcpy(key, arg, (size_t)(eq - arg));
  key[eq - arg] = '\0';
  *value = eq + 1;
  return true;
}

static int layer_index(const Engine *e, const char *name) {
  const Model *m = engine_network(e)->model;
  for (int a = 0; a < m->nlayers; a++)
    if (strcmp(m->layers[a].name, name) == 0) return a;
  return -1;
}

// Binds `t` (taken) as weight `name` through the C API.
static bool bind_weight(DamcModel *m, const char *name, DamrtTensor *t, const char *origin,
                        StrBuf *err) {
  DamcError derr = {0};
  bool ok = damc_bind_weight(m, name, t->rank, t->shape, t->data, origin, &derr);
  if (!ok) sb_append(err, derr.message);
  damc_error_clear(&derr);
  damrt_tensor_free(t);
  return ok;
}

static bool load_npz_weights(DamcModel *m, const char *path, StrBuf *err) {
  DamrtError derr = {0};
  DamrtNpz *npz = damrt_npz_open(path, &derr);
  if (!npz) {
    sb_printf(err, "%s\n", derr.message);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < damrt_npz_count(npz); i++) {
    const char *key = damrt_npz_key(npz, i);
    DamrtTensor *t = damrt_npz_read(npz, key, DAMRT_F64, &derr);
    if (!t) {
      sb_printf(err, "%s\n", derr.message);
      ok = false;
      continue;
    }
    ok &= bind_weight(m, key, t, path, err);
  }
  damrt_npz_close(npz);
  return ok;
}

// Reads `path` (.npy) for the per-layer array option `what` ("--state") of layer `name`.
static bool load_layer_array(Options *o, DamrtTensor **slots, const char *what, const char *arg,
                             StrBuf *err) {
  char name[256];
  const char *path;
  if (!split_pair(arg, name, sizeof name, &path)) {
    sb_printf(err, "%s %s: expected LAYER=FILE.npy\n", what, arg);
    return false;
  }
  int a = layer_index(o->engine, name);
  if (a < 0) {
    sb_printf(err, "%s %s: model '%s' has no layer '%s'\n", what, arg,
              engine_network(o->engine)->model->name, name);
    return false;
  }
  if (slots[a]) {
    sb_printf(err, "%s %s: layer '%s' is given twice\n", what, arg, name);
    return false;
  }
  DamrtError derr = {0};
  slots[a] = damrt_npy_read(path, DAMRT_F64, &derr);
  if (!slots[a]) {
    sb_printf(err, "%s\n", derr.message);
    return false;
  }
  char label[512];
  snprintf(label, sizeof label, "%s: %s of layer '%s'", path, what + 2, name);
  if (damrt_tensor_check_finite(slots[a], label, &derr) != DAMRT_OK) {
    sb_printf(err, "%s\n", derr.message);
    return false;
  }
  return true;
}

static void free_options(Options *o) {
  DamrtTensor **all[3] = {o->arrays.state, o->arrays.input, o->arrays.clamp};
  for (int k = 0; k < 3; k++) {
    if (!all[k]) continue;
    for (int a = 0; a < o->nlayers; a++) damrt_tensor_free(all[k][a]);
    free(all[k]);
  }
  damc_model_free(o->damc);
}

// Parses the command line into `o`, loading the model and its tensors. Returns 0, or the
// exit status after printing the message.
static int parse_options(Options *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->command = argv[0];
  o->dtype = DAMRT_F32;
  o->batch = 1;
  o->repeat = 20;
  double t_start = clock_seconds();
  o->run = (DamcRunOptions){DAMC_DOPRI5, 0, 0, 0, 0, 10000, 0, 0, NULL};
  bool tol_given = false;
  // The model comes first among the non-options, so that tensors can be checked as read.
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-') {
      if (o->model) return usage_error(o->command, "more than one model file ('%s')", argv[i]);
      o->model = argv[i];
    } else if (strcmp(argv[i], "--plan") && strcmp(argv[i], "--ir") && strcmp(argv[i], "--asm")) {
      i++;  // every other option takes a value
    }
  }
  if (!o->model) return usage_error(o->command, "no model file given%s", "");
  StrBuf err = {0};
  DamcError derr = {0};
  o->damc = damc_model_from_file(o->model, &derr);
  if (!o->damc) {
    fputs(derr.message, stderr);
    damc_error_clear(&derr);
    return EXIT_MODEL;
  }
  o->engine = damc_model_engine(o->damc);
  o->load_seconds = clock_seconds() - t_start;
  o->nlayers = engine_network(o->engine)->model->nlayers;
  o->arrays.state = xcalloc((size_t)o->nlayers + 1, sizeof(DamrtTensor *));
  o->arrays.input = xcalloc((size_t)o->nlayers + 1, sizeof(DamrtTensor *));
  o->arrays.clamp = xcalloc((size_t)o->nlayers + 1, sizeof(DamrtTensor *));
  bool ok = true;
  int status = 0;
  for (int i = 1; i < argc && ok; i++) {
    const char *opt = argv[i];
    if (opt[0] != '-') continue;
    if (!strcmp(opt, "--plan")) { o->plan = true; continue; }
    if (!strcmp(opt, "--ir")) { o->ir = true; continue; }
    if (!strcmp(opt, "--asm")) { o->asm_text = true; continue; }
    if (i + 1 >= argc) {
      free_options(o);
      return usage_error(o->command, "option '%s' needs a value", opt);
    }
    const char *val = argv[++i];
    if (!strcmp(opt, "--weights")) {
      ok = load_npz_weights(o->damc, val, &err);
    } else if (!strcmp(opt, "--weight")) {
      char name[256];
      const char *path;
      if (!split_pair(val, name, sizeof name, &path)) {
        free_options(o);
        return usage_error(o->command, "--weight %s: expected NAME=FILE.npy", val);
      }
      DamrtError read_err = {0};
      DamrtTensor *t = damrt_npy_read(path, DAMRT_F64, &read_err);
      if (!t) sb_printf(&err, "%s\n", read_err.message);
      ok = t && bind_weight(o->damc, name, t, path, &err);
    } else if (!strcmp(opt, "--set")) {
      char name[256];
      const char *text;
      char *end;
      if (!split_pair(val, name, sizeof name, &text)) {
        free_options(o);
        return usage_error(o->command, "--set %s: expected PARAM=VALUE", val);
      }
      errno = 0;
      double v = strtod(text, &end);
      if (*end || errno) {
        free_options(o);
        return usage_error(o->command, "--set %s: the value is not a number", val);
      }
      ok = damc_set_param(o->damc, name, v, &derr);
      if (!ok) sb_append(&err, derr.message);
      damc_error_clear(&derr);
    } else if (!strcmp(opt, "--state") || !strcmp(opt, "--init")) {
      ok = load_layer_array(o, o->arrays.state, opt, val, &err);
    } else if (!strcmp(opt, "--input")) {
      ok = load_layer_array(o, o->arrays.input, opt, val, &err);
    } else if (!strcmp(opt, "--clamp")) {
      ok = load_layer_array(o, o->arrays.clamp, opt, val, &err);
    } else if (!strcmp(opt, "--precision")) {
      if (!strcmp(val, "f32")) o->dtype = DAMRT_F32;
      else if (!strcmp(val, "f64")) o->dtype = DAMRT_F64;
      else {
        free_options(o);
        return usage_error(o->command, "--precision %s: expected f32 or f64", val);
      }
    } else if (!strcmp(opt, "--out") || !strcmp(opt, "--obj")) {
      if (!strcmp(opt, "--out")) o->out = val;
      else o->obj = val;
    } else if (!strcmp(opt, "--c")) {
      size_t len = strlen(val);
      if (len < 3 || strcmp(val + len - 2, ".c") != 0) {
        free_options(o);
        return usage_error(o->command, "--c %s: the name must end in '.c' (the header is "
                           "written next to it, ending in '.h')", val);
      }
      o->c_source = val;
    } else if (!strcmp(o->command, "bench") && (!strcmp(opt, "--batch") || !strcmp(opt, "--repeat"))) {
      double v;
      if (!parse_number(val, 1, 1e9, &v) || v != floor(v)) {
        free_options(o);
        return usage_error("bench", "expected a positive whole number, not '%s'", val);
      }
      if (!strcmp(opt, "--batch")) o->batch = (size_t)v;
      else o->repeat = (int)v;
    } else if (!strcmp(o->command, "run") && (status = parse_run_option(o, opt, val)) != 0) {
      tol_given |= !strcmp(opt, "--tol");
      if (status != 1) {
        free_options(o);
        return status;
      }
    } else {
      free_options(o);
      return usage_error(o->command, "unknown option '%s'", opt);
    }
  }
  // --tol 0 means: never stop early (in the API, 0 asks for the default).
  if (tol_given && o->run.tol == 0) o->run.tol = -1;
  // Inputs only for layers declared with `input`.
  for (int a = 0; ok && a < o->nlayers; a++)
    if (o->arrays.input[a] && !engine_network(o->engine)->layers[a].input) {
      sb_printf(&err, "--input: layer '%s' has no 'input' statement in the model\n",
                engine_network(o->engine)->model->layers[a].name);
      ok = false;
    }
  double t_prepare = clock_seconds();
  if (ok && !damc_compile_showable(o->damc, o->dtype == DAMRT_F32 ? DAMC_F32 : DAMC_F64,
                                   !strcmp(o->command, "emit"), &derr)) {
    sb_append(&err, derr.message);
    ok = false;
  }
  damc_error_clear(&derr);
  o->compile_seconds = clock_seconds() - t_prepare;
  o->ready_seconds = clock_seconds() - t_start;
  if (!ok) {
    fprintf(stderr, "%s", sb_str(&err));
    sb_free(&err);
    free_options(o);
    return EXIT_MODEL;
  }
  sb_free(&err);
  return 0;
}

// Writes `results` to `path` (.npz, through a temporary file renamed at the end).
static bool write_results(const char *path, const DamcResults *results, StrBuf *err) {
  size_t n = damc_results_count(results);
  DamrtNamedTensor *items = xcalloc(n + 1, sizeof *items);
  for (size_t i = 0; i < n; i++) {
    DamcArray a;
    const char *name = damc_results_at(results, i, &a);
    DamrtTensor *t = damrt_tensor_new(DAMRT_F64, a.rank, a.shape, NULL);
    memcpy(t->data, a.data, t->count * sizeof(double));
    items[i] = (DamrtNamedTensor){name, t};
  }
  DamrtError derr = {0};
  bool ok = damrt_npz_write(path, items, n, DAMRT_NPZ_STORED, &derr) == DAMRT_OK;
  if (!ok) sb_printf(err, "%s\n", derr.message);
  for (size_t i = 0; i < n; i++) damrt_tensor_free((DamrtTensor *)items[i].tensor);
  free(items);
  return ok;
}

static void print_summary(const DamcResults *results) {
  for (size_t i = 0; i < damc_results_count(results); i++) {
    DamcArray a;
    const char *name = damc_results_at(results, i, &a);
    size_t count = a.rank == 0 ? 1 : a.rank == 1 ? a.shape[0] : a.shape[0] * a.shape[1];
    if (!strcmp(name, "E") || !strncmp(name, "E_", 2)) {
      printf("%-12s", name);
      for (size_t k = 0; k < count && k < 8; k++) printf(" %.10g", a.data[k]);
      printf("%s\n", count > 8 ? " ..." : "");
    } else {
      double mx = 0;
      for (size_t k = 0; k < count; k++) mx = fmax(mx, fabs(a.data[k]));
      printf("%-12s max|.| = %.6g over %zu values\n", name, mx, count);
    }
  }
}

// The per-layer arrays of the command line as the API's views (no copies).
static DamcBatch batch_of(const Options *o, DamcArray views[3][64]) {
  DamrtTensor **all[3] = {o->arrays.state, o->arrays.input, o->arrays.clamp};
  for (int k = 0; k < 3; k++)
    for (int a = 0; a < o->nlayers && a < 64; a++) {
      const DamrtTensor *t = all[k][a];
      views[k][a] = t ? (DamcArray){t->rank, {t->shape[0], t->rank > 1 ? t->shape[1] : 0}, t->data}
                      : (DamcArray){0, {0, 0}, NULL};
    }
  return (DamcBatch){views[0], views[1], views[2]};
}

// Writes the results (NULL: the command failed, with `derr`) to --out or as a summary,
// reports a failure, frees the results; returns the exit status.
static int report_results(const Options *o, DamcResults *results, DamcError *derr, StrBuf *err) {
  int status = results ? 0 : EXIT_MODEL;
  if (!results) sb_append(err, derr->message);
  else if (o->out && !write_results(o->out, results, err)) status = EXIT_MODEL;
  else if (!o->out) print_summary(results);
  if (status) fprintf(stderr, "damc %s: error: %s", o->command, sb_str(err));
  damc_results_free(results);
  damc_error_clear(derr);
  return status;
}

int cmd_eval(int argc, char **argv) {
  Options o;
  int status = parse_options(&o, argc, argv);
  if (status) return status;
  DamcArray views[3][64];
  DamcBatch batch = batch_of(&o, views);
  StrBuf err = {0};
  DamcError derr = {0};
  status = report_results(&o, damc_eval(o.damc, &batch, &derr), &derr, &err);
  sb_free(&err);
  free_options(&o);
  return status;
}

int cmd_run(int argc, char **argv) {
  Options o;
  int status = parse_options(&o, argc, argv);
  if (status) return status;
  StrBuf err = {0}, trace_tmp = {0};
  if (o.trace) {
    // Written to a temporary name and renamed at the end: no half trace after a failure.
    sb_printf(&trace_tmp, "%s.tmp.%ld", o.trace, (long)getpid());
    o.run.trace = fopen(sb_str(&trace_tmp), "w");
    if (!o.run.trace) {
      fprintf(stderr, "damc run: error: cannot write '%s': %s\n", o.trace, strerror(errno));
      sb_free(&trace_tmp);
      free_options(&o);
      return EXIT_MODEL;
    }
  }
  DamcArray views[3][64];
  DamcBatch batch = batch_of(&o, views);
  DamcError derr = {0};
  DamcResults *results = damc_run(o.damc, &batch, &o.run, &derr);
  if (o.run.trace) {
    bool ok = fclose(o.run.trace) == 0 && results;
    if (ok && rename(sb_str(&trace_tmp), o.trace) != 0) {
      damc_results_free(results);
      results = NULL;
      derr.message = xstrdup("cannot write the trace\n");
    }
    if (!ok || !results) remove(sb_str(&trace_tmp));
  }
  status = report_results(&o, results, &derr, &err);
  sb_free(&err);
  sb_free(&trace_tmp);
  free_options(&o);
  return status;
}

int cmd_bench(int argc, char **argv) {
  Options o;
  int status = parse_options(&o, argc, argv);
  if (status) return status;
  StrBuf err = {0};
  double rhs, eval;
  if (engine_bench(o.engine, o.batch, o.repeat, &rhs, &eval, &err)) {
    printf("model              %s\n", o.model);
    printf("precision          %s\n", o.dtype == DAMRT_F32 ? "f32" : "f64");
    printf("front end          %.2f ms (parse, check, derive)\n", 1e3 * o.load_seconds);
    printf("compile            %.2f ms (plans; the step kernel: code generation, O3, JIT)\n",
           1e3 * o.compile_seconds);
    printf("to the first step  %.2f ms (the above, reading the tensors, checking them)\n",
           1e3 * o.ready_seconds);
    printf("batch              %zu\n", o.batch);
    printf("step (dx/dt)       %.3f ms  median of %d\n", 1e3 * rhs, o.repeat);
    printf("eval (E, g, u)     %.3f ms  median of %d\n", 1e3 * eval, o.repeat);
  } else {
    fprintf(stderr, "damc bench: error: %s", sb_str(&err));
    status = EXIT_MODEL;
  }
  sb_free(&err);
  free_options(&o);
  return status;
}

int cmd_emit(int argc, char **argv) {
  Options o;
  int status = parse_options(&o, argc, argv);
  if (status) return status;
  StrBuf err = {0}, text = {0};
  if (o.plan) {
    for (int k = 0; k < 2; k++) {
      sb_printf(&text, "kernel %s\n", k == PLAN_RHS ? "damc_rhs (dx/dt)" : "damc_eval (E, g, u, dx/dt)");
      plan_print(&text, engine_plan(o.engine, (PlanKind)k));
    }
    fputs(sb_str(&text), stdout);
  } else if (o.ir || o.asm_text) {
    char *code = engine_kernels_text(o.engine, o.asm_text, &err);
    if (code) fputs(code, stdout);
    else status = EXIT_INTERNAL;
    free(code);
  } else if (o.obj) {
    if (!engine_write_object(o.engine, o.obj, &err)) status = EXIT_MODEL;
  } else if (o.c_source) {
    const Plan *plans[2] = {engine_plan(o.engine, PLAN_RHS), engine_plan(o.engine, PLAN_EVAL)};
    if (!emit_c_write(plans, o.dtype == DAMRT_F64, o.model, o.c_source, &err)) status = EXIT_MODEL;
  } else {
    free_options(&o);
    return usage_error("emit", "say what to emit: --plan, --ir, --asm, --obj OUT.o or --c OUT.c%s",
                       "");
  }
  if (status) fprintf(stderr, "damc emit: error: %s\n", sb_str(&err));
  sb_free(&err);
  sb_free(&text);
  free_options(&o);
  return status;
}
