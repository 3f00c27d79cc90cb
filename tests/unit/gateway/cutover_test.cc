// The progressive cutover's config, sticky split and decisions, as plain logic: the decisions are
// driven with explicit instants and verdicts (no waiting), the state file through a temp dir.
#include "gateway/cutover.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "comparator/compare_config.h"
#include "comparator/gates.h"
#include "gateway/sampling.h"
#include "tests/support/test_support.h"

namespace sg::gateway {
namespace {

using std::chrono::seconds;

GatewayConfig Parse(const std::string& text, const std::string& file = "gw.json") {
  return ParseConfig<GatewayConfig>(text, file, ParseGatewayConfig);
}

std::vector<std::string> Problems(const std::string& text, const std::string& file = "gw.json") {
  try {
    Parse(text, file);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  return {};
}

// A gateway config with a comparison (rules and gates in `dir`) and `cutover` on route "r".
std::string WithCutover(const testing::TempDir& dir, const std::string& cutover,
                        bool gates = true) {
  dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "json"}]})");
  dir.Write("gates.json", R"({"gates": [{"metric": "pairs", "min": 10}]})");
  return std::string(R"({"upstreams": {"gpu": {"endpoints": ["127.0.0.1:81"]},
                                      "cpu": {"endpoints": ["127.0.0.1:82"]}},
      "routes": [{"name": "r", "upstream": "gpu",
                  "mirrors": [{"name": "cpu", "upstream": "cpu"},
                              {"name": "same", "upstream": "gpu"}],
                  "cutover": )") +
         cutover + R"(}],
      "comparison": {"rules": "rules.json")" +
         (gates ? R"(, "gates": "gates.json")" : "") + "}}";
}

TEST(CutoverConfigTest, ParsesTheScheduleAndDefaults) {
  testing::TempDir dir;
  auto file = (dir.path() / "gw.json").string();
  auto config = Parse(WithCutover(dir, R"({"candidate": "cpu", "sticky": "header:X-User",
      "steps": [{"share": 5, "hold": "1s", "min_judged": 20}, {"share": 100}]})"),
                      file);
  const auto& cutover = config.routes[0].cutover;
  ASSERT_TRUE(cutover.enabled());
  EXPECT_EQ(cutover.candidate, "cpu");
  EXPECT_EQ(cutover.sticky, StickyKey::kHeader);
  EXPECT_EQ(cutover.sticky_name, "x-user");
  ASSERT_EQ(cutover.steps.size(), 2u);
  EXPECT_EQ(cutover.steps[0].share, 5);
  EXPECT_EQ(cutover.steps[0].hold, seconds(1));
  EXPECT_EQ(cutover.steps[0].min_judged, 20u);
  EXPECT_EQ(cutover.steps[1].hold, seconds(0));
  EXPECT_EQ(cutover.evaluation_interval, seconds(10));
  EXPECT_TRUE(cutover.state_file.empty());
  auto json = GatewayConfigToJson(config)["routes"][0]["cutover"];
  EXPECT_EQ(json["sticky"], "header:x-user");
  EXPECT_EQ(json["steps"][0]["hold"], "1s");
  EXPECT_FALSE(GatewayConfigToJson(Parse(WithCutover(dir, R"({"candidate": "cpu",
      "steps": [{"share": 100}]})"),
                                         file))["routes"][0]["cutover"]
                   .contains("state_file"));
}

