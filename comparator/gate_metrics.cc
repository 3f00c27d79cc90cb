#include "comparator/gate_metrics.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/intervals.h"
#include "comparator/rank_tests.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

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

std::string Fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string Pct(double level) {
  return Fmt(level * 100) + "%";
}

Evidence Absent(std::string why) {
  Evidence e;
  e.state = Evidence::State::kAbsent;
  e.detail = std::move(why);
  return e;
}

Evidence TooLittle(std::string why) {
  Evidence e;
  e.state = Evidence::State::kTooLittle;
  e.detail = std::move(why);
  return e;
}

double OneSided(const Gate& g) {
  return g.confidence.value_or(0.95);
}

// A proportion with one-sided Wilson bounds at `level`.
Evidence Proportion(uint64_t successes, uint64_t trials, double level) {
  Evidence e;
  e.estimate = static_cast<double>(successes) / static_cast<double>(trials);
  e.low = WilsonLowerBound(successes, trials, level);
  e.high = WilsonUpperBound(successes, trials, level);
  e.level = Pct(level) + " one-sided Wilson";
  e.detail = std::to_string(successes) + "/" + std::to_string(trials);
  return e;
}

// {"estimate", "low", "high"} objects the aggregates write (two-sided at `level_key`).
Evidence FromInterval(const json& i, double two_sided_level) {
  Evidence e;
  e.estimate = i.value("estimate", 0.0);
  if (i.contains("low") && i["low"].is_number()) e.low = i["low"].get<double>();
  if (i.contains("high") && i["high"].is_number()) e.high = i["high"].get<double>();
  // A missing end is unbounded (too few values to bound it).
  if (!e.low) e.low = -INFINITY;
  if (!e.high) e.high = INFINITY;
  e.level = Pct(1 - (1 - two_sided_level) / 2) + " one-sided";
  return e;
}

// The noise floor's rate for a metric, when the comparison has a valid one.
void AddNoise(Evidence& e, const json& c, const char* noise_metric, bool agreement) {
  const json* nf = Find(c, {"noise_floor"});
  if (!nf || !nf->value("valid", false)) return;
  auto v = Number(*nf, {"metrics", noise_metric, "noise"});
  if (!v) return;
  e.noise = agreement ? 1 - *v : *v;  // top1_flip_rate -> agreement
  e.noise_rel = nf->value("rel", 0.0);
  e.noise_abs = nf->value("abs", 0.0);
  e.proportion_of_agreement = agreement;
}

// --- per-slice metrics -------------------------------------------------------------------------

// What the gate compares for one slice, and which slice is worse for the gate.
double Judged(const Gate& g, const Evidence& e) {
  switch (g.judge) {
    case Judge::kEstimate:
      return e.estimate;
    case Judge::kNearEnd:
      return g.is_min ? e.high.value_or(e.estimate) : e.low.value_or(e.estimate);
    case Judge::kFarEnd:
      return g.is_min ? e.low.value_or(e.estimate) : e.high.value_or(e.estimate);
  }
  return e.estimate;
}

// The judged value minus the slice's bound (noise-widened), oriented so larger is worse.
double Badness(const Gate& g, const Evidence& e) {
  const double bound = NoiseWidened(g, e, g.bound);
  const double v = Judged(g, e);
  return g.is_min ? bound - v : v - bound;
}

struct SliceRef {
  std::string dimension;
  const json* slice;
};

// Slices of `dimensions` with at least `min_pairs` of `count_key`, from dimensions that split
// the traffic (two or more such slices).
std::vector<SliceRef> Judgeable(const json& c, std::initializer_list<const char*> dimensions,
                                const char* count_key, uint64_t min_pairs) {
  std::vector<SliceRef> out;
  const json* slices = Find(c, {"slices"});
  if (!slices) return out;
  for (const char* dim : dimensions) {
    const json* list = Find(*slices, {dim});
    if (!list || !list->is_array()) continue;
    std::vector<SliceRef> here;
    for (const auto& s : *list) {
      if (s.value(count_key, uint64_t{0}) >= min_pairs) here.push_back({dim, &s});
    }
    // One slice of route, size or time is the whole run (the overall gates judge it); one class
    // is still a class.
    const bool per_class = std::string(dim) == "primary_label" || std::string(dim) == "true_label";
    if (here.size() >= 2 || (here.size() == 1 && per_class)) {
      out.insert(out.end(), here.begin(), here.end());
    }
  }
  return out;
}

