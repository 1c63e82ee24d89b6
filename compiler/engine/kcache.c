// Compiled kernels: the lazily loaded backend and the cache of compiled kernels (kcache.h).
#define _GNU_SOURCE  // dladdr, dl_iterate_phdr, O_CLOEXEC in <fcntl.h>
#include "engine/kcache.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#else
#include <sys/auxv.h>
#endif

#include "backend/backend_module.h"
#include "damrt_kernel.h"
#include "support/common.h"

extern char **environ;

// ---- The process's runtime functions (damrt_kernel.def), for the JIT and the slots ----

static const DamcRuntimeSymbol runtime_symbols[] = {
#define X(name, sig) {#name, (uintptr_t)&(name)},
#include "damrt_kernel.def"
#undef X
};
enum { NRUNTIME = sizeof runtime_symbols / sizeof runtime_symbols[0] };

// ---- Process-wide state ----

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static KcacheStats stats;
static bool disabled;
static const DamcBackend *backend;  // once opened, never closed
static char *cache_dir;             // resolved once
static bool cache_dir_done;

void kcache_disable(void) {
  pthread_mutex_lock(&lock);
  disabled = true;
  pthread_mutex_unlock(&lock);
}

bool kcache_enabled(void) {
  const char *v = getenv("DAMC_NO_CACHE");
  if (v && *v && strcmp(v, "0") != 0) return false;
  pthread_mutex_lock(&lock);
  bool on = !disabled;
  pthread_mutex_unlock(&lock);
  return on && kcache_dir();
}

KcacheStats kcache_stats(void) {
  pthread_mutex_lock(&lock);
  KcacheStats s = stats;
  const DamcBackend *b = backend;
  pthread_mutex_unlock(&lock);
  if (b) {
    DamcBackendTimes t = b->times();
    s.setup_seconds = t.setup_seconds;
    s.ir_seconds = t.ir_seconds;
    s.optimise_seconds = t.optimise_seconds;
    s.codegen_seconds = t.codegen_seconds;
  }
  return s;
}

static void add_time(double *field, double since) {
  double now = clock_seconds();
  pthread_mutex_lock(&lock);
  *field += now - since;
  pthread_mutex_unlock(&lock);
}

static void count(unsigned *field) {
  pthread_mutex_lock(&lock);
  (*field)++;
  pthread_mutex_unlock(&lock);
}

