// Capacity and cost (issue 17, item 3): how many CPU pods serve the production peak the gateway
// saw, and what they cost a year against the GPU fleet they replace. Plain functions over plain
// data; every figure comes with the formula, numbers written in, that made it, so a person can
// check it by hand (docs/comparator.md, Capacity and cost).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"

namespace sg::comparator {

// One minute of the observation window: [start_us, start_us + 60 s).
struct TrafficMinute {
  int64_t start_us = 0;
  double requests = 0;  // requests the routes received (counters; or the pairs when no counters)
  uint64_t pairs = 0;   // pairs captured (one mirror per route)
  bool full = false;    // the whole minute lies inside the window
};

// The production request rate the gateways saw.
struct TrafficSummary {
  // "counters": the gateways' cumulative counters lines; "pairs": only the pair records' times
  // (a lower bound unless every request was mirrored); "": nothing to measure.
  std::string source;
  int64_t start_us = 0;  // the window: minutes are aligned to its start
  int64_t end_us = 0;
  double requests = 0;  // in the window
  uint64_t pairs = 0;   // pairs counted (one mirror per route)
  uint64_t malformed = 0;
  int series = 0;  // (instance, route) counters series placed in time
  std::vector<TrafficMinute> minutes;
  int peak_minute = -1;  // index into minutes of the busiest full minute; -1: no full minute
  double peak_rps = 0;   // its requests / 60 s; the window's mean rate when no minute is full
  double mean_rps = 0;   // requests / window
  std::vector<std::string> notes;
};

// Collects what the rate needs from pair-log entries of one or more files (several gateways'
// logs: counters are kept per instance and summed over instances; pairs by route and mirror).
class TrafficMeter {
 public:
  void Add(const PairRecord& pair);
  void Add(const MirrorCounters& counters);
  void AddMalformed() { ++malformed_; }
  TrafficSummary Summarize() const;

 private:
  // Per (instance, route, mirror): ts_us -> the cumulative "requests".
  std::map<std::tuple<std::string, std::string, std::string>, std::map<int64_t, uint64_t>>
      counters_;
  // Per (route, mirror): the pairs' ts_us.
  std::map<std::pair<std::string, std::string>, std::vector<int64_t>> pairs_;
  uint64_t malformed_ = 0;
};

// Reads one pair log ("-" = standard input) into `meter`; malformed lines are counted, never
// fatal. False with `error` ("FILE: reason") when the file cannot be opened or read.
bool ReadTrafficFile(const std::string& path, TrafficMeter& meter, std::string* error);

// The per-pod throughput at the SLO. Read from `sg-serve tune`'s result file,
//   {"pod": {"cpus": 2}, "throughput_rps_at_slo": 401.5, "slo_p99_ms": 50}
// (other keys are ignored: tune may write more), or given on the command line.
struct PodThroughput {
  int64_t cpus = 0;
  double throughput_rps_at_slo = 0;
  std::optional<double> slo_p99_ms;
  std::string source;  // the file, or the flags that gave it
};
// Throws ConfigError naming the file, the JSON path and the reason.
PodThroughput LoadTuneResult(const std::string& path);

// The GPU fleet replaced and the prices (configs/fleet-example.json). Unknown keys are errors.
struct FleetRegion {
  std::string name;
  int64_t gpus = 0;
};
struct Fleet {
  std::string file;
  std::string description;
  std::string currency = "USD";
  double hours_per_year = 8760;  // 365 x 24
  double gpu_hour_price = 0;     // per GPU and hour
  std::vector<FleetRegion> regions;
  // Exactly one of the two: a pod's price per hour, or the price of one vCPU per hour (times
  // the pod's CPUs).
  std::optional<double> cpu_pod_hour_price;
  std::optional<double> vcpu_hour_price;
  int64_t min_pods_per_region = 1;  // one pod per region at least: a region with GPUs serves
};
// Throws ConfigError with every problem (file, JSON path, reason).
Fleet LoadFleet(const std::string& path);

struct CapacityInputs {
  double peak_rps = 0;       // production peak, requests per second
  std::string peak_source;   // how it was found, in words
  double traffic_scale = 1;  // the peak the gateway saw times this is the fleet's (e.g. 2 when it
                             // saw one of two equal regions)
  double headroom = 1.5;     // required throughput = peak x scale x headroom
  PodThroughput pod;
  Fleet fleet;
};

// The plan as JSON (schema in docs/comparator.md): pods per region, yearly cost before and
// after, saving, and "formulas": every step as text with its numbers.
// REQUIRES: peak_rps >= 0, traffic_scale > 0, headroom >= 1, pod.cpus >= 1,
// pod.throughput_rps_at_slo > 0, a fleet as LoadFleet returns it.
nlohmann::json PlanCapacity(const CapacityInputs& inputs);

// {"schema", "traffic" (when measured), "plan"}: what `sg-compare capacity --json` prints and
// the report's "capacity" member holds.
nlohmann::json CapacityJson(const TrafficSummary* traffic, const nlohmann::json& plan);
nlohmann::json TrafficToJson(const TrafficSummary& traffic);

// The human form of CapacityJson: Markdown tables and the formulas (terminal and report.md).
std::string RenderCapacityText(const nlohmann::json& capacity);

// GPU fleet cost per year: gpus x price per GPU-hour x hours per year.
double YearlyGpuCost(int64_t gpus, double gpu_hour_price, double hours_per_year);

// `value` with `decimals` decimals and thousands separators: 343216.8 -> "343,216.80".
std::string FormatGrouped(double value, int decimals);
// The same with trailing zeros dropped: (1.5, 3) -> "1.5", (8760, 3) -> "8,760".
std::string FormatTrimmed(double value, int decimals = 3);

}  // namespace sg::comparator
