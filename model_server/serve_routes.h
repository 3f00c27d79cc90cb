// sg-serve's HTTP routes (internal to model_server/): the helpers every route uses and
// ServeServer::Routes, whose functions live one concern per file: inference_routes.cc
// (TorchServe's inference API), v2_routes.cc (Open Inference Protocol), management_routes.cc and
// metrics_routes.cc.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/http_server.h"
#include "common/strings.h"
#include "model_server/model_pool.h"
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
  // KServe v1: /v1/models/{m}:predict; `segment`: "{m}:predict".
  static void V1(ServeServer* self, http::Request&& request, http::Responder respond,
                 const std::string& segment);
  // Queues one prediction of `input` for `entry`, counted in TorchServe's metrics under
  // `version_label` ("default" when the request named none). `done` is called exactly once
  // (possibly before this returns: a refused input, a full queue).
  static void Predict(ServeServer* self, const std::shared_ptr<ModelEntry>& entry,
                      const std::string& version_label, std::string_view input, JobCallback done);
  // The OpenAPI description of the "inference" or "management" API (OPTIONS /,
  // /api-description), from model_server/openapi.json.
  static void ApiDescription(const http::Request& request, const http::Responder& respond,
                             const std::string& api);
  // Open Inference Protocol v2: /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}]
  // [/ready | /infer]. `path`: the target's segments.
  static void V2(ServeServer* self, http::Request&& request, http::Responder respond,
                 const std::vector<std::string>& path);
  static void Management(ServeServer* self, http::Request&& request, http::Responder respond);
  // GET /models: TorchServe's pagination (limit, next_page_token) over the default versions.
  static void ListModels(ServeServer* self, const http::Request& request,
                         const http::Responder& respond, const std::string& query);
  // PUT /models/{m}[/{v}]: min_worker, max_worker, synchronous, as TorchServe reads them.
  static void ScaleRoute(ServeServer* self, const http::Request& request,
                         const http::Responder& respond, const std::string& query,
                         const std::string& name, const std::string& version);
  // POST /models?url=: an archive of the model store (model API on).
  static void Register(ServeServer* self, const http::Request& request,
                       const http::Responder& respond, const std::string& query);
  static void Metrics(ServeServer* self, http::Request&& request, http::Responder respond);
};

}  // namespace sg::serve
