// Code generation: a kernel plan (lower/plan.h) to an LLVM function.
//
// The function has the signature `void NAME(ptr bufs, ptr params, i64 batch)`: `bufs` is
// an array with one pointer per plan buffer (inputs filled by the caller, outputs and
// temporaries written by the kernel), `params` the model's params as float64, and `batch`
// the number of samples. Sizes are constants of the plan, so every loop has a constant
// trip count but the batch. Map and reduce steps become loop nests (batch outside,
// elements inside, vectorised); products become calls to damrt_kernel_gemm_*.
#ifndef DAMC_CODEGEN_H
#define DAMC_CODEGEN_H

#include "backend/irb.h"
#include "lower/plan.h"

// Emits the function `name` for `plan` with the Irb's float type. Returns false with a
// message in `err` for a construct it cannot translate.
bool codegen_plan(Irb *irb, const Plan *plan, const char *name, StrBuf *err);

// Declares the kernel ABI (runtime/include/damrt_kernel.def) in the Irb's module, and the
// JitSymbols to register with the JIT for it (`*n` of them).
const JitSymbol *codegen_runtime_symbols(size_t *n);

#endif
