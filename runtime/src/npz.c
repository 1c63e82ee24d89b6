// The .npz reader and writer over libzip (see damrt_npz.h).
//
// Opening reads the zip directory once (libzip with ZIP_CHECKCONS, which also refuses
// duplicate names) and keeps the index of every member that holds an array: those named
// KEY.npy, and those named KEY whose first bytes are the .npy magic (numpy.load treats
// both as arrays). Reading a key first parses the member's .npy header, then streams
// exactly the bytes it declares into the tensor: a member holding less or more is an error,
// and the size libzip knows from the directory is checked before allocating. Reading one
// byte past the data makes libzip reach the end of the member, where it checks the CRC and
// the size, so a corrupt member is reported even when its length is right.
//
// Writing hands libzip a two-fragment source per member (the encoded .npy header and the
// tensor's own data, not copied) and an archive source that writes into a DamrtOutput, so
// the archive gets the output's guarantees (whole or absent, devices and links written
// through, every write checked).
#include "damrt_npz.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "fileio.h"
#include "npy_stream.h"
#include "util.h"

typedef struct {
  char *key;           // member name without ".npy"; owned
  const char *name;    // the member's name, owned by libzip
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


// Whether member `index`, named without ".npy", holds a .npy array: whether its first
// bytes are the magic, as numpy.load decides. A member that cannot even be opened is no
// array (numpy.load would fail on it as well; it is simply not listed).
static bool holds_array(zip_t *zip, zip_uint64_t index) {
  zip_file_t *member = zip_fopen_index(zip, index, 0);
  if (!member) return false;
  char head[sizeof NPY_MAGIC];
  zip_int64_t n = zip_fread(member, head, sizeof head);
  zip_fclose(member);
  return n == (zip_int64_t)sizeof head && memcmp(head, NPY_MAGIC, sizeof head) == 0;
}

static int compare_keys(const void *a, const void *b) {
  const Member *const *ma = a, *const *mb = b;
  return strcmp((*ma)->key, (*mb)->key);
}

// Fails when two members give the same key ("Xi" and "Xi.npy"): which one numpy.load
// returns depends on how it is asked, so the archive is ambiguous.
static DamrtStatus check_unique_keys(const DamrtNpz *npz, DamrtError *err) {
  if (npz->count < 2) return DAMRT_OK;
  const Member **sorted = malloc(npz->count * sizeof *sorted);
  if (!sorted) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", npz->label);
  for (size_t i = 0; i < npz->count; i++) sorted[i] = &npz->members[i];
  qsort(sorted, npz->count, sizeof *sorted, compare_keys);
  DamrtStatus status = DAMRT_OK;
  for (size_t i = 1; i < npz->count && status == DAMRT_OK; i++)
    if (strcmp(sorted[i - 1]->key, sorted[i]->key) == 0) {
      const Member *a = sorted[i - 1], *b = sorted[i];
      if (a->index > b->index) {
        const Member *swap = a;
        a = b;
        b = swap;
      }
      status = damrt_error_set(err, DAMRT_E_FORMAT,
                               "%s: members '%s' and '%s' both hold the array '%s'",
                               npz->label, a->name, b->name, a->key);
    }
  free(sorted);
  return status;
}

// Opens the archive in `src` (which it takes over, freeing it on failure) and indexes its
// array members. `is_empty` says that the source has no bytes at all, which libzip would
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
    size_t len = strlen(name);
    bool is_npy = has_npy_suffix(name);
    // Directories are no arrays; neither are other files that do not start as one.
    if (len == 0 || name[len - 1] == '/' || (is_npy && len == 4)) continue;
    if (!is_npy && !holds_array(zip, (zip_uint64_t)i)) continue;
    Member *m = &npz->members[npz->count];
    m->key = strndup(name, is_npy ? len - 4 : len);
    m->name = name;
    m->index = (zip_uint64_t)i;
    if (!m->key) {
      damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
      damrt_npz_close(npz);
      return NULL;
    }
    npz->count++;
  }
  if (check_unique_keys(npz, err) != DAMRT_OK) {
    damrt_npz_close(npz);
    return NULL;
  }
  return npz;
}

