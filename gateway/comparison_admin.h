// ComparisonAdmin: the admin endpoints of the in-process comparator, as plain functions of a
// request (testable without sockets):
//
//   GET  /admin/comparison                     the current comparison and verdict (200 JSON)
//   POST /admin/comparison/report[?name=NAME]  report.json/.md/.html into <report_dir>/NAME (201)
//
// Without a comparator both answer 404. Reports are only written one directory level under the
// configured report_dir: NAME is checked by IsValidReportName (400 otherwise), an existing
// directory is never overwritten (409), and without report_dir the endpoint answers 403.
//
// Handle() runs the comparator's rank tests (milliseconds) or writes a report (a fraction of a
// second): call it off the proxy's I/O threads. Thread-compatible: one caller at a time per
// report name (the gateway runs it on one admin worker thread).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "common/http_server.h"
#include "gateway/gateway_config.h"

namespace sg::comparator {
class OnlineComparator;
}  // namespace sg::comparator

namespace sg::gateway {

// 1-64 characters of [A-Za-z0-9._-], not starting with '.': one directory name, never a path.
bool IsValidReportName(std::string_view name);
// "<prefix>-YYYYMMDDTHHMMSS.mmmZ" for now (UTC): a valid report name.
std::string TimestampedReportName(std::string_view prefix);

// Where a report asked for by `query` (one name=NAME, or nothing: "<prefix>-<UTC time>") goes:
// <report_dir>/NAME, or the refusal: 403 without report_dir, 400 for a bad name or parameter,
// 409 when it exists (a report is never overwritten).
std::variant<std::filesystem::path, sg::http::Response> ReportDirectory(
    const sg::http::Request& request, std::string_view query, const std::string& report_dir,
    std::string_view prefix);

class ComparisonAdmin {
 public:
  // `online` may be null: no comparison is configured.
  ComparisonAdmin(std::shared_ptr<comparator::OnlineComparator> online, ComparisonConfig config);

  // True for the paths (without query) that Handle() answers.
  static bool Matches(std::string_view path);
  // REQUIRES: Matches(the request's path).
  sg::http::Response Handle(const sg::http::Request& request) const;

 private:
  sg::http::Response Render(const sg::http::Request& request) const;
  sg::http::Response WriteReport(const sg::http::Request& request, std::string_view query) const;

  std::shared_ptr<comparator::OnlineComparator> online_;
  ComparisonConfig config_;
};

}  // namespace sg::gateway
