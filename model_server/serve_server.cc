#include "model_server/serve_server.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/http_server.h"
#include "common/strings.h"
#include "model_server/handler.h"
#include "model_server/multipart.h"
#include "model_server/protocol.h"
#include "model_server/server_timing.h"

namespace sg::serve {
namespace {

namespace bhttp = boost::beast::http;
using http::Request;
using http::Responder;
using http::Response;
using http::Status;

// The parts of a request a later reply needs (the request itself has been consumed by then).
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

http::ServerOptions Listener(const std::string& address, uint64_t body_limit,
                             uint64_t max_buffered_body_bytes) {
  auto hp = ParseHostPort(address);
  http::ServerOptions o;
  o.address = hp->first;
  o.port = hp->second;
  o.body_limit = body_limit;
  o.max_buffered_body_bytes = max_buffered_body_bytes;
  o.server_name = "sg-serve";
  return o;
}

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
  std::vector<int64_t> batch_shape;
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
    shape.insert(shape.begin(), static_cast<int64_t>(replies.size()));
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

ModelsPlan PlanModels(const CpuBudget& budget, const PlanRequest& cpu,
                      const std::vector<int>& model_workers) {
  ModelsPlan out;
  bool all_given =
      std::all_of(model_workers.begin(), model_workers.end(), [](int w) { return w > 0; });
  PlanRequest request = cpu;
  if (all_given) {
    request.workers = 0;
    for (int w : model_workers) request.workers += w;
  } else if (request.workers > 0) {
    request.workers = std::max<int>(request.workers, static_cast<int>(model_workers.size()));
  } else if (model_workers.size() > 1) {
    request.workers = static_cast<int>(model_workers.size());
  }
  out.plan = PlanWorkers(budget, request);
  int total = static_cast<int>(out.plan.workers.size());
  int n = static_cast<int>(model_workers.size());
  std::vector<int> counts;
  if (all_given && total == request.workers) {
    counts = model_workers;
  } else {
    for (int i = 0; i < n; ++i) counts.push_back(std::max(1, total / n + (i < total % n ? 1 : 0)));
  }
  int next = 0;
  bool shared = false;
  for (int i = 0; i < n; ++i) {
    std::vector<WorkerCpus> mine;
    for (int k = 0; k < counts[i]; ++k) {
      if (total == 0) break;
      if (next >= total) shared = true;
      mine.push_back(out.plan.workers[next++ % total]);
    }
    out.workers.push_back(std::move(mine));
  }
  if (shared) {
    out.plan.warnings.push_back(
        "more workers than the budget holds: workers of different "
        "models share CPUs");
  }
  return out;
}

ServeServer::ServeServer(ServeConfig config, CpuBudget budget, PoolEnvironment env)
    : config_(std::move(config)), budget_(std::move(budget)), env_(std::move(env)) {
  worker_overrides_.assign(config_.models.size(), 0);
  auto& requests =
      registry_.AddCounter("ts_inference_requests_total", "Total number of inference requests.",
                           {"model_name", "model_version"});
  auto& inference_us =
      registry_.AddCounter("ts_inference_latency_microseconds",
                           "Cumulative inference duration in microseconds (dispatch to reply).",
                           {"model_name", "model_version"});
  auto& queue_us = registry_.AddCounter("ts_queue_latency_microseconds",
                                        "Cumulative queue duration in microseconds.",
                                        {"model_name", "model_version"});
  auto& latency = registry_.AddHistogram("sg_request_latency_seconds",
                                         "Prediction latency from queueing to reply.",
                                         LatencyBucketsSeconds(), {"model_name"});
  auto& queue_latency =
      registry_.AddHistogram("sg_queue_latency_seconds", "Time a prediction waited for a worker.",
                             LatencyBucketsSeconds(), {"model_name"});
  auto& batch = registry_.AddHistogram("sg_batch_size", "Samples per batch sent to a worker.",
                                       ExponentialBuckets(1, 2, 10), {"model_name"});
  auto& responses =
      registry_.AddCounter("sg_prediction_responses_total", "Prediction responses by status code.",
                           {"model_name", "code"});
  auto& restarts =
      registry_.AddCounter("sg_worker_restarts_total",
                           "Worker processes restarted after dying or timing out.", {"model_name"});
  // The worker's own per-batch stage times, from 10 us (postprocessing is that short).
  std::vector<double> stage_buckets = {0.00001, 0.000025, 0.00005};
  for (double b : LatencyBucketsSeconds()) stage_buckets.push_back(b);
  auto& worker_preprocess =
      registry_.AddHistogram("sg_worker_preprocess_seconds",
                             "Worker time per batch decoding, resizing and normalising the inputs.",
                             stage_buckets, {"model_name"});
  auto& worker_forward =
      registry_.AddHistogram("sg_worker_forward_seconds", "Worker time per batch in the model.",
                             stage_buckets, {"model_name"});
  auto& worker_postprocess = registry_.AddHistogram(
      "sg_worker_postprocess_seconds",
      "Worker time per batch turning the outputs into replies (softmax, top-k, JSON).",
      stage_buckets, {"model_name"});
  auto& front_preprocess = registry_.AddHistogram(
      "sg_front_preprocess_seconds",
      "Front time per request decoding, resizing and normalising the input (front CPUs only).",
      stage_buckets, {"model_name"});
  auto& ready = registry_.AddGauge("sg_workers_ready", "Workers ready to serve.", {"model_name"});
  auto& pending =
      registry_.AddGauge("sg_queue_pending", "Predictions waiting in the queue.", {"model_name"});
  for (const auto& model : config_.models) {
    PoolMetrics m;
    m.requests = &requests.WithLabels({model.name, model.version});
    m.inference_us = &inference_us.WithLabels({model.name, model.version});
    m.queue_us = &queue_us.WithLabels({model.name, model.version});
    m.latency = &latency.WithLabels({model.name});
    m.queue_latency = &queue_latency.WithLabels({model.name});
    m.batch_size = &batch.WithLabels({model.name});
    m.responses = &responses;
    m.worker_restarts = &restarts.WithLabels({model.name});
    m.worker_preprocess = &worker_preprocess.WithLabels({model.name});
    m.worker_forward = &worker_forward.WithLabels({model.name});
    m.worker_postprocess = &worker_postprocess.WithLabels({model.name});
    pools_.push_back(std::make_unique<ModelPool>(model, env_, m));
    front_preprocess_seconds_.push_back(&front_preprocess.WithLabels({model.name}));
  }
  registry_.AddCollectHook([this, &ready, &pending] {
    for (const auto& pool : pools_) {
      ready.WithLabels({pool->model().name}).Set(pool->ready_workers());
      pending.WithLabels({pool->model().name})
          .Set(pool->Describe()["queue"]["pending"].get<double>());
    }
  });
}

ServeServer::~ServeServer() {
  Stop(std::chrono::milliseconds(0));
}

struct ServeServer::Routes {
  // Open Inference Protocol v2: /v2, /v2/health/{live,ready}, /v2/models/{m}[/versions/{v}]
  // [/ready | /infer].
  static void V2(ServeServer* self, Request&& request, Responder respond,
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
    ModelPool* pool = nullptr;
    for (auto& p : self->pools_) {
      if (p->model().name == path[2]) pool = p.get();
    }
    if (!pool) return respond(V2Error(request, 404, "Model not found: " + path[2]));
    size_t next = 3;
    if (path.size() > next && path[next] == "versions") {
      if (path.size() <= next + 1) return respond(NotFound(request));
      if (path[next + 1] != pool->model().version) {
        return respond(
            V2Error(request, 404,
                    "Model version: " + path[next + 1] + " does not exist for model: " + path[2]));
      }
      next += 2;
    }
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
      return respond(http::MakeJsonResponse(request,
                                            ready ? Status::ok : Status::service_unavailable,
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
    size_t batch = static_cast<size_t>(shape[0]);
    size_t per = data.size() / batch;
    std::vector<int64_t> sample_shape(shape.begin() + 1, shape.end());
    auto state = std::make_shared<V2Infer>();
    state->context = ReplyContext(request);
    state->respond = respond;
    state->model_name = model.name;
    state->model_version = model.version;
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
        state->Done(b, 503,
                    ErrorBody(503, "ServiceUnavailableException",
                              result == ModelPool::SubmitResult::kStopping
                                  ? "server is shutting down"
                                  : "Model \"" + model.name +
                                        "\" has no worker to serve "
                                        "inference request."));
      }
    }
  }

