#include "gateway/cutover_report.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/svg_chart.h"

namespace sg::gateway {

namespace {

using comparator::HtmlEscape;
using nlohmann::json;

std::string Text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return FormatDouble(value.get<double>());
  return value.is_null() ? "-" : value.dump();
}

// One series from the timeline: (time, field x scale), points without the field left out.
comparator::Series Series(const json& timeline, const char* field, double scale,
                          const std::string& name, const std::string& color) {
  comparator::Series series{name, color, {}};
  for (const auto& point : timeline) {
    if (point.contains(field) && point[field].is_number()) {
      series.points.emplace_back(point["t_s"].get<double>(), point[field].get<double>() * scale);
    }
  }
  return series;
}

std::string Summary(const json& report) {
  return "route " + Text(report["route"]) + ", candidate " + Text(report["candidate"]) + ": " +
         Text(report["state"]) + " at share " + Text(report["share"]) + "%" +
         (report.value("reason", "").empty() ? "" : " (" + Text(report["reason"]) + ")");
}

}  // namespace

std::string RenderCutoverMarkdown(const json& report) {
  std::string out = "# Cutover of route " + Text(report["route"]) + "\n\n" + Summary(report) +
                    "\n\n## Decisions\n\n| at | decision | state | step | share | reason |\n"
                    "| --- | --- | --- | ---: | ---: | --- |\n";
  for (const auto& d : report["decisions"]) {
    out += "| " + Text(d["at"]) + " | " + Text(d["decision"]) + " | " + Text(d["state"]) + " | " +
           Text(d["step"]) + " | " + Text(d["share"]) + " | " + Text(d["reason"]) + " |\n";
  }
  out +=
      "\n## Timeline (one row per evaluation)\n\n| at | share % | judged | candidate errors | "
      "disagreement | p99 old primary ms | p99 candidate ms |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& p : report["timeline"]) {
    out += "| " + Text(p["at"]) + " | " + Text(p["share"]) + " | " + Text(p["judged"]) + " | " +
           Text(p["shadow_error_rate"]) + " | " + Text(p["mismatch_rate"]) + " | " +
           Text(p["p99_primary_ms"]) + " | " + Text(p["p99_candidate_ms"]) + " |\n";
  }
  out += "\nGenerated " + Text(report["generated_at"]) + " by `shadowgate`.\n";
  return out;
}

std::string RenderCutoverHtml(const json& report) {
  const json& timeline = report["timeline"];
  comparator::ChartOptions share_options{"Share and the step's judgement", "time (UTC)", "%"};
  share_options.x_is_time = true;
  comparator::ChartOptions latency_options{"p99 latency at each step", "time (UTC)", "ms"};
  latency_options.x_is_time = true;
  std::string out =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Cutover of route " +
      HtmlEscape(Text(report["route"])) +
      "</title><style>body{font-family:sans-serif;max-width:960px;margin:2em auto}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
      "</head><body>\n<h1>Cutover of route " +
      HtmlEscape(Text(report["route"])) + "</h1>\n<p>" + HtmlEscape(Summary(report)) + "</p>\n";
  out += comparator::LineChart(
      {Series(timeline, "share", 1, "share served by the candidate", "#1f77b4"),
       Series(timeline, "shadow_error_rate", 100, "candidate errors", "#d62728"),
       Series(timeline, "mismatch_rate", 100, "disagreement", "#ff7f0e")},
      share_options);
  out += comparator::LineChart({Series(timeline, "p99_primary_ms", 1, "old primary", "#2ca02c"),
                                Series(timeline, "p99_candidate_ms", 1, "candidate", "#9467bd")},
                               latency_options);
  out +=
      "<h2>Decisions</h2>\n<table><tr><th>at</th><th>decision</th><th>state</th><th>step</th>"
      "<th>share</th><th>reason</th></tr>\n";
  for (const auto& d : report["decisions"]) {
    out += "<tr><td>" + HtmlEscape(Text(d["at"])) + "</td><td>" + HtmlEscape(Text(d["decision"])) +
           "</td><td>" + HtmlEscape(Text(d["state"])) + "</td><td>" + HtmlEscape(Text(d["step"])) +
           "</td><td>" + HtmlEscape(Text(d["share"])) + "</td><td>" +
           HtmlEscape(Text(d["reason"])) + "</td></tr>\n";
  }
  out += "</table>\n<p>Generated " + HtmlEscape(Text(report["generated_at"])) +
         " by shadowgate.</p>\n</body></html>\n";
  return out;
}

bool WriteCutoverReport(const json& report, const std::filesystem::path& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create " + dir.string() + ": " + ec.message();
    return false;
  }
  const std::pair<const char*, std::string> files[] = {
      {"cutover.json", report.dump(2, ' ', false, json::error_handler_t::replace) + "\n"},
      {"cutover.md", RenderCutoverMarkdown(report)},
      {"cutover.html", RenderCutoverHtml(report)}};
  for (const auto& [name, text] : files) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) {
      *error = "cannot write " + (dir / name).string();
      return false;
    }
  }
  return true;
}

}  // namespace sg::gateway
