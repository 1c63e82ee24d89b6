// Hand-made zip archives for the .npz tests: members stored or deflated (raw deflate with
// zlib), any names, and sizes in the headers that may lie about the data (a member that
// claims to inflate to 2 GiB but holds 1 MiB). No zip64, so every size is below 4 GiB.
// Also a child-process runner, for tests that measure memory or change limits.
#ifndef DAMRT_ZIP_BUILDER_H
#define DAMRT_ZIP_BUILDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
  const char *name;
  const void *data;
  size_t size;
  bool deflate;
  uint32_t claimed_size;  // written as the uncompressed size when nonzero
} ZipMember;

typedef struct {
  unsigned char *data;
  size_t size, cap;
} ZipBytes;

static inline void zip_put(ZipBytes *b, const void *p, size_t n) {
  if (b->size + n > b->cap) {
    while (b->size + n > b->cap) b->cap = b->cap ? b->cap * 2 : 4096;
    b->data = realloc(b->data, b->cap);
  }
  memcpy(b->data + b->size, p, n);
  b->size += n;
}

static inline void zip_u16(ZipBytes *b, unsigned v) {
  unsigned char p[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
  zip_put(b, p, 2);
}

static inline void zip_u32(ZipBytes *b, uint32_t v) {
  unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                        (unsigned char)(v >> 24)};
  zip_put(b, p, 4);
}

// Raw deflate of `size` bytes; the result is malloc'ed.
static inline unsigned char *zip_deflate(const void *data, size_t size, size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  size_t cap = deflateBound(&z, (uLong)size);
  unsigned char *out = malloc(cap);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  *out_size = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

// The archive of the `n` members, malloc'ed, its size in `*size`.
static inline unsigned char *zip_build(const ZipMember *m, size_t n, size_t *size) {
  ZipBytes b = {NULL, 0, 0}, dir = {NULL, 0, 0};
  for (size_t i = 0; i < n; i++) {
    uint32_t crc = (uint32_t)crc32(0, (const Bytef *)m[i].data, (uInt)m[i].size);
    size_t comp_size = m[i].size;
    unsigned char *comp = NULL;
    if (m[i].deflate) comp = zip_deflate(m[i].data, m[i].size, &comp_size);
    uint32_t usize = m[i].claimed_size ? m[i].claimed_size : (uint32_t)m[i].size;
    uint32_t offset = (uint32_t)b.size;
    unsigned name_len = (unsigned)strlen(m[i].name);
    for (int central = 0; central < 2; central++) {
      ZipBytes *h = central ? &dir : &b;
      zip_u32(h, central ? 0x02014b50 : 0x04034b50);
      if (central) zip_u16(h, 20);  // made by
      zip_u16(h, 20);               // needed
      zip_u16(h, 0);                // flags
      zip_u16(h, m[i].deflate ? 8 : 0);
      zip_u16(h, 0);                // time
      zip_u16(h, 0x21);             // date: 1980-01-01
      zip_u32(h, crc);
      zip_u32(h, (uint32_t)comp_size);
      zip_u32(h, usize);
      zip_u16(h, name_len);
      zip_u16(h, 0);  // extra
      if (central) {
        zip_u16(h, 0);  // comment
        zip_u16(h, 0);  // disk
        zip_u16(h, 0);  // internal attributes
        zip_u32(h, 0);  // external attributes
        zip_u32(h, offset);
      }
      zip_put(h, m[i].name, name_len);
      if (!central) zip_put(h, comp ? comp : m[i].data, comp_size);
    }
    free(comp);
  }
  uint32_t dir_offset = (uint32_t)b.size;
  zip_put(&b, dir.data, dir.size);
  zip_u32(&b, 0x06054b50);
  zip_u16(&b, 0);
  zip_u16(&b, 0);
  zip_u16(&b, (unsigned)n);
  zip_u16(&b, (unsigned)n);
  zip_u32(&b, (uint32_t)dir.size);
  zip_u32(&b, dir_offset);
  zip_u16(&b, 0);
  free(dir.data);
  *size = b.size;
  return b.data;
}

// A .npy file (version 1.0) of `data_size` bytes of data after the header `dict`, which is
// padded as numpy pads it; `data` may be NULL for zeros. Malloc'ed, its size in `*size`.
static inline unsigned char *npy_build(const char *dict, const void *data, size_t data_size,
                                       size_t *size) {
  size_t dict_len = strlen(dict);
  size_t header = (10 + dict_len + 1 + 63) / 64 * 64;
  unsigned char *out = calloc(1, header + data_size + 1);
  memcpy(out, "\x93NUMPY\x01\x00", 8);
  out[8] = (unsigned char)((header - 10) & 0xff);
  out[9] = (unsigned char)((header - 10) >> 8);
  memcpy(out + 10, dict, dict_len);
  memset(out + 10 + dict_len, ' ', header - 10 - dict_len - 1);
  out[header - 1] = '\n';
  if (data) memcpy(out + header, data, data_size);
  *size = header + data_size;
  return out;
}

// Runs `fn(arg, message)` in a child process and returns its exit status (as from waitpid);
// what the child wrote into `message` (up to `cap` bytes) comes back in `message`.
static inline int run_in_child(int (*fn)(void *arg, char *message, size_t cap), void *arg,
                               char *message, size_t cap) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char *buf = calloc(1, cap);
    int code = fn(arg, buf, cap);
    ssize_t ignored = write(fds[1], buf, strlen(buf));
    (void)ignored;
    _exit(code);
  }
  close(fds[1]);
  size_t used = 0;
  ssize_t n;
  while (used + 1 < cap && (n = read(fds[0], message + used, cap - 1 - used)) > 0)
    used += (size_t)n;
  message[used] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// The peak resident set of this process, in KiB.
static inline long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#endif
