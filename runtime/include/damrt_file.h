// Reading whole text files with a size limit, and telling whether two paths name one file.
//
// Every reader of the runtime (damrt_npy_read, damrt_npz_open, damrt_read_text_file) opens
// its path the same way and refuses what it cannot read with the same messages, which
// start with the quoted path:
//
//   'models': is a directory
//   'nope.dam': cannot open: No such file or directory
//   '/dev/zero' is larger than the limit of 1048576 bytes
//   '/dev/stdin': a .npz archive must be a regular file (it needs seeking)
#ifndef DAMRT_FILE_H
#define DAMRT_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "damrt_error.h"

// Reads the whole file at `path` (a regular file, a FIFO, a device: anything but a
// directory) into a new buffer, stored in `*text` with a NUL after its `*size` bytes; the
// caller frees it. Reads at most `max_bytes`: a larger file (a regular one is measured
// before reading; /dev/zero is read up to the limit) fails with DAMRT_E_UNSUPPORTED and
// "'PATH' is larger than the limit of N bytes". Other failures are DAMRT_E_IO ("is a
// directory", "cannot open: REASON", "cannot read: REASON") or DAMRT_E_NOMEM. On failure
// `*text` is NULL. The text may contain NUL bytes; the caller decides what it accepts.
DamrtStatus damrt_read_text_file(const char *path, size_t max_bytes, char **text,
                                 size_t *size, DamrtError *err);

// Whether `a` and `b` name the same file, so that a command can refuse an output that
// would overwrite one of its inputs or another output. When both exist: the same device
// and inode after following symbolic links (so hard links, symbolic links and relative
// versus absolute spellings all count), except for character devices (/dev/null, a
// terminal), which may be named twice. When neither exists: the same path once symbolic
// links, ".", ".." and the working directory are resolved. When one exists and the other
// does not: false.
bool damrt_same_file(const char *a, const char *b);

#endif
