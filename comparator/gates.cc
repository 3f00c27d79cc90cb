#include "comparator/gates.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/gate_metrics.h"

namespace sg::comparator {

using nlohmann::json;

const char* GateStatusName(GateStatus status) {
  switch (status) {
    case GateStatus::kPass:
      return "PASS";
    case GateStatus::kMarginal:
      return "MARGINAL";
    case GateStatus::kFail:
      return "FAIL";
    case GateStatus::kInsufficientData:
      return "INSUFFICIENT_DATA";
    case GateStatus::kNotApplicable:
      return "NOT_APPLICABLE";
  }
  return "?";
}

int VerdictExitCode(GateStatus verdict) {
  switch (verdict) {
    case GateStatus::kPass:
      return 0;
    case GateStatus::kFail:
      return 1;
    case GateStatus::kMarginal:
      return 3;
    case GateStatus::kInsufficientData:
    case GateStatus::kNotApplicable:
      return 4;
  }
  return 2;
}

const char* JudgeName(Judge judge) {
  switch (judge) {
    case Judge::kEstimate:
      return "estimate";
    case Judge::kNearEnd:
      return "near_end";
    case Judge::kFarEnd:
      return "far_end";
  }
  return "?";
}

namespace {

Gate ParseGate(const ConfigNode& node) {
  ObjectReader r(node);
  Gate g;
  g.metric = r.Require<std::string>("metric");
  const auto& names = GateMetricNames();
  if (r.Has("metric") && std::find(names.begin(), names.end(), g.metric) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    r.Required("metric").Report("unknown metric \"" + g.metric + "\" (known: " + list + ")");
  }
  g.name = r.Get<std::string>("name", g.metric);
  const bool has_min = r.Has("min"), has_max = r.Has("max");
  if (has_min == has_max) {
    node.Report("needs exactly one of \"min\" and \"max\"");
  } else {
    g.is_min = has_min;
    g.bound = r.Require<double>(has_min ? "min" : "max");
  }
  if (auto m = r.Optional("marginal")) {
    try {
      g.marginal = m->AsNumber();
      if (has_min != has_max && (g.is_min ? *g.marginal > g.bound : *g.marginal < g.bound)) {
        m->Report(std::string("must be ") + (g.is_min ? "<= min" : ">= max") + " (a looser bound)");
      }
    } catch (const ConfigError& e) {
      m->Absorb(e);
    }
  }
  if (r.Has("confidence")) {
    g.confidence = r.GetInRange<double>("confidence", 0.95, 0.5, 0.9999);
    if (!IsProportionMetric(g.metric) && g.metric != "accuracy_delta" &&
        g.metric.rfind("worst_", 0) != 0) {
      r.Required("confidence")
          .Report("only proportion metrics, accuracy_delta and worst_* metrics take a confidence");
    }
  }
  // Without "judge": a proportion given a confidence is judged by its far end (the bound it
  // can be shown to meet), latency_shift_ms by its near end, everything else by its estimate.
  Judge judge = Judge::kEstimate;
  if (g.confidence && (IsProportionMetric(g.metric) || g.metric == "accuracy_delta")) {
    judge = Judge::kFarEnd;
  }
  if (g.metric == "latency_shift_ms") judge = Judge::kNearEnd;
  const std::string judge_text = r.Get<std::string>("judge", JudgeName(judge));
  bool known = false;
  for (Judge j : {Judge::kEstimate, Judge::kNearEnd, Judge::kFarEnd}) {
    if (judge_text == JudgeName(j)) {
      judge = j;
      known = true;
    }
  }
  if (!known) {
    r.Required("judge").Report("must be \"estimate\", \"near_end\" or \"far_end\", got \"" +
                               judge_text + "\"");
  } else if (judge != Judge::kEstimate && !HasInterval(g.metric)) {
    r.Required("judge").Report("metric \"" + g.metric + "\" has no interval: use \"estimate\"");
  }
  g.judge = judge;
  g.test = r.Get<std::string>("test", g.test);
  if (g.test != "wilcoxon" && g.test != "mann_whitney") {
    r.Required("test").Report("must be \"wilcoxon\" or \"mann_whitney\", got \"" + g.test + "\"");
  } else if (r.Has("test") && g.metric != "latency_shift_ms") {
    r.Required("test").Report("only latency_shift_ms takes a test");
  }
  g.required = r.Get<bool>("required", false);
  const std::string fail_as = r.Get<std::string>("fail_as", "fail");
  if (fail_as == "marginal") {
    g.fail_as_marginal = true;
  } else if (fail_as != "fail") {
    r.Required("fail_as").Report("must be \"fail\" or \"marginal\", got \"" + fail_as + "\"");
  }
  if (r.Has("min_pairs")) {
    g.min_pairs = static_cast<uint64_t>(r.GetInRange<int64_t>("min_pairs", 100, 1, INT64_MAX));
    if (g.metric.rfind("worst_", 0) != 0) {
      r.Required("min_pairs").Report("only worst_* metrics take min_pairs");
    }
  }
  g.window = r.Get<std::string>("window", g.window);
  if (g.window != "day" && g.window != "hour") {
    r.Required("window").Report("must be \"day\" or \"hour\", got \"" + g.window + "\"");
  } else if (r.Has("window") && g.metric.rfind("worst_window_", 0) != 0) {
    r.Required("window").Report("only worst_window_* metrics take a window");
  }
  r.Finish();
  return g;
}

std::string Fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string BoundText(const Gate& g, double bound, std::optional<double> marginal) {
  std::string s = std::string(g.is_min ? ">= " : "<= ") + Fmt(bound);
  if (marginal) s += " (marginal " + std::string(g.is_min ? ">= " : "<= ") + Fmt(*marginal) + ")";
  return s;
}

GateResult EvaluateOne(const Gate& g, const json& c) {
  GateResult r;
  r.gate = &g;
  const Evidence e = ReadMetric(g, c);
  if (e.state != Evidence::State::kOk) {
    const bool absent = e.state == Evidence::State::kAbsent;
    r.status = absent && !g.required ? GateStatus::kNotApplicable : GateStatus::kInsufficientData;
    r.reason = (absent ? "not evaluated: " : "") + e.detail;
    return r;
  }
  r.estimate = e.estimate;
  r.low = e.low;
  r.high = e.high;
  // The noise floor widens the bounds (never tightens them); the marginal bound moves with it.
  const double bound = NoiseWidened(g, e, g.bound);
  std::optional<double> marginal = g.marginal;
  if (marginal) marginal = *marginal + (bound - g.bound);
  r.bound = bound;
  r.marginal = marginal;

  auto beyond = [&](double v, double b) { return g.is_min ? v < b : v > b; };
  const double near = g.is_min ? e.high.value_or(e.estimate) : e.low.value_or(e.estimate);
  const double far = g.is_min ? e.low.value_or(e.estimate) : e.high.value_or(e.estimate);
  if ((g.judge != Judge::kEstimate) && !e.low && !e.high) {
    r.status = g.required ? GateStatus::kInsufficientData : GateStatus::kNotApplicable;
    r.reason = "not evaluated: no interval for " + g.metric;
    return r;
  }
  switch (g.judge) {
    case Judge::kEstimate:
    case Judge::kFarEnd: {
      const double v = g.judge == Judge::kEstimate ? e.estimate : far;
      r.value = v;
      if (!beyond(v, bound)) {
        r.status = GateStatus::kPass;
      } else if (marginal && !beyond(v, *marginal)) {
        r.status = GateStatus::kMarginal;
      } else {
        r.status = GateStatus::kFail;
      }
      break;
    }
    case Judge::kNearEnd: {
      r.value = near;
      const double fail_bound = marginal.value_or(bound);
      if (beyond(near, fail_bound)) {
        r.status = GateStatus::kFail;
      } else if (beyond(near, bound)) {
        r.status = GateStatus::kMarginal;
      } else {
        r.status = GateStatus::kPass;
      }
      break;
    }
  }
  if (g.metric == "pairs" && r.status != GateStatus::kPass) {
    r.status = GateStatus::kInsufficientData;
  }
  std::string text = g.metric == "pairs" ? e.detail : Fmt(e.estimate);
  if (g.metric != "pairs" && !e.detail.empty()) text += " (" + e.detail + ")";
  if (e.low || e.high) {
    text += ", interval [" + Fmt(e.low.value_or(-INFINITY)) + ", " +
            Fmt(e.high.value_or(INFINITY)) + "]" + (e.level.empty() ? "" : " " + e.level);
  }
  text += std::string(", judged on the ") +
          (g.judge == Judge::kEstimate ? "estimate"
                                       : (g.judge == Judge::kNearEnd ? "near end" : "far end"));
  text += ", need " + BoundText(g, bound, marginal);
  if (bound != g.bound) {
    text += " (widened by the noise floor " + Fmt(*e.noise) + " from " + Fmt(g.bound) + ")";
  }
  if (g.judge == Judge::kNearEnd && r.status == GateStatus::kPass && beyond(e.estimate, bound)) {
    text += "; the estimate is beyond the bound but not significantly";
  }
  r.reason = std::move(text);
  if (r.status == GateStatus::kFail && g.fail_as_marginal) {
    r.status = GateStatus::kMarginal;
    r.reason += "; this gate caps the verdict at MARGINAL";
  }
  return r;
}

}  // namespace

GateConfig ParseGateConfig(const ConfigNode& root) {
  ObjectReader r(root);
  GateConfig config;
  auto gates = r.Required("gates");
  for (const auto& element : gates.Elements()) {
    try {
      config.gates.push_back(ParseGate(element));
    } catch (const ConfigError& e) {
      element.Absorb(e);
    }
  }
  if (config.gates.empty() && gates.json().is_array()) gates.Report("needs at least one gate");
  r.Finish();
  return config;
}

GateConfig LoadGateConfig(const std::string& path) {
  return LoadConfigFile<GateConfig>(path, ParseGateConfig);
}

GateConfig DefaultGateConfig() {
  return ParseConfig<GateConfig>(DefaultGateConfigText(), "(built-in gates)", ParseGateConfig);
}

Verdict EvaluateGates(const GateConfig& config, const json& comparison) {
  Verdict v;
  bool too_few_pairs = false;
  for (const auto& g : config.gates) {
    v.gates.push_back(EvaluateOne(g, comparison));
    too_few_pairs |= g.metric == "pairs" && v.gates.back().status != GateStatus::kPass;
  }
  bool fail = false, insufficient = false, marginal = false;
  std::string not_evaluated;
  for (auto& r : v.gates) {
    if (too_few_pairs && (r.status == GateStatus::kFail || r.status == GateStatus::kMarginal)) {
      // Too few pairs to judge: no gate may claim a regression (or its absence).
      r.status = GateStatus::kInsufficientData;
      r.reason += "; too few pairs to judge";
    }
    fail |= r.status == GateStatus::kFail;
    insufficient |= r.status == GateStatus::kInsufficientData;
    marginal |= r.status == GateStatus::kMarginal;
    if (r.status == GateStatus::kNotApplicable) {
      not_evaluated += (not_evaluated.empty() ? "" : "; ") + r.gate->name + " (" +
                       r.reason.substr(r.reason.rfind("not evaluated: ", 0) == 0 ? 15 : 0) + ")";
    }
    if (r.gate->fail_as_marginal && r.status == GateStatus::kMarginal) {
      v.notes.push_back(r.gate->name + ": " + r.reason + ".");
    }
  }
  if (too_few_pairs) {
    for (const auto& r : v.gates) {
      if (r.gate->metric == "pairs") {
        v.notes.insert(v.notes.begin(), "Too few pairs to judge: " + r.reason + ".");
      }
    }
    v.verdict = GateStatus::kInsufficientData;
  } else if (fail) {
    v.verdict = GateStatus::kFail;
  } else if (insufficient) {
    v.verdict = GateStatus::kInsufficientData;
  } else if (marginal) {
    v.verdict = GateStatus::kMarginal;
  } else {
    v.verdict = GateStatus::kPass;
  }
  if (!not_evaluated.empty()) v.notes.push_back("Not evaluated: " + not_evaluated + ".");
  return v;
}

json VerdictJson(const Verdict& verdict) {
  auto num = [](const std::optional<double>& v) {
    return v && std::isfinite(*v) ? json(*v) : json();
  };
  json gates = json::array();
  for (const auto& r : verdict.gates) {
    json g = {{"name", r.gate->name},
              {"metric", r.gate->metric},
              {"status", GateStatusName(r.status)},
              {"value", num(r.value)},
              {"estimate", num(r.estimate)},
              {"low", num(r.low)},
              {"high", num(r.high)},
              {"judge", JudgeName(r.gate->judge)},
              {r.gate->is_min ? "min" : "max", r.gate->bound},
              {"reason", r.reason}};
    if (r.gate->marginal) g["marginal"] = *r.gate->marginal;
    if (r.bound && *r.bound != r.gate->bound) g["effective_bound"] = *r.bound;
    if (r.gate->confidence) g["confidence"] = *r.gate->confidence;
    if (r.gate->required) g["required"] = true;
    if (r.gate->fail_as_marginal) g["fail_as"] = "marginal";
    gates.push_back(std::move(g));
  }
  return {{"verdict", GateStatusName(verdict.verdict)},
          {"exit_code", VerdictExitCode(verdict.verdict)},
          {"notes", verdict.notes},
          {"gates", gates}};
}

}  // namespace sg::comparator