DamrtNpz *damrt_npz_open(const char *path, DamrtError *err) {
  char label[DAMRT_LABEL_SIZE];
  damrt_path_label(path, label);
  bool is_regular;
  size_t size;
  // libzip reads the directory at the end first, then the members: a pipe, a FIFO or a
  // device cannot do that. Checked before opening too, as opening a FIFO waits for a writer.
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                    "%s: a .npz archive must be a regular file (it needs seeking)", label);
    return NULL;
  }
  FILE *f = damrt_file_open_read(path, label, &is_regular, &size, err);
  if (!f) return NULL;
  if (!is_regular) {
    damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                    "%s: a .npz archive must be a regular file (it needs seeking)", label);
    fclose(f);
    return NULL;
  }
  zip_error_t ze;
  zip_error_init(&ze);
  // On success the source owns `f` and closes it when the archive is closed.
  zip_source_t *src = zip_source_filep_create(f, 0, -1, &ze);
  if (!src) {
    zip_failure(err, label, &ze);
    zip_error_fini(&ze);
    fclose(f);
    return NULL;
  }
  zip_error_fini(&ze);
  return open_source(src, size == 0, label, err);
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

// Opens the member of `key` and parses its .npy header; on success the caller closes
// `*member`. `label` receives "ARCHIVE: tensor 'KEY'" for messages.
static DamrtStatus open_member(DamrtNpz *npz, const char *key, zip_file_t **member,
                               DamrtNpySource *src, DamrtNpyHeader *h,
                               char label[DAMRT_ERROR_MESSAGE_SIZE], DamrtError *err) {
  *member = NULL;
  const Member *m = find_member(npz, key);
  if (!m) return not_found(npz, key, err);
  snprintf(label, DAMRT_ERROR_MESSAGE_SIZE, "%s: tensor '%s'", npz->label, key);
  zip_file_t *file = zip_fopen_index(npz->zip, m->index, 0);
  if (!file) return zip_failure(err, label, zip_get_error(npz->zip));
  // The size the directory declares (libzip checks it against what inflating yields).
  *src = (DamrtNpySource){member_read, file, false, 0, 0, NULL};
  zip_stat_t st;
  if (zip_stat_index(npz->zip, m->index, 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) &&
      st.size <= SIZE_MAX) {
    src->has_size = true;
    src->size = (size_t)st.size;
  }
  DamrtStatus status = damrt_npy_load_header(src, h, label, err);
  if (status != DAMRT_OK) {
    zip_fclose(file);
    return status;
  }
  *member = file;
  return DAMRT_OK;
}

DamrtStatus damrt_npz_member_info(DamrtNpz *npz, const char *key, DamrtNpyInfo *info,
                                  DamrtError *err) {
  zip_file_t *member;
  DamrtNpySource src;
  DamrtNpyHeader h;
  char label[DAMRT_ERROR_MESSAGE_SIZE];
  DamrtStatus status = open_member(npz, key, &member, &src, &h, label, err);
  if (status != DAMRT_OK) return status;
  zip_fclose(member);
  *info = h.info;
  return DAMRT_OK;
}

DamrtTensor *damrt_npz_read(DamrtNpz *npz, const char *key, DamrtDtype want,
                            DamrtError *err) {
  return damrt_npz_read_flags(npz, key, want, 0, err);
}

DamrtTensor *damrt_npz_read_flags(DamrtNpz *npz, const char *key, DamrtDtype want,
                                  unsigned flags, DamrtError *err) {
  zip_file_t *member;
  DamrtNpySource src;
  DamrtNpyHeader h;
  char label[DAMRT_ERROR_MESSAGE_SIZE];
  if (open_member(npz, key, &member, &src, &h, label, err) != DAMRT_OK) return NULL;
  src.flags = flags;
  DamrtTensor *t = damrt_npy_load_data(&src, &h, want, label, err);
  zip_fclose(member);
  return t;
}

// What numpy.savez writes with no arrays: a lone end-of-central-directory record. libzip
// cannot produce it (closing an empty archive deletes the file instead).
static const char EMPTY_ZIP[22] = "PK\x05\x06";

static DamrtStatus check_items(const char *label, const DamrtNamedTensor *items, size_t n,
                               DamrtError *err) {
  for (size_t i = 0; i < n; i++) {
    const char *key = items[i].key;
    if (!key || !*key)
      return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: tensor %zu has an empty key", label,
                             i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(items[j].key, key) == 0)
        return damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: key '%s' is given twice", label,
                               key);
    char item_label[DAMRT_ERROR_MESSAGE_SIZE];
    snprintf(item_label, sizeof item_label, "%s: tensor '%s'", label, key);
    DamrtStatus status = damrt_tensor_check(items[i].tensor, item_label, err);
    if (status != DAMRT_OK) return status;
  }
  return DAMRT_OK;
}

