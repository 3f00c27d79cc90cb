// sg-serve's front process: plans the CPUs, runs one ModelPool per model and the three
// TorchServe listeners (inference, management, metrics) on the shared HTTP server.
#pragma once

#include <chrono>
#include <cstdint>
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

class ServeServer {
 public:
  ServeServer(ServeConfig config, CpuBudget budget, PoolEnvironment env);
  ~ServeServer();

  // Plans, pins the whole front process to its CPUs when the plan reserves some, starts the
  // workers and the listeners (bound, accepting) on `io`. False with `error` when a listener
  // cannot bind or the front cannot be pinned.
  bool Start(boost::asio::io_context& io, std::string* error);
  // True when every model has its minimum of ready workers.
  bool Healthy() const;
  // The first model whose worker refused to start (bad model file, ...), as text; "" if none.
  std::string StartupError() const;
  // Stops accepting, answers queued and in-flight requests (up to `grace`), stops the workers.
  void Stop(std::chrono::milliseconds grace);

  const CpuPlan& plan() const { return plan_; }
  uint16_t inference_port() const;
  uint16_t management_port() const;
  uint16_t metrics_port() const;

 private:
  struct Routes;
  void Replan(const std::string& model, int workers);

  const ServeConfig config_;
  const CpuBudget budget_;
  const PoolEnvironment env_;
  MetricsRegistry registry_;
  std::vector<std::unique_ptr<ModelPool>> pools_;
  std::vector<Histogram*> front_preprocess_seconds_;  // per model, as pools_
  // The plan reserves CPUs for the front: image preprocessing runs here, not in the workers.
  // Set once by Start, before the listeners start.
  bool front_preprocess_ = false;
  std::unique_ptr<http::HttpServer> inference_;
  std::unique_ptr<http::HttpServer> management_;
  std::unique_ptr<http::HttpServer> metrics_;

  std::mutex replan_mutex_;  // one re-plan at a time
  // Guarded by replan_mutex_.
  CpuPlan plan_;
  std::vector<int> worker_overrides_;  // per model; 0: as configured

  std::mutex threads_mutex_;
  // Guarded by threads_mutex_: background re-plans (PUT /models), joined by Stop.
  std::vector<std::thread> background_;
};

}  // namespace sg::serve
