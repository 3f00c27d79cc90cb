// The progressive cutover end to end (docs/gateway.md, "Progressive cutover"): the real
// shadowgate binary between two real HTTP servers (the old primary and the candidate, which
// changes behaviour on command), its admin API, its pair log and its state file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/http_server.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A model server stand-in: answers {"v": 1} with X-Served-By: <name>; on command it answers
// 500s (kError) or another value (kWrong).
class SwitchableUpstream {
 public:
  enum Mode { kGood, kError, kWrong };

  explicit SwitchableUpstream(std::string name) : name_(std::move(name)) {
    server_ = std::make_unique<sg::http::HttpServer>(
        io_, sg::http::ServerOptions{},
        [this](sg::http::Request&& request, sg::http::Responder respond) {
          ++received_;
          Mode mode = mode_.load();
          auto response =
              mode == kError
                  ? sg::http::MakeErrorResponse(request, sg::http::Status::internal_server_error,
                                                "broken on purpose")
                  : sg::http::MakeJsonResponse(request, sg::http::Status::ok,
                                               {{"v", mode == kWrong ? 2 : 1}});
          response.set("X-Served-By", name_);
          respond(std::move(response));
        });
    std::string error;
    EXPECT_TRUE(server_->Start(&error)) << error;
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SwitchableUpstream() {
    server_->Stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  int port() const { return server_->port(); }
  void set_mode(Mode mode) { mode_ = mode; }
  int received() const { return received_.load(); }

 private:
  std::string name_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      boost::asio::make_work_guard(io_)};
  std::unique_ptr<sg::http::HttpServer> server_;
  std::thread thread_;
  std::atomic<Mode> mode_{kGood};
  std::atomic<int> received_{0};
};

constexpr const char* kRules = R"({"rules": [{"name": "api", "kind": "json"}]})";
constexpr const char* kGates = R"({"gates": [{"metric": "pairs", "min": 5},
                                             {"metric": "shadow_error_rate", "max": 0.05},
                                             {"metric": "mismatch_rate", "max": 0.05}]})";

// Route "r": "primary" (the old primary, `gpu`) mirrored to "cpu" (on upstream "shadow", the
// candidate), with a cutover sticky on the X-User header.
json CutoverConfig(const TempDir& dir, int gpu, int cpu, json cutover) {
  dir.Write("rules.json", kRules);
  dir.Write("gates.json", kGates);
  json config = MakeConfig(gpu, cpu);
  const auto reports = dir.path() / "reports";
  config["upstreams"]["primary"]["header_timeout"] = "5s";
  config["upstreams"]["shadow"]["header_timeout"] = "5s";
  config["routes"][0]["mirrors"][0]["timeout"] = "5s";
  config["capture"]["response_headers"] = {"content-type", "x-served-by"};
  config["comparison"] = {
      {"rules", "rules.json"}, {"gates", "gates.json"}, {"report_dir", reports.string()}};
  json c = {{"candidate", "cpu"}, {"sticky", "header:x-user"}};
  c.update(cutover);
  config["routes"][0]["cutover"] = c;
  return config;
}

// One request as user `user`: who served it (X-Served-By), "" when it failed.
std::string Ask(const GatewayProcess& gateway, const std::string& user) {
  HttpRequestSpec spec;
  spec.target = "/predict";
  spec.headers = {{"X-User", user}};
  auto response = Http(gateway.port(), spec);
  if (!response || response->status != 200) return "";
  return response->Header("x-served-by");
}

std::optional<HttpResponse> Admin(const GatewayProcess& gateway, const std::string& method,
                                  const std::string& target, const std::string& body = "") {
  HttpRequestSpec spec;
  spec.method = method;
  spec.target = target;
  spec.body = body;
  if (!body.empty()) spec.headers = {{"Content-Type", "application/json"}};
  return Http(gateway.admin_port(), spec);
}

json State(const GatewayProcess& gateway) {
  auto response = HttpGet(gateway.admin_port(), "/admin/routes/r/cutover");
  if (!response || response->status != 200) return json();
  return json::parse(response->body, nullptr, false);
}

