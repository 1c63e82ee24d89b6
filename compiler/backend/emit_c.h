// Emitting kernel plans as portable C: `damc emit FILE TENSORS... --c OUT.c`.
//
// The two plans the engine builds (KERNEL_RHS and KERNEL_EVAL) become two C11 functions with
// the ABI of the JIT-compiled kernels, so that a program without LLVM can run the model
// with only the runtime library (libdamrt.a), OpenBLAS and libm:
//   void damc_rhs(void **bufs, const double *params, int64_t batch);   // dx/dt
//   void damc_eval(void **bufs, const double *params, int64_t batch);  // E, g, u, dx/dt, E_A
// in float32 or float64, with the model's sizes as constants (plans without runtime dims,
// plan.h). They follow codegen.c step for step: one loop nest per map and reduce step
// (samples outside, elements inside; log-sum-exp in two passes with the max shift),
// damrt_kernel_gemm_* for the products,
// the elementwise functions in the stable forms of the interpreter (expr_eval_fn) over
// <math.h>, constant exponents by products and square roots and the others through
// damrt_kernel_pow_*. Scalars of params and constants are computed once per call.
//
// OUT.c comes with OUT.h, which is all a caller needs: the element type `damc_real`, the
// model's sizes (DAMC_DIM_*), the params' order and defaults (DAMC_PARAMS), and for each
// kernel the index of every buffer in `bufs` (DAMC_RHS_BUF_*, DAMC_EVAL_BUF_*), of every
// output (DAMC_*_OUT_*), and an X-macro list (DAMC_*_BUFFERS) of every buffer's role,
// per-sample element count and batching, to allocate them in a loop. The header also
// describes the object file of `damc emit --obj` of the same model, tensors and precision,
// which defines the same two functions. Build, for example:
//   cc -std=c11 -O2 -c OUT.c -I DAMC/runtime/include
//   cc main.o OUT.o libdamrt.a -lopenblas -lm $(pkg-config --libs libzip)
#ifndef DAMC_EMIT_C_H
#define DAMC_EMIT_C_H

#include <stdbool.h>

#include "lower/plan.h"
#include "support/strbuf.h"

// Generates the C source of the `nplans` kernels of `plans` (same network and sizes; damc emit
// --c gives KERNEL_RHS and KERNEL_EVAL, damc check --emit-c adds KERNEL_HVP and KERNEL_LAGR)
// into `source` and its header into `header`; the source includes the header as `h_name`,
// and both name themselves (`c_name`, `h_name`) and `model_path` in their opening comments.
// With `h_name` NULL the source includes no header: the caller puts the header's text before
// it in one file (check/emit_check.c). `f64` chooses float64, else float32. Returns false with
// a message in `err` when a plan has a node it cannot translate. Writing the files is the
// caller's.
bool emit_c_generate(const Plan *const *plans, int nplans, bool f64, const char *model_path,
                     const char *c_name, const char *h_name, StrBuf *source, StrBuf *header,
                     StrBuf *err);

#endif
