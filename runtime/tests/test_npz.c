// Unit tests of the .npz reader and writer: round trips through stored and deflated
// archives, keys, the messages for missing keys and damaged archives, and the atomic
// replacement when writing fails. (npy_interop.py checks archives written by NumPy.)
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "check.h"
#include "damrt.h"
#include "test_files.h"
#include "zip_builder.h"

typedef struct {
  DamrtTensor *w, *beta, *empty;
  DamrtNamedTensor items[3];
} Fixture;

static void fixture_new(Fixture *f) {
  size_t shape_w[2] = {2, 3}, shape_empty[2] = {0, 4};
  f->w = damrt_tensor_new(DAMRT_F64, 2, shape_w, NULL);
  for (int i = 0; i < 6; i++) ((double *)f->w->data)[i] = 1.0 / (i + 1);
  f->beta = damrt_tensor_new(DAMRT_F32, 0, NULL, NULL);
  *(float *)f->beta->data = 8.0f;
  f->empty = damrt_tensor_new(DAMRT_F32, 2, shape_empty, NULL);
  f->items[0] = (DamrtNamedTensor){"Xi", f->w, DAMRT_STORE_TENSOR};
  f->items[1] = (DamrtNamedTensor){"beta", f->beta, DAMRT_STORE_TENSOR};
  f->items[2] = (DamrtNamedTensor){"empty", f->empty, DAMRT_STORE_TENSOR};
}

static void fixture_free(Fixture *f) {
  damrt_tensor_free(f->w);
  damrt_tensor_free(f->beta);
  damrt_tensor_free(f->empty);
}

static unsigned char *find_bytes(unsigned char *hay, size_t size, const char *needle,
                                 size_t len) {
  for (size_t i = 0; i + len <= size; i++)
    if (memcmp(hay + i, needle, len) == 0) return hay + i;
  return NULL;
}

static mode_t new_file_mode(void) {
  mode_t mask = umask(0);
  umask(mask);
  return 0666 & ~mask;
}

// Checks that `npz` holds exactly the fixture's tensors.
static void check_contents(DamrtNpz *npz, const Fixture *f) {
  DamrtError err;
  CHECK_EQ(damrt_npz_count(npz), 3);
  CHECK_STREQ(damrt_npz_key(npz, 0), "Xi");
  CHECK_STREQ(damrt_npz_key(npz, 1), "beta");
  CHECK_STREQ(damrt_npz_key(npz, 2), "empty");
  CHECK(damrt_npz_has(npz, "beta") && !damrt_npz_has(npz, "Beta"));
  DamrtTensor *w = damrt_npz_read(npz, "Xi", DAMRT_F64, &err);
  CHECK(w && w->rank == 2 && w->shape[1] == 3 && memcmp(w->data, f->w->data, 48) == 0);
  DamrtTensor *w32 = damrt_npz_read(npz, "Xi", DAMRT_F32, &err);
  CHECK(w32 && ((float *)w32->data)[2] == (float)(1.0 / 3));
  DamrtTensor *beta = damrt_npz_read(npz, "beta", DAMRT_F64, &err);
  CHECK(beta && beta->rank == 0 && *(double *)beta->data == 8.0);
  DamrtTensor *empty = damrt_npz_read(npz, "empty", DAMRT_F32, &err);
  CHECK(empty && empty->count == 0 && empty->shape[1] == 4);
  damrt_tensor_free(w);
  damrt_tensor_free(w32);
  damrt_tensor_free(beta);
  damrt_tensor_free(empty);
}

