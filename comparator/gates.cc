#include "comparator/gates.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/rank_tests.h"

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
      return 4;
  }
  return 2;
}

const std::vector<std::string>& GateMetricNames() {
  static const std::vector<std::string> names = {"pairs",
                                                 "top1_agreement",
                                                 "agreement_rate",
                                                 "mismatch_rate",
                                                 "shadow_error_rate",
                                                 "shadow_timeout_rate",
                                                 "malformed_rate",
                                                 "accuracy_delta",
                                                 "shadow_accuracy",
                                                 "mean_js_distance",
                                                 "mean_topk_overlap",
                                                 "p99_ratio",
                                                 "shadow_p99_ms",
                                                 "shadow_p999_ms",
                                                 "latency_shift_ms",
                                                 "noise_flags"};
  return names;
}

namespace {

bool IsProportion(const std::string& m) {
  return m == "top1_agreement" || m == "agreement_rate" || m == "mismatch_rate" ||
         m == "shadow_error_rate" || m == "shadow_timeout_rate" || m == "shadow_accuracy" ||
         m == "malformed_rate";
}

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
    if (!IsProportion(g.metric) && g.metric != "accuracy_delta") {
      r.Required("confidence")
          .Report("only proportion metrics and accuracy_delta take a confidence");
    }
  }
  g.test = r.Get<std::string>("test", g.test);
  if (g.test != "wilcoxon" && g.test != "mann_whitney") {
    r.Required("test").Report("must be \"wilcoxon\" or \"mann_whitney\", got \"" + g.test + "\"");
  } else if (r.Has("test") && g.metric != "latency_shift_ms") {
    r.Required("test").Report("only latency_shift_ms takes a test");
  }
  r.Finish();
  return g;
}

