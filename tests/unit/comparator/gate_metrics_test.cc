// The gates on the comparison's new metrics: how each is judged (estimate, near end, far end),
// which slice is the worst, the Bonferroni level, the noise floor's widening, coverage capping
// the verdict, and what "not applicable" and "too few pairs" do to the verdict.
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "comparator/gate_metrics.h"
#include "comparator/gates.h"
#include "comparator/rank_tests.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

GateConfig Gates(const std::string& gates) {
  return ParseConfig<GateConfig>(R"({"gates": [)" + gates + "]}", "gates.json", ParseGateConfig);
}

GateResult One(const std::string& gate, const json& c) {
  const GateConfig config = Gates(gate);
  Verdict v = EvaluateGates(config, c);
  GateResult r = v.gates.at(0);
  r.gate = nullptr;  // points into `config`
  return r;
}

json Rates(uint64_t eligible, uint64_t mismatch) {
  return {{"pairs", eligible},
          {"rates", {{"eligible_pairs", eligible}}},
          {"outcomes", {{"mismatch", mismatch}, {"unparseable", 0}}}};
}

TEST(GateJudge, EstimateNearEndAndFarEnd) {
  // 30 mismatches in 1000: 0.03, one-sided 95% Wilson bounds [0.02232, 0.04022].
  const json c = Rates(1000, 30);
  const double low = WilsonLowerBound(30, 1000, 0.95), high = WilsonUpperBound(30, 1000, 0.95);
  // R: prop.test(30, 1000, correct = FALSE, alternative = "greater" / "less")$conf.int
  EXPECT_NEAR(low, 0.022316797647016, 1e-12);
  EXPECT_NEAR(high, 0.0402195509983589, 1e-12);
  auto r = One(R"({"metric": "mismatch_rate", "max": 0.025})", c);
  EXPECT_EQ(r.status, GateStatus::kFail);  // estimate 0.03 > 0.025
  r = One(R"({"metric": "mismatch_rate", "max": 0.025, "judge": "near_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kPass);  // 0.0223 is not beyond 0.025: not shown
  EXPECT_DOUBLE_EQ(*r.value, low);
  EXPECT_NE(r.reason.find("not significantly"), std::string::npos);
  r = One(R"({"metric": "mismatch_rate", "max": 0.02, "marginal": 0.025, "judge": "near_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kMarginal);  // beyond the bound, not the marginal bound
  r = One(R"({"metric": "mismatch_rate", "max": 0.015, "marginal": 0.02, "judge": "near_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kFail);
  r = One(R"({"metric": "mismatch_rate", "max": 0.04, "judge": "far_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kFail);  // 0.0402 > 0.04: not shown to be within
  EXPECT_DOUBLE_EQ(*r.value, high);
  r = One(R"({"metric": "mismatch_rate", "max": 0.035, "judge": "near_end", "confidence": 0.999})",
          c);
  EXPECT_NEAR(*r.value, WilsonLowerBound(30, 1000, 0.999), 1e-15);
}

