// The .npz reader and writer over libzip (see damrt_npz.h).
//
// Opening reads the zip directory once (libzip with ZIP_CHECKCONS, which also refuses
// duplicate names) and keeps the index of every .npy member; reading a key streams that
// member through the .npy reader, which checks lengths against the member's declared size.
// Reading one byte past the data makes libzip reach the end of the member, where it checks
// the CRC, so a corrupt member is reported even when its length is right. Writing hands
// libzip a two-fragment source per member (the encoded .npy header and the tensor's own
// data, not copied) and lets it store or deflate them into a temporary file.
#include "damrt_npz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "fileio.h"
#include "npy_stream.h"
#include "util.h"

typedef struct {
  char *key;           // member name without ".npy"; owned
  zip_uint64_t index;  // libzip's index of the member
} Member;

struct DamrtNpz {
  zip_t *zip;
  char *label;  // the path or the caller's label, for messages; owned
  Member *members;
  size_t count;
};

// Sets `err` from a libzip error `ze` met while working on `label`, choosing the status and
// explaining the codes that a damaged or unusual archive produces.
static DamrtStatus zip_failure(DamrtError *err, const char *label, zip_error_t *ze) {
  switch (zip_error_code_zip(ze)) {
  case ZIP_ER_NOZIP:
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: not a zip archive, or a truncated one (no end-of-central-"
                           "directory record); a .npz file is a zip archive of .npy files",
                           label);
  case ZIP_ER_EXISTS:
    return damrt_error_set(err, DAMRT_E_FORMAT,
                           "%s: corrupt archive: two members have the same name", label);
  case ZIP_ER_CRC:
    return damrt_error_set(err, DAMRT_E_FORMAT, "%s: corrupt data (CRC mismatch)", label);
  case ZIP_ER_COMPNOTSUPP:
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: the member is compressed with a method other than deflate, "
                           "which is not supported",
                           label);
  case ZIP_ER_ENCRNOTSUPP:
  case ZIP_ER_NOPASSWD:
  case ZIP_ER_WRONGPASSWD:
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: encrypted members are not supported", label);
  case ZIP_ER_MEMORY:
    return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  case ZIP_ER_OPEN:
  case ZIP_ER_READ:
  case ZIP_ER_SEEK:
    return damrt_error_set(err, DAMRT_E_IO, "%s: %s", label, zip_error_strerror(ze));
  }
  return damrt_error_set(err, DAMRT_E_FORMAT, "%s: corrupt archive (%s)", label,
                         zip_error_strerror(ze));
}

static bool has_npy_suffix(const char *name) {
  size_t len = strlen(name);
  return len >= 4 && strcmp(name + len - 4, ".npy") == 0;
}

// Opens the archive in `src` (which it takes over, freeing it on failure) and indexes its
// .npy members. `is_empty` says that the source has no bytes at all, which libzip would
// take for an empty archive, but NumPy (and any zip tool) refuses.
static DamrtNpz *open_source(zip_source_t *src, bool is_empty, const char *label,
                             DamrtError *err) {
  if (is_empty) {
    damrt_error_set(err, DAMRT_E_FORMAT, "%s: not a zip archive (it is empty)", label);
    zip_source_free(src);
    return NULL;
  }
  zip_error_t ze;
  zip_error_init(&ze);
  zip_t *zip = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
  if (!zip) {
    zip_failure(err, label, &ze);
    zip_error_fini(&ze);
    zip_source_free(src);
    return NULL;
  }
  zip_error_fini(&ze);
  zip_int64_t entries = zip_get_num_entries(zip, 0);
  DamrtNpz *npz = calloc(1, sizeof *npz);
  if (npz) {
    npz->zip = zip;
    npz->label = strdup(label);
    npz->members = calloc(entries > 0 ? (size_t)entries : 1, sizeof *npz->members);
  }
  if (!npz || !npz->label || !npz->members) {
    damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
    if (npz) damrt_npz_close(npz);
    else zip_discard(zip);
    return NULL;
  }
  for (zip_int64_t i = 0; i < entries; i++) {
    const char *name = zip_get_name(zip, (zip_uint64_t)i, 0);
    if (!name) {
      zip_failure(err, label, zip_get_error(zip));
      damrt_npz_close(npz);
      return NULL;
    }
    if (!has_npy_suffix(name)) continue;
    Member *m = &npz->members[npz->count];
    m->key = strndup(name, strlen(name) - 4);
    m->index = (zip_uint64_t)i;
    if (!m->key) {
      damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
      damrt_npz_close(npz);
      return NULL;
    }
    npz->count++;
  }
  return npz;
}

