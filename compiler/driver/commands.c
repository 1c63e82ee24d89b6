// The command line's grammar: the subcommands, their options (one table, from which the
// help, the "did you mean" and the GNU `--option=value` spelling all come), and the
// messages of a command-line mistake.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver/driver.h"
#include "support/common.h"
#include "support/suggest.h"

#define TENSORS                                                                           \
  {"--weights", "FILE.npz", "the weights, one member per weight (repeatable)"},           \
  {"--weight", "NAME=FILE.npy", "one weight (repeatable)"},                               \
  {"--set", "PARAM=VALUE", "a param's value (repeatable)"},                               \
  {"--dim", "NAME=SIZE", "the size of a dim that no tensor fixes (repeatable)"},          \
  {"--precision", "f32|f64", "the kernels' float type (default f32)"},                    \
  {"--allow-extra", NULL, "ignore .npz members that are not weights of the model"}

// The cache of compiled kernels (eval, run, bench).
#define CACHE_OPTIONS                                                                     \
  {"--no-cache", NULL, "compile the kernels, without the cache of compiled kernels"},       \
  {"--verbose", NULL, "say on stderr which kernels were compiled and which came from the cache"}

static const OptionSpec parse_options[] = {
    {"--ast", NULL, "print the checked model, every expression fully parenthesised"},
    {NULL, NULL, NULL}};

static const OptionSpec explain_options[] = {
    {"--latex", NULL, "print the equations as LaTeX (align* environments)"},
    {"--eliminate", "LAYER", "integrate LAYER out (as if its tau were 0) and print the "
                             "reduced model; repeatable"},
    {NULL, NULL, NULL}};

// The most threads of the BLAS and fused products and of reading a big weight.
#define THREADS_OPTION {"--threads", "N", "threads of the products and of reading big weights"}

static const OptionSpec eval_options[] = {
    TENSORS,
    CACHE_OPTIONS,
    {"--state", "A=FILE.npy", "the state of layer A: [n] or [B, n] (default zeros)"},
    {"--input", "A=FILE.npy", "the external input of layer A"},
    {"--kernels", "blas|fused|auto", "the products around an eliminated layer: two gemm calls, one fused pass over the weight, or chosen by size (default auto)"},
    THREADS_OPTION,
    {"--out", "OUT.npz", "write E, g_A, u_A, dxdt_A, E_A (default: a summary)"},
    {NULL, NULL, NULL}};

static const OptionSpec run_options[] = {
    TENSORS,
    CACHE_OPTIONS,
    {"--init", "A=FILE.npy", "the initial state of layer A: [n] or [B, n] (default zeros)"},
    {"--input", "A=FILE.npy", "the external input of layer A"},
    {"--clamp", "A=MASK.npy", "neurons of layer A held fixed (1 = clamped, 0 = free)"},
    {"--method", "euler|rk4|dopri5|iterate|async", "the integrator (default dopri5, adaptive); "
                                                   "iterate: x <- u, one update a step; async: "
                                                   "the single-unit rule for binary layers"},
    {"--dt", "DT", "the step (default: a tenth of the smallest tau)"},
    {"--rtol", "R", "dopri5's relative tolerance (default 1e-6 f32, 1e-9 f64)"},
    {"--atol", "A", "dopri5's absolute tolerance (default 1e-8 f32, 1e-11 f64)"},
    {"--tol", "T", "stop a sample when every tau|dx/dt| <= T (1 + |x|) (default 1e-4 f32, "
                   "1e-7 f64; 0: never stop early)"},
    {"--max-steps", "N", "the most steps (default 10000)"},
    {"--strict", NULL, "exit 1 when a sample has not converged"},
    {"--order", "random|sequential", "async: the units of a sweep in a random permutation per "
                                     "sweep (default) or in order"},
    {"--noise", "T", "temperature T: Langevin noise (euler), heat-bath rule (async)"},
    {"--seed", "S", "the seed of the noise and of async's order (default 0)"},
    {"--kernels", "blas|fused|auto", "the products around an eliminated layer: two gemm calls, one fused pass over the weight, or chosen by size (default auto)"},
    THREADS_OPTION,
    {"--out", "OUT.npz", "write x_A, g_A, E, steps, converged (default: a summary)"},
    {"--trace", "TRACE.csv", "one row per step: step,t,E, per layer E_A,max|dxdt_A| (-: stdout)"},
    {"--progress", NULL, "show progress on stderr (default: when stderr is a terminal)"},
    {"--no-progress", NULL, "never show progress"},
    {"--quiet", NULL, "no progress and no warnings"},
    {NULL, NULL, NULL}};

static const OptionSpec emit_options[] = {
    TENSORS,
    {"--kernels", "blas|fused|auto", "the products around an eliminated layer: two gemm calls, one fused pass over the weight, or chosen by size (default auto)"},
    {"--plan", NULL, "the kernel plans: buffers, products, loops"},
    {"--ir", NULL, "the kernels as LLVM IR"},
    {"--asm", NULL, "the kernels as host assembly"},
    {"--obj", "OUT.o", "the kernels as an object file (header: see --c)"},
    {"--c", "OUT.c", "the kernels as portable C, with OUT.h"},
    {NULL, NULL, NULL}};

