// Lowering: the network's equations to a plan of kernel steps, as data.
//
// A plan computes a list of assignments (an output buffer := an expression of the DAG) for
// a batch of samples. Its sizes are those of the model's dims: each a number fixed when the
// kernels are compiled, or, for the dims marked `runtime`, read by the kernels at every call
// from a buffer of the dims' sizes (PB_SIZES), so that one compiled kernel serves every size
// of such a dim (damc capacity varies the number of stored patterns K this way). It decides which nodes live in buffers
// and which are computed inline, and orders the steps:
//   - PS_MATMUL: a product with a matrix (a weight, its transpose, or a matrix computed once
//     per call): one BLAS call for the whole batch (gemm, or gemv for one sample), with
//     transposition by flag, never by copying; with a matrix that depends on the sample
//     (per_sample), one call per sample;
//   - PS_REDUCE: a per-sample reduction (sum, log-sum-exp with its max shift) of an
//     expression computed inline, in one loop (two for log-sum-exp);
//   - PS_MAP: an elementwise expression over every element of a batch of vectors (or of a
//     per-sample scalar, or of a matrix computed once per call), with every elementwise
//     subexpression used only there fused into the same loop.
// A node is given a buffer when it is an output, a product or a reduction, or when it is
// used more than once or by a product; everything else is recomputed where it is used, in
// the loop that uses it. Scalars that depend only on params and constants are computed
// inline (the code generator hoists them out of loops).
//
// The plan is printable (damc emit --plan) and is what the code generators (LLVM IR, C)
// translate, so that a change of schedule is a change of data, not of code.
#ifndef DAMC_PLAN_H
#define DAMC_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "derive/kernel_eqs.h"
#include "derive/network.h"
#include "support/strbuf.h"

// A size in a plan: the product of the sizes of the dims d[0] and d[1] (PLAN_ONE: a factor
// 1), as the dims are bound now (plan_size). Kept as dims, not as a number, so that the code
// generators can read a runtime dim's size when the kernel runs.
enum { PLAN_ONE = -1 };
typedef struct {
  int32_t d[2];
} PlanSize;

typedef enum {
  PB_STATE,   // x of a layer (input to the kernel)
  PB_INPUT,   // I of a layer (input)
  PB_WEIGHT,  // a weight (input, not batched)
  PB_OUTPUT,  // an assignment's target
  PB_TEMP,    // an intermediate result
  PB_DIRECTION,  // d of a layer (input): the direction of Hessian- and Jacobian-vector products
  PB_SIZES,   // the sizes of every dim, int64 [ndims] (input): only in a plan with runtime dims
} PlanBufRole;

typedef struct {
  PlanBufRole role;
  ExprId node;     // the node it holds (leaves: the leaf)
  bool batched;    // one copy per sample: [batch, numel]
  PlanSize numel;  // elements per sample (or in all, when not batched)
  int rank;        // of the per-sample value: 0 a scalar, 1 a vector, 2 a matrix
  PlanSize rows, cols;  // the per-sample shape: rows x cols (vectors: rows x 1; scalars 1 x 1)
  int index;       // PB_STATE/PB_INPUT: the layer; PB_WEIGHT: the weight; PB_OUTPUT: the output
  char name[64];
} PlanBuf;

//   - PS_FUSED: the two products around an eliminated layer, u = W' p(W g), in one pass
//     over the weight W [K, N] (runtime/src/kernel_fused.c): z = W g is written block by
//     block of rows, the `ninner` PS_MAP steps that follow it in the list (the elementwise
//     maps from z to the layer's logits or activation) run on each block's columns, then
//     either the streaming softmax (FUSED_SOFTMAX: the log-sum-exp of the logits, with an
//     online max, into `lse`) or nothing (FUSED_ADDITIVE: the map's output is p), and
//     u += W_blk' p_blk. A batch larger than max_batch takes the BLAS path inside the same
//     call (two gemm around a row-wise softmax). The choice and its reason are data of the
//     step (`rule`), printed by damc emit --plan; docs/performance.md gives the rule.
typedef enum { PS_MAP, PS_REDUCE, PS_MATMUL, PS_FUSED } PlanStepKind;

//     With no second product (an energy): FUSED_LSE, the log-sum-exp of the logits alone
//     into `lse`, or FUSED_SUM, the sum of the map's output into `lse`; out is lse then.
typedef enum { FUSED_SOFTMAX, FUSED_ADDITIVE, FUSED_LSE, FUSED_SUM } PlanFusedMode;

// How products around an eliminated layer are computed (damc --kernels).
typedef enum { PLAN_KERNELS_AUTO, PLAN_KERNELS_BLAS, PLAN_KERNELS_FUSED } PlanKernels;

