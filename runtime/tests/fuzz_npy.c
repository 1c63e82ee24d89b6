// libFuzzer target for the .npy reader. Arbitrary bytes must give either a well-formed
// tensor or an error whose message names the input, and never a crash, a leak or a read out
// of bounds (AddressSanitizer and UBSan watch those). Every element of a returned tensor is
// read, so a tensor with uninitialised or missing data would be noticed too.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "damrt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char LABEL[] = "fuzz.npy";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const DamrtDtype wants[2] = {DAMRT_F32, DAMRT_F64};
  for (int i = 0; i < 2; i++) {
    DamrtError err = {DAMRT_OK, ""};
    DamrtTensor *t = damrt_npy_parse(data, size, wants[i], LABEL, &err);
    if (t) {
      size_t flat;
      damrt_tensor_find_nonfinite(t, &flat);
      if (damrt_tensor_check(t, LABEL, &err) != DAMRT_OK || t->dtype != wants[i]) abort();
      damrt_tensor_free(t);
    } else if (err.code == DAMRT_OK || strncmp(err.message, LABEL, strlen(LABEL)) != 0) {
      abort();
    }
  }
  return 0;
}