DamrtNpz *damrt_npz_open(const char *path, DamrtError *err) {
  bool has_size;
  size_t size;
  FILE *f = damrt_file_open_read(path, &has_size, &size, err);
  if (!f) return NULL;
  zip_error_t ze;
  zip_error_init(&ze);
  // On success the source owns `f` and closes it when the archive is closed.
  zip_source_t *src = zip_source_filep_create(f, 0, -1, &ze);
  if (!src) {
    zip_failure(err, path, &ze);
    zip_error_fini(&ze);
    fclose(f);
    return NULL;
  }
  zip_error_fini(&ze);
  return open_source(src, has_size && size == 0, path, err);
}

DamrtNpz *damrt_npz_open_memory(const void *data, size_t size, const char *label,
                                DamrtError *err) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t *src = zip_source_buffer_create(data, size, 0, &ze);
  if (!src) {
    zip_failure(err, label, &ze);
    zip_error_fini(&ze);
    return NULL;
  }
  zip_error_fini(&ze);
  return open_source(src, size == 0, label, err);
}

void damrt_npz_close(DamrtNpz *npz) {
  if (!npz) return;
  // Read-only, so discarding is closing: there are no changes to write.
  zip_discard(npz->zip);
  for (size_t i = 0; i < npz->count; i++) free(npz->members[i].key);
  free(npz->members);
  free(npz->label);
  free(npz);
}

size_t damrt_npz_count(const DamrtNpz *npz) { return npz->count; }

const char *damrt_npz_key(const DamrtNpz *npz, size_t i) { return npz->members[i].key; }

static const Member *find_member(const DamrtNpz *npz, const char *key) {
  for (size_t i = 0; i < npz->count; i++)
    if (strcmp(npz->members[i].key, key) == 0) return &npz->members[i];
  return NULL;
}

bool damrt_npz_has(const DamrtNpz *npz, const char *key) { return find_member(npz, key); }

static DamrtStatus not_found(const DamrtNpz *npz, const char *key, DamrtError *err) {
  if (npz->count == 0)
    return damrt_error_set(err, DAMRT_E_NOT_FOUND,
                           "%s: no tensor '%s'; the archive holds no tensors", npz->label,
                           key);
  char keys[DAMRT_ERROR_MESSAGE_SIZE];
  size_t used = 0;
  keys[0] = '\0';
  for (size_t i = 0; i < npz->count; i++)
    damrt_appendf(keys, sizeof keys, &used, i ? ", '%s'" : "'%s'", npz->members[i].key);
  return damrt_error_set(err, DAMRT_E_NOT_FOUND, "%s: no tensor '%s'; the archive holds %s",
                         npz->label, key, keys);
}

static DamrtStatus member_read(void *ctx, void *buf, size_t n, size_t *got, const char *label,
                               DamrtError *err) {
  zip_file_t *member = ctx;
  zip_int64_t r = zip_fread(member, buf, n);
  if (r < 0) {
    *got = 0;
    return zip_failure(err, label, zip_file_get_error(member));
  }
  *got = (size_t)r;
  return DAMRT_OK;
}

DamrtTensor *damrt_npz_read(DamrtNpz *npz, const char *key, DamrtDtype want,
                            DamrtError *err) {
  const Member *m = find_member(npz, key);
  if (!m) {
    not_found(npz, key, err);
    return NULL;
  }
  char label[DAMRT_ERROR_MESSAGE_SIZE];
  snprintf(label, sizeof label, "%s: tensor '%s'", npz->label, key);
  zip_file_t *member = zip_fopen_index(npz->zip, m->index, 0);
  if (!member) {
    zip_failure(err, label, zip_get_error(npz->zip));
    return NULL;
  }
  DamrtNpySource src = {member_read, member, false, 0};
  zip_stat_t st;
  if (zip_stat_index(npz->zip, m->index, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE)) {
    src.has_size = true;
    src.size = st.size;
  }
  DamrtTensor *t = damrt_npy_load(&src, want, label, err);
  zip_fclose(member);
  return t;
}

// What numpy.savez writes with no arrays: a lone end-of-central-directory record. libzip
// cannot produce it (closing an empty archive deletes the file instead).
static const char EMPTY_ZIP[22] = "PK\x05\x06";

