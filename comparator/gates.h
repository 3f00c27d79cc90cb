// Gates (configs/gates*.json) and the cutover verdict. Each gate reads one metric of the
// comparison (the "comparison" object of report.json, see gate_metrics.h) and compares it with
// its bound: PASS, MARGINAL, FAIL, INSUFFICIENT_DATA, or NOT_APPLICABLE when the evidence the
// metric needs is absent (no labels, no noise mirror, no counters lines, ...).
//
// A metric with an interval can be judged three ways (`judge`):
//   estimate  the point estimate against the bound;
//   near_end  only confident violations count: FAIL when the interval's end nearest the bound is
//             beyond the marginal bound (or the bound when there is none), MARGINAL when it is
//             beyond the bound. A regression must be shown, noise alone never fails;
//   far_end   the candidate must be shown safe: the end farthest from the bound is compared, so
//             a small sample cannot pass on luck.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/config.h"

namespace sg::comparator {

enum class GateStatus { kPass, kMarginal, kFail, kInsufficientData, kNotApplicable };
const char* GateStatusName(GateStatus status);
// Exit code of `sg-compare report` for a verdict: 0 PASS, 1 FAIL, 3 MARGINAL, 4 INSUFFICIENT_DATA.
int VerdictExitCode(GateStatus verdict);

enum class Judge { kEstimate, kNearEnd, kFarEnd };
const char* JudgeName(Judge judge);

struct Gate {
  std::string name;    // shown in reports; defaults to the metric name
  std::string metric;  // one of GateMetricNames()
  // Exactly one of min/max. A value on the wrong side of `bound` fails unless it is still on the
  // right side of `marginal` (a looser bound), which makes it MARGINAL.
  bool is_min = true;
  double bound = 0;
  std::optional<double> marginal;
  Judge judge = Judge::kEstimate;
  // One-sided level of the bounds a gate computes itself (proportions, accuracy_delta and the
  // per-slice metrics, Bonferroni-adjusted there). Default 0.95 when judged by an interval end.
  std::optional<double> confidence;
  std::string test = "wilcoxon";  // latency_shift_ms: "wilcoxon" (paired) or "mann_whitney"
  // true: missing evidence makes the verdict INSUFFICIENT_DATA instead of NOT_APPLICABLE.
  bool required = false;
  // true ("fail_as": "marginal"): a failing gate makes the verdict at most MARGINAL (coverage:
  // a biased sample weakens the verdict, it does not show a regression).
  bool fail_as_marginal = false;
  // Per-slice metrics: the least eligible pairs a slice needs to be judged (default: the
  // comparison's slices.min_pairs).
  std::optional<uint64_t> min_pairs;
  // worst_window_* only: the windows judged, "day" (default) or "hour" (UTC, the comparison's
  // run_timeline); each window needs min_pairs eligible pairs (default: the compare config's
  // min_window_pairs).
  std::string window = "day";
};

struct GateConfig {
  std::vector<Gate> gates;
};

const std::vector<std::string>& GateMetricNames();
GateConfig ParseGateConfig(const ConfigNode& root);
GateConfig LoadGateConfig(const std::string& path);  // throws ConfigError
// The gates `sg-compare` uses without --gates (configs/gates.json, built in).
GateConfig DefaultGateConfig();
const char* DefaultGateConfigText();

struct GateResult {
  const Gate* gate = nullptr;
  GateStatus status = GateStatus::kInsufficientData;
  std::optional<double> value;  // what was compared with the bound
  std::optional<double> estimate;
  std::optional<double> low;  // the interval, when the metric has one
  std::optional<double> high;
  std::optional<double> bound;     // the bound applied (widened by the noise floor, if any)
  std::optional<double> marginal;  // likewise
  std::string reason;
};

struct Verdict {
  GateStatus verdict = GateStatus::kInsufficientData;
  std::vector<GateResult> gates;
  // One line each, shown at the top of every report: why the verdict is capped, what could not
  // be evaluated.
  std::vector<std::string> notes;
};

// `comparison` is Comparison::ToJson(). Verdict: INSUFFICIENT_DATA when a `pairs` gate is not
// met (every gate then says so instead of FAIL); otherwise FAIL if any gate fails, else
// INSUFFICIENT_DATA if a gate lacks data (or a required gate its evidence), else MARGINAL if any
// gate is marginal (or a fail_as_marginal gate fails), else PASS. NOT_APPLICABLE gates do not
// count.
Verdict EvaluateGates(const GateConfig& config, const nlohmann::json& comparison);

nlohmann::json VerdictJson(const Verdict& verdict);

}  // namespace sg::comparator
