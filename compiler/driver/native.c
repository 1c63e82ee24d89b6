// The subcommands that compile a model to native kernels: eval, run, emit and bench.
//
// Three steps, kept apart: parse_options reads the command line alone (no file is opened,
// so a command-line mistake is reported before anything is loaded or compiled); load_model
// opens the model through the C API (include/damc.h), reads the tensors in the kernels'
// precision and binds them (the API reads them in place: no copy), and compiles up to the
// stage the command needs; the command then calls damc_eval or damc_run, or, for emit and
// bench (the compiler's own tools), the engine under the model (api/damc_internal.h).
// Every problem is reported with the file, the tensor and the shapes.
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/damc_internal.h"
#include "backend/emit_c.h"
#include "check/check.h"
#include "damrt_kernel.h"
#include "damrt_npy.h"
#include "damrt_npz.h"
#include "damrt_output.h"
#include "driver/driver.h"
#include "support/common.h"

// The per-layer array options, in the order of DamcBatch.
enum { ARR_STATE, ARR_INPUT, ARR_CLAMP, ARR_KINDS };

// An option that names a tensor or a param, in command-line order.
typedef struct {
  const char *option;  // "--weights", "--weight", "--set", "--state", "--init", "--input", "--clamp"
  const char *value;
} TensorOption;

typedef struct {
  const char *command;
  const char *model;
  TensorOption *tensors;
  int ntensors;
  DamcPrecision precision;
  const char *out;
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
  bool allow_extra;  // --allow-extra: .npz members that are not weights are ignored
  bool strict;       // run --strict: an unconverged sample is an error
  int progress;      // run: 1 --progress, -1 --no-progress, 0 when stderr is a terminal
  bool quiet;
  // check
  int samples;
  bool json;
} Options;

// The model with its tensors, as loaded.
typedef struct {
  DamcModel *damc;
  Engine *engine;  // the engine under `damc`
  int nlayers;
  DamrtTensor **held;  // every tensor read (the API reads them in place)
  size_t nheld, held_cap;
  DamcArray *arrays[ARR_KINDS];  // per layer; data NULL when not given
  double load_seconds, compile_seconds, ready_seconds;
} Loaded;

// A number option's value; false when it is not a number in [lo, hi].
static bool parse_number(const char *text, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (*text == '\0' || *end || errno || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
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

// Whether `text` is a number too large for a double (strtod's ERANGE on overflow).
static bool number_out_of_range(const char *text) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  return !*end && errno == ERANGE && fabs(v) > 1;
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
    else if (!strcmp(val, "iterate")) r->method = DAMC_ITERATE;
    else return usage_error("run", "--method %s: expected euler, rk4, dopri5, iterate or async", val);
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
        snprintf(msg, sizeof msg, "%s %%s: expected a number from %g to %g%s", opt, numbers[i].lo,
                 numbers[i].hi, number_out_of_range(val) ? " (this one is out of range)" : "");
        return usage_error("run", msg, val);
      }
      // --tol 0 means: never stop early (in the API, 0 asks for the default).
      if (!strcmp(opt, "--tol") && r->tol == 0) r->tol = -1;
      return 1;
    }
  if (!strcmp(opt, "--max-steps") || !strcmp(opt, "--seed") || !strcmp(opt, "--threads")) {
    if (!parse_number(val, 0, 9007199254740992.0, &v) || v != floor(v))
      return usage_error(o->command, "expected a whole number, not '%s'", val);
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

// Checks the syntax of a tensor option's value (its files are read when loading).
static int check_tensor_option(const Options *o, const char *opt, const char *val) {
  char key[256];
  const char *rest;
  bool pair = split_pair(val, key, sizeof key, &rest);
  if (!strcmp(opt, "--weights")) return 0;
  if (!strcmp(opt, "--weight") && !pair)
    return usage_error(o->command, "--weight %s: expected NAME=FILE.npy", val);
  if (!strcmp(opt, "--dim")) {
    char *end;
    if (!pair) return usage_error(o->command, "--dim %s: expected NAME=SIZE", val);
    long long size = strtoll(rest, &end, 10);
    if (*end || size < 1 || size > 2147483647)
      return usage_error(o->command, "--dim %s: the size is an integer from 1 to 2147483647", val);
    return 0;
  }
  if (!strcmp(opt, "--set")) {
    if (!pair) return usage_error(o->command, "--set %s: expected PARAM=VALUE", val);
    char *end;
    (void)strtod(rest, &end);
    if (*end) return usage_error(o->command, "--set %s: the value is not a number", val);
    if (number_out_of_range(rest))
      return usage_error(o->command, "--set %s: the value is out of range (beyond 1.8e308)", val);
    return 0;
  }
  if (!pair) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s %%s: expected LAYER=FILE.npy", opt);
    return usage_error(o->command, msg, val);
  }
  return 0;
}

