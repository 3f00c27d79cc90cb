// What `sg-serve tune` writes: the table of every configuration tried (Locust's columns plus
// p99), the JSON result (`sg-compare capacity` reads "pod.cpus", "throughput_rps_at_slo" and
// "slo_p99_ms"), the chart, and every run as CSV.
#pragma once

#include <string>

#include "model_server/tune_search.h"

namespace sg::serve {

// The figures of a trial's deciding runs combined: requests and failures summed, Avg the
// request-weighted mean, Min/Max the extremes, Med, req/s and p99 the medians over the runs.
Measurement CombinedRun(const Trial& trial);

// One row per configuration, best eligible first (then the ineligible), as a Markdown table:
// # | configuration | role | runs | s | # reqs | # fails | Avg | Min | Max | Med | req/s | p99 |
// verdict. Times in ms with two decimals, as Locust prints them.
std::string FormatTuneTable(const SearchResult& result, const SearchOptions& options);

// The winner, its ratios to the naive configuration and the plan, and the reason for each
// reference's absence ("n/a": not measured).
std::string FormatTuneSummary(const SearchResult& result, const SearchOptions& options);

// {"pod": {"cpus": N}, "throughput_rps_at_slo": X, "slo_p99_ms": Y, "p99_ms", "winner",
//  "ratio_to_naive", "ratio_to_plan", "configurations": [...], ...}. X is 0 when nothing met the
// SLO. `load` describes the load ("closed loop, 8 users").
std::string TuneResultJson(const SearchResult& result, const SearchOptions& options, int pod_cpus,
                           const std::string& mode, const std::string& load);

// Two bar charts in one standalone SVG: req/s and p99 per configuration (numbered as the table).
std::string TuneChartSvg(const SearchResult& result, const SearchOptions& options);

// Every run: configuration, seconds, the Locust columns, p99, error.
std::string TuneRunsCsv(const SearchResult& result);

// The trials in table order: the eligible by throughput, then the others.
std::vector<size_t> TableOrder(const SearchResult& result, const SearchOptions& options);

}  // namespace sg::serve
