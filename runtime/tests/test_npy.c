// Unit tests of the .npy reader and writer over hand-built files: every dtype conversion
// rule, Fortran order, the header dialects NumPy accepts, each refusal with its exact
// message, and the atomic replacement on write failures. (npy_interop.py checks the same
// reader against files NumPy itself writes.)
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "check.h"
#include "damrt.h"
#include "test_files.h"

enum { IMAGE_MAX = 4096 };

// A .npy image: prelude of format `major`.0, then `dict` as the header, then `data_len`
// bytes of `data`.
typedef struct {
  unsigned char bytes[IMAGE_MAX];
  size_t size;
} Image;

static void make_image(Image *im, int major, const char *dict, const void *data,
                       size_t data_len) {
  size_t dict_len = strlen(dict);
  size_t len_size = major == 1 ? 2 : 4;
  memcpy(im->bytes, "\x93NUMPY", 6);
  im->bytes[6] = (unsigned char)major;
  im->bytes[7] = 0;
  for (size_t i = 0; i < len_size; i++)
    im->bytes[8 + i] = (unsigned char)(dict_len >> (8 * i));
  memcpy(im->bytes + 8 + len_size, dict, dict_len);
  memcpy(im->bytes + 8 + len_size + dict_len, data, data_len);
  im->size = 8 + len_size + dict_len + data_len;
}

// Parses `im` as float64 and returns the tensor (NULL on failure, with `err` set).
static DamrtTensor *parse(const Image *im, DamrtDtype want, DamrtError *err) {
  return damrt_npy_parse(im->bytes, im->size, want, "x.npy", err);
}

// Expects parsing `dict` + `data` to fail with exactly `message`.
static void expect_error(const char *dict, const void *data, size_t data_len,
                         DamrtStatus code, const char *message) {
  Image im;
  make_image(&im, 1, dict, data, data_len);
  DamrtError err = {DAMRT_OK, ""};
  DamrtTensor *t = parse(&im, DAMRT_F64, &err);
  CHECK(t == NULL);
  CHECK_EQ(err.code, code);
  CHECK_STREQ(err.message, message);
  damrt_tensor_free(t);
}

static const double *f64(const DamrtTensor *t) { return t->data; }

static void test_floats(void) {
  DamrtError err;
  Image im;
  const double d[3] = {1.5, -0.0, 1e-310};
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
  DamrtTensor *t = parse(&im, DAMRT_F64, &err);
  CHECK(t && t->rank == 1 && t->shape[0] == 3);
  CHECK(memcmp(t->data, d, sizeof d) == 0);
  damrt_tensor_free(t);

  const float f[2] = {0.1f, -3.0f};
  make_image(&im, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", f, sizeof f);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[0] == (double)0.1f && f64(t)[1] == -3.0);
  damrt_tensor_free(t);

  // float64 to float32 rounds like a C cast (NumPy's astype).
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
  t = parse(&im, DAMRT_F32, &err);
  const float *fv = t->data;
  CHECK(fv[0] == 1.5f && fv[1] == 0 && signbit(fv[1]) && fv[2] == 0);
  damrt_tensor_free(t);

  // Half precision: 1, -2, the largest, the smallest subnormal, Inf and NaN.
  const unsigned char half[12] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b,
                                  0x01, 0x00, 0x00, 0x7c, 0x00, 0x7e};
  make_image(&im, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (6,), }", half, 12);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[0] == 1 && f64(t)[1] == -2 && f64(t)[2] == 65504);
  CHECK(f64(t)[3] == ldexp(1, -24) && isinf(f64(t)[4]) && isnan(f64(t)[5]));
  damrt_tensor_free(t);

  // Big-endian float64 2.0.
  const unsigned char be[8] = {0x40, 0, 0, 0, 0, 0, 0, 0};
  make_image(&im, 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (), }", be, 8);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(t && t->rank == 0 && t->count == 1 && f64(t)[0] == 2.0);
  damrt_tensor_free(t);
}