void SetShare(const GatewayProcess& gateway, double share) {
  auto response = Admin(gateway, "PUT", "/admin/routes/r/cutover", json{{"share", share}}.dump());
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200) << response->body;
  EXPECT_EQ(json::parse(response->body)["share"], share);
}

std::string User(int i) {
  return "user-" + std::to_string(i);
}

// Step 1: the sticky split by share (set by the admin API; no automatic decision within the
// 60-minute interval), and pairs judged in both directions with one orientation.
TEST(CutoverIntegrationTest, TheShareSplitsStickyKeysAndBothDirectionsAreJudged) {
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  GatewayProcess gateway(
      CutoverConfig(dir, gpu.port(), cpu.port(),
                    {{"evaluation_interval", "60m"}, {"steps", {{{"share", 100}}}}}),
      dir);
  ASSERT_TRUE(gateway.ready());
  EXPECT_EQ(State(gateway)["state"], "IDLE");

  // IDLE: share 0, every request served by the old primary.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Ask(gateway, User(i)), "gpu");
  SetShare(gateway, 100);
  EXPECT_EQ(State(gateway)["state"], "PAUSED");
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Ask(gateway, User(i)), "cpu");

  // 400 users at 20%, then at 60%: nobody served by the candidate goes back, and the measured
  // split is near the share (binomial, 5 standard deviations: 40 and 49 users).
  constexpr int kUsers = 400;
  SetShare(gateway, 20);
  std::set<int> at20;
  for (int i = 0; i < kUsers; ++i) {
    auto side = Ask(gateway, User(i));
    ASSERT_FALSE(side.empty());
    if (side == "cpu") at20.insert(i);
  }
  EXPECT_NEAR(static_cast<double>(at20.size()), 0.2 * kUsers, 40);
  // The same user again: the same side.
  for (int i = 0; i < 40; ++i) EXPECT_EQ(Ask(gateway, User(i)), at20.count(i) ? "cpu" : "gpu");
  SetShare(gateway, 60);
  int at60 = 0;
  for (int i = 0; i < kUsers; ++i) {
    auto side = Ask(gateway, User(i));
    if (at20.count(i)) {
      EXPECT_EQ(side, "cpu") << User(i) << " went back to the old primary";
    }
    at60 += side == "cpu";
  }
  EXPECT_NEAR(at60, 0.6 * kUsers, 49);
  EXPECT_EQ(gateway.Metric("sg_gateway_cutover_share{route=\"r\"}"), 60);
  EXPECT_GT(gateway.Metric("sg_gateway_cutover_served_total{route=\"r\",side=\"candidate\"}"), 0);

  // Every pair has the old primary as its reference, whichever side served the client.
  auto entries = gateway.StopAndReadPairs();
  int by_candidate = 0, by_primary = 0;
  for (const auto& entry : entries) {
    const auto* pair = std::get_if<PairRecord>(&entry);
    if (!pair) continue;
    EXPECT_EQ(pair->mirror, "cpu");
    EXPECT_EQ(pair->primary.headers.at("x-served-by"), "gpu");
    EXPECT_EQ(pair->shadow.headers.at("x-served-by"), "cpu");
    EXPECT_EQ(pair->primary.outcome, "ok");
    EXPECT_EQ(pair->shadow.outcome, "ok");
    if (pair->served_by_candidate) {
      ++by_candidate;
      EXPECT_LE(pair->shadow.send_offset_us, 0);  // the candidate was sent first
    } else {
      ++by_primary;
    }
  }
  EXPECT_GT(by_candidate, 200);
  EXPECT_GT(by_primary, 200);
  // The candidate mirror's counters count the copies of both directions: one per pair.
  const MirrorCounters* last = nullptr;
  for (const auto& entry : entries) {
    if (const auto* counters = std::get_if<MirrorCounters>(&entry)) last = counters;
  }
  ASSERT_TRUE(last);
  EXPECT_EQ(last->mirror, "cpu");
  EXPECT_EQ(last->mirrored.at("ok"), static_cast<uint64_t>(by_candidate + by_primary));
  EXPECT_EQ(last->requests, static_cast<uint64_t>(by_candidate + by_primary));
}