TEST(CutoverConfigTest, EveryProblemNamesItsJsonPath) {
  testing::TempDir dir;
  auto file = (dir.path() / "gw.json").string();
  auto problems = Problems(WithCutover(dir, R"({"candidate": "nope", "sticky": "ip",
      "evaluation_interval": "0s", "extra": 1,
      "steps": [{"share": 0}, {"share": 50, "hold": "-1s"}, {"share": 40, "min_judged": -1}]})"),
                           file);
  auto has = [&](const std::string& text) {
    for (const auto& p : problems) {
      if (p.find(text) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("$.routes[0].cutover.candidate: no mirror \"nope\" on route \"r\""));
  EXPECT_TRUE(
      has("$.routes[0].cutover.sticky: must be \"client_address\", \"header:NAME\" or "
          "\"cookie:NAME\", got \"ip\""));
  EXPECT_TRUE(has("$.routes[0].cutover.evaluation_interval: must be a positive duration"));
  EXPECT_TRUE(has("$.routes[0].cutover.steps[0].share: must be in (0, 100], got 0"));
  EXPECT_TRUE(has("$.routes[0].cutover.steps[1].hold: duration \"-1s\" out of range"));
  EXPECT_TRUE(has("$.routes[0].cutover.steps[2].share: must be above the previous step's (50)"));
  EXPECT_TRUE(has("$.routes[0].cutover.steps[2].min_judged: must be in"));
  EXPECT_TRUE(has("$.routes[0].cutover.steps[2].share: the last step must be 100"));
  EXPECT_TRUE(has("$.routes[0].cutover.extra"));
  for (const auto& p : problems) EXPECT_EQ(p.rfind(file + ": ", 0), 0u) << p;

  problems = Problems(WithCutover(dir, R"({"candidate": "same", "steps": []})"), file);
  EXPECT_TRUE(
      has("$.routes[0].cutover.candidate: mirror \"same\" sends to the route's own "
          "upstream \"gpu\""));
  EXPECT_TRUE(has("$.routes[0].cutover.steps: must list at least one step"));

  problems = Problems(WithCutover(dir, R"({"candidate": "cpu"})", /*gates=*/false), file);
  EXPECT_TRUE(has("$.routes[0].cutover: missing required key \"steps\""));
  EXPECT_TRUE(has("$.routes[0].cutover: needs the \"comparison\" section with \"gates\""));
}

TEST(CutoverTest, CookieValueFindsTheNamedCookie) {
  EXPECT_EQ(CookieValue("a=1; session=abc; b=2", "session"), "abc");
  EXPECT_EQ(CookieValue("session=\"q\"", "session"), "q");
  EXPECT_EQ(CookieValue("xsession=1; session =2", "session"), "");
  EXPECT_EQ(CookieValue("", "session"), "");
}

CutoverConfig Schedule(std::vector<CutoverStep> steps, const std::string& state_file = "") {
  CutoverConfig config;
  config.candidate = "cpu";
  config.steps = std::move(steps);
  config.state_file = state_file;
  return config;
}

Cutover::Judging DefaultJudging() {
  return {std::make_shared<comparator::CompareConfig>(comparator::DefaultCompareConfig()),
          std::make_shared<comparator::GateConfig>(comparator::DefaultGateConfig()), 64};
}

CutoverInstant At(int64_t second) {
  return {std::chrono::steady_clock::time_point(seconds(second)), second * 1000000};
}

StepVerdict Verdict(const std::string& verdict, uint64_t judged, const std::string& failure = "") {
  StepVerdict v;
  v.verdict = verdict;
  v.judged = judged;
  v.failure = failure;
  return v;
}

TEST(CutoverTest, TheShareDecidesAndAKeyStaysOnItsSideAsTheShareGrows) {
  Cutover cutover("r", Schedule({{5, seconds(0), 0}, {25, seconds(0), 0}, {100, seconds(0), 0}}),
                  DefaultJudging(), nullptr, At(0));
  EXPECT_EQ(cutover.state(), CutoverState::kIdle);
  int served = 0;
  for (int i = 0; i < 1000; ++i) served += cutover.ServesCandidate("user-" + std::to_string(i));
  EXPECT_EQ(served, 0);  // IDLE: share 0

  ASSERT_EQ(cutover.Start(At(1)), std::nullopt);
  std::vector<bool> at5;
  for (int i = 0; i < 20000; ++i)
    at5.push_back(cutover.ServesCandidate("user-" + std::to_string(i)));
  cutover.Decide(Verdict("PASS", 0), At(2));
  EXPECT_EQ(cutover.share(), 25);
  int moved = 0, on_candidate = 0;
  for (int i = 0; i < 20000; ++i) {
    bool now = cutover.ServesCandidate("user-" + std::to_string(i));
    if (at5[static_cast<size_t>(i)]) {
      EXPECT_TRUE(now) << "user-" << i << " went back";
    }
    moved += now && !at5[static_cast<size_t>(i)];
    on_candidate += now;
  }
  // 25% of 20000 keys, within 5 standard deviations (61 keys).
  EXPECT_NEAR(on_candidate, 5000, 310);
  EXPECT_GT(moved, 0);
  ASSERT_EQ(cutover.Promote(At(3)), std::nullopt);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(cutover.ServesCandidate("user-" + std::to_string(i)));
  EXPECT_FALSE(cutover.MirrorsBack());
}

TEST(CutoverTest, AdvancesOnlyAfterHoldMinJudgedAndAPassThenPromotes) {
  Cutover cutover("r", Schedule({{10, seconds(60), 100}, {100, seconds(30), 50}}), DefaultJudging(),
                  nullptr, At(0));
  ASSERT_EQ(cutover.Start(At(0)), std::nullopt);
  cutover.Decide(Verdict("PASS", 500), At(59));  // hold not over
  EXPECT_EQ(cutover.share(), 10);
  cutover.Decide(Verdict("PASS", 99), At(61));  // too few pairs
  EXPECT_EQ(cutover.share(), 10);
  cutover.Decide(Verdict("MARGINAL", 500), At(62));  // not every gate passed
  EXPECT_EQ(cutover.share(), 10);
  cutover.Decide(Verdict("INSUFFICIENT_DATA", 500), At(63));
  EXPECT_EQ(cutover.share(), 10);
  cutover.Decide(Verdict("PASS", 100), At(64));
  EXPECT_EQ(cutover.share(), 100);
  EXPECT_EQ(cutover.state(), CutoverState::kRunning);
  EXPECT_TRUE(cutover.MirrorsBack());  // the last step still mirrors to the old primary
  cutover.Decide(Verdict("PASS", 50), At(64 + 29));
  EXPECT_EQ(cutover.state(), CutoverState::kRunning);
  cutover.Decide(Verdict("PASS", 50), At(64 + 30));
  EXPECT_EQ(cutover.state(), CutoverState::kPromoted);
  EXPECT_FALSE(cutover.MirrorsBack());
  auto state = cutover.StateJson(At(100));
  EXPECT_EQ(state["state"], "PROMOTED");
  std::vector<std::string> decisions;
  for (const auto& d : state["decisions"]) decisions.push_back(d["decision"]);
  EXPECT_EQ(decisions, (std::vector<std::string>{"start", "advance", "promote"}));
  EXPECT_EQ(cutover.Start(At(101)), "cannot start: the cutover is PROMOTED");
}

TEST(CutoverTest, AFailingGateRollsBackAtOnceWithItsReason) {
  Cutover cutover("r", Schedule({{25, seconds(600), 1000}, {100, seconds(0), 0}}), DefaultJudging(),
                  nullptr, At(0));
  ASSERT_EQ(cutover.Start(At(0)), std::nullopt);
  ASSERT_EQ(cutover.Pause(At(1)), std::nullopt);  // paused still rolls back
  const std::string why = "gate \"shadow errors\" (shadow_error_rate) value 0.3 > bound 0.002";
  cutover.Decide(Verdict("FAIL", 40, why), At(2));
  EXPECT_EQ(cutover.state(), CutoverState::kRolledBack);
  EXPECT_EQ(cutover.share(), 0);
  EXPECT_FALSE(cutover.ServesCandidate("anyone"));
  auto state = cutover.StateJson(At(3));
  EXPECT_EQ(state["reason"], why);
  EXPECT_EQ(state["decisions"].back()["decision"], "rollback");
  EXPECT_EQ(state["decisions"].back()["reason"], why);
  // Rolled back: start begins again at the first step.
  EXPECT_EQ(cutover.Resume(At(4)), "cannot resume: the cutover is ROLLED_BACK");
  ASSERT_EQ(cutover.Start(At(5)), std::nullopt);
  EXPECT_EQ(cutover.share(), 25);
}

TEST(CutoverTest, ManualControls) {
  Cutover cutover("r", Schedule({{10, seconds(0), 0}, {50, seconds(0), 0}, {100, seconds(0), 0}}),
                  DefaultJudging(), nullptr, At(0));
  EXPECT_EQ(cutover.Pause(At(0)), "cannot pause: the cutover is IDLE");
  ASSERT_EQ(cutover.SetShare(30, At(1)), std::nullopt);
  EXPECT_EQ(cutover.state(), CutoverState::kPaused);
  EXPECT_EQ(cutover.share(), 30);
  cutover.Decide(Verdict("PASS", 1000), At(2));  // paused: no advance
  EXPECT_EQ(cutover.share(), 30);
  ASSERT_EQ(cutover.Resume(At(3)), std::nullopt);  // back to the schedule: the first step
  EXPECT_EQ(cutover.state(), CutoverState::kRunning);
  EXPECT_EQ(cutover.share(), 10);
  ASSERT_EQ(cutover.RollBack("manual", At(4)), std::nullopt);
  EXPECT_EQ(cutover.share(), 0);
  EXPECT_EQ(cutover.StateJson(At(5))["reason"], "manual");
  ASSERT_EQ(cutover.Promote(At(6)), std::nullopt);
  EXPECT_EQ(cutover.share(), 100);
  EXPECT_EQ(cutover.RollBack("manual", At(7)), "cannot roll back: the cutover is PROMOTED");
}

TEST(CutoverTest, TheStateSurvivesARestartThroughTheStateFile) {
  testing::TempDir dir;
  const std::string file = (dir.path() / "cutover.json").string();
  auto schedule = Schedule({{10, seconds(0), 0}, {50, seconds(0), 0}, {100, seconds(0), 0}}, file);
  {
    Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(0));
    ASSERT_EQ(cutover.Start(At(1)), std::nullopt);
    cutover.Decide(Verdict("PASS", 0), At(2));
    EXPECT_EQ(cutover.share(), 50);
  }
  struct stat info {};
  ASSERT_EQ(stat(file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  {
    Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(100));
    EXPECT_EQ(cutover.state(), CutoverState::kRunning);
    EXPECT_EQ(cutover.share(), 50);
    auto state = cutover.StateJson(At(100));
    EXPECT_EQ(state["step"], 1);
    EXPECT_EQ(state["decisions"].size(), 2u);
    EXPECT_EQ(state["time_in_step_s"], 0.0);  // the hold starts again
  }
  // Another schedule: the file is not trusted, the cutover starts IDLE at share 0.
  auto other = Schedule({{20, seconds(0), 0}, {100, seconds(0), 0}}, file);
  {
    Cutover cutover("r", other, DefaultJudging(), nullptr, At(0));
    EXPECT_EQ(cutover.state(), CutoverState::kIdle);
    EXPECT_EQ(cutover.share(), 0);
  }
  dir.Write("cutover.json", "{not json");
  Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(0));
  EXPECT_EQ(cutover.state(), CutoverState::kIdle);
}