// The worst of `slices` under `read` (its evidence at the Bonferroni level for all of them).
// `what` names one slice in the reason ("slice", "class", "day").
Evidence WorstOf(const Gate& g, const std::vector<SliceRef>& slices, uint64_t min_pairs,
                 const std::string& what,
                 const std::function<Evidence(const SliceRef&, double level)>& read) {
  if (slices.empty()) {
    return Absent("no " + what + " has " + std::to_string(min_pairs) + " pairs to judge");
  }
  const double level = BonferroniLevel(OneSided(g), slices.size());
  Evidence worst;
  double worst_badness = -INFINITY;
  std::string worst_name;
  for (const auto& ref : slices) {
    Evidence e = read(ref, level);
    if (e.state != Evidence::State::kOk) continue;
    const double b = Badness(g, e);
    if (b > worst_badness) {
      worst_badness = b;
      worst = std::move(e);
      worst_name = ref.dimension + " \"" + ref.slice->value("name", std::string()) + "\"";
      if (ref.slice->contains("run_day")) {
        worst_name +=
            " (day " + std::to_string(ref.slice->value("run_day", int64_t{0})) + " of the run)";
      }
    }
  }
  if (worst_badness == -INFINITY) return Absent("no " + what + " could be judged");
  const std::string plural = what + (what.back() == 's' ? "es" : "s");
  worst.detail = "worst of " + std::to_string(slices.size()) + " " + plural + ": " + worst_name +
                 ", " + worst.detail + "; Bonferroni over " + std::to_string(slices.size());
  return worst;
}

// The worst slice of `dimensions` under `read`.
Evidence WorstSlice(const Gate& g, const json& c, std::initializer_list<const char*> dimensions,
                    const char* count_key, const char* what,
                    const std::function<Evidence(const SliceRef&, double level)>& read) {
  const uint64_t min_pairs = g.min_pairs.value_or(Count(c, {"slices", "min_pairs"}));
  return WorstOf(g, Judgeable(c, dimensions, count_key, std::max<uint64_t>(1, min_pairs)),
                 min_pairs, what, read);
}

// The worst hour or day (gate.window) of the run timeline under `read`: windows with at least
// min_pairs eligible pairs, when the run has two or more of them (one window is the whole run,
// which the overall gates judge).
Evidence WorstWindow(const Gate& g, const json& c,
                     const std::function<Evidence(const SliceRef&, double level)>& read) {
  const json* series = Find(c, {"run_timeline", g.window == "hour" ? "hours" : "days"});
  if (!series) return Absent("no run timeline in this comparison");
  const uint64_t min_pairs =
      std::max<uint64_t>(1, g.min_pairs.value_or(Count(c, {"run_timeline", "min_pairs"})));
  std::vector<SliceRef> windows;
  for (const auto& w : (*series)["windows"]) {
    if (w.value("eligible", uint64_t{0}) >= min_pairs) windows.push_back({g.window, &w});
  }
  if (windows.size() < 2) {
    return Absent("fewer than two " + g.window + "s have " + std::to_string(min_pairs) +
                  " eligible pairs (" + std::to_string(windows.size()) + ")");
  }
  return WorstOf(g, windows, min_pairs, g.window, read);
}

// The worst window's proportion `successes_key` / `trials_key`, widened by the run's noise
// floor `noise_metric` (per-window noise is not kept).
Evidence WorstWindowProportion(const Gate& g, const json& c, const char* successes_key,
                               const char* trials_key, const char* noise_metric, bool agreement,
                               const std::string& label) {
  return WorstWindow(g, c, [&](const SliceRef& ref, double level) {
    const json& w = *ref.slice;
    const uint64_t trials = w.value(trials_key, uint64_t{0});
    if (!trials) return Absent("no " + std::string(trials_key) + " pairs");
    Evidence e = Proportion(w.value(successes_key, uint64_t{0}), trials, level);
    if (noise_metric) AddNoise(e, c, noise_metric, agreement);
    e.detail = label + " " + e.detail;
    return e;
  });
}