const char *kcache_dir(void) {
  pthread_mutex_lock(&lock);
  if (!cache_dir_done) {
    cache_dir_done = true;
    const char *d = getenv("DAMC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    StrBuf b = {0};
    if (d && *d) sb_append(&b, d);
    else if (xdg && *xdg == '/') sb_printf(&b, "%s/damc", xdg);  // relative: ignored (XDG spec)
    else if (home && *home) sb_printf(&b, "%s/.cache/damc", home);
    cache_dir = b.len ? xstrdup(sb_str(&b)) : NULL;
    sb_free(&b);
  }
  pthread_mutex_unlock(&lock);
  return cache_dir;
}

// ---- Where this code and the backend module are ----

// The directory of the object (executable or libdamc.so) that holds this code.
static bool self_dir(StrBuf *out) {
  Dl_info info;
  if (!dladdr((void *)&self_dir, &info) || !info.dli_fname || !*info.dli_fname) return false;
  const char *path = info.dli_fname;
  char exe[4096];
  if (!strchr(path, '/')) {  // the executable, found by PATH: its real path
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    path = exe;
  }
  const char *slash = strrchr(path, '/');
  sb_appendn(out, path, (size_t)(slash - path));
  return true;
}

// The backend module's path: $DAMC_BACKEND_MODULE, beside this code (build tree: build/damc
// and build/lib/libdamc.so; installed: bin/damc and LIBDIR/libdamc.so), the build tree's.
static bool backend_path(StrBuf *out) {
  const char *env = getenv("DAMC_BACKEND_MODULE");
  if (env && *env) {
    sb_append(out, env);
    return true;
  }
  StrBuf dir = {0};
  if (self_dir(&dir)) {
    static const char *const rel[] = {"/damc/", "/lib/damc/", "/../lib/damc/"};
    for (size_t i = 0; i < ARRAY_LEN(rel); i++) {
      sb_clear(out);
      sb_printf(out, "%s%slibdamc_llvm.so", sb_str(&dir), rel[i]);
      if (access(sb_str(out), R_OK) == 0) {
        sb_free(&dir);
        return true;
      }
    }
  }
  sb_free(&dir);
  static const char *const fixed[] = {DAMC_BACKEND_INSTALL_PATH, DAMC_BACKEND_BUILD_PATH};
  for (size_t i = 0; i < ARRAY_LEN(fixed); i++) {
    sb_clear(out);
    sb_append(out, fixed[i]);
    if (access(sb_str(out), R_OK) == 0) return true;
  }
  return false;
}

static const DamcBackend *backend_load(StrBuf *err) {
  double t0 = clock_seconds();
  pthread_mutex_lock(&lock);
  const DamcBackend *b = backend;
#ifdef DAMC_BACKEND_LINKED
  if (!b) {
    b = backend = damc_backend_entry();
    stats.llvm_loaded = true;
  }
#endif
  if (!b) {
    StrBuf path = {0};
    if (!backend_path(&path)) {
      sb_append(err, "the code generator (libdamc_llvm.so) was not found beside damc nor in "
                     "the build tree; set DAMC_BACKEND_MODULE to its path\n");
    } else {
      void *h = dlopen(sb_str(&path), RTLD_NOW | RTLD_LOCAL);
      DamcBackendEntry entry = h ? (DamcBackendEntry)dlsym(h, "damc_backend_entry") : NULL;
      if (!entry)
        sb_printf(err, "cannot load the code generator %s: %s\n", sb_str(&path), dlerror());
      else if (entry()->abi != DAMC_BACKEND_ABI)
        sb_printf(err, "the code generator %s is of another version (interface %d, not %d)\n",
                  sb_str(&path), entry()->abi, DAMC_BACKEND_ABI);
      else {
        b = backend = entry();
        stats.llvm_loaded = true;
        stats.load_seconds += clock_seconds() - t0;
      }
    }
    sb_free(&path);
  }
  pthread_mutex_unlock(&lock);
  return b;
}

// ---- The key ----

// The GNU build ID of the object that holds this code, as hex (nothing when it has none).
typedef struct {
  uintptr_t addr;
  StrBuf *out;
} BuildIdSearch;

static int build_id_of(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  BuildIdSearch *s = data;
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum && !mine; i++) {
    const ElfW(Phdr) *p = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + p->p_vaddr;
    mine = p->p_type == PT_LOAD && s->addr >= start && s->addr < start + p->p_memsz;
  }
  if (!mine) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *p = &info->dlpi_phdr[i];
    if (p->p_type != PT_NOTE) continue;
    const uint8_t *n = (const uint8_t *)(info->dlpi_addr + p->p_vaddr), *end = n + p->p_memsz;
    while (n + 12 <= end) {
      uint32_t namesz, descsz, type;
      memcpy(&namesz, n, 4);
      memcpy(&descsz, n + 4, 4);
      memcpy(&type, n + 8, 4);
      const uint8_t *name = n + 12, *desc = name + ((namesz + 3) & ~3u);
      if (desc + descsz > end) break;
      if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        for (uint32_t k = 0; k < descsz; k++) sb_printf(s->out, "%02x", desc[k]);
        return 1;
      }
      n = desc + ((descsz + 3) & ~3u);
    }
  }
  return 1;
}

static void cpu_identity(StrBuf *out) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d, max;
  __cpuid(0, max, b, c, d);
  sb_printf(out, "cpuid %08x %08x%08x%08x", max, b, d, c);
  static const unsigned leaves[][2] = {{1, 0}, {7, 0}, {7, 1}, {0xd, 1}, {0x14, 0}, {0x19, 0}};
  for (size_t i = 0; i < ARRAY_LEN(leaves); i++) {
    if (leaves[i][0] > max) continue;
    __cpuid_count(leaves[i][0], leaves[i][1], a, b, c, d);
    if (leaves[i][0] == 1) b &= 0x0000ffffu;  // without the APIC ID and logical count
    sb_printf(out, " %x.%x:%08x,%08x,%08x,%08x", leaves[i][0], leaves[i][1], a, b, c, d);
  }
  __cpuid(0x80000000u, max, b, c, d);
  if (max >= 0x80000001u) {
    __cpuid(0x80000001u, a, b, c, d);
    sb_printf(out, " e1:%08x,%08x,%08x", a, c, d);
  }
  __cpuid(1, a, b, c, d);
  if (c & (1u << 27)) {  // OSXSAVE: the register state the OS enables (AVX, AVX-512)
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    sb_printf(out, " xcr0:%08x%08x", hi, lo);
  }
