// The subcommands that compile a model to native kernels: eval, run, emit, bench and check.
//
// Three steps, kept apart: parse_options reads the command line alone (native_options.c: no
// file is opened, so a command-line mistake is reported before anything is loaded or
// compiled); load_model opens the model through the C API (include/damc.h), reads the
// tensors and binds them in place (load.c), and compiles up to the stage the command needs;
// the command then calls damc_eval or damc_run, or, for emit, bench and check (the
// compiler's own tools), the engine under the model (api/damc_internal.h). Every problem is
// reported with the file, the tensor and the shapes.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/emit_c.h"
#include "check/check.h"
#include "check/emit_check.h"
#include "damrt_npz.h"
#include "damrt_output.h"
#include "driver/driver.h"
#include "driver/native.h"
#include "engine/kcache.h"
#include "support/common.h"

// ---- Results ----

// Writes `results` to `path` (.npz, through a temporary file renamed at the end).
static bool write_results(const char *path, const DamcResults *results, StrBuf *err) {
  size_t n = damc_results_count(results);
  DamrtNamedTensor *items = xcalloc(n + 1, sizeof *items);
  DamrtTensor *views = xcalloc(n + 1, sizeof *views);
  for (size_t i = 0; i < n; i++) {
    DamcArray a;
    const char *name = damc_results_at(results, i, &a);
    views[i] = (DamrtTensor){DAMRT_F64, a.rank, {1, 1, 1, 1}, 1, (void *)a.data};
    for (int k = 0; k < a.rank; k++) views[i].count *= views[i].shape[k] = a.shape[k];
    // A run's step counts are stored as int64 and its convergence flags as bool, as NumPy
    // users expect of them; every other result as float64.
    DamrtStoreAs as = !strcmp(name, "steps")       ? DAMRT_STORE_INT64
                      : !strcmp(name, "converged") ? DAMRT_STORE_BOOL
                                                   : DAMRT_STORE_TENSOR;
    items[i] = (DamrtNamedTensor){name, &views[i], as};
  }
  DamrtError derr = {0};
  bool ok = damrt_npz_write(path, items, n, DAMRT_NPZ_STORED, &derr) == DAMRT_OK;
  if (!ok) sb_printf(err, "%s\n", derr.message);
  free(views);
  free(items);
  return ok;
}

// The summary of the results on stdout (checked like a file), or on stderr when the trace
// takes stdout (--trace -), so that the CSV stays whole.
static bool print_summary(const DamcResults *results, bool to_stderr, StrBuf *err) {
  StrBuf out = {0};
  for (size_t i = 0; i < damc_results_count(results); i++) {
    DamcArray a;
    const char *name = damc_results_at(results, i, &a);
    const double *v = a.data;
    size_t count = 1;
    for (int k = 0; k < a.rank; k++) count *= a.shape[k];
    if (!strcmp(name, "E") || !strncmp(name, "E_", 2)) {
      sb_printf(&out, "%-12s", name);
      for (size_t k = 0; k < count && k < 8; k++) sb_printf(&out, " %.10g", v[k]);
      sb_printf(&out, "%s\n", count > 8 ? " ..." : "");
    } else {
      double mx = 0;  // NaN when any value is NaN (fmax would skip it)
      for (size_t k = 0; k < count; k++) mx = isnan(v[k]) || isnan(mx) ? NAN : fmax(mx, fabs(v[k]));
      sb_printf(&out, "%-12s max|.| = %.6g over %zu values\n", name, mx, count);
    }
  }
  bool ok = true;
  if (to_stderr) fputs(sb_str(&out), stderr);
  else ok = output_write(NULL, out.data, out.len, err);
  sb_free(&out);
  return ok;
}

// The per-layer arrays as the API's batch.
static DamcBatch batch_of(const Loaded *l) {
  return (DamcBatch){l->arrays[ARR_STATE], l->arrays[ARR_INPUT], l->arrays[ARR_CLAMP]};
}

// Writes the results (NULL: the command failed, with `derr`) to --out or as a summary,
// reports a failure or a warning (an error with run --strict), frees the results; returns
// the exit status.
static int report_results(const Options *o, DamcResults *results, DamcError *derr) {
  StrBuf err = {0};
  int status = results ? 0 : EXIT_MODEL;
  const char *warning = results ? damc_results_warning(results) : NULL;
  if (warning && o->strict) {
    sb_printf(&err, "%s (--strict)\n", warning);
    status = EXIT_MODEL;
  } else if (warning && !o->quiet) {
    fprintf(stderr, "damc %s: warning: %s\n", o->command, warning);
  }
  if (!results) sb_append(&err, derr->message);
  else if (status) {
    // --strict: no output from a run that did not converge.
  } else if (o->out && !write_results(o->out, results, &err)) status = EXIT_MODEL;
  else if (!o->out &&
           !print_summary(results, o->trace && !strcmp(o->trace, "/dev/stdout"), &err))
    status = EXIT_MODEL;
  if (status) print_errors(o->command, sb_str(&err));
  sb_free(&err);
  damc_results_free(results);
  damc_error_clear(derr);
  return status;
}