// The noise floor's value for one slice (by dimension and name), when there is one.
void AddSliceNoise(Evidence& e, const json& c, const SliceRef& ref, const char* key,
                   bool agreement) {
  const json* nf = Find(c, {"noise_floor"});
  if (!nf || !nf->value("valid", false)) return;
  auto v =
      Number(*nf, {"slices", ref.dimension.c_str(), ref.slice->value("name", "").c_str(), key});
  if (!v) return;
  e.noise = *v;
  e.noise_rel = nf->value("rel", 0.0);
  e.noise_abs = nf->value("abs", 0.0);
  e.proportion_of_agreement = agreement;
}

constexpr std::initializer_list<const char*> kAllDimensions = {"route", "model", "primary_label",
                                                               "request_size", "time"};

// The worst slice of a proportion `successes_key` / `trials_key` across `dimensions`, widened per
// slice by the noise floor's `noise_key` (an agreement when `agreement`).
Evidence WorstSliceProportion(const Gate& g, const json& c,
                              std::initializer_list<const char*> dimensions,
                              const char* successes_key, const char* trials_key, const char* what,
                              const char* noise_key, bool agreement, const std::string& label) {
  return WorstSlice(g, c, dimensions, trials_key, what, [&](const SliceRef& ref, double level) {
    const json& s = *ref.slice;
    Evidence e =
        Proportion(s.value(successes_key, uint64_t{0}), s.value(trials_key, uint64_t{0}), level);
    AddSliceNoise(e, c, ref, noise_key, agreement);
    e.detail = label + " " + e.detail;
    return e;
  });
}

// --- readers -----------------------------------------------------------------------------------

using Reader = std::function<Evidence(const Gate&, const json&)>;

Evidence OutcomeRate(const Gate& g, const json& c, std::initializer_list<const char*> outcomes,
                     const char* noise_metric) {
  const uint64_t trials = Count(c, {"rates", "eligible_pairs"});
  if (!trials) return TooLittle("no pair had a primary response");
  uint64_t successes = 0;
  for (const char* o : outcomes) successes += Count(c, {"outcomes", o});
  Evidence e = Proportion(successes, trials, OneSided(g));
  if (noise_metric) AddNoise(e, c, noise_metric, false);
  return e;
}

