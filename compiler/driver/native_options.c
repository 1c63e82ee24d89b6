// Reading the command line of the subcommands that compile a model, without opening any file
// (see native.h): a mistake is reported before anything is loaded or compiled.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "damrt_file.h"
#include "damrt_kernel.h"
#include "driver/driver.h"
#include "driver/native.h"
#include "support/common.h"

// A number option's value; false when it is not a number in [lo, hi].
bool parse_number(const char *text, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (*text == '\0' || *end || errno || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

// Splits "A=FILE" at the first '='; false when there is none.
bool split_pair(const char *arg, char *key, size_t keysize, const char **value) {
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
    else return usage_error(o->command, "--method %s: expected euler, rk4, dopri5, iterate or async", val);
    return 1;
  }
  if (!strcmp(opt, "--order")) {
    if (!strcmp(val, "random")) r->order = DAMC_ORDER_RANDOM;
    else if (!strcmp(val, "sequential")) r->order = DAMC_ORDER_SEQUENTIAL;
    else return usage_error(o->command, "--order %s: expected random or sequential", val);
    o->order_given = true;
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
        return usage_error(o->command, msg, val);
      }
      // --tol 0 means: never stop early (in the API, 0 asks for the default).
      if (!strcmp(opt, "--tol") && r->tol == 0) r->tol = -1;
      return 1;
    }
  if (!strcmp(opt, "--max-steps") || !strcmp(opt, "--seed") || !strcmp(opt, "--threads")) {
    double lo = strcmp(opt, "--seed") ? 1 : 0;  // a seed may be 0; steps and threads may not
    if (!parse_number(val, lo, 9007199254740992.0, &v) || v != floor(v)) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s %%s: expected a whole number from %g to 2^53%s", opt, lo,
               number_out_of_range(val) ? " (this one is out of range)" : "");
      return usage_error(o->command, msg, val);
    }
    if (!strcmp(opt, "--max-steps")) r->max_steps = (size_t)v;
    else if (!strcmp(opt, "--seed")) r->seed = (uint64_t)v;
    else damrt_set_threads((int)fmin(v, 1024));
    return 1;
  }
  if (!strcmp(opt, "--trace")) {
    o->trace = strcmp(val, "-") ? val : "/dev/stdout";  // "-": standard output
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
    double v = strtod(rest, &end);
    if (*end) return usage_error(o->command, "--set %s: the value is not a number", val);
    if (isnan(v)) return usage_error(o->command, "--set %s: the value must be a number, not NaN", val);
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

// Options that are each valid but not together. Returns 0 or the usage error's status.
static int check_combinations(const Options *o) {
  if (!strcmp(o->command, "emit")) {
    int modes = o->plan + o->ir + o->asm_text + (o->obj != NULL) + (o->c_source != NULL);
    if (modes != 1)
      return usage_error("emit", "say what to emit, once: one of --plan, --ir, --asm, --obj OUT.o "
                         "or --c OUT.c (%s)", modes ? "several were given" : "none was given");
  }
  const DamcRunOptions *r = &o->run;
  if (r->noise_T > 0 && r->method != DAMC_EULER && r->method != DAMC_ASYNC)
    return usage_error(o->command, "--noise needs --method euler (Langevin noise, added by the "
                       "Euler-Maruyama step) or --method async (the heat-bath rule)%s", "");
  if (o->order_given && r->method != DAMC_ASYNC)
    return usage_error(o->command, "--order is the order of the units in a sweep of --method "
                       "async; the other methods update every unit at once%s", "");
  if (o->strict && r->tol < 0)
    return usage_error(o->command, "--strict with --tol 0: a run that never stops early never "
                       "converges, so every sample would fail%s", "");
  return 0;
}

// A repeated option would silently replace the first value: it is refused, but for
// --weights (several files) and the options that take NAME=VALUE (one per name: --set
// beta=1 --set T=2 is fine, --set beta=1 --set beta=2 is not). `given` and `values` are the
// options read before this one. Returns 0 or the usage error's status.
static int check_repeat(const Options *o, const OptionSpec *spec, const char *val,
                        const OptionSpec **given, const char **values, int count) {
  if (!strcmp(spec->name, "--weights")) return 0;
  const char *eq = val ? strchr(val, '=') : NULL;
  bool named = eq && spec->value && strchr(spec->value, '=');  // "NAME=FILE.npy", "PARAM=VALUE"
  for (int k = 0; k < count; k++) {
    if (given[k] != spec) continue;
    if (!named)
      return usage_error(o->command, "option '%s' is given twice: give it once", spec->name);
    size_t key = (size_t)(eq - val);
    if (!strncmp(values[k], val, key) && values[k][key] == '=') {
      char msg[400];
      snprintf(msg, sizeof msg, "%s %.*s is given twice: give it once", spec->name,
               (int)(key < 200 ? key : 200), val);
      return usage_error(o->command, "%s", msg);
    }
  }
  return 0;
}

// parse_options' loop over the arguments, `given`/`values` recording the options read.
static int parse_args(Options *o, const Command *c, int argc, char **argv,
                      const OptionSpec **given, const char **values) {
  int count = 0;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-' || !argv[i][1]) {
      if (o->model) return usage_error(o->command, "more than one model file ('%s')", argv[i]);
      o->model = argv[i];
      continue;
    }
    const OptionSpec *spec;
    const char *val;
    int status = option_read(c, argc, argv, &i, &spec, &val);
    if (!status) status = check_repeat(o, spec, val, given, values, count);
    if (status) return status;
    given[count] = spec;
    values[count++] = val;
    const char *opt = spec->name;
    if (!strcmp(opt, "--plan")) o->plan = true;
    else if (!strcmp(opt, "--ir")) o->ir = true;
    else if (!strcmp(opt, "--asm")) o->asm_text = true;
    else if (!strcmp(opt, "--allow-extra")) o->allow_extra = true;
    else if (!strcmp(opt, "--strict")) o->strict = true;
    else if (!strcmp(opt, "--progress")) o->progress = 1;
    else if (!strcmp(opt, "--no-progress")) o->progress = -1;
    else if (!strcmp(opt, "--quiet")) o->quiet = true;
    else if (!strcmp(opt, "--no-cache")) o->no_cache = true;
    else if (!strcmp(opt, "--verbose")) o->verbose = true;
    else if (!strcmp(opt, "--json")) o->json = true;
    else if (!strcmp(opt, "--details")) o->details = true;
    else if (!strcmp(opt, "--emit-c")) {
      size_t len = strlen(val);
      if (len < 3 || strcmp(val + len - 2, ".c") != 0)
        return usage_error(o->command, "--emit-c %s: the name must end in '.c'", val);
      o->emit_c = val;
    }
    else if (!strcmp(opt, "--samples")) {
      double v;
      if (!parse_number(val, 1, 1e6, &v) || v != floor(v))
        return usage_error(o->command, "--samples %s: expected a whole number from 1 to 1000000", val);
      o->samples = (int)v;
    }
    else if (!strcmp(opt, "--out")) o->out = val;
    else if (!strcmp(opt, "--store")) o->store = val;
    else if (!strcmp(opt, "--patterns")) o->patterns = val;
    else if (!strcmp(opt, "--K")) o->k_list = val;
    else if (!strcmp(opt, "--corrupt")) o->corrupt = val;
    else if (!strcmp(opt, "--layer")) o->layer = val;
    else if (!strcmp(opt, "--plot")) o->plot = val;
    else if (!strcmp(opt, "--save")) o->save = val;
    else if (!strcmp(opt, "--trials")) {
      double v;
      if (!parse_number(val, 1, 1e6, &v) || v != floor(v))
        return usage_error(o->command, "--trials %s: expected a whole number from 1 to 1000000", val);
      o->trials = (size_t)v;
    }
    else if (!strcmp(opt, "--obj")) o->obj = val;
    else if (!strcmp(opt, "--kernels")) {
      if (!strcmp(val, "auto")) o->kernels = DAMC_KERNELS_AUTO;
      else if (!strcmp(val, "blas")) o->kernels = DAMC_KERNELS_BLAS;
      else if (!strcmp(val, "fused")) o->kernels = DAMC_KERNELS_FUSED;
      else return usage_error(o->command, "--kernels %s: expected blas, fused or auto", val);
    }
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
      if (!parse_number(val, 1, 1e9, &v) || v != floor(v)) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s %%s: expected a whole number from 1 to 1000000000", opt);
        return usage_error(o->command, msg, val);
      }
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
  return 0;
}