// ---- Progress ----

// "1:05", "12.3s"
static void duration_text(double s, char *buf, size_t n) {
  if (!(s >= 0) || isinf(s)) snprintf(buf, n, "?");
  else if (s < 60) snprintf(buf, n, "%.1fs", s);
  else snprintf(buf, n, "%d:%02d", (int)(s / 60), (int)fmod(s, 60));
}

// One line on stderr, redrawn in place; the last report ends it.
static void draw_progress(void *user, const DamcProgress *p) {
  (void)user;
  char elapsed[32], left[32];
  duration_text(p->elapsed, elapsed, sizeof elapsed);
  duration_text(p->remaining, left, sizeof left);
  char line[200];
  int n = snprintf(line, sizeof line, "step %zu/%zu", p->step, p->max_steps);
  if (!isnan(p->t)) n += snprintf(line + n, sizeof line - (size_t)n, "  t %.4g", p->t);
  if (!isnan(p->energy)) n += snprintf(line + n, sizeof line - (size_t)n, "  E %.6g", p->energy);
  n += snprintf(line + n, sizeof line - (size_t)n, "  converged %zu/%zu  %s", p->converged,
                p->batch, elapsed);
  if (!p->done) snprintf(line + n, sizeof line - (size_t)n, ", ~%s left", left);
  fprintf(stderr, "\r%-78s%s", line, p->done ? "\n" : "");
  fflush(stderr);
}

// An interrupt (Ctrl-C) or SIGTERM during a run stops it at the next step, so that the
// trace so far is kept; a second one ends the process at once, removing temporary files.
static volatile int interrupted;

static void on_interrupt(int sig) {
  if (interrupted) {
    damrt_output_remove_pending();
    signal(sig, SIG_DFL);
    raise(sig);
  }
  interrupted = 1;
}

// ---- The subcommands ----

int cmd_eval(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  DamcBatch batch = batch_of(&l);
  DamcError derr = {0};
  return finish(&o, &l, report_results(&o, damc_eval(l.damc, &batch, &derr), &derr));
}

int cmd_run(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  DamrtOutput *trace = NULL;
  if (o.trace) {
    // Whole when the run succeeds; kept as TRACE.partial when it fails.
    DamrtError terr = {0};
    if (!(trace = damrt_output_open(o.trace, &terr))) {
      print_errors("run", terr.message);
      return finish(&o, &l, EXIT_MODEL);
    }
    o.run.trace = damrt_output_stream(trace);
  }
  // Progress on a terminal (or when asked), never with --quiet or --no-progress.
  if (o.progress > 0 || (o.progress == 0 && !o.quiet && isatty(STDERR_FILENO)))
    o.run.progress = draw_progress;
  o.run.cancel = &interrupted;
  signal(SIGINT, on_interrupt);
  signal(SIGTERM, on_interrupt);
  DamcBatch batch = batch_of(&l);
  DamcError derr = {0};
  DamcResults *results = damc_run(l.damc, &batch, &o.run, &derr);
  if (trace) {
    DamrtError terr = {0};
    if (results && damrt_output_commit(trace, &terr) != DAMRT_OK) {
      damc_results_free(results);
      results = NULL;
      damc_error_clear(&derr);
      derr.message = xstrdup(terr.message);
    } else if (!results) {
      char *partial = NULL;
      StrBuf more = {0};
      if (damrt_output_commit_partial(trace, &partial, &terr) == DAMRT_OK)
        sb_printf(&more, "%sthe trace of the steps taken is in '%s'\n", derr.message, partial);
      else
        sb_printf(&more, "%sthe trace was lost: %s\n", derr.message, terr.message);
      free(derr.message);
      derr.message = xstrdup(sb_str(&more));
      sb_free(&more);
      free(partial);
    }
  }
  return finish(&o, &l, report_results(&o, results, &derr));
}

int cmd_bench(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  StrBuf err = {0};
  double rhs, eval;
  if (engine_bench(l.engine, o.batch, o.repeat, &rhs, &eval, &err)) {
    KcacheStats k = kcache_stats();
    printf("model              %s\n", o.model);
    printf("precision          %s\n", o.precision == DAMC_F32 ? "f32" : "f64");
    printf("front end          %.2f ms (parse, check, derive)\n", 1e3 * l.load_seconds);
    printf("compile            %.2f ms (plans; the step kernel: %s)\n", 1e3 * l.compile_seconds,
           !kcache_enabled() ? "code generation, optimisation, JIT"
                             : "from the cache, or code generation, optimisation, object, cc -shared");
    printf("to the first step  %.2f ms (the above, reading the tensors, checking them)\n",
           1e3 * l.ready_seconds);
    printf("batch              %zu\n", o.batch);
    printf("step (dx/dt)       %.4f ms  median of %d\n", 1e3 * rhs, o.repeat);  // 0.1 µs resolution
    printf("eval (E, g, u)     %.4f ms  median of %d\n", 1e3 * eval, o.repeat);
    printf("kernels            %u modules compiled, %u from the cache%s; LLVM %s\n", k.compiled,
           k.hits, kcache_enabled() ? "" : " (cache off)", k.llvm_loaded ? "loaded" : "not loaded");
    const KcacheStats *r = &l.ready_stats;
    if (r->llvm_loaded)  // summed over the threads that compiled, until the first step
      printf("LLVM (first step)  loading %.2f ms; set-up %.2f, IR %.2f, optimising %.2f, machine "
             "code %.2f ms\n", 1e3 * r->load_seconds, 1e3 * r->setup_seconds,
             1e3 * r->ir_seconds, 1e3 * r->optimise_seconds, 1e3 * r->codegen_seconds);
  } else {
    print_errors("bench", sb_str(&err));
    status = EXIT_MODEL;
  }
  sb_free(&err);
  return finish(&o, &l, status);
}