typedef struct {
  PlanStepKind kind;
  ExprId node;  // PS_MAP: the expression; PS_REDUCE: the EX_SUM/EX_LSE/EX_LSE1 node;
                // PS_MATMUL: the EX_MATMUL node
  int out;      // the buffer written
  // PS_MATMUL: C[M, N] = op(A)[M, K] op(B)[K, N], row-major, from buffers a and b.
  int a, b;
  bool trans_a, trans_b;
  PlanSize m, n, k, lda, ldb, ldc;
  bool batched;  // PS_MATMUL: the batch is one of the dimensions (M = batch; m unused)
  // PS_MATMUL with a matrix that depends on the sample: one product per sample, each
  // operand advanced by its stride (elements per sample; `shared` for an operand shared by all).
  bool per_sample;
  PlanSize stride_a, stride_b, stride_c;
  bool shared_a, shared_b;
  // PS_FUSED: weight w [K, N] (k = K, n = N), input g [B, N], z [B, K] (the first
  // product's buffer), act [B, K] (the logits or p, written by the inner maps), lse [B] (or
  // -1), out: u [B, N]. Blocks of `rows` rows (fewer when K is smaller); at most `threads`
  // threads, and when K or N is a runtime dim, one while W has fewer than `one_thread_bytes`
  // bytes (0: no such rule); the BLAS path above max_batch samples.
  PlanFusedMode mode;
  int w, g, z, act, lse;
  int ninner;
  int64_t rows, max_batch, one_thread_bytes;
  int threads;
  char rule[96];
} PlanStep;

// An output: a named value the kernel writes (g_v, u_h, dxdt_v, E, ...).
typedef struct {
  char name[64];
  OutputWhat what;
  int layer;  // or -1
  ExprId expr;
  int buf;
} PlanOutput;

// Code generation reads the plan alone: its buffers and steps, and through `net` the
// expression pool, the names and the model's facts (never the syntax tree).
typedef struct {
  KernelKind kind;
  const Network *net;
  const int64_t *dims;  // size of each dim (borrowed: a runtime dim's may change between runs)
  const bool *runtime;  // per dim: its size is a kernel argument (borrowed); NULL: none is
  int sizes_buf;        // the PB_SIZES buffer, or -1 (no runtime dim)
  PlanBuf *bufs;
  int nbufs;
  PlanStep *steps;
  int nsteps;
  PlanOutput *outputs;
  int noutputs;
  int *node_buf;        // per ExprId: its buffer, or -1 (computed inline)
  uint32_t nnodes;
  int *state_buf, *input_buf, *weight_buf;  // per layer / weight: the input buffers, or -1
} Plan;

// Schedules the equations of kernel `kind` (derive/kernel_eqs.h) for `net` with the sizes
// `dims` (every dim bound). The plan
// owns its arrays; `net` and `dims` are borrowed and must outlive it. Returns NULL with a
// message in `err` for an expression the lowering cannot schedule (a product with a
// matrix that depends on the state).
Plan *plan_build(const Network *net, const int64_t *dims, KernelKind kind, StrBuf *err);
// The same with the choice of products: PLAN_KERNELS_BLAS is plan_build's schedule (BLAS
// calls only); AUTO fuses by the rule of docs/performance.md (from the sizes and
// `real_size`, the bytes of a float of the kernels), FUSED wherever the pattern is found.
// The dims marked in `runtime` (or none, when NULL) are kernel arguments: the schedule does
// not depend on their sizes, which may change between calls of the compiled kernels.
Plan *plan_build_kernels(const Network *net, const int64_t *dims, const bool *runtime,
                         KernelKind kind, PlanKernels kernels, int real_size, StrBuf *err);
const char *plan_kernels_name(PlanKernels kernels);
void plan_free(Plan *plan);

// A size's value with the dims as bound now; whether it is a number fixed when compiling
// (no runtime dim in it); whether it may be more than 1 (a runtime dim may be any size).
int64_t plan_size(const Plan *plan, PlanSize s);
bool plan_size_fixed(const Plan *plan, PlanSize s);
bool plan_size_many(const Plan *plan, PlanSize s);
// The elements of a value of shape `shape` (a scalar, vector or matrix).
PlanSize plan_shape_numel(const ExprShape *shape);
// Whether a dim is a kernel argument in `plan`.
bool plan_dim_runtime(const Plan *plan, int dim);

// The buffer that PS_MAP step `s` copies (broadcast over the batch when it is not batched)
// into its output, or -1: a step whose node lives in another buffer than the step's own
// (an output that is a weight, u = b, or a value computed once per call) reads the node
// from there; every other map computes its node. A node that is a leaf without a buffer (a
// constant, a param) or a scalar of the params alone is computed, as inline.
int plan_step_copies(const Plan *plan, const PlanStep *s);

// The buffer of output `what` of layer `layer` (-1 for E); -1 when the plan has none.
int plan_output_buf(const Plan *plan, OutputWhat what, int layer);

// The plan as text: buffers, then steps in order, expressions printed as model text.
void plan_print(StrBuf *out, const Plan *plan);

// How the code generators compute x^c: products and square roots for the common constant
// exponents (exact where pow would round the same), a call to pow otherwise.
typedef enum {
  POW_CALL, POW_SQUARE, POW_CUBE, POW_FOURTH, POW_RECIP, POW_RECIP_SQUARE, POW_SQRT,
  POW_RECIP_SQRT
} PlanPowForm;
PlanPowForm plan_pow_form(const Expr *exponent);

#endif
