// damc: the command-line driver.
//
// Parses the command line, reads files, runs the pipeline for one subcommand and maps the
// outcome to an exit status (0 success, 1 the model or a tensor is wrong, 2 the command
// line is wrong, 3 `check --strict` failed, 70 internal error). It is the only place that
// exits; every stage below reports to the session's DiagSink and returns.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "derive/network.h"
#include "driver/driver.h"
#include "front/ast_dump.h"
#include "front/front.h"
#include "support/common.h"
#include "support/strbuf.h"

typedef struct {
  const char *name;
  const char *summary;
  const char *usage;  // after "damc NAME "
  int (*run)(int argc, char **argv);
} Command;

static const Command *find_command(const char *name);

int usage_error(const char *command, const char *fmt, const char *arg) {
  fprintf(stderr, "damc%s%s: error: ", command ? " " : "", command ? command : "");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\ntry 'damc %s%s--help'\n", command ? command : "", command ? " " : "");
  return EXIT_USAGE;
}

// Reads a whole file; NULL (after a message) when it cannot.
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "damc: error: cannot open '%s': %s\n", path, strerror(errno));
    return NULL;
  }
  StrBuf sb = {0};
  char chunk[1 << 16];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_appendn(&sb, chunk, n);
  bool failed = ferror(f);
  int err = errno;
  fclose(f);
  if (failed) {
    fprintf(stderr, "damc: error: cannot read '%s': %s\n", path, strerror(err));
    sb_free(&sb);
    return NULL;
  }
  *len = sb.len;
  if (!sb.data) sb_appendn(&sb, "", 0);
  return sb.data;
}

// Parses and checks the model in `path`; NULL (after diagnostics) when it is wrong.
static Model *load_model(Session *s, const char *path) {
  size_t len;
  char *text = read_file(path, &len);
  if (!text) return NULL;
  Model *m = front_compile(s, path, text, len);
  free(text);
  return m;
}

static bool is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static int print_command_help(const Command *c) {
  printf("usage: damc %s %s\n\n%s\n", c->name, c->usage, c->summary);
  return 0;
}

// ---- damc parse ----

static int cmd_parse(int argc, char **argv) {
  const Command *self = find_command("parse");
  const char *file = NULL;
  bool dump = false;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) {
      print_command_help(self);
      printf("\noptions:\n  --ast    print the checked model, every expression fully "
             "parenthesised\n");
      return 0;
    }
    if (strcmp(argv[i], "--ast") == 0) dump = true;
    else if (argv[i][0] == '-' && argv[i][1]) return usage_error("parse", "unknown option '%s'", argv[i]);
    else if (file) return usage_error("parse", "more than one model file ('%s')", argv[i]);
    else file = argv[i];
  }
  if (!file) return usage_error("parse", "no model file given%s", "");
  Session *s = session_new(stderr);
  Model *m = load_model(s, file);
  int status = m ? 0 : EXIT_MODEL;
  if (m && dump) {
    StrBuf out = {0};
    ast_dump_model(&out, m);
    fputs(sb_str(&out), stdout);
    sb_free(&out);
  }
  session_free(s);
  return status;
}

// ---- damc explain ----

static int cmd_explain(int argc, char **argv) {
  const Command *self = find_command("explain");
  const char *file = NULL;
  bool latex = false;
  const char **eliminate = xcalloc((size_t)argc + 1, sizeof *eliminate);
  int neliminate = 0, status = 0;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) {
      print_command_help(self);
      printf("\noptions:\n  --latex            print the equations as LaTeX (align* "
             "environments)\n  --eliminate LAYER  integrate LAYER out (as if its tau were 0) "
             "and print the\n                     reduced model; repeatable\n");
      free(eliminate);
      return 0;
    }
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
  Session *s = session_new(stderr);
  Model *m = load_model(s, file);
  int *layers = xcalloc((size_t)neliminate + 1, sizeof *layers);
  for (int i = 0; m && i < neliminate; i++) {
    layers[i] = -1;
    for (int a = 0; a < m->nlayers; a++)
      if (strcmp(m->layers[a].name, eliminate[i]) == 0) layers[i] = a;
    if (layers[i] < 0) {
      fprintf(stderr, "damc explain: error: '--eliminate %s': the model has no layer '%s'\n",
              eliminate[i], eliminate[i]);
      status = EXIT_USAGE;
    }
  }
  Network *net = m && !status ? network_derive(s, m, layers, neliminate) : NULL;
  if (net) {
    StrBuf out = {0};
    network_explain(&out, net, latex ? PRINT_LATEX : PRINT_PRETTY);
    fputs(sb_str(&out), stdout);
    sb_free(&out);
  } else if (!status) {
    status = EXIT_MODEL;
  }
  network_free(net);
  free(layers);
  free(eliminate);
  session_free(s);
  return status;
}

// ---- Subcommands still to come ----

static int cmd_missing(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (is_help(argv[i])) return print_command_help(find_command(argv[0]));
  fprintf(stderr, "damc: error: 'damc %s' is not implemented in damc %s yet\n", argv[0],
          DAMC_VERSION);
  return EXIT_INTERNAL;
}

static const Command commands[] = {
    {"parse", "Parse and check a model; silent with exit status 0 when it is valid.",
     "FILE [--ast]", cmd_parse},
    {"explain", "Print what was derived: each layer's L, g, Hessian structure and Lagrange "
     "term,\nthe energy, the currents and the dynamics.",
     "FILE [--latex] [--eliminate LAYER]...", cmd_explain},
    {"eval", "Evaluate the energy, activations, currents and dx/dt at given states.",
     "FILE TENSORS... --state A=FILE.npy... [--input A=FILE.npy...] [--precision f32|f64] "
     "[--out OUT.npz]", cmd_eval},
    {"run", "Integrate the dynamics from the initial states to convergence or the step limit.",
     "FILE TENSORS... [RUN OPTIONS] [--out OUT.npz] [--trace TRACE.csv]", cmd_run},
    {"check", "Run the Hessian, convexity, energy and stability checks.",
     "FILE [TENSORS...] [--input A=FILE.npy...] [--samples N] [--seed S] [--strict] [--json]",
     cmd_missing},
    {"emit", "Show or export the specialised kernels.",
     "FILE TENSORS... (--plan | --ir | --asm | --obj OUT.o | --c OUT.c)", cmd_emit},
    {"bench", "Time the compiled kernels and the whole step.",
     "FILE TENSORS... [--batch B] [--repeat R] [--precision f32|f64]", cmd_bench},
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

int main(int argc, char **argv) {
  if (argc < 2) {
    print_help();
    return EXIT_USAGE;
  }
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
  return c->run(argc - 1, argv + 1);
}
