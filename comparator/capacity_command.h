// The command-line side of capacity and cost (comparator/capacity.h), shared by
// `sg-compare capacity` and `sg-compare report` (whose report gets a capacity section when
// --fleet is given). Part of the sg-compare executable, so CLI11 stays out of sg_comparator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace CLI {
class App;
}

namespace sg::comparator {

struct CapacityFlags {
  std::string fleet;      // --fleet FILE (configs/fleet-example.json)
  std::string tune;       // --tune FILE: sg-serve tune's result
  double pod_rps = 0;     // --pod-rps: per-pod throughput at the SLO, instead of --tune
  int64_t pod_cpus = 0;   // --pod-cpus: with --pod-rps
  double slo_p99_ms = 0;  // --slo-p99-ms: with --pod-rps, shown next to it
  double peak_rps = -1;   // --peak-rps: the production peak, instead of measuring the logs
  double traffic_scale = 1;
  double headroom = 1.5;
};

// Adds --fleet, --tune, --pod-rps, --pod-cpus, --slo-p99-ms, --peak-rps, --traffic-scale and
// --headroom to `app`.
void AddCapacityFlags(CLI::App& app, CapacityFlags& flags);

// True when a capacity flag other than --fleet was given (so --fleet is missing if empty).
bool AnyCapacityFlag(const CLI::App& app);

// Measures the peak from `pair_files` (unless --peak-rps), loads the fleet and the pod's
// throughput, and sets `out` to CapacityJson. False with `error` (one problem a line: file,
// JSON path, reason) on bad input. `keep_stdin`: "-" among the files is not read here (the
// verdict reads it), so the peak must then be given.
bool BuildCapacity(const CapacityFlags& flags, const std::vector<std::string>& pair_files,
                   bool keep_stdin, nlohmann::json* out, std::string* error);

}  // namespace sg::comparator
