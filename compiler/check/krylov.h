// Matrix-free Krylov methods for the fixed points of damc check (docs/theory.md §4.4): the
// operators are callbacks y = A x on vectors of length d, so that a network of any size is
// analysed in O(d m) memory (m the Krylov dimension) and never forms a d x d matrix.
//
//   * krylov_gmres: GMRES(m) with restarts (Saad & Schultz, "GMRES: a generalized minimal
//     residual algorithm for solving nonsymmetric linear systems", 1986), for the Newton
//     steps on r(x) = W g(x) + I - x, whose Jacobian W H - I is not symmetric;
//   * krylov_top_eig: the largest eigenvalue of W H, which is self-adjoint in the
//     semi-inner product <x, y>_H = x'H y when W and H are symmetric and H is positive
//     semidefinite: Lanczos (Paige, 1972) in that product with full reorthogonalisation. Its
//     nonzero spectrum is that of B'WB for any factor H = BB' (docs/theory.md §4.4.2), so it
//     decides stability without a square root of H.
// Vectors are float64. Errors: none; a breakdown is reported through the return values.
#ifndef DAMC_CHECK_KRYLOV_H
#define DAMC_CHECK_KRYLOV_H

#include <stdbool.h>
#include <stdint.h>

// y = A x, both of length d.
typedef void (*KrylovOp)(void *user, const double *x, double *y);

// Solves A x = b from x = 0 with GMRES(m), restarted, until |b - A x| <= tol |b| or
// `max_products` products with A. Returns the relative residual |b - A x| / |b| reached
// (recomputed with one more product; 0 when b = 0).
double krylov_gmres(KrylovOp a, void *user, int64_t d, const double *b, double *x, int m,
                    int max_products, double tol);

typedef struct {
  double top;     // the largest eigenvalue of W H on the range of H (0 when H = 0)
  double bound;   // the Lanczos error bound |beta_j s_j| of that Ritz value
  int steps;      // Lanczos steps taken
  bool h_zero;    // H start = 0: for a random start, H = 0 (almost surely), an empty range
} KrylovTop;

// The largest eigenvalue of W H (`h`: x -> H x, `w`: y -> W y, both symmetric, H positive
// semidefinite) by at most `m` Lanczos steps in the H product from `start` (random, so that
// it has a component along every eigenvector), stopping when the Ritz value's error bound
// is below tol (1 + |top|).
KrylovTop krylov_top_eig(KrylovOp h, KrylovOp w, void *user, int64_t d, int m, double tol,
                         const double *start);

#endif
