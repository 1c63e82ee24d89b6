// The .npy reader and writer (see damrt_npy.h and npy_stream.h).
//
// A .npy file is a 10- or 12-byte prelude (the magic "\x93NUMPY", a version, the header
// length), a header that is a Python dictionary literal such as
//   {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
// and the raw elements. The reader parses the prelude and the header with a small
// recursive-descent parser over the exact subset NumPy writes (and a little more: either
// quote, any key order, Python 2's "3L" integers), then streams the data through a fixed
// buffer, decoding each element from the file's dtype and byte order and storing it at its
// C-order position. When the file already holds the requested float type in the host's byte
// order and C order, the data is read straight into the tensor instead.
#define _POSIX_C_SOURCE 200809L  // fseeko
#include "damrt_npy.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "npy_stream.h"
#include "util.h"


enum {
  PRELUDE_SIZE = 8,            // magic and version, before the header length
  HEADER_LIMIT = 1 << 20,      // NumPy itself refuses headers over 10000 bytes by default
  STRING_MAX = 64,             // longest string the header parser keeps (keys, descr)
  CHUNK_SIZE = 65536,          // bytes decoded per read; a multiple of every item size
  EXCERPT_SIZE = 120,          // header characters quoted in a message
};

// The element kinds the reader converts from, as in DamrtNpyInfo.kind.
enum { KIND_FLOAT = 'f', KIND_INT = 'i', KIND_UINT = 'u', KIND_BOOL = 'b' };

typedef DamrtNpyHeader Header;

_Static_assert(sizeof ((DamrtNpyInfo *)0)->descr == STRING_MAX, "descr holds a header string");

// ---------------------------------------------------------------------------------------
// The header dictionary

typedef struct {
  const char *text, *p, *end;  // the header and the parser's position in it
  const char *label;
  DamrtError *err;
} Cursor;

// Writes the header into `buf` for quoting in a message: trailing padding dropped,
// unprintable bytes escaped, long headers cut with "...", and "empty" when nothing is left.
static void quote_header(const Cursor *c, char *buf, size_t cap) {
  const char *end = c->end;
  while (end > c->text && (end[-1] == ' ' || end[-1] == '\n')) end--;
  size_t used = 0;
  buf[0] = '\0';
  if (end == c->text) damrt_appendf(buf, cap, &used, "empty");
  for (const char *q = c->text; q < end; q++) {
    if (used + 8 >= cap) {
      damrt_appendf(buf, cap, &used, "...");
      break;
    }
    unsigned char ch = (unsigned char)*q;
    if (ch >= 0x20 && ch < 0x7f) damrt_appendf(buf, cap, &used, "%c", ch);
    else damrt_appendf(buf, cap, &used, "\\x%02x", ch);
  }
}

__attribute__((format(printf, 2, 3))) static DamrtStatus malformed(Cursor *c,
                                                                  const char *fmt, ...) {
  char what[160], excerpt[EXCERPT_SIZE];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  quote_header(c, excerpt, sizeof excerpt);
  return damrt_error_set(c->err, DAMRT_E_FORMAT,
                         "%s: malformed header: %s at byte %zu; the header is %s", c->label,
                         what, (size_t)(c->p - c->text), excerpt);
}