// Reads the command line into `o` without opening any file. Returns 0, or the exit status
// of a usage error (printed).
int parse_options(Options *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->command = argv[0];
  const Command *c = command_find(o->command);
  o->precision = DAMC_F32;
  o->batch = 1;
  o->repeat = 20;
  o->samples = 20;
  o->trials = 20;
  o->run = (DamcRunOptions){.method = DAMC_DOPRI5, .max_steps = 10000};
  o->tensors = xcalloc((size_t)argc + 1, sizeof *o->tensors);
  const OptionSpec **given = xcalloc((size_t)argc + 1, sizeof *given);
  const char **values = xcalloc((size_t)argc + 1, sizeof *values);
  int status = parse_args(o, c, argc, argv, given, values);
  free(given);
  free(values);
  if (status) return status;
  if (!o->model) return usage_error(o->command, "no model file given%s", "");
  if (!strcmp(o->command, "check")) o->precision = DAMC_F64;  // the checks run in float64
  if (!strcmp(o->command, "capacity") && !o->store)
    return usage_error(o->command, "--store WEIGHT is required: the weight that holds the "
                       "patterns%s", "");
  return check_combinations(o);
}

// The header written next to --c OUT.c: OUT.h (the caller frees).
char *header_path(const char *c_path) {
  char *h = xstrdup(c_path);
  h[strlen(h) - 1] = 'h';  // parse_options made sure the name ends in ".c"
  return h;
}

