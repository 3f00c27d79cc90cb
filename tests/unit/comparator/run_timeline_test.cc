// The run timeline (comparator/run_timeline.h): calendar hours and days, the memory bound and
// what falls out of it, exact merging in any order, coverage per day from the counters'
// differences, the worst and slowest window by the documented rule, and the worst_window_* gates.
#include "comparator/run_timeline.h"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "comparator/gates.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

constexpr int64_t kHour = RunTimeline::kHourUs;
constexpr int64_t kDay = RunTimeline::kDayUs;
// 2026-11-18 00:00:00 UTC: 1795000000 s is 2026-11-18 13:46:40.
constexpr int64_t kMidnight = (1795000000000000 / kDay) * kDay;

constexpr const char* kAgree = R"({"Coat": 0.9, "Bag": 0.1})";
constexpr const char* kFlip = R"({"Bag": 0.9, "Coat": 0.1})";

PairRecord At(int64_t ts_us, bool agree, int64_t shadow_us = 6000) {
  static int id = 0;
  PairRecord p =
      MakePair("p" + std::to_string(++id), kAgree, agree ? kAgree : kFlip, 5000, shadow_us);
  p.ts_us = ts_us;
  return p;
}

std::shared_ptr<CompareConfig> Config(uint64_t min_window_pairs = 10) {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  c->rules.push_back(r);
  c->min_window_pairs = min_window_pairs;
  return c;
}

GateResult One(const std::string& gate, const json& c) {
  const GateConfig config =
      ParseConfig<GateConfig>(R"({"gates": [)" + gate + "]}", "gates.json", ParseGateConfig);
  GateResult r = EvaluateGates(config, c).gates.at(0);
  r.gate = nullptr;  // points into `config`
  return r;
}

TEST(RunTimeline, WindowsAreUtcHoursAndDaysNumberedFromTheFirstDay) {
  Comparison c(Config());
  c.Add(At(kMidnight + 13 * kHour + 5, true));
  c.Add(At(kMidnight + 13 * kHour + int64_t{59} * 60'000'000, true));
  c.Add(At(kMidnight + 2 * kDay + 23 * kHour, false));
  const json t = c.ToJson()["run_timeline"];
  EXPECT_EQ(t["first_day"], "2026-11-18");
  const json& days = t["days"]["windows"];
  ASSERT_EQ(days.size(), 2u);  // days without pairs have no window
  EXPECT_EQ(days[0]["name"], "2026-11-18");
  EXPECT_EQ(days[0]["run_day"], 1);
  EXPECT_EQ(days[0]["pairs"], 2);
  EXPECT_EQ(days[1]["name"], "2026-11-20");
  EXPECT_EQ(days[1]["run_day"], 3);
  EXPECT_EQ(days[1]["agreement_rate"], 0.0);
  const json& hours = t["hours"]["windows"];
  ASSERT_EQ(hours.size(), 2u);
  EXPECT_EQ(hours[0]["name"], "2026-11-18 13:00Z");
  EXPECT_EQ(hours[0]["pairs"], 2);
  EXPECT_EQ(hours[1]["name"], "2026-11-20 23:00Z");
  EXPECT_EQ(hours[1]["run_day"], 3);
  EXPECT_EQ(t["days"]["width_s"], 86400);
  EXPECT_EQ(t["hours"]["max_windows"], 1080);
  EXPECT_EQ(t["days"]["max_windows"], 400);
}

TEST(RunTimeline, KeepsTheNewestWindowsAndCountsTheRestAsDropped) {
  RunTimeline t(/*max_hours=*/5, /*max_days=*/3);
  PairJudgement j;
  j.outcome = Outcome::kMatch;
  // 10 days, 4 pairs a day at 00:00, 06:00, 12:00, 18:00.
  for (int d = 0; d < 10; ++d) {
    for (int h = 0; h < 24; h += 6) t.Add(At(kMidnight + d * kDay + h * kHour, true), j, "");
  }
  ASSERT_EQ(t.days().windows().size(), 3u);
  EXPECT_EQ(t.days().windows().begin()->first, kMidnight / kDay + 7);  // days 8, 9, 10
  EXPECT_EQ(t.days().dropped(), 28u);
  // The newest 5 hours end at day 10 18:00: only 18:00 (14:00..18:00) has a pair.
  ASSERT_EQ(t.hours().windows().size(), 1u);
  EXPECT_EQ(t.hours().dropped(), 39u);
  // A late pair before the kept range is dropped, not kept.
  t.Add(At(kMidnight, true), j, "");
  EXPECT_EQ(t.days().windows().size(), 3u);
  EXPECT_EQ(t.days().dropped(), 29u);
  const json out = t.ToJson(1, 0.98);
  EXPECT_EQ(out["days"]["dropped_pairs"], 29);
  EXPECT_EQ(out["days"]["windows"][0]["run_day"], 8);  // numbered from the first day seen
}

