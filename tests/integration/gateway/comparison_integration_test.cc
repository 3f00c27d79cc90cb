// The in-process comparator end to end: the real shadowgate binary mirroring nginx upstreams
// (the shadow answers some paths differently), judged online, read through the admin endpoints,
// reported on demand and at SIGTERM; and `shadowgate check` on bad comparison sections.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::optional<HttpResponse> Post(int port, const std::string& target) {
  HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = target;
  return Http(port, spec);
}

TEST(ComparisonTest, JudgesMirroredPairsOnlineReportsOnDemandAndFlushesAtStop) {
  TempDir dir;
  auto upstreams = StartJudgedUpstreams(dir);
  ASSERT_TRUE(upstreams.ready);
  const int primary_port = upstreams.primary_port;
  const int shadow_port = upstreams.shadow_port;

  // Relative input paths are relative to the gateway config's directory (dir).
  dir.Write("rules.json", kJudgedRules);
  dir.Write("gates.json", kJudgedGates);
  const fs::path reports = dir.path() / "reports";
  auto config = MakeConfig(primary_port, shadow_port);
  config["comparison"] = {{"rules", "rules.json"},
                          {"gates", "gates.json"},
                          {"queue_capacity", 64},
                          {"run", "live"},
                          {"report_dir", reports.string()}};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());

  const std::map<std::string, int> requests = {{"/same", 15}, {"/close", 6}, {"/diff", 9}};
  const int total = 30;
  for (const auto& [path, count] : requests) {
    for (int i = 0; i < count; ++i) {
      auto response = HttpGet(gateway.port(), path + "/" + std::to_string(i));
      ASSERT_TRUE(response);
      ASSERT_EQ(response->status, 200);
      EXPECT_EQ(response->body, R"({"v": 1})");  // the client only ever sees the primary
    }
  }

  // Pairs are judged off the I/O threads, shortly after both sides answered.
  json current;
  ASSERT_TRUE(WaitUntil(
      [&] {
        current = AdminComparison(gateway);
        return current.is_object() && current["comparison"]["pairs"] == total;
      },
      5s))
      << current.dump(2);
  auto response = HttpGet(gateway.admin_port(), "/admin/comparison");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("content-type"), "application/json");
  EXPECT_EQ(current["schema"], "shadowgate.comparison.v1");
  EXPECT_EQ(current["run"], "live");
  const auto& outcomes = current["comparison"]["outcomes"];
  EXPECT_EQ(outcomes["match"], 15) << outcomes.dump();
  EXPECT_EQ(outcomes["within_tolerance"], 6) << outcomes.dump();
  EXPECT_EQ(outcomes["mismatch"], 9) << outcomes.dump();
  EXPECT_EQ(outcomes["shadow_error"], 0);
  EXPECT_EQ(outcomes["primary_error"], 0);
  EXPECT_EQ(current["comparison"]["rules"]["api"], total);
  // The gates were loaded: 9/30 mismatches fail the 5% gate.
  EXPECT_EQ(current["verdict"]["verdict"], "FAIL") << current["verdict"].dump();
  EXPECT_EQ(current["queue"]["accepted"], total);
  EXPECT_EQ(current["queue"]["judged"], total);
  EXPECT_EQ(current["queue"]["dropped"], 0);
  EXPECT_EQ(current["queue"]["capacity"], 64);

  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_records_accepted_total"), total);
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_records_judged_total"), total);
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_records_dropped_total"), 0);
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_queue_depth"), 0);
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_queue_capacity"), 64);

  // A report on demand: three files under report_dir/NAME.
  auto created = Post(gateway.admin_port(), "/admin/comparison/report?name=run-1");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  EXPECT_EQ(json::parse(created->body)["dir"], (reports / "run-1").string());
  for (const char* file : {"report.json", "report.md", "report.html"}) {
    EXPECT_GT(fs::file_size(reports / "run-1" / file), 0u) << file;
  }
  auto report = ReadJsonFile(reports / "run-1" / "report.json");
  EXPECT_EQ(report["comparison"]["pairs"], total);
  EXPECT_EQ(report["comparison"]["outcomes"]["mismatch"], 9);
  EXPECT_EQ(report["verdict"]["verdict"], "FAIL");
  EXPECT_EQ(report["inputs"]["rules"], (dir.path() / "rules.json").string());
  EXPECT_EQ(report["inputs"]["gates"], (dir.path() / "gates.json").string());
  // Without a name: a timestamped one.
  auto unnamed = Post(gateway.admin_port(), "/admin/comparison/report");
  ASSERT_TRUE(unnamed);
  ASSERT_EQ(unnamed->status, 201) << unnamed->body;
  auto unnamed_name = json::parse(unnamed->body)["name"].get<std::string>();
  EXPECT_TRUE(unnamed_name.starts_with("report-")) << unnamed_name;
  EXPECT_TRUE(fs::exists(reports / unnamed_name / "report.html"));

  // Refused: an existing report, names that are paths or not plain, other parameters, methods.
  EXPECT_EQ(Post(gateway.admin_port(), "/admin/comparison/report?name=run-1")->status, 409);
  for (const char* query : {"name=../escaped", "name=a/b", "name=a%2Fb", "name=.hidden",
                            "name=", "name=a&name=b", "dir=/tmp", "name=x&x=1"}) {
    auto refused = Post(gateway.admin_port(), std::string("/admin/comparison/report?") + query);
    ASSERT_TRUE(refused) << query;
    EXPECT_EQ(refused->status, 400) << query << ": " << refused->body;
    EXPECT_EQ(refused->Header("content-type"), "application/json") << query;
  }
  EXPECT_FALSE(fs::exists(dir.path() / "escaped"));
  EXPECT_EQ(HttpGet(gateway.admin_port(), "/admin/comparison/report")->status, 405);
  EXPECT_EQ(Post(gateway.admin_port(), "/admin/comparison")->status, 405);

  // The pair log still gets every pair: records go to both sinks.
  auto entries = gateway.StopAndReadPairs();
  int pairs = 0;
  for (const auto& entry : entries) pairs += std::holds_alternative<PairRecord>(entry) ? 1 : 0;
  EXPECT_EQ(pairs, total);

  // SIGTERM: the comparator judged everything queued (the final counters records included)
  // before the final report was written.
  std::vector<fs::path> finals;
  for (const auto& entry : fs::directory_iterator(reports)) {
    if (entry.path().filename().string().starts_with("final-")) finals.push_back(entry.path());
  }
  ASSERT_EQ(finals.size(), 1u);
  auto final_report = ReadJsonFile(finals[0] / "report.json");
  EXPECT_EQ(final_report["comparison"]["pairs"], total);
  EXPECT_EQ(final_report["comparison"]["counters"]["requests"], total)
      << final_report["comparison"]["counters"].dump();
  EXPECT_TRUE(fs::exists(finals[0] / "report.md"));
  EXPECT_TRUE(fs::exists(finals[0] / "report.html"));
}

