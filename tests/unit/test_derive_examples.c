// The energy identity dE/dt = -sum_A tau_A xdot_A' H_A xdot_A (docs/theory.md eq. 1.4) on every
// example, checked with central differences of E along the flow and the reference
// interpreter, at 20 random states each, with the tolerance of docs/theory.md §4.1.6:
// |FD - (1.4)| <= 1e-6 (1 + |(1.4)|). Models with an eliminated layer are checked on their
// reduced energy and dynamics (docs/theory.md §2: the same identity over the remaining layers).
#include <dirent.h>

#include "derive_fixture.h"

enum { STATES = 20 };

static void check_model(const char *path) {
  char *text = fx_read_text(path);
  CHECK(text != NULL);
  if (!text) return;
  Fixture f;
  bool ok = fx_open(&f, text, 7, 2024);
  CHECK(ok);
  free(text);
  if (!ok) return;
  Network *net = f.net;
  if (net->has_directed) {
    printf("%s: has a directed synapse, no energy identity\n", path);
    fx_close(&f);
    return;
  }
  int n = net->nlayers;
  double worst = 0, largest = 0;
  for (int s = 0; s < STATES; s++) {
    for (int a = 0; a < n; a++)
      for (int64_t i = 0; i < fx_layer_size(&f, a); i++) {
        f.states[a][i] = fx_normal(&f);
        f.inputs[a][i] = 0.5 * fx_normal(&f);
      }
    ExprId energy = net->reduced ? net->reduced_energy_x : net->energy_x;
    double *xdot[16] = {0};
    double predicted = 0, xdot_max = 0;
    for (int a = 0; a < n; a++) {
      const LayerEq *l = &net->layers[a];
      if (l->eliminated) continue;
      int64_t m = fx_layer_size(&f, a);
      xdot[a] = calloc((size_t)m, sizeof(double));
      fx_eval(&f, net->reduced ? net->reduced_dxdt[a] : l->dxdt_x, xdot[a]);
      memcpy(f.dirs[a], xdot[a], (size_t)m * sizeof(double));
      double *hv = calloc((size_t)m, sizeof(double)), quad = 0;
      fx_eval(&f, l->hvp, hv);
      for (int64_t i = 0; i < m; i++) {
        quad += xdot[a][i] * hv[i];
        xdot_max = fmax(xdot_max, fabs(xdot[a][i]));
      }
      predicted -= fx_eval_scalar(&f, l->tau) * quad;
      free(hv);
    }
    double delta = 6.055454452393343e-06 / fmax(1, xdot_max), e[2];
    for (int side = 0; side < 2; side++) {
      for (int a = 0; a < n; a++)
        if (xdot[a])
          for (int64_t i = 0; i < fx_layer_size(&f, a); i++)
            f.states[a][i] += (side ? -2 : 1) * delta * xdot[a][i];
      e[side] = fx_eval_scalar(&f, energy);
    }
    for (int a = 0; a < n; a++)
      if (xdot[a])
        for (int64_t i = 0; i < fx_layer_size(&f, a); i++) f.states[a][i] += delta * xdot[a][i];
    double fd = (e[0] - e[1]) / (2 * delta);
    double err = fabs(fd - predicted) / (1 + fabs(predicted));
    worst = fmax(worst, err);
    largest = fmax(largest, fabs(predicted));
    CHECK(predicted <= 1e-12 * (1 + fabs(predicted)));  // E never increases along the flow
    for (int a = 0; a < n; a++) free(xdot[a]);
  }
  CHECK(worst <= 1e-6);
  printf("%-40s %s|FD - (1.4)| / (1 + |(1.4)|) <= %.1e over %d states (|dE/dt| up to %.2g)\n",
         strrchr(path, '/') + 1, net->reduced ? "reduced: " : "", worst, STATES, largest);
  fx_close(&f);
}

int main(int argc, char **argv) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/examples", argc > 1 ? argv[1] : ".");
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  int models = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 5 || strcmp(e->d_name + len - 4, ".dam") != 0) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    check_model(path);
    models++;
  }
  if (d) closedir(d);
  CHECK(models >= 5);
  return check_report("test_derive_examples");
}
