// Network derivation: from a checked Model to the equations of the network, symbolically.
//
// For each layer A it derives the activation g_A = dL_A/dx_A, the Hessian H_A with its
// structure (diagonal, diagonal plus low rank, or dense) and the Hessian-vector product,
// and the Legendre term Lambda_A = x_A . g_A - L_A. For the network it builds the energy of
// docs/theory.md eq. (1.1) (every synapse, energy term and input; 1/2 on self-synapses), the
// currents u_A = I_A - dE_int/dg_A (a synapse gives W @ g(B) and W' @ g(A); directed
// synapses add to u without energy) and the dynamics tau_A dx_A/dt = u_A - x_A.
//
// Interaction terms are expressions of activation leaves g(A) (EX_ACT), so the equations
// read as in the papers and each g is computed once; the `_x` forms substitute g_A(x_A)
// for every leaf and are functions of the states alone (for checks and finite differences).
//
// Elimination (docs/theory.md §2): a layer with tau = 0, or one named with --eliminate, is
// solved instantly, x_h = u_h. The reduced model has the energy
// E_eff = sum_{A != h} (Lambda_A - I_A . g_A) + E_int(g_h = 0) - L_h(u_h) (plus g_h . (D g_b)
// for a directed synapse D : b -> h, so that it is the E the kernels compute at x_h = u_h,
// docs/theory.md §2.3; such a model has no energy function) and the currents of the other
// layers with g_h = g_h(u_h). It requires u_h not to depend on g(h). In the
// reduced model, the activation of a remaining layer whose g is its state (g(v) = v) is
// written as the state, so Model B reads as the modern Hopfield network.
#ifndef DAMC_NETWORK_H
#define DAMC_NETWORK_H

#include <stdbool.h>
#include <stdint.h>

#include "support/session.h"
#include "sym/diff.h"
#include "sym/expr.h"
#include "sym/expr_print.h"

// The checked model of the front end (front/ast.h): read by the derivation only.
typedef struct Model Model;

// One layer's equations, and the facts about it that later stages need as data.
typedef struct {
  const char *name;  // the layer's name
  int dim;           // the dim that sizes it (index into Network.dims)
  ExprId state;      // leaf x_A
  ExprId act;        // leaf g(A), as used in interaction terms
  ExprId input;      // leaf I_A, or 0 without `input`
  ExprId dir;        // leaf d_A, the direction of Hessian-vector products
  ExprId L;          // L_A(x_A), the Lagrangian
  ExprId g;          // dL_A/dx_A, the activation
  StructJac hessian; // H_A = dg_A/dx_A, the Hessian of L_A, with its structure
  ExprId hvp;        // H_A d_A, the Hessian-vector product
  ExprId legendre;   // Lambda_A = x_A . g_A - L_A, the Legendre transform of L_A
  ExprId tau;        // scalar expression (constants and params)
  ExprId u;          // the current, in activation leaves and inputs
  ExprId u_x;        // the current with g = g(x) substituted
  // (u_A - x_A) / tau_A in activation leaves (what the kernels compute, after g); 0 for an
  // eliminated layer, which does not move on its own.
  ExprId dxdt;
  ExprId dxdt_x;       // the same with g = g(x) substituted (a function of the states)
  ExprId energy_part;  // Lambda_A - I_A . g_A: the layer's own part of E
  // Eliminated layers: L_A(x_A + d_A) - L_A(x_A), the change of the Lagrangian when the
  // state moves by d_A, in a form that keeps its precision (docs/theory.md §5.3): a sum of
  // elementwise terms as the sum of their differences, lse(a) as lse(a(x + d) - lse(a(x))),
  // constant factors and sums of such terms term by term; any other part as the difference
  // of its two values. 0 for integrated layers.
  ExprId flip;
  bool eliminated;     // tau = 0 or --eliminate: x_A = u_A at every instant
  bool binary;         // g_A = sign(x_A): the discrete single-unit rule applies
  bool has_input;      // declared with `input`
} LayerEq;

// The model's params, weights and dims as data, for the stages after derivation (which
// never read the syntax tree).
typedef struct {
  const char *name;
  double value;  // the default
  bool has_default;
} NetParam;

typedef struct {
  const char *name;
  int rank;      // 1 or 2
  int dims[2];   // indices into Network.dims
  bool symmetric;     // declared `symmetric`, or a self-synapse
  bool self_synapse;  // the weight of a synapse from a layer to itself
} NetWeight;

typedef struct {
  const char *name;  // NULL for a size written as a literal
  int64_t size;      // as declared; -1 when bound from a weight's shape
} NetDim;

// How a unit of an integrated layer moves an eliminated one (the fast single-unit rule,
// docs/theory.md §5.3): u_hidden depends on g(layer) as W @ g(layer) (`transposed` false:
// unit i moves x_hidden along column i of weight W) or W' @ g(layer) (row i).
typedef struct {
  int hidden, layer, weight;
  bool transposed;
} NetCoupling;

typedef struct {
  const Model *model;  // the checked model (derivation and explain only)
  const char *name;    // the model's name
  ExprPool *pool;
  ExprNames names;
  LayerEq *layers;  // one per model layer
  int nlayers;
  NetParam *params;
  int nparams;
  NetWeight *weights;
  int nweights;
  NetDim *dims;
  int ndims;
  ExprId energy_int;  // interaction energy: -synapse terms + energy terms - I . g
  ExprId energy;      // E, in activation leaves
  ExprId energy_x;    // E with g = g(x) substituted
  bool has_directed;  // a directed synapse: no guaranteed Lyapunov function
  // The reduced model, when some layer is eliminated: its energy and the fixed-point
  // update x_A <- u_A of each remaining layer, in leaves of the remaining layers.
  bool reduced;
  ExprId reduced_energy;
  ExprId reduced_energy_int;  // its coupling part: E_int(g_h = 0) - L_h(u_h)
  ExprId *reduced_u;  // per layer; 0 for eliminated layers
  // The same in states alone (g = g(x) for the remaining layers), and the reduced
  // dynamics (u - x) / tau of each remaining layer: what a run integrates.
  ExprId reduced_energy_x;
  ExprId *reduced_dxdt;  // per layer; 0 for eliminated layers
  // The fast single-unit rule (docs/theory.md §5.3) applies when `async_fast`: every
  // integrated layer is binary, no directed synapse, the energy couples integrated layers
  // only through eliminated ones (E_int with every g_h = 0 is a constant), and every
  // eliminated layer's current is a weight (or its transpose) times the activations, listed
  // in `couplings`. Flipping unit i of layer A by D then changes E by
  // -sum_h flip_h(x_h, D W[:, i]) - D I_A,i. Otherwise `async_slow_why` says why not.
  bool async_fast;
  const char *async_slow_why;
  NetCoupling *couplings;
  int ncouplings;
} Network;

// Derives the network of `m`. `eliminate` lists extra layers to eliminate (by index, or
// NULL). Returns NULL after reporting errors (e.g. an eliminated layer whose current
// depends on its own activation). The network lives until network_free.
Network *network_derive(Session *s, const Model *m, const int *eliminate, int neliminate);
void network_free(Network *net);

// Prints what was derived (damc explain): per layer L, g, H with its structure and the
// Hessian-vector product, Lambda; the energy; the currents; the dynamics; and the reduced
// model when a layer is eliminated.
void network_explain(StrBuf *out, const Network *net, PrintStyle style);

#endif
