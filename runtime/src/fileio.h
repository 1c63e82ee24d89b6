// File handling shared by the .npy and .npz modules: opening an input with a clear message,
// and replacing an output atomically.
//
// An output is written to a fresh temporary file next to the target (same directory, hence
// same file system) and renamed over the target only after it was completely written and
// synced, so readers see either the old file or the new one, never a truncated mix. The
// temporary name is `<target>.tmp.<pid>.<n>`, created with O_EXCL (so concurrent writers,
// even threads of one process, never share one) and with mode 0666 minus the umask, like
// any new file. Internal to damrt.
#ifndef DAMRT_FILEIO_H
#define DAMRT_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "damrt_error.h"

// Opens `path` for reading in binary mode. When it is a regular file, sets `*has_size` and
// stores its size in `*size`; otherwise clears `*has_size`. Refuses a directory. Fails with
// DAMRT_E_IO and a message naming `path` and the system's reason.
FILE *damrt_file_open_read(const char *path, bool *has_size, size_t *size, DamrtError *err);

typedef struct {
  const char *target;  // borrowed from the caller
  char *temp;          // owned; the temporary file's path
} DamrtAtomicFile;

// Creates an empty temporary file for `target` and fills `f`. On success the caller must end
// with exactly one of damrt_atomic_commit and damrt_atomic_abort. Fails with DAMRT_E_IO or
// DAMRT_E_NOMEM, leaving nothing behind.
DamrtStatus damrt_atomic_begin(DamrtAtomicFile *f, const char *target, DamrtError *err);

// Syncs the temporary file (which the caller has written and closed) and renames it over the
// target. On failure the temporary file is removed and the target is untouched. Either way,
// `f` is finished.
DamrtStatus damrt_atomic_commit(DamrtAtomicFile *f, DamrtError *err);

// Removes the temporary file; the target is untouched.
void damrt_atomic_abort(DamrtAtomicFile *f);

#endif
