// The .npy reader over an abstract byte stream, and the .npy header encoder: the parts of
// the .npy module the .npz module reuses for zip members. Internal to damrt.
#ifndef DAMRT_NPY_STREAM_H
#define DAMRT_NPY_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "damrt_error.h"
#include "damrt_npy.h"
#include "damrt_tensor.h"

// A source of bytes: a file, a memory buffer or a zip member.
typedef struct {
  // Reads up to `n` bytes into `buf` and stores how many in `*got`, 0 only at the end of the
  // input; or fails, setting `err` with a message starting with `label`.
  DamrtStatus (*read)(void *ctx, void *buf, size_t n, size_t *got, const char *label,
                      DamrtError *err);
  void *ctx;
  bool has_size;  // whether `size` is known, which lets the reader check lengths up front
  size_t size;    // the total number of bytes the source holds
  unsigned flags; // DamrtReadFlag: checks made while converting (0 when not set)
  // The regular file that `read` reads from its start, or NULL: data that need no
  // conversion are then read from it with damrt_file_read_at (in parallel).
  FILE *file;
} DamrtNpySource;

// A parsed header: what it declares, and how to decode the data after it.
typedef struct {
  DamrtNpyInfo info;
  bool is_big_endian;
  size_t consumed;  // bytes of prelude and header read from the source
} DamrtNpyHeader;

// Reads the prelude and the header from `src` and validates them (see damrt_npy.h), leaving
// the source at the first data byte. Messages start with `label`.
DamrtStatus damrt_npy_load_header(DamrtNpySource *src, DamrtNpyHeader *h, const char *label,
                                  DamrtError *err);

// Reads the data that `h` (from damrt_npy_load_header on `src`) declares into a new tensor
// of dtype `want`, consuming the source to its end: exactly `h->info.data_size` bytes must
// be present (fewer or more is an error, detected before allocating when the source's size
// is known). Never allocates more than the declared shape needs, and reads the data straight
// into the tensor (through a small buffer when the dtype or the order differ).
DamrtTensor *damrt_npy_load_data(DamrtNpySource *src, const DamrtNpyHeader *h,
                                 DamrtDtype want, const char *label, DamrtError *err);

// Both: one .npy array from `src` into a new tensor of dtype `want`.
DamrtTensor *damrt_npy_load(DamrtNpySource *src, DamrtDtype want, const char *label,
                            DamrtError *err);

enum { DAMRT_NPY_HEADER_MAX = 256 };

// Writes into `buf` the .npy header (magic, version 1.0, dictionary, padding) that
// numpy.save writes for a C-ordered array of `t`'s dtype and shape, and returns its length,
// a multiple of 64. `t` must pass damrt_tensor_check.
size_t damrt_npy_header(const DamrtTensor *t, char buf[DAMRT_NPY_HEADER_MAX]);
// The same with the dtype string `descr` ("<i8", "|b1") instead of the tensor's.
size_t damrt_npy_header_descr(const DamrtTensor *t, const char *descr,
                              char buf[DAMRT_NPY_HEADER_MAX]);

// The 6 bytes every .npy file begins with.
static const char NPY_MAGIC[6] = "\x93NUMPY";

// Whether this machine stores numbers most significant byte first.
static inline bool npy_host_is_big_endian(void) {
  const uint16_t probe = 1;
  uint8_t first;
  memcpy(&first, &probe, 1);
  return first == 0;
}

#endif
