#include "comparator/gates.h"

#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/rank_tests.h"
#include "tests/support/test_support.h"

namespace sg::comparator {
namespace {

using nlohmann::json;

GateConfig Gates(const std::string& text) {
  return ParseConfig<GateConfig>(text, "gates.json", ParseGateConfig);
}

// A comparison object with just the fields gates read.
json Comparison(uint64_t pairs, uint64_t classified, uint64_t flips, uint64_t mismatch,
                uint64_t shadow_error = 0) {
  return {{"pairs", pairs},
          {"malformed", {{"count", 0}}},
          {"rates", {{"eligible_pairs", pairs}}},
          {"outcomes",
           {{"match", pairs - mismatch - shadow_error},
            {"within_tolerance", 0},
            {"mismatch", mismatch},
            {"unparseable", 0},
            {"shadow_error", shadow_error},
            {"shadow_timeout", 0},
            {"primary_error", 0}}},
          {"classification", {{"pairs", classified}, {"top1_flips", flips}}},
          {"accuracy", {{"labeled", 0}}},
          {"latency",
           {{"primary", {{"count", pairs}, {"p99_ms", 10.0}}},
            {"shadow", {{"count", pairs}, {"p99_ms", 15.0}}},
            {"p99_ratio", 1.5},
            {"wilcoxon_signed_rank",
             {{"valid", true},
              {"estimate_ms", 3.0},
              {"ci_low_ms", 2.0},
              {"ci_high_ms", 4.0},
              {"p_value", 0.001},
              {"confidence", 0.98}}}}}};
}

GateStatus One(const std::string& gate, const json& c) {
  return EvaluateGates(Gates(R"({"gates": [)" + gate + "]}"), c).gates.at(0).status;
}

TEST(Gates, BoundsAreInclusiveAtTheEdge) {
  const json c = Comparison(1000, 1000, 20, 50);  // agreement 0.98, mismatch 0.05
  EXPECT_EQ(One(R"({"metric": "top1_agreement", "min": 0.98})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "top1_agreement", "min": 0.9801})", c), GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "top1_agreement", "min": 0.9801, "marginal": 0.98})", c),
            GateStatus::kMarginal);
  EXPECT_EQ(One(R"({"metric": "mismatch_rate", "max": 0.05})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "mismatch_rate", "max": 0.0499})", c), GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "mismatch_rate", "max": 0.0499, "marginal": 0.05})", c),
            GateStatus::kMarginal);
  EXPECT_EQ(One(R"({"metric": "pairs", "min": 1000})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "pairs", "min": 1001})", c), GateStatus::kInsufficientData);
  EXPECT_EQ(One(R"({"metric": "p99_ratio", "max": 1.5})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "p99_ratio", "max": 1.49})", c), GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "shadow_p99_ms", "max": 15})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "shadow_p99_ms", "max": 14.9})", c), GateStatus::kFail);
}

TEST(Gates, WilsonBoundIsUsedWithConfidence) {
  // With "confidence", a rate is judged on its one-sided Wilson score bound. Expected values
  // from R 4.2 (not from the code under test):
  //   prop.test(980, 1000, correct=FALSE, alternative="greater", conf.level=0.95)$conf.int[1]
  //   prop.test(980, 1000, correct=FALSE, alternative="greater", conf.level=0.99)$conf.int[1]
  //   prop.test(50, 1000, correct=FALSE, alternative="less", conf.level=0.95)$conf.int[2]
  constexpr double kAgreementLower95 = 0.97131816614898414;
  constexpr double kAgreementLower99 = 0.96682487103562398;
  constexpr double kMismatchUpper95 = 0.062600203419609382;
  const json c = Comparison(1000, 1000, 20, 50);  // agreement 0.98, mismatch 0.05
  auto v = EvaluateGates(
      Gates(R"({"gates": [{"metric": "top1_agreement", "min": 0.97, "confidence": 0.95}]})"), c);
  ASSERT_TRUE(v.gates[0].value);
  EXPECT_NEAR(*v.gates[0].value, kAgreementLower95, 1e-12);
  EXPECT_EQ(v.gates[0].status, GateStatus::kPass);
  // The bound, not the estimate (0.98), meets the minimum.
  EXPECT_EQ(One(R"({"metric": "top1_agreement", "confidence": 0.95, "min": 0.9713})", c),
            GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "top1_agreement", "confidence": 0.95, "min": 0.9714})", c),
            GateStatus::kFail);
  // A higher confidence widens the interval: the same minimum fails.
  v = EvaluateGates(
      Gates(R"({"gates": [{"metric": "top1_agreement", "min": 0.97, "confidence": 0.99}]})"), c);
  ASSERT_TRUE(v.gates[0].value);
  EXPECT_NEAR(*v.gates[0].value, kAgreementLower99, 1e-12);
  EXPECT_EQ(v.gates[0].status, GateStatus::kFail);
  // Upper bound for a rate judged with "max".
  v = EvaluateGates(
      Gates(R"({"gates": [{"metric": "mismatch_rate", "max": 0.06, "confidence": 0.95}]})"), c);
  ASSERT_TRUE(v.gates[0].value);
  EXPECT_NEAR(*v.gates[0].value, kMismatchUpper95, 1e-12);
  EXPECT_EQ(v.gates[0].status, GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "mismatch_rate", "confidence": 0.95, "max": 0.0627})", c),
            GateStatus::kPass);
}

