#include "model_server/serve_routes.h"

#include <chrono>
#include <memory>
#include <mutex>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "model_server/handler.h"
#include "model_server/multipart.h"
#include "model_server/protocol.h"
#include "model_server/server_timing.h"
#include "model_server/ts_metrics.h"

namespace sg::serve {
namespace {

std::string NoWorkerMessage(const std::string& model) {
  return "Model \"" + model +
         "\" has no worker to serve inference request. Please use scale workers API to add "
         "workers.";
}

// Gathers the replies of one KServe v1 predict request's instances, in order, and answers
// {"predictions": [...]} once all are in (the first failed instance's error instead).
struct V1Predict {
  Request context;
  Responder respond;
  std::mutex mutex;
  // Guarded by mutex.
  std::vector<std::pair<int, std::string>> replies;
  size_t remaining = 0;

  void Done(size_t index, int status, std::string body) {
    {
      std::lock_guard lock(mutex);
      replies[index] = {status, std::move(body)};
      if (--remaining > 0) return;
    }
    nlohmann::json predictions = nlohmann::json::array();
    for (auto& [code, text] : replies) {
      if (code != 200) return respond(JsonText(context, code, std::move(text)));
      auto reply = nlohmann::json::parse(text, nullptr, false);
      predictions.push_back(reply.is_discarded() ? nlohmann::json(text) : reply);
    }
    respond(http::MakeJsonResponse(context, Status::ok, {{"predictions", predictions}}));
  }
};

}  // namespace

void ServeServer::Routes::Predict(ServeServer* self, const std::shared_ptr<ModelEntry>& entry,
                                  const std::string& version_label, std::string_view input,
                                  JobCallback done) {
  auto& pool = *entry->pool;
  const auto& model = pool.model();
  self->ts_metrics_->CountRequest(model.name, version_label);
  std::string body;
  std::string error;
  auto kind = InputKind::kHandler;
  std::chrono::microseconds front_preprocess{0};
  if (self->front_preprocess_ && model.handler != HandlerKind::kTensor) {
    // The front has CPUs of its own: decode and preprocess here, so the worker's CPUs only run
    // the model. The same code and the same replies as in the worker.
    auto start = std::chrono::steady_clock::now();
    auto into_body = [&body](const std::vector<int64_t>& shape) {
      return StartEncodedSample(shape, &body);
    };
    if (!PreprocessImageRequest(model, input, into_body, &error)) {
      pool.CountFrontReply(400);
      return done(400, ErrorBody(400, "BadRequest", error), RequestTimings{});
    }
    kind = InputKind::kPreprocessed;
    front_preprocess = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    entry->front_preprocess->Observe(std::chrono::duration<double>(front_preprocess).count());
  } else {
    body.assign(input);
  }
  auto* ts = self->ts_metrics_.get();
  auto on_reply = [ts, name = model.name, version_label, front_preprocess, done](
                      int status, std::string reply, const RequestTimings& timings) {
    // Preprocessing in the front counts as preprocessing and is part of the total.
    RequestTimings all = timings;
    all.preprocess += front_preprocess;
    all.total += front_preprocess;
    if (timings.has_worker) {
      ts->AddLatency(name, version_label,
                     static_cast<double>((timings.total - timings.queue).count()),
                     static_cast<double>(timings.queue.count()));
    }
    done(status, std::move(reply), all);
  };
  auto result = pool.Submit(std::move(body), std::move(on_reply), static_cast<int>(kind));
  if (result == ModelPool::SubmitResult::kQueueFull) {
    done(503, ErrorBody(503, "ServiceUnavailableException", NoWorkerMessage(model.name)),
         RequestTimings{});
  } else if (result == ModelPool::SubmitResult::kStopping) {
    done(503, ErrorBody(503, "ServiceUnavailableException", "server is shutting down"),
         RequestTimings{});
  }
}

void ServeServer::Routes::Inference(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  if (path.empty() && request.method() == bhttp::verb::options) {
    return ApiDescription(request, respond, "inference");
  }
  if (path.size() == 1 && path[0] == "api-description") {
    return ApiDescription(request, respond, "inference");
  }
  if (path.size() == 1 && path[0] == "ping") {
    bool healthy = self->Healthy();
    respond(http::MakeJsonResponse(request, healthy ? Status::ok : Status::internal_server_error,
                                   {{"status", healthy ? "Healthy" : "Unhealthy"}}));
    return;
  }
  if (!path.empty() && path[0] == "v2") return V2(self, std::move(request), respond, path);
  if (path.size() == 3 && path[0] == "v1" && path[1] == "models") {
    return V1(self, std::move(request), respond, path[2]);
  }
  if (path.empty() || path[0] != "predictions") return respond(NotFound(request));
  if (path.size() < 2 || path.size() > 3) return respond(NotFound(request));
  if (request.method() != bhttp::verb::post && request.method() != bhttp::verb::put) {
    return respond(MethodNotAllowed(request));
  }
  std::string version = path.size() == 3 ? path[2] : "";
  auto entry = self->Find(path[1], version);
  if (!entry) {
    if (version.empty() || !self->Find(path[1], "")) {
      return respond(Error(request, 404, "ModelNotFoundException", "Model not found: " + path[1]));
    }
    return respond(Error(request, 404, "ModelNotFoundException",
                         "Model version: " + version + " does not exist for model: " + path[1]));
  }
  std::string_view input;
  std::string error;
  if (!ExtractPredictionInput(request[bhttp::field::content_type], request.body(), &input,
                              &error)) {
    return respond(Error(request, 400, "BadRequestException", error));
  }
  auto context = ReplyContext(request);
  Predict(self, entry, version.empty() ? "default" : version, input,
          [context, respond](int status, std::string body, const RequestTimings& timings) {
            Response response = JsonText(context, status, std::move(body));
            // Where the time went (queue, the stages, total), for clients and proxies; an
            // extra header, so TorchServe clients are unaffected. A refusal (full queue,
            // stopping, bad input in the front) has queue and total only.
            response.set("Server-Timing", FormatServerTiming(timings));
            respond(std::move(response));
          });
}

void ServeServer::Routes::V1(ServeServer* self, Request&& request, Responder respond,
                             const std::string& segment) {
  // KServe v1: /v1/models/{m}:predict, {"instances": [...]} in, {"predictions": [...]} out.
  // An instance is {"data": base64 image} (or "b64") for the image handlers, a number array
  // or {"data": numbers} for the tensor handler.
  auto colon = segment.rfind(':');
  std::string name = segment.substr(0, colon);
  std::string verb = colon == std::string::npos ? "" : segment.substr(colon + 1);
  auto entry = self->Find(name, "");
  if (!entry)
    return respond(Error(request, 404, "ModelNotFoundException", "Model not found: " + name));
  if (verb != "predict") return respond(NotFound(request));
  if (request.method() != bhttp::verb::post) return respond(MethodNotAllowed(request));
  auto doc = nlohmann::json::parse(request.body(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("instances") ||
      !doc["instances"].is_array() || doc["instances"].empty()) {
    return respond(Error(request, 400, "BadRequestException",
                         "expected {\"instances\": [...]} with at least one instance"));
  }
  bool tensor = entry->pool->model().handler == HandlerKind::kTensor;
  std::vector<std::string> inputs;
  for (const auto& instance : doc["instances"]) {
    const nlohmann::json* data = &instance;
    if (instance.is_object()) {
      data = instance.contains("data")  ? &instance["data"]
             : instance.contains("b64") ? &instance["b64"]
                                        : nullptr;
    }
    if (!data) {
      return respond(Error(request, 400, "BadRequestException",
                           "an instance must be {\"data\": ...}, {\"b64\": ...} or a list"));
    }
    if (tensor) {
      inputs.push_back(nlohmann::json{{"data", *data}}.dump());
      continue;
    }
    auto bytes = data->is_string() ? Base64Decode(data->get<std::string>()) : std::nullopt;
    if (!bytes) {
      return respond(Error(request, 400, "BadRequestException",
                           "an image instance's \"data\" must be base64 text"));
    }
    inputs.push_back(std::move(*bytes));
  }
  auto state = std::make_shared<V1Predict>();
  state->context = ReplyContext(request);
  state->respond = respond;
  state->replies.resize(inputs.size());
  state->remaining = inputs.size();
  for (size_t i = 0; i < inputs.size(); ++i) {
    Predict(self, entry, "default", inputs[i],
            [state, i](int status, std::string body, const RequestTimings&) {
              state->Done(i, status, std::move(body));
            });
  }
}

}  // namespace sg::serve
