// libFuzzer target for the .npz reader: opens arbitrary bytes as an archive and reads every
// tensor it lists (and one key it does not have). As for fuzz_npy.c, every outcome must be
// a well-formed tensor or an error naming the input, never a crash or a leak.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "damrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LABEL[] = "fuzz.npz";

static void check_error(const DamrtError *err) {
  if (err->code == DAMRT_OK || strncmp(err->message, LABEL, strlen(LABEL)) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  DamrtError err = {DAMRT_OK, ""};
  DamrtNpz *npz = damrt_npz_open_memory(data, size, LABEL, &err);
  if (!npz) {
    check_error(&err);
    return 0;
  }
  for (size_t i = 0; i < damrt_npz_count(npz); i++) {
    DamrtTensor *t = damrt_npz_read(npz, damrt_npz_key(npz, i), DAMRT_F64, &err);
    if (t && damrt_tensor_check(t, LABEL, &err) != DAMRT_OK) abort();
    if (!t) check_error(&err);
    damrt_tensor_free(t);
  }
  if (damrt_npz_read(npz, "no such key\x01", DAMRT_F32, &err)) abort();
  check_error(&err);
  damrt_npz_close(npz);
  return 0;
}