static void skip_space(Cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static bool eat(Cursor *c, char ch) {
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}

static bool is_digit(const Cursor *c) {
  return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

// A quoted string without escapes (NumPy never writes any): 'text' or "text".
static DamrtStatus parse_string(Cursor *c, char out[STRING_MAX], const char *what) {
  if (c->p == c->end || (*c->p != '\'' && *c->p != '"'))
    return malformed(c, "expected %s in quotes", what);
  char quote = *c->p++;
  const char *start = c->p;
  // Keys and dtype strings are ASCII; anything else is damage, and would garble messages.
  while (c->p < c->end && *c->p != quote && *c->p >= 0x20 && *c->p < 0x7f) c->p++;
  if (c->p == c->end || *c->p == '\n') return malformed(c, "unterminated string");
  if (*c->p != quote) return malformed(c, "unprintable byte in a string");
  size_t len = (size_t)(c->p - start);
  if (len >= STRING_MAX) return malformed(c, "string of %zu bytes is too long", len);
  memcpy(out, start, len);
  out[len] = '\0';
  c->p++;
  return DAMRT_OK;
}

static DamrtStatus parse_bool(Cursor *c, bool *out) {
  static const char *const words[2] = {"False", "True"};
  for (int b = 0; b < 2; b++) {
    size_t len = strlen(words[b]);
    if ((size_t)(c->end - c->p) >= len && memcmp(c->p, words[b], len) == 0) {
      c->p += len;
      *out = b;
      return DAMRT_OK;
    }
  }
  return malformed(c, "expected True or False for 'fortran_order'");
}

static DamrtStatus parse_dimension(Cursor *c, size_t *out) {
  if (c->p < c->end && *c->p == '-') return malformed(c, "negative dimension in 'shape'");
  if (!is_digit(c)) return malformed(c, "expected a non-negative integer in 'shape'");
  size_t value = 0;
  while (is_digit(c)) {
    size_t digit = (size_t)(*c->p - '0');
    if (value > (SIZE_MAX - digit) / 10) return malformed(c, "dimension too large in 'shape'");
    value = value * 10 + digit;
    c->p++;
  }
  eat(c, 'L');  // Python 2 wrote long integers as 3L
  *out = value;
  return DAMRT_OK;
}

// A tuple of dimensions: (), (3,), (3, 4) or (3, 4,). Keeps the first DAMRT_MAX_RANK
// entries and counts them all, so a higher rank can be reported with its true value.
static DamrtStatus parse_shape(Cursor *c, Header *h) {
  if (!eat(c, '(')) return malformed(c, "expected a tuple such as (3, 4) for 'shape'");
  int rank = 0;
  bool has_trailing_comma = false;
  for (;;) {
    skip_space(c);
    if (eat(c, ')')) break;
    size_t dim = 0;
    DamrtStatus status = parse_dimension(c, &dim);
    if (status != DAMRT_OK) return status;
    if (rank < DAMRT_MAX_RANK) h->info.shape[rank] = dim;
    rank++;
    skip_space(c);
    has_trailing_comma = eat(c, ',');
    if (!has_trailing_comma) {
      skip_space(c);
      if (!eat(c, ')')) return malformed(c, "expected ',' or ')' in 'shape'");
      break;
    }
  }
  // In Python (3) is the number 3; NumPy refuses it as a shape, and so do we.
  if (rank == 1 && !has_trailing_comma)
    return malformed(c, "'shape' is a number, not a tuple (a 1-d shape is written (n,))");
  h->info.rank = rank;
  return DAMRT_OK;
}

// The name of a NumPy dtype kind this reader refuses, or NULL.
static const char *refused_kind(char kind) {
  switch (kind) {
  case 'c': return "complex";
  case 'O': return "Python objects";
  case 'S': case 'a': return "byte string";
  case 'U': return "unicode string";
  case 'V': return "raw bytes";
  case 'M': return "datetime";
  case 'm': return "timedelta";
  }
  return NULL;
}

// Interprets a dtype string such as '<f8', '|b1' or '>u2' ([byte order] kind size).
static DamrtStatus interpret_descr(Header *h, const char *label, DamrtError *err) {
  const char *p = h->info.descr;
  char order = '=';
  if (*p && strchr("<>=|", *p)) order = *p++;
  char kind = *p ? *p++ : '\0';
  const char *refused = refused_kind(kind);
  if (refused)
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: dtype '%s' (%s) is not supported; use float32 or float64",
                           label, h->info.descr, refused);
  size_t size = 0;
  while (*p >= '0' && *p <= '9' && size < 100) size = size * 10 + (size_t)(*p++ - '0');
  bool is_valid = *p == '\0';
  if (is_valid && kind == 'f' && (size == 10 || size == 12 || size == 16))
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: dtype '%s' (extended-precision float) is not supported; "
                           "use float32 or float64",
                           label, h->info.descr);
  bool is_int_size = size == 1 || size == 2 || size == 4 || size == 8;
  switch (kind) {
  case 'f': h->info.kind = KIND_FLOAT; is_valid &= size == 2 || size == 4 || size == 8; break;
  case 'i': h->info.kind = KIND_INT; is_valid &= is_int_size; break;
  case 'u': h->info.kind = KIND_UINT; is_valid &= is_int_size; break;
  case 'b': h->info.kind = KIND_BOOL; is_valid &= size == 1; break;
  default: is_valid = false;
  }
  if (!is_valid)
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: dtype '%s' is not a NumPy dtype this reader understands; "
                           "use float32 or float64",
                           label, h->info.descr);
  h->info.itemsize = size;
  // '|' (not applicable) and '=' (native) both mean the writer's order, taken to be ours.
  h->is_big_endian = order == '>' || (order != '<' && npy_host_is_big_endian());
  return DAMRT_OK;
}

