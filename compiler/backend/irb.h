// The IR-building layer: what the kernel generator needs on top of the LLVM-C builder.
//
// An Irb builds functions into one JitModule, in one float type (`real`: f32 or f64)
// chosen per Irb. It provides:
//   - functions and external declarations from a signature string (irb_func_begin,
//     irb_declare), so that runtime functions are declared from one table of strings;
//   - counted loops `for i in [0, n)` in the shape LLVM's loop vectoriser handles (i64
//     induction variable, no-wrap increment, values carried in header phis);
//   - reduction steps (sum, max) carrying the per-instruction fast-math flags that let
//     them vectorise, and no others;
//   - elementwise math (exp, log, tanh, ...) emitted inline as branch-free polynomial IR,
//     so that loops over it vectorise with no calls (irb_math.c; never llvm.exp & co.,
//     which become one scalar libm call per element).
// Everything else (arithmetic, compares, selects) is plain LLVM-C on `irb->b`; name LLVM
// locals v_ for values, bb_ for blocks and ty_ for types.
//
// Usage errors (a malformed signature, a redefined function) are internal errors and
// abort: the code generator produces these strings, users never do. An invalid function
// is reported later, by the verifier, when the module is optimised or added to the JIT.
//
// This header includes llvm-c/ and is for the backend only.
#ifndef DAMC_IRB_H
#define DAMC_IRB_H

#include <llvm-c/Core.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/jit.h"

typedef enum { IRB_F32, IRB_F64 } IrbReal;

typedef struct {
  LLVMContextRef ctx;
  LLVMModuleRef mod;  // borrowed from the JitModule
  LLVMBuilderRef b;   // owned; appends at the end of its current block
  IrbReal real;
  LLVMTypeRef ty_real;  // float or double
  LLVMTypeRef ty_i1, ty_i32, ty_i64, ty_ptr, ty_void;
  LLVMValueRef fn;  // the function being built (irb_func_begin)
} Irb;

// Starts building into `m` (borrowed: it must outlive the Irb) in float type `real`.
void irb_init(Irb *irb, JitModule *m, IrbReal real);
// Frees the builder; the module keeps what was built.
void irb_fini(Irb *irb);

// Signatures are C-like strings: "ret(param, ...)", where a type is one of void, i32, i64,
// f32, f64, ptr (opaque pointer) or real (the Irb's float type), and a parameter is
// "type [noalias] [name]", e.g. "void(ptr noalias y, ptr x, i64 n, real a)". noalias
// promises that the pointer's memory is reached through no other parameter during the
// call, which spares the vectoriser its run-time overlap checks.

// Defines function `name` with signature `sig` (external linkage, nounwind), makes it
// irb->fn and positions the builder in its entry block. The caller ends it with a return.
LLVMValueRef irb_func_begin(Irb *irb, const char *name, const char *sig);
// The `i`-th parameter of irb->fn.
LLVMValueRef irb_param(const Irb *irb, unsigned i);

// Declares the external function `name` with signature `sig` (or returns the existing
// declaration, which must have that signature). JIT'd code finds it among the runtime
// symbols given to jit_define_symbols.
LLVMValueRef irb_declare(Irb *irb, const char *name, const char *sig);
// Calls function `fn` (defined or declared in this module) with the `n` values `args`;
// the call's value, or an instruction of void type.
LLVMValueRef irb_call(Irb *irb, LLVMValueRef fn, LLVMValueRef *args, unsigned n);

// Calls the overloaded intrinsic `name` (e.g. "llvm.fmuladd"), overloaded on the type of
// args[0], with the `n` values `args`.
LLVMValueRef irb_intrinsic(Irb *irb, const char *name, LLVMValueRef *args, unsigned n);

// Constants.
LLVMValueRef irb_real(const Irb *irb, double c);
LLVMValueRef irb_i64(const Irb *irb, int64_t c);

// The real element `v_base[v_i]` (v_i an i64), and storing `v` there.
LLVMValueRef irb_load(Irb *irb, LLVMValueRef v_base, LLVMValueRef v_i);
void irb_store(Irb *irb, LLVMValueRef v_base, LLVMValueRef v_i, LLVMValueRef v);

// A counted loop `for (i = 0; i < n; i++)`; loops nest. Between irb_loop_begin and
// irb_loop_end the builder is in the body; after irb_loop_end it is in the exit block,
// where `carry[k]` holds the final value of each carried value.
#define IRB_LOOP_MAX_CARRY 4
typedef struct {
  LLVMValueRef i;                          // the induction variable (i64), in the body
  LLVMValueRef carry[IRB_LOOP_MAX_CARRY];  // carried values: this iteration's, then final
  unsigned n_carry;
  LLVMBasicBlockRef bb_pre, bb_head, bb_body, bb_exit;
  LLVMValueRef v_test;  // the header's exit test; carried phis go before it
  bool fold_tail;       // a constant trip count: vectorised with a masked last iteration
} IrbLoop;

// Opens a loop over [0, `v_n`) (v_n an i64; no iterations when v_n <= 0) in the current
// function. `name` prefixes its blocks.
void irb_loop_begin(Irb *irb, IrbLoop *loop, LLVMValueRef v_n, const char *name);
// Adds a value carried around `loop` (an accumulator), `v_init` on entry (defined before
// the loop). Returns its value in the current iteration, also stored in loop->carry.
LLVMValueRef irb_loop_carry(Irb *irb, IrbLoop *loop, LLVMValueRef v_init, const char *name);
// Closes `loop`: `v_next[k]` is the next iteration's value of carry[k] (NULL when nothing
// is carried).
void irb_loop_end(Irb *irb, IrbLoop *loop, const LLVMValueRef *v_next);

// One step of a sum reduction, `v_acc + v_x`, marked reassociable so that the loop
// vectorises into partial sums (the rounding of the total then depends on the vector
// width, as with any blocked sum).
LLVMValueRef irb_reduce_add(Irb *irb, LLVMValueRef v_acc, LLVMValueRef v_x);
// One step of a max reduction, maxnum(`v_acc`, `v_x`). The flags that let it vectorise
// include no-NaNs: a NaN among the values gives an unspecified result.
LLVMValueRef irb_reduce_max(Irb *irb, LLVMValueRef v_acc, LLVMValueRef v_x);

// Elementwise math functions, one per elementwise builtin of sym/builtins.def.
typedef enum {
  IRB_EXP,
  IRB_EXPM1,
  IRB_LOG,
  IRB_LOG1P,
  IRB_SQRT,
  IRB_ABS,
  IRB_TANH,
  IRB_SIGMOID,   // 1 / (1 + exp(-x))
  IRB_SOFTPLUS,  // log(1 + exp(x))
  IRB_RELU,      // max(x, 0); NaN stays NaN
  IRB_COSH,
  IRB_SINH,
  IRB_LOGCOSH,  // log(cosh(x))
  IRB_MATH_COUNT
} IrbMath;

// `fn`(v_x) for a real v_x, emitted inline: branch-free IR (selects, no calls) that loops
// vectorise. Required against glibc's libm: f64 within 1e-13 relative, f32 within 4 ulp;
// measured (README.md): f64 within 5.7e-16 (5 ulp), f32 within 3 ulp over all 2^32
// inputs. Special values (NaN, +-inf, +-0, subnormals, overflow, underflow) as libm.
LLVMValueRef irb_math(Irb *irb, IrbMath fn, LLVMValueRef v_x);
// The builtin's name ("exp", "log1p", ...).
const char *irb_math_name(IrbMath fn);

#endif
