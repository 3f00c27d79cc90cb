#include "gateway/cutover_admin.h"

#include "common/strings.h"
#include "gateway/comparison_admin.h"
#include "gateway/cutover_report.h"

namespace sg::gateway {

namespace {

using sg::http::MakeErrorResponse;
using sg::http::MakeJsonResponse;
using sg::http::Status;
using Verb = boost::beast::http::verb;

// "/admin/routes/{route}/cutover[/{action}]" split on '/': 5 or 6 parts.
std::vector<std::string> PathParts(std::string_view path) {
  auto parts = Split(path, '/');
  bool ours = (parts.size() == 5 || parts.size() == 6) && parts[0].empty() && parts[1] == "admin" &&
              parts[2] == "routes" && parts[4] == "cutover";
  return ours ? parts : std::vector<std::string>();
}

}  // namespace

bool CutoverAdmin::Matches(std::string_view path) {
  return !PathParts(path).empty();
}

sg::http::Response CutoverAdmin::Handle(const sg::http::Request& request) const {
  std::string_view target(request.target().data(), request.target().size());
  auto parts = PathParts(target.substr(0, target.find('?')));
  const std::string& route = parts[3];
  Cutover* cutover = nullptr;
  for (const auto& candidate : cutovers_) {
    if (candidate->route() == route) cutover = candidate.get();
  }
  if (!cutover) {
    return MakeErrorResponse(request, Status::not_found, "route " + route + " has no cutover");
  }
  std::optional<std::string> refused;
  if (parts.size() == 5) {
    if (request.method() == Verb::get) {
      return MakeJsonResponse(request, Status::ok, cutover->StateJson());
    }
    if (request.method() != Verb::put) {
      return MakeErrorResponse(request, Status::method_not_allowed, "use GET or PUT");
    }
    auto body = nlohmann::json::parse(request.body(), nullptr, false);
    if (body.is_discarded() || !body.is_object() || body.size() != 1 || !body.contains("share") ||
        !body["share"].is_number()) {
      return MakeErrorResponse(request, Status::bad_request, "body must be {\"share\": <0-100>}");
    }
    double share = body["share"].get<double>();
    if (!(share >= 0 && share <= 100)) {
      return MakeErrorResponse(request, Status::bad_request, "share must be in [0, 100]");
    }
    refused = cutover->SetShare(share);
  } else {
    if (request.method() != Verb::post) {
      return MakeErrorResponse(request, Status::method_not_allowed, "use POST");
    }
    const std::string& action = parts[5];
    if (action == "report") {
      const size_t question = target.find('?');
      const auto query = question == std::string_view::npos ? "" : target.substr(question + 1);
      auto where = ReportDirectory(request, query, report_dir_, "cutover-" + route);
      if (auto* refusal = std::get_if<sg::http::Response>(&where)) return std::move(*refusal);
      const auto dir = std::get<std::filesystem::path>(where);
      std::string error;
      if (!WriteCutoverReport(cutover->ReportJson(), dir, &error)) {
        return MakeErrorResponse(request, Status::internal_server_error,
                                 "cannot write the cutover report: " + error);
      }
      return MakeJsonResponse(request, Status::created,
                              {{"name", dir.filename().string()},
                               {"dir", dir.string()},
                               {"files", {"cutover.json", "cutover.md", "cutover.html"}}});
    }
    if (action == "start") {
      refused = cutover->Start();
    } else if (action == "pause") {
      refused = cutover->Pause();
    } else if (action == "resume") {
      refused = cutover->Resume();
    } else if (action == "promote") {
      refused = cutover->Promote();
    } else if (action == "rollback") {
      refused = cutover->RollBack("manual");
    } else {
      return MakeErrorResponse(
          request, Status::not_found,
          "unknown cutover action " + action + " (start, pause, resume, promote, rollback)");
    }
  }
  if (refused) return MakeErrorResponse(request, Status::conflict, *refused);
  return MakeJsonResponse(request, Status::ok, cutover->StateJson());
}

}  // namespace sg::gateway
