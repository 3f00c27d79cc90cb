#include "comparator/run_timeline.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/coverage.h"
#include "comparator/intervals.h"
#include "comparator/json_numbers.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

int64_t FloorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// "2026-11-18" for a day, "2026-11-18 13:00Z" for an hour (UTC).
std::string WindowName(int64_t start_us, bool hour) {
  return FormatUtc(FloorDiv(start_us, 1'000'000), hour ? "%Y-%m-%d %H:00Z" : "%Y-%m-%d");
}

json SideJson(const SparseHistogram& h) {
  return {{"count", h.count()}, {"p50_ms", Ms(h.Quantile(0.5))}, {"p99_ms", Ms(h.Quantile(0.99))}};
}

uint64_t Agreed(const SliceStats& s) {
  return s.count(Outcome::kMatch) + s.count(Outcome::kWithinTolerance);
}

bool HasLatencies(const SliceStats& s) {
  return s.primary_latency.count() > 0 && s.shadow_latency.count() > 0;
}

// One window's row. `p99_level` is the two-sided level of the p99 ratio's interval.
json WindowJson(const SliceStats& s, int64_t start_us, int64_t run_day, uint64_t min_pairs,
                double p99_level, bool hour) {
  json row = {{"name", WindowName(start_us, hour)},
              {"start_us", start_us},
              {"run_day", run_day},
              {"pairs", s.pairs},
              {"eligible", s.eligible()},
              {"judged", s.eligible() >= min_pairs},
              {"agreed", Agreed(s)},
              {"agreement_rate", Rate(Agreed(s), s.eligible())},
              {"failed", s.failed()},
              {"failure_rate", Rate(s.failed(), s.eligible())},
              {"mismatched", s.mismatched()},
              {"mismatch_rate", Rate(s.mismatched(), s.eligible())},
              {"classified", s.classified},
              {"top1_agree", s.top1_agree},
              {"top1_agreement", s.classified ? json(Rate(s.top1_agree, s.classified)) : json()},
              {"primary", SideJson(s.primary_latency)},
              {"shadow", SideJson(s.shadow_latency)}};
  if (s.eligible() >= min_pairs && HasLatencies(s)) {
    const Interval r = QuantileRatioInterval(s.shadow_latency, s.primary_latency, 0.99, p99_level);
    if (r.valid) {
      row["p99_ratio"] = {{"estimate", r.estimate},
                          {"low", Num(r.low)},
                          {"high", Num(r.high)},
                          {"level", p99_level}};
    }
  }
  return row;
}

// The documented rule: the lowest agreement rate; ties: the higher failure rate, then the
// earlier window.
bool Worse(const json& a, const json& b) {
  const double aa = a["agreement_rate"].get<double>(), ba = b["agreement_rate"].get<double>();
  if (aa != ba) return aa < ba;
  return a["failure_rate"].get<double>() > b["failure_rate"].get<double>();
}

double P99Ratio(const json& row) {
  auto it = row.find("p99_ratio");
  return it == row.end() ? -1 : (*it)["estimate"].get<double>();
}

// Rows of `series`, and the worst and slowest judged rows.
json SeriesJson(const WindowSeries& series, int64_t first_day_us, uint64_t min_pairs,
                double confidence, const std::map<int64_t, json>* coverage, bool hour) {
  size_t tests = 0;
  for (const auto& [k, s] : series.windows()) {
    tests += s.eligible() >= min_pairs && HasLatencies(s);
  }
  const double level = BonferroniLevel(confidence, tests);
  json rows = json::array();
  for (const auto& [k, s] : series.windows()) {
    const int64_t start = k * series.width_us();
    json row = WindowJson(s, start, FloorDiv(start - first_day_us, RunTimeline::kDayUs) + 1,
                          min_pairs, level, hour);
    if (coverage) {
      auto it = coverage->find(k);
      row["coverage"] = it == coverage->end() ? json() : it->second;
    }
    rows.push_back(std::move(row));
  }
  const json* worst = nullptr;
  const json* slowest = nullptr;
  size_t judged = 0;
  for (const auto& row : rows) {
    if (!row["judged"].get<bool>()) continue;
    ++judged;
    if (!worst || Worse(row, *worst)) worst = &row;
    if (P99Ratio(row) >= 0 && (!slowest || P99Ratio(row) > P99Ratio(*slowest))) slowest = &row;
  }
  return {{"width_s", series.width_us() / 1'000'000},
          {"max_windows", series.max_windows()},
          {"dropped_pairs", series.dropped()},
          {"judged", judged},
          {"p99_ratio_level", level},
          {"worst", worst ? *worst : json()},
          {"slowest", slowest ? *slowest : json()},
          {"windows", std::move(rows)}};
}

// counters - base, field by field (0 where a field went down: not the same instance's run).
MirrorCounters Difference(const MirrorCounters& now, const MirrorCounters* base) {
  if (!base) return now;
  auto minus = [](uint64_t a, uint64_t b) { return a >= b ? a - b : 0; };
  MirrorCounters d = now;
  d.requests = minus(now.requests, base->requests);
  d.sink_dropped = minus(now.sink_dropped, base->sink_dropped);
  for (auto& [k, v] : d.not_mirrored) {
    auto it = base->not_mirrored.find(k);
    if (it != base->not_mirrored.end()) v = minus(v, it->second);
  }
  for (auto& [k, v] : d.mirrored) {
    auto it = base->mirrored.find(k);
    if (it != base->mirrored.end()) v = minus(v, it->second);
  }
  return d;
}

