// damc: the command-line driver.
//
// Parses the command line, reads files, runs the pipeline for one subcommand and maps the
// outcome to an exit status (0 success, 1 the model or a tensor is wrong, 2 the command
// line is wrong, 3 `check --strict` failed, 70 internal error). It is the only place that
// exits; every stage below reports to the session's DiagSink and returns.
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/damc_internal.h"
#include "derive/network.h"
#include "driver/driver.h"
#include "front/ast_dump.h"
#include "support/common.h"
#include "support/strbuf.h"

typedef struct {
  const char *name;
  const char *summary;
  const char *usage;  // after "damc NAME "
  int (*run)(int argc, char **argv);
  const char *options;  // the option list of `damc NAME --help`, or NULL
} Command;

#define TENSOR_OPTIONS                                                                     \
  "  --weights FILE.npz       the weights, one member per weight (repeatable)\n"           \
  "  --weight NAME=FILE.npy   one weight (repeatable)\n"                                   \
  "  --set PARAM=VALUE        a param's value (repeatable)\n"                              \
  "  --precision f32|f64      the kernels' float type (default f32)\n"

static const Command *find_command(const char *name);

int usage_error(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "damc%s%s: error: ", command ? " " : "", command ? command : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\ntry 'damc %s%s--help'\n", command ? command : "", command ? " " : "");
  return EXIT_USAGE;
}

// An engine for the model in `path`, through the pipeline up to `last` (diagnostics to
// stderr as they are found); NULL after the messages when a stage fails.
static Engine *open_model(const char *path, EngineStage last) {
  Engine *e = engine_new(path, stderr);
  StrBuf err = {0};
  if (!engine_compile(e, last, &err)) {
    fputs(sb_str(&err), stderr);
    engine_free(e);
    e = NULL;
  }
  sb_free(&err);
  return e;
}

static bool is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static int print_command_help(const Command *c) {
  printf("usage: damc %s %s\n\n%s\n", c->name, c->usage, c->summary);
  if (c->options) printf("\noptions:\n%s", c->options);
  return 0;
}

// ---- damc parse ----

static int cmd_parse(int argc, char **argv) {
  const char *file = NULL;
  bool dump = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--ast") == 0) dump = true;
    else if (argv[i][0] == '-' && argv[i][1]) return usage_error("parse", "unknown option '%s'", argv[i]);
    else if (file) return usage_error("parse", "more than one model file ('%s')", argv[i]);
    else file = argv[i];
  }
  if (!file) return usage_error("parse", "no model file given%s", "");
  Engine *e = open_model(file, STAGE_CHECK);
  if (e && dump) {
    StrBuf out = {0};
    ast_dump_model(&out, engine_model(e));
    fputs(sb_str(&out), stdout);
    sb_free(&out);
  }
  int status = e ? 0 : EXIT_MODEL;
  engine_free(e);
  return status;
}

// ---- damc explain ----

static int cmd_explain(int argc, char **argv) {
  const char *file = NULL;
  bool latex = false;
  const char **eliminate = xcalloc((size_t)argc + 1, sizeof *eliminate);
  int neliminate = 0, status = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--latex") == 0) {
      latex = true;
    } else if (strcmp(argv[i], "--eliminate") == 0) {
      if (i + 1 == argc) {
        free(eliminate);
        return usage_error("explain", "'--eliminate' needs a layer name%s", "");
      }
      eliminate[neliminate++] = argv[++i];
    } else if (argv[i][0] == '-' && argv[i][1]) {
      free(eliminate);
      return usage_error("explain", "unknown option '%s'", argv[i]);
    } else if (file) {
      free(eliminate);
      return usage_error("explain", "more than one model file ('%s')", argv[i]);
    } else {
      file = argv[i];
    }
  }
  if (!file) {
    free(eliminate);
    return usage_error("explain", "no model file given%s", "");
  }
  Engine *e = open_model(file, STAGE_CHECK);
  const Model *m = e ? engine_model(e) : NULL;
  int *layers = xcalloc((size_t)neliminate + 1, sizeof *layers);
  for (int i = 0; m && i < neliminate; i++) {
    layers[i] = engine_layer_index(e, eliminate[i]);
    if (layers[i] < 0) {
      fprintf(stderr, "damc explain: error: '--eliminate %s': the model has no layer '%s' "
              "(its layers:", eliminate[i], eliminate[i]);
      for (int a = 0; a < m->nlayers; a++) fprintf(stderr, " %s", m->layers[a].name);
      fprintf(stderr, ")\n");
      status = EXIT_USAGE;
    }
  }
  if (!e) {
    status = EXIT_MODEL;
  } else if (!status) {
    engine_eliminate(e, layers, neliminate);
    StrBuf err = {0};
    if (engine_compile(e, STAGE_DERIVE, &err)) {
      StrBuf out = {0};
      network_explain(&out, engine_network(e), latex ? PRINT_LATEX : PRINT_PRETTY);
      fputs(sb_str(&out), stdout);
      sb_free(&out);
    } else {
      fputs(sb_str(&err), stderr);
      status = EXIT_MODEL;
    }
    sb_free(&err);
  }
  engine_free(e);
  free(layers);
  free(eliminate);
  return status;
}

// ---- Subcommands still to come ----

// A subcommand that `damc --help` lists as not implemented yet: a usage error, not an
// internal one.
static int cmd_missing(int argc, char **argv) {
  (void)argc;
  return usage_error(argv[0], "not implemented in damc " DAMC_VERSION " yet%s", "");
}

