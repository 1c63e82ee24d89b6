// Loading the model and its tensors for the subcommands that compile it (see native.h):
// through the C API, each tensor read in the kernels' precision (converted as read; float64
// data beyond float32's range is refused by name for float32 kernels) after its header was
// checked against the model, and bound in place.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "damrt_npy.h"
#include "damrt_npz.h"
#include "driver/driver.h"
#include "driver/native.h"
#include "engine/kcache.h"
#include "support/common.h"

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

// Tensors are read in the kernels' dtype, converted as they are read (no float64 copy for
// float32 kernels): for float32 kernels, float64 data beyond float32's range is refused by
// the reader, naming the index (DAMRT_READ_F32_RANGE), instead of becoming an infinity.
static unsigned read_flags(DamrtDtype kernels) {
  return kernels == DAMRT_F32 ? DAMRT_READ_F32_RANGE : 0;
}

// The reader's message, with the way out for a value that does not fit float32.
static void read_error(StrBuf *err, DamrtStatus status, const DamrtError *derr) {
  if (status == DAMRT_E_VALUE && strstr(derr->message, "does not fit float32"))
    sb_printf(err, "%s: use --precision f64\n", derr->message);
  else
    sb_printf(err, "%s\n", derr->message);
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
    DamrtTensor *t = damrt_npz_read_flags(npz, key, dtype, read_flags(dtype), &derr);
    if (!t) {
      read_error(err, derr.code, &derr);
      ok = false;
      continue;
    }
    ok &= bind_weight(l, key, t, path, err);
  }
  damrt_npz_close(npz);
  return ok;
}