json Post(const GatewayProcess& gateway, const std::string& action, int expected = 200) {
  auto response = Admin(gateway, "POST", "/admin/routes/r/cutover/" + action);
  EXPECT_TRUE(response);
  if (!response) return json();
  EXPECT_EQ(response->status, expected) << action << ": " << response->body;
  return json::parse(response->body, nullptr, false);
}

// Step 2: the candidate starts failing during a step (500s, or wrong answers) and the cutover
// rolls back by itself within an evaluation interval of the evidence; only the users the
// candidate served saw its failures.
class CutoverRollbackTest : public ::testing::TestWithParam<SwitchableUpstream::Mode> {};

TEST_P(CutoverRollbackTest, ACandidateTurningBadIsRolledBackWithTheGateInTheStateAndLog) {
  const auto mode = GetParam();
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  GatewayProcess gateway(
      CutoverConfig(dir, gpu.port(), cpu.port(),
                    {{"evaluation_interval", "500ms"},
                     {"steps", {{{"share", 25}, {"min_judged", 1000000}}, {{"share", 100}}}}}),
      dir);
  ASSERT_TRUE(gateway.ready());
  auto state = Post(gateway, "start");
  EXPECT_EQ(state["state"], "RUNNING");
  EXPECT_EQ(state["share"], 25);

  // A good candidate: the step holds (min_judged is out of reach).
  constexpr int kUsers = 100;
  std::set<int> on_candidate;
  for (int i = 0; i < kUsers; ++i) {
    auto side = Ask(gateway, User(i));
    ASSERT_FALSE(side.empty());
    if (side == "cpu") on_candidate.insert(i);
  }
  EXPECT_NEAR(static_cast<double>(on_candidate.size()), 25, 22);  // 5 standard deviations
  EXPECT_EQ(State(gateway)["state"], "RUNNING");

  // It turns bad. Clients keep asking until the gateway rolls back (bounded generously: the
  // evidence takes a few requests, the decision at most one 500 ms interval more).
  cpu.set_mode(mode);
  const auto turned_bad = std::chrono::steady_clock::now();
  int sent = 0, failed = 0, wrong = 0;
  bool rolled_back = false;
  while (!rolled_back && std::chrono::steady_clock::now() - turned_bad < 10s) {
    const int user = sent % kUsers;
    auto side = Ask(gateway, User(user));
    ++sent;
    if (side.empty()) {
      ++failed;
      EXPECT_TRUE(on_candidate.count(user)) << User(user) << " failed on the old primary";
    } else if (side == "cpu") {
      ++wrong;
      EXPECT_TRUE(on_candidate.count(user)) << User(user) << " moved to the candidate";
    }
    if (sent % 10 == 0) rolled_back = State(gateway)["state"] == "ROLLED_BACK";
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - turned_bad).count();
  ASSERT_TRUE(rolled_back) << sent << " requests in " << seconds << " s";
  EXPECT_LT(seconds, 5) << "rolled back " << seconds << " s after the candidate turned bad";
  EXPECT_LE(failed + wrong, sent);
  if (mode == SwitchableUpstream::kError) {
    EXPECT_GT(failed, 0);
    EXPECT_EQ(wrong, 0);
  }

  state = State(gateway);
  const std::string metric =
      mode == SwitchableUpstream::kError ? "shadow_error_rate" : "mismatch_rate";
  EXPECT_EQ(state["share"], 0);
  EXPECT_NE(state["reason"].get<std::string>().find("(" + metric + ") value "), std::string::npos)
      << state["reason"];
  EXPECT_NE(state["reason"].get<std::string>().find(" > bound 0.05"), std::string::npos);
  EXPECT_EQ(state["decisions"].back()["decision"], "rollback");
  EXPECT_EQ(gateway.Metric("sg_gateway_cutover_share{route=\"r\"}"), 0);
  EXPECT_EQ(gateway.Metric("sg_gateway_cutover_state{route=\"r\",state=\"ROLLED_BACK\"}"), 1);
  EXPECT_EQ(gateway.Metric("sg_gateway_cutover_decisions_total{route=\"r\",decision=\"rollback\"}"),
            1);
  const std::string log = gateway.process().Log();
  EXPECT_NE(log.find("ROLLED_BACK at step 0 (25%): gate"), std::string::npos) << log;
  EXPECT_NE(log.find(metric), std::string::npos);

  // Rolled back: everybody is served by the old primary again.
  for (int i : on_candidate) EXPECT_EQ(Ask(gateway, User(i)), "gpu");

  // The pair log has the decisions: the start, then the rollback with its gate, value and bound.
  std::vector<CutoverDecision> decisions;
  for (const auto& entry : gateway.StopAndReadPairs()) {
    if (const auto* decision = std::get_if<CutoverDecision>(&entry)) decisions.push_back(*decision);
  }
  ASSERT_EQ(decisions.size(), 2u);
  EXPECT_EQ(decisions[0].decision, "start");
  EXPECT_EQ(decisions[0].share, 25);
  const auto& rollback = decisions[1];
  EXPECT_EQ(rollback.decision, "rollback");
  EXPECT_EQ(rollback.state, "ROLLED_BACK");
  EXPECT_EQ(rollback.route, "r");
  EXPECT_EQ(rollback.mirror, "cpu");
  EXPECT_EQ(rollback.step, 0);
  EXPECT_EQ(rollback.share, 0);
  EXPECT_EQ(rollback.metric, metric);
  EXPECT_EQ(rollback.bound_kind, "max");
  EXPECT_EQ(rollback.bound, 0.05);
  ASSERT_TRUE(rollback.value);
  EXPECT_GT(*rollback.value, 0.05);
  EXPECT_EQ(rollback.reason, state["reason"]);
  EXPECT_GT(rollback.judged.value_or(0), 0u);
  EXPECT_FALSE(rollback.instance.empty());
  EXPECT_EQ(rollback.instance, decisions[0].instance);

  // sg-compare judges the log as before (a decision is no malformed line) and shows the
  // decisions in its report.
  const auto out = dir.path() / "compared";
  auto compared = RunTool("sg-compare",
                          {"report", "--pairs", gateway.pairs_path(), "--rules",
                           (dir.path() / "rules.json").string(), "--out", out.string()},
                          dir.path());
  ASSERT_NE(compared.exit_code, 2) << compared.out << compared.err;
  json report = json::parse(ReadFile(out / "report.json"), nullptr, false);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["comparison"]["malformed"]["count"], 0) << report["comparison"]["malformed"];
  ASSERT_EQ(report["cutover_decisions"].size(), 2u) << report["cutover_decisions"];
  EXPECT_EQ(report["cutover_decisions"][1]["decision"], "rollback");
  EXPECT_EQ(report["cutover_decisions"][1]["metric"], metric);
  EXPECT_EQ(report["cutover_decisions"][1]["bound"], 0.05);
  const std::string md = ReadFile(out / "report.md");
  EXPECT_NE(md.find("## Cutover decisions"), std::string::npos);
  EXPECT_NE(md.find("| rollback | ROLLED_BACK |"), std::string::npos) << md;
  EXPECT_NE(ReadFile(out / "report.html").find("<h2>Cutover decisions</h2>"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Faults, CutoverRollbackTest,
                         ::testing::Values(SwitchableUpstream::kError, SwitchableUpstream::kWrong),
                         [](const auto& info) {
                           return info.param == SwitchableUpstream::kError ? "errors"
                                                                           : "wrong_answers";
                         });

// Step 2: a good candidate goes through every step and is promoted; then the old primary gets
// no more copies.
TEST(CutoverIntegrationTest, AGoodCandidateIsPromotedThroughEveryStep) {
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  GatewayProcess gateway(
      CutoverConfig(dir, gpu.port(), cpu.port(),
                    {{"evaluation_interval", "200ms"},
                     {"steps",
                      {{{"share", 10}, {"min_judged", 10}},
                       {{"share", 50}, {"min_judged", 10}},
                       {{"share", 100}, {"hold", "300ms"}, {"min_judged", 10}}}}}),
      dir);
  ASSERT_TRUE(gateway.ready());
  Post(gateway, "start");
  std::set<double> shares;
  int sent = 0;
  json state;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_FALSE(Ask(gateway, User(sent % 200)).empty());
    ++sent;
    if (sent % 5) continue;
    state = State(gateway);
    shares.insert(state["share"].get<double>());
    if (state["state"] != "RUNNING") break;
  }
  ASSERT_EQ(state["state"], "PROMOTED") << state.dump(2);
  std::vector<std::string> decisions;
  for (const auto& d : state["decisions"]) decisions.push_back(d["decision"]);
  EXPECT_EQ(decisions, (std::vector<std::string>{"start", "advance", "advance", "promote"}));
  EXPECT_TRUE(shares.count(10) && shares.count(50) && shares.count(100)) << sent;
  EXPECT_EQ(gateway.Metric("sg_gateway_cutover_state{route=\"r\",state=\"PROMOTED\"}"), 1);

  // Promoted: every request to the candidate, none mirrored back to the old primary.
  const int before = gpu.received();
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Ask(gateway, User(i)), "cpu");
  EXPECT_EQ(gpu.received(), before);

  // The cutover report: the timeline of every evaluation (each step's share, its pairs, the
  // candidate's errors, disagreement and p99 on each side) and the decisions.
  auto written = Post(gateway, "report?name=promoted", 201);
  EXPECT_EQ(written["files"], json({"cutover.json", "cutover.md", "cutover.html"}));
  const auto report_dir = dir.path() / "reports" / "promoted";
  json report = json::parse(ReadFile(report_dir / "cutover.json"), nullptr, false);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["state"], "PROMOTED");
  std::set<double> timeline_shares;
  for (const auto& point : report["timeline"]) {
    timeline_shares.insert(point["share"].get<double>());
    if (point["judged"].get<int>() >= 5) {
      EXPECT_EQ(point["shadow_error_rate"], 0.0) << point;
      EXPECT_EQ(point["mismatch_rate"], 0.0) << point;
      EXPECT_TRUE(point["p99_primary_ms"].is_number()) << point;
      EXPECT_TRUE(point["p99_candidate_ms"].is_number()) << point;
    }
  }
  EXPECT_EQ(timeline_shares, (std::set<double>{10, 50, 100}));
  EXPECT_NE(ReadFile(report_dir / "cutover.md").find("| promote | PROMOTED |"), std::string::npos);
  const std::string html = ReadFile(report_dir / "cutover.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("every step passed"), std::string::npos);
  Post(gateway, "report?name=promoted", 409);  // never overwritten
}