static void test_integers_and_bools(void) {
  DamrtError err;
  Image im;
  const unsigned char i2be[6] = {0xff, 0xfe, 0x7f, 0xff, 0x80, 0x00};
  make_image(&im, 1, "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", i2be, 6);
  DamrtTensor *t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[0] == -2 && f64(t)[1] == 32767 && f64(t)[2] == -32768);
  damrt_tensor_free(t);

  const int64_t i8[2] = {INT64_MIN, (INT64_C(1) << 53) + 1};
  make_image(&im, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i8, 16);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[0] == -9223372036854775808.0 && f64(t)[1] == 9007199254740992.0);
  damrt_tensor_free(t);
  // Straight to float32, rounding once (as NumPy does), not through float64.
  t = parse(&im, DAMRT_F32, &err);
  CHECK(((const float *)t->data)[1] == (float)((INT64_C(1) << 53) + 1));
  damrt_tensor_free(t);

  const uint64_t u8[1] = {UINT64_MAX};
  make_image(&im, 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", u8, 8);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[0] == 18446744073709551616.0);
  damrt_tensor_free(t);

  const unsigned char b[4] = {0, 1, 2, 255};
  make_image(&im, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }", b, 4);
  t = parse(&im, DAMRT_F32, &err);
  const float *fv = t->data;
  CHECK(fv[0] == 0 && fv[1] == 1 && fv[2] == 1 && fv[3] == 1);
  damrt_tensor_free(t);

  make_image(&im, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", b, 4);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(f64(t)[3] == 255);
  damrt_tensor_free(t);
}

static void test_fortran_order(void) {
  DamrtError err;
  Image im;
  // The 2 x 3 matrix [[0, 1, 2], [3, 4, 5]] stored column by column.
  const double cols[6] = {0, 3, 1, 4, 2, 5};
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", cols, 48);
  DamrtTensor *t = parse(&im, DAMRT_F64, &err);
  for (int i = 0; i < 6; i++) CHECK(f64(t)[i] == i);
  damrt_tensor_free(t);

  // Rank 3, with a conversion: element (i, j, k) of shape (2, 2, 2) holds 4i + 2j + k.
  const int32_t cube[8] = {0, 4, 2, 6, 1, 5, 3, 7};
  make_image(&im, 1, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 2, 2), }", cube,
             32);
  t = parse(&im, DAMRT_F32, &err);
  for (int i = 0; i < 8; i++) CHECK(((const float *)t->data)[i] == i);
  damrt_tensor_free(t);

  // For rank 1 Fortran order is C order.
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (6,), }", cols, 48);
  t = parse(&im, DAMRT_F64, &err);
  CHECK(memcmp(t->data, cols, 48) == 0);
  damrt_tensor_free(t);
}

static void test_header_dialects(void) {
  DamrtError err;
  Image im;
  const double d[6] = {0, 1, 2, 3, 4, 5};
  const char *dialects[] = {
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }     \n",
      "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f8\"}",
      "{'descr':'<f8','fortran_order':False,'shape':(2L,3L)}",  // Python 2
      " {\n 'descr' : '<f8' ,\n 'fortran_order' : False ,\n 'shape' : ( 2 , 3 , ) \n } ",
      "{'descr': 'f8', 'fortran_order': False, 'shape': (2, 3), }",
      "{'descr': '=f8', 'fortran_order': False, 'shape': (2, 3), }",
  };
  for (size_t i = 0; i < sizeof dialects / sizeof *dialects; i++) {
    make_image(&im, 1, dialects[i], d, sizeof d);
    DamrtTensor *t = parse(&im, DAMRT_F64, &err);
    CHECK(t && t->rank == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    if (!t) fprintf(stderr, "  dialect %zu: %s\n", i, err.message);
    CHECK(t && memcmp(t->data, d, sizeof d) == 0);
    damrt_tensor_free(t);
  }
  for (int major = 2; major <= 3; major++) {
    make_image(&im, major, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", d,
               sizeof d);
    DamrtTensor *t = parse(&im, DAMRT_F64, &err);
    CHECK(t && t->count == 6);
    damrt_tensor_free(t);
  }
}

