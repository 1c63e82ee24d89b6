// Unit tests of the tensor and error modules: allocation, alignment, padding, conversion,
// the shape checks and the NaN/Inf messages.
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "damrt.h"

static void test_new(void) {
  DamrtError err;
  size_t shape[2] = {3, 5};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 2, shape, &err);
  CHECK(t != NULL);
  CHECK_EQ(t->count, 15);
  CHECK_EQ(t->rank, 2);
  CHECK_EQ(t->shape[2], 1);
  CHECK_EQ(t->shape[3], 1);
  CHECK_EQ((uintptr_t)t->data % DAMRT_ALIGNMENT, 0);
  const double *d = t->data;
  // 15 doubles are 120 bytes, padded to 128: the 16th slot exists and is zero.
  for (size_t i = 0; i < 16; i++) CHECK(d[i] == 0.0);
  CHECK_EQ(damrt_tensor_check(t, "t", &err), DAMRT_OK);
  damrt_tensor_free(t);

  DamrtTensor *scalar = damrt_tensor_new(DAMRT_F32, 0, NULL, &err);
  CHECK(scalar != NULL);
  CHECK_EQ(scalar->count, 1);
  damrt_tensor_free(scalar);

  size_t empty_shape[1] = {0};
  DamrtTensor *empty = damrt_tensor_new(DAMRT_F32, 1, empty_shape, &err);
  CHECK(empty != NULL && empty->data != NULL);
  CHECK_EQ(empty->count, 0);
  damrt_tensor_free(empty);
  damrt_tensor_free(NULL);
}

