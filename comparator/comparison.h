// Comparison: the streaming state of one comparison run. Add() judges a pair and folds it into
// fixed-size aggregates (counters, histograms, a bounded latency reservoir, bounded maps), so
// memory does not grow with the number of pairs. Merge() combines the state of two runs (e.g.
// several gateway replicas, or shards judged in parallel); merging is exact for every counter and
// histogram, and for the reservoir while the combined pairs fit in it.
// Not thread-safe: OnlineComparator serializes access for the online path.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/compare_config.h"
#include "comparator/latency_histogram.h"
#include "comparator/pair_judge.h"

namespace sg::comparator {

// A sparse latency histogram with the same buckets as LatencyHistogram, for the many small
// aggregates (slices, time windows) where a dense one would waste memory.
class SparseHistogram {
 public:
  void Record(int64_t value);
  void Merge(const SparseHistogram& other);
  uint64_t count() const { return count_; }
  double Quantile(double q) const;
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  int64_t min() const { return min_; }
  int64_t max() const { return max_; }
  bool operator==(const SparseHistogram&) const = default;

 private:
  std::vector<std::pair<uint32_t, uint64_t>> buckets_;  // (bucket index, count), sorted
  uint64_t count_ = 0;
  double sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

// Counts kept per slice (route, model, primary label, size bucket) and per time window.
struct SliceStats {
  uint64_t pairs = 0;
  std::array<uint64_t, kOutcomeCount> outcomes{};
  uint64_t classified = 0;  // pairs with classification metrics
  uint64_t top1_agree = 0;
  uint64_t labeled = 0;  // classified pairs that carried a true label
  uint64_t primary_correct = 0;
  uint64_t shadow_correct = 0;
  SparseHistogram primary_latency;
  SparseHistogram shadow_latency;

  void Merge(const SliceStats& other);
  bool operator==(const SliceStats&) const = default;
};

// Folds one judged pair into `slice`.
void RecordInSlice(SliceStats& slice, const PairRecord& pair, const PairJudgement& judgement,
                   const std::string& true_label);

// One shown example (worst first), payloads already redacted.
struct Example {
  double score = 0;  // ordering key: outcome tier + severity
  std::string id;
  int64_t ts_us = 0;
  std::string route;
  std::string mirror;
  std::string outcome;
  std::string reason;
  std::vector<std::string> fields;
  std::map<std::string, std::string> request_headers;
  uint64_t request_size = 0;
  std::string request_sha256;
  int primary_status = 0;
  int shadow_status = 0;
  int64_t primary_latency_us = 0;
  int64_t shadow_latency_us = 0;
  std::string primary_body;
  std::string shadow_body;
  bool operator==(const Example&) const = default;
};

class Comparison {
 public:
  // `config` must outlive this object (and every Comparison merged into it).
  explicit Comparison(std::shared_ptr<const CompareConfig> config);
  ~Comparison();
  Comparison(Comparison&&) noexcept;

  // Judges one pair and folds it in; returns the judgement.
  PairJudgement Add(const PairRecord& pair);
  // Keeps the latest counters per (instance, route, mirror).
  void AddCounters(const MirrorCounters& counters);
  // A line that could not be decoded: counted by reason, never fatal.
  void AddMalformed(const std::string& reason);

  // REQUIRES: both built from configs with the same window and reservoir size.
  void Merge(const Comparison& other);

  // Everything measured, as the "comparison" object of report.json (docs/comparator.md).
  // Runs the rank tests on the reservoir: cost grows with reservoir_size, not with pairs.
  nlohmann::json ToJson() const;