static const Command commands[] = {
    {"parse", "Parse and check a model; silent with exit status 0 when it is valid.",
     "FILE [--ast]", cmd_parse,
     "  --ast    print the checked model, every expression fully parenthesised\n"},
    {"explain", "Print what was derived: each layer's L, g, Hessian structure and Lagrange "
     "term,\nthe energy, the currents and the dynamics.",
     "FILE [--latex] [--eliminate LAYER]...", cmd_explain,
     "  --latex            print the equations as LaTeX (align* environments)\n"
     "  --eliminate LAYER  integrate LAYER out (as if its tau were 0) and print the\n"
     "                     reduced model; repeatable\n"},
    {"eval", "Evaluate the energy, activations, currents and dx/dt at given states.",
     "FILE TENSORS... --state A=FILE.npy... [--input A=FILE.npy...] [--precision f32|f64] "
     "[--out OUT.npz]", cmd_eval,
     TENSOR_OPTIONS
     "  --state A=FILE.npy       the state of layer A: [n] or [B, n] (default zeros)\n"
     "  --input A=FILE.npy       the external input of layer A\n"
     "  --out OUT.npz            write E, g_A, u_A, dxdt_A, E_A (default: a summary)\n"},
    {"run", "Integrate the dynamics from the initial states to convergence or the step limit.",
     "FILE TENSORS... [RUN OPTIONS] [--out OUT.npz] [--trace TRACE.csv]", cmd_run,
     TENSOR_OPTIONS
     "  --init A=FILE.npy        the initial state of layer A: [n] or [B, n] (default zeros)\n"
     "  --input A=FILE.npy       the external input of layer A\n"
     "  --clamp A=MASK.npy       neurons of layer A held fixed (1 = clamped)\n"
     "  --method euler|rk4|dopri5|async  the integrator (default dopri5, adaptive); async:\n"
     "                           the single-unit rule for binary layers, a sweep a step\n"
     "  --dt DT                  the step (default: a tenth of the smallest tau)\n"
     "  --rtol R --atol A        dopri5's tolerances (default 1e-6/1e-8 f32, 1e-9/1e-11 f64)\n"
     "  --tol T                  stop a sample when every |dx/dt| < T (1e-4 f32, 1e-6 f64)\n"
     "  --max-steps N            the most steps (default 10000)\n"
     "  --noise T --seed S       Langevin noise at temperature T (euler)\n"
     "  --threads N              threads of the BLAS products\n"
     "  --out OUT.npz            write x_A, g_A, E, steps, converged (default: a summary)\n"
     "  --trace TRACE.csv        one row per step: step,t,E, per layer E_A,max|dxdt_A|\n"},
    {"check", "(not implemented yet) Run the Hessian, convexity, energy and stability checks.",
     "FILE [TENSORS...] [--input A=FILE.npy...] [--samples N] [--seed S] [--strict] [--json]",
     cmd_missing, NULL},
    {"emit", "Show or export the specialised kernels.",
     "FILE TENSORS... (--plan | --ir | --asm | --obj OUT.o | --c OUT.c)", cmd_emit,
     TENSOR_OPTIONS
     "  --plan                   the kernel plans: buffers, products, loops\n"
     "  --ir, --asm              the kernels as LLVM IR, or host assembly\n"
     "  --obj OUT.o              the kernels as an object file (header: see --c)\n"
     "  --c OUT.c                the kernels as portable C, with OUT.h\n"},
    {"bench", "Time the compiled kernels and the whole step.",
     "FILE TENSORS... [--batch B] [--repeat R] [--precision f32|f64]", cmd_bench,
     TENSOR_OPTIONS
     "  --batch B                samples per call (default 1)\n"
     "  --repeat R               calls timed (default 20; the median is reported)\n"},
};

static const Command *find_command(const char *name) {
  for (size_t i = 0; i < ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

static void print_help(void) {
  printf("usage: damc COMMAND [OPTIONS] FILE...\n\n"
         "damc compiles Dense Associative Memory models (.dam files): it checks them,\n"
         "derives their activations, Hessians, energy and dynamics, and runs them.\n\n"
         "commands:\n");
  for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
    const char *nl = strchr(commands[i].summary, '\n');
    int n = nl ? (int)(nl - commands[i].summary) : (int)strlen(commands[i].summary);
    printf("  %-8s  %.*s\n", commands[i].name, n, commands[i].summary);
  }
  printf("\noptions:\n"
         "  -h, --help   show this help; 'damc COMMAND --help' shows a command's options\n"
         "  --version    print the version\n\n"
         "TENSORS: --weights FILE.npz, --weight NAME=FILE.npy, --set PARAM=VALUE (each\n"
         "repeatable).\n\n"
         "exit status: 0 success, 1 the model or a tensor is wrong, 2 the command line is\n"
         "wrong, 3 'check --strict' found a failure, 70 internal error.\n");
}

// An internal error has been printed (damc_internal_error) and abort() called: exit with the
// status cli.md gives internal errors.
static void on_abort(int sig) {
  (void)sig;
  _exit(EXIT_INTERNAL);
}

int main(int argc, char **argv) {
  signal(SIGABRT, on_abort);
  if (argc < 2) return usage_error(NULL, "no command given%s", "");
  if (is_help(argv[1])) {
    print_help();
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("damc %s\n", DAMC_VERSION);
    return 0;
  }
  const Command *c = find_command(argv[1]);
  if (!c) {
    if (argv[1][0] == '-') return usage_error(NULL, "unknown option '%s'", argv[1]);
    return usage_error(NULL, "unknown command '%s'", argv[1]);
  }
  for (int i = 2; i < argc; i++)
    if (is_help(argv[i])) return print_command_help(c);
  return c->run(argc - 1, argv + 1);
}
