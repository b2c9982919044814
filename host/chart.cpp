#include "chart.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "error.hpp"

namespace ssmhost {

namespace {

// Matplotlib's "tab10": distinct, readable on white, colour-blind friendlier than pure hues.
const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr int kPaletteSize = 10;

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  bool empty() const { return !(lo <= hi); }
};

// The data range of x or y over every series (positive values only on a log axis).
Range range_of(const Chart& c, bool x_axis) {
  Range r;
  for (const Series& s : c.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const double xv = s.x[i], yv = s.y[i];
      if (!std::isfinite(xv) || !std::isfinite(yv)) continue;
      if ((c.log_x && xv <= 0) || (c.log_y && yv <= 0)) continue;
      const double v = x_axis ? xv : yv;
      r.lo = std::min(r.lo, v);
      r.hi = std::max(r.hi, v);
    }
  return r;
}

// Widens a range to whole ticks (linear) or decades' neighbours (log), and a
// degenerate range to something visible.
Range padded(Range r, bool log_axis) {
  if (r.empty()) return log_axis ? Range{1, 10} : Range{0, 1};
  if (log_axis) {
    if (r.lo == r.hi) return {r.lo / 2, r.hi * 2};
    const double f = std::pow(r.hi / r.lo, 0.04);
    return {r.lo / f, r.hi * f};
  }
  if (r.lo == r.hi) {
    const double d = r.lo == 0 ? 1 : std::fabs(r.lo) * 0.1;
    return {r.lo - d, r.hi + d};
  }
  const double d = (r.hi - r.lo) * 0.04;
  return {r.lo - d, r.hi + d};
}

double nice_step(double span, int target) {
  const double raw = span / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

std::string tick_text(double v, double step, bool log_axis) {
  char buf[64];
  if (std::fabs(v) < step * 1e-9 && !log_axis) return "0";
  const double a = std::fabs(v);
  if ((a >= 1e6 || (a < 1e-3 && a > 0))) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  int decimals = 0;
  if (log_axis)
    decimals = a >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(a) - 1e-9));
  else
    decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 8), v);
  return buf;
}

std::string xml(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

// Whether a series has a point to draw on this chart.
bool has_points(const Chart& c, const Series& s) {
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
    if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && !(c.log_x && s.x[i] <= 0) && !(c.log_y && s.y[i] <= 0))
      return true;
  return false;
}

// The x ticks: the chart's own where it has them, else nice ones.
std::vector<double> x_ticks_of(const Chart& c, const Range& xr) {
  if (c.x_ticks.empty()) return nice_ticks(xr.lo, xr.hi, c.log_x);
  std::vector<double> t;
  for (double v : c.x_ticks)
    if (v >= xr.lo && v <= xr.hi && !(c.log_x && v <= 0)) t.push_back(v);
  return t;
}

// A tick at a data value: as the value is written ("256", "0.001").
std::string Cell_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Rough width of a text in 12 px DejaVu Sans (for the legend's size).
double text_width(const std::string& s, double px) { return 0.6 * px * static_cast<double>(s.size()); }

}  // namespace

bool legend_below(const Chart& c) {
  size_t longest = 0;
  for (const Series& s : c.series) longest = std::max(longest, s.label.size());
  return text_width(std::string(longest, 'x'), 12) + 44 > c.width * 0.3;
}

