// damc check --emit-c OUT.c: the checks of a model as one standalone C program, for a user's
// own CI without LLVM (docs/cli.md, "damc check", --emit-c).
//
// OUT.c holds, in order: the header of the model's kernels and the kernels themselves, as
// `damc emit --c` writes them (backend/emit_c.h), in float64: damc_rhs, damc_eval, damc_hvp
// (H_A d_A, docs/theory.md §4.1.2) and damc_lagr (L_A and g_A at any x_A: derive/kernel_eqs.h);
// then the model's facts the checks need, as X-macro tables (CHECK_LAYERS: each layer's
// size, tau, beta_L of §4.1.1 and the index of its buffers in each kernel; CHECK_BREAKS: the
// breakpoints of its kinks, §4.1.5; CHECK_WEIGHTS: each weight's name, shape and symmetry;
// check_params: the params as set); then the same runner for every model
// (check/check_program.c.in), which reads the weights from an .npz with the runtime library,
// samples states from a seed and runs checks 1 (derivatives, §4.1), 2 (convexity at sampled
// states, §4.2.3), 4 (energy decrease along euler, rk4 and dopri5 runs, §4.3) and 6 (dead
// units at the states the runs reach, §4.5), one line per item; exit status 0, 1 on a failure,
// 2 when it cannot run. Build it with
//   cc -std=c11 -O2 OUT.c -I DAMC/runtime/include libdamrt.a -lopenblas -llapacke -lm
//      $(pkg-config --libs libzip)      (one line)
// Needs every dim sized (the weights given, or --dim); the sizes and params are fixed in the
// program, the weights are read when it runs.
#ifndef DAMC_CHECK_EMIT_CHECK_H
#define DAMC_CHECK_EMIT_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "derive/network.h"
#include "support/strbuf.h"

// Writes the program for `net` with the sizes `dims` (every dim bound) and the param values
// `params` into `out`; `model_path` and `c_name` (OUT.c's file name) are named in its opening
// comment. Returns false with a message in `err` when a dim is unbound or a kernel cannot be
// planned or translated.
bool emit_check_program(const Network *net, const int64_t *dims, const double *params,
                        const char *model_path, const char *c_name, StrBuf *out, StrBuf *err);

#endif
