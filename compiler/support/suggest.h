// "Did you mean": the nearest of a set of known names to a misspelt one, for the model's
// names (front/sema.c), the command line's options and subcommands (driver/) and the
// layers, weights and params named on the command line (engine/).
//
// The distance is the optimal string alignment distance (Levenshtein plus adjacent swaps,
// so 'scael' is one step from 'scale'). A candidate is close when it is at most
// min(3, (len + 1) / 3) steps away, so one-letter names are never close to one another;
// ties go to the alphabetically first, so a suggestion never depends on the order in which
// candidates are offered. Names longer than 64 bytes are never suggested.
#ifndef DAMC_SUGGEST_H
#define DAMC_SUGGEST_H

typedef struct {
  const char *target;  // the misspelt name
  const char *best;    // the closest candidate so far, or NULL
  int dist;
} Suggestion;

Suggestion suggest_begin(const char *target);
// Offers `candidate` (kept while `s` is used); the name itself is never suggested.
void suggest_consider(Suggestion *s, const char *candidate);

#endif