static void test_new_errors(void) {
  DamrtError err;
  size_t shape[5] = {1, 1, 1, 1, 1};
  CHECK(damrt_tensor_new(DAMRT_F32, 5, shape, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "tensor: rank 5 is not supported (at most 4)");

  size_t huge[2] = {SIZE_MAX / 4, 3};
  CHECK(damrt_tensor_new(DAMRT_F64, 2, huge, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_ARGUMENT);
  CHECK(strstr(err.message, "is too large to allocate") != NULL);

  CHECK(damrt_tensor_new((DamrtDtype)7, 0, NULL, &err) == NULL);
  CHECK_STREQ(err.message, "tensor: unknown dtype 7");
  // A NULL err is allowed: only the result tells.
  CHECK(damrt_tensor_new(DAMRT_F64, -1, NULL, NULL) == NULL);
}

static void test_convert(void) {
  DamrtError err;
  size_t shape[1] = {4};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, &err);
  double *d = t->data;
  d[0] = 0.1;
  d[1] = -2.5;
  d[2] = 1e300;
  d[3] = -0.0;
  DamrtTensor *f = damrt_tensor_convert(t, DAMRT_F32, &err);
  CHECK(f != NULL && f->dtype == DAMRT_F32 && f->count == 4);
  const float *fv = f->data;
  CHECK(fv[0] == (float)0.1);
  CHECK(fv[1] == -2.5f);
  CHECK(isinf(fv[2]) && fv[2] > 0);
  CHECK(fv[3] == 0 && signbit(fv[3]));
  DamrtTensor *back = damrt_tensor_convert(f, DAMRT_F64, &err);
  CHECK(((const double *)back->data)[0] == (double)(float)0.1);
  DamrtTensor *same = damrt_tensor_convert(t, DAMRT_F64, &err);
  CHECK(memcmp(same->data, t->data, 4 * sizeof(double)) == 0);
  CHECK(same->data != t->data);
  damrt_tensor_free(t);
  damrt_tensor_free(f);
  damrt_tensor_free(back);
  damrt_tensor_free(same);
}

static void test_check(void) {
  DamrtError err;
  size_t shape[2] = {2, 3};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F32, 2, shape, &err);
  t->count = 5;
  CHECK_EQ(damrt_tensor_check(t, "x.npy", &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "x.npy: element count 5 does not match the shape (2, 3)");
  t->count = 6;
  t->rank = 9;
  CHECK_EQ(damrt_tensor_check(t, "x.npy", &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "x.npy: rank 9 is not supported (at most 4)");
  t->rank = 2;
  CHECK_EQ(damrt_tensor_check(NULL, "x.npy", &err), DAMRT_E_ARGUMENT);
  CHECK_STREQ(err.message, "x.npy: no tensor (NULL)");
  damrt_tensor_free(t);
}

static void test_nonfinite(void) {
  DamrtError err;
  size_t shape[2] = {4, 20};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F32, 2, shape, &err);
  size_t flat = 99;
  CHECK(!damrt_tensor_find_nonfinite(t, &flat));
  CHECK_EQ(damrt_tensor_check_finite(t, "tensor 'Xi'", &err), DAMRT_OK);
  float *v = t->data;
  v[3 * 20 + 17] = NAN;
  v[3 * 20 + 18] = INFINITY;
  CHECK(damrt_tensor_find_nonfinite(t, &flat));
  CHECK_EQ(flat, 77);
  size_t index[DAMRT_MAX_RANK];
  damrt_tensor_unravel(t, flat, index);
  CHECK_EQ(index[0], 3);
  CHECK_EQ(index[1], 17);
  CHECK_EQ(index[2], 0);
  CHECK_EQ(damrt_tensor_check_finite(t, "tensor 'Xi'", &err), DAMRT_E_VALUE);
  CHECK_EQ(err.code, DAMRT_E_VALUE);
  CHECK_STREQ(err.message, "tensor 'Xi' has NaN at [3, 17]");
  v[3 * 20 + 17] = 0;
  damrt_tensor_check_finite(t, "tensor 'Xi'", &err);
  CHECK_STREQ(err.message, "tensor 'Xi' has +Inf at [3, 18]");
  damrt_tensor_free(t);

  DamrtTensor *s = damrt_tensor_new(DAMRT_F64, 0, NULL, &err);
  *(double *)s->data = -INFINITY;
  damrt_tensor_check_finite(s, "tensor 'beta'", &err);
  CHECK_STREQ(err.message, "tensor 'beta' has -Inf");
  damrt_tensor_free(s);
}

// The search goes by blocks of 4096 elements (a vectorised test of each, then the element):
// NaN, +Inf and -Inf on both sides of every block edge and at the ends, in both precisions,
// the first one always reported; the largest finite values and subnormals are finite.
static void test_nonfinite_blocks(void) {
  DamrtError err;
  const size_t count = 3 * 4096 + 17;
  const size_t where[] = {0, 1, 4095, 4096, 4097, 8191, 8192, 12287, 12288, count - 1};
  const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
  for (int dt = 0; dt < 2; dt++) {
    DamrtDtype dtype = dt ? DAMRT_F64 : DAMRT_F32;
    size_t shape[1] = {count};
    DamrtTensor *t = damrt_tensor_new(dtype, 1, shape, &err);
    for (size_t i = 0; i < count; i++) {
      double v = i % 3 == 0 ? (dt ? DBL_MAX : FLT_MAX) : i % 3 == 1 ? (dt ? -4e-320 : -1e-44) : 1;
      if (dt) ((double *)t->data)[i] = v;
      else ((float *)t->data)[i] = (float)v;
    }
    size_t flat = 99;
    CHECK(!damrt_tensor_find_nonfinite(t, &flat));
    for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
      for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
        size_t at = where[w];
        double keep = dt ? ((double *)t->data)[at] : ((float *)t->data)[at];
        if (dt) ((double *)t->data)[at] = bad[b];
        else ((float *)t->data)[at] = (float)bad[b];
        // A second one after it must not be the one reported.
        size_t later = at + 5000 < count ? at + 5000 : at;
        double keep_later = dt ? ((double *)t->data)[later] : ((float *)t->data)[later];
        if (dt) ((double *)t->data)[later] = NAN;
        else ((float *)t->data)[later] = NAN;
        CHECK(damrt_tensor_find_nonfinite(t, &flat));
        CHECK_EQ(flat, at);
        if (dt) ((double *)t->data)[later] = keep_later, ((double *)t->data)[at] = keep;
        else ((float *)t->data)[later] = (float)keep_later, ((float *)t->data)[at] = (float)keep;
      }
    }
    CHECK(!damrt_tensor_find_nonfinite(t, &flat));
    damrt_tensor_free(t);
  }
}

static void test_error_module(void) {
  DamrtError err;
  CHECK_EQ(damrt_error_set(&err, DAMRT_E_IO, "%s: %d", "a", 1), DAMRT_E_IO);
  CHECK_STREQ(err.message, "a: 1");
  CHECK_EQ(damrt_error_set(NULL, DAMRT_E_NOMEM, "x"), DAMRT_E_NOMEM);
  char long_text[2 * DAMRT_ERROR_MESSAGE_SIZE];
  memset(long_text, 'x', sizeof long_text - 1);
  long_text[sizeof long_text - 1] = '\0';
  damrt_error_set(&err, DAMRT_E_FORMAT, "%s", long_text);
  CHECK_EQ(strlen(err.message), DAMRT_ERROR_MESSAGE_SIZE - 1);
  CHECK_STREQ(damrt_status_name(DAMRT_E_UNSUPPORTED), "unsupported");
  CHECK_STREQ(damrt_dtype_name(DAMRT_F32), "float32");
  CHECK_EQ(damrt_dtype_size(DAMRT_F64), 8);
}

int main(void) {
  test_new();
  test_new_errors();
  test_convert();
  test_check();
  test_nonfinite();
  test_nonfinite_blocks();
  test_error_module();
  return check_report("runtime/tensor");
}
