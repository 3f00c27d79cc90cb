// The comparison's aggregates one by one: intervals, slices and time windows, coverage, scores,
// and how the auto rule reads a scorer. Expected values come from the definitions (worked out in
// the comments), from published examples, or from R.
#include <cmath>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "comparator/coverage.h"
#include "comparator/intervals.h"
#include "comparator/latency_histogram.h"
#include "comparator/slices.h"
#include "comparator/value_stats.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

TEST(Intervals, QuantileRanksFollowTheBinomial) {
  // n = 1000, q = 0.5, 95%: z = 1.959964, sd = sqrt(250) = 15.811; 500.5 -/+ 30.99.
  EXPECT_EQ(QuantileRanks(1000, 0.5, 0.95), (std::pair<uint64_t, uint64_t>{469, 532}));
  // Too few values above the 99th percentile of 50 to bound it from above: high rank n + 1.
  EXPECT_EQ(QuantileRanks(50, 0.99, 0.95).second, 51u);
}

TEST(Intervals, QuantileIntervalCoversTheTrueQuantileAsOftenAsItsLevel) {
  // 2000 samples of 1000 exponential latencies (mean 5 ms): the 95% interval of the median and
  // of the p99 must hold the true quantile in about 95% of the samples (not 60%, not 100%).
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> exp(1.0 / 5000);
  const double true_median = 5000 * std::log(2.0), true_p99 = 5000 * std::log(100.0);
  int median_hits = 0, p99_hits = 0;
  constexpr int kSamples = 2000;
  for (int s = 0; s < kSamples; ++s) {
    LatencyHistogram h;
    for (int i = 0; i < 1000; ++i) h.Record(static_cast<int64_t>(exp(rng)));
    const Interval m = QuantileInterval(h, 0.5, 0.95);
    const Interval p = QuantileInterval(h, 0.99, 0.95);
    median_hits += m.low <= true_median && true_median <= m.high;
    p99_hits += p.low <= true_p99 && true_p99 <= p.high;
  }
  EXPECT_NEAR(median_hits / double{kSamples}, 0.95, 0.02);
  EXPECT_NEAR(p99_hits / double{kSamples}, 0.95, 0.025);
}

TEST(Intervals, QuantileRatioCombinesBothIntervals) {
  LatencyHistogram a, b;
  for (int i = 1; i <= 1000; ++i) {
    a.Record(i * 10);
    b.Record(i * 20);
  }
  const Interval r = QuantileRatioInterval(b, a, 0.5, 0.95);
  ASSERT_TRUE(r.valid);
  EXPECT_NEAR(r.estimate, 2.0, 0.01);
  // Each side at 97.5%: ranks 500.5 -/+ 2.2414 * 15.81 = [465, 537] on both sides.
  EXPECT_NEAR(r.low, b.ValueAtRank(465) / a.ValueAtRank(537), 1e-12);
  EXPECT_NEAR(r.high, b.ValueAtRank(537) / a.ValueAtRank(465), 1e-12);
  EXPECT_FALSE(QuantileRatioInterval(b, LatencyHistogram{}, 0.5, 0.95).valid);
}

TEST(Intervals, NewcombeMatchesThePublishedExample) {
  // Newcombe (1998), Statistics in Medicine 17:873, table II example (b): 56/70 - 48/80,
  // method 10 (hybrid score): 0.0524 to 0.3339.
  const Interval d = NewcombeDifference(56, 70, 48, 80, 0.95);
  EXPECT_NEAR(d.estimate, 0.2, 1e-12);
  EXPECT_NEAR(d.low, 0.0524, 5e-5);
  EXPECT_NEAR(d.high, 0.3339, 5e-5);
}

TEST(Intervals, WilsonIntervalMatchesR) {
  // R: prop.test(50, 1000, correct = FALSE, conf.level = 0.9)$conf.int (two-sided 90% = two
  // one-sided 95% bounds): 0.0398282154961751 0.0626002034196094.
  const Interval w = WilsonInterval(50, 1000, 0.90);
  EXPECT_NEAR(w.low, 0.0398282154961751, 1e-12);
  EXPECT_NEAR(w.high, 0.0626002034196094, 1e-12);
}

