#include "model_server/tune_report.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/svg_chart.h"

namespace sg::serve {
namespace {

std::string Role(const Trial& t) {
  if (t.reference_naive && t.reference_plan) return "naive, plan";
  if (t.reference_naive) return "naive";
  if (t.reference_plan) return "plan";
  return "";
}

std::optional<double> Ratio(const SearchResult& r, std::optional<size_t> reference) {
  if (!r.winner || !reference) return std::nullopt;
  double base = r.trials[*reference].Rps();
  if (base <= 0) return std::nullopt;
  return r.trials[*r.winner].Rps() / base;
}

nlohmann::ordered_json ConfigJson(const TuneConfig& c) {
  return {{"label", c.Label()},
          {"workers", c.workers},
          {"threads_per_worker", c.threads},
          {"pinning", c.pinning},
          {"use_logical_cores", c.logical_cores},
          {"front_cpus", c.front_cpus},
          {"batch_size", c.batch_size},
          {"max_batch_delay_ms", c.batch_delay_ms},
          {"optimize", c.optimize},
          {"precision", c.precision},
          {"channels_last", c.channels_last}};
}

}  // namespace

Measurement CombinedRun(const Trial& trial) {
  Measurement out;
  auto runs = trial.Deciding();
  if (runs.empty()) return out;
  out.seconds = runs.front()->seconds;
  out.min_ms = runs.front()->min_ms;
  std::vector<double> med, rps, p99;
  double weighted = 0;
  for (const auto* m : runs) {
    out.requests += m->requests;
    out.failures += m->failures;
    weighted += m->avg_ms * static_cast<double>(m->requests);
    out.min_ms = std::min(out.min_ms, m->min_ms);
    out.max_ms = std::max(out.max_ms, m->max_ms);
    med.push_back(m->median_ms);
    rps.push_back(m->rps);
    p99.push_back(m->p99_ms);
    if (out.error.empty()) out.error = m->error;
  }
  out.avg_ms = out.requests ? weighted / static_cast<double>(out.requests) : 0;
  out.median_ms = Median(med);
  out.rps = Median(rps);
  out.p99_ms = Median(p99);
  return out;
}

std::vector<size_t> TableOrder(const SearchResult& result, const SearchOptions& options) {
  std::vector<size_t> order(result.trials.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Trial &x = result.trials[a], &y = result.trials[b];
    bool ex = x.Ineligible(options).empty(), ey = y.Ineligible(options).empty();
    if (ex != ey) return ex;
    if ((result.winner == a) != (result.winner == b)) return result.winner == a;
    return x.Rps() > y.Rps();
  });
  return order;
}

std::string FormatTuneTable(const SearchResult& result, const SearchOptions& options) {
  std::string s =
      "| # | configuration | role | runs | s | # reqs | # fails | Avg | Min | Max | Med | req/s "
      "| p99 | verdict |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  int n = 0;
  for (size_t i : TableOrder(result, options)) {
    const Trial& t = result.trials[i];
    Measurement m = CombinedRun(t);
    std::string why = t.Ineligible(options);
    std::string verdict = result.winner == i ? "WINNER" : why.empty() ? "meets SLO" : why;
    if (t.agreement) verdict += "; agreement " + Fixed(100 * *t.agreement, 2) + "%";
    s += "| " + std::to_string(++n) + " | " + t.config.Label() + " | " + Role(t) + " | " +
         std::to_string(t.runs.size()) + " | " + Fixed(m.seconds, 1) + " | " +
         std::to_string(m.requests) + " | " + std::to_string(m.failures) + " | " +
         Fixed(m.avg_ms, 2) + " | " + Fixed(m.min_ms, 2) + " | " + Fixed(m.max_ms, 2) + " | " +
         Fixed(m.median_ms, 2) + " | " + Fixed(m.rps, 2) + " | " + Fixed(m.p99_ms, 2) + " | " +
         verdict + " |\n";
  }
  return s;
}

std::string FormatTuneSummary(const SearchResult& result, const SearchOptions& options) {
  std::string s = std::to_string(result.trials.size()) + " configurations, " +
                  std::to_string(result.measurements) + " runs in " + Fixed(result.elapsed_s, 1) +
                  " s" + (result.interrupted ? " (interrupted: what was measured)" : "") +
                  (result.budget_spent ? " (budget spent)" : "") + "\n";
  if (!result.winner) {
    return s + "no configuration met p99 <= " + Fixed(options.slo_p99_ms, 2) +
           " ms without failures\n";
  }
  const Trial& w = result.trials[*result.winner];
  s += "winner: " + w.config.Label() + ": " + Fixed(w.Rps(), 1) + " req/s, p99 " +
       Fixed(w.P99(), 2) + " ms (SLO " + Fixed(options.slo_p99_ms, 2) + " ms)" +
       (result.tie ? "; a tie within noise with the runner-up, decided by p99" : "") + "\n";
  for (auto [name, ref] : {std::pair{"naive (TorchServe's defaults)", result.naive},
                           std::pair{"rule-based plan", result.plan}}) {
    auto ratio = Ratio(result, ref);
    s += std::string("vs ") + name + ": ";
    if (!ratio) {
      s += "n/a (not measured)\n";
      continue;
    }
    const Trial& r = result.trials[*ref];
    s += r.config.Label() + ", " + Fixed(r.Rps(), 1) + " req/s, p99 " + Fixed(r.P99(), 2) +
         " ms: x" + Fixed(*ratio, 3) + "\n";
  }
  return s;
}

