// libFuzzer target for the .npz reader: opens arbitrary bytes as an archive, reads the
// header of every tensor it lists and then the tensor (and one key it does not have). As
// for fuzz_npy.c, every outcome must be a well-formed tensor or an error naming the input,
// never a crash or a leak, and a tensor must have the shape its header declared.
//
// Like the engine, it looks at a member's header before reading it and skips tensors
// declaring more than READ_LIMIT bytes: a zip directory may claim any uncompressed size,
// and a reader trusting both it and the .npy header allocates what they declare (never
// more) before finding the data missing, which libFuzzer's malloc limit would report.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "damrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LABEL[] = "fuzz.npz";

enum { READ_LIMIT = 64 << 20 };

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
    const char *key = damrt_npz_key(npz, i);
    if (!damrt_npz_has(npz, key)) abort();
    DamrtNpyInfo info;
    bool has_info = damrt_npz_member_info(npz, key, &info, &err) == DAMRT_OK;
    if (!has_info) check_error(&err);
    if (has_info && info.data_size > READ_LIMIT) continue;
    DamrtTensor *t = damrt_npz_read(npz, key, DAMRT_F64, &err);
    if (t && damrt_tensor_check(t, LABEL, &err) != DAMRT_OK) abort();
    if (t && (!has_info || t->count != info.count || t->rank != info.rank)) abort();
    if (!t) check_error(&err);
    damrt_tensor_free(t);
  }
  if (damrt_npz_read(npz, "no such key\x01", DAMRT_F32, &err)) abort();
  check_error(&err);
  DamrtNpyInfo info;
  if (damrt_npz_member_info(npz, "no such key\x01", &info, &err) != DAMRT_E_NOT_FOUND) abort();
  damrt_npz_close(npz);
  return 0;
}
