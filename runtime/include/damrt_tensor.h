// Tensors: dense, row-major (C order) arrays of float32 or float64 of rank 0 to 4.
//
// This is how weights, states, inputs and outputs travel between the .npy/.npz readers and
// writers, the compiled kernels and the command line. The data lives in one 64-byte aligned
// allocation, padded with zeros to a multiple of 64 bytes, so vectorised kernels may load
// whole cache lines at the tail. A tensor owns its data: damrt_tensor_free releases both, and
// it must only be given tensors this module (or a reader) returned.
//
// Element (i0, i1, ..., i{rank-1}) is at flat index ((i0 * shape[1] + i1) * shape[2] + ...);
// a rank-0 tensor holds one element; a shape containing 0 holds none.
#ifndef DAMRT_TENSOR_H
#define DAMRT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"

enum { DAMRT_MAX_RANK = 4, DAMRT_ALIGNMENT = 64 };

typedef enum { DAMRT_F32 = 1, DAMRT_F64 = 2 } DamrtDtype;

typedef struct {
  DamrtDtype dtype;
  int rank;                       // 0 .. DAMRT_MAX_RANK
  size_t shape[DAMRT_MAX_RANK];   // entries past `rank` are 1
  size_t count;                   // number of elements: the product of the shape
  void *data;                     // float * or double *, DAMRT_ALIGNMENT-aligned, never NULL
} DamrtTensor;

// Bytes per element: 4 or 8 (0 for a value that is not a DamrtDtype).
size_t damrt_dtype_size(DamrtDtype dtype);

// "float32" or "float64" ("invalid" otherwise).
const char *damrt_dtype_name(DamrtDtype dtype);

// A new zero-filled tensor of `dtype` with `rank` dimensions given by `shape` (`shape` may be
// NULL when `rank` is 0). Fails with DAMRT_E_ARGUMENT for an unknown dtype, a rank outside
// 0..4 or a shape whose byte size overflows, and DAMRT_E_NOMEM when allocation fails. The
// caller owns the result.
DamrtTensor *damrt_tensor_new(DamrtDtype dtype, int rank, const size_t *shape,
                              DamrtError *err);

// Frees `t` and its data; NULL is allowed.
void damrt_tensor_free(DamrtTensor *t);

// A new tensor of the same shape holding the values of `t` cast to `dtype` (a plain copy
// when the dtypes agree). float64 values beyond the float32 range become +-Inf, as a C cast
// does. The caller owns the result; fails only like damrt_tensor_new.
DamrtTensor *damrt_tensor_convert(const DamrtTensor *t, DamrtDtype dtype, DamrtError *err);

// Checks that `t` is well formed: a known dtype, a rank in 0..4, `count` equal to the
// product of the shape, and non-NULL data. Writers call it before touching the disk; it is
// public for tensors filled in by hand. Fails with DAMRT_E_ARGUMENT, the message starting
// with `label`.
DamrtStatus damrt_tensor_check(const DamrtTensor *t, const char *label, DamrtError *err);

// Whether `t` holds no element: some dimension is 0 (NumPy allows such arrays, and the
// readers return them; a model has no use for them, so the engine refuses them).
bool damrt_tensor_has_zero_size(const DamrtTensor *t);

// Converts the flat index `flat` (< t->count) to one index per dimension in `index`.
void damrt_tensor_unravel(const DamrtTensor *t, size_t flat, size_t index[DAMRT_MAX_RANK]);

// Finds the first NaN or infinite element in flat order. Returns true and stores its flat
// index in `*flat` when there is one; returns false when every element is finite.
bool damrt_tensor_find_nonfinite(const DamrtTensor *t, size_t *flat);

// Fails with DAMRT_E_VALUE when `t` holds a NaN or an infinity, with a message such as
//   tensor 'Xi' has NaN at [3, 17]
// where "tensor 'Xi'" is `label`, copied verbatim (the caller chooses how to name it).
DamrtStatus damrt_tensor_check_finite(const DamrtTensor *t, const char *label,
                                      DamrtError *err);

#endif
