// The JIT session (jit.h): explicit runtime symbols, textual IR, assembly, object files,
// clean errors (missing symbol, unknown name, duplicate symbol, invalid IR), removing
// code, and two sessions alive in one process.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/irb.h"
#include "backend_test.h"
#include "support/common.h"

static bool contains_bytes(const unsigned char *buf, size_t n, const char *s) {
  size_t len = strlen(s);
  for (size_t i = 0; i + len <= n; i++)
    if (!memcmp(buf + i, s, len)) return true;
  return false;
}

// A runtime function that exists only in this executable, which is not linked with
// -rdynamic: JIT'd code reaches it only through jit_define_symbols.
static double test_twice(double x) { return 2 * x; }

// Adds to `jit` a module defining `double name(double x) { return callee(x) + c; }`
// (callee NULL: return x + c). Returns the JitCode (NULL on failure, message in `err`).
static JitCode *add_kernel(Jit *jit, const char *name, const char *callee, double c,
                           StrBuf *err) {
  JitModule *m = jit_module_new(jit, name);
  Irb irb;
  irb_init(&irb, m, IRB_F64);
  irb_func_begin(&irb, name, "real(real x)");
  LLVMValueRef v_x = irb_param(&irb, 0);
  if (callee) v_x = irb_call(&irb, irb_declare(&irb, callee, "real(real)"), &v_x, 1);
  LLVMBuildRet(irb.b, LLVMBuildFAdd(irb.b, v_x, irb_real(&irb, c), ""));
  irb_fini(&irb);
  return jit_add_module_take(jit, m, err);  // m is the JIT's now
}

typedef double (*UnaryFn)(double);

static UnaryFn lookup(Jit *jit, const char *name) {
  StrBuf err = {0};
  UnaryFn fn = (UnaryFn)jit_lookup(jit, name, &err);
  if (!fn) fprintf(stderr, "%s", sb_str(&err));
  sb_free(&err);
  return fn;
}

static void test_symbols_and_outputs(void) {
  Jit *jit = test_jit_new();
  printf("host cpu: %s\n", jit_cpu_name(jit));
  StrBuf err = {0};
  JitSymbol syms[] = {JIT_SYMBOL(test_twice)};
  CHECK(jit_define_symbols(jit, syms, ARRAY_LEN(syms), &err));

  // IR text, assembly and an object file of one module, then the module itself.
  JitModule *m = jit_module_new(jit, "outputs");
  Irb irb;
  irb_init(&irb, m, IRB_F64);
  irb_func_begin(&irb, "k_outputs", "real(real x)");
  LLVMValueRef v_x = irb_param(&irb, 0);
  LLVMValueRef v_y =
      irb_call(&irb, irb_declare(&irb, "test_twice", "real(real)"), &v_x, 1);
  LLVMBuildRet(irb.b, LLVMBuildFAdd(irb.b, v_y, irb_real(&irb, 1), ""));
  irb_fini(&irb);
  CHECK(jit_module_optimize(jit, m, &err));
  char *ir = jit_module_ir(m);
  CHECK(strstr(ir, "define double @k_outputs(double") != NULL);
  CHECK(strstr(ir, "declare double @test_twice(double)") != NULL);
  free(ir);
  char *text = jit_module_asm(jit, m, &err);
  CHECK(text && strstr(text, "k_outputs:") && strstr(text, "test_twice"));
  free(text);
  // Assembly is generated from a copy: the module is still whole afterwards.
  CHECK(jit_module_optimize(jit, m, &err));

  StrBuf bytes = {0};
  CHECK(jit_module_object(jit, m, &bytes, &err));
  {
    const unsigned char *obj = (const unsigned char *)bytes.data;
    size_t n = bytes.len;
    CHECK(n >= 64);
    CHECK(!memcmp(obj, "\x7f" "ELF", 4));
    CHECK_EQ(obj[4], 2);                 // ELFCLASS64
    CHECK_EQ(obj[16] | obj[17] << 8, 1);  // ET_REL: a relocatable object
#if defined(__x86_64__)
    CHECK_EQ(obj[18] | obj[19] << 8, 62);  // EM_X86_64
#endif
    CHECK(contains_bytes(obj, n, "k_outputs"));
  }
  sb_free(&bytes);

  CHECK(jit_add_module_take(jit, m, &err) != NULL);
  UnaryFn fn = lookup(jit, "k_outputs");
  CHECK(fn != NULL);
  if (fn) CHECK_NEAR(fn(20.5), 42.0, 0);
  CHECK_STREQ(sb_str(&err), "");

  // A second definition of a runtime symbol is refused with LLVM's message.
  CHECK(!jit_define_symbols(jit, syms, 1, &err));
  printf("duplicate symbol: %s", sb_str(&err));
  CHECK(strstr(sb_str(&err), "test_twice") != NULL);
  sb_free(&err);
  CHECK(jit_free(jit, &err));
  sb_free(&err);
}

