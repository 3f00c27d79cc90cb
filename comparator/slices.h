// Slices: the same judged pairs counted per value of a dimension (route, model, primary label,
// true label, request size) and per time window, so a regression confined to one part of the
// traffic is not averaged away. Each slice is a small mergeable aggregate (SliceStats); a
// dimension holds at most `max_slices` distinct values, the rest are counted as "(other)".
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/pair_judge.h"
#include "comparator/sparse_histogram.h"

namespace sg::comparator {

struct SliceStats {
  uint64_t pairs = 0;
  std::array<uint64_t, kOutcomeCount> outcomes{};
  uint64_t classified = 0;  // pairs with classification metrics
  uint64_t top1_agree = 0;
  uint64_t labeled = 0;  // classified pairs that carried a true label
  uint64_t primary_correct = 0;
  uint64_t shadow_correct = 0;
  uint64_t only_primary_correct = 0;  // McNemar's discordant cells
  uint64_t only_shadow_correct = 0;
  SparseHistogram primary_latency;
  SparseHistogram shadow_latency;
  // shadow / primary latency x 1000 per pair where both answered: the pair shares the request's
  // own cost, so the median paired ratio shows a slice's slowdown with far less noise than two
  // unpaired medians.
  SparseHistogram ratio_milli;

  uint64_t count(Outcome o) const { return outcomes[static_cast<size_t>(o)]; }
  // Pairs the candidate can be judged on: every pair but the primary's failures.
  uint64_t eligible() const { return pairs - count(Outcome::kPrimaryError); }
  // The candidate gave no usable answer: error, timeout, or a body its rule cannot read.
  uint64_t failed() const {
    return count(Outcome::kShadowError) + count(Outcome::kShadowTimeout) +
           count(Outcome::kUnparseable);
  }
  // Answered, but differently beyond tolerance (unparseable bodies included).
  uint64_t mismatched() const { return count(Outcome::kMismatch) + count(Outcome::kUnparseable); }

  void Add(const PairRecord& pair, const PairJudgement& judgement, const std::string& true_label);
  void Merge(const SliceStats& other);
  bool operator==(const SliceStats&) const = default;
};

// The JSON of one slice (docs/comparator.md, "slices"). `level` is the two-sided level of the
// interval of the median paired latency ratio, reported from `min_pairs` paired latencies.
nlohmann::json SliceJson(const std::string& name, const SliceStats& slice, double level,
                         uint64_t min_pairs);

// One dimension: value -> SliceStats, at most `max_slices` values (later ones go to "(other)").
class SliceMap {
 public:
  explicit SliceMap(size_t max_slices = 64) : max_slices_(max_slices) {}
  SliceStats& At(const std::string& key);
  void Merge(const SliceMap& other);
  const std::map<std::string, SliceStats>& slices() const { return slices_; }
  // Slices with at least `min_pairs` eligible pairs.
  size_t Judgeable(uint64_t min_pairs) const;
  // Largest first.
  nlohmann::json ToJson(double level, uint64_t min_pairs) const;
  bool operator==(const SliceMap& other) const { return slices_ == other.slices_; }

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  size_t max_slices_;
  std::map<std::string, SliceStats> slices_;
};

// Time windows of `window` microseconds, doubled whenever more than kMaxWindows would be needed,
// so memory is fixed whatever the run's length.
class Timeline {
 public:
  static constexpr int kMaxWindows = 240;
  explicit Timeline(int64_t window_us) : base_us_(window_us) {}
  SliceStats& At(int64_t ts_us);
  // Call after At() (it may have added a window).
  void Bound();
  void Merge(const Timeline& other);
  int64_t width_us() const { return base_us_ << level_; }
  const std::map<int64_t, SliceStats>& windows() const { return windows_; }
  // The timeline chart's points.
  nlohmann::json PointsJson() const;
  // Consecutive windows merged until each holds at least max(min_pairs, pairs / max_windows)
  // pairs (the last one may be short and is then merged into its predecessor): the time slices
  // the gates judge. Names are offsets from the first pair, "+120s..+180s".
  std::vector<std::pair<std::string, SliceStats>> JudgingWindows(uint64_t min_pairs,
                                                                 size_t max_windows) const;
  bool operator==(const Timeline&) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  void Coarsen(int level);
  int64_t base_us_;
  int level_ = 0;
  std::map<int64_t, SliceStats> windows_;
};

}  // namespace sg::comparator
