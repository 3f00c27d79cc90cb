// Comparison: the streaming state of one comparison run. Add() judges a pair and folds it into
// small fixed-size aggregates, one per concern, each with its own Merge and ToJson:
//
//   OutcomeStats         outcomes, rates, status matrix, rules, differing fields, malformed lines
//   LatencyStats         both sides' latency, paired differences, reservoir, quantile ratios
//   ClassificationStats  agreement, distances, margin flips, confusion, accuracy
//   ScoreStats           regression/scorer errors (vs the primary and vs a true score)
//   EmbeddingStats       cosine and relative L2
//   SliceMap x 6         per route, model, primary label, true label, request size
//   Timeline             per time window (the short run's charts: 10 s windows, doubled)
//   RunTimeline          per hour and per day (UTC), bounded to the newest 45 days / 400 days
//   WorstExamples        the pairs to look at first
//   Coverage             the gateway's counters: what was not mirrored, and why
//
// Memory does not grow with the number of pairs. Merge() combines the state of two runs (several
// gateway replicas, or shards judged in parallel); it is exact for every counter and histogram,
// and for the reservoir while the combined pairs fit in it.
// Not thread-safe: OnlineComparator serializes access for the online path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/classification_stats.h"
#include "comparator/compare_config.h"
#include "comparator/coverage.h"
#include "comparator/examples.h"
#include "comparator/latency_stats.h"
#include "comparator/outcome_stats.h"
#include "comparator/pair_judge.h"
#include "comparator/run_timeline.h"
#include "comparator/slices.h"
#include "comparator/value_stats.h"

namespace sg::comparator {

class Comparison {
 public:
  // `config` must outlive this object (and every Comparison merged into it).
  explicit Comparison(std::shared_ptr<const CompareConfig> config);
  ~Comparison();
  Comparison(Comparison&&) noexcept;
  Comparison& operator=(Comparison&&) noexcept;

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

  uint64_t pairs() const { return outcomes_.pairs(); }
  uint64_t malformed() const { return outcomes_.malformed(); }
  uint64_t outcome_count(Outcome o) const { return outcomes_.count(o); }
  const CompareConfig& config() const { return *config_; }

  // The noise floor's own comparison (pairs of the noise mirror), or nullptr when not configured.
  const Comparison* noise() const { return noise_.get(); }

  // Equal state (used by tests: merge(a, b) == judge(a + b)).
  bool SameState(const Comparison& other) const;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  const std::string& SizeBucket(uint64_t size) const;

  std::shared_ptr<const CompareConfig> config_;
  std::vector<std::string> size_bucket_names_;  // one per size_buckets interval, then the rest

  OutcomeStats outcomes_;
  LatencyStats latency_;
  ClassificationStats classification_;
  ScoreStats scores_;
  EmbeddingStats embeddings_;
  SliceMap by_route_;
  SliceMap by_model_;
  SliceMap by_label_;       // the primary's top-1: per class, without labels
  SliceMap by_true_label_;  // the true label: per class recall
  SliceMap by_size_;
  Timeline timeline_;
  RunTimeline run_timeline_;
  WorstExamples examples_;
  Coverage coverage_;

  // Pairs of config.noise_floor.mirror (primary vs a second primary), judged apart.
  std::unique_ptr<Comparison> noise_;
};

}  // namespace sg::comparator
