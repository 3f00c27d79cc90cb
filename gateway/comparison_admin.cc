#include "gateway/comparison_admin.h"

#include <ctime>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/online_comparator.h"

namespace sg::gateway {

namespace {

constexpr std::string_view kRenderPath = "/admin/comparison";
constexpr std::string_view kReportPath = "/admin/comparison/report";

}  // namespace

std::variant<std::filesystem::path, sg::http::Response> ReportDirectory(
    const sg::http::Request& request, std::string_view query, const std::string& report_dir,
    std::string_view prefix) {
  if (report_dir.empty()) {
    return sg::http::MakeErrorResponse(request, sg::http::Status::forbidden,
                                       "no report_dir configured (gateway config: "
                                       "comparison.report_dir)");
  }
  std::string name;
  for (const auto& parameter : Split(query, '&')) {
    if (parameter.empty()) continue;
    if (!parameter.starts_with("name=") || !name.empty()) {
      return sg::http::MakeErrorResponse(request, sg::http::Status::bad_request,
                                         "the only query parameter is one name=NAME");
    }
    name = parameter.substr(5);
    if (!IsValidReportName(name)) {
      return sg::http::MakeErrorResponse(
          request, sg::http::Status::bad_request,
          "name must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'");
    }
  }
  if (name.empty()) name = TimestampedReportName(prefix);
  const std::filesystem::path dir = std::filesystem::path(report_dir) / name;
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return sg::http::MakeErrorResponse(request, sg::http::Status::conflict,
                                       "report " + name + " exists; choose another name");
  }
  return dir;
}

bool IsValidReportName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string TimestampedReportName(std::string_view prefix) {
  auto now = std::chrono::system_clock::now();
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char fraction[8];
  std::snprintf(fraction, sizeof(fraction), ".%03dZ", static_cast<int>(millis));
  return std::string(prefix) + "-" +
         FormatUtc(std::chrono::system_clock::to_time_t(now), "%Y%m%dT%H%M%S") + fraction;
}

ComparisonAdmin::ComparisonAdmin(std::shared_ptr<comparator::OnlineComparator> online,
                                 ComparisonConfig config)
    : online_(std::move(online)), config_(std::move(config)) {}

bool ComparisonAdmin::Matches(std::string_view path) {
  return path == kRenderPath || path == kReportPath;
}

sg::http::Response ComparisonAdmin::Handle(const sg::http::Request& request) const {
  std::string_view target(request.target().data(), request.target().size());
  auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query = question == std::string_view::npos ? "" : target.substr(question + 1);
  if (!online_) {
    return sg::http::MakeErrorResponse(request, sg::http::Status::not_found,
                                       "no comparison configured (gateway config: comparison)");
  }
  if (path == kRenderPath) {
    if (request.method() != boost::beast::http::verb::get) {
      return sg::http::MakeErrorResponse(request, sg::http::Status::method_not_allowed, "use GET");
    }
    return Render(request);
  }
  if (request.method() != boost::beast::http::verb::post) {
    return sg::http::MakeErrorResponse(request, sg::http::Status::method_not_allowed, "use POST");
  }
  return WriteReport(request, query);
}

sg::http::Response ComparisonAdmin::Render(const sg::http::Request& request) const {
  return sg::http::MakeTextResponse(request, sg::http::Status::ok, online_->RenderJson(),
                                    "application/json");
}

sg::http::Response ComparisonAdmin::WriteReport(const sg::http::Request& request,
                                                std::string_view query) const {
  auto where = ReportDirectory(request, query, config_.report_dir, "report");
  if (auto* refusal = std::get_if<sg::http::Response>(&where)) return std::move(*refusal);
  const auto dir = std::get<std::filesystem::path>(where);
  const std::string name = dir.filename().string();
  std::string error;
  if (!online_->WriteReport(dir.string(), &error)) {
    spdlog::error("comparison report {}: {}", dir.string(), error);
    return sg::http::MakeErrorResponse(request, sg::http::Status::internal_server_error,
                                       "cannot write report: " + error);
  }
  spdlog::info("comparison: report written to {}", dir.string());
  return sg::http::MakeJsonResponse(request, sg::http::Status::created,
                                    {{"name", name},
                                     {"dir", dir.string()},
                                     {"files", {"report.json", "report.md", "report.html"}}});
}

}  // namespace sg::gateway
