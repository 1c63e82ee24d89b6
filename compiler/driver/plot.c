// Line plots as PNG files through PLplot's C API (see plot.h). PLplot draws into a temporary
// file of its own (its drivers open the file by name); the bytes are then written to the
// destination through output_write, so that the destination is whole or absent. PLplot ends
// the process on a fatal error (plexit calls exit() whatever its exit handler returns), so
// it draws in a child process: the parent gets PLplot's message through a pipe and the
// outcome from the child's exit status, and removes the temporary file whatever happened.
#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "driver/driver.h"
#include "driver/plot.h"
#include "support/common.h"

// In the drawing child: what PLplot reported through its handlers.
static char plplot_message[512];

static void on_plabort(PLCHAR_VECTOR msg) {
  if (!plplot_message[0]) snprintf(plplot_message, sizeof plplot_message, "%s", msg);
}

// The write end of the pipe to the parent; whether the message went through it.
static int plot_pipe = -1;
static bool plot_sent;

static void send_message(void) {
  if (plot_sent || !plplot_message[0]) return;
  plot_sent = true;
  ssize_t wrote = write(plot_pipe, plplot_message, strlen(plplot_message));
  (void)wrote;  // the exit status says that the plot failed in any case
}

// Called by plexit before it calls exit(): the message goes to the parent, the status is 1.
static int on_plexit(PLCHAR_VECTOR msg) {
  on_plabort(msg);
  send_message();
  return 1;
}

// Whether PLplot has the file device `name`.
static bool has_device(const char *name) {
  const char **menu = NULL, **devs = NULL;
  int n = 64;
  menu = xcalloc((size_t)n, sizeof *menu);
  devs = xcalloc((size_t)n, sizeof *devs);
  plgDevs(&menu, &devs, &n);
  bool found = false;
  for (int i = 0; i < n && !found; i++) found = devs[i] && !strcmp(devs[i], name);
  free(menu);
  free(devs);
  return found;
}

static void data_range(const PlotSpec *s, double *lo, double *hi) {
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int k = 0; k < s->nseries; k++)
    for (size_t i = 0; i < s->n; i++) {
      const PlotSeries *p = &s->series[k];
      double v[3] = {p->y[i], p->lo ? p->lo[i] : p->y[i], p->hi ? p->hi[i] : p->y[i]};
      for (int j = 0; j < 3; j++)
        if (isfinite(v[j])) {
          *lo = fmin(*lo, v[j]);
          *hi = fmax(*hi, v[j]);
        }
    }
  if (!(*lo <= *hi)) *lo = 0, *hi = 1;
}

// Vertical spacing of the legend's entries, in character heights: pllegend makes the legend
// this times their number high.
static const PLFLT LEGEND_SPACING = 2.0;

// The drawing itself, into the PLplot stream already begun.
static void draw(const PlotSpec *s) {
  double xmin = s->x[0], xmax = s->x[s->n - 1];
  if (!(xmax > xmin)) xmin -= fabs(xmin) * 0.5 + 0.5, xmax += fabs(xmax) * 0.5 + 0.5;
  double pad = 0.04 * (xmax - xmin);
  double ymin = s->ymin, ymax = s->ymax;
  if (ymin >= ymax) data_range(s, &ymin, &ymax);
  double ypad = 0.04 * (ymax - ymin > 0 ? ymax - ymin : 1);
  plcol0(PLOT_BLACK);
  plschr(0, 1.1);
  pladv(0);
  plvsta();  // the standard viewport: room for the labels and the title
  // The legend goes above the axes, centred, outside them, where it cannot cover a point
  // (inside, any corner may hold data: retrieval falls to an overlap near 0 at high load).
  // The axes are lowered by its height, its entries one under the other: their number times
  // the spacing, in character heights (as pllegend sizes it), and half a character height
  // between it and the axes.
  PLFLT vx0, vx1, vy0, vy1, def_mm, char_mm, px0, px1, py0, py1;
  plgvpd(&vx0, &vx1, &vy0, &vy1);
  plgchr(&def_mm, &char_mm);
  plgspa(&px0, &px1, &py0, &py1);  // the page, in mm
  double ch = char_mm / (py1 - py0), band = (s->nseries * LEGEND_SPACING + 0.5) * ch;
  plvpor(vx0, vx1, vy0, vy1 - band);
  plwind(xmin - pad, xmax + pad, ymin - ypad, ymax + ypad);
  plbox("bcnstg", 0, 0, "bcnstvg", 0, 0);  // plenv's box, with a grid
  pllab(s->xlabel, s->ylabel, "");
  plmtex("t", 2.0 + band / ch, 0.5, 0.5, s->title);  // above the legend, as pllab above axes
  PLFLT *x = xcalloc(s->n, sizeof *x), *y = xcalloc(s->n, sizeof *y);
  PLFLT *lo = xcalloc(s->n, sizeof *lo), *hi = xcalloc(s->n, sizeof *hi);
  for (size_t i = 0; i < s->n; i++) x[i] = s->x[i];
  for (int k = 0; k < s->nseries; k++) {
    const PlotSeries *p = &s->series[k];
    for (size_t i = 0; i < s->n; i++) {
      y[i] = p->y[i];
      lo[i] = p->lo ? p->lo[i] : p->y[i];
      hi[i] = p->hi ? p->hi[i] : p->y[i];
    }
    plcol0(p->color);
    plwidth(2);
    pllsty(p->line_style > 0 ? p->line_style : 1);
    if (s->n > 1) plline((PLINT)s->n, x, y);
    pllsty(1);
    plwidth(1.5);
    if (p->lo && p->hi) plerry((PLINT)s->n, x, lo, hi);
    if (p->symbol) plstring((PLINT)s->n, x, y, p->symbol);
  }
  free(x), free(y), free(lo), free(hi);
  int n = s->nseries;
  PLINT *opts = xcalloc((size_t)n, sizeof *opts), *colors = xcalloc((size_t)n, sizeof *colors);
  PLINT *styles = xcalloc((size_t)n, sizeof *styles), *numbers = xcalloc((size_t)n, sizeof *numbers);
  PLFLT *widths = xcalloc((size_t)n, sizeof *widths), *scales = xcalloc((size_t)n, sizeof *scales);
  const char **text = xcalloc((size_t)n, sizeof *text), **symbols = xcalloc((size_t)n, sizeof *symbols);
  for (int k = 0; k < n; k++) {
    const PlotSeries *p = &s->series[k];
    opts[k] = PL_LEGEND_LINE | (p->symbol ? PL_LEGEND_SYMBOL : 0);
    colors[k] = p->color;
    styles[k] = p->line_style > 0 ? p->line_style : 1;
    widths[k] = 2;
    scales[k] = 1;
    numbers[k] = 1;
    text[k] = p->label;
    symbols[k] = p->symbol ? p->symbol : "";
  }
  PLFLT lw, lh;
  plcol0(PLOT_BLACK);
  pllegend(&lw, &lh, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
           PL_POSITION_TOP | PL_POSITION_OUTSIDE, 0, 0.5 * ch / (vy1 - band - vy0), 0.08, 0,
           PLOT_BLACK, 1, 0, 0, n, opts, 1.0, 0.9, LEGEND_SPACING, 0.0, colors, text, NULL,
           NULL, NULL, NULL, colors, styles, widths, colors, scales, numbers, symbols);
  free(opts), free(colors), free(styles), free(numbers), free(widths), free(scales);
  free(text), free(symbols);
}

