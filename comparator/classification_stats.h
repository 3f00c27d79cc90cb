// ClassificationStats: what classification pairs add up to. Agreement with the primary (top-1,
// top-k overlap, probability distances), top-1 flips by the primary's margin, the confusion
// matrix (primary's top-1 x candidate's), and accuracy against the true label when requests
// carry one (with McNemar's discordant cells for the paired accuracy difference). Per-class
// figures are slices (slices.h: "primary_label", "true_label").
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "comparator/latency_histogram.h"
#include "comparator/pair_judge.h"

namespace sg::comparator {

class ClassificationStats {
 public:
  // `margin_edges`: the primary-margin bucket edges; `max_labels`: confusion-matrix labels per
  // axis (the rest are "(other)").
  ClassificationStats(std::vector<double> margin_edges, size_t max_labels);

  // `true_label` empty: the request carried none.
  void Add(const ClassificationMetrics& m, const std::string& true_label);
  void Merge(const ClassificationStats& other);
  // {"classification": ..., "accuracy": ...} members of the comparison; `level` is the
  // two-sided level of the intervals.
  void ToJson(nlohmann::json& comparison, double level, const std::string& label_header) const;
  bool operator==(const ClassificationStats&) const = default;

  uint64_t pairs() const { return n_; }

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  void AddConfusion(const std::string& primary, const std::string& shadow, uint64_t count);

  std::vector<double> margin_edges_;
  size_t max_labels_;
  uint64_t n_ = 0;
  uint64_t top1_agree_ = 0;
  double sum_topk_overlap_ = 0;
  double sum_max_abs_diff_ = 0;
  double max_max_abs_diff_ = 0;
  double sum_tv_ = 0;
  double sum_js_ = 0;
  double max_js_ = 0;
  LatencyHistogram js_micro_;  // JS distance * 1e6, for its quantiles

  struct MarginBucket {
    uint64_t pairs = 0;
    uint64_t flips = 0;
    bool operator==(const MarginBucket&) const = default;
  };
  std::vector<MarginBucket> margin_buckets_;  // one per edge, plus one above the last

  std::map<std::pair<std::string, std::string>, uint64_t> confusion_;
  std::set<std::string> confusion_primary_labels_;
  std::set<std::string> confusion_shadow_labels_;

  uint64_t labeled_ = 0;
  uint64_t primary_correct_ = 0;
  uint64_t shadow_correct_ = 0;
  uint64_t only_primary_correct_ = 0;  // McNemar's discordant cells
  uint64_t only_shadow_correct_ = 0;
};

}  // namespace sg::comparator