const std::map<std::string, Reader>& Readers() {
  static const std::map<std::string, Reader> readers = {
      {"pairs",
       [](const Gate&, const json& c) {
         Evidence e;
         e.estimate = static_cast<double>(Count(c, {"pairs"}));
         e.detail = Fmt(e.estimate) + " pairs";
         return e;
       }},
      {"top1_agreement",
       [](const Gate& g, const json& c) {
         const uint64_t trials = Count(c, {"classification", "pairs"});
         if (!trials) return Absent("no classification pairs were judged");
         Evidence e =
             Proportion(trials - Count(c, {"classification", "top1_flips"}), trials, OneSided(g));
         AddNoise(e, c, "top1_flip_rate", true);
         return e;
       }},
      {"agreement_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"match", "within_tolerance"}, nullptr);
       }},
      {"mismatch_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"mismatch", "unparseable"}, "mismatch_rate");
       }},
      {"shadow_error_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"shadow_error"}, "shadow_error_rate");
       }},
      {"shadow_timeout_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"shadow_timeout"}, "shadow_timeout_rate");
       }},
      {"unparseable_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"unparseable"}, "unparseable_rate");
       }},
      {"failure_rate",
       [](const Gate& g, const json& c) {
         return OutcomeRate(g, c, {"shadow_error", "shadow_timeout", "unparseable"},
                            "failure_rate");
       }},
      {"malformed_rate",
       [](const Gate& g, const json& c) {
         const uint64_t bad = Count(c, {"malformed", "count"});
         const uint64_t trials = Count(c, {"pairs"}) + bad;
         if (!trials) return TooLittle("no records");
         return Proportion(bad, trials, OneSided(g));
       }},
      {"shadow_accuracy",
       [](const Gate& g, const json& c) {
         const uint64_t n = Count(c, {"accuracy", "labeled"});
         if (!n) return Absent("no pair carried a true label");
         const uint64_t correct =
             c["accuracy"].contains("shadow_correct")
                 ? Count(c, {"accuracy", "shadow_correct"})
                 : static_cast<uint64_t>(std::llround(
                       Number(c, {"accuracy", "shadow"}).value_or(0) * static_cast<double>(n)));
         return Proportion(correct, n, OneSided(g));
       }},
      {"accuracy_delta",
       [](const Gate& g, const json& c) {
         const uint64_t n = Count(c, {"accuracy", "labeled"});
         if (!n) return Absent("no pair carried a true label");
         const PairedInterval ci = PairedDifferenceInterval(
             Count(c, {"accuracy", "only_shadow_correct"}),
             Count(c, {"accuracy", "only_primary_correct"}), n, OneSided(g));
         Evidence e;
         e.estimate = Number(c, {"accuracy", "delta"}).value_or(ci.estimate);
         e.low = ci.low;
         e.high = ci.high;
         e.level = Pct(OneSided(g)) + " one-sided paired Wald";
         e.detail = "shadow " + Fmt(Number(c, {"accuracy", "shadow"}).value_or(0)) + " - primary " +
                    Fmt(Number(c, {"accuracy", "primary"}).value_or(0)) + " over " +
                    std::to_string(n) + " labeled pairs";
         return e;
       }},
      {"mean_js_distance",
       [](const Gate&, const json& c) {
         auto v = Number(c, {"classification", "mean_js_distance"});
         if (!v) return Absent("no classification pairs were judged");
         Evidence e;
         e.estimate = *v;
         return e;
       }},
      {"mean_topk_overlap",
       [](const Gate&, const json& c) {
         auto v = Number(c, {"classification", "mean_topk_overlap"});
         if (!v) return Absent("no classification pairs were judged");
         Evidence e;
         e.estimate = *v;
         return e;
       }},
      {"noise_flags",
       [](const Gate&, const json& c) {
         const json* nf = Find(c, {"noise_floor"});
         if (!nf) return Absent("no noise floor configured (compare config noise_floor)");
         if (!nf->value("valid", false)) return Absent("no noise-floor pairs were judged");
         Evidence e;
         e.estimate = Number(*nf, {"flagged"}).value_or(0);
         e.detail = "metric(s)/field(s) beyond the noise floor of mirror \"" +
                    nf->value("mirror", std::string()) + "\" (" +
                    std::to_string(nf->value("pairs", uint64_t{0})) + " pairs)";
         return e;
       }},
      {"shadow_p99_ms",
       [](const Gate&, const json& c) {
         if (!Count(c, {"latency", "shadow", "count"})) return Absent("no shadow latency");
         Evidence e;
         e.estimate = Number(c, {"latency", "shadow", "p99_ms"}).value_or(0);
         e.detail = "ms";
         return e;
       }},
      {"shadow_p999_ms",
       [](const Gate&, const json& c) {
         if (!Count(c, {"latency", "shadow", "count"})) return Absent("no shadow latency");
         Evidence e;
         e.estimate = Number(c, {"latency", "shadow", "p999_ms"}).value_or(0);
         e.detail = "ms";
         return e;
       }},
      {"latency_shift_ms",
       [](const Gate& g, const json& c) {
         const char* test = g.test == "wilcoxon" ? "wilcoxon_signed_rank" : "mann_whitney";
         const json* t = Find(c, {"latency", test});
         if (!t || !t->value("valid", false)) return Absent("no paired latencies to test");
         Evidence e;
         e.estimate = Number(*t, {"estimate_ms"}).value_or(0);
         e.low = Number(*t, {"ci_low_ms"}).value_or(e.estimate);
         e.high = Number(*t, {"ci_high_ms"}).value_or(e.estimate);
         const double level = t->value("confidence", 0.98);
         e.level = Pct(1 - (1 - level) / 2) + " one-sided";
         e.detail = g.test + " shift in ms (shadow - primary), p = " +
                    Fmt(Number(*t, {"p_value"}).value_or(1));
         return e;
       }},
      {"latency_shift_ratio",
       [](const Gate&, const json& c) {
         const json* r = Find(c, {"latency", "relative_shift"});
         if (!r || !r->value("valid", false)) return Absent("no paired latencies to test");
         Evidence e = FromInterval(*r, r->value("level", 0.98));
         e.detail = "paired Hodges-Lehmann shift / primary median " +
                    Fmt(r->value("primary_median_ms", 0.0)) + " ms";
         return e;
       }},
      {"tail_excess_rate",
       [](const Gate&, const json& c) {
         const json* t = Find(c, {"latency", "tail_excess"});
         if (!t || !t->value("valid", false)) return Absent("no latency recorded on both sides");
         Evidence e = FromInterval(*t, t->value("level", 0.98));
         e.detail = "share above " + Fmt(t->value("threshold_ms", 0.0)) + " ms (" +
                    Fmt(t->value("multiple", 0.0)) + " x primary p99): shadow " +
                    std::to_string(t->value("shadow_above", uint64_t{0})) + "/" +
                    std::to_string(t->value("shadow_count", uint64_t{0})) + ", primary " +
                    std::to_string(t->value("primary_above", uint64_t{0})) + "/" +
                    std::to_string(t->value("primary_count", uint64_t{0}));
         return e;
       }},
      {"coverage",
       [](const Gate&, const json& c) {
         const json* cov = Find(c, {"coverage"});
         if (!cov || !cov->value("valid", false)) {
           return Absent("no counters lines in the pair log");
         }
         Evidence e;
         e.estimate = cov->value("fraction", 1.0);
         const json& w = (*cov)["worst"];
         std::string left;
         for (auto it = w["left_out"].begin(); it != w["left_out"].end(); ++it) {
           if (it->get<uint64_t>() == 0) continue;
           left +=
               (left.empty() ? "" : ", ") + it.key() + " " + std::to_string(it->get<uint64_t>());
         }
         if (w.value("sink_dropped", uint64_t{0})) {
           left += (left.empty() ? "" : ", ") + std::string("sink dropped ") +
                   std::to_string(w.value("sink_dropped", uint64_t{0}));
         }
         e.detail = "route \"" + w.value("route", std::string()) + "\" mirror \"" +
                    w.value("mirror", std::string()) +
                    "\": " + std::to_string(w.value("captured", uint64_t{0})) + " of " +
                    std::to_string(w.value("selected", uint64_t{0})) +
                    " sampled requests reached the log" +
                    (left.empty() ? std::string() : " (left out: " + left + ")");
         return e;
       }},
      {"score_bias_rel",
       [](const Gate&, const json& c) {
         const json* b = Find(c, {"regression", "bias_rel"});
         if (!b) return Absent("no regression (scorer) pairs with spread in the primary's values");
         Evidence raw =
             FromInterval(*b, Number(c, {"regression", "interval_level"}).value_or(0.98));
         // Judged on |bias|: the interval of the absolute value.
         Evidence e = raw;
         const double lo = *raw.low, hi = *raw.high;
         e.estimate = std::fabs(raw.estimate);
         e.low = (lo <= 0 && hi >= 0) ? 0.0 : std::min(std::fabs(lo), std::fabs(hi));
         e.high = std::max(std::fabs(lo), std::fabs(hi));
         e.detail = "|mean(shadow - primary)| / sd(primary) (bias " +
                    Fmt(Number(c, {"regression", "bias", "estimate"}).value_or(0)) + ", sd " +
                    Fmt(Number(c, {"regression", "primary_sd"}).value_or(0)) + ")";
         return e;
       }},
      {"score_mae_rel",
       [](const Gate&, const json& c) {
         const json* m = Find(c, {"regression", "mae_rel"});
         if (!m) return Absent("no regression (scorer) pairs with spread in the primary's values");
         Evidence e = FromInterval(*m, Number(c, {"regression", "interval_level"}).value_or(0.98));
         e.detail = "mean |shadow - primary| / sd(primary) (MAE " +
                    Fmt(Number(c, {"regression", "mae"}).value_or(0)) + ")";
         return e;
       }},
      {"score_beyond_tolerance_rate",
       [](const Gate& g, const json& c) {
         const uint64_t n = Count(c, {"regression", "pairs"});
         if (!n) return Absent("no regression (scorer) pairs were judged");
         return Proportion(Count(c, {"regression", "beyond_tolerance"}), n, OneSided(g));
       }},
      {"score_true_mae_ratio",
       [](const Gate&, const json& c) {
         const json* r = Find(c, {"regression", "truth", "mae_ratio"});
         if (!r) return Absent("no scorer pair carried a true score");
         Evidence e = FromInterval(*r, Number(c, {"regression", "interval_level"}).value_or(0.98));
         e.detail = "MAE against the true score: shadow " +
                    Fmt(Number(c, {"regression", "truth", "shadow_mae"}).value_or(0)) +
                    " / primary " +
                    Fmt(Number(c, {"regression", "truth", "primary_mae"}).value_or(0)) + " over " +
                    std::to_string(Count(c, {"regression", "truth", "pairs"})) + " pairs";
         return e;
       }},
      {"worst_class_agreement",
       [](const Gate& g, const json& c) {
         if (!Count(c, {"classification", "pairs"})) {
           return Absent("no classification pairs were judged");
         }
         return WorstSliceProportion(g, c, {"primary_label"}, "top1_agree", "classified", "class",
                                     "top1_agreement", true, "top-1 agreement");
       }},
      {"worst_class_recall_drop",
       [](const Gate& g, const json& c) {
         if (!Count(c, {"accuracy", "labeled"})) return Absent("no pair carried a true label");
         return WorstSlice(
             g, c, {"true_label"}, "labeled", "true class", [&](const SliceRef& ref, double level) {
               const json& s = *ref.slice;
               const uint64_t n = s.value("labeled", uint64_t{0});
               // Primary minus shadow recall: positive is a drop.
               const PairedInterval d =
                   PairedDifferenceInterval(s.value("only_primary_correct", uint64_t{0}),
                                            s.value("only_shadow_correct", uint64_t{0}), n, level);
               Evidence e;
               e.estimate = d.estimate;
               e.low = d.low;
               e.high = d.high;
               e.level = Pct(level) + " one-sided paired Wald";
               e.detail = "recall " + Fmt(s.value("primary_accuracy", 0.0)) + " -> " +
                          Fmt(s.value("shadow_accuracy", 0.0)) + " over " + std::to_string(n);
               return e;
             });
       }},
      {"worst_slice_failure_rate",
       [](const Gate& g, const json& c) {
         return WorstSliceProportion(g, c, kAllDimensions, "failed", "eligible", "slice",
                                     "failure_rate", false, "failed");
       }},
      {"worst_slice_mismatch_rate",
       [](const Gate& g, const json& c) {
         return WorstSliceProportion(g, c, kAllDimensions, "mismatched", "eligible", "slice",
                                     "mismatch_rate", false, "mismatched");
       }},
      {"worst_slice_top1_agreement",
       [](const Gate& g, const json& c) {
         if (!Count(c, {"classification", "pairs"})) {
           return Absent("no classification pairs were judged");
         }
         return WorstSliceProportion(g, c, kAllDimensions, "top1_agree", "classified", "slice",
                                     "top1_agreement", true, "top-1 agreement");
       }},
      {"worst_window_agreement_rate",
       [](const Gate& g, const json& c) {
         return WorstWindowProportion(g, c, "agreed", "eligible", nullptr, false, "agreed");
       }},
      {"worst_window_failure_rate",
       [](const Gate& g, const json& c) {
         return WorstWindowProportion(g, c, "failed", "eligible", "failure_rate", false, "failed");
       }},
      {"worst_window_mismatch_rate",
       [](const Gate& g, const json& c) {
         return WorstWindowProportion(g, c, "mismatched", "eligible", "mismatch_rate", false,
                                      "mismatched");
       }},
      {"worst_window_top1_agreement",
       [](const Gate& g, const json& c) {
         if (!Count(c, {"classification", "pairs"})) {
           return Absent("no classification pairs were judged");
         }
         return WorstWindowProportion(g, c, "top1_agree", "classified", "top1_flip_rate", true,
                                      "top-1 agreement");
       }},
      {"worst_window_p99_ratio",
       [](const Gate& g, const json& c) {
         return WorstWindow(g, c, [&](const SliceRef& ref, double) {
           const json* r = Find(*ref.slice, {"p99_ratio"});
           if (!r) return Absent("no latencies on both sides");
           Evidence e = FromInterval(*r, r->value("level", 0.98));
           e.detail = "shadow / primary p99 " +
                      Fmt(Number(*ref.slice, {"shadow", "p99_ms"}).value_or(0)) + " / " +
                      Fmt(Number(*ref.slice, {"primary", "p99_ms"}).value_or(0)) + " ms";
           return e;
         });
       }},
      {"worst_slice_p50_ratio",
       [](const Gate& g, const json& c) {
         return WorstSlice(
             g, c, kAllDimensions, "eligible", "slice", [&](const SliceRef& ref, double) {
               const json* r = Find(*ref.slice, {"p50_ratio"});
               if (!r) return Absent("too few latencies");
               Evidence e = FromInterval(*r, r->value("level", 0.98));
               e.detail = "shadow / primary median latency " +
                          Fmt(Number(*ref.slice, {"shadow", "p50_ms"}).value_or(0)) + " / " +
                          Fmt(Number(*ref.slice, {"primary", "p50_ms"}).value_or(0)) + " ms";
               return e;
             });
       }},
  };
  return readers;
}

