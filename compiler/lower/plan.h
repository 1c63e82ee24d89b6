// Lowering: the network's equations to a plan of kernel steps, as data.
//
// A plan computes a list of assignments (an output buffer := an expression of the DAG) for
// a batch of samples, with the model's sizes fixed. It decides which nodes live in buffers
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

typedef enum {
  PB_STATE,   // x of a layer (input to the kernel)
  PB_INPUT,   // I of a layer (input)
  PB_WEIGHT,  // a weight (input, not batched)
  PB_OUTPUT,  // an assignment's target
  PB_TEMP,    // an intermediate result
  PB_DIRECTION,  // d of a layer (input): the direction of Hessian- and Jacobian-vector products
} PlanBufRole;

typedef struct {
  PlanBufRole role;
  ExprId node;     // the node it holds (leaves: the leaf)
  bool batched;    // one copy per sample: [batch, numel]
  int64_t numel;   // elements per sample (or in all, when not batched)
  int rank;        // of the per-sample value: 0 a scalar, 1 a vector, 2 a matrix
  int64_t rows, cols;  // the per-sample shape: rows x cols (vectors: rows x 1; scalars 1 x 1)
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

typedef enum { FUSED_SOFTMAX, FUSED_ADDITIVE } PlanFusedMode;

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
  int64_t m, n, k, lda, ldb, ldc;
  bool batched;  // PS_MATMUL: the batch is one of the dimensions (M = batch)
  // PS_MATMUL with a matrix that depends on the sample: one product per sample, each
  // operand advanced by its stride (elements per sample; 0 for an operand shared by all).
  bool per_sample;
  int64_t stride_a, stride_b, stride_c;
  // PS_FUSED: weight w [K, N] (k = K, n = N), input g [B, N], z [B, K] (the first
  // product's buffer), act [B, K] (the logits or p, written by the inner maps), lse [B] (or
  // -1), out: u [B, N]. Blocks of `rows` rows; at most `threads` threads; the BLAS path
  // above max_batch samples.
  PlanFusedMode mode;
  int w, g, z, act, lse;
  int ninner;
  int64_t rows, max_batch;
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
  const int64_t *dims;  // size of each dim (borrowed)
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
Plan *plan_build_kernels(const Network *net, const int64_t *dims, KernelKind kind,
                         PlanKernels kernels, int real_size, StrBuf *err);
const char *plan_kernels_name(PlanKernels kernels);
void plan_free(Plan *plan);

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