// Step 3: the admin controls under the admin security, and their refusals.
TEST(CutoverIntegrationTest, AdminControlsAndTheirRefusals) {
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  dir.Write("token", "0123456789abcdef0123\n");
  chmod((dir.path() / "token").c_str(), 0600);
  auto config = CutoverConfig(
      dir, gpu.port(), cpu.port(),
      {{"evaluation_interval", "60m"}, {"steps", {{{"share", 10}}, {{"share", 100}}}}});
  config["admin"] = {{"token_file", "token"}};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto call = [&](const std::string& method, const std::string& target,
                  const std::string& body = "", bool token = true) {
    HttpRequestSpec spec;
    spec.method = method;
    spec.target = target;
    spec.body = body;
    if (token) spec.headers = {{"Authorization", "Bearer 0123456789abcdef0123"}};
    auto response = Http(gateway.admin_port(), spec);
    return response ? *response : HttpResponse{};
  };
  EXPECT_EQ(call("GET", "/admin/routes/r/cutover", "", false).status, 401);
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/start", "", false).status, 401);
  EXPECT_EQ(call("GET", "/admin/routes/nope/cutover").status, 404);
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/fly").status, 404);
  EXPECT_EQ(call("GET", "/admin/routes/r/cutover/start").status, 405);
  EXPECT_EQ(call("DELETE", "/admin/routes/r/cutover").status, 405);
  EXPECT_EQ(call("PUT", "/admin/routes/r/cutover", R"({"share": 120})").status, 400);
  EXPECT_EQ(call("PUT", "/admin/routes/r/cutover", R"({"percent": 1})").status, 400);
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/pause").status, 409);  // IDLE
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/resume").status, 409);
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/report?name=../x").status, 400);

  auto state = [&](const HttpResponse& response) {
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body, nullptr, false);
  };
  auto s = state(call("POST", "/admin/routes/r/cutover/start"));
  EXPECT_EQ(s["state"], "RUNNING");
  EXPECT_EQ(s["step"], 0);
  EXPECT_EQ(s["share"], 10);
  EXPECT_TRUE(s.contains("time_in_step_s"));
  EXPECT_TRUE(s.contains("verdict"));
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/start").status, 409);
  EXPECT_EQ(state(call("POST", "/admin/routes/r/cutover/pause"))["state"], "PAUSED");
  EXPECT_EQ(state(call("POST", "/admin/routes/r/cutover/resume"))["state"], "RUNNING");
  s = state(call("POST", "/admin/routes/r/cutover/rollback"));
  EXPECT_EQ(s["state"], "ROLLED_BACK");
  EXPECT_EQ(s["reason"], "manual");
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Ask(gateway, User(i)), "gpu");
  s = state(call("POST", "/admin/routes/r/cutover/promote"));
  EXPECT_EQ(s["state"], "PROMOTED");
  EXPECT_EQ(s["share"], 100);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Ask(gateway, User(i)), "cpu");
  EXPECT_EQ(call("POST", "/admin/routes/r/cutover/rollback").status, 409);
  EXPECT_EQ(call("PUT", "/admin/routes/r/cutover", R"({"share": 5})").status, 409);
  // /metrics needs the token too.
  const std::string metrics = call("GET", "/metrics").body;
  for (const char* decision : {"start", "pause", "resume", "rollback", "promote"}) {
    EXPECT_NE(
        metrics.find(std::string("sg_gateway_cutover_decisions_total{route=\"r\",decision=\"") +
                     decision + "\"} 1\n"),
        std::string::npos)
        << decision;
  }
}

