// What the command line writes: every file and standard output through the runtime's
// outputs (damrt_output.h: whole or absent, devices and links written through, write errors
// reported with the path and the system's reason), and never a file that is also one of the
// command's inputs or another of its outputs.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damrt_file.h"
#include "damrt_output.h"
#include "driver/driver.h"
#include "support/common.h"

bool output_write(const char *path, const void *data, size_t len, StrBuf *err) {
  DamrtError derr = {0};
  DamrtOutput *out = path ? damrt_output_open(path, &derr) : damrt_output_open_stdout(&derr);
  // Write errors are sticky: commit reports the first (and removes the temporary file).
  bool ok = out && (damrt_output_write(out, data, len, &derr), damrt_output_commit(out, &derr) == DAMRT_OK);
  if (!ok) sb_printf(err, "%s\n", derr.message);
  return ok;
}

bool output_write_pair(const char *path1, const StrBuf *data1, const char *path2,
                       const StrBuf *data2, StrBuf *err) {
  DamrtError derr = {0};
  DamrtOutput *a = damrt_output_open(path1, &derr);
  DamrtOutput *b = a ? damrt_output_open(path2, &derr) : NULL;
  bool ok = a && b;
  if (ok) {
    // Both are written before either is committed, so a failure leaves neither.
    damrt_output_write(a, data1->data, data1->len, &derr);
    damrt_output_write(b, data2->data, data2->len, &derr);
    ok = damrt_output_status(a, &derr) == DAMRT_OK && damrt_output_status(b, &derr) == DAMRT_OK;
  }
  if (ok) {
    ok = damrt_output_commit(b, &derr) == DAMRT_OK;
    b = NULL;
    if (ok) ok = damrt_output_commit(a, &derr) == DAMRT_OK;
    else damrt_output_abort(a);
    a = NULL;
  }
  if (a) damrt_output_abort(a);
  if (b) damrt_output_abort(b);
  if (!ok) sb_printf(err, "%s\n", derr.message);
  return ok;
}

bool output_check_dirs(const char *const *outputs, int noutputs, StrBuf *err) {
  for (int i = 0; i < noutputs; i++) {
    if (!strcmp(outputs[i], "-")) continue;  // standard output
    const char *slash = strrchr(outputs[i], '/');
    char *dir = slash ? xstrdup(outputs[i]) : xstrdup(".");
    if (slash) dir[slash == outputs[i] ? 1 : slash - outputs[i]] = '\0';
    bool ok = access(dir, W_OK | X_OK) == 0;
    if (!ok) sb_printf(err, "%s: cannot write into '%s': %s\n", outputs[i], dir, strerror(errno));
    free(dir);
    if (!ok) return false;
  }
  return true;
}

bool output_check_paths(const char *const *inputs, int ninputs, const char *const *outputs,
                        int noutputs, StrBuf *err) {
  for (int i = 0; i < noutputs; i++) {
    for (int j = 0; j < ninputs; j++)
      if (damrt_same_file(outputs[i], inputs[j])) {
        sb_printf(err, "'%s' is an output and also an input ('%s'): writing it would destroy "
                  "what is read\n", outputs[i], inputs[j]);
        return false;
      }
    for (int j = 0; j < i; j++)
      if (damrt_same_file(outputs[i], outputs[j])) {
        sb_printf(err, "'%s' and '%s' are the same file: give each output its own name\n",
                  outputs[j], outputs[i]);
        return false;
      }
  }
  return true;
}
