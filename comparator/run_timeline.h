// RunTimeline: the run by hour and by day (UTC), at the scale of a month of mirroring, so a
// regression that starts on day 20 shows on day 20 instead of being averaged into the month.
// The short-run Timeline (slices.h, 10 s windows doubled as needed) keeps drawing the charts of a
// run of minutes; this one keeps fixed calendar windows whatever the run's length.
//
// Memory is bounded: the newest kMaxHours hour windows and kMaxDays day windows are kept,
// counted from the newest pair's window. A pair older than that (or a window that falls out of
// the range when a newer pair arrives) is counted in `dropped` and nowhere else here; the rest of
// the comparison still counts it. Each window is a SliceStats (outcome counts and three sparse
// latency histograms: about 10 KB with the bench's latency spread), so the whole is about 11 MB at
// most (measured at the caps by bench/comparator: docs/comparator.md). The kept range depends
// only on the newest window seen, so Merge() is exact and order-independent: merge(a, b) holds
// the same state as judging a + b in any order.
//
// Coverage per day comes from the gateway's counters lines: per day and (instance, route,
// mirror), the latest cumulative counters of that day; a day's coverage is the difference from
// the same key's previous snapshot (an instance's first day counts from zero), judged like the
// run's coverage (coverage.h). Snapshots of days that fell out of the range are kept as the
// baseline, one per key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/pair_judge.h"
#include "comparator/slices.h"

namespace sg::comparator {

// Windows of a fixed width keeping the newest `max_windows` of them.
class WindowSeries {
 public:
  WindowSeries(int64_t width_us, size_t max_windows)
      : width_us_(width_us), max_windows_(max_windows) {}
  // The window holding ts_us, or nullptr when it lies before the kept range (then counted in
  // dropped()). May evict the oldest windows.
  SliceStats* At(int64_t ts_us);
  void Merge(const WindowSeries& other);
  int64_t width_us() const { return width_us_; }
  size_t max_windows() const { return max_windows_; }
  // Window index (start / width) -> stats, oldest first.
  const std::map<int64_t, SliceStats>& windows() const { return windows_; }
  // The first window index of the run, including windows no longer kept.
  int64_t first() const { return first_; }
  uint64_t dropped() const { return dropped_; }
  bool operator==(const WindowSeries&) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  void Evict();
  int64_t width_us_;
  size_t max_windows_;
  std::map<int64_t, SliceStats> windows_;
  int64_t first_ = INT64_MAX;   // the oldest window index seen
  int64_t newest_ = INT64_MIN;  // the newest window index seen: the kept range ends here
  uint64_t dropped_ = 0;        // pairs outside the kept range
};

class RunTimeline {
 public:
  static constexpr int64_t kHourUs = int64_t{3600} * 1'000'000;
  static constexpr int64_t kDayUs = 24 * kHourUs;
  static constexpr size_t kMaxHours = 24 * 45;  // 45 days of hours
  static constexpr size_t kMaxDays = 400;       // a year and a month of days

  explicit RunTimeline(size_t max_hours = kMaxHours, size_t max_days = kMaxDays);
  void Add(const PairRecord& pair, const PairJudgement& judgement, const std::string& true_label);
  void AddCounters(const MirrorCounters& counters);
  void Merge(const RunTimeline& other);

  // The "run_timeline" object of the comparison (docs/comparator.md): every day and hour with
  // its rates, latencies, p99 ratio (order-statistic interval at the Bonferroni level of
  // `confidence` over the windows with `min_pairs` eligible pairs) and, per day, coverage; the
  // worst and the slowest hour and day among the windows with `min_pairs` eligible pairs.
  nlohmann::json ToJson(uint64_t min_pairs, double confidence) const;

  const WindowSeries& hours() const { return hours_; }
  const WindowSeries& days() const { return days_; }
  bool SameState(const RunTimeline& other) const;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  using CounterKey = std::tuple<std::string, std::string, std::string>;
  using Snapshots = std::map<CounterKey, MirrorCounters>;
  // Per day: coverage computed from the counters' differences; null when the day has none.
  std::map<int64_t, nlohmann::json> DailyCoverage() const;
  void EvictCounters();

  WindowSeries hours_;
  WindowSeries days_;
  std::map<int64_t, Snapshots> day_counters_;  // day index -> latest snapshot per key that day
  Snapshots counters_base_;                    // latest snapshot per key of the evicted days
  int64_t newest_counters_day_ = INT64_MIN;
};

}  // namespace sg::comparator