TEST(Gates, LatencyShiftUsesTheInterval) {
  // latency_shift_ms is judged on its interval's near end: only a confident regression counts.
  const json c = Comparison(100, 100, 0, 0);  // shift 3, CI [2, 4]
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 4})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 2.5})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 2})", c), GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 1.99})", c), GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 1.5, "marginal": 2})", c),
            GateStatus::kMarginal);
  // Judged on the far end instead, the whole interval must be within the bound.
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 3.5, "judge": "far_end"})", c),
            GateStatus::kFail);
  EXPECT_EQ(
      One(R"({"metric": "latency_shift_ms", "max": 3, "marginal": 4, "judge": "far_end"})", c),
      GateStatus::kMarginal);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 2.5, "judge": "estimate"})", c),
            GateStatus::kFail);
  json invalid = c;
  invalid["latency"]["wilcoxon_signed_rank"]["valid"] = false;
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 4})", invalid),
            GateStatus::kNotApplicable);
  EXPECT_EQ(One(R"({"metric": "latency_shift_ms", "max": 4, "required": true})", invalid),
            GateStatus::kInsufficientData);
}

TEST(Gates, VerdictPrecedence) {
  const std::string gates = R"({"gates": [
      {"metric": "pairs", "min": 100},
      {"metric": "top1_agreement", "min": 0.99, "marginal": 0.95},
      {"metric": "shadow_error_rate", "max": 0.01}]})";
  EXPECT_EQ(EvaluateGates(Gates(gates), Comparison(1000, 1000, 5, 0)).verdict, GateStatus::kPass);
  EXPECT_EQ(EvaluateGates(Gates(gates), Comparison(1000, 1000, 30, 0)).verdict,
            GateStatus::kMarginal);
  EXPECT_EQ(EvaluateGates(Gates(gates), Comparison(1000, 1000, 100, 0)).verdict, GateStatus::kFail);
  // Too few pairs wins over a failing gate.
  EXPECT_EQ(EvaluateGates(Gates(gates), Comparison(99, 99, 50, 0, 50)).verdict,
            GateStatus::kInsufficientData);
  // No classification data: that gate is not applicable and does not block the verdict (it
  // says so in a note), unless the gates file requires it; a failing gate still fails.
  const Verdict no_classes = EvaluateGates(Gates(gates), Comparison(1000, 0, 0, 0));
  EXPECT_EQ(no_classes.verdict, GateStatus::kPass);
  EXPECT_EQ(no_classes.gates[1].status, GateStatus::kNotApplicable);
  ASSERT_EQ(no_classes.notes.size(), 1u);
  EXPECT_NE(no_classes.notes[0].find("no classification pairs"), std::string::npos);
  const std::string required = R"({"gates": [{"metric": "pairs", "min": 100},
      {"metric": "top1_agreement", "min": 0.99, "required": true}]})";
  EXPECT_EQ(EvaluateGates(Gates(required), Comparison(1000, 0, 0, 0)).verdict,
            GateStatus::kInsufficientData);
  EXPECT_EQ(EvaluateGates(Gates(gates), Comparison(1000, 0, 0, 0, 100)).verdict, GateStatus::kFail);
  EXPECT_EQ(VerdictExitCode(GateStatus::kPass), 0);
  EXPECT_EQ(VerdictExitCode(GateStatus::kFail), 1);
  EXPECT_EQ(VerdictExitCode(GateStatus::kMarginal), 3);
  EXPECT_EQ(VerdictExitCode(GateStatus::kInsufficientData), 4);
}

