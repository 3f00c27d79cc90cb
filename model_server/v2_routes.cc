#include "model_server/serve_routes.h"

#include <cmath>
#include <memory>
#include <mutex>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "model_server/handler.h"
#include "model_server/protocol.h"

namespace sg::serve {
namespace {

// Open Inference Protocol (KServe v2) errors: {"error": "..."}.
Response V2Error(const Request& request, int status, const std::string& message) {
  return http::MakeJsonResponse(request, static_cast<Status>(status), {{"error", message}});
}

bool FlattenNumbers(const nlohmann::json& value, std::vector<float>* out) {
  if (value.is_number()) {
    out->push_back(value.get<float>());
    return true;
  }
  if (!value.is_array()) return false;
  for (const auto& e : value) {
    if (!FlattenNumbers(e, out)) return false;
  }
  return true;
}

// Gathers the per-sample replies of one v2 infer request and answers once all are in.
struct V2Infer {
  Request context;
  Responder respond;
  std::string model_name, model_version, id;
  bool unbatched = false;  // the request's shape had no batch dimension: nor has the output
  std::mutex mutex;
  // Guarded by mutex.
  std::vector<std::pair<int, std::string>> replies;
  size_t remaining = 0;

  void Done(size_t index, int code, std::string text) {
    {
      std::lock_guard lock(mutex);
      replies[index] = {code, std::move(text)};
      if (--remaining > 0) return;
    }
    for (const auto& [status, body] : replies) {
      if (status != 200) {
        auto error = nlohmann::json::parse(body, nullptr, false);
        std::string message = error.is_object() && error.contains("message")
                                  ? error["message"].get<std::string>()
                                  : body;
        respond(V2Error(context, status, message));
        return;
      }
    }
    std::vector<float> data;
    std::vector<int64_t> shape;
    for (size_t i = 0; i < replies.size(); ++i) {
      auto out = nlohmann::json::parse(replies[i].second, nullptr, false);
      auto sample_shape = out["shape"].get<std::vector<int64_t>>();
      if (i == 0) {
        shape = sample_shape;
      } else if (sample_shape != shape) {
        respond(V2Error(context, 500, "outputs of the batch have different shapes"));
        return;
      }
      for (const auto& v : out["data"]) data.push_back(v.is_number() ? v.get<float>() : NAN);
    }
    if (!unbatched) shape.insert(shape.begin(), static_cast<int64_t>(replies.size()));
    nlohmann::json body = {
        {"model_name", model_name},
        {"model_version", model_version},
        {"outputs",
         {{{"name", "output__0"}, {"datatype", "FP32"}, {"shape", shape}, {"data", data}}}}};
    if (!id.empty()) body["id"] = id;
    respond(http::MakeJsonResponse(context, Status::ok, body));
  }
};

}  // namespace

void ServeServer::Routes::V2(ServeServer* self, Request&& request, Responder respond,
                             const std::vector<std::string>& path) {
  bool get = request.method() == bhttp::verb::get;
  if (path.size() == 1) {
    if (!get) return respond(MethodNotAllowed(request));
    return respond(http::MakeJsonResponse(
        request, Status::ok,
        {{"name", "sg-serve"}, {"version", "0.1.0"}, {"extensions", nlohmann::json::array()}}));
  }
  if (path.size() == 3 && path[1] == "health" && (path[2] == "live" || path[2] == "ready")) {
    if (!get) return respond(MethodNotAllowed(request));
    bool ok = path[2] == "live" || self->Healthy();
    return respond(http::MakeJsonResponse(request, ok ? Status::ok : Status::service_unavailable,
                                          {{path[2], ok}}));
  }
  if (path.size() < 3 || path[1] != "models") return respond(NotFound(request));
  auto entry = self->Find(path[2], "");
  if (!entry) return respond(V2Error(request, 404, "Model not found: " + path[2]));
  size_t next = 3;
  if (path.size() > next && path[next] == "versions") {
    if (path.size() <= next + 1) return respond(NotFound(request));
    entry = self->Find(path[2], path[next + 1]);
    if (!entry) {
      return respond(
          V2Error(request, 404,
                  "Model version: " + path[next + 1] + " does not exist for model: " + path[2]));
    }
    next += 2;
  }
  ModelPool* pool = entry->pool.get();
  const auto& model = pool->model();
  std::string action = path.size() > next ? path[next] : "";
  if (path.size() > next + 1) return respond(NotFound(request));
  if (action.empty()) {
    if (!get) return respond(MethodNotAllowed(request));
    auto sample = nlohmann::json::array({-1});
    if (model.handler == HandlerKind::kTensor && model.input_shape.empty()) {
      sample = nlohmann::json::array({-1, -1});
    } else {
      int side = model.preprocess.crop > 0 ? model.preprocess.crop : model.preprocess.resize;
      if (model.handler == HandlerKind::kTensor) {
        for (auto d : model.input_shape) sample.push_back(d);
      } else {
        sample.push_back(model.preprocess.channels);
        sample.push_back(side);
        sample.push_back(side);
      }
    }
    return respond(http::MakeJsonResponse(
        request, Status::ok,
        {{"name", model.name},
         {"versions", {model.version}},
         {"platform", "pytorch_torchscript"},
         {"inputs", {{{"name", "input__0"}, {"datatype", "FP32"}, {"shape", sample}}}},
         {"outputs", {{{"name", "output__0"}, {"datatype", "FP32"}, {"shape", {-1, -1}}}}}}));
  }
  if (action == "ready") {
    if (!get) return respond(MethodNotAllowed(request));
    bool ready = pool->ready_workers() >= pool->min_workers();
    return respond(http::MakeJsonResponse(request, ready ? Status::ok : Status::service_unavailable,
                                          {{"name", model.name}, {"ready", ready}}));
  }
  if (action != "infer") return respond(NotFound(request));
  if (request.method() != bhttp::verb::post) return respond(MethodNotAllowed(request));

  auto doc = nlohmann::json::parse(request.body(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("inputs") ||
      !doc["inputs"].is_array() || doc["inputs"].size() != 1 || !doc["inputs"][0].is_object()) {
    return respond(V2Error(request, 400,
                           "expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", "
                           "\"data\"}]} with exactly one input"));
  }
  const auto& input = doc["inputs"][0];
  if (input.value("datatype", "") != "FP32") {
    return respond(V2Error(
        request, 400, "unsupported datatype \"" + input.value("datatype", "") + "\": only FP32"));
  }
  std::vector<int64_t> shape;
  bool shape_ok = input.contains("shape") && input["shape"].is_array() && !input["shape"].empty();
  if (shape_ok) {
    for (const auto& d : input["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (1 << 24)) {
        shape_ok = false;
        break;
      }
      shape.push_back(d.get<int64_t>());
    }
  }
  if (!shape_ok) {
    return respond(
        V2Error(request, 400, "\"shape\" must be a non-empty list of positive integers"));
  }
  std::vector<float> data;
  if (!input.contains("data") || !FlattenNumbers(input["data"], &data)) {
    return respond(V2Error(request, 400, "\"data\" must be numbers (flat or nested)"));
  }
  int64_t numel = 1;
  for (auto d : shape) {
    if (numel > (int64_t{1} << 34) / d) {
      return respond(V2Error(request, 400, "\"shape\" too large"));
    }
    numel *= d;
  }
  if (numel != static_cast<int64_t>(data.size())) {
    return respond(V2Error(request, 400,
                           "\"shape\" needs " + std::to_string(numel) + " values, \"data\" has " +
                               std::to_string(data.size())));
  }
  // A shape of the sample's own rank has no batch dimension: one sample, answered without one
  // (TorchServe's KServe v2 mnist request sends [1, 28, 28] to a model of [N, 1, 28, 28]).
  size_t sample_rank = model.handler != HandlerKind::kTensor ? 3 : model.input_shape.size();
  bool unbatched = sample_rank > 0 && shape.size() == sample_rank;
  size_t batch = unbatched ? 1 : static_cast<size_t>(shape[0]);
  size_t per = data.size() / batch;
  std::vector<int64_t> sample_shape(shape.begin() + (unbatched ? 0 : 1), shape.end());
  auto state = std::make_shared<V2Infer>();
  state->context = ReplyContext(request);
  state->respond = respond;
  state->model_name = model.name;
  state->model_version = model.version;
  state->unbatched = unbatched;
  if (doc.contains("id") && doc["id"].is_string()) state->id = doc["id"];
  state->replies.resize(batch);
  state->remaining = batch;
  for (size_t b = 0; b < batch; ++b) {
    nlohmann::json sample = {
        {"data", std::vector<float>(data.begin() + b * per, data.begin() + (b + 1) * per)},
        {"shape", sample_shape}};
    auto result = pool->Submit(
        sample.dump(),
        [state, b](int status, std::string body, const RequestTimings&) {
          state->Done(b, status, std::move(body));
        },
        static_cast<int>(InputKind::kRawTensor));
    if (result != ModelPool::SubmitResult::kQueued) {
      state->Done(
          b, 503,
          ErrorBody(503, "ServiceUnavailableException",
                    result == ModelPool::SubmitResult::kStopping ? "server is shutting down"
                                                                 : "Model \"" + model.name +
                                                                       "\" has no worker to serve "
                                                                       "inference request."));
    }
  }
}

}  // namespace sg::serve
