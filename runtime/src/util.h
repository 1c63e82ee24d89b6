// Small helpers shared by the runtime's modules: checked shape arithmetic, bounded text
// formatting for messages, and messages for system errors. Internal to damrt; not installed
// with the public headers.
#ifndef DAMRT_UTIL_H
#define DAMRT_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"
#include "damrt_tensor.h"

// Stores the product of the `rank` entries of `shape` in `*count` and returns true when
// `count * elem_size` bytes, rounded up to the tensor alignment, fit in a size_t; returns
// false when they do not. A zero entry makes the count 0, but the other entries must still
// multiply without overflow: NumPy refuses such shapes too, so they only come from corrupt
// headers.
bool damrt_shape_count(int rank, const size_t *shape, size_t elem_size, size_t *count);

// Appends printf-formatted text to the NUL-terminated string in `buf` (of `cap` bytes), whose
// current length is `*used`; text past the end is dropped, and `buf` stays NUL-terminated.
__attribute__((format(printf, 4, 5))) void damrt_appendf(char *buf, size_t cap,
                                                         size_t *used, const char *fmt, ...);

// Sets `err` to DAMRT_E_IO with the printf-formatted message followed by ": " and the
// system's description of `errnum` (from strerror_r, which unlike strerror is thread-safe);
// returns DAMRT_E_IO.
__attribute__((format(printf, 3, 4))) DamrtStatus damrt_error_errno(DamrtError *err,
                                                                   int errnum,
                                                                   const char *fmt, ...);

// damrt_tensor_new, but with the elements left uninitialised when `zero_data` is false (the
// padding after them is always zeroed), for readers that fill every element or fail.
DamrtTensor *damrt_tensor_alloc(DamrtDtype dtype, int rank, const size_t *shape,
                                bool zero_data, DamrtError *err);

// Writes `shape` as NumPy prints it, "()", "(3,)" or "(2, 3)", into `buf` and returns `buf`.
const char *damrt_shape_format(char *buf, size_t cap, int rank, const size_t *shape);

// How many threads damc's runtime may use: the limit set by damrt_set_threads, else the
// number of processors online (read once), at least 1 and at most 64.
int damrt_thread_limit(void);
void damrt_thread_limit_set(int n);

// Bytes enough for damrt_shape_format of any shape of rank <= DAMRT_MAX_RANK.
enum { DAMRT_SHAPE_TEXT_SIZE = 96 };

#endif