static DamrtStatus parse_descr(Cursor *c, Header *h) {
  if (c->p < c->end && *c->p == '[')
    return damrt_error_set(c->err, DAMRT_E_UNSUPPORTED,
                           "%s: structured dtypes (records of named fields) are not "
                           "supported; save each field as its own array",
                           c->label);
  if (c->p < c->end && *c->p == '(')
    return damrt_error_set(c->err, DAMRT_E_UNSUPPORTED,
                           "%s: subarray dtypes are not supported; save a plain array",
                           c->label);
  DamrtStatus status = parse_string(c, h->info.descr, "the dtype string for 'descr'");
  return status != DAMRT_OK ? status : interpret_descr(h, c->label, c->err);
}

static const char *const KEYS[3] = {"descr", "fortran_order", "shape"};

// The whole header: a dictionary with exactly the three keys, then only padding.
static DamrtStatus parse_header(Cursor *c, Header *h) {
  bool seen[3] = {false, false, false};
  skip_space(c);
  if (!eat(c, '{')) return malformed(c, "expected '{'");
  for (;;) {
    skip_space(c);
    if (eat(c, '}')) break;
    char key[STRING_MAX];
    DamrtStatus status = parse_string(c, key, "a key");
    if (status != DAMRT_OK) return status;
    int which = 0;
    while (which < 3 && strcmp(key, KEYS[which]) != 0) which++;
    if (which == 3)
      return malformed(c, "unexpected key '%s' (the keys are 'descr', 'fortran_order' and "
                          "'shape')", key);
    if (seen[which]) return malformed(c, "key '%s' appears twice", key);
    seen[which] = true;
    skip_space(c);
    if (!eat(c, ':')) return malformed(c, "expected ':' after '%s'", key);
    skip_space(c);
    status = which == 0 ? parse_descr(c, h)
           : which == 1 ? parse_bool(c, &h->info.fortran_order)
                        : parse_shape(c, h);
    if (status != DAMRT_OK) return status;
    skip_space(c);
    if (eat(c, ',')) continue;
    if (eat(c, '}')) break;
    return malformed(c, "expected ',' or '}' after the value of '%s'", key);
  }
  skip_space(c);
  if (c->p != c->end) return malformed(c, "unexpected text after '}'");
  for (int k = 0; k < 3; k++)
    if (!seen[k]) return malformed(c, "no '%s' key", KEYS[k]);
  if (h->info.rank > DAMRT_MAX_RANK)
    return damrt_error_set(c->err, DAMRT_E_UNSUPPORTED,
                           "%s: arrays of rank %d are not supported (at most %d dimensions)",
                           c->label, h->info.rank, DAMRT_MAX_RANK);
  return DAMRT_OK;
}

// ---------------------------------------------------------------------------------------
// Reading

// Reads until `n` bytes or the end of the source; stores the count in `*got`.
static DamrtStatus read_full(DamrtNpySource *src, void *buf, size_t n, size_t *got,
                             const char *label, DamrtError *err) {
  *got = 0;
  while (*got < n) {
    size_t step;
    DamrtStatus status = src->read(src->ctx, (char *)buf + *got, n - *got, &step, label, err);
    if (status != DAMRT_OK) return status;
    if (step == 0) break;
    *got += step;
  }
  return DAMRT_OK;
}

static uint32_t load_le(const uint8_t *p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint32_t)p[i] << (8 * i);
  return v;
}