static const OptionSpec bench_options[] = {
    TENSORS,
    CACHE_OPTIONS,
    {"--kernels", "blas|fused|auto", "the products around an eliminated layer: two gemm calls, one fused pass over the weight, or chosen by size (default auto)"},
    {"--batch", "B", "samples per call (default 1)"},
    {"--repeat", "R", "calls timed (default 20; the median is reported)"},
    THREADS_OPTION,
    {NULL, NULL, NULL}};

static const OptionSpec check_options[] = {
    TENSORS,
    {"--init", "A=FILE.npy", "initial states of the trajectories: [n] or [B, n] (default: sampled)"},
    {"--input", "A=FILE.npy", "the external input of layer A"},
    {"--samples", "N", "states sampled for the energy identity and trajectories (default 20)"},
    {"--seed", "S", "the seed of every sample (default 0)"},
    THREADS_OPTION,
    {"--strict", NULL, "exit 3 on any failure or warning"},
    {"--json", NULL, "the report as JSON, with every number"},
    {"--details", NULL, "every item in full with its numbers (default: one line an item)"},
    {"--emit-c", "OUT.c", "write a standalone C program of the derivative, convexity, "
                          "energy-decrease and dead-unit checks instead of checking"},
    {NULL, NULL, NULL}};

static const OptionSpec capacity_options[] = {
    TENSORS,
    {"--store", "WEIGHT", "the weight that holds the patterns: [K, N] one per row (or [N, K]), "
                          "or a self-synapse [N, N] given the Hebbian matrix (required)"},
    {"--patterns", "binary|gaussian|FILE.npy", "random +-1 patterns (default), N(0, 1) "
                                               "patterns, or the first K rows of FILE.npy"},
    {"--K", "LIST", "the numbers of patterns stored: 10,20,40 or FROM:TO:STEP (required)"},
    {"--trials", "T", "corrupted cues per K, run as one batch (default 20)"},
    {"--corrupt", "flip:P|mask:P|noise:S", "the cue: P*N signs flipped, P*N units set to 0, or "
                                           "N(0, S^2) added to every unit (default flip:0.1)"},
    {"--layer", "LAYER", "the layer that is cued, when the weight does not say"},
    {"--method", "euler|rk4|dopri5|iterate|async", "the integrator, as for damc run (default "
                                                   "dopri5)"},
    {"--dt", "DT", "the step (default: a tenth of the smallest tau)"},
    {"--rtol", "R", "dopri5's relative tolerance"},
    {"--atol", "A", "dopri5's absolute tolerance"},
    {"--tol", "T", "stop a sample when every tau|dx/dt| <= T (1 + |x|), as for damc run"},
    {"--max-steps", "N", "the most steps of a run (default 10000)"},
    {"--order", "random|sequential", "async: the order of the units in a sweep"},
    {"--noise", "T", "temperature T: Langevin noise (euler), heat-bath rule (async)"},
    {"--seed", "S", "the seed of the patterns, cues, noise and async's order (default 0)"},
    THREADS_OPTION,
    {"--json", NULL, "the results as JSON, per K with every trial's overlap"},
    {"--plot", "OUT.png", "a plot of the overlap and the fraction retrieved against the load"},
    {"--save", "OUT.npz", "every K's patterns, cue indices, cues and final states"},
    {"--progress", NULL, "show progress on stderr (default: when stderr is a terminal)"},
    {"--no-progress", NULL, "never show progress"},
    {"--quiet", NULL, "no progress and no warnings"},
    {NULL, NULL, NULL}};

static const OptionSpec no_options[] = {{NULL, NULL, NULL}};

static const Command commands[] = {
    {"parse", "Parse and check a model; silent with exit status 0 when it is valid.",
     "FILE [--ast]", cmd_parse, parse_options},
    {"explain", "Print what was derived: L, g, H, the energy, the currents and the dynamics.",
     "FILE [--latex] [--eliminate LAYER]...", cmd_explain, explain_options},
    {"eval", "Evaluate the energy, activations, currents and dx/dt at given states.",
     "FILE TENSORS... --state A=FILE.npy... [--input A=FILE.npy...] [--out OUT.npz]", cmd_eval,
     eval_options},
    {"run", "Integrate the dynamics from the initial states to convergence or the step limit.",
     "FILE TENSORS... [RUN OPTIONS] [--out OUT.npz] [--trace TRACE.csv]", cmd_run, run_options},
    {"check", "Run the derivative, convexity, energy and stability checks of the model.",
     "FILE [TENSORS...] [--init A=FILE.npy...] [--samples N] [--seed S] [--strict] [--json] [--details]",
     cmd_check, check_options},
    {"emit", "Show or export the specialised kernels.",
     "FILE TENSORS... (--plan | --ir | --asm | --obj OUT.o | --c OUT.c)", cmd_emit,
     emit_options},
    {"bench", "Time the compiled kernels and the whole step.",
     "FILE TENSORS... [--batch B] [--repeat R]", cmd_bench, bench_options},
    {"capacity", "Store K patterns, cue the network with corrupted ones and measure retrieval.",
     "FILE --store WEIGHT --K LIST [--patterns binary|gaussian|FILE.npy] [--trials T]\n"
     "       [--corrupt flip:P|mask:P|noise:S] [TENSORS...] [RUN OPTIONS] [--json] [--plot OUT.png]",
     cmd_capacity, capacity_options},
    {"help", "Show the help of damc, or of one command.", "[COMMAND]", cmd_help, no_options},
};