// Step 3: with a state file the cutover continues after a restart at its step and share; the
// log says so.
TEST(CutoverIntegrationTest, TheStateSurvivesARestart) {
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  const std::string state_file = (dir.path() / "cutover-r.json").string();
  auto config = CutoverConfig(dir, gpu.port(), cpu.port(),
                              {{"evaluation_interval", "60m"},
                               {"state_file", state_file},
                               {"steps", {{{"share", 10}}, {{"share", 40}}, {{"share", 100}}}}});
  std::set<int> served_by_candidate;
  {
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    EXPECT_NE(gateway.process().Log().find("no state file"), std::string::npos);
    Post(gateway, "start");
    SetShare(gateway, 40);
    for (int i = 0; i < 100; ++i) {
      if (Ask(gateway, User(i)) == "cpu") served_by_candidate.insert(i);
    }
    gateway.StopAndReadPairs();
  }
  json saved = json::parse(ReadFile(state_file), nullptr, false);
  EXPECT_EQ(saved["state"], "PAUSED");
  EXPECT_EQ(saved["share"], 40);

  GatewayProcess restarted(config, dir);
  ASSERT_TRUE(restarted.ready());
  EXPECT_NE(restarted.process().Log().find("resumed from " + state_file + ": PAUSED"),
            std::string::npos)
      << restarted.process().Log();
  auto state = State(restarted);
  EXPECT_EQ(state["state"], "PAUSED");
  EXPECT_EQ(state["share"], 40);
  EXPECT_EQ(state["decisions"].size(), 2u);  // start, share: from before the restart
  // The same users on the same side as before the restart.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(Ask(restarted, User(i)), served_by_candidate.count(i) ? "cpu" : "gpu") << User(i);
  }
}

