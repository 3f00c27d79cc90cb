#include "model_server/serve_routes.h"

#include "common/strings.h"
#include "model_server/handler.h"
#include "model_server/openapi_json.h"

#include <nlohmann/json.hpp>

namespace sg::serve {

Request ReplyContext(const Request& request) {
  Request meta{request.method(), "", request.version()};
  meta.keep_alive(request.keep_alive());
  return meta;
}

Response JsonText(const Request& context, int status, std::string body) {
  return http::MakeTextResponse(context, static_cast<Status>(status), std::move(body),
                                "application/json");
}

Response Error(const Request& request, int status, const std::string& type,
               const std::string& message) {
  return JsonText(request, status, ErrorBody(status, type, message));
}

Response NotFound(const Request& request) {
  return Error(request, 404, "ResourceNotFoundException",
               "Requested resource is not found, please refer to API document.");
}

Response MethodNotAllowed(const Request& request) {
  return Error(request, 405, "MethodNotAllowedException",
               "Requested method is not allowed, please refer to API document.");
}

// Path segments of the target (query removed, empty segments dropped) and the query.
std::vector<std::string> PathSegments(std::string_view target, std::string* query) {
  auto q = target.find('?');
  if (query) *query = q == std::string_view::npos ? "" : std::string(target.substr(q + 1));
  std::vector<std::string> out;
  for (auto& s : Split(target.substr(0, q), '/')) {
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

std::string QueryParam(const std::string& query, const std::string& name) {
  for (const auto& kv : Split(query, '&')) {
    auto eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  return "";
}

void ServeServer::Routes::ApiDescription(const Request& request, const Responder& respond,
                                         const std::string& api) {
  static const nlohmann::json document = nlohmann::json::parse(kOpenApiJson);
  respond(http::MakeJsonResponse(request, Status::ok, document.at(api)));
}

}  // namespace sg::serve
