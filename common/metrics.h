// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
// exposition format 0.0.4, so every server exposes /metrics the same way.
//
// Why not prometheus-cpp (Debian's prometheus-cpp-dev 1.0.1): measured, bench/gateway/metrics.sh
// (callgrind, the gateway's families in one binary): a proxied request's updates take 119
// instructions here and 262 there (its Histogram::Observe locks a mutex), a label lookup 743 vs
// 1746, a /metrics render 0.90 M vs 1.97 M; docs/ARCHITECTURE.md has the figures.
//
// Thread safety: Counter, Gauge and Histogram are lock-free to update from any thread. Family
// lookups (WithLabels) take the family's mutex: look a child up once and keep the reference on hot
// paths. References stay valid for the registry's lifetime.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

namespace sg {

// Label values, in the order of the family's label names.
using LabelValues = std::vector<std::string>;

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  // REQUIRES: delta >= 0 (counters only go up).
  void Increment(double delta = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: strictly increasing upper bounds; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Take() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
};

// Default latency buckets in seconds, 100 us to 60 s.
std::vector<double> LatencyBucketsSeconds();
// Exponential buckets: start, start*factor, ... (count bounds).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

template <typename Metric>
class Family {
 public:
  using MetricType = Metric;

  // The child for these label values, created on first use.
  // REQUIRES: values.size() equals the number of label names.
  Metric& WithLabels(const LabelValues& values);

  const std::string& name() const { return name_; }

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make);

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_;
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::map<LabelValues, std::unique_ptr<Metric>> children_;
};

class MetricsRegistry {
 public:
  // Registers a family. Throws std::invalid_argument on an invalid metric or label name or a
  // name registered twice (a programming error, found at start-up).
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds,
                                  std::vector<std::string> label_names = {});

  // Called at the start of every Render(), e.g. to set gauges read from elsewhere.
  void AddCollectHook(std::function<void()> hook);

  // The whole registry in the text exposition format, families in registration order.
  std::string Render() const;

 private:
  template <typename Metric>
  Family<Metric>& Add(const std::string& name, const std::string& help,
                      std::vector<std::string> label_names,
                      std::function<std::unique_ptr<Metric>()> make);

  using AnyFamily = std::variant<std::unique_ptr<Family<Counter>>, std::unique_ptr<Family<Gauge>>,
                                 std::unique_ptr<Family<Histogram>>>;
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::vector<AnyFamily> families_;
  std::vector<std::function<void()>> hooks_;
};

// Helpers for the text format, exposed for tests.
std::string EscapeLabelValue(const std::string& value);
std::string EscapeHelp(const std::string& help);

}  // namespace sg
