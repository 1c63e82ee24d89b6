// The damc command line: exit codes, the table of subcommands and options (commands.c),
// the subcommands themselves (main.c: parse, explain, help; native.c: eval, run, emit,
// bench), and the messages of command-line mistakes.
//
// Every message that is not a located diagnostic of the model reads
// "damc COMMAND: error: ..."; a command-line mistake exits 2 and says how to ask for help,
// a problem with the model, a tensor or a run exits 1.
#ifndef DAMC_DRIVER_H
#define DAMC_DRIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "support/strbuf.h"

enum { EXIT_MODEL = 1, EXIT_USAGE = 2, EXIT_CHECK = 3, EXIT_INTERNAL = 70 };

// An option: its name, the name of its value (NULL: a flag) and its help line.
typedef struct {
  const char *name;
  const char *value;
  const char *help;
} OptionSpec;

typedef struct {
  const char *name;
  const char *summary;
  const char *usage;  // after "damc NAME "
  int (*run)(int argc, char **argv);  // argv[0] is the subcommand's name
  const OptionSpec *options;          // terminated by a NULL name
} Command;

const Command *command_find(const char *name);
const OptionSpec *option_find(const Command *c, const char *name);

// Reads the option at argv[*i]: its spec, and its value (the next argument, or the text
// after '=' in --option=value), moving *i past what it used. Returns 0, or the exit status
// of a usage error (printed: an unknown option with the nearest known one, a value missing
// or given to a flag).
int option_read(const Command *c, int argc, char **argv, int *i, const OptionSpec **spec,
                const char **value);

// Prints "damc COMMAND: error: MSG" (MSG = fmt with arg) and the hint to ask for help;
// returns EXIT_USAGE.
int usage_error(const char *command, const char *fmt, const char *arg);
// The same for an unknown option of `c` or an unknown subcommand, with "did you mean".
int unknown_option(const Command *c, const char *opt);
int unknown_command(const char *name);
// Prints each line of `text` as "damc COMMAND: error: LINE".
void print_errors(const char *command, const char *text);

// Writes `len` bytes to `path` (NULL: standard output), whole or not at all (output.c);
// false with the path and the system's reason in `err`.
bool output_write(const char *path, const void *data, size_t len, StrBuf *err);
// Two files, both or neither (emit --c: the source and its header).
bool output_write_pair(const char *path1, const StrBuf *data1, const char *path2,
                       const StrBuf *data2, StrBuf *err);
// False, with the path and the system's reason, when an output's directory cannot be written
// (missing, read-only): said before the work whose result it would hold, not after.
bool output_check_dirs(const char *const *outputs, int noutputs, StrBuf *err);
// False, with the message, when an output names one of the inputs or another output.
bool output_check_paths(const char *const *inputs, int ninputs, const char *const *outputs,
                        int noutputs, StrBuf *err);

void print_help(void);
void print_command_help(const Command *c);

int cmd_parse(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_help(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_capacity(int argc, char **argv);

#endif
