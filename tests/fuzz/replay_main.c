// Runs the fuzz target on every regular file under the given files and directories, so the
// corpus and every fuzzer finding is replayed as an ordinary test in every build.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replayed;

static int replay(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "replay: cannot open '%s'\n", path);
    return 1;
  }
  if (S_ISDIR(st.st_mode)) {
    DIR *dir = opendir(path);
    if (!dir) return 1;
    int failures = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
      if (e->d_name[0] == '.') continue;
      size_t n = strlen(path) + strlen(e->d_name) + 2;
      char *child = malloc(n);
      snprintf(child, n, "%s/%s", path, e->d_name);
      failures += replay(child);
      free(child);
    }
    closedir(dir);
    return failures;
  }
  FILE *f = fopen(path, "rb");
  if (!f) return 1;
  uint8_t *data = malloc((size_t)st.st_size + 1);
  size_t n = fread(data, 1, (size_t)st.st_size, f);
  fclose(f);
  LLVMFuzzerTestOneInput(data, n);
  free(data);
  replayed++;
  return 0;
}

int main(int argc, char **argv) {
  int failures = 0;
  for (int i = 1; i < argc; i++) failures += replay(argv[i]);
  printf("replayed %d inputs\n", replayed);
  return failures != 0 || replayed == 0;
}
