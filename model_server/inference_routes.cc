#include "model_server/serve_routes.h"

#include <chrono>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "model_server/handler.h"
#include "model_server/multipart.h"
#include "model_server/protocol.h"
#include "model_server/server_timing.h"

namespace sg::serve {

void ServeServer::Routes::Inference(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  if (path.size() == 1 && path[0] == "ping") {
    bool healthy = self->Healthy();
    respond(http::MakeJsonResponse(request, healthy ? Status::ok : Status::internal_server_error,
                                   {{"status", healthy ? "Healthy" : "Unhealthy"}}));
    return;
  }
  if (!path.empty() && path[0] == "v2") return V2(self, std::move(request), respond, path);
  if (path.empty() || path[0] != "predictions") return respond(NotFound(request));
  if (path.size() < 2 || path.size() > 3) return respond(NotFound(request));
  if (request.method() != bhttp::verb::post && request.method() != bhttp::verb::put) {
    return respond(MethodNotAllowed(request));
  }
  ModelPool* pool = nullptr;
  size_t index = 0;
  for (size_t i = 0; i < self->pools_.size(); ++i) {
    if (self->pools_[i]->model().name == path[1]) {
      pool = self->pools_[i].get();
      index = i;
    }
  }
  if (!pool) {
    return respond(Error(request, 404, "ModelNotFoundException", "Model not found: " + path[1]));
  }
  if (path.size() == 3 && path[2] != pool->model().version) {
    return respond(Error(request, 404, "ModelNotFoundException",
                         "Model version: " + path[2] + " does not exist for model: " + path[1]));
  }
  std::string_view input;
  std::string error;
  if (!ExtractPredictionInput(request[bhttp::field::content_type], request.body(), &input,
                              &error)) {
    return respond(Error(request, 400, "BadRequestException", error));
  }
  auto context = ReplyContext(request);
  std::string body;
  auto kind = InputKind::kHandler;
  std::chrono::microseconds front_preprocess{0};
  if (self->front_preprocess_ && pool->model().handler != HandlerKind::kTensor) {
    // The front has CPUs of its own: decode and preprocess here, so the worker's CPUs only run
    // the model. The same code and the same replies as in the worker.
    auto start = std::chrono::steady_clock::now();
    auto into_body = [&body](const std::vector<int64_t>& shape) {
      return StartEncodedSample(shape, &body);
    };
    if (!PreprocessImageRequest(pool->model(), input, into_body, &error)) {
      pool->CountFrontReply(400);
      return respond(JsonText(context, 400, ErrorBody(400, "BadRequest", error)));
    }
    kind = InputKind::kPreprocessed;
    front_preprocess = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    self->front_preprocess_seconds_[index]->Observe(
        std::chrono::duration<double>(front_preprocess).count());
  } else {
    body.assign(input);
  }
  auto result = pool->Submit(
      std::move(body),
      [context, respond, front_preprocess](int status, std::string body,
                                           const RequestTimings& timings) {
        Response response = JsonText(context, status, std::move(body));
        // Where the time went (queue, the stages, total), for clients and proxies; an extra
        // header, so TorchServe clients are unaffected. Preprocessing in the front counts as
        // preprocessing and is part of the total.
        RequestTimings all = timings;
        all.preprocess += front_preprocess;
        all.total += front_preprocess;
        response.set("Server-Timing", FormatServerTiming(all));
        respond(std::move(response));
      },
      static_cast<int>(kind));
  if (result == ModelPool::SubmitResult::kQueueFull) {
    respond(Error(request, 503, "ServiceUnavailableException",
                  "Model \"" + pool->model().name +
                      "\" has no worker to serve inference request. Please use scale workers "
                      "API to add workers."));
  } else if (result == ModelPool::SubmitResult::kStopping) {
    respond(Error(request, 503, "ServiceUnavailableException", "server is shutting down"));
  }
}

}  // namespace sg::serve