// Step 3: the report's timeline is kept in the state file, so a report written after a restart
// shows the evaluations from before it too.
TEST(CutoverIntegrationTest, TheReportAfterARestartShowsTheWholeTimeline) {
  TempDir dir;
  SwitchableUpstream gpu("gpu"), cpu("cpu");
  const std::string state_file = (dir.path() / "cutover-r.json").string();
  auto config =
      CutoverConfig(dir, gpu.port(), cpu.port(),
                    {{"evaluation_interval", "200ms"},
                     {"state_file", state_file},
                     {"steps", {{{"share", 50}, {"min_judged", 1000000}}, {{"share", 100}}}}});
  auto points_in_file = [&] {
    json saved = json::parse(ReadFile(state_file), nullptr, false);
    return saved.is_object() ? saved.value("timeline", json::array()).size() : size_t{0};
  };
  size_t before = 0;
  {
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    Post(gateway, "start");
    for (int i = 0; i < 40; ++i) ASSERT_FALSE(Ask(gateway, User(i)).empty());
    ASSERT_TRUE(WaitUntil([&] { return points_in_file() >= 3; }, 20s)) << ReadFile(state_file);
    gateway.StopAndReadPairs();
    before = points_in_file();
  }
  const double restarted_at =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  GatewayProcess restarted(config, dir);
  ASSERT_TRUE(restarted.ready());
  for (int i = 0; i < 40; ++i) ASSERT_FALSE(Ask(restarted, User(i)).empty());
  ASSERT_TRUE(WaitUntil([&] { return points_in_file() >= before + 2; }, 20s));
  Post(restarted, "report?name=after-restart", 201);
  json report = json::parse(ReadFile(dir.path() / "reports" / "after-restart" / "cutover.json"),
                            nullptr, false);
  ASSERT_TRUE(report.is_object());
  size_t earlier = 0, later = 0, judged_earlier = 0;
  for (const auto& point : report["timeline"]) {
    EXPECT_EQ(point["share"], 50) << point;
    if (point["t_s"].get<double>() < restarted_at) {
      ++earlier;
      judged_earlier = std::max(judged_earlier, point["judged"].get<size_t>());
    } else {
      ++later;
    }
  }
  EXPECT_EQ(earlier, before);
  EXPECT_GE(later, 2u);
  EXPECT_GT(judged_earlier, 0u);  // the evidence judged before the restart is on the chart
  EXPECT_EQ(report["decisions"][0]["decision"], "start");
  EXPECT_EQ(report["state"], "RUNNING");
}