// The pair log's "cutover" lines: every decision goes to the decision log with the state after
// it, the schedule's with the pairs judged, an automatic rollback with its gate, value and bound.
TEST(CutoverTest, EveryDecisionGoesToTheDecisionLogWithTheFailingGate) {
  Cutover cutover("r", Schedule({{10, seconds(0), 0}, {25, seconds(0), 0}, {100, seconds(0), 0}}),
                  DefaultJudging(), nullptr, At(0));
  std::vector<CutoverDecision> lines;
  cutover.SetDecisionLog([&](CutoverDecision decision) { lines.push_back(std::move(decision)); });
  ASSERT_EQ(cutover.Start(At(1)), std::nullopt);
  cutover.Decide(Verdict("PASS", 40), At(2));
  ASSERT_EQ(cutover.Pause(At(3)), std::nullopt);
  ASSERT_EQ(cutover.Resume(At(4)), std::nullopt);
  auto failing = ReadStepVerdict(nlohmann::json::parse(R"({"verdict": "FAIL", "gates": [
      {"name": "agreement", "metric": "top1_agreement", "status": "FAIL", "value": 0.69,
       "min": 0.99, "effective_bound": 0.985}]})"),
                                 300);
  cutover.Decide(failing, At(5));
  ASSERT_EQ(lines.size(), 5u);
  std::vector<std::string> decisions, states;
  for (const auto& line : lines) {
    decisions.push_back(line.decision);
    states.push_back(line.state);
    EXPECT_EQ(line.route, "r");
    EXPECT_EQ(line.mirror, "cpu");
  }
  EXPECT_EQ(decisions,
            (std::vector<std::string>{"start", "advance", "pause", "resume", "rollback"}));
  EXPECT_EQ(states,
            (std::vector<std::string>{"RUNNING", "RUNNING", "PAUSED", "RUNNING", "ROLLED_BACK"}));
  EXPECT_EQ(lines[0].ts_us, 1000000);
  EXPECT_EQ(lines[0].share, 10);
  EXPECT_FALSE(lines[0].judged);  // the admin's
  EXPECT_EQ(lines[1].share, 25);
  EXPECT_EQ(lines[1].step, 1);
  EXPECT_EQ(lines[1].judged, 40u);
  EXPECT_TRUE(lines[1].gate.empty());
  const auto& rollback = lines[4];
  EXPECT_EQ(rollback.share, 0);
  EXPECT_EQ(rollback.step, 1);  // the step it rolled back from
  EXPECT_EQ(rollback.gate, "agreement");
  EXPECT_EQ(rollback.metric, "top1_agreement");
  EXPECT_EQ(rollback.value, 0.69);
  EXPECT_EQ(rollback.bound, 0.985);
  EXPECT_EQ(rollback.bound_kind, "min");
  EXPECT_EQ(rollback.judged, 300u);
  EXPECT_EQ(rollback.reason, failing.failure);
  // The state's decisions carry the same gate.
  auto state = cutover.StateJson(At(6));
  EXPECT_EQ(state["decisions"].back()["gate"]["name"], "agreement");
  EXPECT_EQ(state["decisions"].back()["judged"], 300);
  // A manual rollback names no gate.
  ASSERT_EQ(cutover.Start(At(7)), std::nullopt);
  ASSERT_EQ(cutover.RollBack("manual", At(8)), std::nullopt);
  EXPECT_EQ(lines.back().decision, "rollback");
  EXPECT_EQ(lines.back().reason, "manual");
  EXPECT_TRUE(lines.back().gate.empty());
  EXPECT_FALSE(lines.back().value);
  // Each line reads back as written.
  for (const auto& line : lines) {
    std::string error;
    auto decoded = DecodePairLogLine(EncodePairLogLine(line), &error);
    ASSERT_TRUE(decoded) << error;
    EXPECT_EQ(std::get<CutoverDecision>(*decoded), line);
  }
}