int cmd_emit(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  StrBuf err = {0}, text = {0};
  if (o.plan) {
    for (int k = 0; k < KERNEL_MODEL_KINDS; k++) {
      sb_printf(&text, "kernel %s\n", k == KERNEL_RHS ? "damc_rhs (dx/dt)" : "damc_eval (E, g, u, dx/dt)");
      plan_print(&text, engine_plan(l.engine, (KernelKind)k));
    }
    if (!output_write(NULL, text.data, text.len, &err)) status = EXIT_MODEL;
  } else if (o.ir || o.asm_text) {
    char *code = engine_kernels_text(l.engine, o.asm_text, &err);
    if (!code) status = EXIT_INTERNAL;
    else if (!output_write(NULL, code, strlen(code), &err)) status = EXIT_MODEL;
    free(code);
  } else if (o.obj) {
    if (!engine_object_code(l.engine, &text, &err)) status = EXIT_INTERNAL;
    else if (!output_write(o.obj, text.data, text.len, &err)) status = EXIT_MODEL;
  } else {
    const Plan *plans[2] = {engine_plan(l.engine, KERNEL_RHS), engine_plan(l.engine, KERNEL_EVAL)};
    char *h_path = header_path(o.c_source);
    const char *c_name = strrchr(o.c_source, '/') ? strrchr(o.c_source, '/') + 1 : o.c_source;
    const char *h_name = strrchr(h_path, '/') ? strrchr(h_path, '/') + 1 : h_path;
    StrBuf header = {0};
    if (!emit_c_generate(plans, KERNEL_MODEL_KINDS, o.precision == DAMC_F64, o.model, c_name,
                         h_name, &text, &header, &err))
      status = EXIT_INTERNAL;
    else if (!output_write_pair(o.c_source, &text, h_path, &header, &err))
      status = EXIT_MODEL;
    sb_free(&header);
    free(h_path);
  }
  if (status) print_errors("emit", sb_str(&err));
  sb_free(&err);
  sb_free(&text);
  return finish(&o, &l, status);
}

// check --emit-c: the program of the checks, for the sizes and params as given (the weights
// fix the sizes; the program reads them when it runs).
static int emit_check(const Options *o, Loaded *l) {
  StrBuf err = {0}, text = {0};
  int status = 0;
  const char *c_name = strrchr(o->emit_c, '/') ? strrchr(o->emit_c, '/') + 1 : o->emit_c;
  if (!engine_compile(l->engine, STAGE_BIND, &err) ||
      !emit_check_program(engine_network(l->engine), engine_dims(l->engine),
                          engine_params(l->engine), o->model, c_name, &text, &err))
    status = EXIT_MODEL;
  else if (!output_write(o->emit_c, text.data, text.len, &err))
    status = EXIT_MODEL;
  if (status) print_errors("check", sb_str(&err));
  sb_free(&err);
  sb_free(&text);
  return status;
}

int cmd_check(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  if (o.emit_c) return finish(&o, &l, emit_check(&o, &l));
  EngineArray *arrays[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    const DamcArray *src = l.arrays[k == 0 ? ARR_STATE : ARR_INPUT];
    bool any = false;
    for (int a = 0; a < l.nlayers; a++) any |= src[a].data != NULL;
    if (!any) continue;
    arrays[k] = xcalloc((size_t)l.nlayers + 1, sizeof(EngineArray));
    for (int a = 0; a < l.nlayers; a++) arrays[k][a] = damc_engine_array(&src[a]);
  }
  EngineArrays given = {arrays[0], arrays[1], NULL, NULL};
  CheckReport report = {0};
  StrBuf err = {0}, text = {0};
  if (!check_run(l.engine, o.run.seed, o.samples, arrays[0] || arrays[1] ? &given : NULL, &report, &err))
    status = EXIT_MODEL;
  const DiagSink *sink = engine_diagnostics(l.engine);
  if (!status) {
    if (o.json) report_print_json(&report, sink, o.model, &text);
    else report_print_text(&report, sink, o.details, &text);
    if (!output_write(NULL, text.data, text.len, &err)) status = EXIT_MODEL;
  }
  if (status) print_errors("check", sb_str(&err));
  else if (o.strict && report_worst(&report) != VERDICT_PASS) status = EXIT_CHECK;
  report_free(&report);
  sb_free(&text);
  sb_free(&err);
  free(arrays[0]);
  free(arrays[1]);
  return finish(&o, &l, status);
}
