// NumPy .npy files: reading any numeric array into a tensor, and writing a tensor.
//
// Data already in the requested float type, byte order and C order is read straight into the
// tensor's (aligned) buffer; anything else is converted in one pass through a small buffer,
// with loops specialised for the common cases (float64 <-> float32, byte-swapped floats), so
// that reading never holds more than the result and that buffer.
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
// The header can be read on its own (damrt_npy_read_info), so that a caller can refuse a
// dtype or shape before anything is allocated for the data.
//
// Writing produces what numpy.save produces for a C-ordered array of the tensor's dtype
// (version 1.0, little-endian on little-endian machines, header padded to 64 bytes), through
// a DamrtOutput (damrt_output.h): a failure never leaves a truncated or half-replaced file
// behind, and a device or a symbolic link is written through rather than replaced.
//
// Messages about a file start with its quoted path: 'x.npy': truncated data: ...
#ifndef DAMRT_NPY_H
#define DAMRT_NPY_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"
#include "damrt_tensor.h"

// What a .npy header declares.
typedef struct {
  char descr[64];          // the dtype as written, e.g. "<f8", "|b1", ">i2"
  char kind;               // 'f' float, 'i' signed integer, 'u' unsigned integer, 'b' bool
  size_t itemsize;         // bytes per element in the file
  bool fortran_order;      // the data is stored in Fortran order (read into C order)
  int rank;                // 0 .. DAMRT_MAX_RANK
  size_t shape[DAMRT_MAX_RANK];  // entries past `rank` are 1
  size_t count;            // elements: the product of the shape (0 when a dimension is 0)
  size_t data_size;        // bytes of data the header declares: count * itemsize
} DamrtNpyInfo;

// Reads only the header of the .npy file at `path` into `*info`: the dtype, order and
// shape the file declares, validated as by damrt_npy_read (refused dtypes and ranks fail
// here already). Nothing is allocated for the data and the data is not checked (a
// truncated file passes). Reading a FIFO or a pipe consumes it: read those with
// damrt_npy_read alone.
DamrtStatus damrt_npy_read_info(const char *path, DamrtNpyInfo *info, DamrtError *err);

// Like damrt_npy_read_info, from the `size` bytes at `data`; messages start with `label`.
DamrtStatus damrt_npy_parse_info(const void *data, size_t size, DamrtNpyInfo *info,
                                 const char *label, DamrtError *err);

// Reads the .npy file at `path` (a regular file, a FIFO or a device; not a directory) into
// a new tensor of dtype `want`. Messages start with the quoted path. Fails with DAMRT_E_IO
// (cannot open or read, a directory), DAMRT_E_FORMAT (not a valid .npy, truncated, extra
// bytes), DAMRT_E_UNSUPPORTED (dtype or rank refused) or DAMRT_E_NOMEM. The caller owns the
// result. From a FIFO or a pipe, whose size is unknown, the tensor is allocated for the
// declared shape before the data arrives (never more than that).
DamrtTensor *damrt_npy_read(const char *path, DamrtDtype want, DamrtError *err);

// What a reader checks while it converts, beyond the format (damrt_npy_read_flags,
// damrt_npz_read_flags).
typedef enum {
  // Float data read as float32 must fit it: a float64 value beyond float32's range, an
  // infinity or a NaN is refused with DAMRT_E_VALUE, the message naming its index, e.g.
  // "'w.npy': 1e+39 at [3, 4] does not fit float32 (largest 3.40282347e+38)" or "'w.npy' has
  // -Inf at [0, 2]", instead of becoming an infinity. The data is converted as it is read: no
  // float64 copy is made.
  DAMRT_READ_F32_RANGE = 1u << 0,
} DamrtReadFlag;

// damrt_npy_read with the checks `flags` (DamrtReadFlag values or'ed).
DamrtTensor *damrt_npy_read_flags(const char *path, DamrtDtype want, unsigned flags,
                                  DamrtError *err);

// Like damrt_npy_read, from the `size` bytes at `data` (which are only read during the call);
// messages start with `label`.
DamrtTensor *damrt_npy_parse(const void *data, size_t size, DamrtDtype want,
                             const char *label, DamrtError *err);

// Writes `t` to `path` as a .npy file through damrt_output_open, replacing any existing
// file only on success. Fails with DAMRT_E_ARGUMENT for a malformed tensor and DAMRT_E_IO
// when creating, writing, syncing or renaming fails; nothing is left behind on failure.
DamrtStatus damrt_npy_write(const char *path, const DamrtTensor *t, DamrtError *err);

#endif
