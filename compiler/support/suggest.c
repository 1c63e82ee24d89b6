// Suggestions of the nearest name (see suggest.h).
#include "support/suggest.h"

#include <string.h>

static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 99;
  int d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

Suggestion suggest_begin(const char *target) { return (Suggestion){target, NULL, 99}; }

void suggest_consider(Suggestion *s, const char *candidate) {
  int limit = ((int)strlen(s->target) + 1) / 3;
  if (limit > 3) limit = 3;
  if (strcmp(candidate, s->target) == 0) return;
  int d = edit_distance(s->target, candidate);
  if (d > limit) return;
  if (d < s->dist || (d == s->dist && strcmp(candidate, s->best) < 0)) {
    s->best = candidate;
    s->dist = d;
  }
}
