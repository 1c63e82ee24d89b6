// Output files that are whole or absent: every file damc writes (results, traces, object
// files, generated sources, standard output) goes through a DamrtOutput.
//
//   DamrtOutput *out = damrt_output_open("w.npz", &err);     // or damrt_output_open_stdout
//   damrt_output_write(out, bytes, n, &err);                  // any number of times
//   damrt_output_printf(out, "%d\n", 42);  // or fprintf(damrt_output_stream(out), ...)
//   if (damrt_output_commit(out, &err) != DAMRT_OK) ... err.message ...
//
// A regular file (or a path that does not exist yet) is written to a new temporary file in
// the same directory, `TARGET.tmp.PID.N` (created with O_EXCL and the mode of the file it
// replaces, or 0666 minus the umask), and renamed over the target by damrt_output_commit,
// after a flush, an fsync and a close that are all checked. On any failure, or on
// damrt_output_abort, the temporary file is removed and the target is left as it was: a
// reader sees the old file or the whole new one, never a truncated mix.
//
// Targets that are not regular files are never replaced by one:
// - a symbolic link is followed (to its final target, even a dangling one): the temporary
//   file is created next to the link's target and renamed onto it, so the link stays a link;
// - a character or block device or a FIFO (/dev/null, /dev/full, /dev/stdout when it is a
//   pipe or a terminal) is written through, directly; its errors (ENOSPC from /dev/full,
//   EPIPE) are reported like any other. Nothing can be taken back there: abort only stops
//   writing;
// - a directory is refused: "'PATH': is a directory".
//
// Errors are sticky: the first failed write is remembered, later writes do nothing and
// return its status, and commit reports it (and removes the temporary file). Messages start
// with the quoted path and end with the system's reason:
//
//   'out/w.npz': cannot write: File too large
//   '/dev/full': cannot write: No space left on device
//   'missing/w.npz': cannot create a temporary file in its directory: No such file or directory
//
// Signals: the temporary files of outputs not yet committed are listed in a fixed-size
// table (the runtime's only global state) that damrt_output_remove_pending walks from a
// signal handler. damrt_output_install_signal_handlers installs such handlers.
//
// One DamrtOutput is used by one thread at a time; different outputs are independent.
#ifndef DAMRT_OUTPUT_H
#define DAMRT_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "damrt_error.h"

typedef struct DamrtOutput DamrtOutput;

// Opens an output to `path` as described above. Fails with DAMRT_E_IO (directory target,
// uncreatable temporary file, unopenable device, symbolic link loop) or DAMRT_E_NOMEM,
// leaving nothing behind. The caller must end a returned output with exactly one of
// damrt_output_commit, damrt_output_commit_partial and damrt_output_abort.
DamrtOutput *damrt_output_open(const char *path, DamrtError *err);

// An output writing through to the process's standard output (file descriptor 1, which it
// does not close). Its messages name it "standard output". Write errors (EPIPE, ENOSPC when
// redirected to /dev/full) are reported at the write that meets them and by commit.
DamrtOutput *damrt_output_open_stdout(DamrtError *err);

// Appends `n` bytes. Output is buffered; a failure may therefore show up in a later call
// (at the latest in commit). Returns the output's status: DAMRT_OK, or the first failure.
DamrtStatus damrt_output_write(DamrtOutput *out, const void *data, size_t n, DamrtError *err);

// Appends printf-formatted text. Returns the output's status, like damrt_output_write; the
// message of a failure is delivered by commit (or damrt_output_status).
__attribute__((format(printf, 2, 3))) DamrtStatus damrt_output_printf(DamrtOutput *out,
                                                                     const char *fmt, ...);

// A stdio stream writing into the output, for code that writes with fprintf (the trace);
// owned by the output, closed by commit and abort (never fclose it). Write errors on it
// become the output's error. NULL when it cannot be created (out of memory): the output
// then has that error too.
FILE *damrt_output_stream(DamrtOutput *out);

// The output's status: DAMRT_OK, or the first failure with its message copied to `err`.
DamrtStatus damrt_output_status(const DamrtOutput *out, DamrtError *err);

// The path as given to damrt_output_open ("-" for standard output).
const char *damrt_output_path(const DamrtOutput *out);

// Whether the output is written through to a device, a FIFO or standard output (true), or
// to a temporary file renamed at commit (false).
bool damrt_output_is_direct(const DamrtOutput *out);

// Flushes, syncs and closes the output and renames the temporary file over the target.
// On any failure (including an earlier write error) removes the temporary file and leaves
// the target as it was. Frees `out` either way.
DamrtStatus damrt_output_commit(DamrtOutput *out, DamrtError *err);

// Like damrt_output_commit, but keeps what was written under `TARGET.partial` (replacing
// any file of that name), for the trace of a run that failed; TARGET itself is untouched.
// On success stores in `*partial_path` (when not NULL) a malloc'ed copy of that name, which
// the caller frees. A written-through output (device, FIFO, stdout) is committed as it is,
// and `*partial_path` is its own path. Frees `out` either way.
DamrtStatus damrt_output_commit_partial(DamrtOutput *out, char **partial_path,
                                        DamrtError *err);

// Stops writing and removes the temporary file; the target is untouched (a written-through
// output keeps what reached it). Frees `out`. NULL is ignored.
void damrt_output_abort(DamrtOutput *out);

// Removes the temporary file of every output opened and not yet committed or aborted, in
// any thread. Async-signal-safe (it only reads a fixed table and calls unlink), so a signal
// handler may call it before the process dies.
void damrt_output_remove_pending(void);

// Installs handlers for SIGHUP, SIGINT, SIGQUIT, SIGTERM and SIGPIPE that call
// damrt_output_remove_pending and then let the signal kill the process as it would have
// (same exit status), and ignores SIGXFSZ, so that reaching a file size limit is a write
// error reported with its path (EFBIG) rather than a silent death. Signals whose disposition
// is not the default (ignored by the parent, or handled by the caller) are left alone.
// Fails with DAMRT_E_IO only if sigaction fails.
DamrtStatus damrt_output_install_signal_handlers(DamrtError *err);

#endif