#else
  const char *platform = (const char *)getauxval(AT_PLATFORM);
  sb_printf(out, "hwcap %lx %lx %s", getauxval(AT_HWCAP), getauxval(AT_HWCAP2),
            platform ? platform : "");
#endif
}

// The whole key as text: compared in full when an entry is read.
static void key_text(const Plan *const *plans, int n, const CodeRequest *req, StrBuf *k) {
  sb_printf(k, "damc %s kernel cache 1\nengine ", DAMC_VERSION);
  BuildIdSearch s = {(uintptr_t)(void *)&key_text, k};
  dl_iterate_phdr(build_id_of, &s);
  StrBuf path = {0};
  struct stat st;
  if (backend_path(&path) && stat(sb_str(&path), &st) == 0)  // rebuilt: another key
    sb_printf(k, "\nbackend %lld %lld.%09ld %llu", (long long)st.st_size,
              (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
  sb_free(&path);
  sb_append(k, "\ncpu ");
  cpu_identity(k);
  sb_printf(k, "\nprecision %s\nproducts %s\nkernels", req->f32 ? "f32" : "f64",
            req->kernels ? req->kernels : "");
  for (int i = 0; i < n; i++) sb_printf(k, " %s", kernel_name(plans[i]->kind));
  sb_append(k, "\ndims");  // a runtime dim's size is the kernels' argument, not part of them
  for (int i = 0; i < req->ndims; i++)
    if (plan_dim_runtime(plans[0], i)) sb_append(k, " ?");
    else sb_printf(k, " %lld", (long long)req->dims[i]);
  sb_append(k, "\neliminate");
  for (int i = 0; i < req->neliminate; i++) sb_printf(k, " %d", req->eliminate[i]);
  sb_printf(k, "\nname %s\ntext %zu\n", req->model_name, req->len);
  sb_appendn(k, req->text, req->len);
}

// FNV-1a, 64 bits.
static uint64_t hash64(uint64_t h, const void *data, size_t n) {
  const uint8_t *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
static const uint64_t FNV_OFFSET = 0xcbf29ce484222325ull;

// ---- Entries ----

#define MAGIC "DAMCKC01"
enum { ENTRY_MAX = 256u << 20 };        // larger files are not entries (nor read)
enum { STALE_SECONDS = 3600 };          // temporary files older than this were abandoned
typedef struct {
  char magic[8];
  uint64_t so_len, key_len, sum;  // sum: hash64 of the shared object and the key
} Trailer;

static void fill_slots(void *dl) {
  void **slots = dlsym(dl, DAMC_RUNTIME_SLOTS);
  for (size_t i = 0; slots && i < NRUNTIME; i++) slots[i] = (void *)runtime_symbols[i].addr;
}

// Whether the object `dl` was mapped from the file open as `fd`: its dynamic section lies
// in a mapping of that file (device and inode, /proc/self/maps). dlopen returns an object
// already loaded when the name matches one it has been known by, and glibc remembers every
// name an object was opened under (a second dlopen of the same file adds its name) for as
// long as it stays loaded: "/proc/self/fd/N" may name another entry's code by then. Such
// code is never used as this entry's.
static bool mapped_from(void *dl, int fd) {
  struct link_map *lm = NULL;
  struct stat st;
  if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_ld || fstat(fd, &st) != 0)
    return false;
  uintptr_t at = (uintptr_t)lm->l_ld;
  FILE *f = fopen("/proc/self/maps", "re");
  if (!f) return false;
  bool same = false, found = false;
  char line[4096];
  while (!found && fgets(line, sizeof line, f)) {
    unsigned long long lo, hi, off, ino;
    unsigned maj, mnr;
    if (sscanf(line, "%llx-%llx %*s %llx %x:%x %llu", &lo, &hi, &off, &maj, &mnr, &ino) != 6)
      continue;
    if (at < lo || at >= hi) continue;
    found = true;
    same = ino == (unsigned long long)st.st_ino && maj == major(st.st_dev) &&
           mnr == minor(st.st_dev);
  }
  fclose(f);
  return same;
}

// Whether `dl` defines the kernel of every plan (what the key says the entry holds).
static bool has_kernels(void *dl, const Plan *const *plans, int n, StrBuf *why) {
  for (int i = 0; i < n; i++)
    if (!dlsym(dl, kernel_name(plans[i]->kind))) {
      sb_printf(why, "the entry has no '%s'", kernel_name(plans[i]->kind));
      return false;
    }
  return true;
}

// The entry at `path` if it is valid and holds `key`; NULL otherwise (`*invalid` set when a
// file was there but was not a valid entry for this key). The descriptor it was validated
// and loaded through stays open in `*fd_out` while the code is loaded: glibc knows loaded
// objects by name, and "/proc/self/fd/N" names another file once N is reused.
static void *entry_load(const char *path, const StrBuf *key, bool *invalid, int *fd_out) {
  *invalid = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  void *dl = NULL;
  struct stat st;
  Trailer t;
  uint8_t *data = NULL;
  *invalid = true;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof t ||
      (size_t)st.st_size > ENTRY_MAX)
    goto done;
  size_t size = (size_t)st.st_size;
  if (pread(fd, &t, sizeof t, (off_t)(size - sizeof t)) != (ssize_t)sizeof t ||
      memcmp(t.magic, MAGIC, 8) != 0 || t.key_len != key->len ||
      t.so_len != size - sizeof t - t.key_len || t.so_len > size)
    goto done;
  size_t body = size - sizeof t;
  data = malloc(body ? body : 1);
  if (!data || pread(fd, data, body, 0) != (ssize_t)body) goto done;
  if (hash64(FNV_OFFSET, data, body) != t.sum || memcmp(data + t.so_len, key->data, key->len) != 0)
    goto done;
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
  dl = dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);  // the inode just validated
  if (dl && !mapped_from(dl, fd)) {  // another object known by that name (mapped_from)
    dlclose(dl);
    dl = NULL;
    *invalid = false;  // the entry is fine: it cannot be loaded under this name now
    goto done;
  }
  if (dl) {
    fill_slots(dl);
    *invalid = false;
  }
done:
  free(data);
  if (dl)
    *fd_out = fd;
  else
    close(fd);
  return dl;
}

