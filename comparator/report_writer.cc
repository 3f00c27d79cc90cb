#include "comparator/report_writer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/capacity.h"
#include "comparator/comparison.h"
#include "comparator/gates.h"
#include "comparator/svg_chart.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

constexpr const char* kPrimaryColor = "#1f77b4";
constexpr const char* kShadowColor = "#ff7f0e";

std::string Fmt(double v, int digits = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

double D(const json& j, const char* key, double fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

uint64_t U(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<uint64_t>() : 0;
}

std::string S(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Pct(double v) {
  return Fmt(v * 100, 4) + "%";
}

std::string NumOrDash(const json& j, const char* key, bool percent = false) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return "-";
  return percent ? Pct(it->get<double>()) : Fmt(it->get<double>());
}

// A table as rows of cells; the renderers turn it into Markdown or HTML.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::string MdCell(const std::string& s) {
  std::string out;
  for (char c : s) {
    // Markdown renders raw HTML: what pairs carry (ids, reasons, labels) must stay text.
    if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else if (c == '&') {
      out += "&amp;";
    } else if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string Markdown(const Table& t) {
  if (t.rows.empty()) return "_none_\n";
  std::string s = "|";
  for (const auto& h : t.header) s.append(" ").append(MdCell(h)).append(" |");
  s += "\n|";
  s.append(" --- |");
  for (size_t i = 1; i < t.header.size(); ++i) s.append(" ---: |");
  s += "\n";
  for (const auto& r : t.rows) {
    s += "|";
    for (const auto& c : r) s.append(" ").append(MdCell(c)).append(" |");
    s += "\n";
  }
  return s;
}

std::string Html(const Table& t, const std::string& cls = "") {
  if (t.rows.empty()) return "<p class=\"none\">none</p>\n";
  std::string s = "<table" + (cls.empty() ? "" : " class=\"" + cls + "\"") + "><thead><tr>";
  for (const auto& h : t.header) s += "<th>" + HtmlEscape(h) + "</th>";
  s += "</tr></thead><tbody>";
  for (const auto& r : t.rows) {
    s += "<tr>";
    for (const auto& c : r) {
      std::string klass;
      if (c == "PASS" || c == "FAIL" || c == "MARGINAL" || c == "INSUFFICIENT_DATA" ||
          c == "NOT_APPLICABLE") {
        klass = " class=\"st-" + c + "\"";
      }
      s += "<td" + klass + ">" + HtmlEscape(c) + "</td>";
    }
    s += "</tr>";
  }
  return s + "</tbody></table>\n";
}

Table GateTable(const json& report) {
  Table t{{"Gate", "Metric", "Status", "Value", "Bound", "Reason"}, {}};
  for (const auto& g : report["verdict"]["gates"]) {
    std::string bound =
        g.contains("min") ? ">= " + Fmt(D(g, "min"), 6) : "<= " + Fmt(D(g, "max"), 6);
    if (g.contains("marginal")) bound += " (marginal " + Fmt(D(g, "marginal"), 6) + ")";
    t.rows.push_back({S(g, "name"), S(g, "metric"), S(g, "status"),
                      g["value"].is_number() ? Fmt(g["value"].get<double>(), 6) : "-", bound,
                      S(g, "reason")});
  }
  return t;
}

// Locust's request statistics table, one row per side, then per side and route.
Table StatsTable(const json& c) {
  Table t{{"Type", "Name", "# reqs", "# fails", "Avg (ms)", "Min (ms)", "Max (ms)", "Med (ms)",
           "req/s", "failures/s"},
          {}};
  const double duration = D(c["time"], "duration_s");
  auto rate = [&](double n) { return duration > 0 ? Fmt(n / duration) : std::string("-"); };
  for (const char* side : {"primary", "shadow"}) {
    const json& l = c["latency"][side];
    const double reqs = D(l, "requests"), fails = D(l, "fails");
    t.rows.push_back({side, "Aggregated", Fmt(reqs, 10), Fmt(fails, 10), Fmt(D(l, "mean_ms")),
                      Fmt(D(l, "min_ms")), Fmt(D(l, "max_ms")), Fmt(D(l, "p50_ms")), rate(reqs),
                      rate(fails)});
  }
  for (const auto& r : c["slices"]["route"]) {
    for (const char* side : {"primary", "shadow"}) {
      const json& l = r[side];
      const double reqs = D(r, "pairs"), fails = D(l, "fails");
      t.rows.push_back({side, S(r, "name"), Fmt(reqs, 10), Fmt(fails, 10), Fmt(D(l, "mean_ms")),
                        Fmt(D(l, "min_ms")), Fmt(D(l, "max_ms")), Fmt(D(l, "p50_ms")), rate(reqs),
                        rate(fails)});
    }
  }
  return t;
}

Table OutcomeTable(const json& c) {
  Table t{{"Outcome", "Pairs", "Share"}, {}};
  const double pairs = D(c, "pairs");
  for (Outcome o : kAllOutcomes) {
    const double n = D(c["outcomes"], OutcomeName(o));
    t.rows.push_back({OutcomeName(o), Fmt(n, 10), pairs > 0 ? Pct(n / pairs) : "-"});
  }
  return t;
}

Table PercentileTable(const json& c) {
  Table t{{"Side", "count", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"}, {}};
  for (const char* side : {"primary", "shadow"}) {
    const json& l = c["latency"][side];
    t.rows.push_back({side, Fmt(D(l, "count"), 10), Fmt(D(l, "mean_ms")), Fmt(D(l, "p50_ms")),
                      Fmt(D(l, "p90_ms")), Fmt(D(l, "p95_ms")), Fmt(D(l, "p99_ms")),
                      Fmt(D(l, "p999_ms")), Fmt(D(l, "max_ms"))});
  }
  const json& d = c["latency"]["difference_ms"];
  t.rows.push_back({"shadow - primary (paired)", Fmt(D(d, "count"), 10), Fmt(D(d, "mean")),
                    Fmt(D(d, "p50")), Fmt(D(d, "p90")), "-", Fmt(D(d, "p99")), "-",
                    Fmt(D(d, "max"))});
  const json& r = c["latency"]["ratio"];
  t.rows.push_back({"shadow / primary (paired, ratio)", Fmt(D(r, "count"), 10), "-",
                    Fmt(D(r, "p50")), Fmt(D(r, "p90")), "-", Fmt(D(r, "p99")), "-",
                    Fmt(D(r, "max"))});
  return t;
}

Table TestTable(const json& c) {
  Table t{
      {"Test", "method", "statistic", "p-value", "shift (ms)", "CI low", "CI high", "level", "n"},
      {}};
  for (const auto& [name, key] :
       {std::pair{"Wilcoxon signed-rank (paired)", "wilcoxon_signed_rank"},
        std::pair{"Mann-Whitney U", "mann_whitney"}}) {
    const json& r = c["latency"][key];
    if (!r.value("valid", false)) {
      t.rows.push_back({name, "-", "-", "-", "-", "-", "-", "-", S(r, "note")});
      continue;
    }
    t.rows.push_back({name, r.value("exact", false) ? "exact" : "normal approx.",
                      NumOrDash(r, "statistic"), NumOrDash(r, "p_value"),
                      NumOrDash(r, "estimate_ms"), NumOrDash(r, "ci_low_ms"),
                      NumOrDash(r, "ci_high_ms"), Pct(D(r, "confidence")), Fmt(D(r, "n_y"), 10)});
  }
  return t;
}

Table ClassificationTable(const json& c) {
  Table t{{"Metric", "Value"}, {}};
  const json& k = c["classification"];
  if (U(k, "pairs") == 0) return t;
  t.rows = {{"classified pairs", Fmt(D(k, "pairs"), 10)},
            {"top-1 agreement", NumOrDash(k, "top1_agreement", true)},
            {"top-1 agreement, Wilson interval (" + Pct(D(k, "interval_level")) + ")",
             NumOrDash(k, "top1_agreement_low", true) + " - " +
                 NumOrDash(k, "top1_agreement_high", true)},
            {"top-1 flips", Fmt(D(k, "top1_flips"), 10)},
            {"mean top-k overlap", NumOrDash(k, "mean_topk_overlap")},
            {"mean / max abs probability diff",
             NumOrDash(k, "mean_max_abs_prob_diff") + " / " + NumOrDash(k, "max_abs_prob_diff")},
            {"mean total variation", NumOrDash(k, "mean_total_variation")},
            {"Jensen-Shannon distance mean / p99 / max",
             NumOrDash(k, "mean_js_distance") + " / " + NumOrDash(k, "p99_js_distance") + " / " +
                 NumOrDash(k, "max_js_distance")}};
  return t;
}

Table FlipTable(const json& c) {
  Table t{{"Primary margin (top1 - top2)", "Pairs", "Top-1 flips", "Flip rate"}, {}};
  for (const auto& b : c["classification"]["flips_by_primary_margin"]) {
    if (U(b, "pairs") == 0) continue;
    t.rows.push_back({"[" + Fmt(D(b, "margin_low")) + ", " + Fmt(D(b, "margin_high")) + ")",
                      Fmt(D(b, "pairs"), 10), Fmt(D(b, "flips"), 10), Pct(D(b, "flip_rate"))});
  }
  return t;
}

Table AccuracyTable(const json& c) {
  Table t{{"Labeled pairs", "Primary accuracy", "Shadow accuracy", "Delta (shadow - primary)",
           "Only primary right", "Only shadow right"},
          {}};
  const json& a = c["accuracy"];
  if (U(a, "labeled") == 0) return t;
  t.rows.push_back({Fmt(D(a, "labeled"), 10), NumOrDash(a, "primary", true),
                    NumOrDash(a, "shadow", true), NumOrDash(a, "delta", true),
                    Fmt(D(a, "only_primary_correct"), 10), Fmt(D(a, "only_shadow_correct"), 10)});
  return t;
}

std::string IntervalText(const json& i) {
  if (!i.is_object()) return "-";
  return NumOrDash(i, "estimate") + " [" + NumOrDash(i, "low") + ", " + NumOrDash(i, "high") + "]";
}

Table NumericTable(const json& c) {
  Table t{{"Kind", "Pairs", "Metrics"}, {}};
  const json& r = c["regression"];
  if (U(r, "pairs")) {
    t.rows.push_back({"regression", Fmt(D(r, "pairs"), 10),
                      "MAE " + NumOrDash(r, "mae") + ", RMSE " + NumOrDash(r, "rmse") +
                          ", max error " + NumOrDash(r, "max_error") + ", max relative error " +
                          NumOrDash(r, "max_rel_error") + ", bias (shadow - primary) " +
                          IntervalText(r.value("bias", json())) + ", beyond tolerance " +
                          NumOrDash(r, "beyond_tolerance_rate", true) + ", primary sd " +
                          NumOrDash(r, "primary_sd")});
    const json& truth = r.value("truth", json::object());
    if (U(truth, "pairs")) {
      t.rows.push_back({"regression vs true score (" + S(truth, "header") + ")",
                        Fmt(D(truth, "pairs"), 10),
                        "MAE primary " + NumOrDash(truth, "primary_mae") + ", shadow " +
                            NumOrDash(truth, "shadow_mae") + ", shadow / primary " +
                            IntervalText(truth.value("mae_ratio", json()))});
    }
  }
  const json& e = c["embedding"];
  if (U(e, "pairs")) {
    t.rows.push_back({"embedding", Fmt(D(e, "pairs"), 10),
                      "cosine mean " + NumOrDash(e, "mean_cosine") + ", min " +
                          NumOrDash(e, "min_cosine") + "; relative L2 mean " +
                          NumOrDash(e, "mean_rel_l2") + ", max " + NumOrDash(e, "max_rel_l2")});
  }
  return t;
}

Table StatusTable(const json& c) {
  Table t{{"Primary status", "Shadow status", "Pairs"}, {}};
  for (const auto& m : c["status_matrix"]) {
    t.rows.push_back({Fmt(D(m, "primary"), 10), Fmt(D(m, "shadow"), 10), Fmt(D(m, "count"), 10)});
  }
  return t;
}

Table CountersTable(const json& c) {
  Table t{{"Counter", "Value"}, {}};
  const json& k = c["counters"];
  if (U(k, "records") == 0) return t;
  t.rows.push_back({"gateway instances", Fmt(D(k, "instances"), 10)});
  t.rows.push_back({"requests received", Fmt(D(k, "requests"), 12)});
  t.rows.push_back({"mirrored", Fmt(D(k, "mirrored_total"), 12)});
  t.rows.push_back({"mirrored fraction", NumOrDash(k, "mirrored_fraction", true)});
  for (auto it = k["not_mirrored"].begin(); it != k["not_mirrored"].end(); ++it) {
    t.rows.push_back({"not mirrored: " + it.key(), Fmt(it->get<double>(), 12)});
  }
  for (auto it = k["mirrored"].begin(); it != k["mirrored"].end(); ++it) {
    t.rows.push_back({"mirrored: " + it.key(), Fmt(it->get<double>(), 12)});
  }
  t.rows.push_back({"pair records dropped by the sink", Fmt(D(k, "sink_dropped"), 12)});
  const json not_captured = k.value("not_captured", json::object());  // older reports lack it
  for (auto it = not_captured.begin(); it != not_captured.end(); ++it) {
    t.rows.push_back({"not captured: " + it.key(), Fmt(it->get<double>(), 12)});
  }
  return t;
}

// "reason n, reason n" of a {reason: n} object's nonzero counts; "" when none.
std::string NonzeroCounts(const json& counts) {
  std::string text;
  if (!counts.is_object()) return text;
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    if (it->get<uint64_t>())
      text += (text.empty() ? "" : ", ") + it.key() + " " + Fmt(it->get<double>(), 12);
  }
  return text;
}

Table CoverageTable(const json& c) {
  Table t{{"Route", "Mirror", "Requests", "Sampled out", "Judged", "Left out", "Coverage",
           "Not captured (request bodies)"},
          {}};
  if (!c.contains("coverage")) return t;
  for (const auto& p : c["coverage"]["parts"]) {
    std::string left = NonzeroCounts(p["left_out"]);
    if (U(p, "sink_dropped")) {
      left +=
          (left.empty() ? "" : ", ") + std::string("sink dropped ") + Fmt(D(p, "sink_dropped"), 12);
    }
    const std::string not_captured = NonzeroCounts(p.value("not_captured", json()));
    t.rows.push_back({S(p, "route"), S(p, "mirror"), Fmt(D(p, "requests"), 12),
                      Fmt(D(p, "sampled_out"), 12), Fmt(D(p, "captured"), 12),
                      left.empty() ? "-" : left, Pct(D(p, "fraction")),
                      not_captured.empty() ? "-" : not_captured});
  }
  return t;
}

Table LatencyEvidenceTable(const json& c) {
  Table t{{"Statistic (shadow vs primary)", "Estimate [interval]", "Interval level"}, {}};
  const json& lat = c["latency"];
  auto row = [&](const std::string& name, const json& i) {
    if (!i.is_object() || !i.value("valid", false)) return;
    t.rows.push_back({name, IntervalText(i), Pct(D(i, "level"))});
  };
  row("median shift / primary median (paired Hodges-Lehmann)", lat.value("relative_shift", json()));
  for (const auto& [name, key] : {std::pair{"p50 ratio", "p50"}, std::pair{"p99 ratio", "p99"},
                                  std::pair{"p99.9 ratio", "p999"}}) {
    row(name, lat["quantile_ratios"].value(key, json()));
  }
  const json& tail = lat.value("tail_excess", json());
  if (tail.is_object() && tail.value("valid", false)) {
    row("tail excess: share above " + Fmt(D(tail, "multiple")) + " x primary p99 (" +
            Fmt(D(tail, "threshold_ms")) + " ms), shadow - primary",
        tail);
  }
  return t;
}

// The worst slice behind each per-slice gate: where a regression hides.
Table WorstSliceTable(const json& report) {
  Table t{{"Gate", "Status", "Worst slice"}, {}};
  for (const auto& g : report["verdict"]["gates"]) {
    if (S(g, "metric").rfind("worst_", 0) != 0) continue;
    t.rows.push_back({S(g, "name"), S(g, "status"), S(g, "reason")});
  }
  return t;
}

// --- the run by day and hour (comparison.run_timeline) ------------------------------------

std::string WindowText(const json& w) {
  std::string s = S(w, "name") + " (day " + std::to_string(w.value("run_day", int64_t{0})) +
                  " of the run): agreement " + Pct(D(w, "agreement_rate")) + ", failures " +
                  Pct(D(w, "failure_rate")) + " of " + Fmt(D(w, "eligible"), 12) +
                  " eligible pairs";
  if (w.contains("p99_ratio")) s += ", p99 ratio " + Fmt(D(w["p99_ratio"], "estimate"), 3);
  return s;
}

std::string RunTimelineHeadline(const json& c) {
  const json& t = c.value("run_timeline", json::object());
  if (!t.contains("days")) return "No run timeline.";
  std::string s = "Days and hours in UTC. " + S(t, "rule") + " (min_pairs " +
                  Fmt(D(t, "min_pairs"), 12) + ").\n\n";
  for (const auto& [series, unit] : {std::pair{"days", "day"}, std::pair{"hours", "hour"}}) {
    const json& x = t[series];
    const std::string unit_s(unit);
    s += "- Worst " + unit_s + ": " +
         (x["worst"].is_object() ? WindowText(x["worst"])
                                 : "none (no " + unit_s + " has enough pairs)") +
         "\n";
    if (x["slowest"].is_object())
      s += "- Slowest " + unit_s + ": " + WindowText(x["slowest"]) + "\n";
    if (U(x, "dropped_pairs")) {
      s += "- " + Fmt(D(x, "dropped_pairs"), 12) + " pairs older than the newest " +
           Fmt(D(x, "max_windows"), 12) + " " + series + " are not in the " + unit_s +
           " view (they count everywhere else)\n";
    }
  }
  return s;
}

Table DayTable(const json& c) {
  Table t{{"Day", "Date (UTC)", "Pairs", "Agreement", "Failures", "Top-1 agreement",
           "Primary p50/p99 (ms)", "Shadow p50/p99 (ms)", "p99 ratio", "Coverage"},
          {}};
  const json& t_ = c.value("run_timeline", json::object());
  if (!t_.contains("days")) return t;
  for (const auto& w : t_["days"]["windows"]) {
    t.rows.push_back({std::to_string(w.value("run_day", int64_t{0})) +
                          (w.value("judged", false) ? "" : " (few)"),
                      S(w, "name"), Fmt(D(w, "pairs"), 12), Pct(D(w, "agreement_rate")),
                      Pct(D(w, "failure_rate")), NumOrDash(w, "top1_agreement", true),
                      Fmt(D(w["primary"], "p50_ms")) + " / " + Fmt(D(w["primary"], "p99_ms")),
                      Fmt(D(w["shadow"], "p50_ms")) + " / " + Fmt(D(w["shadow"], "p99_ms")),
                      w.contains("p99_ratio") ? Fmt(D(w["p99_ratio"], "estimate"), 3) : "-",
                      NumOrDash(w, "coverage", true)});
  }
  return t;
}

// The `limit` worst judged hours by the timeline's rule.
Table WorstHoursTable(const json& c, size_t limit) {
  Table t{{"Hour (UTC)", "Day", "Pairs", "Agreement", "Failures", "Primary p99 (ms)",
           "Shadow p99 (ms)"},
          {}};
  const json& t_ = c.value("run_timeline", json::object());
  if (!t_.contains("hours")) return t;
  std::vector<const json*> judged;
  for (const auto& w : t_["hours"]["windows"]) {
    if (w.value("judged", false)) judged.push_back(&w);
  }
  std::stable_sort(judged.begin(), judged.end(), [](const json* a, const json* b) {
    if (D(*a, "agreement_rate") != D(*b, "agreement_rate"))
      return D(*a, "agreement_rate") < D(*b, "agreement_rate");
    return D(*a, "failure_rate") > D(*b, "failure_rate");
  });
  for (const json* w : judged) {
    if (t.rows.size() >= limit) break;
    t.rows.push_back({S(*w, "name"), std::to_string(w->value("run_day", int64_t{0})),
                      Fmt(D(*w, "pairs"), 12), Pct(D(*w, "agreement_rate")),
                      Pct(D(*w, "failure_rate")), Fmt(D((*w)["primary"], "p99_ms")),
                      Fmt(D((*w)["shadow"], "p99_ms"))});
  }
  return t;
}

Table FieldTable(const json& c, size_t limit) {
  Table t{{"Field", "Pairs"}, {}};
  for (const auto& f : c["differing_fields"]) {
    if (t.rows.size() >= limit) break;
    t.rows.push_back({S(f, "field"), Fmt(D(f, "count"), 10)});
  }
  return t;
}

Table ReasonTable(const json& c, size_t limit) {
  Table t{{"Reason", "Pairs"}, {}};
  for (const auto& f : c["reasons"]) {
    if (t.rows.size() >= limit) break;
    t.rows.push_back({S(f, "reason"), Fmt(D(f, "count"), 10)});
  }
  return t;
}

Table SliceTable(const json& slices, size_t limit) {
  Table t{{"Slice", "Pairs", "Mismatch rate", "Top-1 agreement", "Primary acc.", "Shadow acc.",
           "Primary p50/p99 (ms)", "Shadow p50/p99 (ms)"},
          {}};
  for (const auto& s : slices) {
    if (t.rows.size() >= limit) break;
    t.rows.push_back({S(s, "name"), Fmt(D(s, "pairs"), 10), Pct(D(s, "mismatch_rate")),
                      NumOrDash(s, "top1_agreement", true), NumOrDash(s, "primary_accuracy", true),
                      NumOrDash(s, "shadow_accuracy", true),
                      Fmt(D(s["primary"], "p50_ms")) + " / " + Fmt(D(s["primary"], "p99_ms")),
                      Fmt(D(s["shadow"], "p50_ms")) + " / " + Fmt(D(s["shadow"], "p99_ms"))});
  }
  return t;
}

Table NoiseTable(const json& c) {
  Table t{{"Metric or field", "Candidate", "Noise floor", "Threshold", "Flagged"}, {}};
  if (!c.contains("noise_floor")) return t;
  const json& nf = c["noise_floor"];
  auto row = [&](const std::string& name, const json& r) {
    auto num = [&](const char* k) {
      return r.contains(k) && r[k].is_number() ? Fmt(r[k].get<double>()) : std::string("-");
    };
    t.rows.push_back({name, num("candidate"), num("noise"), num("threshold"),
                      r.value("flagged", false) ? "yes" : "no"});
  };
  for (auto it = nf["metrics"].begin(); it != nf["metrics"].end(); ++it) row(it.key(), *it);
  for (const auto& f : nf["fields"]) row("field " + S(f, "field") + " (share of pairs)", f);
  return t;
}

std::string NoiseHeadline(const json& c) {
  if (!c.contains("noise_floor")) return "No noise floor configured.";
  const json& nf = c["noise_floor"];
  return "Noise mirror `" + S(nf, "mirror") + "`: " + Fmt(D(nf, "pairs"), 12) +
         " primary-vs-primary pairs; flagged when candidate > noise x (1 + " + Fmt(D(nf, "rel")) +
         ") + " + Fmt(D(nf, "abs")) + ".";
}

// The report's "cutover_decisions" (CutoverDecisionsJson), one row each.
Table CutoverDecisionTable(const json& report) {
  Table t{{"Time (UTC)", "Instance", "Route", "Candidate", "Decision", "State", "Step", "Share",
           "Gate", "Value", "Bound", "Reason"},
          {}};
  for (const auto& d : report.value("cutover_decisions", json::array())) {
    const std::string gate = d.contains("gate") ? S(d, "gate") + " (" + S(d, "metric") + ")" : "-";
    const std::string bound =
        d.contains("bound") ? S(d, "bound_kind") + " " + NumOrDash(d, "bound") : "-";
    t.rows.push_back({S(d, "at"), S(d, "instance"), S(d, "route"), S(d, "mirror"), S(d, "decision"),
                      S(d, "state"), NumOrDash(d, "step"), Fmt(D(d, "share")) + "%", gate,
                      NumOrDash(d, "value"), bound, S(d, "reason")});
  }
  return t;
}

Table MalformedTable(const json& c) {
  Table t{{"Reason", "Lines"}, {}};
  for (auto it = c["malformed"]["reasons"].begin(); it != c["malformed"]["reasons"].end(); ++it) {
    t.rows.push_back({it.key(), Fmt(it->get<double>(), 10)});
  }
  return t;
}

Table ExampleTable(const json& c) {
  Table t{{"Id", "Route", "Outcome", "Reason", "Status p/s", "Latency p/s (ms)"}, {}};
  for (const auto& e : c["examples"]) {
    t.rows.push_back(
        {S(e, "id"), S(e, "route"), S(e, "outcome"), S(e, "reason"),
         Fmt(D(e["primary"], "status"), 4) + " / " + Fmt(D(e["shadow"], "status"), 4),
         Fmt(D(e["primary"], "latency_ms")) + " / " + Fmt(D(e["shadow"], "latency_ms"))});
  }
  return t;
}

std::string Headline(const json& report) {
  const json& c = report["comparison"];
  std::string s = "**Verdict: " + S(report["verdict"], "verdict") + "** (exit code " +
                  std::to_string(report["verdict"].value("exit_code", 2)) + ") over " +
                  Fmt(D(c, "pairs"), 12) + " pairs (" + Fmt(D(c["malformed"], "count"), 12) +
                  " malformed lines), " + Fmt(D(c["time"], "duration_s")) + " s of traffic.";
  for (const auto& note : report["verdict"].value("notes", json::array())) {
    s += "\n\n> **Note:** " + MdCell(note.get<std::string>());
  }
  return s;
}

// The headline's lines ("text\n\n- item\n- item") as HTML paragraphs and a list.
std::string MarkdownListHtml(const std::string& text) {
  std::string out, items;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (line.rfind("- ", 0) == 0) {
      items += "<li>" + HtmlEscape(line.substr(2)) + "</li>";
    } else if (!line.empty()) {
      out += "<p>" + HtmlEscape(line) + "</p>";
    }
    start = end + 1;
  }
  return out + (items.empty() ? "" : "<ul>" + items + "</ul>");
}

// --- chart data --------------------------------------------------------------------------------

Series CdfSeries(const json& side, const std::string& name, const char* color) {
  Series s{name, color, {}};
  double total = 0;
  for (const auto& b : side["histogram"]) total += b[2].get<double>();
  double seen = 0;
  for (const auto& b : side["histogram"]) {
    if (s.points.empty()) s.points.emplace_back(std::max(b[0].get<double>(), 1e-3), 0.0);
    seen += b[2].get<double>();
    s.points.emplace_back(std::max(b[1].get<double>(), 1e-3), seen / total);
  }
  return s;
}

std::string HistogramChart(const json& c) {
  const json& p = c["latency"]["primary"];
  const json& s = c["latency"]["shadow"];
  double lo = INFINITY, hi = 0;
  for (const json* side : {&p, &s}) {
    for (const auto& b : (*side)["histogram"]) {
      lo = std::min(lo, std::max(b[0].get<double>(), 1e-3));
      hi = std::max(hi, b[1].get<double>());
    }
  }
  ChartOptions o{
      "Latency histogram (log-spaced bins)", "latency (ms)", "requests", false, false, 640, 300};
  if (!std::isfinite(lo) || hi <= lo) return BarChart({}, {}, o);
  constexpr int kBins = 30;
  const double step = std::log(hi / lo) / kBins;
  std::vector<std::string> cats;
  for (int i = 0; i < kBins; ++i) cats.push_back(Fmt(lo * std::exp(step * i), 3));
  std::vector<Series> series;
  for (const auto& [side, name, color] :
       {std::tuple{&p, "primary", kPrimaryColor}, std::tuple{&s, "shadow", kShadowColor}}) {
    Series sr{name, color, {}};
    std::vector<double> bins(kBins, 0);
    for (const auto& b : (*side)["histogram"]) {
      const double mid = std::max((b[0].get<double>() + b[1].get<double>()) / 2, lo);
      int i = static_cast<int>(std::log(mid / lo) / step);
      bins[std::clamp(i, 0, kBins - 1)] += b[2].get<double>();
    }
    for (int i = 0; i < kBins; ++i) sr.points.emplace_back(i, bins[i]);
    series.push_back(std::move(sr));
  }
  return BarChart(cats, series, o);
}

std::string Charts(const json& c) {
  std::string s;
  const json& lat = c["latency"];
  // Percentiles per side.
  std::vector<std::string> pcts = {"p50", "p90", "p95", "p99", "p99.9", "max"};
  std::vector<Series> ps;
  for (const auto& [side, color] :
       {std::pair{"primary", kPrimaryColor}, std::pair{"shadow", kShadowColor}}) {
    Series sr{side, color, {}};
    int i = 0;
    for (const char* key : {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms"}) {
      sr.points.emplace_back(i++, D(lat[side], key));
    }
    ps.push_back(std::move(sr));
  }
  const bool has_latency = U(lat["primary"], "count") + U(lat["shadow"], "count") > 0;
  s += "<div class=\"charts\">";
  s += BarChart(has_latency ? pcts : std::vector<std::string>{}, ps,
                {"Latency percentiles", "percentile", "ms", false, false, 640, 300});
  s += LineChart(
      {CdfSeries(lat["primary"], "primary", kPrimaryColor),
       CdfSeries(lat["shadow"], "shadow", kShadowColor)},
      {"Latency CDF", "latency (ms, log scale)", "fraction of requests", true, false, 640, 300});
  s += HistogramChart(c);
  // Over time.
  const json& points = c["timeline"]["points"];
  bool has_top1 = false;
  for (const auto& p : points) has_top1 |= p["top1_agreement"].is_number();
  Series agree{has_top1 ? "top-1 agreement" : "agreement rate", "#2ca02c", {}};
  Series p99p{"primary p99", kPrimaryColor, {}}, p99s{"shadow p99", kShadowColor, {}};
  for (const auto& p : points) {
    const double t = D(p, "start_us") / 1e6;
    const json& a = has_top1 ? p["top1_agreement"] : p["agreement_rate"];
    if (a.is_number()) agree.points.emplace_back(t, a.get<double>());
    p99p.points.emplace_back(t, D(p, "primary_p99_ms"));
    p99s.points.emplace_back(t, D(p, "shadow_p99_ms"));
  }
  const std::string window = Fmt(D(c["timeline"], "window_s")) + " s windows";
  s += LineChart({agree}, {"Agreement over time (" + window + ")", "time (UTC)", "fraction", false,
                           true, 640, 300});
  s += LineChart({p99p, p99s}, {"p99 latency over time (" + window + ")", "time (UTC)", "ms", false,
                                true, 640, 300});
  // Differing fields.
  std::vector<std::string> cats;
  Series fields{"pairs", "#d62728", {}};
  for (const auto& f : c["differing_fields"]) {
    if (cats.size() >= 12) break;
    cats.push_back(S(f, "field"));
    fields.points.emplace_back(static_cast<double>(cats.size()), D(f, "count"));
  }
  s += BarChart(cats, {fields}, {"Top differing fields", "field", "pairs", false, false, 640, 300});
  s += "</div>";
  // Confusion matrix.
  const json& conf = c["classification"]["confusion"];
  std::vector<std::string> labels = conf["labels"].get<std::vector<std::string>>();
  std::vector<std::vector<double>> rows;
  for (const auto& r : conf["rows_primary_cols_shadow"])
    rows.push_back(r.get<std::vector<double>>());
  s += "<h3>Confusion matrix (rows: primary top-1, columns: shadow top-1)</h3>";
  s += ConfusionMatrix(
      labels, rows,
      {"Primary x shadow top-1", "shadow top-1 label", "primary", false, false, 640, 300});
  return s;
}

// Agreement and p99 by day and agreement by hour, x in days of the run.
std::string RunTimelineCharts(const json& c) {
  const json& t = c.value("run_timeline", json::object());
  if (!t.contains("days")) return "";
  Series agree{"agreement rate", "#2ca02c", {}}, hour_agree{"agreement rate", "#2ca02c", {}};
  Series p99p{"primary p99", kPrimaryColor, {}}, p99s{"shadow p99", kShadowColor, {}};
  for (const auto& w : t["days"]["windows"]) {
    const double x = D(w, "run_day");
    if (w.value("judged", false)) agree.points.emplace_back(x, D(w, "agreement_rate"));
    p99p.points.emplace_back(x, D(w["primary"], "p99_ms"));
    p99s.points.emplace_back(x, D(w["shadow"], "p99_ms"));
  }
  for (const auto& w : t["hours"]["windows"]) {
    if (!w.value("judged", false)) continue;
    // The day of the run plus the hour's share of its day.
    const double hour_of_day = std::fmod(D(w, "start_us"), 86400e6) / 86400e6;
    hour_agree.points.emplace_back(D(w, "run_day") + hour_of_day, D(w, "agreement_rate"));
  }
  std::string s = "<div class=\"charts\">";
  s += LineChart(agree.points.empty() ? std::vector<Series>{} : std::vector<Series>{agree},
                 {"Agreement by day", "day of the run", "fraction", false, false, 640, 300});
  s += LineChart(p99p.points.empty() ? std::vector<Series>{} : std::vector<Series>{p99p, p99s},
                 {"p99 latency by day", "day of the run", "ms", false, false, 640, 300});
  s +=
      LineChart(hour_agree.points.empty() ? std::vector<Series>{} : std::vector<Series>{hour_agree},
                {"Agreement by hour", "day of the run", "fraction", false, false, 640, 300});
  return s + "</div>";
}

std::string ExamplesHtml(const json& c) {
  std::string s;
  for (const auto& e : c["examples"]) {
    s += "<details class=\"example\"><summary>" + HtmlEscape(S(e, "outcome")) + ": " +
         HtmlEscape(S(e, "reason")) + " <code>" + HtmlEscape(S(e, "id")) + "</code></summary>";
    s += "<p>route <code>" + HtmlEscape(S(e, "route")) + "</code>, mirror <code>" +
         HtmlEscape(S(e, "mirror")) + "</code>, request " + Fmt(D(e["request"], "size"), 12) +
         " bytes, sha256 <code>" + HtmlEscape(S(e["request"], "sha256").substr(0, 16)) +
         "</code>, headers <code>" + HtmlEscape(e["request"]["headers"].dump()) + "</code></p>";
    s += "<div class=\"bodies\"><div><h4>primary (" + Fmt(D(e["primary"], "status"), 4) + ", " +
         Fmt(D(e["primary"], "latency_ms")) + " ms)</h4><pre>" +
         HtmlEscape(S(e["primary"], "body")) + "</pre></div><div><h4>shadow (" +
         Fmt(D(e["shadow"], "status"), 4) + ", " + Fmt(D(e["shadow"], "latency_ms")) +
         " ms)</h4><pre>" + HtmlEscape(S(e["shadow"], "body")) + "</pre></div></div></details>";
  }
  return s.empty() ? "<p class=\"none\">none</p>" : s;
}

constexpr const char* kCss =
    R"(body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.verdict{display:inline-block;padding:6px 14px;border-radius:4px;font-weight:bold;color:#fff}
.v-PASS,.st-PASS{background:#2ca02c;color:#fff}.v-FAIL,.st-FAIL{background:#d62728;color:#fff}
.v-MARGINAL,.st-MARGINAL{background:#e6a700;color:#fff}.v-INSUFFICIENT_DATA,.st-INSUFFICIENT_DATA{background:#7f7f7f;color:#fff}
.st-NOT_APPLICABLE{background:#eee;color:#555}.note{background:#fff6d6;border-left:4px solid #e6a700;padding:6px 10px}
.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{border:1px solid #eee;background:#fff}
.ct{font-size:13px;font-weight:bold}.al{font-size:11px;fill:#444}.tk{font-size:10px;fill:#555}.lg{font-size:11px}
.nd{font-size:14px;fill:#999}.ax{stroke:#333}.gr{stroke:#eee}.cv{font-size:10px}
pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;word-break:break-all;max-height:240px;overflow:auto}
table.gates td{text-align:left}
pre.capacity{max-height:none;word-break:normal}
.bodies{display:flex;gap:12px}.bodies>div{flex:1;min-width:0}.none{color:#888}
)";

}  // namespace

json BuildReport(const Comparison& comparison, const GateConfig& gates,
                 const ReportInputs& inputs) {
  json c = comparison.ToJson();
  const Verdict verdict = EvaluateGates(gates, c);
  return {{"schema", kReportSchema},
          {"run", inputs.run},
          {"generated_at", FormatUtc(std::time(nullptr), "%Y-%m-%dT%H:%M:%SZ")},
          {"inputs",
           {{"pairs", inputs.pair_files},
            {"rules", inputs.rules_file},
            {"gates", inputs.gates_file},
            {"mirrors", inputs.mirrors}}},
          {"verdict", VerdictJson(verdict)},
          {"comparison", std::move(c)}};
}

json CutoverDecisionsJson(std::vector<CutoverDecision> decisions) {
  std::stable_sort(decisions.begin(), decisions.end(),
                   [](const auto& a, const auto& b) { return a.ts_us < b.ts_us; });
  json out = json::array();
  for (const auto& d : decisions) {
    json line = json::parse(EncodePairLogLine(d));
    line.erase("v");
    line.erase("type");
    line["at"] = FormatUtcMicros(d.ts_us);
    out.push_back(std::move(line));
  }
  return out;
}

std::string RenderMarkdown(const json& report) {
  const json& c = report["comparison"];
  std::string s = "# shadowgate comparison: " + S(report, "run") + "\n\n" + Headline(report) +
                  "\n\nGenerated " + S(report, "generated_at") + " by `sg-compare`.\n";
  s += "\n## Gates\n\n" + Markdown(GateTable(report));
  s += "\n## Where a regression could hide (worst slices)\n\n" + Markdown(WorstSliceTable(report));
  s += "\n## The run by day\n\n" + RunTimelineHeadline(c) + "\n" + Markdown(DayTable(c));
  s += "\nThe worst hours:\n\n" + Markdown(WorstHoursTable(c, 10));
  s += "\n## Coverage\n\n" + Markdown(CoverageTable(c));
  s += "\n## Requests\n\n" + Markdown(StatsTable(c));
  s += "\n## Outcomes\n\n" + Markdown(OutcomeTable(c));
  s += "\n## Classification\n\n" + Markdown(ClassificationTable(c));
  s += "\nTop-1 flips by the primary's decision margin:\n\n" + Markdown(FlipTable(c));
  s += "\n## Accuracy (true label from `" + S(c["accuracy"], "label_header") + "`)\n\n" +
       Markdown(AccuracyTable(c));
  s += "\n## Regression and embedding\n\n" + Markdown(NumericTable(c));
  s += "\n## Latency (ms)\n\n" + Markdown(PercentileTable(c));
  s += "\nWhat the latency gates judge:\n\n" + Markdown(LatencyEvidenceTable(c));
  s += "\nRank tests on a reservoir of " + Fmt(D(c["latency"]["reservoir"], "size"), 12) + " of " +
       Fmt(D(c["latency"]["reservoir"], "seen"), 12) +
       " paired latencies (shift = shadow - primary):\n\n" + Markdown(TestTable(c));
  s += "\n## Noise floor\n\n" + NoiseHeadline(c) + "\n\n" + Markdown(NoiseTable(c));
  s += "\n## Status codes\n\n" + Markdown(StatusTable(c));
  s += "\n## Mirroring (gateway counters)\n\n" + Markdown(CountersTable(c));
  s += "\n## Top differing fields\n\n" + Markdown(FieldTable(c, 20));
  s += "\n## Reasons\n\n" + Markdown(ReasonTable(c, 20));
  for (const auto& [title, key] :
       {std::pair{"Route", "route"}, std::pair{"Model (mirror)", "model"},
        std::pair{"Primary label", "primary_label"}, std::pair{"True label", "true_label"},
        std::pair{"Request size", "request_size"}, std::pair{"Time", "time"}}) {
    s += "\n## Slices by " + std::string(title) + "\n\n" +
         Markdown(SliceTable(c["slices"][key], 30));
  }
  s += "\n## Malformed records\n\n" + Markdown(MalformedTable(c));
  s += "\n## Worst examples\n\n" + Markdown(ExampleTable(c));
  if (report.contains("cutover_decisions")) {
    s += "\n## Cutover decisions\n\n" + Markdown(CutoverDecisionTable(report));
  }
  if (report.contains("capacity")) {
    s += "\n## Capacity and cost\n\n" + RenderCapacityText(report["capacity"]);
  }
  return s;
}

std::string RenderHtml(const json& report) {
  const json& c = report["comparison"];
  const std::string verdict = S(report["verdict"], "verdict");
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>shadowgate comparison: " +
      HtmlEscape(S(report, "run")) + "</title><style>" + kCss + "</style></head><body>\n";
  s += "<h1>shadowgate comparison: " + HtmlEscape(S(report, "run")) + "</h1>\n";
  s += "<p><span id=\"verdict\" class=\"verdict v-" + HtmlEscape(verdict) + "\">" +
       HtmlEscape(verdict) + "</span> exit code " +
       std::to_string(report["verdict"].value("exit_code", 2)) + " &middot; " +
       Fmt(D(c, "pairs"), 12) + " pairs &middot; " + Fmt(D(c["malformed"], "count"), 12) +
       " malformed lines &middot; " + Fmt(D(c["time"], "duration_s")) +
       " s of traffic &middot; generated " + HtmlEscape(S(report, "generated_at")) + "</p>\n";
  for (const auto& note : report["verdict"].value("notes", json::array())) {
    s += "<p class=\"note\"><b>Note:</b> " + HtmlEscape(note.get<std::string>()) + "</p>\n";
  }
  s += "<h2>Gates</h2>" + Html(GateTable(report), "gates");
  s += "<h2>Where a regression could hide (worst slices)</h2>" +
       Html(WorstSliceTable(report), "gates");
  s += "<h2>The run by day</h2>" + MarkdownListHtml(RunTimelineHeadline(c)) + Html(DayTable(c)) +
       RunTimelineCharts(c) + "<h3>The worst hours</h3>" + Html(WorstHoursTable(c, 10));
  s += "<h2>Coverage</h2>" + Html(CoverageTable(c));
  s += "<h2>Requests</h2>" + Html(StatsTable(c));
  s += "<h2>Charts</h2>" + Charts(c);
  s += "<h2>Outcomes</h2>" + Html(OutcomeTable(c));
  s += "<h2>Classification</h2>" + Html(ClassificationTable(c));
  s += "<h3>Top-1 flips by the primary's decision margin</h3>" + Html(FlipTable(c));
  s += "<h2>Accuracy</h2>" + Html(AccuracyTable(c));
  s += "<h2>Regression and embedding</h2>" + Html(NumericTable(c));
  s += "<h2>Latency (ms)</h2>" + Html(PercentileTable(c));
  s += "<h3>What the latency gates judge</h3>" + Html(LatencyEvidenceTable(c));
  s += "<h3>Rank tests (shift = shadow - primary)</h3>" + Html(TestTable(c));
  s += "<h2>Noise floor</h2><p>" + HtmlEscape(NoiseHeadline(c)) + "</p>" + Html(NoiseTable(c));
  s += "<h2>Status codes</h2>" + Html(StatusTable(c));
  s += "<h2>Mirroring (gateway counters)</h2>" + Html(CountersTable(c));
  s += "<h2>Top differing fields</h2>" + Html(FieldTable(c, 30));
  s += "<h2>Reasons</h2>" + Html(ReasonTable(c, 30));
  for (const auto& [title, key] :
       {std::pair{"route", "route"}, std::pair{"model (mirror)", "model"},
        std::pair{"primary label", "primary_label"}, std::pair{"true label", "true_label"},
        std::pair{"request size", "request_size"}, std::pair{"time", "time"}}) {
    s += "<h2>Slices by " + std::string(title) + "</h2>" + Html(SliceTable(c["slices"][key], 64));
  }
  s += "<h2>Malformed records</h2>" + Html(MalformedTable(c));
  s += "<h2>Worst examples</h2><p>Request bodies are never shown; configured headers and JSON "
       "fields are redacted and response bodies are cut.</p>" +
       ExamplesHtml(c);
  if (report.contains("cutover_decisions")) {
    s += "<h2>Cutover decisions</h2>" + Html(CutoverDecisionTable(report));
  }
  if (report.contains("capacity")) {
    s += "<h2>Capacity and cost</h2><pre class=\"capacity\">" +
         HtmlEscape(RenderCapacityText(report["capacity"])) + "</pre>";
  }
  s += "\n</body></html>\n";
  return s;
}

bool WriteReports(const json& report, const std::filesystem::path& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = dir.string() + ": " + ec.message();
    return false;
  }
  const std::pair<const char*, std::string> files[] = {
      {"report.json", report.dump(2, ' ', false, json::error_handler_t::replace) + "\n"},
      {"report.md", RenderMarkdown(report)},
      {"report.html", RenderHtml(report)}};
  for (const auto& [name, content] : files) {
    const auto path = dir / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) {
      *error = path.string() + ": write failed";
      return false;
    }
  }
  return true;
}

}  // namespace sg::comparator