static void test_refusals(void) {
  const double d[2] = {1, 2};
  expect_error("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '<c16' (complex) is not supported; use float32 or float64");
  expect_error("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '|O' (Python objects) is not supported; use float32 or float64");
  expect_error("{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '<U2' (unicode string) is not supported; use float32 or float64");
  expect_error("{'descr': '|S8', 'fortran_order': False, 'shape': (2,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '|S8' (byte string) is not supported; use float32 or float64");
  expect_error("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (2,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '<M8[ns]' (datetime) is not supported; use float32 or float64");
  expect_error("{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '<f16' (extended-precision float) is not supported; use "
               "float32 or float64");
  expect_error("{'descr': '<i3', 'fortran_order': False, 'shape': (1,), }", d, 3,
               DAMRT_E_UNSUPPORTED,
               "x.npy: dtype '<i3' is not a NumPy dtype this reader understands; use float32 "
               "or float64");
  expect_error("{'descr': [('a', '<f8'), ('b', '<i4')], 'fortran_order': False, 'shape': "
               "(1,), }",
               d, 12, DAMRT_E_UNSUPPORTED,
               "x.npy: structured dtypes (records of named fields) are not supported; save "
               "each field as its own array");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }", d, 16,
               DAMRT_E_UNSUPPORTED,
               "x.npy: arrays of rank 5 are not supported (at most 4 dimensions)");
}

static void test_malformed_headers(void) {
  const double d[1] = {1};
  expect_error("{'descr': '<f8' 'fortran_order': False, 'shape': (1,), }", d, 8,
               DAMRT_E_FORMAT,
               "x.npy: malformed header: expected ',' or '}' after the value of 'descr' at "
               "byte 16; the header is {'descr': '<f8' 'fortran_order': False, 'shape': "
               "(1,), }");
  expect_error("{'descr': '<f8', 'shape': (1,), }", d, 8, DAMRT_E_FORMAT,
               "x.npy: malformed header: no 'fortran_order' key at byte 33; the header is "
               "{'descr': '<f8', 'shape': (1,), }");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1), }", d, 8,
               DAMRT_E_FORMAT,
               "x.npy: malformed header: 'shape' is a number, not a tuple (a 1-d shape is "
               "written (n,)) at byte 53; the header is {'descr': '<f8', 'fortran_order': "
               "False, 'shape': (1), }");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", d, 8,
               DAMRT_E_FORMAT,
               "x.npy: malformed header: negative dimension in 'shape' at byte 51; the header "
               "is {'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }");
  // The other mistakes, checked by the start of their message.
  const char *cases[][2] = {
      {"{'descr': '<f8', 'fortran_order': 0, 'shape': (1,), }",
       "expected True or False for 'fortran_order'"},
      {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
       "key 'descr' appears twice"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
       "unexpected key 'extra' (the keys are 'descr', 'fortran_order' and 'shape')"},
      {"['descr', '<f8']", "expected '{'"},
      {"{'descr': '<f8', 'fortran_order' False, 'shape': (1,), }",
       "expected ':' after 'fortran_order'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), } x", "unexpected text after"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,,), }",
       "expected a non-negative integer in 'shape'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (1 2), }",
       "expected ',' or ')' in 'shape'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': 1, }",
       "expected a tuple such as (3, 4) for 'shape'"},
      {"{'descr': '<f8\n', 'fortran_order': False, 'shape': (1,), }", "unterminated string"},
      {"{'descr': '<f\x01', 'fortran_order': False, 'shape': (1,), }",
       "unprintable byte in a string"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }",
       "dimension too large"},
      {"{descr: '<f8'}", "expected a key in quotes"},
      {"", "expected '{' at byte 0; the header is empty"},
      {"{'descr': '<\x80" "f8'}", "unprintable byte in a string at byte 12; the header is "
                              "{'descr': '<\\x80f8'}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    Image im;
    make_image(&im, 1, cases[i][0], d, 8);
    DamrtError err = {DAMRT_OK, ""};
    DamrtTensor *t = parse(&im, DAMRT_F64, &err);
    CHECK(t == NULL && err.code == DAMRT_E_FORMAT);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "x.npy: malformed header: %s", cases[i][1]);
    CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0);
    if (strncmp(err.message, prefix, strlen(prefix)) != 0)
      fprintf(stderr, "  case %zu: %s\n", i, err.message);
    damrt_tensor_free(t);
  }
}

