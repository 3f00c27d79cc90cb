// sg-serve's front process: plans the CPUs, runs one ModelPool per model and the three
// TorchServe listeners (inference, management, metrics) on the shared HTTP server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/metrics.h"
#include "model_server/cpu_budget.h"
#include "model_server/cpu_plan.h"
#include "model_server/model_pool.h"
#include "model_server/serve_config.h"

namespace boost::asio {
class io_context;
}
namespace sg::http {
class HttpServer;
}

namespace sg::serve {

// The plan shared by all models and each model's workers. Model i gets its configured (or
// min_worker) count when every model has one, else the planned total split evenly (earlier
// models get the remainder). Every model gets at least one worker: when the budget has fewer
// CPUs than models, workers of different models share CPUs (a warning says so).
struct ModelsPlan {
  CpuPlan plan;
  std::vector<std::vector<WorkerCpus>> workers;  // per model
};
ModelsPlan PlanModels(const CpuBudget& budget, const PlanRequest& cpu,
                      const std::vector<int>& model_workers);

class TorchServeMetrics;

class ServeServer {
 public:
  ServeServer(ServeConfig config, CpuBudget budget, PoolEnvironment env);
  ~ServeServer();

  // Plans, pins the whole front process to its CPUs when the plan reserves some, starts the
  // workers and the listeners (bound, accepting) on `io`. False with `error` when a listener
  // cannot bind or the front cannot be pinned.
  bool Start(boost::asio::io_context& io, std::string* error);
  // True when every model's default version has its minimum of ready workers (TorchServe's
  // /ping: a model scaled to 0 workers does not make the server unhealthy).
  bool Healthy() const;
  // The first model whose worker refused to start (bad model file, ...), as text; "" if none.
  std::string StartupError() const;
  // Stops accepting, answers queued and in-flight requests (up to `grace`), stops the workers.
  void Stop(std::chrono::milliseconds grace);

  // The plan made at start (the models of the configuration).
  const CpuPlan& plan() const { return plan_; }
  uint16_t inference_port() const;
  uint16_t management_port() const;
  uint16_t metrics_port() const;

 private:
  struct Routes;
  // One registered version of a model.
  struct ModelEntry {
    std::shared_ptr<ModelPool> pool;
    std::string url;  // modelUrl in list and describe: the archive name or the model file
    // Why this model's workers cannot start (a handler sg-serve does not have), checked when
    // workers are asked for, as TorchServe fails them at worker start; "" when they can.
    std::string refusal;
    bool loaded_at_startup = true;
    std::string work_dir;  // where its archive was extracted; removed at unregister ("": none)
    std::chrono::milliseconds start_timeout{0};  // its workers' load and warm-up bound
    Histogram* front_preprocess = nullptr;
    // Guarded by replan_mutex_: the CPUs of its workers as last planned.
    std::vector<WorkerCpus> cpus;
  };
  struct ModelVersions {
    std::string default_version;
    std::map<std::string, std::shared_ptr<ModelEntry>> versions;
  };
  enum class ScaleResult { kDone, kUnchanged, kRefused };

  // The entry of `name` at `version` ("" or absent: the default version); nullptr when none.
  std::shared_ptr<ModelEntry> Find(const std::string& name, const std::string& version) const;
  // Every entry, in name then version order.
  std::vector<std::shared_ptr<ModelEntry>> AllEntries() const;
  // A pool for `model` with its metrics. `start_timeout`: its workers' load and warm-up bound.
  std::shared_ptr<ModelEntry> MakeEntry(const ModelConfig& model,
                                        std::chrono::milliseconds start_timeout);
  // Gives `entry` `workers` workers: a plan of the whole set with that count, from which this
  // model takes the worker CPU sets the other models' workers use least; the other models'
  // workers are left as they are. Nothing changes when the count is the same. kRefused (with
  // `error`) when the model cannot start workers.
  ScaleResult Scale(const std::shared_ptr<ModelEntry>& entry, int workers, std::string* error);
  // Adds a model (its workers not started); false when name and version are taken.
  bool AddModel(const std::shared_ptr<ModelEntry>& entry);
  // Removes a version (another one becomes the default when it was); its queued requests get
  // up to 10 s on a background thread, then its workers stop.
  void RemoveModel(const std::string& name, const std::string& version);
  // Runs `work` on a thread joined by Stop.
  void Background(std::function<void()> work);

  const ServeConfig config_;
  const CpuBudget budget_;
  const PoolEnvironment env_;
  MetricsRegistry registry_;
  std::unique_ptr<TorchServeMetrics> ts_metrics_;
  // The metric families every model's pool reports into.
  struct Families;
  std::unique_ptr<Families> families_;
  // The plan reserves CPUs for the front: image preprocessing runs here, not in the workers.
  // Set once by Start, before the listeners start.
  bool front_preprocess_ = false;
  std::unique_ptr<http::HttpServer> inference_;
  std::unique_ptr<http::HttpServer> management_;
  std::unique_ptr<http::HttpServer> metrics_;

  mutable std::mutex models_mutex_;
  // Guarded by models_mutex_: the registered models by name.
  std::map<std::string, ModelVersions> models_;

  std::mutex replan_mutex_;  // one re-plan at a time
  // Guarded by replan_mutex_ (written by Start, before the listeners start).
  CpuPlan plan_;

  std::mutex threads_mutex_;
  // Guarded by threads_mutex_: background work (scaling, registering, unregistering), each
  // with the flag it sets when done; finished ones are joined by the next Background call, the
  // rest by Stop.
  struct Task {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Task> background_;
  bool stopping_ = false;
};

}  // namespace sg::serve