static void test_errors(void) {
  Jit *jit = test_jit_new();
  StrBuf err = {0};

  // A call to a symbol nobody defined: adding works (code is generated lazily), the
  // lookup fails cleanly and names the symbol.
  CHECK(add_kernel(jit, "k_missing", "damrt_missing", 0, &err) != NULL);
  CHECK(jit_lookup(jit, "k_missing", &err) == 0);
  printf("missing symbol: %s", sb_str(&err));
  CHECK(strstr(sb_str(&err), "damrt_missing") != NULL);
  sb_clear(&err);

  // An unknown name.
  CHECK(jit_lookup(jit, "no_such_kernel", &err) == 0);
  printf("unknown name: %s", sb_str(&err));
  CHECK(strstr(sb_str(&err), "no_such_kernel") != NULL);
  sb_clear(&err);

  // Invalid IR (a block without a terminator) is caught by the verifier, not by a crash
  // in code generation.
  JitModule *m = jit_module_new(jit, "broken");
  Irb irb;
  irb_init(&irb, m, IRB_F64);
  irb_func_begin(&irb, "k_broken", "real(real x)");
  irb_fini(&irb);
  CHECK(!jit_module_optimize(jit, m, &err));
  CHECK(jit_add_module_take(jit, m, &err) == NULL);  // m is freed
  printf("invalid IR: %s", sb_str(&err));
  CHECK(strstr(sb_str(&err), "invalid IR") != NULL);
  sb_clear(&err);

  // The session still works after these failures.
  CHECK(add_kernel(jit, "k_after", NULL, 1, &err) != NULL);
  UnaryFn fn = lookup(jit, "k_after");
  CHECK(fn && fn(1) == 2);

  // Removing code removes its symbols, so the name can be defined again.
  JitCode *code = add_kernel(jit, "k_removable", NULL, 10, &err);
  fn = lookup(jit, "k_removable");
  CHECK(fn && fn(1) == 11);
  CHECK(jit_remove(jit, code, &err));
  CHECK(jit_lookup(jit, "k_removable", &err) == 0);
  sb_clear(&err);
  CHECK(add_kernel(jit, "k_removable", NULL, 20, &err) != NULL);
  fn = lookup(jit, "k_removable");
  CHECK(fn && fn(1) == 21);
  // Defining the same name twice in one session is refused when the module is added.
  CHECK(add_kernel(jit, "k_removable", NULL, 30, &err) == NULL);
  printf("duplicate definition: %s", sb_str(&err));
  sb_clear(&err);
  fn = lookup(jit, "k_removable");
  CHECK(fn && fn(1) == 21);

  CHECK(jit_free(jit, &err));
  CHECK_STREQ(sb_str(&err), "");
  sb_free(&err);
}

// Two sessions at once, each with its own definition of the same name, then both freed
// and a third created: no global state beyond LLVM's target registry.
static void test_two_sessions(void) {
  StrBuf err = {0};
  Jit *a = test_jit_new(), *b = test_jit_new();
  CHECK(add_kernel(a, "k_same", NULL, 1, &err) != NULL);
  CHECK(add_kernel(b, "k_same", NULL, 2, &err) != NULL);
  UnaryFn fa = lookup(a, "k_same"), fb = lookup(b, "k_same");
  CHECK(fa && fb && fa != fb);
  if (fa && fb) {
    CHECK(fa(0) == 1);
    CHECK(fb(0) == 2);
  }
  CHECK(jit_free(a, &err));
  if (fb) CHECK(fb(0) == 2);  // b is unaffected by freeing a
  CHECK(jit_free(b, &err));
  Jit *c = test_jit_new();
  CHECK(add_kernel(c, "k_same", NULL, 3, &err) != NULL);
  UnaryFn fc = lookup(c, "k_same");
  CHECK(fc && fc(0) == 3);
  CHECK(jit_free(c, &err));
  CHECK(jit_free(NULL, &err));
  CHECK_STREQ(sb_str(&err), "");
  sb_free(&err);
}

int main(void) {
  test_symbols_and_outputs();
  test_errors();
  test_two_sessions();
  return check_report("test_backend_jit");
}