DamrtStatus damrt_npy_load_header(DamrtNpySource *src, Header *h, const char *label,
                                  DamrtError *err) {
  memset(h, 0, sizeof *h);
  size_t *consumed = &h->consumed;
  uint8_t prelude[PRELUDE_SIZE + 4];
  size_t n;
  DamrtStatus status = read_full(src, prelude, PRELUDE_SIZE, &n, label, err);
  if (status != DAMRT_OK) return status;
  if (n == 0)
    return damrt_error_set(err, DAMRT_E_FORMAT, "%s: not a .npy file (it is empty)", label);
  if (memcmp(prelude, NPY_MAGIC, n < sizeof NPY_MAGIC ? n : sizeof NPY_MAGIC) != 0) {
    if (n >= 4 && memcmp(prelude, "PK\x03\x04", 4) == 0)
      return damrt_error_set(err, DAMRT_E_FORMAT,
                             "%s: not a .npy file (it is a zip archive: a .npz file?)", label);
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: not a .npy file (it does not start with \\x93NUMPY)", label);
  }
  if (n < PRELUDE_SIZE)
    return damrt_error_set(err, DAMRT_E_FORMAT, "%s: truncated .npy file (%zu bytes)", label,
                           n);
  unsigned major = prelude[6], minor = prelude[7];
  if (major < 1 || major > 3 || minor != 0)
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: unsupported .npy format version %u.%u (this reader knows 1.0, "
                           "2.0 and 3.0)",
                           label, major, minor);
  // Version 1.0 stores the header length in 2 bytes, later versions in 4.
  size_t len_size = major == 1 ? 2 : 4;
  status = read_full(src, prelude + PRELUDE_SIZE, len_size, &n, label, err);
  if (status != DAMRT_OK) return status;
  if (n < len_size)
    return damrt_error_set(err, DAMRT_E_FORMAT, "%s: truncated .npy file (%zu bytes)", label,
                           PRELUDE_SIZE + n);
  size_t header_len = load_le(prelude + PRELUDE_SIZE, len_size);
  size_t start = PRELUDE_SIZE + len_size;
  *consumed = start + header_len;
  if (header_len > HEADER_LIMIT)
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: header length %zu is implausibly large (the limit is %d "
                           "bytes)",
                           label, header_len, HEADER_LIMIT);
  if (src->has_size && src->size < *consumed)
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: truncated header: %zu bytes declared, only %zu present", label,
                           header_len, src->size > start ? src->size - start : 0);
  char *text = malloc(header_len + 1);
  if (!text) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  status = read_full(src, text, header_len, &n, label, err);
  if (status == DAMRT_OK && n < header_len) {
    status = damrt_error_set(err, DAMRT_E_FORMAT,
                             "%s: truncated header: %zu bytes declared, only %zu present",
                             label, header_len, n);
  } else if (status == DAMRT_OK) {
    Cursor c = {text, text, text + header_len, label, err};
    status = parse_header(&c, h);
  }
  free(text);
  if (status != DAMRT_OK) return status;
  DamrtNpyInfo *info = &h->info;
  for (int d = info->rank; d < DAMRT_MAX_RANK; d++) info->shape[d] = 1;
  if (!damrt_shape_count(info->rank, info->shape, info->itemsize, &info->count)) {
    char shape[DAMRT_SHAPE_TEXT_SIZE];
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: shape %s is too large (its byte size overflows)", label,
                           damrt_shape_format(shape, sizeof shape, info->rank, info->shape));
  }
  info->data_size = info->count * info->itemsize;
  return DAMRT_OK;
}

// One decoded element, kept in the widest type of its kind (bools as unsigned) so that the
// final cast to the requested float type is the single rounding NumPy's astype performs.
typedef struct {
  char kind;
  double f;
  int64_t i;
  uint64_t u;
} Scalar;

static double half_to_double(uint16_t bits) {
  int exponent = (bits >> 10) & 0x1f;
  int fraction = bits & 0x3ff;
  double v = exponent == 0    ? ldexp(fraction, -24)  // subnormal
             : exponent == 31 ? (fraction ? NAN : INFINITY)
                              : ldexp(fraction + 1024, exponent - 25);
  return bits & 0x8000 ? -v : v;
}

static Scalar decode(const uint8_t *p, const Header *h) {
  uint64_t bits = 0;
  for (size_t i = 0; i < h->info.itemsize; i++) {
    size_t at = h->is_big_endian ? i : h->info.itemsize - 1 - i;
    bits = bits << 8 | p[at];
  }
  Scalar v = {h->info.kind, 0, 0, 0};
  switch (h->info.kind) {
  case KIND_FLOAT:
    if (h->info.itemsize == 2) {
      v.f = half_to_double((uint16_t)bits);
    } else if (h->info.itemsize == 4) {
      uint32_t b32 = (uint32_t)bits;
      float f;
      memcpy(&f, &b32, sizeof f);
      v.f = f;
    } else {
      memcpy(&v.f, &bits, sizeof v.f);
    }
    break;
  case KIND_INT: {
    // Sign extension written without implementation-defined conversions.
    uint64_t sign = (uint64_t)1 << (8 * h->info.itemsize - 1);
    v.i = bits & sign ? -(int64_t)(~bits & (sign - 1)) - 1 : (int64_t)bits;
    break;
  }
  case KIND_UINT: v.u = bits; break;
  case KIND_BOOL: v.u = bits != 0; break;  // any nonzero byte is True, as in NumPy
  }
  return v;
}

