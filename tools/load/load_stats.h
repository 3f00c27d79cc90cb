// Request outcomes collected by sg-load and the reports made from them: Locust's console tables
// and Locust's four CSV files (stats, stats history, failures, exceptions), with the column names
// and order of Locust 2.12's locust/stats.py (StatsCSV, StatsCSVFileWriter), so existing Locust
// tooling reads sg-load's files.
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

// A row's "current" figures at one second, as Locust's stats history has them.
struct CurrentSummary {
  // Mean requests (failures) completed per whole second over the last kCurrentWindowS seconds
  // before that second (fewer at the start of the run).
  double requests_per_s = 0, failures_per_s = 0;
  // Over the requests completed in the last kCurrentWindowS seconds and that second; empty when
  // none.
  std::vector<double> percentiles_ms;
};

// Locust's window for current rates and percentiles (CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW).
inline constexpr int64_t kCurrentWindowS = 10;

class LoadStats {
 public:
  // One finished request. `latency_us` counts from its intended send time. A failure carries its
  // `error` text (Locust's, locust_errors.h, where one applies). `unix_s`: the second (Unix time)
  // it completed in, for the history's current figures.
  void Record(const std::string& type, const std::string& name, int64_t latency_us, bool ok,
              uint64_t content_bytes, const std::string& error = "", int64_t unix_s = 0);
  // The second the run started in: current rates average over no second before it. Default 0.
  void set_start_unix_s(int64_t unix_s) { start_unix_s_ = unix_s; }

  uint64_t requests() const { return requests_; }
  uint64_t failures() const { return failures_; }

  // Per (type, name) rows sorted by name then type, and their total ("Aggregated").
  std::vector<EndpointSummary> Endpoints() const;
  EndpointSummary Aggregated() const;
  // Endpoints() (when `per_endpoint`) then Aggregated(), each with its current figures at second
  // `now_s`.
  std::vector<std::pair<EndpointSummary, CurrentSummary>> History(int64_t now_s,
                                                                  bool per_endpoint) const;
  // (type, name, error) -> occurrences.
  const std::map<std::tuple<std::string, std::string, std::string>, uint64_t>& errors() const {
    return errors_;
  }

 private:
  struct Second {
    uint64_t requests = 0;
    uint64_t failures = 0;
    std::vector<int64_t> latencies_us;
  };
  struct Samples {
    // In order up to `sorted`: Summarize merges the rest in, so the history's row each second
    // costs one merge, not a sort of the whole run (500 ms at 1M requests, on the I/O thread).
    mutable std::vector<int64_t> latencies_us;
    mutable size_t sorted = 0;
    double sum_us = 0;
    uint64_t failures = 0;
    uint64_t content_bytes = 0;
    // By completion second; only the last kCurrentWindowS + 1 seconds are kept.
    std::map<int64_t, Second> seconds;

    void Add(int64_t latency_us, bool ok, uint64_t bytes, int64_t unix_s);
  };
  static EndpointSummary Summarize(const std::string& type, const std::string& name,
                                   const Samples& samples);
  CurrentSummary Current(const Samples& samples, int64_t now_s) const;

  std::map<std::pair<std::string, std::string>, Samples> endpoints_;  // (name, type)
  Samples all_;                                                       // every endpoint's
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> errors_;
  uint64_t requests_ = 0;
  uint64_t failures_ = 0;
  int64_t start_unix_s_ = 0;
};

// Nearest-rank percentile of sorted values; q in [0, 1]. REQUIRES: !sorted.empty().
int64_t NearestRankPercentile(const std::vector<int64_t>& sorted, double q);

// Locust's end-of-run table (Type, Name, # reqs, # fails, Avg, Min, Max, Med, req/s,
// failures/s), times in milliseconds, rates over `elapsed_s`.
std::string FormatRequestTable(const LoadStats& stats, double elapsed_s);
// Locust's "Response time percentiles" table.
std::string FormatPercentileTable(const LoadStats& stats);
// PREFIX_stats.csv, PREFIX_failures.csv and PREFIX_exceptions.csv contents, in Locust's column
// layout. Exceptions are errors in a locustfile's own code: sg-load has none, so that file is
// Locust's header alone.
std::string LocustStatsCsv(const LoadStats& stats, double elapsed_s);
std::string LocustFailuresCsv(const LoadStats& stats);
std::string LocustExceptionsCsv();
// PREFIX_stats_history.csv: its header line, and the rows Locust writes each second: the
// Aggregated row (percentiles over the whole run so far) or, with `full_history`
// (--csv-full-history), every endpoint's row then the Aggregated one (percentiles over the
// current window). `now_s` is the row's Timestamp, `user_count` its User Count.
std::string LocustStatsHistoryHeader();
std::string LocustStatsHistoryRows(const LoadStats& stats, int64_t now_s, int user_count,
                                   bool full_history);

}  // namespace sg::load