const json* Find(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end() || it->is_null()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::optional<double> Number(const json& j, std::initializer_list<const char*> path) {
  const json* v = Find(j, path);
  if (!v || !v->is_number()) return std::nullopt;
  return v->get<double>();
}

uint64_t Count(const json& j, std::initializer_list<const char*> path) {
  const json* v = Find(j, path);
  return v && v->is_number() ? v->get<uint64_t>() : 0;
}

// Compares value with the gate's bounds.
GateStatus Judge(const Gate& g, double value) {
  auto ok = [&](double bound) { return g.is_min ? value >= bound : value <= bound; };
  if (ok(g.bound)) return GateStatus::kPass;
  if (g.marginal && ok(*g.marginal)) return GateStatus::kMarginal;
  return GateStatus::kFail;
}

std::string Fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string BoundText(const Gate& g) {
  std::string s = std::string(g.is_min ? ">= " : "<= ") + Fmt(g.bound);
  if (g.marginal)
    s += " (marginal " + std::string(g.is_min ? ">= " : "<= ") + Fmt(*g.marginal) + ")";
  return s;
}

GateResult EvaluateOne(const Gate& g, const json& c) {
  GateResult r;
  r.gate = &g;
  auto insufficient = [&](std::string why) {
    r.status = GateStatus::kInsufficientData;
    r.reason = std::move(why);
    return r;
  };
  const std::string& m = g.metric;
  const uint64_t eligible = Count(c, {"rates", "eligible_pairs"});
  if (m == "pairs") {
    r.value = static_cast<double>(Count(c, {"pairs"}));
    r.status = Judge(g, *r.value);
    if (r.status != GateStatus::kPass) r.status = GateStatus::kInsufficientData;
    r.reason = Fmt(*r.value) + " pairs, need " + BoundText(g);
    return r;
  }
  if (IsProportion(m)) {
    uint64_t successes = 0, trials = 0;
    if (m == "top1_agreement") {
      trials = Count(c, {"classification", "pairs"});
      successes = trials - Count(c, {"classification", "top1_flips"});
      if (!trials) return insufficient("no classification pairs were judged");
    } else if (m == "shadow_accuracy") {
      trials = Count(c, {"accuracy", "labeled"});
      successes = static_cast<uint64_t>(
          std::llround(Number(c, {"accuracy", "shadow"}).value_or(0) * trials));
      if (!trials) return insufficient("no pair carried a true label");
    } else if (m == "malformed_rate") {
      trials = Count(c, {"pairs"}) + Count(c, {"malformed", "count"});
      successes = Count(c, {"malformed", "count"});
      if (!trials) return insufficient("no records");
    } else {
      trials = eligible;
      const auto& o = c["outcomes"];
      if (m == "agreement_rate") {
        successes = o.value("match", uint64_t{0}) + o.value("within_tolerance", uint64_t{0});
      } else if (m == "mismatch_rate") {
        successes = o.value("mismatch", uint64_t{0}) + o.value("unparseable", uint64_t{0});
      } else if (m == "shadow_error_rate") {
        successes = o.value("shadow_error", uint64_t{0});
      } else {
        successes = o.value("shadow_timeout", uint64_t{0});
      }
      if (!trials) return insufficient("no pair had a primary response");
    }
    const double point = static_cast<double>(successes) / static_cast<double>(trials);
    if (g.confidence) {
      r.value = g.is_min ? WilsonLowerBound(successes, trials, *g.confidence)
                         : WilsonUpperBound(successes, trials, *g.confidence);
      r.reason = std::string("Wilson ") + (g.is_min ? "lower" : "upper") + " bound " +
                 Fmt(*r.value) + " at " + Fmt(*g.confidence * 100) + "% (" +
                 std::to_string(successes) + "/" + std::to_string(trials) + " = " + Fmt(point) +
                 "), need " + BoundText(g);
    } else {
      r.value = point;
      r.reason = Fmt(point) + " (" + std::to_string(successes) + "/" + std::to_string(trials) +
                 "), need " + BoundText(g);
    }
    r.status = Judge(g, *r.value);
    return r;
  }
  if (m == "accuracy_delta" || m == "mean_js_distance" || m == "mean_topk_overlap") {
    std::optional<double> v;
    if (m == "accuracy_delta") {
      v = Number(c, {"accuracy", "delta"});
      if (!v) return insufficient("no pair carried a true label");
      const uint64_t n = Count(c, {"accuracy", "labeled"});
      r.reason = "shadow " + Fmt(Number(c, {"accuracy", "shadow"}).value_or(0)) + " - primary " +
                 Fmt(Number(c, {"accuracy", "primary"}).value_or(0)) + " = " + Fmt(*v) + " over " +
                 std::to_string(n) + " labeled pairs";
      if (g.confidence) {
        const PairedInterval ci = PairedDifferenceInterval(
            Count(c, {"accuracy", "only_shadow_correct"}),
            Count(c, {"accuracy", "only_primary_correct"}), n, *g.confidence);
        v = g.is_min ? ci.low : ci.high;
        r.reason += std::string(", one-sided ") + Fmt(*g.confidence * 100) + "% " +
                    (g.is_min ? "lower" : "upper") + " bound " + Fmt(*v);
      }
    } else {
      v = Number(c, {"classification", m.c_str()});
      if (!v) return insufficient("no classification pairs were judged");
      r.reason = m + " " + Fmt(*v);
    }
    r.value = v;
    r.reason += ", need " + BoundText(g);
    r.status = Judge(g, *v);
    return r;
  }
  if (m == "noise_flags") {
    const json* nf = Find(c, {"noise_floor"});
    if (!nf) return insufficient("no noise floor configured (compare config noise_floor)");
    if (!nf->value("valid", false)) return insufficient("no noise-floor pairs were judged");
    r.value = Number(*nf, {"flagged"});
    r.reason = Fmt(*r.value) + " metric(s)/field(s) beyond the noise floor of mirror \"" +
               nf->value("mirror", std::string()) + "\" (" +
               std::to_string(nf->value("pairs", uint64_t{0})) + " pairs), need " + BoundText(g);
    r.status = Judge(g, *r.value);
    return r;
  }
  if (m == "p99_ratio" || m == "shadow_p99_ms" || m == "shadow_p999_ms") {
    if (!Count(c, {"latency", "shadow", "count"}) || !Count(c, {"latency", "primary", "count"})) {
      return insufficient("no latency recorded on both sides");
    }
    if (m == "p99_ratio") {
      r.value = Number(c, {"latency", "p99_ratio"});
      if (!r.value) return insufficient("primary p99 is 0");
      r.reason = "shadow p99 " + Fmt(Number(c, {"latency", "shadow", "p99_ms"}).value_or(0)) +
                 " ms / primary p99 " +
                 Fmt(Number(c, {"latency", "primary", "p99_ms"}).value_or(0)) +
                 " ms = " + Fmt(*r.value);
    } else {
      r.value = Number(c, {"latency", "shadow", m == "shadow_p99_ms" ? "p99_ms" : "p999_ms"});
      r.reason = m + " " + Fmt(r.value.value_or(0)) + " ms";
    }
    r.reason += ", need " + BoundText(g);
    r.status = Judge(g, *r.value);
    return r;
  }
  // latency_shift_ms: the Hodges-Lehmann shift (shadow - primary) and its interval. Fail when the
  // whole interval is beyond the bound (a confident regression), marginal when only the estimate
  // is, pass otherwise.
  const char* test = g.test == "wilcoxon" ? "wilcoxon_signed_rank" : "mann_whitney";
  const json* t = Find(c, {"latency", test});
  if (!t || !t->value("valid", false)) return insufficient("no paired latencies to test");
  const double est = Number(*t, {"estimate_ms"}).value_or(0);
  const double lo = Number(*t, {"ci_low_ms"}).value_or(est);
  const double hi = Number(*t, {"ci_high_ms"}).value_or(est);
  const double p = Number(*t, {"p_value"}).value_or(1);
  r.value = est;
  // Beyond a bound: the whole interval (confident) or only the estimate.
  auto beyond_all = [&](double b) { return g.is_min ? hi < b : lo > b; };
  auto beyond_estimate = [&](double b) { return g.is_min ? est < b : est > b; };
  const double fail_bound = g.marginal.value_or(g.bound);
  if (beyond_all(fail_bound)) {
    r.status = GateStatus::kFail;
  } else if (beyond_all(g.bound) || beyond_estimate(g.bound)) {
    r.status = GateStatus::kMarginal;
  } else {
    r.status = GateStatus::kPass;
  }
  r.reason = std::string(g.test) + " shift " + Fmt(est) + " ms, " +
             Fmt(t->value("confidence", 0.0) * 100) + "% CI [" + Fmt(lo) + ", " + Fmt(hi) +
             "] ms, p = " + Fmt(p) + ", need " + BoundText(g);
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

Verdict EvaluateGates(const GateConfig& config, const json& comparison) {
  Verdict v;
  bool fail = false, insufficient = false, marginal = false, too_few_pairs = false;
  for (const auto& g : config.gates) {
    v.gates.push_back(EvaluateOne(g, comparison));
    const GateStatus s = v.gates.back().status;
    fail |= s == GateStatus::kFail;
    insufficient |= s == GateStatus::kInsufficientData;
    marginal |= s == GateStatus::kMarginal;
    too_few_pairs |= g.metric == "pairs" && s == GateStatus::kInsufficientData;
  }
  if (too_few_pairs) {
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
  return v;
}

json VerdictJson(const Verdict& verdict) {
  json gates = json::array();
  for (const auto& r : verdict.gates) {
    json g = {{"name", r.gate->name},
              {"metric", r.gate->metric},
              {"status", GateStatusName(r.status)},
              {"value", r.value && std::isfinite(*r.value) ? json(*r.value) : json()},
              {r.gate->is_min ? "min" : "max", r.gate->bound},
              {"reason", r.reason}};
    if (r.gate->marginal) g["marginal"] = *r.gate->marginal;
    if (r.gate->confidence) g["confidence"] = *r.gate->confidence;
    gates.push_back(std::move(g));
  }
  return {{"verdict", GateStatusName(verdict.verdict)},
          {"exit_code", VerdictExitCode(verdict.verdict)},
          {"gates", gates}};
}

}  // namespace sg::comparator