// Runs `argv` and waits; true when it exited 0. Its output goes to `log`'s file.
static bool run_tool(char *const argv[], const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= (size_t)w;
  }
  return true;
}

static bool mkdirs(const char *dir) {
  StrBuf b = {0};
  sb_append(&b, dir);
  char *p = b.data;
  bool ok = true;
  for (char *s = p + 1; ok; s++) {
    if (*s != '/' && *s) continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0700) != 0 && errno != EEXIST) ok = false;
    *s = c;
    if (!c) break;
  }
  sb_free(&b);
  return ok;
}

// Links the object `obj` into a shared object and writes it with `key` as the entry at
// `path` (through a temporary file and a rename). A reason in `why` on failure.
// Removes the temporary files of writers that died more than STALE_SECONDS ago.
static void remove_stale(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  time_t now = time(NULL);
  struct dirent *ent;
  StrBuf p = {0};
  while ((ent = readdir(d))) {
    if (strncmp(ent->d_name, ".tmp-", 5) != 0) continue;
    sb_clear(&p);
    sb_printf(&p, "%s/%s", dir, ent->d_name);
    struct stat st;
    if (lstat(sb_str(&p), &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > STALE_SECONDS)
      unlink(sb_str(&p));
  }
  sb_free(&p);
  closedir(d);
}

// The first line of the file `path`, appended to `out` (the linker's message).
static void first_line(const char *path, StrBuf *out) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[200];
  if (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    sb_printf(out, ": %s", line);
  }
  fclose(f);
}