// Reads the command line into `o` without opening any file. Returns 0, or the exit status
// of a usage error (printed).
static int parse_options(Options *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->command = argv[0];
  const Command *c = command_find(o->command);
  o->precision = DAMC_F32;
  o->batch = 1;
  o->repeat = 20;
  o->samples = 20;
  o->run = (DamcRunOptions){.method = DAMC_DOPRI5, .max_steps = 10000};
  o->tensors = xcalloc((size_t)argc + 1, sizeof *o->tensors);
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-' || !argv[i][1]) {
      if (o->model) return usage_error(o->command, "more than one model file ('%s')", argv[i]);
      o->model = argv[i];
      continue;
    }
    const OptionSpec *spec;
    const char *val;
    int status = option_read(c, argc, argv, &i, &spec, &val);
    if (status) return status;
    const char *opt = spec->name;
    if (!strcmp(opt, "--plan")) o->plan = true;
    else if (!strcmp(opt, "--ir")) o->ir = true;
    else if (!strcmp(opt, "--asm")) o->asm_text = true;
    else if (!strcmp(opt, "--allow-extra")) o->allow_extra = true;
    else if (!strcmp(opt, "--strict")) o->strict = true;
    else if (!strcmp(opt, "--progress")) o->progress = 1;
    else if (!strcmp(opt, "--no-progress")) o->progress = -1;
    else if (!strcmp(opt, "--quiet")) o->quiet = true;
    else if (!strcmp(opt, "--json")) o->json = true;
    else if (!strcmp(opt, "--emit-c"))
      return usage_error(o->command, "--emit-c is not implemented in damc " DAMC_VERSION " yet%s", "");
    else if (!strcmp(opt, "--samples")) {
      double v;
      if (!parse_number(val, 1, 1e6, &v) || v != floor(v))
        return usage_error(o->command, "--samples %s: expected a whole number from 1 to 1000000", val);
      o->samples = (int)v;
    }
    else if (!strcmp(opt, "--out")) o->out = val;
    else if (!strcmp(opt, "--obj")) o->obj = val;
    else if (!strcmp(opt, "--precision")) {
      if (!strcmp(val, "f32")) o->precision = DAMC_F32;
      else if (!strcmp(val, "f64")) o->precision = DAMC_F64;
      else return usage_error(o->command, "--precision %s: expected f32 or f64", val);
    } else if (!strcmp(opt, "--c")) {
      size_t len = strlen(val);
      if (len < 3 || strcmp(val + len - 2, ".c") != 0)
        return usage_error(o->command, "--c %s: the name must end in '.c' (the header is "
                           "written next to it, ending in '.h')", val);
      o->c_source = val;
    } else if (!strcmp(opt, "--batch") || !strcmp(opt, "--repeat")) {
      double v;
      if (!parse_number(val, 1, 1e9, &v) || v != floor(v))
        return usage_error(o->command, "expected a positive whole number, not '%s'", val);
      if (!strcmp(opt, "--batch")) o->batch = (size_t)v;
      else o->repeat = (int)v;
    } else if ((status = parse_run_option(o, opt, val)) == 0) {
      // A tensor option: its syntax now, its files when loading.
      if ((status = check_tensor_option(o, opt, val)) != 0) return status;
      o->tensors[o->ntensors++] = (TensorOption){opt, val};
    } else if (status != 1) {
      return status;
    }
  }
  if (!o->model) return usage_error(o->command, "no model file given%s", "");
  if (!strcmp(o->command, "check")) o->precision = DAMC_F64;  // the checks run in float64
  if (!strcmp(o->command, "emit") && !o->plan && !o->ir && !o->asm_text && !o->obj && !o->c_source)
    return usage_error("emit", "say what to emit: --plan, --ir, --asm, --obj OUT.o or --c OUT.c%s",
                       "");
  return 0;
}

// ---- Loading ----

static void hold(Loaded *l, DamrtTensor *t) { VEC_PUSH(l->held, l->nheld, l->held_cap, t); }

static DamcArray array_of(const DamrtTensor *t) {
  DamcArray a = {t->rank, {0}, t->data, t->dtype == DAMRT_F32 ? DAMC_F32 : DAMC_F64};
  for (int i = 0; i < t->rank; i++) a.shape[i] = t->shape[i];
  return a;
}

