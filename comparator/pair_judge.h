// Judging one pair: which rule applies, the pair's outcome, and the metrics behind it.
// Plain functions over plain data; no state, no I/O.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/compare_config.h"

namespace sg::comparator {

enum class Outcome {
  kMatch,
  kWithinTolerance,
  kMismatch,
  kShadowError,
  kShadowTimeout,
  kPrimaryError,
  kUnparseable,
};
inline constexpr size_t kOutcomeCount = 7;
const char* OutcomeName(Outcome outcome);
inline constexpr std::array<Outcome, kOutcomeCount> kAllOutcomes = {
    Outcome::kMatch,         Outcome::kWithinTolerance, Outcome::kMismatch,   Outcome::kShadowError,
    Outcome::kShadowTimeout, Outcome::kPrimaryError,    Outcome::kUnparseable};

// A classifier's output: (label, probability), sorted by probability descending, then label.
using Distribution = std::vector<std::pair<std::string, double>>;

// Reads TorchServe's top-k object {"label": p, ...}, a one-element array holding such an object,
// or a probability array [p0, p1, ...] (labels from `labels`, else the index). nullopt otherwise.
std::optional<Distribution> ParseDistribution(const nlohmann::json& value,
                                              const std::vector<std::string>& labels);

struct ClassificationMetrics {
  std::string primary_top1;
  std::string shadow_top1;
  bool top1_agree = false;
  double primary_margin = 0;   // primary's top-1 minus top-2 probability
  double topk_overlap = 0;     // |topk(P) ∩ topk(Q)| / k, k = min(top_k, |P|, |Q|)
  double max_abs_diff = 0;     // max over labels of |p - q| (a label missing on one side: 0 there)
  double total_variation = 0;  // 0.5 * sum |p - q|, the unlisted mass as one "rest" label
  double js_distance = 0;      // sqrt of the Jensen-Shannon divergence, base 2, in [0, 1]
};
ClassificationMetrics CompareDistributions(const Distribution& primary, const Distribution& shadow,
                                           int top_k);

struct RegressionMetrics {
  size_t n = 0;
  double mae = 0;
  double rmse = 0;
  double max_error = 0;
  double max_rel_error = 0;  // max |p - s| / |p| over elements with p != 0
  bool within = true;        // every |p - s| <= abs + rel * |p|
  double sum_signed = 0;     // sum of s - p (the bias, times n)
  double sum_signed_sq = 0;  // sum of (s - p)^2
  double primary_sum = 0;    // sum and sum of squares of the primary's values (their spread)
  double primary_sum_sq = 0;
};
RegressionMetrics CompareValues(const std::vector<double>& primary,
                                const std::vector<double>& shadow, double abs, double rel);

struct EmbeddingMetrics {
  double cosine = 0;
  double rel_l2 = 0;
};
EmbeddingMetrics CompareEmbeddings(const std::vector<double>& primary,
                                   const std::vector<double>& shadow);

// Structural JSON diff. Paths are reported with indices as [*] so they aggregate across pairs.
struct JsonDiff {
  std::vector<std::string> fields;  // differing (beyond tolerance) field paths
  bool used_tolerance = false;      // some numbers differed but within tolerance
};
JsonDiff DiffJson(const nlohmann::json& primary, const nlohmann::json& shadow,
                  const CompareRule& rule);

// Parses a response body as JSON, accepting the NaN, Infinity and -Infinity tokens many model
// servers write. nullopt when it is not JSON.
std::optional<nlohmann::json> ParseBodyJson(std::string_view body);

// True when `path` (concrete segments) matches `pattern`.
bool PathMatches(const JsonPathPattern& pattern, const std::vector<JsonPathPattern::Segment>& path);

struct PairJudgement {
  Outcome outcome = Outcome::kMatch;
  const CompareRule* rule = nullptr;  // nullptr: no rule matched (exact bytes)
  std::string reason;                 // short human text for non-match outcomes
  std::vector<std::string> fields;    // differing fields ("status", "header:x", "$.a.b", ...)
  double severity = 0;                // in [0, 1]: how different (for the worst examples)
  std::optional<ClassificationMetrics> classification;
  std::optional<RegressionMetrics> regression;
  std::optional<EmbeddingMetrics> embedding;
};

// Picks the first rule whose route and mirror match and, for a rule with a `shape`, whose shape
// the primary's 2xx body has (or nullptr).
const CompareRule* FindRule(const CompareConfig& config, const PairRecord& pair);

PairJudgement JudgePair(const CompareConfig& config, const PairRecord& pair);

}  // namespace sg::comparator