// Refuses an output that names an input or another output, or whose directory cannot be
// written (before anything is read or computed).
int check_paths(const Options *o) {
  const char **inputs = xcalloc((size_t)o->ntensors + 3, sizeof *inputs);
  int nin = 0;
  inputs[nin++] = o->model;
  for (int i = 0; i < o->ntensors; i++) {
    const char *opt = o->tensors[i].option, *v = o->tensors[i].value, *eq = strchr(v, '=');
    if (strcmp(opt, "--set") != 0 && strcmp(opt, "--dim") != 0)
      inputs[nin++] = strcmp(opt, "--weights") && eq ? eq + 1 : v;
  }
  if (o->patterns && strcmp(o->patterns, "binary") && strcmp(o->patterns, "gaussian"))
    inputs[nin++] = o->patterns;
  char *h = o->c_source ? header_path(o->c_source) : NULL;
  const char *all[] = {o->out, o->trace, o->obj, o->c_source, h, o->emit_c, o->plot, o->save};
  const char *outputs[ARRAY_LEN(all)];
  int nout = 0;
  for (size_t i = 0; i < ARRAY_LEN(all); i++)
    if (all[i]) outputs[nout++] = all[i];
  StrBuf err = {0};
  int status = !output_check_paths(inputs, nin, outputs, nout, &err) ? EXIT_USAGE
               : !output_check_dirs(outputs, nout, &err)              ? EXIT_MODEL
                                                                       : 0;
  if (status) print_errors(o->command, sb_str(&err));
  sb_free(&err);
  free(h);
  free(inputs);
  return status;
}