TEST(RunTimeline, MergeIsExactInAnyOrder) {
  // Pairs over 12 days, in shuffled order, into shards merged in two orders: the state equals
  // one timeline fed every pair, although the bound (6 days, 30 hours) evicts in between.
  std::mt19937_64 rng(3);
  std::vector<PairRecord> pairs;
  for (int i = 0; i < 600; ++i) {
    pairs.push_back(At(kMidnight + static_cast<int64_t>(rng() % (12 * kDay)), rng() % 10 != 0,
                       3000 + static_cast<int64_t>(rng() % 9000)));
  }
  std::shuffle(pairs.begin(), pairs.end(), rng);
  auto config = Config();
  auto judge = [&](RunTimeline& t, const PairRecord& p) { t.Add(p, JudgePair(*config, p), ""); };
  RunTimeline all(30, 6), a(30, 6), b(30, 6), c(30, 6);
  for (size_t i = 0; i < pairs.size(); ++i) {
    judge(all, pairs[i]);
    judge(i % 3 == 0 ? a : (i % 3 == 1 ? b : c), pairs[i]);
  }
  MirrorCounters m;
  m.instance = "h:1:1";
  m.route = "classify";
  m.mirror = "student";
  for (int d = 0; d < 12; ++d) {
    m.ts_us = kMidnight + d * kDay + kHour;
    m.requests = 100 * (d + 1);
    m.mirrored["ok"] = 90 * (d + 1);
    all.AddCounters(m);
    (d % 2 ? a : c).AddCounters(m);
  }
  RunTimeline abc(30, 6), cba(30, 6);
  abc.Merge(a);
  abc.Merge(b);
  abc.Merge(c);
  cba.Merge(c);
  cba.Merge(b);
  cba.Merge(a);
  EXPECT_TRUE(abc.SameState(all));
  EXPECT_TRUE(cba.SameState(all));
  EXPECT_EQ(abc.ToJson(10, 0.98), all.ToJson(10, 0.98));
  EXPECT_EQ(all.days().windows().size(), 6u);
  EXPECT_EQ(
      all.days().dropped() +
          [&] {
            uint64_t kept = 0;
            for (const auto& [k, s] : all.days().windows()) kept += s.pairs;
            return kept;
          }(),
      pairs.size());
  // The check can fail: a missing shard is another state.
  RunTimeline ab(30, 6);
  ab.Merge(a);
  ab.Merge(b);
  EXPECT_FALSE(ab.SameState(all));
}