const Command *command_find(const char *name) {
  for (size_t i = 0; i < ARRAY_LEN(commands); i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

const OptionSpec *option_find(const Command *c, const char *name) {
  for (const OptionSpec *o = c->options; o->name; o++)
    if (strcmp(o->name, name) == 0) return o;
  return NULL;
}

int usage_error(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "damc%s%s: error: ", command ? " " : "", command ? command : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\ntry 'damc %s%s--help'\n", command ? command : "", command ? " " : "");
  return EXIT_USAGE;
}

int unknown_option(const Command *c, const char *opt) {
  Suggestion s = suggest_begin(opt);
  for (const OptionSpec *o = c->options; o->name; o++) suggest_consider(&s, o->name);
  suggest_consider(&s, "--help");
  // An option of other commands (run's --init given to eval) is named as such: the
  // nearest spelling here would mislead.
  char others[128] = "";
  size_t used = 0;
  for (size_t i = 0; i < ARRAY_LEN(commands); i++)
    if (&commands[i] != c && option_find(&commands[i], opt) && used < sizeof others)
      used += (size_t)snprintf(others + used, sizeof others - used, "%s%s", used ? ", " : "",
                               commands[i].name);
  char msg[512];
  if (others[0])
    snprintf(msg, sizeof msg, "option '%%s' is an option of damc %s; damc %s does not take it",
             others, c->name);
  else
    snprintf(msg, sizeof msg, "unknown option '%%s'%s%s%s", s.best ? "; did you mean '" : "",
             s.best ? s.best : "", s.best ? "'?" : "");
  return usage_error(c->name, msg, opt);
}

int unknown_command(const char *name) {
  if (name[0] == '-') {
    Suggestion s = suggest_begin(name);
    suggest_consider(&s, "--help");
    suggest_consider(&s, "--version");
    if (s.best) fprintf(stderr, "damc: error: unknown option '%s'; did you mean '%s'?\n", name, s.best);
    else fprintf(stderr, "damc: error: unknown option '%s'\n", name);
  } else {
    Suggestion s = suggest_begin(name);
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) suggest_consider(&s, commands[i].name);
    if (s.best) fprintf(stderr, "damc: error: unknown command '%s'; did you mean '%s'?\n", name, s.best);
    else fprintf(stderr, "damc: error: unknown command '%s'\n", name);
  }
  fprintf(stderr, "try 'damc --help'\n");
  return EXIT_USAGE;
}

void print_errors(const char *command, const char *text) {
  while (*text) {
    const char *nl = strchr(text, '\n');
    int n = nl ? (int)(nl - text) : (int)strlen(text);
    if (n > 0) fprintf(stderr, "damc %s: error: %.*s\n", command, n, text);
    text += n + (nl != NULL);
  }
}

int option_read(const Command *c, int argc, char **argv, int *i, const OptionSpec **spec,
                const char **value) {
  const char *arg = argv[*i];
  const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
  char name[128];
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), arg);
  *spec = option_find(c, name);
  *value = NULL;
  if (!*spec) return unknown_option(c, name);
  if (!(*spec)->value) {
    if (eq) return usage_error(c->name, "option '%s' takes no value", name);
    return 0;
  }
  if (eq) *value = eq + 1;
  else if (*i + 1 < argc) *value = argv[++*i];
  else return usage_error(c->name, "option '%s' needs a value", name);
  return 0;
}

void print_command_help(const Command *c) {
  printf("usage: damc %s %s\n\n%s\n", c->name, c->usage, c->summary);
  if (!c->options[0].name) return;
  printf("\noptions:\n");
  for (const OptionSpec *o = c->options; o->name; o++) {
    char head[64];
    snprintf(head, sizeof head, "%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
    if (strlen(head) > 24) printf("  %s\n  %-24s %s\n", head, "", o->help);
    else printf("  %-24s %s\n", head, o->help);
  }
}

void print_help(void) {
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
         "  -h, --help   show this help; 'damc help COMMAND' or 'damc COMMAND --help' shows a\n"
         "               command's options\n"
         "  --version    print the version\n\n"
         "Options take their value as the next argument or after '=' (--out=o.npz).\n"
         "TENSORS: --weights FILE.npz, --weight NAME=FILE.npy, --set PARAM=VALUE,\n"
         "--dim NAME=SIZE (each repeatable).\n\n"
         "exit status: 0 success, 1 the model or a tensor is wrong, 2 the command line is\n"
         "wrong, 3 'check --strict' found a failure, 70 internal error.\n");
}
