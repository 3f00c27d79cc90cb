// Gates (configs/gates*.json) and the cutover verdict. Each gate reads one metric from the
// comparison (the "comparison" object of report.json), compares it with its bound and says
// PASS, MARGINAL, FAIL or INSUFFICIENT_DATA, with the value and the reason.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/config.h"

namespace sg::comparator {

enum class GateStatus { kPass, kMarginal, kFail, kInsufficientData };
const char* GateStatusName(GateStatus status);
// Exit code of `sg-compare report` for a verdict: 0 PASS, 1 FAIL, 3 MARGINAL, 4 INSUFFICIENT_DATA.
int VerdictExitCode(GateStatus verdict);

struct Gate {
  std::string name;    // shown in reports; defaults to the metric name
  std::string metric;  // one of GateMetricNames()
  // Exactly one of min/max. A value on the wrong side of `bound` fails unless it is still on the
  // right side of `marginal` (a looser bound), which makes it MARGINAL.
  bool is_min = true;
  double bound = 0;
  std::optional<double> marginal;
  // Proportions (top1_agreement, agreement_rate, *_rate, shadow_accuracy): when set, the gate
  // judges the one-sided Wilson bound at this confidence (lower for min, upper for max) instead of
  // the point estimate. latency_shift_ms: the Hodges-Lehmann interval's level is the compare
  // config's `confidence`.
  std::optional<double> confidence;
  std::string test = "wilcoxon";  // latency_shift_ms: "wilcoxon" (paired) or "mann_whitney"
};

struct GateConfig {
  std::vector<Gate> gates;
};

const std::vector<std::string>& GateMetricNames();
GateConfig ParseGateConfig(const ConfigNode& root);
GateConfig LoadGateConfig(const std::string& path);  // throws ConfigError

struct GateResult {
  const Gate* gate = nullptr;
  GateStatus status = GateStatus::kInsufficientData;
  std::optional<double> value;  // what was compared with the bound
  std::string reason;
};

struct Verdict {
  GateStatus verdict = GateStatus::kInsufficientData;
  std::vector<GateResult> gates;
};

// `comparison` is Comparison::ToJson(). Verdict: INSUFFICIENT_DATA when a `pairs` gate is not
// met; otherwise FAIL if any gate fails, else INSUFFICIENT_DATA if any gate lacks data, else
// MARGINAL if any gate is marginal, else PASS.
Verdict EvaluateGates(const GateConfig& config, const nlohmann::json& comparison);

nlohmann::json VerdictJson(const Verdict& verdict);

}  // namespace sg::comparator