  uint64_t pairs() const { return pairs_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t outcome_count(Outcome o) const { return outcomes_[static_cast<size_t>(o)]; }
  const CompareConfig& config() const { return *config_; }

  // The noise floor's own comparison (pairs of the noise mirror), or nullptr when not configured.
  const Comparison* noise() const { return noise_.get(); }

  // Equal state (used by tests: merge(a, b) == judge(a + b)).
  bool SameState(const Comparison& other) const;

 private:
  struct ClassificationTotals {
    uint64_t n = 0;
    uint64_t top1_agree = 0;
    double sum_topk_overlap = 0;
    double sum_max_abs_diff = 0;
    double max_max_abs_diff = 0;
    double sum_tv = 0;
    double sum_js = 0;
    double max_js = 0;
    LatencyHistogram js_milli;  // JS distance * 1e6, for its quantiles
    bool operator==(const ClassificationTotals&) const = default;
  };
  struct MarginBucket {
    uint64_t pairs = 0;
    uint64_t flips = 0;
    bool operator==(const MarginBucket&) const = default;
  };
  struct RegressionTotals {
    uint64_t pairs = 0;
    uint64_t values = 0;
    double sum_abs = 0;
    double sum_sq = 0;
    double max_error = 0;
    double max_rel_error = 0;
    bool operator==(const RegressionTotals&) const = default;
  };
  struct EmbeddingTotals {
    uint64_t pairs = 0;
    double sum_cosine = 0;
    double min_cosine = 1;
    double sum_rel_l2 = 0;
    double max_rel_l2 = 0;
    bool operator==(const EmbeddingTotals&) const = default;
  };
  struct Accuracy {
    uint64_t labeled = 0;
    uint64_t primary_correct = 0;
    uint64_t shadow_correct = 0;
    uint64_t only_primary_correct = 0;  // McNemar's discordant cells
    uint64_t only_shadow_correct = 0;
    bool operator==(const Accuracy&) const = default;
  };

  void AddToSlice(std::map<std::string, SliceStats>& slices, const std::string& key,
                  const PairRecord& pair, const PairJudgement& j, const std::string& true_label);
  void AddExample(Example example);
  void AddConfusion(const std::string& primary, const std::string& shadow, uint64_t count);
  void AddToBoundedMap(std::map<std::string, uint64_t>& map, const std::string& key, uint64_t count,
                       size_t limit);
  void CoarsenWindows(int level);
  const std::string& SizeBucket(uint64_t size) const;

  std::shared_ptr<const CompareConfig> config_;
  std::vector<std::string> size_bucket_names_;  // one per size_buckets interval, then the rest

  uint64_t pairs_ = 0;
  std::array<uint64_t, kOutcomeCount> outcomes_{};
  uint64_t malformed_ = 0;
  std::map<std::string, uint64_t> malformed_reasons_;
  std::map<std::pair<int, int>, uint64_t> status_matrix_;
  std::map<std::string, uint64_t> rule_pairs_;
  std::map<std::string, uint64_t> differing_fields_;
  std::map<std::string, uint64_t> mismatch_reasons_;
  int64_t first_ts_us_ = 0;
  int64_t last_ts_us_ = 0;

  ClassificationTotals classification_;
  std::vector<MarginBucket> margin_buckets_;  // one per edge, plus one above the last
  std::map<std::pair<std::string, std::string>, uint64_t> confusion_;
  std::set<std::string> confusion_primary_labels_;  // bounded by max_slices
  std::set<std::string> confusion_shadow_labels_;
  Accuracy accuracy_;
  RegressionTotals regression_;
  EmbeddingTotals embedding_;

  LatencyHistogram primary_latency_;
  LatencyHistogram shadow_latency_;
  uint64_t primary_fails_ = 0;
  uint64_t shadow_fails_ = 0;
  SignedHistogram latency_diff_;          // shadow - primary, us, both sides ok
  LatencyHistogram latency_ratio_milli_;  // shadow / primary * 1000, both sides ok

  // Reservoir of (primary, shadow) latencies, algorithm R with a seeded splitmix64.
  std::vector<std::pair<int64_t, int64_t>> reservoir_;
  uint64_t reservoir_seen_ = 0;
  uint64_t rng_state_ = 0;

  std::map<std::string, SliceStats> by_route_;
  std::map<std::string, SliceStats> by_model_;
  std::map<std::string, SliceStats> by_label_;
  std::map<std::string, SliceStats> by_size_;

  int window_level_ = 0;  // window width = config window << level
  std::map<int64_t, SliceStats> windows_;

  std::vector<Example> examples_;  // sorted worst first, at most max_examples

  // Pairs of config.noise_floor.mirror (primary vs a second primary), judged apart.
  std::unique_ptr<Comparison> noise_;
  nlohmann::json NoiseFloorJson(const nlohmann::json& candidate) const;

  // Latest counters per (instance, route, mirror).
  std::map<std::tuple<std::string, std::string, std::string>, MirrorCounters> counters_;
};

}  // namespace sg::comparator