TEST(GateJudge, ConfigErrorsNameTheField) {
  auto problems = [](const std::string& gate) {
    try {
      Gates(gate);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(problems(R"({"metric": "pairs", "min": 1, "judge": "near_end"})")
                .find("$.gates[0].judge: metric \"pairs\" has no interval"),
            std::string::npos);
  EXPECT_NE(problems(R"({"metric": "p99_ratio", "max": 1, "judge": "middle"})").find("judge"),
            std::string::npos);
  EXPECT_NE(problems(R"({"metric": "p99_ratio", "max": 1, "min_pairs": 10})").find("min_pairs"),
            std::string::npos);
  EXPECT_NE(problems(R"({"metric": "coverage", "min": 0.9, "fail_as": "pass"})").find("fail_as"),
            std::string::npos);
}

// Classification pairs for classes a..d, 200 each; `swapped` answers the wrong class on every one
// of its requests.
json Classes(const std::string& swapped, int swapped_pairs = 200) {
  auto config = std::make_shared<CompareConfig>(DefaultCompareConfig());
  Comparison c(config);
  int id = 0;
  for (const std::string label : {"a", "b", "c", "d"}) {
    const int n = label == swapped ? swapped_pairs : 200;
    for (int i = 0; i < n; ++i) {
      const json primary = {{label, 0.9}, {"z", 0.1}};
      const json shadow = label == swapped ? json{{"z", 0.9}, {label, 0.1}} : primary;
      auto pair = MakePair(std::to_string(id++), primary.dump(), shadow.dump());
      pair.ts_us += id * 1000;
      c.Add(pair);
    }
  }
  return c.ToJson();
}

TEST(WorstSlice, WorstClassAgreementFindsTheSwappedClass) {
  const json c = Classes("c", 40);
  const auto r = One(
      R"({"metric": "worst_class_agreement", "min": 0.9, "marginal": 0.8, "judge": "near_end"})",
      c);
  EXPECT_EQ(r.status, GateStatus::kFail);
  EXPECT_NE(r.reason.find("primary_label \"c\""), std::string::npos) << r.reason;
  // Four classes judged: each at the Bonferroni level 1 - 0.05 / 4.
  EXPECT_NE(r.reason.find("Bonferroni over 4"), std::string::npos) << r.reason;
  EXPECT_NEAR(*r.value, WilsonUpperBound(0, 40, 1 - 0.05 / 4), 1e-12);
  // Below the per-slice minimum, the class is not judged at all.
  const auto small = One(
      R"({"metric": "worst_class_agreement", "min": 0.9, "judge": "near_end", "min_pairs": 41})",
      c);
  EXPECT_EQ(small.status, GateStatus::kPass);
  EXPECT_NE(small.reason.find("Bonferroni over 3"), std::string::npos) << small.reason;
  // No swap: every class agrees.
  EXPECT_EQ(
      One(R"({"metric": "worst_class_agreement", "min": 0.9, "judge": "near_end"})", Classes(""))
          .status,
      GateStatus::kPass);
}

TEST(WorstSlice, MismatchesConfinedToOneRouteFail) {
  auto config = std::make_shared<CompareConfig>(DefaultCompareConfig());
  Comparison c(config);
  for (int i = 0; i < 2000; ++i) {
    const bool small_route = i % 10 == 0;         // 10% of traffic
    const bool bad = small_route && i % 40 == 0;  // 25% of that route's answers differ
    auto pair = MakePair(std::to_string(i), R"({"a": 0.9, "b": 0.1})",
                         bad ? R"({"b": 0.9, "a": 0.1})" : R"({"a": 0.9, "b": 0.1})");
    pair.route = small_route ? "v2" : "v1";
    c.Add(pair);
  }
  const json j = c.ToJson();
  EXPECT_NEAR(j["rates"]["mismatch_rate"].get<double>(), 0.025, 1e-12);
  const auto r = One(
      R"({"metric": "worst_slice_mismatch_rate", "max": 0.05, "marginal": 0.1, "judge": "near_end"})",
      j);
  EXPECT_EQ(r.status, GateStatus::kFail);
  EXPECT_NE(r.reason.find("route \"v2\""), std::string::npos) << r.reason;
}

TEST(NoiseFloor, WidensTheBoundToWhatThePrimaryDoesToItself) {
  json c = Rates(10000, 300);  // 3% mismatches, near end ~2.73%
  const std::string gate =
      R"({"metric": "mismatch_rate", "max": 0.01, "marginal": 0.02, "judge": "near_end"})";
  EXPECT_EQ(One(gate, c).status, GateStatus::kFail);
  // The primary disagrees with itself on 2.5%: bound 0.025 * 1.5 + 0.001 = 0.0385, marginal
  // moved by as much.
  c["noise_floor"] = {{"valid", true},
                      {"rel", 0.5},
                      {"abs", 0.001},
                      {"metrics", {{"mismatch_rate", {{"noise", 0.025}}}}}};
  const auto r = One(gate, c);
  EXPECT_EQ(r.status, GateStatus::kPass);
  EXPECT_NEAR(*r.bound, 0.0385, 1e-12);
  EXPECT_NEAR(*r.marginal, 0.0485, 1e-12);
  EXPECT_NE(r.reason.find("widened by the noise floor"), std::string::npos);
  // A quiet primary never tightens the bound.
  c["noise_floor"]["metrics"]["mismatch_rate"]["noise"] = 0.0;
  EXPECT_NEAR(*One(gate, c).bound, 0.01, 1e-15);
}

TEST(Verdict, CoverageCapsAtMarginalAndSaysWhy) {
  json c = Rates(1000, 0);
  c["coverage"] = {{"valid", true},
                   {"fraction", 0.6},
                   {"worst",
                    {{"route", "r"},
                     {"mirror", "m"},
                     {"captured", 600},
                     {"selected", 1000},
                     {"left_out", {{"overload", 400}}},
                     {"sink_dropped", 0}}}};
  const GateConfig gates = Gates(R"({"metric": "pairs", "min": 100},
      {"metric": "coverage", "min": 0.9, "fail_as": "marginal"},
      {"metric": "mismatch_rate", "max": 0.01})");
  const Verdict v = EvaluateGates(gates, c);
  EXPECT_EQ(v.verdict, GateStatus::kMarginal);
  EXPECT_EQ(v.gates[1].status, GateStatus::kMarginal);
  ASSERT_FALSE(v.notes.empty());
  EXPECT_NE(v.notes[0].find("left out: overload 400"), std::string::npos) << v.notes[0];
  // A real failure still fails.
  EXPECT_EQ(EvaluateGates(gates,
                          [&] {
                            json bad = c;
                            bad["outcomes"]["mismatch"] = 100;
                            return bad;
                          }())
                .verdict,
            GateStatus::kFail);
  // Without counters lines, coverage is not applicable and does not block.
  c.erase("coverage");
  EXPECT_EQ(EvaluateGates(gates, c).verdict, GateStatus::kPass);
}

TEST(Verdict, TooFewPairsTurnsEveryFailureIntoInsufficientData) {
  const json c = Rates(40, 20);
  const Verdict v = EvaluateGates(Gates(R"({"metric": "pairs", "min": 200},
                             {"metric": "mismatch_rate", "max": 0.01, "judge": "near_end"})"),
                                  c);
  EXPECT_EQ(v.verdict, GateStatus::kInsufficientData);
  EXPECT_EQ(v.gates[1].status, GateStatus::kInsufficientData);
  EXPECT_NE(v.gates[1].reason.find("too few pairs"), std::string::npos);
  ASSERT_FALSE(v.notes.empty());
  EXPECT_EQ(v.notes[0].rfind("Too few pairs to judge", 0), 0u);
}

TEST(ScoreGates, BiasIsJudgedOnItsSize) {
  json c;
  c["regression"] = {{"interval_level", 0.98},
                     {"bias", {{"estimate", -0.05}}},
                     {"primary_sd", 0.2},
                     {"bias_rel", {{"estimate", -0.25}, {"low", -0.27}, {"high", -0.23}}}};
  auto r =
      One(R"({"metric": "score_bias_rel", "max": 0.05, "marginal": 0.1, "judge": "near_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kFail);
  EXPECT_DOUBLE_EQ(*r.value, 0.23);
  // An interval across 0: no bias shown.
  c["regression"]["bias_rel"] = {{"estimate", 0.01}, {"low", -0.02}, {"high", 0.04}};
  r = One(R"({"metric": "score_bias_rel", "max": 0.05, "judge": "near_end"})", c);
  EXPECT_EQ(r.status, GateStatus::kPass);
  EXPECT_DOUBLE_EQ(*r.value, 0);
  EXPECT_EQ(One(R"({"metric": "score_true_mae_ratio", "max": 1.05})", c).status,
            GateStatus::kNotApplicable);
}

TEST(DefaultGates, ParseAndNameOnlyKnownMetrics) {
  const GateConfig g = DefaultGateConfig();
  ASSERT_GE(g.gates.size(), 15u);
  EXPECT_EQ(g.gates[0].metric, "pairs");
  for (const auto& gate : g.gates) {
    EXPECT_NE(std::find(GateMetricNames().begin(), GateMetricNames().end(), gate.metric),
              GateMetricNames().end());
  }
  EXPECT_EQ(DefaultCompareConfig().rules.at(0).kind, CompareKind::kAuto);
}

}  // namespace
}  // namespace sg::comparator