// Binds `t` (held until the end) as weight `name` through the C API.
static bool bind_weight(Loaded *l, const char *name, DamrtTensor *t, const char *origin,
                        StrBuf *err) {
  hold(l, t);
  DamcArray a = array_of(t);
  DamcError derr = {0};
  bool ok = damc_bind_weight(l->damc, name, &a, origin, &derr);
  if (!ok) sb_append(err, derr.message);
  damc_error_clear(&derr);
  return ok;
}

// The dtype to read a weight in: the kernels', except that float64 data for float32 kernels
// is read as float64, so that a value beyond float32's range is refused (engine_check_range)
// instead of becoming an infinity.
static DamrtDtype read_dtype(const DamrtNpyInfo *info, DamrtDtype kernels) {
  return info->kind == 'f' && info->itemsize == 8 ? DAMRT_F64 : kernels;
}

static bool load_npz_weights(Loaded *l, const char *path, DamrtDtype dtype, bool allow_extra,
                             StrBuf *err) {
  DamrtError derr = {0};
  DamrtNpz *npz = damrt_npz_open(path, &derr);
  if (!npz) {
    sb_printf(err, "%s\n", derr.message);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < damrt_npz_count(npz) && ok; i++) {
    const char *key = damrt_npz_key(npz, i);
    if (allow_extra && engine_weight_index(l->engine, key) < 0) continue;
    // The member's header first: a shape the model refuses is never inflated.
    DamrtNpyInfo info;
    if (damrt_npz_member_info(npz, key, &info, &derr) != DAMRT_OK) {
      sb_printf(err, "%s\n", derr.message);
      ok = false;
      continue;
    }
    if (!engine_check_weight_shape(l->engine, key, info.rank, info.shape, path, err)) {
      ok = false;
      continue;
    }
    DamrtTensor *t = damrt_npz_read(npz, key, read_dtype(&info, dtype), &derr);
    if (!t) {
      sb_printf(err, "%s\n", derr.message);
      ok = false;
      continue;
    }
    ok &= bind_weight(l, key, t, path, err);
  }
  damrt_npz_close(npz);
  return ok;
}

// Reads the .npy of a per-layer array option ("--state A=FILE.npy") into its slot.
static int load_layer_array(Loaded *l, int kind, const char *what, const char *arg,
                            DamrtDtype dtype, StrBuf *err) {
  char name[256];
  const char *path;
  split_pair(arg, name, sizeof name, &path);
  int a = engine_layer_index(l->engine, name);
  if (a < 0) {
    sb_printf(err, "%s %s: ", what, arg);
    engine_unknown_name(l->engine, NAME_LAYER, name, err);
    sb_putc(err, '\n');
    return EXIT_USAGE;
  }
  if (l->arrays[kind][a].data) {
    sb_printf(err, "%s %s: layer '%s' is given twice\n", what, arg, name);
    return EXIT_USAGE;
  }
  DamrtError derr = {0};
  // float64 data for float32 kernels is read as float64 so that the engine refuses a value
  // beyond float32's range by name (the header tells the dtype of a regular file).
  DamrtNpyInfo info;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && damrt_npy_read_info(path, &info, &derr) == DAMRT_OK)
    dtype = read_dtype(&info, dtype);
  DamrtTensor *t = damrt_npy_read(path, dtype, &derr);
  if (!t) {
    sb_printf(err, "%s\n", derr.message);
    return EXIT_MODEL;
  }
  hold(l, t);
  char label[512];
  snprintf(label, sizeof label, "%s: %s of layer '%s'", path, what + 2, name);
  if (damrt_tensor_check_finite(t, label, &derr) != DAMRT_OK) {
    sb_printf(err, "%s\n", derr.message);
    return EXIT_MODEL;
  }
  l->arrays[kind][a] = array_of(t);
  return 0;
}