TEST(RunTimeline, CoverageOfADayIsTheDifferenceOfTheCounters) {
  Comparison c(Config());
  for (int d = 0; d < 3; ++d) c.Add(At(kMidnight + d * kDay + kHour, true));
  auto counters = [](const std::string& instance, int64_t ts, uint64_t requests, uint64_t overload,
                     uint64_t ok) {
    MirrorCounters m;
    m.ts_us = ts;
    m.instance = instance;
    m.route = "classify";
    m.mirror = "student";
    m.requests = requests;
    m.not_mirrored = {{"sampled_out", 0}, {"overload", overload}};
    m.mirrored = {{"ok", ok}};
    return m;
  };
  // Day 1: 1000 requests, all mirrored (an earlier line of the day is superseded).
  c.AddCounters(counters("h:1:1", kMidnight + kHour, 10, 0, 10));
  c.AddCounters(counters("h:1:1", kMidnight + 20 * kHour, 1000, 0, 1000));
  // Day 2: 1000 more, 400 of them dropped for overload: 60% that day (cumulative 80%).
  c.AddCounters(counters("h:1:1", kMidnight + kDay + 20 * kHour, 2000, 400, 1600));
  // Day 3: the gateway restarted (a new instance): its first day counts from zero, 100%.
  c.AddCounters(counters("h:1:2", kMidnight + 2 * kDay + 20 * kHour, 500, 0, 500));
  const json j = c.ToJson();
  const json& days = j["run_timeline"]["days"]["windows"];
  ASSERT_EQ(days.size(), 3u);
  EXPECT_DOUBLE_EQ(days[0]["coverage"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(days[1]["coverage"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(days[2]["coverage"].get<double>(), 1.0);
  // The run: 2100 of 2500 selected requests were mirrored.
  EXPECT_DOUBLE_EQ(j["coverage"]["fraction"].get<double>(), 0.84);
}

// 24 days of 200 pairs a day, all agreeing, then the given days worse.
json Month(const std::function<bool(int day, int i)>& agree,
           const std::function<int64_t(int day, int i)>& shadow_us, uint64_t min_window_pairs) {
  Comparison c(Config(min_window_pairs));
  for (int d = 0; d < 24; ++d) {
    for (int i = 0; i < 200; ++i) {
      c.Add(At(kMidnight + d * kDay + i * (kDay / 200), agree(d, i), shadow_us(d, i)));
    }
  }
  // A quiet day with one pair, which disagrees: too few pairs to be named.
  c.Add(At(kMidnight + 24 * kDay, false));
  return c.ToJson();
}

TEST(RunTimeline, NamesTheWorstAndSlowestWindowWithEnoughPairs) {
  const json j = Month([](int d, int i) { return !(d >= 19 && i % 10 == 0); },
                       [](int d, int i) { return d == 10 && i % 20 == 0 ? 60000 : 6000; }, 100);
  const json& t = j["run_timeline"];
  // Days 20-24 agree on 90%; the lowest is the first of them (ties: the earlier).
  EXPECT_EQ(t["days"]["worst"]["run_day"], 20);
  EXPECT_DOUBLE_EQ(t["days"]["worst"]["agreement_rate"].get<double>(), 0.9);
  EXPECT_EQ(t["days"]["judged"], 24);  // day 25 has one pair
  EXPECT_FALSE(t["days"]["windows"][24]["judged"].get<bool>());
  // Day 11's shadow p99 is ten times the primary's.
  EXPECT_EQ(t["days"]["slowest"]["run_day"], 11);
  EXPECT_GT(t["days"]["slowest"]["p99_ratio"]["estimate"].get<double>(), 5);
  // 8.3 pairs an hour: no hour has 100 pairs to judge.
  EXPECT_TRUE(t["hours"]["worst"].is_null());
  EXPECT_EQ(t["hours"]["judged"], 0);
}

TEST(WorstWindowGates, FailOnTheWorstDayWhileTheWholeRunPasses) {
  const json j = Month([](int d, int i) { return !(d >= 19 && i % 10 == 0); },
                       [](int, int) { return 6000; }, 100);
  // The run: 100 disagreements in 4801 pairs, 97.9% agreement.
  EXPECT_EQ(One(R"({"metric": "agreement_rate", "min": 0.97, "judge": "near_end"})", j).status,
            GateStatus::kPass);
  const auto day =
      One(R"({"metric": "worst_window_agreement_rate", "min": 0.97, "judge": "near_end"})", j);
  EXPECT_EQ(day.status, GateStatus::kFail) << day.reason;
  EXPECT_NE(day.reason.find("worst of 24 days: day \"2026-12-07\" (day 20 of the run)"),
            std::string::npos)
      << day.reason;
  EXPECT_NE(day.reason.find("Bonferroni over 24"), std::string::npos) << day.reason;
  // top-1 agreement and mismatch rate see the same day.
  EXPECT_EQ(One(R"({"metric": "worst_window_top1_agreement", "min": 0.97, "judge": "near_end"})", j)
                .status,
            GateStatus::kFail);
  EXPECT_EQ(One(R"({"metric": "worst_window_mismatch_rate", "max": 0.03, "judge": "near_end"})", j)
                .status,
            GateStatus::kFail);
  // A window needs min_pairs: with 201 no day is judged, so the gate does not apply.
  const auto thin =
      One(R"({"metric": "worst_window_agreement_rate", "min": 0.97, "min_pairs": 201})", j);
  EXPECT_EQ(thin.status, GateStatus::kNotApplicable) << thin.reason;
  // By hour: 8 pairs an hour; with min_pairs 8 every hour of days 20-24 with a flip is judged.
  const auto hour = One(
      R"({"metric": "worst_window_agreement_rate", "window": "hour", "min": 0.97, "min_pairs": 8})",
      j);
  EXPECT_EQ(hour.status, GateStatus::kFail) << hour.reason;
  EXPECT_NE(hour.reason.find("hour \"2026-12-07 "), std::string::npos) << hour.reason;
  // No regression: the worst day passes.
  const json good = Month([](int, int) { return true; }, [](int, int) { return 6000; }, 100);
  EXPECT_EQ(
      One(R"({"metric": "worst_window_agreement_rate", "min": 0.97, "judge": "near_end"})", good)
          .status,
      GateStatus::kPass);
}

TEST(WorstWindowGates, P99RatioOfTheWorstDay) {
  // From day 20, 2% of the shadow's answers take 60 ms instead of 6 (p99 ratio ~10 that day);
  // over the run that is 0.4% of pairs, under the p99.
  const json j = Month([](int, int) { return true; },
                       [](int d, int i) { return d >= 19 && i % 50 == 0 ? 60000 : 6000; }, 100);
  EXPECT_EQ(One(R"({"metric": "p99_ratio", "max": 1.5})", j).status, GateStatus::kPass);
  const auto r = One(R"({"metric": "worst_window_p99_ratio", "max": 1.5})", j);
  EXPECT_EQ(r.status, GateStatus::kFail) << r.reason;
  EXPECT_NE(r.reason.find("(day 20 of the run)"), std::string::npos) << r.reason;
}

TEST(WorstWindowGates, ConfigErrorsNameTheKey) {
  auto parse = [](const std::string& gate) {
    try {
      ParseConfig<GateConfig>(R"({"gates": [)" + gate + "]}", "gates.json", ParseGateConfig);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(parse(R"({"metric": "worst_window_agreement_rate", "min": 0.9, "window": "week"})")
                .find("$.gates[0].window: must be \"day\" or \"hour\""),
            std::string::npos);
  EXPECT_NE(parse(R"({"metric": "agreement_rate", "min": 0.9, "window": "day"})")
                .find("only worst_window_* metrics take a window"),
            std::string::npos);
  EXPECT_EQ(parse(R"({"metric": "worst_window_p99_ratio", "max": 2, "window": "hour",
                      "min_pairs": 500, "judge": "near_end"})"),
            "");
}

}  // namespace
}  // namespace sg::comparator