// Reads the .npy of a per-layer array option ("--state A=FILE.npy") into its slot.
// Reads one .npy file in the kernels' dtype `dtype`. The header first, when the file can be
// read twice (a regular file): the shape of `weight` (or NULL) is checked before any data is
// read. NULL with the message in `err`.
static DamrtTensor *read_npy(Loaded *l, const char *path, DamrtDtype dtype, const char *weight,
                             StrBuf *err) {
  DamrtError derr = {0};
  DamrtNpyInfo info;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
    if (damrt_npy_read_info(path, &info, &derr) != DAMRT_OK) {
      sb_printf(err, "%s\n", derr.message);
      return NULL;
    }
    if (weight && !engine_check_weight_shape(l->engine, weight, info.rank, info.shape, path, err))
      return NULL;
  }
  DamrtTensor *t = damrt_npy_read_flags(path, dtype, read_flags(dtype), &derr);
  if (!t) read_error(err, derr.code, &derr);
  return t;
}

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
  DamrtTensor *t = read_npy(l, path, dtype, NULL, err);
  if (!t) return EXIT_MODEL;
  hold(l, t);
  DamrtError derr = {0};
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
    DamrtTensor *w = read_npy(l, rest, dtype, name, err);
    return w && bind_weight(l, name, w, rest, err) ? 0 : EXIT_MODEL;
  }
  if (!strcmp(opt, "--dim")) {
    split_pair(val, name, sizeof name, &rest);
    if (engine_set_dim(l->engine, name, strtoll(rest, NULL, 10), err)) return 0;
    // A size that disagrees with a weight's shape is a conflict of the inputs (exit 1), as a
    // weight that disagrees with an earlier --dim is: the same status in either order.
    return engine_dim_bound_by(l->engine, name) ? EXIT_MODEL : EXIT_USAGE;
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

void unload(Loaded *l) {
  damc_model_free(l->damc);
  for (size_t i = 0; i < l->nheld; i++) damrt_tensor_free(l->held[i]);
  free(l->held);
  for (int k = 0; k < ARR_KINDS; k++) free(l->arrays[k]);
}

// Loads the model and its tensors and compiles up to stage `last`. Returns 0, or the exit
// status after printing the message.
int load_model(const Options *o, Loaded *l, EngineStage last) {
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
  // eval steps nothing: its kernel alone is compiled (on its first call).
  if (!status && !strcmp(o->command, "eval")) engine_want_only(l->engine, KERNEL_EVAL);
  double t_compile = clock_seconds();
  // emit --c translates BLAS plans only (docs/performance.md): the C kernels call gemm.
  if (!status && !damc_set_kernels(l->damc, o->c_source ? DAMC_KERNELS_BLAS : o->kernels, &derr)) {
    sb_append(&err, derr.message);
    status = EXIT_USAGE;
  }
  // run needs the eval kernel for its final values: compiled on another thread while the
  // step kernel is compiled here (both from the cache when it holds them).
  bool prefetch = !strcmp(o->command, "run") && last == STAGE_JIT;
  if (!status && !damc_compile_to(l->damc, o->precision, !strcmp(o->command, "emit"),
                                  prefetch ? STAGE_BIND : last, &derr)) {
    sb_append(&err, derr.message);
    status = EXIT_MODEL;
  }
  if (!status && prefetch) {
    engine_prefetch(l->engine, KERNEL_EVAL);
    if (!engine_compile(l->engine, STAGE_JIT, &err)) status = EXIT_MODEL;
  }
  damc_error_clear(&derr);
  // check reports the param rules itself, as items.
  if (!status && last >= STAGE_BIND && strcmp(o->command, "check") != 0)
    engine_warn_param_rules(l->engine, NULL);
  l->compile_seconds = clock_seconds() - t_compile;
  l->ready_seconds = clock_seconds() - t_start;
  l->ready_stats = kcache_stats();
  print_errors(o->command, sb_str(&err));
  if (status == EXIT_USAGE) fprintf(stderr, "try 'damc %s --help'\n", o->command);
  sb_free(&err);
  return status;
}

// Parses the options and loads the model up to the stage the command needs (emit --plan
// and --c need the plans only); 0 or the exit status.
int start(Options *o, Loaded *l, int argc, char **argv) {
  int status = parse_options(o, argc, argv);
  if (!status) status = check_paths(o);
  if (status) {
    memset(l, 0, sizeof *l);
    return status;
  }
  // The checks need no compiled code before they know whether every weight is given.
  if (o->no_cache) kcache_disable();
  EngineStage last = !strcmp(o->command, "check") || !strcmp(o->command, "capacity") ? STAGE_DERIVE
                     : o->plan || o->c_source    ? STAGE_PLAN
                                                 : STAGE_JIT;
  return load_model(o, l, last);
}

int finish(Options *o, Loaded *l, int status) {
  if (o->verbose) {
    KcacheStats k = kcache_stats();
    const char *dir = kcache_dir();
    fprintf(stderr, "damc %s: kernels: %u compiled, %u from the cache", o->command, k.compiled,
            k.hits);
    if (k.rejected) fprintf(stderr, ", %u invalid entries replaced", k.rejected);
    if (!kcache_enabled())
      fprintf(stderr, " (cache off)");
    else
      fprintf(stderr, " (%u stored in %s)", k.stored, dir);
    fprintf(stderr, "; LLVM %s", k.llvm_loaded ? "loaded" : "not loaded");
    if (k.llvm_loaded)
      fprintf(stderr, " (loading %.1f ms, compiling %.1f ms [set-up %.1f, IR %.1f, optimising "
              "%.1f, machine code %.1f], linking %.1f ms)", 1e3 * k.load_seconds,
              1e3 * k.compile_seconds, 1e3 * k.setup_seconds, 1e3 * k.ir_seconds,
              1e3 * k.optimise_seconds, 1e3 * k.codegen_seconds, 1e3 * k.link_seconds);
    fputc('\n', stderr);
    if (k.problem[0])
      fprintf(stderr, "damc %s: kernels compiled without the cache: %s\n", o->command, k.problem);
  }
  unload(l);
  free(o->tensors);
  return status;
}