static bool entry_store(const char *dir, const char *path, const StrBuf *obj, const StrBuf *key,
                        StrBuf *why) {
  if (!mkdirs(dir)) {
    sb_printf(why, "cannot create %s: %s", dir, strerror(errno));
    return false;
  }
  remove_stale(dir);
  static unsigned serial;
  StrBuf o = {0}, so = {0}, log = {0};
  unsigned n = __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED);
  sb_printf(&o, "%s/.tmp-%ld-%u.o", dir, (long)getpid(), n);
  sb_printf(&so, "%s/.tmp-%ld-%u.so", dir, (long)getpid(), n);
  sb_printf(&log, "%s/.tmp-%ld-%u.log", dir, (long)getpid(), n);
  bool ok = false;
  int fd = open(sb_str(&o), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || !write_all(fd, obj->data, obj->len) || close(fd) != 0) {
    sb_printf(why, "cannot write %s: %s", sb_str(&o), strerror(errno));
    if (fd >= 0) close(fd);
    goto out;
  }
  fd = -1;
  char *argv[] = {"cc", "-shared", "-nostdlib", "-o", so.data, o.data, NULL};
  if (!run_tool(argv, sb_str(&log))) {
    sb_append(why, "'cc -shared -nostdlib' could not link the kernels");
    first_line(sb_str(&log), why);
    goto out;
  }
  struct stat st;
  fd = open(sb_str(&so), O_RDWR | O_APPEND | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    sb_printf(why, "cannot open %s: %s", sb_str(&so), strerror(errno));
    goto out;
  }
  // The trailer's checksum covers the linked object, read back, and the key.
  size_t so_len = (size_t)st.st_size;
  uint8_t *bytes = malloc(so_len ? so_len : 1);
  bool read_ok = bytes && pread(fd, bytes, so_len, 0) == (ssize_t)so_len;
  Trailer t;
  memcpy(t.magic, MAGIC, 8);
  t.so_len = so_len;
  t.key_len = key->len;
  t.sum = read_ok ? hash64(hash64(FNV_OFFSET, bytes, so_len), key->data, key->len) : 0;
  free(bytes);
  if (!read_ok || !write_all(fd, key->data, key->len) || !write_all(fd, &t, sizeof t) ||
      close(fd) != 0) {
    fd = -1;
    sb_printf(why, "cannot write %s", sb_str(&so));
    goto out;
  }
  fd = -1;
  if (rename(sb_str(&so), path) != 0) {
    sb_printf(why, "cannot rename into %s: %s", path, strerror(errno));
    goto out;
  }
  ok = true;
out:
  if (fd >= 0) close(fd);
  unlink(sb_str(&o));
  unlink(sb_str(&log));
  if (!ok) unlink(sb_str(&so));
  sb_free(&o);
  sb_free(&so);
  sb_free(&log);
  return ok;
}

// ---- Code ----

// An entry loaded in this process. Each entry is loaded once however many engines use it
// (two engines of one model, damc check's copy): a second dlopen of the same file would give
// the loaded object a second name, "/proc/self/fd/M", that outlives descriptor M and would
// later name another entry opened as M (mapped_from).
typedef struct Loaded {
  struct Loaded *next;
  StrBuf key;
  void *dl;
  int fd;  // the entry's descriptor (entry_load), open while it is loaded
  unsigned refs;
} Loaded;

static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;
static Loaded *loaded;

// The entry at `path` holding `key` and every plan's kernel: the one loaded already, else
// loaded now. NULL when there is none (`*invalid`: a file there that is not such an entry;
// `why`: the reason when it is one that cannot be used).
static Loaded *entry_acquire(const char *path, const StrBuf *key, const Plan *const *plans,
                             int n, bool *invalid, StrBuf *why) {
  *invalid = false;
  pthread_mutex_lock(&loaded_lock);
  Loaded *l = loaded;
  while (l && !(l->key.len == key->len && memcmp(l->key.data, key->data, key->len) == 0))
    l = l->next;
  if (l) {
    l->refs++;
  } else {
    int fd = -1;
    void *dl = entry_load(path, key, invalid, &fd);
    if (dl && !has_kernels(dl, plans, n, why)) {  // a key that does not decide the contents
      dlclose(dl);
      close(fd);
      dl = NULL;
      *invalid = true;
    }
    if (dl) {
      l = xcalloc(1, sizeof *l);
      sb_appendn(&l->key, key->data, key->len);
      l->dl = dl;
      l->fd = fd;
      l->refs = 1;
      l->next = loaded;
      loaded = l;
    }
  }
  pthread_mutex_unlock(&loaded_lock);
  return l;
}

