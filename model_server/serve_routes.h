// sg-serve's HTTP routes (internal to model_server/): the helpers every route uses and
// ServeServer::Routes, whose functions live one concern per file: inference_routes.cc
// (TorchServe's inference API), v2_routes.cc (Open Inference Protocol), management_routes.cc and
// metrics_routes.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/http_server.h"
#include "model_server/serve_server.h"

namespace sg::serve {

// The names every route file uses (this header is internal to model_server/).
namespace bhttp = boost::beast::http;
using http::Request;
using http::Responder;
using http::Response;
using http::Status;

// The parts of a request a later reply needs (the request itself has been consumed by then).
http::Request ReplyContext(const http::Request& request);
http::Response JsonText(const http::Request& context, int status, std::string body);
// TorchServe's error body {"code", "type", "message"} with `status`.
http::Response Error(const http::Request& request, int status, const std::string& type,
                     const std::string& message);
http::Response NotFound(const http::Request& request);
http::Response MethodNotAllowed(const http::Request& request);
// Path segments of the target (query removed, empty segments dropped) and the query.
std::vector<std::string> PathSegments(std::string_view target, std::string* query);
// The value of `name` in `query` ("" when absent or empty).
std::string QueryParam(const std::string& query, const std::string& name);

// The listeners' request handlers. Each runs on an I/O thread and answers through `respond`
// (now or later, from any thread).
struct ServeServer::Routes {
  static void Inference(ServeServer* self, http::Request&& request, http::Responder respond);
  // Open Inference Protocol v2: /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}]
  // [/ready | /infer]. `path`: the target's segments.
  static void V2(ServeServer* self, http::Request&& request, http::Responder respond,
                 const std::vector<std::string>& path);
  static void Management(ServeServer* self, http::Request&& request, http::Responder respond);
  static void Metrics(ServeServer* self, http::Request&& request, http::Responder respond);
};

}  // namespace sg::serve