// Reads and binds one tensor option; 0 or the exit status (the message in `err`).
static int load_tensor(Loaded *l, const TensorOption *t, DamrtDtype dtype, bool allow_extra,
                       StrBuf *err) {
  const char *opt = t->option, *val = t->value;
  char name[256];
  const char *rest;
  if (!strcmp(opt, "--weights")) return load_npz_weights(l, val, dtype, allow_extra, err) ? 0 : EXIT_MODEL;
  if (!strcmp(opt, "--weight")) {
    split_pair(val, name, sizeof name, &rest);
    DamrtError read_err = {0};
    // The header first, when the file can be read twice (a regular file).
    DamrtNpyInfo info;
    struct stat st;
    bool regular = stat(rest, &st) == 0 && S_ISREG(st.st_mode);
    if (regular && damrt_npy_read_info(rest, &info, &read_err) != DAMRT_OK) {
      sb_printf(err, "%s\n", read_err.message);
      return EXIT_MODEL;
    }
    if (regular && !engine_check_weight_shape(l->engine, name, info.rank, info.shape, rest, err))
      return EXIT_MODEL;
    DamrtTensor *w = damrt_npy_read(rest, regular ? read_dtype(&info, dtype) : dtype, &read_err);
    if (!w) sb_printf(err, "%s\n", read_err.message);
    return w && bind_weight(l, name, w, rest, err) ? 0 : EXIT_MODEL;
  }
  if (!strcmp(opt, "--dim")) {
    split_pair(val, name, sizeof name, &rest);
    return engine_set_dim(l->engine, name, strtoll(rest, NULL, 10), err) ? 0 : EXIT_USAGE;
  }
  if (!strcmp(opt, "--set")) {
    split_pair(val, name, sizeof name, &rest);
    if (engine_param_index(l->engine, name) < 0) {
      sb_printf(err, "--set %s: ", val);
      engine_unknown_name(l->engine, NAME_PARAM, name, err);
      sb_putc(err, '\n');
      return EXIT_USAGE;
    }
    DamcError derr = {0};
    bool ok = damc_set_param(l->damc, name, strtod(rest, NULL), &derr);
    if (!ok) sb_append(err, derr.message);
    damc_error_clear(&derr);
    return ok ? 0 : EXIT_MODEL;
  }
  int kind = !strcmp(opt, "--input") ? ARR_INPUT : !strcmp(opt, "--clamp") ? ARR_CLAMP : ARR_STATE;
  return load_layer_array(l, kind, opt, val, dtype, err);
}

static void unload(Loaded *l) {
  damc_model_free(l->damc);
  for (size_t i = 0; i < l->nheld; i++) damrt_tensor_free(l->held[i]);
  free(l->held);
  for (int k = 0; k < ARR_KINDS; k++) free(l->arrays[k]);
}

// Loads the model and its tensors and compiles up to stage `last`. Returns 0, or the exit
// status after printing the message.
static int load_model(const Options *o, Loaded *l, EngineStage last) {
  memset(l, 0, sizeof *l);
  double t_start = clock_seconds();
  DamcError derr = {0};
  l->damc = damc_model_open(o->model, stderr, &derr);
  if (!l->damc) {
    print_errors(o->command, derr.message);
    damc_error_clear(&derr);
    return EXIT_MODEL;
  }
  l->engine = damc_model_engine(l->damc);
  l->load_seconds = clock_seconds() - t_start;
  const Network *net = engine_network(l->engine);
  l->nlayers = net->nlayers;
  for (int k = 0; k < ARR_KINDS; k++)
    l->arrays[k] = xcalloc((size_t)l->nlayers + 1, sizeof *l->arrays[k]);
  DamrtDtype dtype = o->precision == DAMC_F32 ? DAMRT_F32 : DAMRT_F64;
  StrBuf err = {0};
  int status = 0;
  for (int i = 0; i < o->ntensors && !status; i++)
    status = load_tensor(l, &o->tensors[i], dtype, o->allow_extra, &err);
  // Inputs only for layers declared with `input`.
  for (int a = 0; !status && a < l->nlayers; a++)
    if (l->arrays[ARR_INPUT][a].data && !net->layers[a].has_input) {
      sb_printf(&err, "--input: layer '%s' has no 'input' statement in the model\n",
                net->layers[a].name);
      status = EXIT_USAGE;
    }
  double t_compile = clock_seconds();
  if (!status && !damc_compile_to(l->damc, o->precision, !strcmp(o->command, "emit"), last, &derr)) {
    sb_append(&err, derr.message);
    status = EXIT_MODEL;
  }
  damc_error_clear(&derr);
  l->compile_seconds = clock_seconds() - t_compile;
  l->ready_seconds = clock_seconds() - t_start;
  print_errors(o->command, sb_str(&err));
  if (status == EXIT_USAGE) fprintf(stderr, "try 'damc %s --help'\n", o->command);
  sb_free(&err);
  return status;
}

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