// The report's timeline is kept in the state file: a restarted gateway's report shows the points
// from before the restart, and the file keeps the last kTimelineKept.
TEST(CutoverTest, TheTimelineSurvivesARestartThroughTheStateFile) {
  testing::TempDir dir;
  const std::string file = (dir.path() / "cutover.json").string();
  auto schedule = Schedule({{10, seconds(600), 1000}, {100, seconds(0), 0}}, file);
  {
    Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(0));
    ASSERT_EQ(cutover.Start(At(1)), std::nullopt);
    cutover.EvaluateNow(At(2));
    cutover.EvaluateNow(At(3));
    ASSERT_EQ(cutover.state(), CutoverState::kRunning);  // no pairs yet: the step holds
    EXPECT_EQ(cutover.ReportJson(At(3))["timeline"].size(), 2u);
  }
  {
    Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(100));
    cutover.EvaluateNow(At(101));
    auto timeline = cutover.ReportJson(At(101))["timeline"];
    ASSERT_EQ(timeline.size(), 3u) << timeline;
    EXPECT_EQ(timeline[0]["t_s"], 2.0);
    EXPECT_EQ(timeline[1]["t_s"], 3.0);
    EXPECT_EQ(timeline[2]["t_s"], 101.0);
    EXPECT_EQ(timeline[0]["share"], 10);
    EXPECT_EQ(timeline[0]["step"], 0);
  }
  // Past the bound, the oldest points go.
  auto saved = nlohmann::json::parse(testing::ReadFile(file));
  auto& points = saved["timeline"];
  const auto point = points[0];
  points = nlohmann::json::array();
  for (size_t i = 0; i < Cutover::kTimelineKept + 5; ++i) {
    points.push_back(point);
    points.back()["t_s"] = static_cast<double>(i);
  }
  dir.Write("cutover.json", saved.dump());
  Cutover cutover("r", schedule, DefaultJudging(), nullptr, At(200));
  auto timeline = cutover.ReportJson(At(200))["timeline"];
  ASSERT_EQ(timeline.size(), Cutover::kTimelineKept);
  EXPECT_EQ(timeline[0]["t_s"], 5.0);
  EXPECT_EQ(cutover.state(), CutoverState::kRunning);
}

TEST(CutoverTest, ReadStepVerdictNamesTheFirstFailingGate) {
  auto verdict = nlohmann::json::parse(R"({"verdict": "FAIL", "gates": [
      {"name": "enough pairs", "metric": "pairs", "status": "PASS", "value": 300, "min": 200},
      {"name": "shadow errors", "metric": "shadow_error_rate", "status": "FAIL", "value": 0.25,
       "max": 0.002},
      {"name": "top-1", "metric": "top1_agreement", "status": "FAIL", "value": 0.5, "min": 0.99,
       "effective_bound": 0.98}]})");
  auto read = ReadStepVerdict(verdict, 300);
  EXPECT_EQ(read.verdict, "FAIL");
  EXPECT_EQ(read.judged, 300u);
  EXPECT_EQ(read.failure, "gate \"shadow errors\" (shadow_error_rate) value 0.25 > bound 0.002");
  ASSERT_EQ(read.gates.size(), 3u);
  EXPECT_EQ(read.gates[2]["min"], 0.98);
  EXPECT_TRUE(ReadStepVerdict(nlohmann::json(), 0).failure.empty());
}

}  // namespace
}  // namespace sg::gateway
