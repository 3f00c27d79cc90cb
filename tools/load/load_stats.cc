#include "tools/load/load_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/strings.h"

namespace sg::load {

namespace {

// Locust's percentile column names (get_readable_percentiles): 50%, 99.9%, 100%.
std::string PercentileLabel(double q) {
  std::string text = Fixed(q * 100, 2);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text + "%";
}

std::string Pad(const std::string& text, size_t width, bool left) {
  if (text.size() >= width) return text;
  std::string fill(width - text.size(), ' ');
  return left ? text + fill : fill + text;
}

// A CSV field, quoted when it needs to be (Python's csv.QUOTE_MINIMAL, as Locust writes).
std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

double PerSecond(uint64_t count, double elapsed_s) {
  return elapsed_s > 0 ? static_cast<double>(count) / elapsed_s : 0.0;
}

std::string RequestRow(const EndpointSummary& row, double elapsed_s) {
  double fail_pct = row.requests ? 100.0 * row.failures / row.requests : 0.0;
  return Pad(row.type, 8, true) + " " + Pad(row.name, 40, true) + " " +
         Pad(std::to_string(row.requests), 7, false) + " " +
         Pad(std::to_string(row.failures) + "(" + Fixed(fail_pct, 2) + "%)", 13, false) + " | " +
         Pad(Fixed(row.avg_ms, 2), 8, false) + " " + Pad(Fixed(row.min_ms, 2), 8, false) + " " +
         Pad(Fixed(row.max_ms, 2), 8, false) + " " + Pad(Fixed(row.median_ms, 2), 8, false) +
         " | " + Pad(Fixed(PerSecond(row.requests, elapsed_s), 2), 8, false) + " " +
         Pad(Fixed(PerSecond(row.failures, elapsed_s), 2), 11, false) + "\n";
}

// Median, Average, Min and Max Response Time and Average Content Size, as Locust writes them
// for a row without requests too.
std::string TimesAndSize(const EndpointSummary& row) {
  if (row.requests == 0) return "0,0.0,0,0,0";
  return Fixed(row.median_ms, 3) + "," + Fixed(row.avg_ms, 3) + "," + Fixed(row.min_ms, 3) + "," +
         Fixed(row.max_ms, 3) + "," + Fixed(row.avg_content_bytes, 1);
}

// The percentile columns: "N/A" each when there is nothing to take them from, as Locust.
std::string PercentileFields(const std::vector<double>& percentiles_ms) {
  std::string fields;
  for (size_t i = 0; i < LocustPercentiles().size(); ++i) {
    if (i > 0) fields += ',';
    fields += percentiles_ms.empty() ? "N/A" : Fixed(percentiles_ms[i], 3);
  }
  return fields;
}

std::string StatsCsvRow(const EndpointSummary& row, double elapsed_s) {
  return CsvField(row.type) + "," + CsvField(row.name) + "," + std::to_string(row.requests) + "," +
         std::to_string(row.failures) + "," + TimesAndSize(row) + "," +
         (row.requests == 0 ? "0.0,0.0"
                            : Fixed(PerSecond(row.requests, elapsed_s), 3) + "," +
                                  Fixed(PerSecond(row.failures, elapsed_s), 3)) +
         "," + PercentileFields(row.percentiles_ms) + "\n";
}

// Locust's percentiles of `sorted` latencies, in ms; empty when there are none.
std::vector<double> PercentilesMs(const std::vector<int64_t>& sorted) {
  std::vector<double> percentiles;
  if (sorted.empty()) return percentiles;
  for (double q : LocustPercentiles())
    percentiles.push_back(static_cast<double>(NearestRankPercentile(sorted, q)) / 1000.0);
  return percentiles;
}

std::string PercentileHeaders() {
  std::string out;
  for (double q : LocustPercentiles()) {
    out += ',';
    out += PercentileLabel(q);
  }
  return out;
}

}  // namespace

const std::vector<double>& LocustPercentiles() {
  static const std::vector<double> percentiles = {0.5,  0.66, 0.75,  0.8,    0.9, 0.95,
                                                  0.98, 0.99, 0.999, 0.9999, 1.0};
  return percentiles;
}

int64_t NearestRankPercentile(const std::vector<int64_t>& sorted, double q) {
  double rank = std::ceil(q * static_cast<double>(sorted.size()));
  size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

void LoadStats::Samples::Add(int64_t latency_us, bool ok, uint64_t bytes, int64_t unix_s) {
  latencies_us.push_back(latency_us);
  sum_us += static_cast<double>(latency_us);
  content_bytes += bytes;
  Second& second = seconds[unix_s];
  ++second.requests;
  second.latencies_us.push_back(latency_us);
  seconds.erase(seconds.begin(), seconds.lower_bound(unix_s - kCurrentWindowS));
  if (!ok) {
    ++second.failures;
    ++failures;
  }
}

void LoadStats::Record(const std::string& type, const std::string& name, int64_t latency_us,
                       bool ok, uint64_t content_bytes, const std::string& error, int64_t unix_s) {
  endpoints_[{name, type}].Add(latency_us, ok, content_bytes, unix_s);
  all_.Add(latency_us, ok, content_bytes, unix_s);
  ++requests_;
  if (!ok) {
    ++failures_;
    ++errors_[{type, name, error}];
  }
}

EndpointSummary LoadStats::Summarize(const std::string& type, const std::string& name,
                                     const Samples& samples) {
  EndpointSummary row;
  row.type = type;
  row.name = name;
  row.requests = samples.latencies_us.size();
  row.failures = samples.failures;
  if (row.requests == 0) return row;
  std::vector<int64_t>& sorted = samples.latencies_us;
  auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(samples.sorted);
  std::sort(middle, sorted.end());
  std::inplace_merge(sorted.begin(), middle, sorted.end());
  samples.sorted = sorted.size();
  auto ms = [](int64_t us) { return static_cast<double>(us) / 1000.0; };
  row.avg_ms = samples.sum_us / static_cast<double>(sorted.size()) / 1000.0;
  row.min_ms = ms(sorted.front());
  row.max_ms = ms(sorted.back());
  row.median_ms = ms(NearestRankPercentile(sorted, 0.5));
  row.avg_content_bytes =
      static_cast<double>(samples.content_bytes) / static_cast<double>(row.requests);
  row.percentiles_ms = PercentilesMs(sorted);
  return row;
}

std::vector<EndpointSummary> LoadStats::Endpoints() const {
  std::vector<EndpointSummary> rows;
  for (const auto& [key, samples] : endpoints_)
    rows.push_back(Summarize(key.second, key.first, samples));
  return rows;
}

EndpointSummary LoadStats::Aggregated() const {
  return Summarize("", "Aggregated", all_);
}

CurrentSummary LoadStats::Current(const Samples& samples, int64_t now_s) const {
  CurrentSummary current;
  int64_t from = std::max(now_s - kCurrentWindowS, start_unix_s_);
  uint64_t requests = 0, failures = 0;
  std::vector<int64_t> latencies_us;
  for (auto it = samples.seconds.lower_bound(now_s - kCurrentWindowS);
       it != samples.seconds.end() && it->first <= now_s; ++it) {
    if (it->first >= from && it->first < now_s) {  // whole seconds only
      requests += it->second.requests;
      failures += it->second.failures;
    }
    latencies_us.insert(latencies_us.end(), it->second.latencies_us.begin(),
                        it->second.latencies_us.end());
  }
  if (now_s > from) {
    current.requests_per_s = static_cast<double>(requests) / static_cast<double>(now_s - from);
    current.failures_per_s = static_cast<double>(failures) / static_cast<double>(now_s - from);
  }
  std::sort(latencies_us.begin(), latencies_us.end());
  current.percentiles_ms = PercentilesMs(latencies_us);
  return current;
}

std::vector<std::pair<EndpointSummary, CurrentSummary>> LoadStats::History(
    int64_t now_s, bool per_endpoint) const {
  std::vector<std::pair<EndpointSummary, CurrentSummary>> rows;
  for (const auto& [key, samples] : endpoints_) {
    if (per_endpoint)
      rows.emplace_back(Summarize(key.second, key.first, samples), Current(samples, now_s));
  }
  rows.emplace_back(Aggregated(), Current(all_, now_s));
  return rows;
}

std::string FormatRequestTable(const LoadStats& stats, double elapsed_s) {
  std::string rule = std::string(8, '-') + "|" + std::string(41, '-') + "|" + std::string(8, '-') +
                     "|" + std::string(15, '-') + "|" + std::string(36, '-') + "|" +
                     std::string(21, '-') + "\n";
  std::string out = Pad("Type", 8, true) + " " + Pad("Name", 40, true) + " " +
                    Pad("# reqs", 7, false) + " " + Pad("# fails", 13, false) + " | " +
                    Pad("Avg", 8, false) + " " + Pad("Min", 8, false) + " " + Pad("Max", 8, false) +
                    " " + Pad("Med", 8, false) + " | " + Pad("req/s", 8, false) + " " +
                    Pad("failures/s", 11, false) + "\n" + rule;
  for (const auto& row : stats.Endpoints()) out += RequestRow(row, elapsed_s);
  out += rule + RequestRow(stats.Aggregated(), elapsed_s);
  return out;
}

std::string FormatPercentileTable(const LoadStats& stats) {
  std::string out =
      "Response time percentiles (ms)\n" + Pad("Type", 8, true) + " " + Pad("Name", 40, true);
  for (double q : LocustPercentiles()) {
    out += ' ';
    out += Pad(PercentileLabel(q), 8, false);
  }
  out += ' ';
  out += Pad("# reqs", 7, false);
  out += '\n';
  auto row_text = [](const EndpointSummary& row) {
    std::string line = Pad(row.type, 8, true) + " " + Pad(row.name, 40, true);
    for (size_t i = 0; i < LocustPercentiles().size(); ++i) {
      line += ' ';
      line += Pad(row.percentiles_ms.empty() ? "N/A" : Fixed(row.percentiles_ms[i], 2), 8, false);
    }
    return line + " " + Pad(std::to_string(row.requests), 7, false) + "\n";
  };
  std::string rule = std::string(8 + 1 + 40 + 9 * LocustPercentiles().size() + 8, '-') + "\n";
  out += rule;
  for (const auto& row : stats.Endpoints()) out += row_text(row);
  out += rule + row_text(stats.Aggregated());
  return out;
}

std::string LocustStatsCsv(const LoadStats& stats, double elapsed_s) {
  std::string out =
      "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
      "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s" +
      PercentileHeaders() + "\n";
  for (const auto& row : stats.Endpoints()) out += StatsCsvRow(row, elapsed_s);
  out += StatsCsvRow(stats.Aggregated(), elapsed_s);
  return out;
}

std::string LocustFailuresCsv(const LoadStats& stats) {
  std::string out = "Method,Name,Error,Occurrences\n";
  for (const auto& [key, count] : stats.errors()) {
    const auto& [type, name, error] = key;
    out += CsvField(type) + "," + CsvField(name) + "," + CsvField(error) + "," +
           std::to_string(count) + "\n";
  }
  return out;
}

std::string LocustExceptionsCsv() {
  return "Count,Message,Traceback,Nodes\n";
}

std::string LocustStatsHistoryHeader() {
  return "Timestamp,User Count,Type,Name,Requests/s,Failures/s" + PercentileHeaders() +
         ",Total Request Count,Total Failure Count,Total Median Response Time,"
         "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
         "Total Average Content Size\n";
}

std::string LocustStatsHistoryRows(const LoadStats& stats, int64_t now_s, int user_count,
                                   bool full_history) {
  // Without full history only the Aggregated row, with the run's percentiles (Locust's
  // _stats_history_data_rows: use_current=full_history).
  auto rows = stats.History(now_s, full_history);
  std::string out;
  for (const auto& [row, current] : rows) {
    out += std::to_string(now_s) + "," + std::to_string(user_count) + "," + CsvField(row.type) +
           "," + CsvField(row.name) + "," + Fixed(current.requests_per_s, 6) + "," +
           Fixed(current.failures_per_s, 6) + "," +
           PercentileFields(full_history ? current.percentiles_ms : row.percentiles_ms) + "," +
           std::to_string(row.requests) + "," + std::to_string(row.failures) + "," +
           TimesAndSize(row) + "\n";
  }
  return out;
}

}  // namespace sg::load