TEST(Intervals, MeanIntervalIsTheNormalApproximation) {
  // Values 1..5: mean 3, sd sqrt(2.5), 95%: 3 -/+ 1.959964 * sqrt(2.5 / 5).
  const Interval m = MeanInterval(5, 15, 55, 0.95);
  ASSERT_TRUE(m.valid);
  EXPECT_DOUBLE_EQ(m.estimate, 3);
  EXPECT_NEAR(m.high - 3, 1.959964 * std::sqrt(0.5), 1e-6);
  EXPECT_FALSE(MeanInterval(1, 3, 9, 0.95).valid);
  EXPECT_DOUBLE_EQ(BonferroniLevel(0.95, 10), 0.995);
  EXPECT_DOUBLE_EQ(BonferroniLevel(0.95, 1), 0.95);
}

TEST(LatencyHistogram, CountAboveCountsWholeBucketsAbove) {
  LatencyHistogram h;
  for (int v : {100, 200, 300, 5000, 5010, 9000}) h.Record(v);
  EXPECT_EQ(h.CountAbove(250), 4u);   // 300, 5000, 5010, 9000
  EXPECT_EQ(h.CountAbove(5000), 1u);  // 5010 shares 5000's bucket (4992..5023): not counted
  EXPECT_EQ(h.CountAbove(9000), 0u);
  EXPECT_EQ(h.CountAbove(-1), 6u);
}

SliceStats SliceOf(int pairs, int failed) {
  SliceStats s;
  CompareConfig config;
  for (int i = 0; i < pairs; ++i) {
    auto pair = MakePair(std::to_string(i), "{}", "{}");
    PairJudgement j;
    if (i < failed) {
      pair.shadow.outcome = "shadow_error";
      pair.shadow.status = 0;
      j.outcome = Outcome::kShadowError;
    }
    s.Add(pair, j, "");
  }
  return s;
}

TEST(Slices, SliceMapIsBoundedAndMerges) {
  SliceMap a(2), b(2);
  a.At("x").Merge(SliceOf(3, 1));
  a.At("y").Merge(SliceOf(2, 0));
  a.At("z").Merge(SliceOf(4, 0));  // the third value goes to (other)
  EXPECT_EQ(a.slices().size(), 3u);
  EXPECT_EQ(a.slices().at("(other)").pairs, 4u);
  b.At("x").Merge(SliceOf(1, 1));
  a.Merge(b);
  EXPECT_EQ(a.slices().at("x").pairs, 4u);
  EXPECT_EQ(a.slices().at("x").failed(), 2u);
  EXPECT_EQ(a.Judgeable(3), 2u);  // x (4) and (other) (4)
}

TEST(Slices, JudgingWindowsHoldEnoughPairsAndCoverTheRun) {
  Timeline t(1000000);  // 1 s windows
  for (int second = 0; second < 100; ++second) {
    const int n = second == 99 ? 3 : 10;  // a short tail
    for (int i = 0; i < n; ++i) {
      t.At(int64_t{second} * 1000000).Merge(SliceOf(1, second >= 40 && second < 44 ? 1 : 0));
    }
  }
  // 993 pairs, at most 20 windows: each at least max(30, 993 / 20 = 49) pairs, so 5 s (50
  // pairs) each; the last 43 pairs are too few alone and fold into the window before.
  const auto windows = t.JudgingWindows(30, 20);
  ASSERT_EQ(windows.size(), 19u);
  uint64_t total = 0;
  for (const auto& [name, s] : windows) {
    EXPECT_GE(s.pairs, 49u) << name;
    total += s.pairs;
  }
  EXPECT_EQ(total, 993u);
  EXPECT_EQ(windows[8].first, "+40s..+45s");
  EXPECT_EQ(windows[8].second.failed(), 40u);
  EXPECT_EQ(windows.back().first, "+90s..+100s");
  EXPECT_EQ(windows.back().second.pairs, 93u);
}

