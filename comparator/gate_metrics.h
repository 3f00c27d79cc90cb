// The metrics gates read, each from the comparison object (Comparison::ToJson()): its estimate,
// its interval when it has one, and whether the evidence is there at all. One reader per metric;
// a new gate is a new aggregate field plus a reader here.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "comparator/gates.h"

namespace sg::comparator {

struct Evidence {
  enum class State {
    kOk,
    kAbsent,     // the metric's evidence is not in this comparison: NOT_APPLICABLE
    kTooLittle,  // it is, but too thin to judge: INSUFFICIENT_DATA
  };
  State state = State::kOk;
  double estimate = 0;
  std::optional<double> low;  // one-sided bounds, at the level `level` says
  std::optional<double> high;
  std::string level;   // "95% one-sided", shown in the reason
  std::string detail;  // what was measured, for the reason ("12/3000 = 0.004")
  // The noise floor's value of the same metric (primary vs itself), when there is one: the gate
  // widens its bound to noise * (1 + rel) + abs (for agreement metrics, on the disagreement).
  std::optional<double> noise;
  double noise_rel = 0;
  double noise_abs = 0;
  bool proportion_of_agreement = false;  // noise widening works on 1 - value
};

// Reads `gate.metric` for `gate` (its judge picks the worst slice of a per-slice metric).
Evidence ReadMetric(const Gate& gate, const nlohmann::json& comparison);

// `bound` widened by the evidence's noise floor (unchanged without one): a candidate is never
// held to more agreement with the primary than the primary has with itself.
double NoiseWidened(const Gate& gate, const Evidence& evidence, double bound);

// Metrics whose value is a proportion (take a Wilson bound at `confidence`).
bool IsProportionMetric(const std::string& metric);
// Metrics that have an interval (may be judged by near_end / far_end).
bool HasInterval(const std::string& metric);

}  // namespace sg::comparator