static void test_round_trip(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  const DamrtNpzCompression modes[2] = {DAMRT_NPZ_STORED, DAMRT_NPZ_DEFLATED};
  for (int m = 0; m < 2; m++) {
    scratch_file(dir, m ? "deflated.npz" : "stored.npz", path, sizeof path);
    CHECK_EQ(damrt_npz_write(path, f->items, 3, modes[m], &err), DAMRT_OK);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == new_file_mode());
    DamrtNpz *npz = damrt_npz_open(path, &err);
    CHECK(npz != NULL);
    if (!npz) continue;
    check_contents(npz, f);
    CHECK(damrt_npz_read(npz, "xi", DAMRT_F64, &err) == NULL);
    CHECK_EQ(err.code, DAMRT_E_NOT_FOUND);
    snprintf(expected, sizeof expected,
             "'%s': no tensor 'xi'; the archive holds 'Xi', 'beta', 'empty'", path);
    CHECK_STREQ(err.message, expected);
    damrt_npz_close(npz);

    size_t size = 0;
    unsigned char *bytes = file_read_all(path, &size);
    npz = damrt_npz_open_memory(bytes, size, "mem.npz", &err);
    CHECK(npz != NULL);
    if (npz) check_contents(npz, f);
    damrt_npz_close(npz);
    free(bytes);
  }
  CHECK_EQ(scratch_count_temp(dir), 0);
}

static void test_empty_archive(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "none.npz", path, sizeof path);
  CHECK_EQ(damrt_npz_write(path, NULL, 0, DAMRT_NPZ_STORED, &err), DAMRT_OK);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 22 && memcmp(bytes, "PK\x05\x06", 4) == 0);
  free(bytes);
  DamrtNpz *npz = damrt_npz_open(path, &err);
  CHECK(npz && damrt_npz_count(npz) == 0);
  if (npz) {
    CHECK(damrt_npz_read(npz, "x", DAMRT_F64, &err) == NULL);
    snprintf(expected, sizeof expected, "'%s': no tensor 'x'; the archive holds no tensors",
             path);
    CHECK_STREQ(err.message, expected);
  }
  damrt_npz_close(npz);
}