// The values of `t` as int64 or bool (DamrtStoreAs), in a new buffer; NULL with a message
// when a value is not whole (int64) or not 0 or 1 (bool), or when memory runs out.
static void *stored_values(const DamrtTensor *t, DamrtStoreAs as, const char *label,
                           const char *key, DamrtError *err) {
  size_t size = as == DAMRT_STORE_INT64 ? 8 : 1;
  unsigned char *buf = malloc(t->count * size + 1);
  if (!buf) {
    damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
    return NULL;
  }
  for (size_t k = 0; k < t->count; k++) {
    double v = t->dtype == DAMRT_F32 ? ((const float *)t->data)[k] : ((const double *)t->data)[k];
    bool fits = as == DAMRT_STORE_INT64 ? v == floor(v) && fabs(v) < 9.2e18 : v == 0 || v == 1;
    if (!fits) {
      free(buf);
      damrt_error_set(err, DAMRT_E_ARGUMENT, "%s: member '%s': %.17g at index %zu is not %s",
                      label, key, v, k, as == DAMRT_STORE_INT64 ? "a whole number" : "0 or 1");
      return NULL;
    }
    if (as == DAMRT_STORE_INT64) {
      int64_t i = (int64_t)v;
      memcpy(buf + 8 * k, &i, 8);
    } else {
      buf[k] = (unsigned char)v;
    }
  }
  return buf;
}

// Adds one member to `zip`; `header` and `*values` (the member's converted data, allocated
// here when it is stored in another dtype) must stay valid until the archive is closed.
static DamrtStatus add_member(zip_t *zip, const char *label, const DamrtNamedTensor *item,
                              DamrtNpzCompression compression, char *header, void **values,
                              DamrtError *err) {
  const DamrtTensor *t = item->tensor;
  zip_buffer_fragment_t parts[2] = {
      {(zip_uint8_t *)header, damrt_npy_header(t, header)},
      {t->data, t->count * damrt_dtype_size(t->dtype)},
  };
  if (item->as != DAMRT_STORE_TENSOR) {
    if (!(*values = stored_values(t, item->as, label, item->key, err))) return err ? err->code : DAMRT_E_ARGUMENT;
    parts[0].length = damrt_npy_header_descr(
        t, item->as == DAMRT_STORE_INT64 ? (npy_host_is_big_endian() ? ">i8" : "<i8") : "|b1", header);
    parts[1] = (zip_buffer_fragment_t){*values, t->count * (item->as == DAMRT_STORE_INT64 ? 8 : 1)};
  }
  size_t name_len = strlen(item->key) + 5;
  char *name = malloc(name_len);
  if (!name) return damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  snprintf(name, name_len, "%s.npy", item->key);
  zip_error_t ze;
  zip_error_init(&ze);
  DamrtStatus status = DAMRT_OK;
  zip_source_t *src = zip_source_buffer_fragment_create(parts, 2, 0, &ze);
  if (!src) {
    status = zip_failure(err, label, &ze);
  } else {
    // libzip copies the name; on success the archive owns `src`.
    zip_int64_t index = zip_file_add(zip, name, src, 0);
    zip_int32_t method = compression == DAMRT_NPZ_STORED ? ZIP_CM_STORE : ZIP_CM_DEFLATE;
    if (index < 0) zip_source_free(src);
    if (index < 0 || zip_set_file_compression(zip, (zip_uint64_t)index, method, 0) != 0)
      status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot add '%s': %s", label, name,
                               zip_strerror(zip));
  }
  zip_error_fini(&ze);
  free(name);
  return status;
}

// The archive libzip writes, as a source over a DamrtOutput. libzip writes sequentially,
// except that it seeks back to complete each member's local header once the member is
// written; it never reads back what it wrote when building a new archive.
typedef struct {
  DamrtOutput *out;
  zip_error_t error;
} Sink;

