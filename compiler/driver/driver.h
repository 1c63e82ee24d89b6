// Shared pieces of the damc command line: exit codes, usage errors and the subcommands
// that run native code (native.c).
#ifndef DAMC_DRIVER_H
#define DAMC_DRIVER_H

enum { EXIT_MODEL = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 70 };

// Prints "damc COMMAND: error: MSG" and the hint to ask for help; returns EXIT_USAGE.
int usage_error(const char *command, const char *fmt, const char *arg);

// damc eval, run, emit and bench; argv[0] is the subcommand.
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
