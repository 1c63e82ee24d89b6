// NumPy .npz archives: zip files of .npy members, as numpy.savez (stored) and
// numpy.savez_compressed (deflated) write them.
//
// An archive is opened once, its keys listed, and members read by key; each member goes
// through the .npy reader (damrt_npy.h), so it accepts and refuses the same dtypes and
// shapes. The key of a member is its name without the ".npy" suffix; members whose names do
// not end in ".npy" are not tensors and are skipped, as are directories. The zip layer is
// libzip: stored and deflated members, zip64 (numpy always writes zip64 extra fields),
// CRC checks. Encrypted members and other compression methods are refused. Messages name
// the archive and the tensor, e.g. "weights.npz: tensor 'Xi': truncated data: ...".
//
// Writing stores or deflates one member per named tensor and, like damrt_npy_write, goes
// through a temporary file in the target's directory that is renamed over the target only
// after the archive was completely written.
//
// A DamrtNpz handle must not be used from two threads at once; separate handles are
// independent.
#ifndef DAMRT_NPZ_H
#define DAMRT_NPZ_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"
#include "damrt_tensor.h"

typedef struct DamrtNpz DamrtNpz;

// Opens the archive at `path` and reads its directory. Fails with DAMRT_E_IO (cannot open),
// DAMRT_E_FORMAT (not a zip archive, truncated, inconsistent, two members with the same
// name) or DAMRT_E_NOMEM. Close the result with damrt_npz_close.
DamrtNpz *damrt_npz_open(const char *path, DamrtError *err);

// Like damrt_npz_open, over the `size` bytes at `data`, which must stay valid and unchanged
// until the handle is closed; messages start with `label`.
DamrtNpz *damrt_npz_open_memory(const void *data, size_t size, const char *label,
                                DamrtError *err);

// Closes `npz` and frees everything it owns, including the key strings; NULL is allowed.
void damrt_npz_close(DamrtNpz *npz);

// The number of tensors (.npy members) in the archive.
size_t damrt_npz_count(const DamrtNpz *npz);

// The key of tensor `i` (< damrt_npz_count), in archive order. The string is owned by `npz`.
const char *damrt_npz_key(const DamrtNpz *npz, size_t i);

// Whether the archive has a tensor named `key`.
bool damrt_npz_has(const DamrtNpz *npz, const char *key);

// Reads the tensor named `key` into a new tensor of dtype `want`; the caller owns it. Fails
// with DAMRT_E_NOT_FOUND (the message lists the keys there are), DAMRT_E_FORMAT (corrupt
// member: bad CRC, bad deflate stream, truncated .npy), DAMRT_E_UNSUPPORTED or DAMRT_E_NOMEM.
DamrtTensor *damrt_npz_read(DamrtNpz *npz, const char *key, DamrtDtype want,
                            DamrtError *err);

typedef struct {
  const char *key;             // the member is named key + ".npy"
  const DamrtTensor *tensor;
} DamrtNamedTensor;

typedef enum { DAMRT_NPZ_STORED, DAMRT_NPZ_DEFLATED } DamrtNpzCompression;

// Writes the `n` tensors of `items` to `path` as a .npz archive, in that order, replacing
// any existing file only on success. Fails with DAMRT_E_ARGUMENT (an empty or repeated key,
// a malformed tensor), DAMRT_E_IO or DAMRT_E_NOMEM; the temporary file is removed on
// failure. `n` may be 0 (an empty archive, as numpy.savez writes with no arrays).
DamrtStatus damrt_npz_write(const char *path, const DamrtNamedTensor *items, size_t n,
                            DamrtNpzCompression compression, DamrtError *err);

#endif
