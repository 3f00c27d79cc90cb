#include "model_server/serve_server.h"

#include <malloc.h>

#include <algorithm>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/http_server.h"
#include "model_server/serve_routes.h"

namespace sg::serve {
namespace {

using http::Request;
using http::Responder;

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