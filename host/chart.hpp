// Line charts for `ssmhost plot`: written as SVG by this code, or as PNG by
// gnuplot driven through a pipe (Debian package gnuplot-nox).
#pragma once

#include <string>
#include <vector>

namespace ssmhost {

struct Series {
  std::string label;
  std::vector<double> x, y;  // a NaN in y breaks the line
  bool markers = false;      // also draw a dot at every point
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<Series> series;
  int width = 900, height = 560;  // pixels
  std::vector<double> x_ticks;    // ticks at these x values (e.g. the lengths measured); empty: automatic
};

// A standalone SVG document: axes with ticks and labels, a grid, a legend
// right of the plot, and one <path> element per series (nothing else in it
// is a <path>).
std::string render_svg(const Chart& chart);

// Writes `path` as a PNG through gnuplot (pngcairo). The gnuplot program is
// $SSM_GNUPLOT if set, else `gnuplot` on PATH. Throws ssmhost::Error saying
// what to install when there is none, or with gnuplot's message when it fails.
void render_png_gnuplot(const Chart& chart, const std::string& path);

// Whether the legend goes below the plot (long labels) instead of right of it.
bool legend_below(const Chart& chart);

// "Nice" axis ticks (1, 2, 5 x 10^k) covering [lo, hi]; powers of ten (and
// 2x, 5x between them when few) on a log axis.
std::vector<double> nice_ticks(double lo, double hi, bool log_axis);

}  // namespace ssmhost