static void store(DamrtTensor *t, size_t at, Scalar v) {
  if (t->dtype == DAMRT_F32) {
    float *d = t->data;
    d[at] = v.kind == KIND_FLOAT ? (float)v.f : v.kind == KIND_INT ? (float)v.i : (float)v.u;
  } else {
    double *d = t->data;
    d[at] = v.kind == KIND_FLOAT ? v.f : v.kind == KIND_INT ? (double)v.i : (double)v.u;
  }
}

// Walks the C-order positions of the elements of a Fortran-order file, in file order (first
// index fastest), without dividing per element.
typedef struct {
  int rank;
  size_t shape[DAMRT_MAX_RANK], stride[DAMRT_MAX_RANK], index[DAMRT_MAX_RANK];
  size_t at;  // C-order position of the current element
} FortranWalk;

static void walk_init(FortranWalk *w, const DamrtTensor *t) {
  w->rank = t->rank;
  w->at = 0;
  size_t stride = 1;
  for (int d = t->rank - 1; d >= 0; d--) {
    w->shape[d] = t->shape[d];
    w->stride[d] = stride;
    w->index[d] = 0;
    stride *= t->shape[d];
  }
}

static void walk_next(FortranWalk *w) {
  for (int d = 0; d < w->rank; d++) {
    w->at += w->stride[d];
    if (++w->index[d] < w->shape[d]) return;
    w->at -= w->shape[d] * w->stride[d];
    w->index[d] = 0;
  }
}

static const char *format_shape(const Header *h, char buf[DAMRT_SHAPE_TEXT_SIZE]) {
  return damrt_shape_format(buf, DAMRT_SHAPE_TEXT_SIZE, h->info.rank, h->info.shape);
}

static DamrtStatus truncated_data(const Header *h, size_t present, const char *label,
                                  DamrtError *err) {
  char shape[DAMRT_SHAPE_TEXT_SIZE];
  return damrt_error_set(err, DAMRT_E_FORMAT,
                         "%s: truncated data: shape %s of '%s' needs %zu bytes, only %zu "
                         "present",
                         label, format_shape(h, shape), h->info.descr, h->info.data_size,
                         present);
}

static DamrtStatus excess_data(const Header *h, const char *label, DamrtError *err) {
  char shape[DAMRT_SHAPE_TEXT_SIZE];
  return damrt_error_set(err, DAMRT_E_FORMAT,
                         "%s: unexpected bytes after the data (shape %s of '%s' needs %zu "
                         "bytes)",
                         label, format_shape(h, shape), h->info.descr, h->info.data_size);
}