static void test_bad_items(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "bad.npz", path, sizeof path);
  DamrtNamedTensor twice[2] = {{"a", f->w, DAMRT_STORE_TENSOR}, {"a", f->beta, DAMRT_STORE_TENSOR}};
  CHECK_EQ(damrt_npz_write(path, twice, 2, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected, "'%s': key 'a' is given twice", path);
  CHECK_STREQ(err.message, expected);
  DamrtNamedTensor unnamed[2] = {{"a", f->w, DAMRT_STORE_TENSOR}, {"", f->beta, DAMRT_STORE_TENSOR}};
  CHECK_EQ(damrt_npz_write(path, unnamed, 2, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected, "'%s': tensor 1 has an empty key", path);
  CHECK_STREQ(err.message, expected);
  DamrtTensor broken = *f->w;
  broken.count = 5;
  DamrtNamedTensor bad[1] = {{"w", &broken, DAMRT_STORE_TENSOR}};
  CHECK_EQ(damrt_npz_write(path, bad, 1, DAMRT_NPZ_STORED, &err), DAMRT_E_ARGUMENT);
  snprintf(expected, sizeof expected,
           "'%s': tensor 'w': element count 5 does not match the shape (2, 3)", path);
  CHECK_STREQ(err.message, expected);
  struct stat st;
  CHECK(stat(path, &st) != 0);  // nothing was created
  CHECK_EQ(scratch_count_temp(dir), 0);
}

static void test_write_failure(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "big.npz", path, sizeof path);
  file_write_all(path, "old", 3);
  size_t shape[1] = {100000};
  DamrtTensor *t = damrt_tensor_new(DAMRT_F64, 1, shape, NULL);
  DamrtNamedTensor items[1] = {{"t", t, DAMRT_STORE_TENSOR}};
  struct rlimit saved, small;
  getrlimit(RLIMIT_FSIZE, &saved);
  small = saved;
  small.rlim_cur = 65536;
  signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  DamrtStatus status = damrt_npz_write(path, items, 1, DAMRT_NPZ_STORED, &err);
  setrlimit(RLIMIT_FSIZE, &saved);
  CHECK_EQ(status, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot write: File too large", path);
  CHECK_STREQ(err.message, expected);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(bytes && size == 3 && memcmp(bytes, "old", 3) == 0);
  free(bytes);
  CHECK_EQ(scratch_count_temp(dir), 0);

  scratch_file(dir, "missing/x.npz", path, sizeof path);
  CHECK_EQ(damrt_npz_write(path, items, 1, DAMRT_NPZ_DEFLATED, &err), DAMRT_E_IO);
  CHECK(strstr(err.message, "cannot create a temporary file in its directory") != NULL);
  damrt_tensor_free(t);
}

static void test_open_failures(const ScratchDir *dir, const Fixture *f) {
  DamrtError err;
  char path[512], expected[2048];
  scratch_file(dir, "nonexistent.npz", path, sizeof path);
  CHECK(damrt_npz_open(path, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_IO);
  snprintf(expected, sizeof expected, "'%s': cannot open: No such file or directory", path);
  CHECK_STREQ(err.message, expected);

  CHECK(damrt_npz_open(dir->path, &err) == NULL);
  snprintf(expected, sizeof expected, "'%s': is a directory", dir->path);
  CHECK_STREQ(err.message, expected);

  const char *not_zip = "this is not an archive at all";
  const char *why = ": not a zip archive, or a truncated one (no end-of-central-directory "
                    "record); a .npz file is a zip archive of .npy files";
  CHECK(damrt_npz_open_memory(not_zip, strlen(not_zip), "t.npz", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  snprintf(expected, sizeof expected, "t.npz%s", why);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open_memory("", 0, "t.npz", &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  CHECK_STREQ(err.message, "t.npz: not a zip archive (it is empty)");

  // Cut and damaged copies of a stored archive.
  scratch_file(dir, "good.npz", path, sizeof path);
  damrt_npz_write(path, f->items, 3, DAMRT_NPZ_STORED, &err);
  size_t size;
  unsigned char *bytes = file_read_all(path, &size);
  CHECK(damrt_npz_open_memory(bytes, size - 1, "t.npz", &err) == NULL);
  CHECK_STREQ(err.message, expected);
  CHECK(damrt_npz_open_memory(bytes, size / 2, "t.npz", &err) == NULL);
  CHECK_STREQ(err.message, expected);
  // Flip the first data byte of 'Xi' (the first member; its .npy header is 128 bytes).
  unsigned char *npy = find_bytes(bytes, size, "\x93NUMPY", 6);
  npy[128] ^= 0x40;
  DamrtNpz *npz = damrt_npz_open_memory(bytes, size, "t.npz", &err);
  CHECK(npz != NULL);
  if (npz) {
    CHECK(damrt_npz_read(npz, "Xi", DAMRT_F64, &err) == NULL);
    CHECK_EQ(err.code, DAMRT_E_FORMAT);
    CHECK_STREQ(err.message, "t.npz: tensor 'Xi': corrupt data (CRC mismatch)");
    DamrtTensor *beta = damrt_npz_read(npz, "beta", DAMRT_F64, &err);
    CHECK(beta != NULL);
    damrt_tensor_free(beta);
  }
  damrt_npz_close(npz);
  free(bytes);
}

// ---------------------------------------------------------------------------------------
// Crafted archives: reading never exhausts memory

static const char BIG_DICT[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (268435456,), }";
enum { BIG_BYTES_LOG2 = 31, MIB = 1 << 20 };

// A raw deflate stream of `prefix` followed by 2^31 zero bytes, about 2 MB: the 1 MiB blocks
// of zeros after the first all encode identically (a sync flush ends each one on a byte
// boundary, and their matches only reach back to zeros), so one is repeated.
static unsigned char *deflate_zeros(const unsigned char *prefix, size_t prefix_size,
                                    size_t *size, uint32_t *crc) {
  unsigned char *zeros = calloc(1, MIB);
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  size_t cap = 4 * MIB, used = 0;
  unsigned char *out = malloc(cap);
  size_t block_start = 0, block_size = 0;
  for (int round = 0; round < 3; round++) {
    z.next_in = round == 0 ? (Bytef *)prefix : zeros;
    z.avail_in = round == 0 ? (uInt)prefix_size : MIB;
    z.next_out = out + used;
    z.avail_out = (uInt)(cap - used);
    deflate(&z, Z_SYNC_FLUSH);
    size_t produced = cap - used - z.avail_out;
    if (round == 2) {
      block_start = used;
      block_size = produced;
    }
    used += produced;
  }
  deflateEnd(&z);
  // Rounds 1 and 2 gave 2 MiB of zeros; 2046 more copies of round 2's block.
  size_t copies = ((size_t)1 << (BIG_BYTES_LOG2 - 20)) - 2;
  out = realloc(out, used + copies * block_size + 5);
  for (size_t i = 0; i < copies; i++) {
    memcpy(out + used, out + block_start, block_size);
    used += block_size;
  }
  memcpy(out + used, "\x01\x00\x00\xff\xff", 5);  // a final, empty stored block
  used += 5;
  uLong zero_crc = crc32(0, zeros, MIB);
  for (int i = 20; i < BIG_BYTES_LOG2; i++)
    zero_crc = crc32_combine(zero_crc, zero_crc, (z_off_t)1 << i);
  *crc = (uint32_t)crc32_combine(crc32(0, prefix, (uInt)prefix_size), zero_crc,
                                 (z_off_t)1 << BIG_BYTES_LOG2);
  free(zeros);
  *size = used;
  return out;
}

// A zip archive of one deflated member whose compressed data is given.
static unsigned char *zip_one_raw(const char *name, const unsigned char *comp, size_t comp_size,
                                  uint32_t crc, uint32_t usize, size_t *size) {
  ZipBytes b = {NULL, 0, 0}, dir = {NULL, 0, 0};
  unsigned name_len = (unsigned)strlen(name);
  for (int central = 0; central < 2; central++) {
    ZipBytes *h = central ? &dir : &b;
    zip_u32(h, central ? 0x02014b50 : 0x04034b50);
    if (central) zip_u16(h, 20);
    zip_u16(h, 20);
    zip_u16(h, 0);
    zip_u16(h, 8);
    zip_u16(h, 0);
    zip_u16(h, 0x21);
    zip_u32(h, crc);
    zip_u32(h, (uint32_t)comp_size);
    zip_u32(h, usize);
    zip_u16(h, name_len);
    zip_u16(h, 0);
    if (central) {
      zip_u16(h, 0);
      zip_u16(h, 0);
      zip_u16(h, 0);
      zip_u32(h, 0);
      zip_u32(h, 0);
    }
    zip_put(h, name, name_len);
    if (!central) zip_put(h, comp, comp_size);
  }
  uint32_t dir_offset = (uint32_t)b.size;
  zip_put(&b, dir.data, dir.size);
  zip_u32(&b, 0x06054b50);
  zip_u16(&b, 0);
  zip_u16(&b, 0);
  zip_u16(&b, 1);
  zip_u16(&b, 1);
  zip_u32(&b, (uint32_t)dir.size);
  zip_u32(&b, dir_offset);
  zip_u16(&b, 0);
  free(dir.data);
  *size = b.size;
  return b.data;
}

typedef struct {
  const char *path;
  const char *key;
} ReadCase;

// Reads `key` without looking at its header first and reports the growth of the peak
// resident set in the message: "STATUS KIB MESSAGE". Exits 0.
static int read_blind(void *arg, char *message, size_t cap) {
  const ReadCase *c = arg;
  DamrtError err = {DAMRT_OK, ""};
  long before = peak_rss_kib();
  DamrtNpz *npz = damrt_npz_open(c->path, &err);
  DamrtTensor *t = npz ? damrt_npz_read(npz, c->key, DAMRT_F64, &err) : NULL;
  long grown = peak_rss_kib() - before;
  snprintf(message, cap, "%d %ld %s", t ? 0 : (int)err.code, grown, err.message);
  damrt_tensor_free(t);
  damrt_npz_close(npz);
  return 0;
}

static void test_huge_declared_shape(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048], message[2048];
  size_t header_size;
  unsigned char *header = npy_build(BIG_DICT, NULL, 0, &header_size);

  // An honest archive of 2 GiB of zeros, 2 MB on disk: the caller sees the shape from the
  // header and refuses it, having inflated a few hundred bytes.
  size_t comp_size, size;
  uint32_t crc;
  unsigned char *comp = deflate_zeros(header, header_size, &comp_size, &crc);
  unsigned char *zip = zip_one_raw("Xi.npy", comp, comp_size, crc,
                                   (uint32_t)(header_size + ((size_t)1 << BIG_BYTES_LOG2)),
                                   &size);
  CHECK(size < 3 * MIB);
  scratch_file(dir, "bomb.npz", path, sizeof path);
  file_write_all(path, zip, size);
  free(zip);
  free(comp);
  long before = peak_rss_kib();
  DamrtNpz *npz = damrt_npz_open(path, &err);
  CHECK(npz != NULL);
  DamrtNpyInfo info;
  memset(&info, 0, sizeof info);
  CHECK_EQ(damrt_npz_member_info(npz, "Xi", &info, &err), DAMRT_OK);
  CHECK_STREQ(info.descr, "<f8");
  CHECK(info.kind == 'f' && info.itemsize == 8 && !info.fortran_order && info.rank == 1);
  CHECK(info.shape[0] == 268435456 && info.shape[1] == 1 && info.count == 268435456);
  CHECK(info.data_size == (size_t)1 << BIG_BYTES_LOG2);
  if (!UNDER_ASAN) CHECK(peak_rss_kib() - before < 16 * 1024);
  damrt_npz_close(npz);

  // 1 MiB of zeros where the header declares 2 GiB. With honest zip sizes the reader
  // refuses before allocating; with sizes that lie as much as the header, it allocates the
  // declared size but touches only what it inflates, and fails on the missing data.
  size_t npy_size;
  unsigned char *npy = npy_build(BIG_DICT, NULL, MIB, &npy_size);
  for (int lie = 0; lie < 2; lie++)
    for (int deflated = 0; deflated < 2; deflated++) {
      ZipMember m = {"Xi.npy", npy, npy_size, deflated,
                     lie ? (uint32_t)(header_size + ((size_t)1 << BIG_BYTES_LOG2)) : 0};
      zip = zip_build(&m, 1, &size);
      CHECK(deflated || (size > MIB && size < MIB + 1024));
      scratch_file(dir, "short.npz", path, sizeof path);
      file_write_all(path, zip, size);
      free(zip);
      ReadCase c = {path, "Xi"};
      run_in_child(read_blind, &c, message, sizeof message);
      int code = -1;
      long grown = -1;
      int at = 0;
      sscanf(message, "%d %ld %n", &code, &grown, &at);
      if (!lie) {
        CHECK_EQ(code, DAMRT_E_FORMAT);
        snprintf(expected, sizeof expected,
                 "'%s': tensor 'Xi': truncated data: shape (268435456,) of '<f8' needs "
                 "2147483648 bytes, only 1048576 present",
                 path);
        CHECK_STREQ(message + at, expected);
      } else {
        // Refused by libzip's size check or by the reader, or (strict overcommit) by the
        // allocation: never read.
        CHECK(code == DAMRT_E_FORMAT || code == DAMRT_E_NOMEM);
        snprintf(expected, sizeof expected, "'%s': tensor 'Xi': ", path);
        CHECK(strncmp(message + at, expected, strlen(expected)) == 0);
      }
      // The peak memory grew by what was inflated (1 MiB, plus libzip's buffers), not by
      // the 2 GiB declared. (AddressSanitizer's shadow of the allocation would count.)
      if (!UNDER_ASAN) CHECK(grown >= 0 && grown < 32 * 1024);
    }
  free(npy);
  free(header);
}

static void test_member_sizes(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  // Declared (2,) float64 = 16 bytes; the members hold 24 and 8.
  const double values[3] = {1, 2, 3};
  size_t long_size, short_size, good_size, size;
  unsigned char *longer = npy_build("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                    values, 24, &long_size);
  unsigned char *shorter = npy_build("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                     values, 8, &short_size);
  unsigned char *good = npy_build("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                  values, 16, &good_size);
  scratch_file(dir, "sizes.npz", path, sizeof path);
  for (int deflated = 0; deflated < 2; deflated++) {
    ZipMember m[4] = {
        {"long.npy", longer, long_size, deflated, 0},
        {"short.npy", shorter, short_size, deflated, 0},
        // Directory sizes that lie: the data really holds 24 and 8 bytes.
        {"long_lie.npy", longer, long_size, deflated, (uint32_t)good_size},
        {"short_lie.npy", shorter, short_size, deflated, (uint32_t)good_size},
    };
    unsigned char *zip = zip_build(m, 4, &size);
    file_write_all(path, zip, size);
    free(zip);
    DamrtNpz *npz = damrt_npz_open(path, &err);
    CHECK(npz && damrt_npz_count(npz) == 4);
    if (!npz) continue;
    CHECK(damrt_npz_read(npz, "long", DAMRT_F64, &err) == NULL);
    snprintf(expected, sizeof expected,
             "'%s': tensor 'long': unexpected bytes after the data (shape (2,) of '<f8' needs "
             "16 bytes)",
             path);
    CHECK_STREQ(err.message, expected);
    CHECK(damrt_npz_read(npz, "short", DAMRT_F64, &err) == NULL);
    snprintf(expected, sizeof expected,
             "'%s': tensor 'short': truncated data: shape (2,) of '<f8' needs 16 bytes, only 8 "
             "present",
             path);
    CHECK_STREQ(err.message, expected);
    const char *lies[2] = {"long_lie", "short_lie"};
    for (int i = 0; i < 2; i++) {
      CHECK(damrt_npz_read(npz, lies[i], DAMRT_F64, &err) == NULL);
      CHECK_EQ(err.code, DAMRT_E_FORMAT);
      snprintf(expected, sizeof expected, "'%s': tensor '%s': ", path, lies[i]);
      CHECK(strncmp(err.message, expected, strlen(expected)) == 0);
    }
    damrt_npz_close(npz);
  }
  free(longer);
  free(shorter);
  free(good);
}

// Members named with or without ".npy", as numpy.load reads them.
static void test_member_names(const ScratchDir *dir) {
  DamrtError err;
  char path[512], expected[2048];
  const double values[2] = {4, 5};
  size_t npy_size, empty_size, size;
  unsigned char *npy = npy_build("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                                 values, 16, &npy_size);
  unsigned char *empty = npy_build("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }",
                                   NULL, 0, &empty_size);
  ZipMember m[6] = {
      {"Xi", npy, npy_size, false, 0},            // no suffix, a .npy inside: the array Xi
      {"beta.npy", npy, npy_size, true, 0},
      {"notes.txt", "not an array", 12, false, 0},
      {"sub/", "", 0, false, 0},
      {"ab", "\x93NUM", 4, false, 0},             // too short for the magic: not an array
      {"zero.npy", empty, empty_size, false, 0},
  };
  scratch_file(dir, "names.npz", path, sizeof path);
  unsigned char *zip = zip_build(m, 6, &size);
  file_write_all(path, zip, size);
  free(zip);
  DamrtNpz *npz = damrt_npz_open(path, &err);
  CHECK(npz && damrt_npz_count(npz) == 3);
  if (npz) {
    CHECK_STREQ(damrt_npz_key(npz, 0), "Xi");
    CHECK_STREQ(damrt_npz_key(npz, 1), "beta");
    CHECK_STREQ(damrt_npz_key(npz, 2), "zero");
    CHECK(!damrt_npz_has(npz, "notes.txt") && !damrt_npz_has(npz, "Xi.npy"));
    for (int k = 0; k < 2; k++) {
      DamrtTensor *t = damrt_npz_read(npz, k ? "beta" : "Xi", DAMRT_F32, &err);
      CHECK(t && t->count == 2 && ((float *)t->data)[1] == 5);
      CHECK(t && !damrt_tensor_has_zero_size(t));
      damrt_tensor_free(t);
    }
    // A zero dimension is read (NumPy allows it) and can be told.
    DamrtNpyInfo info;
    CHECK_EQ(damrt_npz_member_info(npz, "zero", &info, &err), DAMRT_OK);
    CHECK(info.rank == 2 && info.count == 0 && info.data_size == 0 && info.shape[1] == 3);
    DamrtTensor *t = damrt_npz_read(npz, "zero", DAMRT_F64, &err);
    CHECK(t && damrt_tensor_has_zero_size(t) && t->shape[0] == 0 && t->shape[1] == 3);
    damrt_tensor_free(t);
    CHECK_EQ(damrt_npz_member_info(npz, "notes.txt", &info, &err), DAMRT_E_NOT_FOUND);
    snprintf(expected, sizeof expected,
             "'%s': no tensor 'notes.txt'; the archive holds 'Xi', 'beta', 'zero'", path);
    CHECK_STREQ(err.message, expected);
  }
  damrt_npz_close(npz);

  // "Xi" and "Xi.npy" both: ambiguous, refused.
  ZipMember twice[2] = {{"Xi.npy", npy, npy_size, false, 0}, {"Xi", npy, npy_size, true, 0}};
  zip = zip_build(twice, 2, &size);
  file_write_all(path, zip, size);
  free(zip);
  CHECK(damrt_npz_open(path, &err) == NULL);
  CHECK_EQ(err.code, DAMRT_E_FORMAT);
  snprintf(expected, sizeof expected,
           "'%s': members 'Xi.npy' and 'Xi' both hold the array 'Xi'", path);
  CHECK_STREQ(err.message, expected);

  // A member's header read alone; a refused dtype fails there already.
  size_t c16_size;
  unsigned char *c16 = npy_build("{'descr': '<c16', 'fortran_order': True, 'shape': (2, 2), }",
                                 NULL, 64, &c16_size);
  ZipMember mixed[2] = {{"w.npy", npy, npy_size, true, 0}, {"c.npy", c16, c16_size, true, 0}};
  zip = zip_build(mixed, 2, &size);
  npz = damrt_npz_open_memory(zip, size, "mem.npz", &err);
  CHECK(npz != NULL);
  if (npz) {
    DamrtNpyInfo info;
    CHECK_EQ(damrt_npz_member_info(npz, "c", &info, &err), DAMRT_E_UNSUPPORTED);
    CHECK_STREQ(err.message, "mem.npz: tensor 'c': dtype '<c16' (complex) is not supported; "
                             "use float32 or float64");
    CHECK_EQ(damrt_npz_member_info(npz, "w", &info, &err), DAMRT_OK);
    CHECK(info.rank == 1 && info.shape[0] == 2 && info.data_size == 16);
  }
  damrt_npz_close(npz);
  free(zip);
  free(c16);
  free(npy);
  free(empty);
}

int main(void) {
  ScratchDir dir;
  scratch_new(&dir);
  Fixture f;
  fixture_new(&f);
  test_round_trip(&dir, &f);
  test_empty_archive(&dir);
  test_bad_items(&dir, &f);
  test_write_failure(&dir);
  test_open_failures(&dir, &f);
  test_huge_declared_shape(&dir);
  test_member_sizes(&dir);
  test_member_names(&dir);
  fixture_free(&f);
  scratch_free(&dir);
  return check_report("runtime/npz");
}