std::string TuneResultJson(const SearchResult& result, const SearchOptions& options, int pod_cpus,
                           const std::string& mode, const std::string& load) {
  nlohmann::ordered_json doc;
  doc["pod"] = {{"cpus", pod_cpus}};
  doc["throughput_rps_at_slo"] = result.winner ? result.trials[*result.winner].Rps() : 0.0;
  doc["slo_p99_ms"] = options.slo_p99_ms;
  doc["p99_ms"] = result.winner ? result.trials[*result.winner].P99() : 0.0;
  doc["winner"] = result.winner ? ConfigJson(result.trials[*result.winner].config)
                                : nlohmann::ordered_json(nullptr);
  auto ratio = [&](std::optional<size_t> ref) {
    auto r = Ratio(result, ref);
    return r ? nlohmann::ordered_json(*r) : nlohmann::ordered_json(nullptr);
  };
  doc["ratio_to_naive"] = ratio(result.naive);
  doc["ratio_to_plan"] = ratio(result.plan);
  doc["tie"] = result.tie;
  doc["interrupted"] = result.interrupted;
  doc["budget_spent"] = result.budget_spent;
  doc["mode"] = mode;
  doc["load"] = load;
  doc["budget_s"] = options.budget_s;
  doc["elapsed_s"] = result.elapsed_s;
  doc["measurements"] = result.measurements;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i : TableOrder(result, options)) {
    const Trial& t = result.trials[i];
    Measurement m = CombinedRun(t);
    std::string why = t.Ineligible(options);
    nlohmann::ordered_json row = ConfigJson(t.config);
    row["role"] = Role(t);
    row["runs"] = t.runs.size();
    row["seconds"] = m.seconds;
    row["requests"] = m.requests;
    row["failures"] = m.failures;
    row["avg_ms"] = m.avg_ms;
    row["min_ms"] = m.min_ms;
    row["max_ms"] = m.max_ms;
    row["median_ms"] = m.median_ms;
    row["rps"] = m.rps;
    row["p99_ms"] = m.p99_ms;
    row["eligible"] = why.empty();
    if (!why.empty()) row["why_not"] = why;
    if (t.agreement) row["agreement"] = *t.agreement;
    list.push_back(row);
  }
  doc["configurations"] = list;
  return doc.dump(2) + "\n";
}

std::string TuneChartSvg(const SearchResult& result, const SearchOptions& options) {
  std::vector<std::string> categories;
  comparator::Series rps{"req/s (eligible)", "#2b6cb0", {}},
      miss{"req/s (not eligible)", "#bbb", {}};
  comparator::Series p99{"p99 ms", "#c05621", {}}, slo{"SLO", "#2f855a", {}};
  double k = 0;
  for (size_t i : TableOrder(result, options)) {
    const Trial& t = result.trials[i];
    bool ok = t.Ineligible(options).empty();
    categories.push_back(std::to_string(static_cast<int>(k) + 1));
    rps.points.emplace_back(k, ok ? t.Rps() : 0);
    miss.points.emplace_back(k, ok ? 0 : t.Rps());
    p99.points.emplace_back(k, t.P99());
    slo.points.emplace_back(k, options.slo_p99_ms);
    k += 1;
  }
  comparator::ChartOptions top;
  top.title = "throughput per configuration (numbered as in the table)";
  top.y_label = "req/s";
  top.width = std::max(640, 24 * static_cast<int>(categories.size()) + 120);
  comparator::ChartOptions bottom = top;
  bottom.title = "p99 latency per configuration";
  bottom.y_label = "ms";
  std::string second = comparator::BarChart(categories, {p99, slo}, bottom);
  second.insert(4, " y=\"" + std::to_string(top.height) + "\"");  // after "<svg"
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(top.width) +
         "\" height=\"" + std::to_string(2 * top.height) +
         "\"><style>text{font:11px sans-serif}.gr{stroke:#eee}.ax{stroke:#333}</style>" +
         comparator::BarChart(categories, {rps, miss}, top) + second + "</svg>\n";
}

std::string TuneRunsCsv(const SearchResult& result) {
  std::string s =
      "configuration,seconds,requests,failures,avg_ms,min_ms,max_ms,median_ms,rps,"
      "p99_ms,error\n";
  for (const auto& t : result.trials) {
    for (const auto& m : t.runs) {
      std::vector<std::string> fields = {t.config.Label(),
                                         Fixed(m.seconds, 3),
                                         std::to_string(m.requests),
                                         std::to_string(m.failures),
                                         Fixed(m.avg_ms, 3),
                                         Fixed(m.min_ms, 3),
                                         Fixed(m.max_ms, 3),
                                         Fixed(m.median_ms, 3),
                                         Fixed(m.rps, 3),
                                         Fixed(m.p99_ms, 3),
                                         m.error.substr(0, m.error.find_first_of("\"\n"))};
      for (size_t k = 0; k < fields.size(); ++k) {
        bool quoted = k == 0 || k + 1 == fields.size();
        s.append(k ? "," : "").append(quoted ? "\"" : "").append(fields[k]);
        s.append(quoted ? "\"" : "");
      }
      s += '\n';
    }
  }
  return s;
}

}  // namespace sg::serve
