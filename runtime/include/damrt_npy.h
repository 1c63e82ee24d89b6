// NumPy .npy files: reading any numeric array into a tensor, and writing a tensor.
//
// Reading accepts format versions 1.0, 2.0 and 3.0, C or Fortran order (Fortran order is
// transposed into C order while reading), rank 0 to 4, and the dtypes float16/32/64,
// int8/16/32/64, uint8/16/32/64 and bool, in either byte order. Every element is cast to the
// float type the caller asks for, exactly as NumPy's astype does (so bool masks read as 0 and
// 1, and int64 values above 2^53 round). Everything else is refused with a message saying
// what was found: complex, object, string, raw-bytes, datetime, timedelta, extended-precision,
// structured and subarray dtypes; rank 5 and more; a header that does not parse; a data
// section that is truncated or followed by extra bytes. The reader validates every field
// before using it, never reads outside the input and never allocates more than the declared
// shape needs (and, when the input's size is known, not before checking that the data is
// really there).
//
// Writing produces what numpy.save produces for a C-ordered array of the tensor's dtype
// (version 1.0, little-endian on little-endian machines, header padded to 64 bytes), through
// a temporary file renamed over the target only once everything was written, so a failure
// never leaves a truncated or half-replaced file behind.
#ifndef DAMRT_NPY_H
#define DAMRT_NPY_H

#include <stddef.h>

#include "damrt_error.h"
#include "damrt_tensor.h"

// Reads the .npy file at `path` into a new tensor of dtype `want`. Messages start with
// `path`. Fails with DAMRT_E_IO (cannot open or read), DAMRT_E_FORMAT (not a valid .npy,
// truncated), DAMRT_E_UNSUPPORTED (dtype or rank refused) or DAMRT_E_NOMEM. The caller owns
// the result.
DamrtTensor *damrt_npy_read(const char *path, DamrtDtype want, DamrtError *err);

// Like damrt_npy_read, from the `size` bytes at `data` (which are only read during the call);
// messages start with `label`.
DamrtTensor *damrt_npy_parse(const void *data, size_t size, DamrtDtype want,
                             const char *label, DamrtError *err);

// Writes `t` to `path` as a .npy file, replacing any existing file only on success. Fails
// with DAMRT_E_ARGUMENT for a malformed tensor and DAMRT_E_IO when creating, writing or
// renaming fails; the temporary file is removed on failure.
DamrtStatus damrt_npy_write(const char *path, const DamrtTensor *t, DamrtError *err);

#endif