// The whole contents of `path` (the caller frees), or NULL.
static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  StrBuf b = {0};
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) sb_appendn(&b, chunk, got);
  bool ok = !ferror(f);
  fclose(f);
  if (!ok) {
    sb_free(&b);
    return NULL;
  }
  *len = b.len;
  if (!b.data) return xcalloc(1, 1);
  return b.data;
}

bool plot_png(const char *path, const PlotSpec *spec, StrBuf *err) {
  DAMC_ASSERT(spec->n > 0 && spec->nseries > 0);
  if (!has_device("pngcairo")) {
    sb_printf(err, "%s: PLplot has no 'pngcairo' device: install the Debian package "
              "plplot-driver-cairo\n", path);
    return false;
  }
  const char *dir = getenv("TMPDIR");
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/damc-plot-XXXXXX", dir && *dir ? dir : "/tmp");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    sb_printf(err, "%s: cannot make a temporary file for the plot in %s: %s\n", path,
              dir && *dir ? dir : "/tmp", strerror(errno));
    return false;
  }
  close(fd);
  int pipefd[2];
  if (pipe(pipefd) != 0) {
    sb_printf(err, "%s: cannot draw the plot: %s\n", path, strerror(errno));
    unlink(tmp);
    return false;
  }
  fflush(stdout);  // the child may leave through exit(): nothing buffered is written twice
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    plot_pipe = pipefd[1];
    plsabort(on_plabort);
    plsexit(on_plexit);
    plsdev("pngcairo");
    plsfnam(tmp);
    plspage(0, 0, spec->width, spec->height, 0, 0);
    // cmap0: white background, then the colours of PlotColor.
    PLINT r[] = {255, 0, 31, 214, 44, 127}, g[] = {255, 0, 119, 39, 160, 127},
          b[] = {255, 0, 180, 40, 44, 127};
    plscmap0(r, g, b, (PLINT)ARRAY_LEN(r));
    plinit();
    if (!plplot_message[0]) draw(spec);
    plend();
    send_message();
    _exit(plplot_message[0] ? 1 : 0);
  }
  close(pipefd[1]);
  char message[sizeof plplot_message] = "";
  size_t got = 0;
  ssize_t r;
  while (pid > 0 && got + 1 < sizeof message &&
         (r = read(pipefd[0], message + got, sizeof message - 1 - got)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    got += (size_t)r;
  }
  message[got] = '\0';
  close(pipefd[0]);
  int status = 0;
  while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  bool ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !message[0];
  if (pid < 0) sb_printf(err, "%s: cannot draw the plot: %s\n", path, strerror(errno));
  else if (!ok)
    sb_printf(err, "%s: PLplot: %s\n", path,
              message[0] ? message : WIFSIGNALED(status) ? "the drawing process was killed"
                                                         : "the drawing process failed");
  size_t len = 0;
  char *bytes = ok ? read_all(tmp, &len) : NULL;
  if (ok && (!bytes || len < 8 || memcmp(bytes, "\x89PNG", 4) != 0)) {
    sb_printf(err, "%s: PLplot wrote no PNG image\n", path);
    ok = false;
  }
  if (ok) ok = output_write(path, bytes, len, err);
  free(bytes);
  unlink(tmp);
  return ok;
}