Evidence QuantileRatio(const json& c, const char* name) {
  if (!Count(c, {"latency", "shadow", "count"}) || !Count(c, {"latency", "primary", "count"})) {
    return Absent("no latency recorded on both sides");
  }
  const json* r = Find(c, {"latency", "quantile_ratios", name});
  if (!r || !r->value("valid", false)) {
    const uint64_t need = r ? r->value("min_latencies", uint64_t{0}) : 0;
    return Absent("needs " + std::to_string(need) + " latencies per side for an interval");
  }
  Evidence e = FromInterval(*r, r->value("level", 0.98));
  e.detail = std::string("shadow ") + name + " / primary " + name + ", order-statistic interval";
  return e;
}

}  // namespace

double NoiseWidened(const Gate& g, const Evidence& e, double bound) {
  if (!e.noise) return bound;
  if (e.proportion_of_agreement) {
    // On the disagreement: 1 - value <= (1 - noise) * (1 + rel) + abs.
    const double floor = (1 - *e.noise) * (1 + e.noise_rel) + e.noise_abs;
    return g.is_min ? std::min(bound, 1 - floor) : bound;
  }
  const double floor = *e.noise * (1 + e.noise_rel) + e.noise_abs;
  return g.is_min ? bound : std::max(bound, floor);
}

