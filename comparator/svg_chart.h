// Inline SVG charts for report.html: plain functions from numbers to an <svg> element (no
// scripts, no external assets), so the page renders the same in any browser or offline.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sg::comparator {

// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string HtmlEscape(std::string_view text);

struct Series {
  std::string name;
  std::string color;                              // CSS color
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
};

struct ChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = false;
  bool x_is_time = false;  // x in Unix seconds: ticks as HH:MM:SS (UTC)
  int width = 640;
  int height = 300;
};

// A line chart; an empty series list gives a chart saying "no data".
std::string LineChart(const std::vector<Series>& series, const ChartOptions& options);

// Grouped bars: one group per category, one bar per series (series[i].points[k].second is the
// value of category k).
std::string BarChart(const std::vector<std::string>& categories, const std::vector<Series>& series,
                     const ChartOptions& options);

// A heat-map grid with counts (rows: primary label, columns: shadow label).
std::string ConfusionMatrix(const std::vector<std::string>& labels,
                            const std::vector<std::vector<double>>& rows,
                            const ChartOptions& options);

}  // namespace sg::comparator
