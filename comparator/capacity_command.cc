#include "comparator/capacity_command.h"

#include <algorithm>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "comparator/capacity.h"

namespace sg::comparator {
namespace {

constexpr const char* kFlags[] = {"--tune",     "--pod-rps",  "--pod-cpus",     "--slo-p99-ms",
                                  "--peak-rps", "--headroom", "--traffic-scale"};

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += (out.empty() ? "" : "\n") + line;
  return out;
}

// The peak, in words with its numbers, for the plan's first formula.
std::string PeakSource(const TrafficSummary& t) {
  const std::string what = t.source == "counters" ? "the gateways' counters" : "the captured pairs";
  if (t.peak_minute < 0) {
    return FormatTrimmed(t.requests, 1) + " requests / " +
           FormatTrimmed(static_cast<double>(t.end_us - t.start_us) / 1e6) +
           " s (the whole window: no full minute) = " + FormatTrimmed(t.peak_rps) +
           " req/s, from " + what;
  }
  const auto& m = t.minutes[static_cast<size_t>(t.peak_minute)];
  return FormatTrimmed(m.requests, 1) + " requests in the busiest full minute (minute " +
         std::to_string(t.peak_minute + 1) + " of " + std::to_string(t.minutes.size()) +
         ") / 60 s = " + FormatTrimmed(t.peak_rps) + " req/s, from " + what;
}

}  // namespace

void AddCapacityFlags(CLI::App& app, CapacityFlags& f) {
  app.add_option("--fleet", f.fleet,
                 "the GPU fleet replaced and the prices (configs/fleet-example.json)");
  auto* tune = app.add_option("--tune", f.tune,
                              "sg-serve tune's result: {\"pod\": {\"cpus\": N}, "
                              "\"throughput_rps_at_slo\": X, \"slo_p99_ms\": Y}");
  auto* pod_rps = app.add_option("--pod-rps", f.pod_rps,
                                 "per-pod throughput at the SLO, req/s (instead of --tune)")
                      ->check(CLI::PositiveNumber);
  auto* pod_cpus = app.add_option("--pod-cpus", f.pod_cpus, "CPUs per pod (with --pod-rps)")
                       ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  auto* slo = app.add_option("--slo-p99-ms", f.slo_p99_ms, "the SLO --pod-rps was measured at")
                  ->check(CLI::PositiveNumber);
  tune->excludes(pod_rps)->excludes(pod_cpus)->excludes(slo);
  pod_rps->needs(pod_cpus);
  pod_cpus->needs(pod_rps);
  slo->needs(pod_rps);
  app.add_option("--peak-rps", f.peak_rps,
                 "production peak, req/s (instead of measuring it from the pair logs)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--traffic-scale", f.traffic_scale,
                 "the fleet's traffic / what the gateways saw (e.g. 2: one of two equal "
                 "regions; default 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--headroom", f.headroom,
                 "required throughput = peak x scale x headroom (default 1.5)")
      ->check(CLI::Range(1.0, 1000.0));
}

bool AnyCapacityFlag(const CLI::App& app) {
  return std::any_of(std::begin(kFlags), std::end(kFlags),
                     [&app](const char* flag) { return app.count(flag) > 0; });
}

bool BuildCapacity(const CapacityFlags& flags, const std::vector<std::string>& pair_files,
                   bool keep_stdin, nlohmann::json* out, std::string* error) {
  std::vector<std::string> problems;
  CapacityInputs in;
  in.traffic_scale = flags.traffic_scale;
  in.headroom = flags.headroom;
  try {
    in.fleet = LoadFleet(flags.fleet);
  } catch (const ConfigError& e) {
    problems.insert(problems.end(), e.problems().begin(), e.problems().end());
  }
  if (!flags.tune.empty()) {
    try {
      in.pod = LoadTuneResult(flags.tune);
    } catch (const ConfigError& e) {
      problems.insert(problems.end(), e.problems().begin(), e.problems().end());
    }
  } else if (flags.pod_rps > 0) {
    in.pod = {flags.pod_cpus, flags.pod_rps, std::nullopt, "--pod-rps and --pod-cpus"};
    if (flags.slo_p99_ms > 0) in.pod.slo_p99_ms = flags.slo_p99_ms;
  } else {
    problems.push_back("the pod's throughput: give --tune FILE, or --pod-rps with --pod-cpus");
  }

  std::optional<TrafficSummary> traffic;
  const bool stdin_listed = std::count(pair_files.begin(), pair_files.end(), "-") > 0;
  if (keep_stdin && stdin_listed && flags.peak_rps < 0) {
    problems.push_back(
        "--pairs -: standard input is read for the verdict and cannot be read "
        "again for the traffic; give a file or --peak-rps");
  } else if (!pair_files.empty()) {
    TrafficMeter meter;
    for (const auto& path : pair_files) {
      std::string read_error;
      if (path == "-" && keep_stdin) continue;
      if (!ReadTrafficFile(path, meter, &read_error)) problems.push_back(read_error);
    }
    traffic = meter.Summarize();
  }
  if (flags.peak_rps >= 0) {
    in.peak_rps = flags.peak_rps;
    in.peak_source = FormatTrimmed(flags.peak_rps) + " req/s (--peak-rps)";
  } else if (traffic && !traffic->source.empty()) {
    in.peak_rps = traffic->peak_rps;
    in.peak_source = PeakSource(*traffic);
  } else if (traffic) {
    std::string files;
    for (const auto& f : pair_files) files += (files.empty() ? "" : ", ") + f;
    problems.push_back(files + ": " + Join(traffic->notes) + "; give --peak-rps");
  } else if (pair_files.empty()) {
    problems.push_back("the production peak: give --pairs FILE... or --peak-rps");
  }
  if (!problems.empty()) {
    *error = Join(problems);
    return false;
  }
  *out = CapacityJson(traffic ? &*traffic : nullptr, PlanCapacity(in));
  return true;
}

}  // namespace sg::comparator