bool IsProportionMetric(const std::string& m) {
  return m == "top1_agreement" || m == "agreement_rate" || m == "mismatch_rate" ||
         m == "shadow_error_rate" || m == "shadow_timeout_rate" || m == "shadow_accuracy" ||
         m == "malformed_rate" || m == "unparseable_rate" || m == "failure_rate" ||
         m == "score_beyond_tolerance_rate";
}

bool HasInterval(const std::string& m) {
  return IsProportionMetric(m) || m == "accuracy_delta" || m == "latency_shift_ms" ||
         m == "latency_shift_ratio" || m == "p50_ratio" || m == "p99_ratio" || m == "p999_ratio" ||
         m == "tail_excess_rate" || m == "score_bias_rel" || m == "score_mae_rel" ||
         m == "score_true_mae_ratio" || m.rfind("worst_", 0) == 0;
}

Evidence ReadMetric(const Gate& g, const json& c) {
  if (g.metric == "p50_ratio") return QuantileRatio(c, "p50");
  if (g.metric == "p999_ratio") return QuantileRatio(c, "p999");
  if (g.metric == "p99_ratio") {
    Evidence e = QuantileRatio(c, "p99");
    // Judged by its estimate alone, p99_ratio needs no interval (a gates file of old).
    if (e.state == Evidence::State::kAbsent && g.judge == Judge::kEstimate &&
        Number(c, {"latency", "p99_ratio"})) {
      e = Evidence{};
      e.estimate = *Number(c, {"latency", "p99_ratio"});
      e.detail = "shadow p99 / primary p99";
    }
    return e;
  }
  auto it = Readers().find(g.metric);
  if (it == Readers().end()) return Absent("unknown metric");
  return it->second(g, c);
}

const std::vector<std::string>& GateMetricNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& [name, reader] : Readers()) out.push_back(name);
    for (const char* m : {"p50_ratio", "p99_ratio", "p999_ratio"}) out.push_back(m);
    std::sort(out.begin(), out.end());
    return out;
  }();
  return names;
}

}  // namespace sg::comparator
