// File handling shared by the readers and the output module: quoting paths for messages,
// opening inputs with one set of messages, and following symbolic links to the file they
// name. Internal to damrt.
#ifndef DAMRT_FILEIO_H
#define DAMRT_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "damrt_error.h"
#include "damrt_output.h"

// Room for the label of a path in messages (longer paths are cut).
enum { DAMRT_LABEL_SIZE = 512 };

// Writes `path` in quotes, "'PATH'", into `buf` (of DAMRT_LABEL_SIZE bytes) and returns it:
// the form in which every message names a file.
const char *damrt_path_label(const char *path, char buf[DAMRT_LABEL_SIZE]);

// Opens `path` for reading in binary mode; `label` is its quoted form for messages. Stores
// whether it is a regular file in `*is_regular` and, if so, its size in `*size` (else 0).
// Refuses a directory ("LABEL: is a directory"); other failures are "LABEL: cannot open:
// REASON". All with DAMRT_E_IO.
FILE *damrt_file_open_read(const char *path, const char *label, bool *is_regular,
                           size_t *size, DamrtError *err);

// Reads `n` bytes of the regular file `f` from byte `offset` on into `buf` (pread: `f`'s
// position is left unchanged) and stores in `*got` how many were read before the file ended
// (n unless it is shorter). A big read is split among up to damrt_thread_limit() threads,
// one contiguous part each: reading a file that is in the page cache into a fresh buffer
// costs mostly the page faults in which the kernel zeroes each page, and threads take those
// in parallel (a 268 MB weight: 21 ms on one thread, 13 ms on two). Fails with DAMRT_E_IO,
// "LABEL: read error: REASON".
DamrtStatus damrt_file_read_at(FILE *f, uint64_t offset, void *buf, size_t n, size_t *got,
                               const char *label, DamrtError *err);

// Follows `path` through symbolic links (of its last component, repeatedly, also to a
// target that does not exist) and stores the final path in `*target` (malloc'ed). When
// that path exists, fills `*st` (lstat) and sets `*exists`; otherwise clears `*exists`
// (whatever the reason: the caller's next step reports it). Fails only on a link loop
// (ELOOP), an unreadable link or memory, with a message starting with `label`.
DamrtStatus damrt_path_follow(const char *path, const char *label, char **target,
                              struct stat *st, bool *exists, DamrtError *err);

// For the .npz writer, which needs to seek back over what it wrote (libzip rewrites each
// member's local header once the member's size and CRC are known).

// Whether the output can seek (false for pipes and terminals).
bool damrt_output_can_seek(DamrtOutput *out);
// The position of the next byte written, counted from where the output started.
uint64_t damrt_output_tell(const DamrtOutput *out);
// Flushes and moves the write position to `offset` from the start; sticky like a write.
DamrtStatus damrt_output_seek(DamrtOutput *out, uint64_t offset, DamrtError *err);
// The quoted path (or "standard output") that starts the output's messages.
const char *damrt_output_label(const DamrtOutput *out);

#endif