// The summary of the results on stdout (checked like a file).
static bool print_summary(const DamcResults *results, StrBuf *err) {
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
  bool ok = output_write(NULL, out.data, out.len, err);
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
  else if (!o->out && !print_summary(results, &err)) status = EXIT_MODEL;
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

// The header written next to --c OUT.c: OUT.h (the caller frees).
static char *header_path(const char *c_path) {
  char *h = xstrdup(c_path);
  h[strlen(h) - 1] = 'h';  // parse_options made sure the name ends in ".c"
  return h;
}

// Refuses an output that names an input or another output (before anything is read).
static int check_paths(const Options *o) {
  const char **inputs = xcalloc((size_t)o->ntensors + 2, sizeof *inputs);
  int nin = 0;
  inputs[nin++] = o->model;
  for (int i = 0; i < o->ntensors; i++) {
    const char *opt = o->tensors[i].option, *v = o->tensors[i].value, *eq = strchr(v, '=');
    if (strcmp(opt, "--set") != 0 && strcmp(opt, "--dim") != 0)
      inputs[nin++] = strcmp(opt, "--weights") && eq ? eq + 1 : v;
  }
  char *h = o->c_source ? header_path(o->c_source) : NULL;
  const char *all[] = {o->out, o->trace, o->obj, o->c_source, h};
  const char *outputs[ARRAY_LEN(all)];
  int nout = 0;
  for (size_t i = 0; i < ARRAY_LEN(all); i++)
    if (all[i]) outputs[nout++] = all[i];
  StrBuf err = {0};
  bool ok = output_check_paths(inputs, nin, outputs, nout, &err);
  if (!ok) print_errors(o->command, sb_str(&err));
  sb_free(&err);
  free(h);
  free(inputs);
  return ok ? 0 : EXIT_USAGE;
}

// Parses the options and loads the model up to the stage the command needs (emit --plan
// and --c need the plans only); 0 or the exit status.
static int start(Options *o, Loaded *l, int argc, char **argv) {
  int status = parse_options(o, argc, argv);
  if (!status) status = check_paths(o);
  if (status) {
    memset(l, 0, sizeof *l);
    return status;
  }
  // The checks need no compiled code before they know whether every weight is given.
  EngineStage last = !strcmp(o->command, "check") ? STAGE_DERIVE
                     : o->plan || o->c_source    ? STAGE_PLAN
                                                 : STAGE_JIT;
  return load_model(o, l, last);
}

static int finish(Options *o, Loaded *l, int status) {
  unload(l);
  free(o->tensors);
  return status;
}

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
    printf("model              %s\n", o.model);
    printf("precision          %s\n", o.precision == DAMC_F32 ? "f32" : "f64");
    printf("front end          %.2f ms (parse, check, derive)\n", 1e3 * l.load_seconds);
    printf("compile            %.2f ms (plans; the step kernel: code generation, O3, JIT)\n",
           1e3 * l.compile_seconds);
    printf("to the first step  %.2f ms (the above, reading the tensors, checking them)\n",
           1e3 * l.ready_seconds);
    printf("batch              %zu\n", o.batch);
    printf("step (dx/dt)       %.3f ms  median of %d\n", 1e3 * rhs, o.repeat);
    printf("eval (E, g, u)     %.3f ms  median of %d\n", 1e3 * eval, o.repeat);
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
    if (!emit_c_generate(plans, o.precision == DAMC_F64, o.model, c_name, h_name, &text, &header,
                         &err))
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

// The engine's view of a loaded per-layer array.
static EngineArray engine_array(const DamcArray *a) {
  EngineArray v = {a->dtype == DAMC_F32 ? DAMRT_F32 : DAMRT_F64, a->rank, {0}, a->data};
  for (int i = 0; i < a->rank && i < DAMRT_MAX_RANK; i++) v.shape[i] = a->shape[i];
  return v;
}

int cmd_check(int argc, char **argv) {
  Options o;
  Loaded l;
  int status = start(&o, &l, argc, argv);
  if (status) return finish(&o, &l, status);
  EngineArray *arrays[2] = {NULL, NULL};
  for (int k = 0; k < 2; k++) {
    const DamcArray *src = l.arrays[k == 0 ? ARR_STATE : ARR_INPUT];
    bool any = false;
    for (int a = 0; a < l.nlayers; a++) any |= src[a].data != NULL;
    if (!any) continue;
    arrays[k] = xcalloc((size_t)l.nlayers + 1, sizeof(EngineArray));
    for (int a = 0; a < l.nlayers; a++) arrays[k][a] = engine_array(&src[a]);
  }
  EngineArrays given = {arrays[0], arrays[1], NULL, NULL};
  CheckReport report = {0};
  StrBuf err = {0}, text = {0};
  if (!check_run(l.engine, o.run.seed, o.samples, arrays[0] || arrays[1] ? &given : NULL, &report, &err))
    status = EXIT_MODEL;
  const DiagSink *sink = engine_diagnostics(l.engine);
  if (!status) {
    if (o.json) report_print_json(&report, sink, o.model, &text);
    else report_print_text(&report, sink, &text);
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
