// The equations each kind of kernel computes, derived once, here; lower/ only schedules them.
//
// A kernel is a list of named outputs, each an expression of the network's DAG, computed in
// order for a batch of samples. The activations come first: every output that is some
// layer's g (or an eliminated layer's state x_h = u_h) binds that layer's leaf, so later
// outputs read it instead of recomputing it. The kinds:
//   KERNEL_RHS:  g of every layer, then dx/dt of every integrated layer (what an integrator
//                calls at every stage of a step);
//   KERNEL_EVAL: the same, plus u of every layer, each layer's energy part
//                Lambda_A - I_A . g_A, and E (docs/theory.md eq. 1.1);
//   KERNEL_HVP:  H_A d_A of every layer at x_A (the Hessian-vector products, for damc check
//                and for callers that need curvature: Newton, Krylov solvers);
//   KERNEL_JVP:  the Jacobian-vector product of the right-hand side, sum_B d(dx_A/dt)/dx_B d_B
//                for every integrated layer (of the reduced dynamics when layers are
//                eliminated);
//   KERNEL_LAGR: L_A and g_A of every layer at the given x_A, eliminated layers too (what the
//                program of `damc check --emit-c` differentiates by central differences);
//   KERNEL_FLIP: for every eliminated layer, L_h(x_h + d_h) - L_h(x_h) at given x_h and d_h
//                (LayerEq.flip): the fast single-unit rule's energy change (docs/theory.md §5.3);
//   KERNEL_ENERGY: E alone (the reduced energy when layers are eliminated, docs/theory.md
//                §2), with the activations it reads: what a caller that wants only the
//                energy needs (one product per synapse where eval needs two).
// The first two are the model's kernels (damc eval and run, emit --c); the others are
// compiled when asked for.
#ifndef DAMC_KERNEL_EQS_H
#define DAMC_KERNEL_EQS_H

#include "derive/network.h"

typedef enum {
  KERNEL_RHS, KERNEL_EVAL, KERNEL_HVP, KERNEL_JVP, KERNEL_LAGR, KERNEL_FLIP, KERNEL_ENERGY,
  KERNEL_KINDS
} KernelKind;
enum { KERNEL_MODEL_KINDS = KERNEL_HVP };  // RHS and EVAL

// What an output is, so that callers find it by meaning, not by its printed name.
typedef enum {
  OUT_G,       // g_A
  OUT_X,       // x_h of an eliminated layer (= u_h)
  OUT_U,       // u_A
  OUT_DXDT,    // dx_A/dt
  OUT_PART,    // E_A = Lambda_A - I_A . g_A
  OUT_ENERGY,  // E
  OUT_HVP,     // H_A d_A
  OUT_JVP,     // the Jacobian of dx_A/dt applied to d
  OUT_LAGR,    // L_A at x_A
  OUT_FLIP,    // L_h(x_h + d_h) - L_h(x_h) of an eliminated layer
} OutputWhat;

typedef struct {
  char name[64];   // "g_v", "x_h", "u_v", "dxdt_v", "E_v", "E": the name results carry
  OutputWhat what;
  int layer;       // the layer it belongs to, or -1 (E)
  ExprId expr;
} KernelEq;

// The outputs of a kernel of `kind`, in the order they are computed; `*count` of them, in
// an array the caller frees.
KernelEq *kernel_equations(const Network *net, KernelKind kind, int *count);

// The name of the function compiled for `kind` ("damc_rhs", "damc_eval"): the JIT, the
// object file and the emitted C all use it; and a one-line description of what it computes.
const char *kernel_name(KernelKind kind);
const char *kernel_summary(KernelKind kind);

#endif
