// damc: the command-line driver's entry point, and the subcommands that need no tensors
// (parse, explain, help).
//
// It finds the subcommand (driver.h, commands.c), runs it and maps the outcome to an exit
// status (0 success, 1 the model or a tensor is wrong, 2 the command line is wrong, 3
// `check --strict` failed, 70 internal error). It is the only place that exits; every stage
// below reports to the session's DiagSink or an error buffer and returns.
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/damc_internal.h"
#include "damrt_kernel.h"
#include "damrt_output.h"
#include "derive/network.h"
#include "driver/driver.h"
#include "front/ast_dump.h"
#include "support/common.h"
#include "support/strbuf.h"

// An engine for the model in `path`, through the pipeline up to `last` (diagnostics to
// stderr as they are found); NULL after the messages when a stage fails.
static Engine *open_model(const char *command, const char *path, EngineStage last) {
  Engine *e = engine_new(path, stderr);
  StrBuf err = {0};
  if (!engine_compile(e, last, &err)) {
    print_errors(command, sb_str(&err));
    engine_free(e);
    e = NULL;
  }
  sb_free(&err);
  return e;
}

static bool is_help(const char *arg) {
  return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

// ---- damc parse ----

int cmd_parse(int argc, char **argv) {
  const Command *c = command_find("parse");
  const char *file = NULL;
  bool dump = false;
  for (int i = 1; i < argc; i++) {
    const OptionSpec *opt;
    const char *value;
    int status;
    if (argv[i][0] == '-' && argv[i][1]) {
      if ((status = option_read(c, argc, argv, &i, &opt, &value)) != 0) return status;
      dump = true;  // --ast, the only option
    } else if (file) {
      return usage_error("parse", "more than one model file ('%s')", argv[i]);
    } else {
      file = argv[i];
    }
  }
  if (!file) return usage_error("parse", "no model file given%s", "");
  // Through the derivation: a model whose layers cannot be eliminated is refused here too.
  Engine *e = open_model("parse", file, STAGE_DERIVE);
  int status = e ? 0 : EXIT_MODEL;
  if (e && dump) {
    StrBuf out = {0}, err = {0};
    ast_dump_model(&out, engine_model(e));
    if (!output_write(NULL, out.data, out.len, &err)) {
      print_errors("parse", sb_str(&err));
      status = EXIT_MODEL;
    }
    sb_free(&out);
    sb_free(&err);
  }
  engine_free(e);
  return status;
}

// ---- damc explain ----

int cmd_explain(int argc, char **argv) {
  const Command *c = command_find("explain");
  const char *file = NULL;
  bool latex = false;
  const char **eliminate = xcalloc((size_t)argc + 1, sizeof *eliminate);
  int neliminate = 0, status = 0;
  for (int i = 1; i < argc; i++) {
    const OptionSpec *opt;
    const char *value;
    if (argv[i][0] == '-' && argv[i][1]) {
      if ((status = option_read(c, argc, argv, &i, &opt, &value)) != 0) {
        free(eliminate);
        return status;
      }
      if (value) eliminate[neliminate++] = value;
      else latex = true;
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
  Engine *e = open_model("explain", file, STAGE_CHECK);
  const Model *m = e ? engine_model(e) : NULL;
  int *layers = xcalloc((size_t)neliminate + 1, sizeof *layers);
  for (int i = 0; m && i < neliminate; i++) {
    layers[i] = engine_layer_index(e, eliminate[i]);
    if (layers[i] < 0) {
      StrBuf msg = {0};
      engine_unknown_name(e, NAME_LAYER, eliminate[i], &msg);
      char opt[300];
      snprintf(opt, sizeof opt, "--eliminate %s: %%s", eliminate[i]);
      status = usage_error("explain", opt, sb_str(&msg));
      sb_free(&msg);
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
      if (!output_write(NULL, out.data, out.len, &err)) {
        print_errors("explain", sb_str(&err));
        status = EXIT_MODEL;
      }
      sb_free(&out);
    } else {
      print_errors("explain", sb_str(&err));
      status = EXIT_MODEL;
    }
    sb_free(&err);
  }
  engine_free(e);
  free(layers);
  free(eliminate);
  return status;
}

// ---- damc help ----

int cmd_help(int argc, char **argv) {
  if (argc > 2) return usage_error("help", "give one command at most, not '%s'", argv[2]);
  if (argc == 1) {
    print_help();
    return 0;
  }
  const Command *c = command_find(argv[1]);
  if (!c) return unknown_command(argv[1]);
  // OpenBLAS started its threads when it was loaded; they would poll the cores while the
  // model is read and compiled. They start again at the first threaded product.
  damrt_blas_rest();
  print_command_help(c);
  return 0;
}


// An internal error or a want of memory has been printed (common.h) and abort() called:
// remove the outputs' temporary files and exit with the status cli.md gives it.
static void on_abort(int sig) {
  (void)sig;
  damrt_output_remove_pending();
  _exit(damc_out_of_memory ? 1 : EXIT_INTERNAL);
}

int main(int argc, char **argv) {
  signal(SIGABRT, on_abort);
  // A signal removes the temporary files of outputs not yet written whole; a file-size limit
  // is a write error with the file's name, not a silent death.
  DamrtError serr = {0};
  if (damrt_output_install_signal_handlers(&serr) != DAMRT_OK) {
    fprintf(stderr, "damc: error: %s\n", serr.message);
    return EXIT_INTERNAL;
  }
  if (argc < 2) return usage_error(NULL, "no command given%s", "");
  if (is_help(argv[1])) {
    print_help();
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("damc %s\n", DAMC_VERSION);
    return 0;
  }
  const Command *c = command_find(argv[1]);
  if (!c) return unknown_command(argv[1]);
  for (int i = 2; i < argc && c->run != cmd_help; i++)
    if (is_help(argv[i])) {
      print_command_help(c);
      return 0;
    }
  return c->run(argc - 1, argv + 1);
}