std::vector<double> nice_ticks(double lo, double hi, bool log_axis) {
  std::vector<double> t;
  if (!(lo < hi)) return t;
  if (log_axis) {
    const int a = static_cast<int>(std::floor(std::log10(lo))), b = static_cast<int>(std::ceil(std::log10(hi)));
    const int decades = b - a;
    const int every = std::max(1, decades / 8);
    for (int e = a; e <= b; e += every) {
      const double p = std::pow(10.0, e);
      for (double m : decades <= 2 ? std::vector<double>{1, 2, 3, 5} : std::vector<double>{1}) {
        const double v = m * p;
        if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12)) t.push_back(v);
      }
    }
    if (t.size() < 2) {  // a narrow range: linear ticks do better
      std::vector<double> lin = nice_ticks(lo, hi, false);
      t.clear();
      for (double v : lin)
        if (v > 0) t.push_back(v);
    }
    return t;
  }
  const double step = nice_step(hi - lo, 6);
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string render_svg(const Chart& c) {
  const double W = c.width, H = c.height;
  const double font = 13, small = 12;
  // The legend sits right of the plot, as wide as its longest label; below
  // it when the labels are long.
  double legend_w = 0;
  for (const Series& s : c.series) legend_w = std::max(legend_w, text_width(s.label, small));
  const bool below = legend_below(c);
  const size_t legend_rows = below ? std::min<size_t>(c.series.size(), 12) : 0;
  legend_w = c.series.empty() ? 0 : std::min(legend_w + 44, below ? W - 100 : W * 0.4);
  const double left = 78, right = below ? 24 : 16 + legend_w, top = c.title.empty() ? 20 : 44;
  const double bottom = 58 + (below ? 18.0 * static_cast<double>(legend_rows) + 8 : 0);
  const double pw = W - left - right, ph = H - top - bottom;
  const Range xr = padded(range_of(c, true), c.log_x), yr = padded(range_of(c, false), c.log_y);
  auto tx = [&](double v) {
    const double f = c.log_x ? (std::log10(v) - std::log10(xr.lo)) / (std::log10(xr.hi) - std::log10(xr.lo))
                             : (v - xr.lo) / (xr.hi - xr.lo);
    return left + f * pw;
  };
  auto ty = [&](double v) {
    const double f = c.log_y ? (std::log10(v) - std::log10(yr.lo)) / (std::log10(yr.hi) - std::log10(yr.lo))
                             : (v - yr.lo) / (yr.hi - yr.lo);
    return top + ph - f * ph;
  };
  std::ostringstream o;
  o.precision(6);
  o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << " " << H << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"" << small << "\">\n"
    << "<rect x=\"0\" y=\"0\" width=\"" << W << "\" height=\"" << H << "\" fill=\"white\"/>\n"
    << "<defs><clipPath id=\"plot-area\"><rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw
    << "\" height=\"" << ph << "\"/></clipPath></defs>\n";
  if (!c.title.empty())
    o << "<text x=\"" << left + pw / 2 << "\" y=\"" << 26 << "\" text-anchor=\"middle\" font-size=\"" << font + 2
      << "\" font-weight=\"bold\">" << xml(c.title) << "</text>\n";
  // Grid and ticks.
  const std::vector<double> xt = x_ticks_of(c, xr), yt = nice_ticks(yr.lo, yr.hi, c.log_y);
  const double xstep = c.x_ticks.empty() && xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  o << "<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (double v : xt) o << "<line x1=\"" << tx(v) << "\" y1=\"" << top << "\" x2=\"" << tx(v) << "\" y2=\"" << top + ph << "\"/>\n";
  for (double v : yt) o << "<line x1=\"" << left << "\" y1=\"" << ty(v) << "\" x2=\"" << left + pw << "\" y2=\"" << ty(v) << "\"/>\n";
  o << "</g>\n<g class=\"axes\" stroke=\"#333333\" stroke-width=\"1\">\n"
    << "<line x1=\"" << left << "\" y1=\"" << top + ph << "\" x2=\"" << left + pw << "\" y2=\"" << top + ph << "\"/>\n"
    << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << top + ph << "\"/>\n";
  for (double v : xt) o << "<line x1=\"" << tx(v) << "\" y1=\"" << top + ph << "\" x2=\"" << tx(v) << "\" y2=\"" << top + ph + 5 << "\"/>\n";
  for (double v : yt) o << "<line x1=\"" << left - 5 << "\" y1=\"" << ty(v) << "\" x2=\"" << left << "\" y2=\"" << ty(v) << "\"/>\n";
  o << "</g>\n<g class=\"tick-labels\" fill=\"#333333\">\n";
  for (double v : xt)
    o << "<text x=\"" << tx(v) << "\" y=\"" << top + ph + 19 << "\" text-anchor=\"middle\">"
      << xml(c.x_ticks.empty() ? tick_text(v, xstep, c.log_x) : Cell_text(v)) << "</text>\n";
  for (double v : yt)
    o << "<text x=\"" << left - 8 << "\" y=\"" << ty(v) + 4 << "\" text-anchor=\"end\">"
      << xml(tick_text(v, ystep, c.log_y)) << "</text>\n";
  o << "</g>\n";
  o << "<text class=\"x-label\" x=\"" << left + pw / 2 << "\" y=\"" << top + ph + 44 << "\" text-anchor=\"middle\" font-size=\""
    << font << "\">" << xml(c.x_label) << "</text>\n";
  o << "<text class=\"y-label\" x=\"" << 18 << "\" y=\"" << top + ph / 2 << "\" text-anchor=\"middle\" font-size=\""
    << font << "\" transform=\"rotate(-90 18 " << top + ph / 2 << ")\">" << xml(c.y_label) << "</text>\n";
  // The series: one <path> each, dots as circles.
  o << "<g class=\"series\" clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n";
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const char* color = kPalette[k % kPaletteSize];
    std::ostringstream d;
    d.precision(6);
    bool pen_down = false;
    std::vector<std::pair<double, double>> dots;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const double xv = s.x[i], yv = s.y[i];
      const bool ok = std::isfinite(xv) && std::isfinite(yv) && !(c.log_x && xv <= 0) && !(c.log_y && yv <= 0);
      if (!ok) {
        pen_down = false;
        continue;
      }
      d << (pen_down ? " L" : (d.tellp() > 0 ? " M" : "M")) << tx(xv) << " " << ty(yv);
      pen_down = true;
      if (s.markers) dots.push_back({tx(xv), ty(yv)});
    }
    o << "<path class=\"series-line\" data-label=\"" << xml(s.label) << "\" stroke=\"" << color << "\" d=\""
      << (d.str().empty() ? "M0 0" : d.str()) << "\"/>\n";
    for (auto& [x, y] : dots)
      o << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"3.5\" fill=\"" << color << "\" stroke=\"none\"/>\n";
  }
  o << "</g>\n";
  // Legend.
  if (legend_w > 0) {
    const double lx = below ? left : left + pw + 14, ly = below ? top + ph + 58 : top + 4;
    o << "<g class=\"legend\">\n";
    for (size_t k = 0; k < c.series.size(); ++k) {
      const double y = ly + 18 * static_cast<double>(k);
      if (y > H - 16 && k + 1 < c.series.size()) {
        o << "<text x=\"" << lx << "\" y=\"" << y + 12 << "\">... and " << c.series.size() - k << " more</text>\n";
        break;
      }
      const char* color = kPalette[k % kPaletteSize];
      o << "<line x1=\"" << lx << "\" y1=\"" << y + 8 << "\" x2=\"" << lx + 22 << "\" y2=\"" << y + 8 << "\" stroke=\""
        << color << "\" stroke-width=\"2.5\"/>\n"
        << "<text x=\"" << lx + 28 << "\" y=\"" << y + 12 << "\">"
        << xml(c.series[k].label + (has_points(c, c.series[k]) ? "" : " (no data)")) << "</text>\n";
    }
    o << "</g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

// ------------------------------------------------------------------ gnuplot

namespace {

std::string gp_quote(const std::string& s) {  // a single-quoted gnuplot string
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("''") : std::string(1, ch);
  return o + "'";
}

std::string sh_quote(const std::string& s) {
  std::string o = "'";
  for (char ch : s) o += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return o + "'";
}

// The gnuplot program: $SSM_GNUPLOT, else the first `gnuplot` on PATH; "" if none.
std::string find_gnuplot() {
  if (const char* env = std::getenv("SSM_GNUPLOT")) return access(env, X_OK) == 0 ? env : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/gnuplot";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

void render_png_gnuplot(const Chart& c, const std::string& path) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty())
    throw Error("writing '" + path + "' needs gnuplot, which was not found" +
                (std::getenv("SSM_GNUPLOT") ? std::string(" ($SSM_GNUPLOT is not an executable)") : " on PATH") +
                "; install it (Debian: apt-get install gnuplot-nox) or write an SVG instead (--out FILE.svg)");
  char err_template[] = "/tmp/ssmhost-gnuplot-XXXXXX";
  const int fd = mkstemp(err_template);
  if (fd < 0) throw Error("cannot make a temporary file for gnuplot's messages");
  close(fd);
  const std::string err_path = err_template;
  std::remove(path.c_str());

  std::ostringstream s;
  s.precision(10);
  s << "set terminal pngcairo size " << c.width << "," << c.height << " noenhanced font 'DejaVu Sans,11'\n"
    << "set output " << gp_quote(path) << "\n"
    << "set encoding utf8\n"
    << "set border 3 lc rgb '#333333'\nset tics nomirror\nset grid lc rgb '#e0e0e0' lt 1\n"
    << (legend_below(c) ? "set key below left Left reverse noenhanced\n" : "set key outside right top Left reverse noenhanced\n")
    << "set xlabel " << gp_quote(c.x_label) << "\nset ylabel " << gp_quote(c.y_label) << "\n";
  if (!c.title.empty()) s << "set title " << gp_quote(c.title) << " font 'DejaVu Sans:Bold,12'\n";
  if (c.log_x) s << "set logscale x\n";
  if (c.log_y) s << "set logscale y\n";
  // The same ranges as the SVG.
  const Range xr = padded(range_of(c, true), c.log_x), yr = padded(range_of(c, false), c.log_y);
  s << "set xrange [" << xr.lo << ":" << xr.hi << "]\nset yrange [" << yr.lo << ":" << yr.hi << "]\n";
  // Log axes get the SVG's ticks (gnuplot labels only whole decades).
  for (const auto& [axis, log_axis, r] : {std::tuple<const char*, bool, Range>{"x", c.log_x, xr}, {"y", c.log_y, yr}}) {
    const bool own = *axis == 'x' && !c.x_ticks.empty();
    if (!log_axis && !own) continue;
    const std::vector<double> t = own ? x_ticks_of(c, r) : nice_ticks(r.lo, r.hi, true);
    s << "set " << axis << "tics (";
    for (size_t i = 0; i < t.size(); ++i)
      s << (i ? ", " : "") << gp_quote(own ? Cell_text(t[i]) : tick_text(t[i], 0, true)) << " " << t[i];
    s << ")\n";
  }
  // gnuplot cannot plot an empty inline block: a series without points is a
  // legend entry only (NaN plots nothing).
  std::vector<const Series*> shown;
  bool any_point = false;
  s << "plot ";
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& se = c.series[k];
    const bool has = has_points(c, se);
    any_point |= has;
    if (has) shown.push_back(&se);
    s << (k ? ", " : "") << (has ? "'-' using 1:2" : "NaN") << " with "
      << (se.markers ? "linespoints pt 7 ps 0.8" : "lines") << " lw 2 lc rgb '" << kPalette[k % kPaletteSize]
      << "' title " << gp_quote(se.label + (has ? "" : " (no data)"));
  }
  if (!any_point) throw Error("nothing to plot in '" + path + "': no series has a finite point");
  s << "\n";
  for (const Series* se : shown) {
    bool gap = false;
    for (size_t i = 0; i < se->x.size() && i < se->y.size(); ++i) {
      const bool ok = std::isfinite(se->x[i]) && std::isfinite(se->y[i]) && !(c.log_x && se->x[i] <= 0) &&
                      !(c.log_y && se->y[i] <= 0);
      if (!ok) {
        if (!gap) s << "\n";  // a blank line breaks the line
        gap = true;
        continue;
      }
      s << se->x[i] << " " << se->y[i] << "\n";
      gap = false;
    }
    s << "e\n";
  }
  const std::string script = s.str();
  const std::string cmd = sh_quote(gnuplot) + " >/dev/null 2>" + sh_quote(err_path);
  // gnuplot may exit early on an error: a write to its pipe must not kill us.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old);
  FILE* pipe = popen(cmd.c_str(), "w");
  int rc = -1;
  if (pipe) {
    std::fwrite(script.data(), 1, script.size(), pipe);
    rc = pclose(pipe);
  }
  sigaction(SIGPIPE, &old, nullptr);
  std::ifstream in(err_path);
  std::stringstream err;
  err << in.rdbuf();
  std::remove(err_path.c_str());
  struct stat st {};
  const bool written = stat(path.c_str(), &st) == 0 && st.st_size > 0;
  if (!pipe || rc != 0 || !written) {
    std::string msg = err.str();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw Error("gnuplot (" + gnuplot + ") could not write '" + path + "'" + (msg.empty() ? "" : ": " + msg));
  }
}

}  // namespace ssmhost