static DamrtStatus check_items(const char *path, const DamrtNamedTensor *items, size_t n,
                               DamrtError *err) {
  for (size_t i = 0; i < n; i++) {
    const char *key = items[i].key;
    if (!key || !*key)
      return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: tensor %zu has an empty key", path,
                             i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(items[j].key, key) == 0)
        return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: key '%s' is given twice", path,
                               key);
    char label[DAMRT_ERROR_MESSAGE_SIZE];
    snprintf(label, sizeof label, "%s: tensor '%s'", path, key);
    DamrtStatus status = damrt_tensor_check(items[i].tensor, label, err);
    if (status != DAMRT_OK) return status;
  }
  return DAMRT_OK;
}

static DamrtStatus write_empty(const char *temp, const char *path, DamrtError *err) {
  FILE *f = fopen(temp, "wb");
  bool is_ok = f && fwrite(EMPTY_ZIP, 1, sizeof EMPTY_ZIP, f) == sizeof EMPTY_ZIP;
  if (f && fclose(f) != 0) is_ok = false;
  if (is_ok) return DAMRT_OK;
  return damrt_error_errno(err, errno, "%s: cannot write", path);
}

// Adds one member to `zip`; `header` must stay valid until the archive is closed.
static DamrtStatus add_member(zip_t *zip, const char *path, const DamrtNamedTensor *item,
                              DamrtNpzCompression compression, char *header, DamrtError *err) {
  const DamrtTensor *t = item->tensor;
  zip_buffer_fragment_t parts[2] = {
      {(zip_uint8_t *)header, damrt_npy_header(t, header)},
      {t->data, t->count * damrt_dtype_size(t->dtype)},
  };
  size_t name_len = strlen(item->key) + 5;
  char *name = malloc(name_len);
  if (!name) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", path);
  snprintf(name, name_len, "%s.npy", item->key);
  zip_error_t ze;
  zip_error_init(&ze);
  DamrtStatus status = DAMRT_OK;
  zip_source_t *src = zip_source_buffer_fragment_create(parts, 2, 0, &ze);
  if (!src) {
    status = zip_failure(err, path, &ze);
  } else {
    // libzip copies the name; on success the archive owns `src`.
    zip_int64_t index = zip_file_add(zip, name, src, 0);
    zip_int32_t method = compression == DAMRT_NPZ_STORED ? ZIP_CM_STORE : ZIP_CM_DEFLATE;
    if (index < 0) zip_source_free(src);
    if (index < 0 || zip_set_file_compression(zip, (zip_uint64_t)index, method, 0) != 0)
      status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot add '%s': %s", path, name,
                               zip_strerror(zip));
  }
  zip_error_fini(&ze);
  free(name);
  return status;
}

static DamrtStatus write_archive(const char *temp, const char *path,
                                 const DamrtNamedTensor *items, size_t n,
                                 DamrtNpzCompression compression, DamrtError *err) {
  int code;
  zip_t *zip = zip_open(temp, ZIP_TRUNCATE, &code);
  if (!zip) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    DamrtStatus status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot create the archive: %s",
                                         path, zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return status;
  }
  char *headers = malloc(n * DAMRT_NPY_HEADER_MAX);
  DamrtStatus status = DAMRT_OK;
  if (!headers) status = damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < n && status == DAMRT_OK; i++)
    status = add_member(zip, path, &items[i], compression, headers + i * DAMRT_NPY_HEADER_MAX,
                        err);
  // zip_close is where libzip reads the sources, compresses and writes everything.
  if (status == DAMRT_OK && zip_close(zip) != 0)
    status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot write the archive: %s", path,
                             zip_strerror(zip));
  if (status != DAMRT_OK) zip_discard(zip);
  free(headers);
  return status;
}

DamrtStatus damrt_npz_write(const char *path, const DamrtNamedTensor *items, size_t n,
                            DamrtNpzCompression compression, DamrtError *err) {
  DamrtStatus status = check_items(path, items, n, err);
  if (status != DAMRT_OK) return status;
  DamrtAtomicFile out;
  status = damrt_atomic_begin(&out, path, err);
  if (status != DAMRT_OK) return status;
  status = n == 0 ? write_empty(out.temp, path, err)
                  : write_archive(out.temp, path, items, n, compression, err);
  if (status != DAMRT_OK) {
    damrt_atomic_abort(&out);
    return status;
  }
  return damrt_atomic_commit(&out, err);
}
