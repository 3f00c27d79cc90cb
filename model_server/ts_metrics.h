// TorchServe's own metrics, as its metrics API writes them in prometheus mode (docs/metrics.md,
// "Default Frontend Metrics"): Requests2XX/4XX/5XX{Level="Host",Hostname=...} for every HTTP
// response of the three listeners, and ts_inference_requests_total,
// ts_inference_latency_microseconds, ts_queue_latency_microseconds{model_name, model_version,
// hostname} per model and requested version ("default" when the request names none). Rendered
// in TorchServe's exact text (its Java client's: a comma after the last label, values as Java
// doubles such as "8.0"), so tools matching TorchServe's output read sg-serve's. sg-serve's own
// metrics stay in the MetricsRegistry, in the registry's format.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>

namespace sg::serve {

class TorchServeMetrics {
 public:
  explicit TorchServeMetrics(std::string hostname);

  // One HTTP response with `status`, counted by its class (1xx and 3xx are not counted, as in
  // TorchServe).
  void CountResponse(int status);
  // One inference request received for `model` at `version` ("default": no version named).
  void CountRequest(const std::string& model, const std::string& version);
  // Its time: `inference_us` from dispatch to reply, `queue_us` waiting for a worker.
  void AddLatency(const std::string& model, const std::string& version, double inference_us,
                  double queue_us);

  // The families, each with its HELP and TYPE lines; only those in `names` when not null.
  std::string Render(const std::set<std::string>* names) const;

  const std::string& hostname() const { return hostname_; }

 private:
  struct Series {
    double requests = 0;
    double inference_us = 0;
    double queue_us = 0;
  };
  const std::string hostname_;
  std::atomic<uint64_t> responses_2xx_{0};
  std::atomic<uint64_t> responses_4xx_{0};
  std::atomic<uint64_t> responses_5xx_{0};
  mutable std::mutex mutex_;
  // Guarded by mutex_: by (model, version).
  std::map<std::pair<std::string, std::string>, Series> series_;
};

// This machine's host name (gethostname), "localhost" when it has none.
std::string LocalHostname();

// Java's Double.toString for the values TorchServe prints: "8.0", "290371.129".
std::string JavaDouble(double value);

// The families of Prometheus text `text` (blocks that start with "# HELP name") whose name is in
// `names`.
std::string FilterMetricFamilies(const std::string& text, const std::set<std::string>& names);

}  // namespace sg::serve