TEST(Slices, MedianPairedRatioAndItsInterval) {
  // Requests of very different cost (1 to 200 ms), the candidate 2x slower on each, give or take
  // 0-3%: the paired ratio sees the 2x through the requests' own spread.
  SliceStats s;
  for (int i = 1; i <= 200; ++i) {
    const int64_t primary = 1000 * i;
    const int64_t shadow = 2 * primary + primary * (i % 4) / 100;
    s.Add(MakePair(std::to_string(i), "{}", "{}", primary, shadow), PairJudgement{}, "");
  }
  const json j = SliceJson("all", s, 0.95, 30);
  ASSERT_TRUE(j.contains("p50_ratio"));
  EXPECT_EQ(j["p50_ratio"]["paired"], 200);
  const double est = j["p50_ratio"]["estimate"].get<double>();
  EXPECT_GE(est, 2.0);
  EXPECT_LE(est, 2.03);
  EXPECT_LE(j["p50_ratio"]["low"].get<double>(), est);
  EXPECT_GE(j["p50_ratio"]["high"].get<double>(), est);
  EXPECT_GE(j["p50_ratio"]["low"].get<double>(), 1.99);  // not the 1 to 200 spread of the costs
  EXPECT_FALSE(SliceJson("all", s, 0.95, 201).contains("p50_ratio"));
}

MirrorCounters Counters(const std::string& instance, const std::string& route, uint64_t requests,
                        uint64_t sampled_out, uint64_t overload, uint64_t sink_dropped) {
  MirrorCounters m;
  m.ts_us = 1;
  m.instance = instance;
  m.route = route;
  m.mirror = "cpu";
  m.requests = requests;
  m.not_mirrored = {{"sampled_out", sampled_out}, {"overload", overload}};
  m.mirrored = {{"ok", requests - sampled_out - overload}};
  m.sink_dropped = sink_dropped;
  return m;
}

TEST(Coverage, RandomSamplingIsNotABiasDropsAre) {
  Coverage c;
  // Route a: 1000 requests, 600 sampled out (random), 40 overloaded, 10 records dropped by the
  // sink: of the 400 sampling selected, 360 - 10 = 350 reached the log: 87.5%.
  c.Add(Counters("gw1", "a", 1000, 600, 40, 10));
  // Route b: sampled only: 100%.
  c.Add(Counters("gw1", "b", 500, 250, 0, 0));
  json out;
  c.ToJson(out);
  EXPECT_TRUE(out["coverage"]["valid"].get<bool>());
  EXPECT_DOUBLE_EQ(out["coverage"]["fraction"].get<double>(), 350.0 / 400.0);
  EXPECT_EQ(out["coverage"]["worst"]["route"], "a");
  EXPECT_EQ(out["coverage"]["worst"]["left_out"]["overload"], 40);
  // A later line from the same instance replaces the earlier one (counters are cumulative);
  // another instance adds.
  auto later = Counters("gw1", "a", 2000, 1200, 40, 10);
  later.ts_us = 2;
  c.Add(later);
  c.Add(Counters("gw2", "a", 1000, 500, 0, 0));
  c.ToJson(out);
  // Route a: selected 800 + 500, captured 750 + 500.
  EXPECT_DOUBLE_EQ(out["coverage"]["fraction"].get<double>(), 1250.0 / 1300.0);
  json none;
  Coverage().ToJson(none);
  EXPECT_FALSE(none["coverage"]["valid"].get<bool>());
}

TEST(ScoreStats, EveryPairCountsAndTheTruthIsCompared) {
  ScoreStats s;
  // Primary scores 0.2, 0.4, 0.6, 0.8 (sd 0.2582); shadow +0.1 on each; truth = primary - 0.1,
  // so the primary's error is 0.1 and the shadow's 0.2 on every pair: MAE ratio 2.
  for (double p : {0.2, 0.4, 0.6, 0.8}) {
    s.Add(CompareValues({p}, {p + 0.1}, 1e-4, 0), p - 0.1);
  }
  // A byte-identical pair still counts, with error 0.
  s.Add(CompareValues({0.5}, {0.5}, 1e-4, 0), std::nullopt);
  const json j = s.ToJson(0.95, "x-true-score");
  EXPECT_EQ(j["pairs"], 5);
  EXPECT_EQ(j["beyond_tolerance"], 4);
  EXPECT_NEAR(j["mae"].get<double>(), 0.4 / 5, 1e-12);
  EXPECT_NEAR(j["bias"]["estimate"].get<double>(), 0.4 / 5, 1e-12);
  EXPECT_EQ(j["truth"]["pairs"], 4);
  EXPECT_NEAR(j["truth"]["primary_mae"].get<double>(), 0.1, 1e-12);
  EXPECT_NEAR(j["truth"]["shadow_mae"].get<double>(), 0.2, 1e-12);
  EXPECT_NEAR(j["truth"]["mae_ratio"]["estimate"].get<double>(), 2.0, 1e-9);
  ScoreStats merged;
  merged.Merge(s);
  EXPECT_EQ(merged, s);
}

