// Numeric outputs: ScoreStats for regression rules (scorers: one score per request, or a vector
// of values) and EmbeddingStats for embeddings. Every judged pair counts, byte-identical ones
// included (their errors are 0), so a perfect candidate reports MAE 0, not no MAE.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "comparator/pair_judge.h"

namespace sg::comparator {

class ScoreStats {
 public:
  // `truth`: the request's true score (a scalar output only), when it carried one.
  void Add(const RegressionMetrics& m, std::optional<double> truth);
  void Merge(const ScoreStats& other);
  // The "regression" object; `level` is the two-sided level of its intervals.
  nlohmann::json ToJson(double level, const std::string& truth_header) const;
  bool operator==(const ScoreStats&) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  uint64_t pairs_ = 0;
  uint64_t values_ = 0;
  uint64_t beyond_ = 0;  // pairs with a value beyond the rule's tolerance
  double sum_abs_ = 0;
  double sum_signed_ = 0;
  double sum_sq_ = 0;
  double max_error_ = 0;
  double max_rel_error_ = 0;
  double primary_sum_ = 0;
  double primary_sum_sq_ = 0;
  // Against the true score: |s - t| - |p - t| per pair, and both sides' absolute errors.
  uint64_t true_pairs_ = 0;
  double true_abs_primary_ = 0;
  double true_abs_shadow_ = 0;
  double true_delta_sum_ = 0;
  double true_delta_sq_ = 0;
};

class EmbeddingStats {
 public:
  void Add(const EmbeddingMetrics& m);
  void Merge(const EmbeddingStats& other);
  nlohmann::json ToJson() const;
  bool operator==(const EmbeddingStats&) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  uint64_t pairs_ = 0;
  double sum_cosine_ = 0;
  double min_cosine_ = 1;
  double sum_rel_l2_ = 0;
  double max_rel_l2_ = 0;
};

}  // namespace sg::comparator
