// File helpers shared by the runtime's unit tests: a scratch directory per test program,
// whole-file reads and writes, and a count of leftover temporary files (the writers must
// never leave one behind).
#ifndef DAMRT_TEST_FILES_H
#define DAMRT_TEST_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  char path[256];
} ScratchDir;

// Creates a fresh directory under $TMPDIR (or /tmp); exits on failure, as there is nothing
// to test without it.
static inline void scratch_new(ScratchDir *dir) {
  const char *base = getenv("TMPDIR");
  snprintf(dir->path, sizeof dir->path, "%s/damrt_test_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir->path)) {
    perror("mkdtemp");
    exit(1);
  }
}

// `dir`/`name` in `buf`, returned.
static inline const char *scratch_file(const ScratchDir *dir, const char *name, char *buf,
                                       size_t cap) {
  snprintf(buf, cap, "%s/%s", dir->path, name);
  return buf;
}

// Removes the directory and the files in it (tests create no subdirectories, except
// where they remove them themselves).
static inline void scratch_free(ScratchDir *dir) {
  DIR *d = opendir(dir->path);
  struct dirent *e;
  char path[512];
  while (d && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir->path, e->d_name);
    remove(path);
  }
  if (d) closedir(d);
  rmdir(dir->path);
}

// The number of entries in the directory whose names contain ".tmp.".
static inline int scratch_count_temp(const ScratchDir *dir) {
  DIR *d = opendir(dir->path);
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, ".tmp.")) n++;
  if (d) closedir(d);
  return n;
}

// Reads the whole file into a malloc'ed buffer (NULL if it cannot be read).
static inline unsigned char *file_read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  unsigned char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *size = n;
  return buf;
}

static inline void file_write_all(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size) {
    perror(path);
    exit(1);
  }
  fclose(f);
}

#endif