std::shared_ptr<CompareConfig> AutoConfig() {
  auto c = std::make_shared<CompareConfig>(DefaultCompareConfig());
  c->window = std::chrono::seconds(1);
  return c;
}

TEST(AutoRule, ReadsEachAnswerByItsShape) {
  const auto config = AutoConfig();
  auto classify = JudgePair(
      *config, MakePair("1", R"({"cat": 0.9, "dog": 0.1})", R"({"dog": 0.6, "cat": 0.4})"));
  ASSERT_TRUE(classify.classification);
  EXPECT_EQ(classify.outcome, Outcome::kMismatch);
  // A scorer is a number, not a one-label distribution (that would always agree).
  auto score = JudgePair(*config, MakePair("2", R"({"score": 0.73})", R"({"score": 0.91})"));
  ASSERT_TRUE(score.regression);
  EXPECT_EQ(score.outcome, Outcome::kMismatch);
  EXPECT_NEAR(score.regression->max_error, 0.18, 1e-12);
  auto batch = JudgePair(*config, MakePair("3", R"([{"score": 0.5}])", R"([{"score": 0.50001}])"));
  ASSERT_TRUE(batch.regression);
  EXPECT_EQ(batch.outcome, Outcome::kWithinTolerance);
  auto bad = JudgePair(*config, MakePair("4", R"({"score": 0.5})", R"({"error": "oom"})"));
  EXPECT_EQ(bad.outcome, Outcome::kUnparseable);
  auto other = JudgePair(*config, MakePair("5", R"({"boxes": [1, 2]})", R"({"boxes": [1, 3]})"));
  EXPECT_EQ(other.outcome, Outcome::kMismatch);
  EXPECT_EQ(other.fields, std::vector<std::string>{"$.boxes[*]"});
  // A classification rule judges a scorer's answer as a number too.
  CompareConfig cls;
  CompareRule rule;
  rule.name = "cls";
  rule.kind = CompareKind::kClassification;
  cls.rules.push_back(rule);
  EXPECT_TRUE(JudgePair(cls, MakePair("6", R"({"score": 0.1})", R"({"score": 0.9})")).regression);
  // ... within 1e-3 (the rule's abs and rel of 0 are meant for probabilities, not scores).
  EXPECT_EQ(JudgePair(cls, MakePair("7", R"({"score": 0.5})", R"({"score": 0.5004})")).outcome,
            Outcome::kWithinTolerance);
  EXPECT_EQ(JudgePair(cls, MakePair("8", R"({"score": 0.5})", R"({"score": 0.502})")).outcome,
            Outcome::kMismatch);
}

TEST(AutoRule, RuleShapeSelectsTheRule) {
  CompareConfig config;
  CompareRule scores;
  scores.name = "scores";
  scores.kind = CompareKind::kRegression;
  scores.shape = BodyShape::kScorer;
  CompareRule rest;
  rest.name = "rest";
  rest.kind = CompareKind::kJson;
  config.rules = {scores, rest};
  EXPECT_EQ(FindRule(config, MakePair("1", R"({"score": 1})", "{}"))->name, "scores");
  EXPECT_EQ(FindRule(config, MakePair("2", R"({"a": 1})", "{}"))->name, "rest");
}

TEST(ComparisonJson, ScorerStreamReportsEveryPairsError) {
  Comparison c(AutoConfig());
  for (int i = 0; i < 100; ++i) {
    const double p = 0.01 * i;
    auto pair = MakePair(std::to_string(i), json{{"score", p}}.dump(),
                         json{{"score", i % 2 ? p : p + 0.02}}.dump());
    pair.request.headers["x-true-score"] = std::to_string(p);
    c.Add(pair);
  }
  const json j = c.ToJson();
  EXPECT_EQ(j["regression"]["pairs"], 100);
  EXPECT_NEAR(j["regression"]["mae"].get<double>(), 0.01, 1e-9);
  EXPECT_EQ(j["regression"]["truth"]["pairs"], 100);
  EXPECT_NEAR(j["regression"]["truth"]["primary_mae"].get<double>(), 0, 1e-6);
  EXPECT_EQ(j["outcomes"]["match"], 50);
  EXPECT_EQ(j["outcomes"]["mismatch"], 50);
}

}  // namespace
}  // namespace sg::comparator