static zip_int64_t sink_callback(void *userdata, void *data, zip_uint64_t len,
                                 zip_source_cmd_t cmd) {
  Sink *sink = userdata;
  switch (cmd) {
  case ZIP_SOURCE_SUPPORTS:
    // The read commands only to be accepted as an archive source: libzip asks for STAT
    // alone, which says there is no archive yet.
    return zip_source_make_command_bitmap(
        ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL,
        ZIP_SOURCE_STAT, ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SUPPORTS,
        ZIP_SOURCE_BEGIN_WRITE, ZIP_SOURCE_COMMIT_WRITE, ZIP_SOURCE_ROLLBACK_WRITE,
        ZIP_SOURCE_WRITE, ZIP_SOURCE_SEEK_WRITE, ZIP_SOURCE_TELL_WRITE, ZIP_SOURCE_REMOVE, -1);
  case ZIP_SOURCE_STAT:
    zip_error_set(&sink->error, ZIP_ER_READ, ENOENT);
    return -1;
  case ZIP_SOURCE_ERROR:
    return zip_error_to_data(&sink->error, data, len);
  case ZIP_SOURCE_FREE:
  case ZIP_SOURCE_BEGIN_WRITE:
  case ZIP_SOURCE_COMMIT_WRITE:    // the output is committed after zip_close
  case ZIP_SOURCE_ROLLBACK_WRITE:  // and aborted by the caller on failure
  case ZIP_SOURCE_REMOVE:
    return 0;
  case ZIP_SOURCE_WRITE:
    if (len > INT64_MAX || damrt_output_write(sink->out, data, (size_t)len, NULL) != DAMRT_OK) {
      zip_error_set(&sink->error, ZIP_ER_WRITE, EIO);
      return -1;
    }
    return (zip_int64_t)len;
  case ZIP_SOURCE_TELL_WRITE:
    return (zip_int64_t)damrt_output_tell(sink->out);
  case ZIP_SOURCE_SEEK_WRITE: {
    zip_source_args_seek_t *args =
        ZIP_SOURCE_GET_ARGS(zip_source_args_seek_t, data, len, &sink->error);
    if (!args) return -1;
    int64_t base = args->whence == SEEK_SET   ? 0
                   : args->whence == SEEK_CUR ? (int64_t)damrt_output_tell(sink->out)
                                              : -1;
    if (base < 0 || base + args->offset < 0) {
      zip_error_set(&sink->error, ZIP_ER_SEEK, EINVAL);
      return -1;
    }
    if (damrt_output_seek(sink->out, (uint64_t)(base + args->offset), NULL) != DAMRT_OK) {
      zip_error_set(&sink->error, ZIP_ER_SEEK, EIO);
      return -1;
    }
    return 0;
  }
  default:
    zip_error_set(&sink->error, ZIP_ER_OPNOTSUPP, 0);
    return -1;
  }
}

static DamrtStatus write_archive(DamrtOutput *out, const DamrtNamedTensor *items, size_t n,
                                 DamrtNpzCompression compression, DamrtError *err) {
  const char *label = damrt_output_label(out);
  if (!damrt_output_can_seek(out))
    return damrt_error_set(err, DAMRT_E_UNSUPPORTED,
                           "%s: a .npz archive cannot be written to a pipe or a terminal "
                           "(writing it needs seeking)",
                           label);
  Sink sink = {out, {0}};
  zip_error_init(&sink.error);
  zip_error_t ze;
  zip_error_init(&ze);
  zip_t *zip = NULL;
  zip_source_t *src = zip_source_function_create(sink_callback, &sink, &ze);
  if (src) zip = zip_open_from_source(src, ZIP_CREATE | ZIP_TRUNCATE, &ze);
  DamrtStatus status = DAMRT_OK;
  if (!zip) {
    status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot create the archive: %s", label,
                             zip_error_strerror(&ze));
    zip_source_free(src);
  }
  char *headers = NULL;
  void **values = calloc(n, sizeof *values);
  if (status == DAMRT_OK) {
    headers = malloc(n * DAMRT_NPY_HEADER_MAX);
    if (!headers || !values) status = damrt_error_set(err, DAMRT_E_NOMEM, "%s: out of memory", label);
  }
  for (size_t i = 0; i < n && status == DAMRT_OK; i++)
    status = add_member(zip, label, &items[i], compression, headers + i * DAMRT_NPY_HEADER_MAX,
                        &values[i], err);
  // zip_close is where libzip reads the sources, compresses and writes everything. A
  // failed write is best told by the output, which kept its reason.
  if (status == DAMRT_OK && zip_close(zip) != 0) {
    status = damrt_output_status(out, err);
    if (status == DAMRT_OK)
      status = damrt_error_set(err, DAMRT_E_IO, "%s: cannot write the archive: %s", label,
                               zip_strerror(zip));
  }
  if (status != DAMRT_OK && zip) zip_discard(zip);
  zip_error_fini(&ze);
  zip_error_fini(&sink.error);
  free(headers);
  for (size_t i = 0; values && i < n; i++) free(values[i]);
  free(values);
  return status;
}

DamrtStatus damrt_npz_write(const char *path, const DamrtNamedTensor *items, size_t n,
                            DamrtNpzCompression compression, DamrtError *err) {
  char label[DAMRT_LABEL_SIZE];
  DamrtStatus status = check_items(damrt_path_label(path, label), items, n, err);
  if (status != DAMRT_OK) return status;
  DamrtOutput *out = damrt_output_open(path, err);
  if (!out) return err ? err->code : DAMRT_E_IO;
  status = n == 0 ? damrt_output_write(out, EMPTY_ZIP, sizeof EMPTY_ZIP, err)
                  : write_archive(out, items, n, compression, err);
  if (status != DAMRT_OK) {
    damrt_output_abort(out);
    return status;
  }
  return damrt_output_commit(out, err);
}