// The value at flat C-order position `at` of `t` refused by DAMRT_READ_F32_RANGE.
static DamrtStatus out_of_range(const DamrtTensor *t, size_t at, double v, const char *label,
                                DamrtError *err) {
  size_t index[DAMRT_MAX_RANK];
  damrt_tensor_unravel(t, at, index);
  char where[DAMRT_SHAPE_TEXT_SIZE] = "[";  // "[3, 4]", as the engine names an element
  size_t len = 1;
  for (int i = 0; i < t->rank; i++)
    len += (size_t)snprintf(where + len, sizeof where - len, "%s%zu", i ? ", " : "", index[i]);
  snprintf(where + len, sizeof where - len, "]");
  // An infinity or a NaN is no number in any precision: said as the finiteness check says it.
  if (!isfinite(v))
    return damrt_error_set(err, DAMRT_E_VALUE, "%s has %s at %s", label,
                           isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", where);
  return damrt_error_set(err, DAMRT_E_VALUE, "%s: %.17g at %s does not fit float32 (largest "
                         "%.9g)", label, v, where, (double)FLT_MAX);
}

static uint32_t swap32(uint32_t x) { return __builtin_bswap32(x); }
static uint64_t swap64(uint64_t x) { return __builtin_bswap64(x); }

// Converts the `n` elements of a chunk of C-order data into `t` from element `next` on, with
// loops for the common cases; false (after `err`) for a value the flags refuse.
static DamrtStatus convert_chunk(const uint8_t *chunk, size_t n, const Header *h, bool range,
                                 DamrtTensor *t, size_t next, const char *label,
                                 DamrtError *err) {
  bool swap = h->is_big_endian != npy_host_is_big_endian();
  size_t itemsize = h->info.itemsize;
  if (h->info.kind == KIND_FLOAT && itemsize == 8 && !swap && t->dtype == DAMRT_F32) {
    // The common conversion, in a loop without an exit (vectorised); the range is checked
    // over the whole chunk, and the first value out of it looked for only when there is one.
    float *dst = (float *)t->data + next;
    bool bad = false;
    for (size_t k = 0; k < n; k++) {
      double v;
      memcpy(&v, chunk + 8 * k, 8);
      dst[k] = (float)v;
      bad |= !(fabs(v) <= FLT_MAX);
    }
    for (size_t k = 0; bad && range && k < n; k++) {
      double v;
      memcpy(&v, chunk + 8 * k, 8);
      if (!(fabs(v) <= FLT_MAX)) return out_of_range(t, next + k, v, label, err);
    }
    return DAMRT_OK;
  }
  if (h->info.kind == KIND_FLOAT && (itemsize == 4 || itemsize == 8)) {
    for (size_t k = 0; k < n; k++) {
      double v;
      if (itemsize == 8) {
        uint64_t b;
        memcpy(&b, chunk + 8 * k, 8);
        if (swap) b = swap64(b);
        memcpy(&v, &b, 8);
      } else {
        uint32_t b;
        float f;
        memcpy(&b, chunk + 4 * k, 4);
        if (swap) b = swap32(b);
        memcpy(&f, &b, 4);
        v = f;
      }
      if (t->dtype == DAMRT_F32) {
        if (range && itemsize == 8 && !(fabs(v) <= FLT_MAX))
          return out_of_range(t, next + k, v, label, err);
        ((float *)t->data)[next + k] = (float)v;
      } else {
        ((double *)t->data)[next + k] = v;
      }
    }
    return DAMRT_OK;
  }
  for (size_t k = 0; k < n; k++) store(t, next + k, decode(chunk + itemsize * k, h));
  return DAMRT_OK;
}

// Reads the `t->count` elements into `t` and checks that nothing follows them. Data in the
// tensor's float type is read straight into it (byte-swapped there when the file's order
// differs from the host's); anything else goes through one chunk buffer, converted as read.
static DamrtStatus read_data(DamrtNpySource *src, const Header *h, DamrtTensor *t,
                             const char *label, DamrtError *err) {
  size_t needed = h->info.data_size;
  size_t itemsize = h->info.itemsize;
  size_t present = 0, got;
  bool is_fortran = h->info.fortran_order && h->info.rank > 1;
  bool range = (src->flags & DAMRT_READ_F32_RANGE) && t->dtype == DAMRT_F32 &&
               h->info.kind == KIND_FLOAT && itemsize == 8;
  uint8_t chunk[CHUNK_SIZE];
  DamrtStatus status;
  if (h->info.kind == KIND_FLOAT && itemsize == damrt_dtype_size(t->dtype) && !is_fortran) {
    if (src->file) {
      status = damrt_file_read_at(src->file, h->consumed, t->data, needed, &present, label, err);
      if (status == DAMRT_OK && fseeko(src->file, (off_t)(h->consumed + present), SEEK_SET) != 0)
        status = damrt_error_errno(err, errno, "%s: cannot seek", label);
    } else {
      status = read_full(src, t->data, needed, &present, label, err);
    }
    if (status != DAMRT_OK) return status;
    if (h->is_big_endian != npy_host_is_big_endian() && present == needed) {
      if (itemsize == 4)
        for (uint32_t *p = t->data, *end = p + t->count; p < end; p++) *p = swap32(*p);
      else
        for (uint64_t *p = t->data, *end = p + t->count; p < end; p++) *p = swap64(*p);
    }
  } else {
    FortranWalk walk;
    walk_init(&walk, t);
    size_t next = 0;  // elements stored so far, in file order
    while (present < needed) {
      size_t want = needed - present < CHUNK_SIZE ? needed - present : CHUNK_SIZE;
      status = read_full(src, chunk, want, &got, label, err);
      if (status != DAMRT_OK) return status;
      present += got;
      size_t n = got / itemsize;
      if (!is_fortran) {
        status = convert_chunk(chunk, n, h, range, t, next, label, err);
        if (status != DAMRT_OK) return status;
        next += n;
      } else {
        bool raw = h->info.kind == KIND_FLOAT && itemsize == damrt_dtype_size(t->dtype) &&
                   h->is_big_endian == npy_host_is_big_endian();
        for (size_t k = 0; k < n && raw; k++, next++) {  // a copy to its C-order place
          memcpy((uint8_t *)t->data + walk.at * itemsize, chunk + k * itemsize, itemsize);
          walk_next(&walk);
        }
        for (size_t k = 0; k < n && !raw; k++, next++) {
          Scalar v = decode(chunk + k * itemsize, h);
          if (range && !(fabs(v.f) <= FLT_MAX)) return out_of_range(t, walk.at, v.f, label, err);
          store(t, walk.at, v);
          walk_next(&walk);
        }
      }
      if (got < want) break;
    }
  }
  if (present < needed) return truncated_data(h, present, label, err);
  // One byte more: there must be none, and for a zip member reaching the end is what makes
  // libzip check the CRC and the size.
  status = read_full(src, chunk, 1, &got, label, err);
  if (status != DAMRT_OK) return status;
  if (got > 0) return excess_data(h, label, err);
  return DAMRT_OK;
}

DamrtTensor *damrt_npy_load_data(DamrtNpySource *src, const Header *h, DamrtDtype want,
                                 const char *label, DamrtError *err) {
  size_t want_size = damrt_dtype_size(want);
  if (want_size == 0) {
    damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: unknown dtype %d requested", label, (int)want);
    return NULL;
  }
  const DamrtNpyInfo *info = &h->info;
  char shape[DAMRT_SHAPE_TEXT_SIZE];
  size_t count;
  if (!damrt_shape_count(info->rank, info->shape, want_size, &count)) {
    damrt_error_set(err, DAMRT_E_FORMAT, "%s: shape %s is too large (its byte size overflows)",
                    label, damrt_shape_format(shape, sizeof shape, info->rank, info->shape));
    return NULL;
  }
  // Checking the length first keeps a corrupt shape from causing a huge allocation.
  if (src->has_size) {
    size_t remaining = src->size > h->consumed ? src->size - h->consumed : 0;
    if (remaining < info->data_size) {
      truncated_data(h, remaining, label, err);
      return NULL;
    }
    if (remaining > info->data_size) {
      excess_data(h, label, err);
      return NULL;
    }
  }
  DamrtTensor *t = damrt_tensor_alloc(want, info->rank, info->shape, false, NULL);
  if (!t) {
    damrt_error_set(err, DAMRT_E_NOMEM, "%s: cannot allocate %zu elements for shape %s", label,
                    count, damrt_shape_format(shape, sizeof shape, info->rank, info->shape));
    return NULL;
  }
  if (read_data(src, h, t, label, err) != DAMRT_OK) {
    damrt_tensor_free(t);
    return NULL;
  }
  return t;
}

DamrtTensor *damrt_npy_load(DamrtNpySource *src, DamrtDtype want, const char *label,
                            DamrtError *err) {
  if (damrt_dtype_size(want) == 0) {
    damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: unknown dtype %d requested", label, (int)want);
    return NULL;
  }
  Header h;
  if (damrt_npy_load_header(src, &h, label, err) != DAMRT_OK) return NULL;
  return damrt_npy_load_data(src, &h, want, label, err);
}

// ---------------------------------------------------------------------------------------
// Sources

static DamrtStatus file_read(void *ctx, void *buf, size_t n, size_t *got, const char *label,
                             DamrtError *err) {
  FILE *f = ctx;
  *got = fread(buf, 1, n, f);
  if (*got < n && ferror(f))
    return damrt_error_errno(err, errno, "%s: read error", label);
  return DAMRT_OK;
}

typedef struct {
  const uint8_t *data;
  size_t size, pos;
} Memory;

static DamrtStatus memory_read(void *ctx, void *buf, size_t n, size_t *got, const char *label,
                               DamrtError *err) {
  Memory *m = ctx;
  *got = n < m->size - m->pos ? n : m->size - m->pos;
  memcpy(buf, m->data + m->pos, *got);
  m->pos += *got;
  return DAMRT_OK;
}

// Opens `path` as a source; NULL after a message.
static FILE *open_source(const char *path, DamrtNpySource *src, char label[DAMRT_LABEL_SIZE],
                         DamrtError *err) {
  damrt_path_label(path, label);
  *src = (DamrtNpySource){file_read, NULL, false, 0, 0, NULL};
  FILE *f = damrt_file_open_read(path, label, &src->has_size, &src->size, err);
  src->ctx = f;
  if (src->has_size) src->file = f;  // a regular file: pread works on it
  return f;
}

DamrtTensor *damrt_npy_read(const char *path, DamrtDtype want, DamrtError *err) {
  return damrt_npy_read_flags(path, want, 0, err);
}

DamrtTensor *damrt_npy_read_flags(const char *path, DamrtDtype want, unsigned flags,
                                  DamrtError *err) {
  DamrtNpySource src;
  char label[DAMRT_LABEL_SIZE];
  FILE *f = open_source(path, &src, label, err);
  if (!f) return NULL;
  src.flags = flags;
  DamrtTensor *t = damrt_npy_load(&src, want, label, err);
  fclose(f);
  return t;
}

DamrtStatus damrt_npy_read_info(const char *path, DamrtNpyInfo *info, DamrtError *err) {
  DamrtNpySource src;
  char label[DAMRT_LABEL_SIZE];
  FILE *f = open_source(path, &src, label, err);
  if (!f) return DAMRT_E_IO;
  Header h;
  DamrtStatus status = damrt_npy_load_header(&src, &h, label, err);
  fclose(f);
  if (status == DAMRT_OK) *info = h.info;
  return status;
}

DamrtTensor *damrt_npy_parse(const void *data, size_t size, DamrtDtype want,
                             const char *label, DamrtError *err) {
  Memory m = {data, size, 0};
  DamrtNpySource src = {memory_read, &m, true, size, 0, NULL};
  return damrt_npy_load(&src, want, label, err);
}

DamrtStatus damrt_npy_parse_info(const void *data, size_t size, DamrtNpyInfo *info,
                                 const char *label, DamrtError *err) {
  Memory m = {data, size, 0};
  DamrtNpySource src = {memory_read, &m, true, size, 0, NULL};
  Header h;
  DamrtStatus status = damrt_npy_load_header(&src, &h, label, err);
  if (status == DAMRT_OK) *info = h.info;
  return status;
}

// ---------------------------------------------------------------------------------------
// Writing

// numpy.save leaves room after the dictionary for the first dimension to grow to this many
// digits (GROWTH_AXIS_MAX_DIGITS), so the header can be rewritten in place when appending.
enum { GROWTH_DIGITS = 21 };

size_t damrt_npy_header(const DamrtTensor *t, char buf[DAMRT_NPY_HEADER_MAX]) {
  char descr[8];
  snprintf(descr, sizeof descr, "%cf%zu", npy_host_is_big_endian() ? '>' : '<',
           damrt_dtype_size(t->dtype));
  return damrt_npy_header_descr(t, descr, buf);
}

size_t damrt_npy_header_descr(const DamrtTensor *t, const char *descr,
                              char buf[DAMRT_NPY_HEADER_MAX]) {
  char shape[DAMRT_SHAPE_TEXT_SIZE];
  char dict[DAMRT_NPY_HEADER_MAX];
  size_t used = 0;
  dict[0] = '\0';
  damrt_appendf(dict, sizeof dict, &used, "{'descr': '%s', 'fortran_order': False, "
                "'shape': %s, }", descr,
                damrt_shape_format(shape, sizeof shape, t->rank, t->shape));
  if (t->rank > 0) {
    int digits = snprintf(NULL, 0, "%zu", t->shape[0]);
    for (int i = digits; i < GROWTH_DIGITS; i++) damrt_appendf(dict, sizeof dict, &used, " ");
  }
  // The prelude, dictionary and newline together fill whole 64-byte blocks.
  size_t total = (10 + used + 1 + 63) / 64 * 64;
  memcpy(buf, NPY_MAGIC, sizeof NPY_MAGIC);
  buf[6] = 1;
  buf[7] = 0;
  buf[8] = (char)((total - 10) & 0xff);
  buf[9] = (char)((total - 10) >> 8);
  memcpy(buf + 10, dict, used);
  memset(buf + 10 + used, ' ', total - 10 - used - 1);
  buf[total - 1] = '\n';
  return total;
}

DamrtStatus damrt_npy_write(const char *path, const DamrtTensor *t, DamrtError *err) {
  char label[DAMRT_LABEL_SIZE];
  DamrtStatus status = damrt_tensor_check(t, damrt_path_label(path, label), err);
  if (status != DAMRT_OK) return status;
  char header[DAMRT_NPY_HEADER_MAX];
  size_t header_len = damrt_npy_header(t, header);
  DamrtOutput *out = damrt_output_open(path, err);
  if (!out) return err ? err->code : DAMRT_E_IO;
  damrt_output_write(out, header, header_len, NULL);
  damrt_output_write(out, t->data, t->count * damrt_dtype_size(t->dtype), NULL);
  return damrt_output_commit(out, err);
}
