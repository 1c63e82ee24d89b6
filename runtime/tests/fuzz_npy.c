// libFuzzer target for the .npy reader. Arbitrary bytes must give either a well-formed
// tensor or an error whose message names the input, and never a crash, a leak or a read out
// of bounds (AddressSanitizer and UBSan watch those). Every element of a returned tensor is
// read, so a tensor with uninitialised or missing data would be noticed too. The header
// alone (damrt_npy_parse_info) must agree with the tensor whenever the whole file reads.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "damrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LABEL[] = "fuzz.npy";

static bool names_input(const DamrtError *err) {
  return err->code != DAMRT_OK && strncmp(err->message, LABEL, strlen(LABEL)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  DamrtError err = {DAMRT_OK, ""};
  DamrtNpyInfo info;
  bool has_info = damrt_npy_parse_info(data, size, &info, LABEL, &err) == DAMRT_OK;
  if (!has_info && !names_input(&err)) abort();
  if (has_info && (info.rank < 0 || info.rank > DAMRT_MAX_RANK ||
                   info.data_size != info.count * info.itemsize))
    abort();
  const DamrtDtype wants[2] = {DAMRT_F32, DAMRT_F64};
  for (int i = 0; i < 2; i++) {
    err = (DamrtError){DAMRT_OK, ""};
    DamrtTensor *t = damrt_npy_parse(data, size, wants[i], LABEL, &err);
    if (t) {
      size_t flat;
      damrt_tensor_find_nonfinite(t, &flat);
      if (damrt_tensor_check(t, LABEL, &err) != DAMRT_OK || t->dtype != wants[i]) abort();
      if (!has_info || t->rank != info.rank || t->count != info.count ||
          damrt_tensor_has_zero_size(t) != (info.count == 0))
        abort();
      for (int d = 0; d < DAMRT_MAX_RANK; d++)
        if (t->shape[d] != info.shape[d]) abort();
      damrt_tensor_free(t);
    } else if (!names_input(&err)) {
      abort();
    }
  }
  return 0;
}
