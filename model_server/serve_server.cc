#include "model_server/serve_server.h"

#include <malloc.h>

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <map>
#include <random>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/http_server.h"
#include "common/strings.h"
#include "model_server/serve_routes.h"
#include "model_server/ts_metrics.h"

namespace sg::serve {
namespace {

http::ServerOptions Listener(const std::string& address, uint64_t body_limit,
                             uint64_t max_buffered_body_bytes) {
  auto hp = ParseHostPort(address);
  http::ServerOptions o;
  o.address = hp->host;
  o.port = hp->port;
  o.body_limit = body_limit;
  o.max_buffered_body_bytes = max_buffered_body_bytes;
  o.server_name = "sg-serve";
  return o;
}

// A random version 4 UUID, as TorchServe's request ids.
std::string NewRequestId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  uint64_t hi = random(), lo = random();
  hi = (hi & ~uint64_t{0xf000}) | 0x4000;                  // version 4
  lo = (lo & ~(uint64_t{3} << 62)) | (uint64_t{1} << 63);  // variant 10
  char text[37];
  std::snprintf(text, sizeof text, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return text;
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

// The metric families every model's pool reports into (children are made per model).
struct ServeServer::Families {
  Family<Histogram>* latency;
  Family<Histogram>* queue_latency;
  Family<Histogram>* batch;
  Family<Counter>* responses;
  Family<Counter>* restarts;
  Family<Histogram>* worker_preprocess;
  Family<Histogram>* worker_forward;
  Family<Histogram>* worker_postprocess;
  Family<Histogram>* front_preprocess;
};

ServeServer::ServeServer(ServeConfig config, CpuBudget budget, PoolEnvironment env)
    : config_(std::move(config)),
      budget_(std::move(budget)),
      env_(std::move(env)),
      ts_metrics_(std::make_unique<TorchServeMetrics>(LocalHostname())),
      families_(std::make_unique<Families>()) {
  auto& f = *families_;
  f.latency = &registry_.AddHistogram("sg_request_latency_seconds",
                                      "Prediction latency from queueing to reply.",
                                      LatencyBucketsSeconds(), {"model_name"});
  f.queue_latency =
      &registry_.AddHistogram("sg_queue_latency_seconds", "Time a prediction waited for a worker.",
                              LatencyBucketsSeconds(), {"model_name"});
  f.batch = &registry_.AddHistogram("sg_batch_size", "Samples per batch sent to a worker.",
                                    ExponentialBuckets(1, 2, 10), {"model_name"});
  f.responses =
      &registry_.AddCounter("sg_prediction_responses_total", "Prediction responses by status code.",
                            {"model_name", "code"});
  f.restarts = &registry_.AddCounter("sg_worker_restarts_total",
                                     "Worker processes restarted after dying or timing out.",
                                     {"model_name"});
  // The worker's own per-batch stage times, from 10 us (postprocessing is that short).
  std::vector<double> stage_buckets = {0.00001, 0.000025, 0.00005};
  for (double b : LatencyBucketsSeconds()) stage_buckets.push_back(b);
  f.worker_preprocess = &registry_.AddHistogram(
      "sg_worker_preprocess_seconds",
      "Worker time per batch decoding, resizing and normalising the inputs.", stage_buckets,
      {"model_name"});
  f.worker_forward =
      &registry_.AddHistogram("sg_worker_forward_seconds", "Worker time per batch in the model.",
                              stage_buckets, {"model_name"});
  f.worker_postprocess = &registry_.AddHistogram(
      "sg_worker_postprocess_seconds",
      "Worker time per batch turning the outputs into replies (softmax, top-k, JSON).",
      stage_buckets, {"model_name"});
  f.front_preprocess = &registry_.AddHistogram(
      "sg_front_preprocess_seconds",
      "Front time per request decoding, resizing and normalising the input (front CPUs only).",
      stage_buckets, {"model_name"});
  auto& ready = registry_.AddGauge("sg_workers_ready", "Workers ready to serve.", {"model_name"});
  auto& pending =
      registry_.AddGauge("sg_queue_pending", "Predictions waiting in the queue.", {"model_name"});
  for (const auto& model : config_.models) {
    AddModel(MakeEntry(model, env_.worker_start_timeout));
  }
  // The default version's workers and queue, per model name.
  registry_.AddCollectHook([this, &ready, &pending] {
    for (const auto& entry : AllEntries()) {
      const auto& name = entry->pool->model().name;
      if (Find(name, "") != entry) continue;
      ready.WithLabels({name}).Set(entry->pool->ready_workers());
      pending.WithLabels({name}).Set(static_cast<double>(entry->pool->pending()));
    }
  });
}

ServeServer::~ServeServer() {
  Stop(std::chrono::milliseconds(0));
}

std::shared_ptr<ServeServer::ModelEntry> ServeServer::MakeEntry(
    const ModelConfig& model, std::chrono::milliseconds start_timeout) {
  auto& f = *families_;
  PoolMetrics m;
  m.latency = &f.latency->WithLabels({model.name});
  m.queue_latency = &f.queue_latency->WithLabels({model.name});
  m.batch_size = &f.batch->WithLabels({model.name});
  m.responses = f.responses;
  m.worker_restarts = &f.restarts->WithLabels({model.name});
  m.worker_preprocess = &f.worker_preprocess->WithLabels({model.name});
  m.worker_forward = &f.worker_forward->WithLabels({model.name});
  m.worker_postprocess = &f.worker_postprocess->WithLabels({model.name});
  PoolEnvironment env = env_;
  env.worker_start_timeout = start_timeout;
  auto entry = std::make_shared<ModelEntry>();
  entry->pool = std::make_shared<ModelPool>(model, env, m);
  // TorchServe's modelUrl: the archive's name for a model from an archive, else its file.
  entry->url = model.url.empty() ? model.path : model.url;
  entry->start_timeout = start_timeout;
  entry->front_preprocess = &f.front_preprocess->WithLabels({model.name});
  return entry;
}

bool ServeServer::AddModel(const std::shared_ptr<ModelEntry>& entry) {
  const auto& model = entry->pool->model();
  std::lock_guard lock(models_mutex_);
  auto& versions = models_[model.name];
  if (!versions.versions.emplace(model.version, entry).second) return false;
  if (versions.default_version.empty()) versions.default_version = model.version;
  return true;
}

std::shared_ptr<ServeServer::ModelEntry> ServeServer::Find(const std::string& name,
                                                           const std::string& version) const {
  std::lock_guard lock(models_mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) return nullptr;
  auto v = it->second.versions.find(version.empty() ? it->second.default_version : version);
  return v == it->second.versions.end() ? nullptr : v->second;
}

std::vector<std::shared_ptr<ServeServer::ModelEntry>> ServeServer::AllEntries() const {
  std::lock_guard lock(models_mutex_);
  std::vector<std::shared_ptr<ModelEntry>> out;
  for (const auto& [name, versions] : models_) {
    for (const auto& [version, entry] : versions.versions) out.push_back(entry);
  }
  return out;
}

void ServeServer::RemoveModel(const std::string& name, const std::string& version) {
  std::shared_ptr<ModelEntry> removed;
  {
    std::lock_guard lock(models_mutex_);
    auto it = models_.find(name);
    if (it == models_.end()) return;
    auto v = it->second.versions.find(version);
    if (v == it->second.versions.end()) return;
    removed = v->second;
    it->second.versions.erase(v);
    if (it->second.versions.empty()) {
      models_.erase(it);
    } else if (it->second.default_version == version) {
      it->second.default_version = it->second.versions.begin()->first;
    }
  }
  // Requests already holding the pool are answered (or get 503 once it stops); its CPUs are
  // free for the next plan as soon as it is out of the set.
  Background([removed] {
    removed->pool->Stop(std::chrono::seconds(10));
    if (!removed->work_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(removed->work_dir, ec);
    }
  });
}

void ServeServer::Background(std::function<void()> work) {
  std::vector<Task> finished;
  {
    std::lock_guard lock(threads_mutex_);
    if (stopping_) return;
    auto running = std::partition(background_.begin(), background_.end(),
                                  [](const Task& t) { return !t.done->load(); });
    std::move(running, background_.end(), std::back_inserter(finished));
    background_.erase(running, background_.end());
    auto done = std::make_shared<std::atomic<bool>>(false);
    background_.push_back({std::thread([work = std::move(work), done] {
                             work();
                             *done = true;
                           }),
                           done});
  }
  for (auto& t : finished) t.thread.join();
}

bool ServeServer::Start(boost::asio::io_context& io, std::string* error) {
  {
    std::lock_guard lock(replan_mutex_);
    auto entries = AllEntries();
    std::vector<int> counts;
    for (const auto& e : entries) counts.push_back(e->pool->model().workers);
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
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i]->cpus = planned.workers[i];
      entries[i]->pool->SetWorkers(entries[i]->cpus);
    }
  }
  auto make = [&](const std::string& address, uint64_t limit, auto route) {
    // Each listener bounds the bodies it is receiving by the same budget. Every response
    // carries the request's id (the client's x-request-id, else a new one) and is counted in
    // TorchServe's Requests2XX/4XX/5XX.
    return std::make_unique<http::HttpServer>(
        io, Listener(address, limit, config_.max_buffered_body_bytes),
        [this, route](Request&& request, Responder respond) {
          std::string id(request["x-request-id"]);
          if (id.empty() || id.size() > 200) id = NewRequestId();
          Responder tagged = [this, id, respond = std::move(respond)](Response&& response) {
            response.set("x-request-id", id);
            ts_metrics_->CountResponse(response.result_int());
            respond(std::move(response));
          };
          route(this, std::move(request), std::move(tagged));
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

ServeServer::ScaleResult ServeServer::Scale(const std::shared_ptr<ModelEntry>& entry, int workers,
                                            std::string* error) {
  std::lock_guard lock(replan_mutex_);
  if (!entry->refusal.empty() && workers > 0) {
    *error = entry->refusal;
    return ScaleResult::kRefused;
  }
  if (static_cast<int>(entry->cpus.size()) == workers) return ScaleResult::kUnchanged;
  // The whole set with this model's new count; the others as they run now.
  auto entries = AllEntries();
  std::vector<int> counts;
  std::map<int, int> used;  // CPU -> workers of other models on it
  for (const auto& e : entries) {
    if (e == entry) continue;
    counts.push_back(static_cast<int>(e->cpus.size()));
    for (const auto& w : e->cpus) {
      for (int cpu : w.cpus) ++used[cpu];
    }
  }
  std::vector<WorkerCpus> mine;
  if (workers > 0) {
    counts.push_back(workers);
    for (auto& c : counts) c = std::max(c, 1);
    auto planned = PlanModels(budget_, config_.cpu, counts);
    auto candidates = planned.plan.workers;
    auto load = [&](const WorkerCpus& w) {
      int n = 0;
      for (int cpu : w.cpus) n += used.count(cpu) ? used[cpu] : 0;
      return n;
    };
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](const auto& a, const auto& b) { return load(a) < load(b); });
    for (int k = 0; k < workers && !candidates.empty(); ++k) {
      mine.push_back(candidates[k % candidates.size()]);
    }
  }
  spdlog::info("model {} version {}: {} worker(s) (was {})", entry->pool->model().name,
               entry->pool->model().version, workers, entry->cpus.size());
  entry->cpus = mine;
  entry->pool->SetWorkers(mine);
  return ScaleResult::kDone;
}

bool ServeServer::Healthy() const {
  for (const auto& entry : AllEntries()) {
    const auto& model = entry->pool->model();
    if (Find(model.name, "") != entry) continue;
    if (entry->pool->ready_workers() < entry->pool->min_workers()) return false;
  }
  return true;
}

std::string ServeServer::StartupError() const {
  for (const auto& entry : AllEntries()) {
    auto e = entry->pool->fatal_error();
    if (!e.empty()) return e;
  }
  return "";
}

void ServeServer::Stop(std::chrono::milliseconds grace) {
  if (inference_) inference_->Stop();
  {
    std::lock_guard lock(threads_mutex_);
    stopping_ = true;
  }
  // The pools first: a synchronous scale or registration waiting for its workers ends at once
  // (500, shutting down) instead of holding the stop for up to its start timeout.
  for (const auto& entry : AllEntries()) entry->pool->Stop(grace);
  std::vector<Task> background;
  {
    std::lock_guard lock(threads_mutex_);
    background.swap(background_);
  }
  for (auto& t : background) t.thread.join();
  // A registration that finished meanwhile added a pool after the others stopped.
  for (const auto& entry : AllEntries()) entry->pool->Stop(std::chrono::milliseconds(0));
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