TEST(ComparisonTest, EndpointsAnswer404WithoutAComparisonSection) {
  TempDir dir;
  TestUpstream primary({TestUpstream::Mode::kFixed});
  TestUpstream shadow({TestUpstream::Mode::kFixed});
  GatewayProcess gateway(MakeConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  for (auto response : {HttpGet(gateway.admin_port(), "/admin/comparison"),
                        Post(gateway.admin_port(), "/admin/comparison/report?name=x")}) {
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 404);
    EXPECT_EQ(response->Header("content-type"), "application/json");
    auto body = json::parse(response->body, nullptr, false);
    EXPECT_EQ(body["code"], 404) << response->body;
    EXPECT_NE(body["message"].get<std::string>().find("no comparison configured"),
              std::string::npos);
  }
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_records_accepted_total"), 0);
}

TEST(ComparisonTest, ReportOnDemandNeedsAReportDir) {
  TempDir dir;
  TestUpstream primary({TestUpstream::Mode::kFixed});
  auto rules = dir.Write("rules.json", kJudgedRules);
  auto config = MakeConfig(primary.port());
  config["comparison"] = {{"rules", rules.string()}};  // no gates, no report_dir
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto current = AdminComparison(gateway);
  ASSERT_TRUE(current.is_object());
  EXPECT_EQ(current["comparison"]["pairs"], 0);
  EXPECT_FALSE(current.contains("verdict"));  // no gates, no verdict
  auto refused = Post(gateway.admin_port(), "/admin/comparison/report?name=x");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 403) << refused->body;
}

TEST(ComparisonTest, CheckRefusesBadComparisonSectionsWithTheirJsonPaths) {
  TempDir dir;
  auto base = MakeConfig(FreePort(), FreePort());
  auto write_config = [&](const std::string& name, const json& comparison) {
    json config = base;
    config["comparison"] = comparison;
    return dir.Write(name, config.dump(2));
  };

  auto bad = write_config(
      "bad.json",
      {{"rules", "missing.json"}, {"queue_capacity", 0}, {"report_dir", ""}, {"extra", true}});
  auto check = RunCheck(bad);
  EXPECT_EQ(check.exit_code, 2) << check.output;
  const std::vector<std::string> expected_problems = {
      ": $.comparison.rules: cannot open compare config \"" +
          (dir.path() / "missing.json").string() + "\"",
      ": $.comparison.queue_capacity: must be in [1, 1e+07], got 0",
      ": $.comparison.report_dir: must not be empty", ": $.comparison.extra: unknown key"};
  for (const auto& expected : expected_problems) {
    EXPECT_NE(check.output.find(bad.string() + expected), std::string::npos) << expected << "\n"
                                                                             << check.output;
  }

  // Problems inside the referenced files come from the comparator's loaders, with their paths.
  auto rules = dir.Write("bad-rules.json", R"({"rules": [{"name": "x", "kind": "nope"}]})");
  auto gates = dir.Write("bad-gates.json", R"({"gates": [{"metric": "nope", "min": 1}]})");
  auto bad_files =
      write_config("bad-files.json", {{"rules", "bad-rules.json"}, {"gates", "bad-gates.json"}});
  check = RunCheck(bad_files);
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find(rules.string() + ": $.rules[0].kind"), std::string::npos)
      << check.output;
  EXPECT_NE(check.output.find(gates.string() + ": $.gates[0].metric"), std::string::npos)
      << check.output;
  EXPECT_NE(check.output.find(bad_files.string() + ": $.comparison.rules: \"" + rules.string() +
                              "\" is not a valid compare config"),
            std::string::npos)
      << check.output;

  auto no_rules = write_config("no-rules.json", {{"gates", "bad-gates.json"}});
  check = RunCheck(no_rules);
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_NE(check.output.find(no_rules.string() + ": $.comparison: missing required key \"rules\""),
            std::string::npos)
      << check.output;

  dir.Write("rules.json", kJudgedRules);
  dir.Write("gates.json", kJudgedGates);
  auto good = write_config("good.json", {{"rules", "rules.json"}, {"gates", "gates.json"}});
  check = RunCheck(good);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

}  // namespace
}  // namespace sg::testing
