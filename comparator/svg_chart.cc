#include "comparator/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "common/strings.h"

namespace sg::comparator {
namespace {

constexpr int kLeft = 64, kRight = 16, kTop = 32, kBottom = 48;

// A y axis from 0 whose gridlines fall on round values: the smallest step (1, 2, 2.5 or 5 times
// a power of ten) that covers `max` in at most 5 intervals (47.05 ms: 0, 10, ..., 50).
struct YAxis {
  double top;
  int intervals;
};
YAxis NiceYAxis(double max) {
  const double decade = std::pow(10, std::floor(std::log10(max / 5)));
  for (double p : {decade, decade * 10}) {
    for (double m : {1.0, 2.0, 2.5, 5.0}) {
      const double intervals = std::ceil(max / (m * p) - 1e-9);
      if (intervals <= 5) {
        const int n = std::max(1, static_cast<int>(intervals));
        return {n * m * p, n};
      }
    }
  }
  return {max, 4};  // not reached for a finite max > 0
}

std::string Fmt(double v) {
  char buf[64];
  if (v != 0 && (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.2g", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  }
  return buf;
}

std::string Coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string TimeText(double unix_seconds) {
  return FormatUtc(static_cast<int64_t>(unix_seconds), "%H:%M:%S");
}

std::string Open(const ChartOptions& o) {
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" +
                  std::to_string(o.width) + "\" height=\"" + std::to_string(o.height) +
                  "\" viewBox=\"0 0 " + std::to_string(o.width) + " " + std::to_string(o.height) +
                  "\" role=\"img\" aria-label=\"" + HtmlEscape(o.title) + "\">";
  s += "<title>" + HtmlEscape(o.title) + "</title>";
  s += "<text x=\"" + std::to_string(o.width / 2) +
       "\" y=\"18\" text-anchor=\"middle\" class=\"ct\">" + HtmlEscape(o.title) + "</text>";
  return s;
}

std::string NoData(const ChartOptions& o) {
  return Open(o) + "<text x=\"" + std::to_string(o.width / 2) + "\" y=\"" +
         std::to_string(o.height / 2) +
         "\" text-anchor=\"middle\" class=\"nd\">no data</text></svg>";
}

std::string Axes(const ChartOptions& o) {
  const int w = o.width, h = o.height;
  std::string s = "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(h - kBottom) +
                  "\" x2=\"" + std::to_string(w - kRight) + "\" y2=\"" +
                  std::to_string(h - kBottom) + "\" class=\"ax\"/>";
  s += "<line x1=\"" + std::to_string(kLeft) + "\" y1=\"" + std::to_string(kTop) + "\" x2=\"" +
       std::to_string(kLeft) + "\" y2=\"" + std::to_string(h - kBottom) + "\" class=\"ax\"/>";
  s += "<text x=\"" + std::to_string((kLeft + w - kRight) / 2) + "\" y=\"" + std::to_string(h - 8) +
       "\" text-anchor=\"middle\" class=\"al\">" + HtmlEscape(o.x_label) + "</text>";
  s += "<text transform=\"translate(14," + std::to_string((kTop + h - kBottom) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" class=\"al\">" + HtmlEscape(o.y_label) + "</text>";
  return s;
}

std::string Legend(const std::vector<Series>& series, const ChartOptions& o) {
  std::string s;
  int x = kLeft + 8;
  for (const auto& sr : series) {
    s += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(kTop - 4) +
         "\" width=\"10\" height=\"10\" fill=\"" + HtmlEscape(sr.color) + "\"/>";
    s += "<text x=\"" + std::to_string(x + 14) + "\" y=\"" + std::to_string(kTop + 5) +
         "\" class=\"lg\">" + HtmlEscape(sr.name) + "</text>";
    x += 24 + static_cast<int>(sr.name.size()) * 7;
  }
  (void)o;
  return s;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string LineChart(const std::vector<Series>& series, const ChartOptions& o) {
  double x0 = INFINITY, x1 = -INFINITY, y1 = 0;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (o.log_x && x <= 0)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y1 = std::max(y1, y);
    }
  }
  if (!std::isfinite(x0)) return NoData(o);
  if (y1 <= 0) y1 = 1;
  const YAxis axis = NiceYAxis(y1);
  y1 = axis.top;
  auto tx = [&](double x) { return o.log_x ? std::log10(x) : x; };
  double a = tx(x0), b = tx(x1);
  if (b <= a) {
    a -= 0.5;
    b += 0.5;
  }
  const double pw = o.width - kLeft - kRight, ph = o.height - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (tx(x) - a) / (b - a) * pw; };
  auto py = [&](double y) { return o.height - kBottom - y / y1 * ph; };
  std::string s = Open(o) + Axes(o);
  for (int i = 0; i <= axis.intervals; ++i) {
    const double y = y1 * i / axis.intervals;
    s += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(o.width - kRight) +
         "\" y1=\"" + Coord(py(y)) + "\" y2=\"" + Coord(py(y)) + "\" class=\"gr\"/>";
    s += "<text x=\"" + std::to_string(kLeft - 4) + "\" y=\"" + Coord(py(y) + 4) +
         "\" text-anchor=\"end\" class=\"tk\">" + Fmt(y) + "</text>";
  }
  for (int i = 0; i <= 4; ++i) {
    const double t = a + (b - a) * i / 4;
    const double x = o.log_x ? std::pow(10, t) : t;
    s += "<text x=\"" + Coord(kLeft + (t - a) / (b - a) * pw) + "\" y=\"" +
         std::to_string(o.height - kBottom + 14) + "\" text-anchor=\"middle\" class=\"tk\">" +
         (o.x_is_time ? TimeText(x) : Fmt(x)) + "</text>";
  }
  for (const auto& sr : series) {
    std::string d;
    for (const auto& [x, y] : sr.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (o.log_x && x <= 0)) continue;
      d += (d.empty() ? "M" : " L") + Coord(px(x)) + " " + Coord(py(y));
    }
    if (d.empty()) continue;
    s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + HtmlEscape(sr.color) +
         "\" stroke-width=\"2\" class=\"series\"><title>" + HtmlEscape(sr.name) + "</title></path>";
    if (sr.points.size() <= 60) {
      for (const auto& [x, y] : sr.points) {
        if (!std::isfinite(x) || !std::isfinite(y) || (o.log_x && x <= 0)) continue;
        s += "<circle cx=\"" + Coord(px(x)) + "\" cy=\"" + Coord(py(y)) + "\" r=\"2.5\" fill=\"" +
             HtmlEscape(sr.color) + "\"><title>" + HtmlEscape(sr.name) + ": " +
             (o.x_is_time ? TimeText(x) : Fmt(x)) + ", " + Fmt(y) + "</title></circle>";
      }
    }
  }
  return s + Legend(series, o) + "</svg>";
}

std::string BarChart(const std::vector<std::string>& categories, const std::vector<Series>& series,
                     const ChartOptions& o) {
  double y1 = 0;
  for (const auto& sr : series) {
    for (const auto& p : sr.points) y1 = std::max(y1, p.second);
  }
  if (categories.empty() || series.empty() || y1 <= 0) return NoData(o);
  const YAxis axis = NiceYAxis(y1);
  y1 = axis.top;
  const double pw = o.width - kLeft - kRight, ph = o.height - kTop - kBottom;
  const double group = pw / static_cast<double>(categories.size());
  const double bar = group * 0.8 / static_cast<double>(series.size());
  std::string s = Open(o) + Axes(o);
  for (int i = 0; i <= axis.intervals; ++i) {
    const double y = y1 * i / axis.intervals;
    const double yy = o.height - kBottom - y / y1 * ph;
    s += "<line x1=\"" + std::to_string(kLeft) + "\" x2=\"" + std::to_string(o.width - kRight) +
         "\" y1=\"" + Coord(yy) + "\" y2=\"" + Coord(yy) + "\" class=\"gr\"/>";
    s += "<text x=\"" + std::to_string(kLeft - 4) + "\" y=\"" + Coord(yy + 4) +
         "\" text-anchor=\"end\" class=\"tk\">" + Fmt(y) + "</text>";
  }
  const size_t label_every = std::max<size_t>(1, categories.size() / 8);
  for (size_t k = 0; k < categories.size(); ++k) {
    const double gx = kLeft + group * static_cast<double>(k) + group * 0.1;
    for (size_t i = 0; i < series.size(); ++i) {
      const double v = k < series[i].points.size() ? series[i].points[k].second : 0;
      const double h = v / y1 * ph;
      s += "<rect class=\"bar\" x=\"" + Coord(gx + bar * static_cast<double>(i)) + "\" y=\"" +
           Coord(o.height - kBottom - h) + "\" width=\"" + Coord(std::max(bar - 1, 1.0)) +
           "\" height=\"" + Coord(h) + "\" fill=\"" + HtmlEscape(series[i].color) + "\"><title>" +
           HtmlEscape(series[i].name + " " + categories[k] + ": " + Fmt(v)) + "</title></rect>";
    }
    if (k % label_every == 0) {
      s += "<text x=\"" + Coord(gx + group * 0.4) + "\" y=\"" +
           std::to_string(o.height - kBottom + 14) + "\" text-anchor=\"middle\" class=\"tk\">" +
           HtmlEscape(categories[k].substr(0, 14)) + "</text>";
    }
  }
  return s + Legend(series, o) + "</svg>";
}

std::string ConfusionMatrix(const std::vector<std::string>& labels,
                            const std::vector<std::vector<double>>& rows,
                            const ChartOptions& o_in) {
  if (labels.empty()) return NoData(o_in);
  ChartOptions o = o_in;
  const int n = static_cast<int>(labels.size());
  const int cell = std::clamp(480 / n, 14, 48);
  const int left = 110, top = 40;
  o.width = left + n * cell + 20;
  o.height = top + n * cell + 100;
  double max = 0;
  for (const auto& r : rows) {
    for (double v : r) max = std::max(max, v);
  }
  std::string s = Open(o);
  for (int i = 0; i < n; ++i) {
    s += "<text x=\"" + std::to_string(left - 4) + "\" y=\"" +
         std::to_string(top + i * cell + cell / 2 + 4) + "\" text-anchor=\"end\" class=\"tk\">" +
         HtmlEscape(labels[i].substr(0, 16)) + "</text>";
    s += "<text transform=\"translate(" + std::to_string(left + i * cell + cell / 2 + 4) + "," +
         std::to_string(top + n * cell + 6) + ") rotate(60)\" class=\"tk\">" +
         HtmlEscape(labels[i].substr(0, 16)) + "</text>";
    for (int j = 0; j < n; ++j) {
      const double v = i < static_cast<int>(rows.size()) && j < static_cast<int>(rows[i].size())
                           ? rows[i][j]
                           : 0;
      const double t = max > 0 ? std::sqrt(v / max) : 0;
      const int shade = 255 - static_cast<int>(t * 200);
      char color[48];
      if (i == j) {
        std::snprintf(color, sizeof color, "rgb(%d,%d,255)", shade, shade);
      } else {
        std::snprintf(color, sizeof color, "rgb(255,%d,%d)", shade, shade);
      }
      s += "<rect class=\"cell\" x=\"" + std::to_string(left + j * cell) + "\" y=\"" +
           std::to_string(top + i * cell) + "\" width=\"" + std::to_string(cell - 1) +
           "\" height=\"" + std::to_string(cell - 1) + "\" fill=\"" + color + "\"><title>" +
           HtmlEscape("primary " + labels[i] + ", shadow " + labels[j] + ": " + Fmt(v)) +
           "</title></rect>";
      if (v > 0 && cell >= 24) {
        s += "<text x=\"" + std::to_string(left + j * cell + cell / 2) + "\" y=\"" +
             std::to_string(top + i * cell + cell / 2 + 4) +
             "\" text-anchor=\"middle\" class=\"cv\">" + Fmt(v) + "</text>";
      }
    }
  }
  s += "<text x=\"" + std::to_string(left + n * cell / 2) + "\" y=\"" +
       std::to_string(o.height - 6) + "\" text-anchor=\"middle\" class=\"al\">" +
       HtmlEscape(o.x_label) + "</text>";
  return s + "</svg>";
}

}  // namespace sg::comparator
