// Line plots written as PNG files, drawn by PLplot (its C API and its cairo driver, the
// Debian packages libplplot-dev and plplot-driver-cairo): series of points over one x axis,
// each joined by a line and optionally with a vertical bar per point (a spread), and a
// legend above the axes, where it cannot cover a point. The file is written whole or not at all (drawn into a temporary file, then through
// output_write). Any command may use it; damc capacity draws retrieval against load with it.
#ifndef DAMC_DRIVER_PLOT_H
#define DAMC_DRIVER_PLOT_H

#include <stdbool.h>
#include <stddef.h>

#include "support/strbuf.h"

typedef enum { PLOT_BLACK = 1, PLOT_BLUE, PLOT_RED, PLOT_GREEN, PLOT_GREY } PlotColor;

typedef struct {
  const char *label;      // in the legend
  const double *y;        // [n]
  const double *lo, *hi;  // [n] each, or NULL: a vertical bar from lo to hi at each point
  PlotColor color;
  int line_style;         // PLplot's pllsty: 1 solid, 2 short dashes, 3 long dashes, ...
  const char *symbol;     // a Hershey or Unicode glyph at each point ("#(728)"), or NULL
} PlotSeries;

typedef struct {
  const char *title, *xlabel, *ylabel;  // PLplot text: "#ga" is alpha
  const double *x;                      // [n], increasing
  size_t n;
  const PlotSeries *series;
  int nseries;
  double ymin, ymax;  // the y range (ymin >= ymax: from the data)
  int width, height;  // pixels
} PlotSpec;

// Draws `spec` into the PNG file `path`. False, with the path and the reason in `err`, when
// the cairo PNG driver is missing, PLplot fails or the file cannot be written.
bool plot_png(const char *path, const PlotSpec *spec, StrBuf *err);

#endif