static void entry_release(Loaded *l) {
  if (!l) return;
  pthread_mutex_lock(&loaded_lock);
  if (--l->refs == 0) {
    Loaded **p = &loaded;
    while (*p != l) p = &(*p)->next;
    *p = l->next;
    dlclose(l->dl);
    close(l->fd);
    sb_free(&l->key);
    free(l);
  }
  pthread_mutex_unlock(&loaded_lock);
}

struct Code {
  DamcKernels *jit;  // compiled by the JIT, or
  Loaded *entry;     // loaded from the cache
};

Code *code_get(const Plan *const *plans, int n, const CodeRequest *req, bool *compiled,
               StrBuf *err) {
  *compiled = false;
  Code *c = xcalloc(1, sizeof *c);
  bool cached = !req->showable && kcache_enabled();
  StrBuf key = {0}, path = {0};
  if (cached) {
    key_text(plans, n, req, &key);
    uint64_t h = hash64(FNV_OFFSET, key.data, key.len);
    sb_printf(&path, "%s/kernels-%016llx.so", kcache_dir(), (unsigned long long)h);
    bool invalid;
    StrBuf why = {0};
    c->entry = entry_acquire(sb_str(&path), &key, plans, n, &invalid, &why);
    sb_free(&why);
    if (c->entry) {
      count(&stats.hits);
      goto done;
    }
    if (invalid) count(&stats.rejected);
  }
  const DamcBackend *b = backend_load(err);
  if (!b) goto fail;
  *compiled = true;
  count(&stats.compiled);
  double t0 = clock_seconds();
  if (cached) {
    StrBuf obj = {0}, host = {0}, why = {0};
    bool ok = b->cache_object(plans, n, req->f32, req->model_name, runtime_symbols, NRUNTIME,
                              &obj, &host, err);
    add_time(&stats.compile_seconds, t0);
    double t1 = clock_seconds();
    if (ok && entry_store(kcache_dir(), sb_str(&path), &obj, &key, &why)) {
      count(&stats.stored);
      bool invalid;
      StrBuf reason = {0};
      // What the next process will load.
      c->entry = entry_acquire(sb_str(&path), &key, plans, n, &invalid, &reason);
      const char *dlerr = c->entry || reason.len ? NULL : dlerror();
      if (!c->entry)
        sb_printf(&why, "cannot load %s: %s", sb_str(&path),
                  reason.len ? sb_str(&reason) : dlerr ? dlerr : "invalid");
      sb_free(&reason);
    }
    if (why.len) {
      pthread_mutex_lock(&lock);
      snprintf(stats.problem, sizeof stats.problem, "%s", sb_str(&why));
      pthread_mutex_unlock(&lock);
    }
    add_time(&stats.link_seconds, t1);
    sb_free(&obj);
    sb_free(&host);
    sb_free(&why);
    if (!ok) goto fail;
    if (c->entry) goto done;
    // Not stored or not loadable here: compiled again with the JIT below.
  }
  t0 = clock_seconds();
  bool ok = (c->jit = b->generate(plans, n, req->f32, req->model_name, req->showable,
                                  runtime_symbols, NRUNTIME, err)) &&
            b->jit(c->jit, err) && b->lookup(c->jit, kernel_name(plans[0]->kind), err);
  add_time(&stats.compile_seconds, t0);  // the JIT generates machine code at the lookup
  if (!ok) goto fail;
done:
  sb_free(&key);
  sb_free(&path);
  return c;
fail:
  sb_free(&key);
  sb_free(&path);
  code_free(c);
  return NULL;
}

void *code_lookup(Code *c, const char *name, StrBuf *err) {
  if (c->jit) return backend->lookup(c->jit, name, err);
  void *f = dlsym(c->entry->dl, name);
  if (!f) sb_printf(err, "the cached kernels have no '%s'\n", name);
  return f;
}

void code_free(Code *c) {
  if (!c) return;
  if (c->jit) backend->free(c->jit);
  entry_release(c->entry);
  free(c);
}

char *code_text(Code *c, bool assembly, StrBuf *err) {
  if (!c || !c->jit) {
    sb_append(err, "the kernels were compiled without a copy to show");
    return NULL;
  }
  return backend->text(c->jit, assembly, err);
}

bool code_object(Code *c, StrBuf *bytes, StrBuf *err) {
  if (!c || !c->jit) {
    sb_append(err, "the kernels were compiled without a copy to write");
    return false;
  }
  return backend->object(c->jit, bytes, err);
}