  static void Inference(ServeServer* self, Request&& request, Responder respond) {
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

  static void Management(ServeServer* self, Request&& request, Responder respond) {
    std::string query;
    auto path = PathSegments(request.target(), &query);
    if (path.empty() || path[0] != "models" || path.size() > 3) return respond(NotFound(request));
    if (path.size() == 1) {
      if (request.method() != bhttp::verb::get) return respond(MethodNotAllowed(request));
      nlohmann::json models = nlohmann::json::array();
      for (const auto& p : self->pools_) {
        models.push_back({{"modelName", p->model().name}, {"modelUrl", p->model().path}});
      }
      return respond(http::MakeJsonResponse(request, Status::ok, {{"models", models}}));
    }
    size_t index = self->pools_.size();
    for (size_t i = 0; i < self->pools_.size(); ++i) {
      if (self->pools_[i]->model().name == path[1]) index = i;
    }
    if (index == self->pools_.size()) {
      return respond(Error(request, 404, "ModelNotFoundException", "Model not found: " + path[1]));
    }
    auto& pool = *self->pools_[index];
    if (path.size() == 3 && path[2] != pool.model().version && path[2] != "all") {
      return respond(Error(request, 404, "ModelNotFoundException",
                           "Model version: " + path[2] + " does not exist for model: " + path[1]));
    }
    if (request.method() == bhttp::verb::get) {
      return respond(
          http::MakeJsonResponse(request, Status::ok, nlohmann::json::array({pool.Describe()})));
    }
    if (request.method() != bhttp::verb::put) return respond(MethodNotAllowed(request));
    std::string text = QueryParam(query, "min_worker");
    int workers = 0;
    try {
      size_t used = 0;
      workers = std::stoi(text, &used);
      if (used != text.size()) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      return respond(Error(request, 400, "BadRequestException",
                           "min_worker must be a positive integer, got \"" + text + "\""));
    }
    if (workers < 1 || workers > 1024) {
      return respond(Error(request, 400, "BadRequestException",
                           "min_worker must be in [1, 1024], got " + text));
    }
    bool synchronous = QueryParam(query, "synchronous") == "true";
    std::string name = pool.model().name;
    auto context = ReplyContext(request);
    std::lock_guard lock(self->threads_mutex_);
    self->background_.emplace_back([self, name, workers, synchronous, context, respond] {
      self->Replan(name, workers);
      if (synchronous) {
        respond(http::MakeJsonResponse(
            context, Status::ok,
            {{"status", "Workers scaled to " + std::to_string(workers) + " for model: " + name}}));
      }
    });
    if (!synchronous) {
      respond(http::MakeJsonResponse(request, Status::accepted,
                                     {{"status", "Processing worker updates..."}}));
    }
  }

  static void Metrics(ServeServer* self, Request&& request, Responder respond) {
    std::string query;
    auto path = PathSegments(request.target(), &query);
    if (path.size() != 1 || path[0] != "metrics") return respond(NotFound(request));
    if (request.method() != bhttp::verb::get) return respond(MethodNotAllowed(request));
    respond(http::MakeTextResponse(request, Status::ok, self->registry_.Render(),
                                   kPrometheusContentType));
  }
};

bool ServeServer::Start(boost::asio::io_context& io, std::string* error) {
  {
    std::lock_guard lock(replan_mutex_);
    std::vector<int> counts;
    for (const auto& m : config_.models) counts.push_back(m.workers);
    auto planned = PlanModels(budget_, config_.cpu, counts);
    plan_ = planned.plan;
    for (const auto& w : plan_.warnings) spdlog::warn("cpu plan: {}", w);
    // The front's own CPUs: pinned before the pools start their threads (which inherit it), and
    // the image handlers' preprocessing moves from the workers to the front.
    if (!plan_.front_cpus.empty()) {
      if (!PinProcess(plan_.front_cpus, error)) return false;
      front_preprocess_ = true;
      // Each request now allocates a decoded image and a float sample (600 KB at 224x224):
      // keep such blocks in the heap instead of mapping, faulting in and unmapping them anew
      // for every request (glibc's default for blocks over 128 KB).
      mallopt(M_MMAP_THRESHOLD, 4 << 20);
      mallopt(M_TRIM_THRESHOLD, 64 << 20);
    }
    for (size_t i = 0; i < pools_.size(); ++i) pools_[i]->SetWorkers(planned.workers[i]);
  }
  auto make = [&](const std::string& address, uint64_t limit, auto route) {
    // Each listener bounds the bodies it is receiving by the same budget.
    return std::make_unique<http::HttpServer>(
        io, Listener(address, limit, config_.max_buffered_body_bytes),
        [this, route](Request&& request, Responder respond) {
          route(this, std::move(request), std::move(respond));
        });
  };
  inference_ = make(config_.inference_address, config_.max_request_size, &Routes::Inference);
  management_ = make(config_.management_address, 1 << 20, &Routes::Management);
  metrics_ = make(config_.metrics_address, 1 << 20, &Routes::Metrics);
  for (auto* server : {inference_.get(), management_.get(), metrics_.get()}) {
    std::string why;
    if (!server->Start(&why)) {
      *error = why;
      return false;
    }
  }
  return true;
}

void ServeServer::Replan(const std::string& model, int workers) {
  std::lock_guard lock(replan_mutex_);
  std::vector<int> counts;
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i]->model().name == model) worker_overrides_[i] = workers;
    int current = worker_overrides_[i] > 0 ? worker_overrides_[i] : pools_[i]->min_workers();
    counts.push_back(std::max(1, current));
  }
  auto planned = PlanModels(budget_, config_.cpu, counts);
  plan_ = planned.plan;
  spdlog::info("re-planned for {} worker(s) of {}:\n{}", workers, model, DescribePlan(plan_));
  for (size_t i = 0; i < pools_.size(); ++i) pools_[i]->SetWorkers(planned.workers[i]);
}

bool ServeServer::Healthy() const {
  for (const auto& pool : pools_) {
    if (pool->ready_workers() < pool->min_workers()) return false;
  }
  return true;
}

std::string ServeServer::StartupError() const {
  for (const auto& pool : pools_) {
    auto e = pool->fatal_error();
    if (!e.empty()) return e;
  }
  return "";
}

void ServeServer::Stop(std::chrono::milliseconds grace) {
  if (inference_) inference_->Stop();
  std::vector<std::thread> background;
  {
    std::lock_guard lock(threads_mutex_);
    background.swap(background_);
  }
  for (auto& t : background) t.join();
  for (auto& pool : pools_) pool->Stop(grace);
  if (management_) management_->Stop();
  if (metrics_) metrics_->Stop();
}

uint16_t ServeServer::inference_port() const {
  return inference_->port();
}
uint16_t ServeServer::management_port() const {
  return management_->port();
}
uint16_t ServeServer::metrics_port() const {
  return metrics_->port();
}

}  // namespace sg::serve