static void test_damaged_files(void) {
  DamrtError err;
  Image im;
  const double d[6] = {0, 1, 2, 3, 4, 5};
  const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  make_image(&im, 1, dict, d, sizeof d);
  size_t header_end = im.size - sizeof d;

  CHECK(damrt_npy_parse(im.bytes, 0, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: not a .npy file (it is empty)");
  CHECK(damrt_npy_parse(im.bytes, 7, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: truncated .npy file (7 bytes)");
  CHECK(damrt_npy_parse(im.bytes, 20, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: truncated header: 59 bytes declared, only 10 present");
  CHECK(damrt_npy_parse(im.bytes, im.size - 3, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  CHECK_STREQ(err.message,
              "x.npy: truncated data: shape (2, 3) of '<f8' needs 48 bytes, only 45 present");
  // Every cut shorter than the whole file fails; the whole file parses.
  for (size_t n = 0; n <= im.size; n++) {
    DamrtTensor *t = damrt_npy_parse(im.bytes, n, DAMRT_F64, "x.npy", &err);
    CHECK((t != NULL) == (n == im.size));
    CHECK(n == im.size || (n < header_end) ==
                              (strstr(err.message, "truncated data") == NULL));
    damrt_tensor_free(t);
  }

  im.bytes[im.size++] = 0;
  CHECK(parse(&im, DAMRT_F64, &err) == NULL);
  CHECK_STREQ(err.message,
              "x.npy: unexpected bytes after the data (shape (2, 3) of '<f8' needs 48 bytes)");

  const char text[] = "hello, world";
  CHECK(damrt_npy_parse(text, sizeof text, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: not a .npy file (it does not start with \\x93NUMPY)");
  const char zip[] = "PK\x03\x04 and more";
  CHECK(damrt_npy_parse(zip, sizeof zip, DAMRT_F64, "x.npy", &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: not a .npy file (it is a zip archive: a .npz file?)");

  make_image(&im, 1, dict, d, sizeof d);
  im.bytes[6] = 4;
  CHECK(parse(&im, DAMRT_F64, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_UNSUPPORTED);
  CHECK_STREQ(err.message, "x.npy: unsupported .npy format version 4.0 (this reader knows "
                           "1.0, 2.0 and 3.0)");

  make_image(&im, 2, dict, d, sizeof d);
  im.bytes[11] = 0x7f;  // a header length of about 2 GiB
  CHECK(parse(&im, DAMRT_F64, &err) == NULL);
  CHECK(strstr(err.message, "is implausibly large") != NULL);

  // A shape whose byte size overflows, and one that fits but whose data is missing: both
  // are refused before any allocation.
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
               d, 0, DAMRT_E_FORMAT,
               "x.npy: shape (4294967296, 4294967296) is too large (its byte size overflows)");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", d,
               8, DAMRT_E_FORMAT,
               "x.npy: truncated data: shape (1000000, 1000000) of '<f8' needs 8000000000000 "
               "bytes, only 8 present");
  expect_error("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4294967296, "
               "4294967296), }",
               d, 0, DAMRT_E_FORMAT,
               "x.npy: shape (0, 4294967296, 4294967296) is too large (its byte size "
               "overflows)");
  // An empty array needs no data at all.
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }", d, 0);
  DamrtTensor *t = parse(&im, DAMRT_F32, &err);
  CHECK(t && t->count == 0 && t->shape[1] == 5);
  damrt_tensor_free(t);
}

static void test_write_read(const ScratchDir *dir) {
  DamrtError err;
  char path[512];
  scratch_file(dir, "w.npy", path, sizeof path);
  size_t shape[2] = {2, 3};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 2, shape, &err);
  for (int i = 0; i < 6; i++) ((double *)t->data)[i] = i * 0.5 - 1;
  CHECK_EQ(damrt_npy_write(path, t, &err), DAMRT_OK);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 128 + 48);
  const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  CHECK(bytes && memcmp(bytes + 10, dict, strlen(dict)) == 0);
  CHECK(bytes && bytes[127] == '\n');
  free(bytes);
  DamrtTensor *back = damrt_npy_read(path, DAMRT_F64, &err);
  CHECK(back && back->rank == 2 && memcmp(back->data, t->data, 48) == 0);
  damrt_tensor_free(back);

  // Writes of a 0-d and an empty float32 tensor read back the same.
  DamrtTensor *s = damrt_tensor_new(DAMRT_F32, 0, NULL, &err);
  *(float *)s->data = 0.25f;
  CHECK_EQ(damrt_npy_write(path, s, &err), DAMRT_OK);
  back = damrt_npy_read(path, DAMRT_F32, &err);
  CHECK(back && back->rank == 0 && *(float *)back->data == 0.25f);
  damrt_tensor_free(back);
  damrt_tensor_free(s);
  size_t empty_shape[3] = {2, 0, 4};
  DamrtTensor *e = damrt_tensor_new(DAMRT_F32, 3, empty_shape, &err);
  CHECK_EQ(damrt_npy_write(path, e, &err), DAMRT_OK);
  back = damrt_npy_read(path, DAMRT_F64, &err);
  CHECK(back && back->rank == 3 && back->count == 0 && back->shape[2] == 4);
  damrt_tensor_free(back);
  damrt_tensor_free(e);
  CHECK_EQ(scratch_count_temp(dir), 0);
  damrt_tensor_free(t);
}

static void test_write_failures(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  size_t shape[1] = {10000};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, &err);

  scratch_file(dir, "missing/x.npy", path, sizeof path);
  CHECK_EQ(damrt_npy_write(path, t, &err), DAMRT_E_IO);
  snprintf(expected, sizeof expected,
           "'%s': cannot create a temporary file in its directory: No such file or directory",
           path);
  CHECK_STREQ(err.message, expected);

  // The target is a directory: refused before anything is written.
  scratch_file(dir, "adir", path, sizeof path);
  mkdir(path, 0777);
  CHECK_EQ(damrt_npy_write(path, t, &err), DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': is a directory", path);
  CHECK_STREQ(err.message, expected);
  CHECK_EQ(scratch_count_temp(dir), 0);
  rmdir(path);

  // The disk "fills up" halfway (a file size limit): the old file stays as it was.
  scratch_file(dir, "old.npy", path, sizeof path);
  file_write_all(path, "old", 3);
  struct rlimit saved, small;
  getrlimit(RLIMIT_FSIZE, &saved);
  small = saved;
  small.rlim_cur = 4096;
  signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  DamrtStatus status = damrt_npy_write(path, t, &err);
  setrlimit(RLIMIT_FSIZE, &saved);
  CHECK_EQ(status, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot write: File too large", path);
  CHECK_STREQ(err.message, expected);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 3 && memcmp(bytes, "old", 3) == 0);
  free(bytes);
  CHECK_EQ(scratch_count_temp(dir), 0);

  t->rank = 7;
  CHECK_EQ(damrt_npy_write(path, t, &err), DAMRT_E_ARGUMENT);
  t->rank = 1;
  damrt_tensor_free(t);
}

static void test_read_failures(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "nonexistent.npy", path, sizeof path);
  CHECK(damrt_npy_read(path, DAMRT_F64, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot open: No such file or directory", path);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npy_read(dir->path, DAMRT_F64, &err) == NULL);
  snprintf(expected, sizeof expected, "'%s': is a directory", dir->path);
  CHECK_STREQ(err.message, expected);
}

static void test_bad_request(void) {
  DamrtError err;
  Image im;
  const double d[1] = {1};
  make_image(&im, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", d, 8);
  CHECK(parse(&im, (DamrtDtype)0, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "x.npy: unknown dtype 0 requested");
}

// The header alone: what it declares, before any data is allocated or even present.
static void test_info(const ScratchDir *dir) {
  DamrtError err;
  Image im;
  DamrtNpyInfo info;
  // Fortran order, big-endian int16, a shape of 6 GB of data that is not there.
  make_image(&im, 2, "{'shape': (3000, 1000000), 'fortran_order': True, 'descr': '>i2'}",
             "", 0);
  memset(&info, 0x55, sizeof info);
  CHECK_EQ(damrt_npy_parse_info(im.bytes, im.size, &info, "x.npy", &err), DAMRT_OK);
  CHECK_STREQ(info.descr, ">i2");
  CHECK(info.kind == 'i' && info.itemsize == 2 && info.fortran_order && info.rank == 2);
  CHECK(info.shape[0] == 3000 && info.shape[1] == 1000000 && info.shape[2] == 1 &&
        info.shape[3] == 1);
  CHECK(info.count == 3000000000u && info.data_size == 6000000000u);
  // Reading it refuses before allocating, from the size of the input.
  CHECK(parse(&im, DAMRT_F64, &err) == NULL);
  CHECK_STREQ(err.message, "x.npy: truncated data: shape (3000, 1000000) of '>i2' needs "
                           "6000000000 bytes, only 0 present");
  // Refused dtypes and overflowing shapes fail in the header already.
  make_image(&im, 1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", "", 0);
  CHECK_EQ(damrt_npy_parse_info(im.bytes, im.size, &info, "x.npy", &err), DAMRT_E_UNSUPPORTED);
  make_image(&im, 1,
             "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
             "", 0);
  CHECK_EQ(damrt_npy_parse_info(im.bytes, im.size, &info, "x.npy", &err), DAMRT_E_FORMAT);
  CHECK_STREQ(err.message,
              "x.npy: shape (4294967296, 4294967296) is too large (its byte size overflows)");
  // Scalars, empty arrays, and a file on disk.
  make_image(&im, 1, "{'descr': '|b1', 'fortran_order': False, 'shape': (), }", "\1", 1);
  CHECK_EQ(damrt_npy_parse_info(im.bytes, im.size, &info, "x.npy", &err), DAMRT_OK);
  CHECK(info.rank == 0 && info.count == 1 && info.data_size == 1 && info.kind == 'b');
  char path[512];
  scratch_file(dir, "info.npy", path, sizeof path);
  size_t shape[3] = {2, 0, 5};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F32, 3, shape, NULL);
  CHECK(damrt_tensor_has_zero_size(t));
  CHECK_EQ(damrt_npy_write(path, t, &err), DAMRT_OK);
  CHECK_EQ(damrt_npy_read_info(path, &info, &err), DAMRT_OK);
  CHECK(info.rank == 3 && info.shape[2] == 5 && info.count == 0 && info.itemsize == 4);
  DamrtTensor *back = damrt_npy_read(path, DAMRT_F64, &err);
  CHECK(back && damrt_tensor_has_zero_size(back) && back->shape[1] == 0);
  damrt_tensor_free(back);
  damrt_tensor_free(t);
  remove(path);
}

int main(void) {
  ScratchDir dir;
  scratch_new(&dir);
  test_floats();
  test_integers_and_bools();
  test_fortran_order();
  test_header_dialects();
  test_refusals();
  test_malformed_headers();
  test_damaged_files();
  test_write_read(&dir);
  test_write_failures(&dir);
  test_read_failures(&dir);
  test_bad_request();
  test_info(&dir);
  scratch_free(&dir);
  return check_report("runtime/npy");
}
