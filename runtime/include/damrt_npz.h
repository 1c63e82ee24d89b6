// NumPy .npz archives: zip files of .npy members, as numpy.savez (stored) and
// numpy.savez_compressed (deflated) write them.
//
// An archive is opened once, its keys listed, and members read by key; each member goes
// through the .npy reader (damrt_npy.h), so it accepts and refuses the same dtypes and
// shapes. As with numpy.load, the key of a member named "KEY.npy" is KEY, and a member
// named "KEY" without the suffix is the array KEY too when its content is a .npy file
// (its first bytes are the .npy magic); other members (text files, directories) are not
// arrays and are not listed. Two members giving the same key ("Xi" and "Xi.npy") make the
// archive ambiguous and it is refused. The zip layer is libzip: stored and deflated
// members, zip64 (numpy always writes zip64 extra fields), CRC checks. Encrypted members
// and other compression methods are refused. Messages name the archive (quoted, when it is
// a path) and the tensor, e.g. "'weights.npz': tensor 'Xi': truncated data: ...".
//
// Reading never exhausts memory on a hostile archive: damrt_npz_member_info reads a
// member's .npy header alone (inflating a few hundred bytes), so the caller can refuse a
// dtype or shape before anything is inflated or allocated; damrt_npz_read then allocates
// exactly what the header declares (after checking it against the size in the zip
// directory), inflates straight into the tensor, never past the declared size, and fails
// when the member holds fewer or more bytes than declared.
//
// An archive is read from a regular file only: libzip seeks to the directory at its end,
// so a pipe, a FIFO or a device is refused ("'/dev/stdin': a .npz archive must be a
// regular file (it needs seeking)").
//
// Writing stores or deflates one member per named tensor, through a DamrtOutput
// (damrt_output.h): written under a temporary name and renamed over the target only after
// the archive was completely written, synced and closed; a device or a symbolic link is
// written through instead of replaced.
//
// A DamrtNpz handle must not be used from two threads at once; separate handles are
// independent.
#ifndef DAMRT_NPZ_H
#define DAMRT_NPZ_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"
#include "damrt_npy.h"
#include "damrt_tensor.h"

typedef struct DamrtNpz DamrtNpz;

// Opens the archive at `path` and reads its directory. Fails with DAMRT_E_IO (cannot open,
// a directory), DAMRT_E_UNSUPPORTED (not a regular file), DAMRT_E_FORMAT (not a zip
// archive, truncated, inconsistent, two members with the same name or key) or
// DAMRT_E_NOMEM. Close the result with damrt_npz_close.
DamrtNpz *damrt_npz_open(const char *path, DamrtError *err);

// Like damrt_npz_open, over the `size` bytes at `data`, which must stay valid and unchanged
// until the handle is closed; messages start with `label`.
DamrtNpz *damrt_npz_open_memory(const void *data, size_t size, const char *label,
                                DamrtError *err);

// Closes `npz` and frees everything it owns, including the key strings; NULL is allowed.
void damrt_npz_close(DamrtNpz *npz);

// The number of tensors (array members) in the archive.
size_t damrt_npz_count(const DamrtNpz *npz);

// The key of tensor `i` (< damrt_npz_count), in archive order. The string is owned by `npz`.
const char *damrt_npz_key(const DamrtNpz *npz, size_t i);

// Whether the archive has a tensor named `key`.
bool damrt_npz_has(const DamrtNpz *npz, const char *key);

// Reads only the .npy header of the tensor named `key` into `*info` (dtype, order, shape,
// declared data size), inflating no more than the header; nothing is allocated for the
// data, which is not checked yet. Fails like damrt_npz_read for a missing key, a refused
// dtype or rank, or a malformed header.
DamrtStatus damrt_npz_member_info(DamrtNpz *npz, const char *key, DamrtNpyInfo *info,
                                  DamrtError *err);

// Reads the tensor named `key` into a new tensor of dtype `want`; the caller owns it. Fails
// with DAMRT_E_NOT_FOUND (the message lists the keys there are), DAMRT_E_FORMAT (corrupt
// member: bad CRC, bad deflate stream, fewer or more data bytes than the header declares),
// DAMRT_E_UNSUPPORTED or DAMRT_E_NOMEM. Allocates the declared size (and nothing else of
// that order), so call damrt_npz_member_info first to refuse a shape before that.
DamrtTensor *damrt_npz_read(DamrtNpz *npz, const char *key, DamrtDtype want,
                            DamrtError *err);
// damrt_npz_read with the checks `flags` (DamrtReadFlag, damrt_npy.h).
DamrtTensor *damrt_npz_read_flags(DamrtNpz *npz, const char *key, DamrtDtype want,
                                  unsigned flags, DamrtError *err);

// How a member is stored: in the tensor's own dtype, or (for counts and flags that travel
// as floats) as NumPy's int64 (the values must be whole) or bool (the values must be 0 or 1).
typedef enum { DAMRT_STORE_TENSOR, DAMRT_STORE_INT64, DAMRT_STORE_BOOL } DamrtStoreAs;

typedef struct {
  const char *key;             // the member is named key + ".npy"
  const DamrtTensor *tensor;
  DamrtStoreAs as;             // 0: the tensor's dtype
} DamrtNamedTensor;

typedef enum { DAMRT_NPZ_STORED, DAMRT_NPZ_DEFLATED } DamrtNpzCompression;

// Writes the `n` tensors of `items` to `path` as a .npz archive, in that order, replacing
// any existing file only on success. Fails with DAMRT_E_ARGUMENT (an empty or repeated key,
// a malformed tensor), DAMRT_E_IO (including a device's write errors: "'/dev/full': cannot
// write: No space left on device"), DAMRT_E_UNSUPPORTED (a pipe or a terminal as the
// target: a zip archive needs seeking) or DAMRT_E_NOMEM; nothing is left behind on
// failure. `n` may be 0 (an empty archive, as numpy.savez writes with no arrays).
DamrtStatus damrt_npz_write(const char *path, const DamrtNamedTensor *items, size_t n,
                            DamrtNpzCompression compression, DamrtError *err);

#endif
