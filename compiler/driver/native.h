// What the subcommands that compile a model share (native.c): their options, read from the
// command line alone (native_options.c), and the model loaded with its tensors (load.c).
#ifndef DAMC_DRIVER_NATIVE_H
#define DAMC_DRIVER_NATIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "api/damc_internal.h"
#include "damrt_tensor.h"
#include "engine/kcache.h"

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
  DamcKernels kernels;  // --kernels
  const char *out;
  // emit
  bool plan, ir, asm_text;
  const char *obj;
  const char *c_source;  // --c: the C file (its header is written next to it)
  const char *emit_c;    // check --emit-c: the program of the checks
  // run
  DamcRunOptions run;
  const char *trace;
  // bench
  size_t batch;
  int repeat;
  bool allow_extra;  // --allow-extra: .npz members that are not weights are ignored
  bool strict;       // run --strict: an unconverged sample is an error
  bool order_given;  // run --order (async only)
  int progress;      // run: 1 --progress, -1 --no-progress, 0 when stderr is a terminal
  bool quiet;
  bool no_cache;  // --no-cache: compile, without the cache of compiled kernels
  bool verbose;   // --verbose: what was compiled and what came from the cache, on stderr
  // check
  int samples;
  bool json;
  bool details;      // check: every item in full
  // capacity (capacity.c reads their values)
  const char *store, *patterns, *k_list, *corrupt, *layer, *plot, *save;
  size_t trials;
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
  KcacheStats ready_stats;  // the kernels' figures when the first step could start
} Loaded;

// Reads the command line into `o` without opening any file. Returns 0, or the exit status
// of a usage error (printed).
int parse_options(Options *o, int argc, char **argv);
// Refuses an output that names an input or another output (before anything is read): 0 or
// the exit status.
int check_paths(const Options *o);
// The header written next to --c OUT.c: OUT.h (the caller frees).
char *header_path(const char *c_path);
// Splits "A=FILE" at the first '='; false when there is none.
bool split_pair(const char *arg, char *key, size_t keysize, const char **value);
// A number option's value; false when it is not a number in [lo, hi].
bool parse_number(const char *text, double lo, double hi, double *out);

// Loads the model and its tensors and compiles up to stage `last`: 0, or the exit status
// after printing the message; unload frees what load_model made.
int load_model(const Options *o, Loaded *l, EngineStage last);
void unload(Loaded *l);
// parse_options, check_paths and load_model up to the stage the command needs; 0 or the exit
// status. finish frees both and returns `status`.
int start(Options *o, Loaded *l, int argc, char **argv);
int finish(Options *o, Loaded *l, int status);

#endif