// Keeps the later of two snapshots of one key (the later line of the two, as Coverage does).
void KeepLatest(std::map<std::tuple<std::string, std::string, std::string>, MirrorCounters>& into,
                const MirrorCounters& c) {
  auto key = std::make_tuple(c.instance, c.route, c.mirror);
  auto it = into.find(key);
  if (it == into.end()) {
    into.emplace(key, c);
  } else if (c.ts_us > it->second.ts_us || (c.ts_us == it->second.ts_us &&
                                            EncodePairLogLine(c) > EncodePairLogLine(it->second))) {
    // Equal stamps: a fixed choice, so merging in any order keeps the same snapshot.
    it->second = c;
  }
}

}  // namespace

SliceStats* WindowSeries::At(int64_t ts_us) {
  const int64_t key = FloorDiv(ts_us, width_us_);
  first_ = std::min(first_, key);
  if (key > newest_) {
    newest_ = key;
    Evict();
  }
  if (key <= newest_ - static_cast<int64_t>(max_windows_)) {
    ++dropped_;
    return nullptr;
  }
  return &windows_[key];
}

void WindowSeries::Evict() {
  const int64_t oldest_kept = newest_ - static_cast<int64_t>(max_windows_) + 1;
  while (!windows_.empty() && windows_.begin()->first < oldest_kept) {
    dropped_ += windows_.begin()->second.pairs;
    windows_.erase(windows_.begin());
  }
}

void WindowSeries::Merge(const WindowSeries& o) {
  first_ = std::min(first_, o.first_);
  newest_ = std::max(newest_, o.newest_);
  dropped_ += o.dropped_;
  for (const auto& [k, s] : o.windows_) windows_[k].Merge(s);
  Evict();
}

RunTimeline::RunTimeline(size_t max_hours, size_t max_days)
    : hours_(kHourUs, max_hours), days_(kDayUs, max_days) {}

void RunTimeline::Add(const PairRecord& pair, const PairJudgement& j,
                      const std::string& true_label) {
  if (SliceStats* h = hours_.At(pair.ts_us)) h->Add(pair, j, true_label);
  if (SliceStats* d = days_.At(pair.ts_us)) d->Add(pair, j, true_label);
}

void RunTimeline::AddCounters(const MirrorCounters& c) {
  const int64_t day = FloorDiv(c.ts_us, kDayUs);
  if (day > newest_counters_day_) {
    newest_counters_day_ = day;
    EvictCounters();
  }
  if (day <= newest_counters_day_ - static_cast<int64_t>(days_.max_windows())) {
    KeepLatest(counters_base_, c);
  } else {
    KeepLatest(day_counters_[day], c);
  }
}

void RunTimeline::EvictCounters() {
  const int64_t oldest_kept = newest_counters_day_ - static_cast<int64_t>(days_.max_windows()) + 1;
  while (!day_counters_.empty() && day_counters_.begin()->first < oldest_kept) {
    for (const auto& [k, c] : day_counters_.begin()->second) KeepLatest(counters_base_, c);
    day_counters_.erase(day_counters_.begin());
  }
}

void RunTimeline::Merge(const RunTimeline& o) {
  hours_.Merge(o.hours_);
  days_.Merge(o.days_);
  for (const auto& [k, c] : o.counters_base_) KeepLatest(counters_base_, c);
  for (const auto& [day, snapshots] : o.day_counters_) {
    for (const auto& [k, c] : snapshots) KeepLatest(day_counters_[day], c);
  }
  newest_counters_day_ = std::max(newest_counters_day_, o.newest_counters_day_);
  EvictCounters();
}

bool RunTimeline::SameState(const RunTimeline& o) const {
  auto same = [](const Snapshots& a, const Snapshots& b) {
    return a == b;  // MirrorCounters compares every field
  };
  if (!(hours_ == o.hours_ && days_ == o.days_ && same(counters_base_, o.counters_base_) &&
        newest_counters_day_ == o.newest_counters_day_ &&
        day_counters_.size() == o.day_counters_.size())) {
    return false;
  }
  for (auto a = day_counters_.begin(), b = o.day_counters_.begin(); a != day_counters_.end();
       ++a, ++b) {
    if (a->first != b->first || !same(a->second, b->second)) return false;
  }
  return true;
}

std::map<int64_t, json> RunTimeline::DailyCoverage() const {
  std::map<int64_t, json> out;
  Snapshots previous = counters_base_;
  for (const auto& [day, snapshots] : day_counters_) {
    Coverage coverage;
    for (const auto& [key, c] : snapshots) {
      auto it = previous.find(key);
      coverage.Add(Difference(c, it == previous.end() ? nullptr : &it->second));
      previous[key] = c;
    }
    json parts;
    coverage.ToJson(parts);
    const json& cov = parts["coverage"];
    out[day] = cov.value("valid", false) ? cov["fraction"] : json();
  }
  return out;
}

json RunTimeline::ToJson(uint64_t min_pairs, double confidence) const {
  const int64_t first_day_us =
      days_.first() == INT64_MAX ? 0 : days_.first() * static_cast<int64_t>(kDayUs);
  const auto coverage = DailyCoverage();
  return {
      {"rule",
       "worst: the lowest agreement rate ((match + within_tolerance) / eligible) among the "
       "windows with at least min_pairs eligible pairs; ties: the higher failure rate, then "
       "the earlier window. slowest: the highest shadow / primary p99 among them"},
      {"min_pairs", min_pairs},
      {"first_day", days_.first() == INT64_MAX ? json() : json(WindowName(first_day_us, false))},
      {"days", SeriesJson(days_, first_day_us, min_pairs, confidence, &coverage, false)},
      {"hours", SeriesJson(hours_, first_day_us, min_pairs, confidence, nullptr, true)}};
}

}  // namespace sg::comparator
