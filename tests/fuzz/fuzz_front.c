// Fuzz target for the front end: any bytes are parsed and checked as a model file, and a
// model that passes is printed. Crashes, sanitizer reports and hangs are the findings;
// the diagnostics themselves are not checked here (the golden tests do that).
#include <stddef.h>
#include <stdint.h>

#include "front/ast_dump.h"
#include "front/front.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Session *s = session_new(NULL);
  Model *m = front_compile(s, "fuzz.dam", (const char *)data, size);
  if (m) {
    StrBuf out = {0};
    ast_dump_model(&out, m);
    sb_free(&out);
  }
  session_free(s);
  return 0;
}
