// Request outcomes collected by sg-load and the reports made from them: Locust's console tables
// and Locust's CSV formats (stats and failures), so existing Locust tooling reads sg-load's files.
//
// Not thread-safe: sg-load records from its single I/O thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace sg::load {

// The percentiles Locust reports, as fractions (0.5 ... 1.0), in its column order.
const std::vector<double>& LocustPercentiles();

struct EndpointSummary {
  std::string type;  // the HTTP method
  std::string name;  // the request target; "Aggregated" for the total row
  uint64_t requests = 0;
  uint64_t failures = 0;
  double avg_ms = 0, min_ms = 0, max_ms = 0, median_ms = 0;
  double avg_content_bytes = 0;
  std::vector<double> percentiles_ms;  // one per LocustPercentiles(); empty when no requests
};

class LoadStats {
 public:
  // One finished request. `latency_us` counts from its intended send time. A failure carries a
  // short `error` ("HTTP 503", "connect: Connection refused", "timeout").
  void Record(const std::string& type, const std::string& name, int64_t latency_us, bool ok,
              uint64_t content_bytes, const std::string& error = "");

  uint64_t requests() const { return requests_; }
  uint64_t failures() const { return failures_; }

  // Per (type, name) rows sorted by name then type, and their total ("Aggregated").
  std::vector<EndpointSummary> Endpoints() const;
  EndpointSummary Aggregated() const;
  // (type, name, error) -> occurrences.
  const std::map<std::tuple<std::string, std::string, std::string>, uint64_t>& errors() const {
    return errors_;
  }

 private:
  struct Samples {
    std::vector<int64_t> latencies_us;
    uint64_t failures = 0;
    uint64_t content_bytes = 0;
  };
  static EndpointSummary Summarize(const std::string& type, const std::string& name,
                                   const Samples& samples);

  std::map<std::pair<std::string, std::string>, Samples> endpoints_;  // (name, type)
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> errors_;
  uint64_t requests_ = 0;
  uint64_t failures_ = 0;
};

// `value` with `decimals` digits after the point, as the tables print times ("%.*f").
std::string Fixed(double value, int decimals);

// Nearest-rank percentile of sorted values; q in [0, 1]. REQUIRES: !sorted.empty().
int64_t NearestRankPercentile(const std::vector<int64_t>& sorted, double q);

// Locust's end-of-run table (Type, Name, # reqs, # fails, Avg, Min, Max, Med, req/s,
// failures/s), times in milliseconds, rates over `elapsed_s`.
std::string FormatRequestTable(const LoadStats& stats, double elapsed_s);
// Locust's "Response time percentiles" table.
std::string FormatPercentileTable(const LoadStats& stats);
// PREFIX_stats.csv and PREFIX_failures.csv contents, in Locust's column layout.
std::string LocustStatsCsv(const LoadStats& stats, double elapsed_s);
std::string LocustFailuresCsv(const LoadStats& stats);

}  // namespace sg::load