// A state file the gateway could not write: `check` and the start refuse the config with the
// config file, the JSON path and the reason (exit 2), before anything starts.
TEST(CutoverIntegrationTest, AStateFileThatCannotBeWrittenIsRefusedByCheckAndAtStart) {
  TempDir dir;
  dir.Write("plain-file", "");
  std::filesystem::create_directories(dir.path() / "a-folder");
  std::vector<std::pair<std::string, std::string>> cases = {
      {(dir.path() / "missing" / "cutover.json").string(),
       "folder \"" + (dir.path() / "missing").string() + "\" does not exist"},
      {(dir.path() / "plain-file" / "cutover.json").string(),
       "\"" + (dir.path() / "plain-file").string() + "\" is not a folder"},
      {(dir.path() / "a-folder").string(),
       "\"" + (dir.path() / "a-folder").string() + "\" is a folder, not a file"}};
  if (geteuid() != 0) {  // root writes everywhere
    std::filesystem::create_directories(dir.path() / "read-only");
    chmod((dir.path() / "read-only").c_str(), 0500);
    cases.push_back({(dir.path() / "read-only" / "cutover.json").string(),
                     "folder \"" + (dir.path() / "read-only").string() + "\" is not writable"});
  }
  for (const auto& [state_file, reason] : cases) {
    auto config = CutoverConfig(dir, FreePort(), FreePort(),
                                {{"state_file", state_file}, {"steps", {{{"share", 100}}}}});
    config["listen"] = Addr(FreePort());
    config["admin_listen"] = Addr(FreePort());
    auto path = dir.Write("gw.json", config.dump());
    for (auto args : {std::vector<std::string>{"check", "--config", path.string()},
                      std::vector<std::string>{"--config", path.string()}}) {
      auto result = RunShadowgate(args, dir.path());
      EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.output;
      EXPECT_NE(result.output.find(path.string() + ": $.routes[0].cutover.state_file: " + reason),
                std::string::npos)
          << result.output;
    }
  }
  // A folder that exists and a new file: accepted.
  auto config = CutoverConfig(dir, FreePort(), FreePort(),
                              {{"state_file", (dir.path() / "a-folder" / "cutover.json").string()},
                               {"steps", {{{"share", 100}}}}});
  auto result = RunShadowgate({"check", "--config", dir.Write("gw.json", config.dump()).string()},
                              dir.path());
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

}  // namespace
}  // namespace sg::testing