TEST(Gates, AccuracyDeltaWithConfidence) {
  json c = Comparison(1000, 1000, 0, 0);
  // 1000 labeled pairs: primary right 900, shadow right 890; discordant: 30 only primary,
  // 20 only shadow. d = -0.01, se = sqrt(50 - 100/1000)/1000 = 0.00706399...
  c["accuracy"] = {{"labeled", 1000},
                   {"primary", 0.9},
                   {"shadow", 0.89},
                   {"delta", -0.01},
                   {"only_primary_correct", 30},
                   {"only_shadow_correct", 20}};
  auto v = EvaluateGates(
      Gates(R"({"gates": [{"metric": "accuracy_delta", "min": -0.03, "confidence": 0.95}]})"), c);
  // Hand computed: -0.01 - 1.6448536269514722 * 0.0070639932049797 = -0.021619...
  EXPECT_NEAR(*v.gates[0].value, -0.01 - 1.6448536269514722 * std::sqrt(49.9) / 1000, 1e-12);
  EXPECT_EQ(v.gates[0].status, GateStatus::kPass);
  EXPECT_EQ(One(R"({"metric": "accuracy_delta", "min": -0.02, "confidence": 0.95})", c),
            GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "accuracy_delta", "min": -0.02})", c), GateStatus::kPass);
  const auto ci = PairedDifferenceInterval(20, 30, 1000, 0.95);
  EXPECT_NEAR(ci.estimate, -0.01, 1e-15);
  EXPECT_NEAR(ci.high, -0.01 + 1.6448536269514722 * std::sqrt(49.9) / 1000, 1e-12);
  EXPECT_EQ(PairedDifferenceInterval(0, 0, 0, 0.95).low, 0);
}

TEST(Gates, NoiseFlags) {
  json c = Comparison(1000, 1000, 0, 0);
  EXPECT_EQ(One(R"({"metric": "noise_flags", "max": 0})", c), GateStatus::kNotApplicable);
  c["noise_floor"] = {{"valid", true}, {"flagged", 0}, {"mirror", "secondary"}, {"pairs", 10}};
  EXPECT_EQ(One(R"({"metric": "noise_flags", "max": 0})", c), GateStatus::kPass);
  c["noise_floor"]["flagged"] = 1;
  EXPECT_EQ(One(R"({"metric": "noise_flags", "max": 0})", c), GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "noise_flags", "max": 0, "marginal": 1})", c), GateStatus::kMarginal);
}

TEST(Gates, CommittedConfigsLoad) {
  for (const char* name :
       {"configs/gates.json", "configs/gates-strict.json", "configs/gates-student.json"}) {
    GateConfig g;
    EXPECT_NO_THROW(g = LoadGateConfig((sg::testing::SourceDir() / name).string())) << name;
    EXPECT_GE(g.gates.size(), 5u) << name;
  }
}

TEST(Gates, ConfigErrorsNameThePath) {
  try {
    Gates(R"({"gates": [{"metric": "top1_agreement", "min": 0.9, "max": 1},
                        {"metric": "nope", "max": 1},
                        {"metric": "pairs", "min": 1, "typo": 2},
                        {"metric": "top1_agreement", "min": 0.9, "marginal": 0.95},
                        {"metric": "pairs", "min": 3, "confidence": 0.9}]})");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("gates.json: $.gates[0]: needs exactly one of"), std::string::npos) << what;
    EXPECT_NE(what.find("$.gates[1].metric: unknown metric \"nope\""), std::string::npos) << what;
    EXPECT_NE(what.find("$.gates[2].typo: unknown key"), std::string::npos) << what;
    EXPECT_NE(what.find("$.gates[3].marginal: must be <= min"), std::string::npos) << what;
    EXPECT_NE(what.find("$.gates[4].confidence: only proportion metrics"), std::string::npos)
        << what;
  }
  EXPECT_THROW(Gates(R"({"gates": []})"), ConfigError);
  EXPECT_THROW(Gates(R"({"gate": []})"), ConfigError);
}

}  // namespace
}  // namespace sg::comparator
