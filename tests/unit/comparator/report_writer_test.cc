#include "comparator/report_writer.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "comparator/gates.h"
#include "comparator/svg_chart.h"
#include "tests/support/test_support.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

json SampleReport() {
  auto config = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  config->rules.push_back(r);
  Comparison c(config);
  for (int i = 0; i < 50; ++i) {
    auto p = MakePair("id" + std::to_string(i), R"({"Coat": 0.8, "Bag": 0.2})",
                      i % 10 ? R"({"Coat": 0.79, "Bag": 0.21})"
                             : R"({"Bag": 0.7, "<script>alert(1)</script>": 0.3})",
                      4000 + i * 10, 5000 + i * 20);
    p.ts_us += i * 1000000;
    c.Add(p);
  }
  GateConfig gates = ParseConfig<GateConfig>(
      R"({"gates": [{"metric": "pairs", "min": 10}, {"metric": "top1_agreement", "min": 0.95}]})",
      "g.json", ParseGateConfig);
  return BuildReport(c, gates, {"unit", {"a.jsonl"}, "r.json", "g.json", {}});
}

TEST(ReportWriter, ReportJsonHasTheDocumentedTopLevel) {
  json r = SampleReport();
  EXPECT_EQ(r["schema"], kReportSchema);
  EXPECT_EQ(r["run"], "unit");
  EXPECT_EQ(r["verdict"]["verdict"], "FAIL");  // agreement 0.9 < 0.95
  EXPECT_EQ(r["verdict"]["exit_code"], 1);
  for (const char* key :
       {"pairs", "outcomes", "rates", "classification", "accuracy", "latency", "slices", "timeline",
        "counters", "examples", "malformed", "status_matrix", "differing_fields"}) {
    EXPECT_TRUE(r["comparison"].contains(key)) << key;
  }
}

TEST(ReportWriter, MarkdownHasVerdictGatesAndLocustTable) {
  const std::string md = RenderMarkdown(SampleReport());
  EXPECT_NE(md.find("**Verdict: FAIL**"), std::string::npos);
  EXPECT_NE(md.find("| Gate | Metric | Status | Value | Bound | Reason |"), std::string::npos);
  EXPECT_NE(md.find("| Type | Name | # reqs | # fails | Avg (ms) | Min (ms) | Max (ms) | Med (ms) "
                    "| req/s | failures/s |"),
            std::string::npos);
  EXPECT_NE(md.find("| primary | Aggregated | 50 | 0 |"), std::string::npos) << md;
}

TEST(ReportWriter, MarkdownKeepsWhatPairsCarryAsText) {
  // Markdown renders raw HTML: a label, id or reason from a pair must not become markup.
  json r = SampleReport();
  r["comparison"]["examples"][0]["id"] = "<script>alert(2)</script>";
  r["verdict"]["notes"] = {"Not evaluated: gate <b>x</b> (why | so)."};
  const std::string md = RenderMarkdown(r);
  EXPECT_EQ(md.find("<script>"), std::string::npos);
  EXPECT_EQ(md.find("<b>"), std::string::npos);
  EXPECT_NE(md.find("&lt;script&gt;alert(2)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(md.find("> **Note:** Not evaluated: gate &lt;b&gt;x&lt;/b&gt; (why \\| so)."),
            std::string::npos)
      << md;
}

TEST(ReportWriter, NotesCoverageAndWorstSlicesLeadTheReports) {
  auto config = std::make_shared<CompareConfig>(DefaultCompareConfig());
  Comparison c(config);
  for (int i = 0; i < 300; ++i) {
    auto p =
        MakePair(std::to_string(i), R"({"Coat": 0.8, "Bag": 0.2})", R"({"Coat": 0.8, "Bag": 0.2})");
    p.route = std::string(i % 2 ? "a" : "b");
    c.Add(p);
  }
  MirrorCounters m;
  m.ts_us = 1;
  m.instance = "gw";
  m.route = "a";
  m.mirror = "student";
  m.requests = 1000;
  m.not_mirrored = {{"overload", 500}};
  m.mirrored = {{"ok", 500}};
  c.AddCounters(m);
  const json r = BuildReport(c, DefaultGateConfig(), {"unit", {"a.jsonl"}, "r", "g", {}});
  EXPECT_EQ(r["verdict"]["verdict"], "MARGINAL");
  const std::string md = RenderMarkdown(r);
  const size_t note = md.find("> **Note:** coverage");
  ASSERT_NE(note, std::string::npos) << md;
  EXPECT_LT(note, md.find("## Gates"));
  EXPECT_NE(md.find("left out: overload 500"), std::string::npos);
  EXPECT_NE(md.find("## Where a regression could hide (worst slices)"), std::string::npos);
  EXPECT_NE(md.find("| a | student | 1000 | 0 | 500 | overload 500 | 50% |"), std::string::npos)
      << md;
  const std::string html = RenderHtml(r);
  EXPECT_LT(html.find("class=\"note\""), html.find("<h2>Gates</h2>"));
}

// What the pair records left out (the gateway's capture policy, the counters line's
// "not_captured") is in the coverage section of report.md and report.html, per route and mirror,
// and in the mirroring counters; "-" where nothing was left out.
TEST(ReportWriter, CoverageSaysWhatTheRecordsDidNotCapture) {
  auto config = std::make_shared<CompareConfig>(DefaultCompareConfig());
  Comparison c(config);
  for (int i = 0; i < 100; ++i) {
    c.Add(MakePair(std::to_string(i), R"({"Coat": 0.8, "Bag": 0.2})",
                   R"({"Coat": 0.8, "Bag": 0.2})"));
  }
  MirrorCounters m;
  m.ts_us = 1;
  m.instance = "gw";
  m.route = "a";
  m.mirror = "student";
  m.requests = 100;
  m.mirrored = {{"ok", 100}};
  m.not_captured = {{"body_sampled_out", 97}, {"body_truncated", 2}};
  c.AddCounters(m);
  MirrorCounters all = m;
  all.mirror = "teacher";
  all.not_captured = {{"body_sampled_out", 0}, {"body_truncated", 0}};
  c.AddCounters(all);
  const json r = BuildReport(c, DefaultGateConfig(), {"unit", {"a.jsonl"}, "r", "g", {}});
  EXPECT_EQ(r["comparison"]["coverage"]["parts"][0]["not_captured"]["body_sampled_out"], 97);

  const std::string md = RenderMarkdown(r);
  const size_t coverage = md.find("## Coverage");
  ASSERT_NE(coverage, std::string::npos);
  const std::string section = md.substr(coverage, md.find("\n## ", coverage + 1) - coverage);
  EXPECT_NE(section.find("| Coverage | Not captured (request bodies) |"), std::string::npos)
      << section;
  EXPECT_NE(section.find("| a | student | 100 | 0 | 100 | - | 100% | body_sampled_out 97, "
                         "body_truncated 2 |"),
            std::string::npos)
      << section;
  EXPECT_NE(section.find("| a | teacher | 100 | 0 | 100 | - | 100% | - |"), std::string::npos)
      << section;
  EXPECT_NE(md.find("| not captured: body_sampled_out | 97 |"), std::string::npos) << md;

  const std::string html = RenderHtml(r);
  const size_t html_coverage = html.find("<h2>Coverage</h2>");
  ASSERT_NE(html_coverage, std::string::npos);
  const std::string html_section =
      html.substr(html_coverage, html.find("<h2>", html_coverage + 1) - html_coverage);
  EXPECT_NE(html_section.find("<th>Not captured (request bodies)</th>"), std::string::npos)
      << html_section;
  EXPECT_NE(html_section.find("body_sampled_out 97, body_truncated 2"), std::string::npos)
      << html_section;
}

// The cutovers' decisions from the logs (docs/pair-log.md, "cutover"): in time order whatever
// order the logs gave them, with their UTC time, and as a table in report.md and report.html
// only when there are some.
TEST(ReportWriter, CutoverDecisionsInTimeOrder) {
  CutoverDecision start, rollback;
  start.ts_us = 1795000000000000;
  start.instance = "gw-a";
  start.route = "classify";
  start.mirror = "cpu";
  start.decision = "start";
  start.state = "RUNNING";
  start.step = 0;
  start.share = 25;
  rollback = start;
  rollback.ts_us += 3500000;
  rollback.decision = "rollback";
  rollback.state = "ROLLED_BACK";
  rollback.share = 0;
  rollback.gate = "errors";
  rollback.metric = "shadow_error_rate";
  rollback.value = 0.31;
  rollback.bound = 0.002;
  rollback.bound_kind = "max";
  rollback.reason = "<gate>";
  json decisions = CutoverDecisionsJson({rollback, start});
  ASSERT_EQ(decisions.size(), 2u);
  EXPECT_EQ(decisions[0]["decision"], "start");
  EXPECT_EQ(decisions[0]["at"], "2026-11-18T11:06:40.000Z");
  EXPECT_FALSE(decisions[0].contains("gate"));
  EXPECT_EQ(decisions[1]["bound"], 0.002);
  EXPECT_FALSE(decisions[1].contains("type"));

  json r = SampleReport();
  EXPECT_EQ(RenderMarkdown(r).find("Cutover decisions"), std::string::npos);
  r["cutover_decisions"] = decisions;
  const std::string md = RenderMarkdown(r);
  EXPECT_NE(md.find("## Cutover decisions"), std::string::npos);
  EXPECT_NE(md.find("| 2026-11-18T11:06:43.500Z | gw-a | classify | cpu | rollback | ROLLED_BACK | "
                    "0 | 0% | errors (shadow_error_rate) | 0.31 | max 0.002 | &lt;gate&gt; |"),
            std::string::npos)
      << md;
  const std::string html = RenderHtml(r);
  EXPECT_NE(html.find("<h2>Cutover decisions</h2>"), std::string::npos);
  EXPECT_EQ(html.find("<gate>"), std::string::npos);
}

TEST(ReportWriter, HtmlIsSelfContainedAndEscaped) {
  const std::string html = RenderHtml(SampleReport());
  EXPECT_GE(Count(html, "<svg"), 7u);  // percentiles, CDF, histogram, agreement, p99, fields,
                                       // confusion matrix
  EXPECT_EQ(Count(html, "<script"), 0u);
  EXPECT_EQ(Count(html, "src=\"http"), 0u);
  EXPECT_EQ(Count(html, "href=\"http"), 0u);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<script>alert(1)"), std::string::npos);
  EXPECT_EQ(HtmlEscape(R"(<a href="x">'&')"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;");
}

TEST(ReportWriter, WritesThreeFiles) {
  sg::testing::TempDir dir;
  std::string error;
  ASSERT_TRUE(WriteReports(SampleReport(), dir.path() / "run", &error)) << error;
  for (const char* name : {"report.json", "report.md", "report.html"}) {
    std::ifstream in(dir.path() / "run" / name);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_GT(ss.str().size(), 100u) << name;
  }
  std::ifstream in(dir.path() / "run" / "report.json");
  EXPECT_EQ(json::parse(in)["verdict"]["verdict"], "FAIL");
  EXPECT_FALSE(WriteReports(SampleReport(), "/proc/forbidden/run", &error));
}

TEST(SvgChart, EmptyDataSaysSo) {
  const std::string s = LineChart({}, {"t", "x", "y", false, false, 100, 100});
  EXPECT_NE(s.find("no data"), std::string::npos);
  EXPECT_NE(s.find("<svg"), std::string::npos);
}

// The y-axis tick labels of a chart, in order.
std::vector<std::string> YTicks(const std::string& svg) {
  std::vector<std::string> ticks;
  const std::string open = "text-anchor=\"end\" class=\"tk\">";
  for (size_t at = svg.find(open); at != std::string::npos; at = svg.find(open, at)) {
    at += open.size();
    ticks.push_back(svg.substr(at, svg.find('<', at) - at));
  }
  return ticks;
}

TEST(SvgChart, YAxisTicksAreRoundNumbers) {
  const ChartOptions o{"t", "x", "y", false, false, 300, 200};
  auto bars = [&](double max) {
    return YTicks(BarChart({"a", "b"}, {{"s", "#000", {{0, 1}, {1, max}}}}, o));
  };
  EXPECT_EQ(bars(47.05), (std::vector<std::string>{"0", "10", "20", "30", "40", "50"}));
  EXPECT_EQ(bars(1090), (std::vector<std::string>{"0", "250", "500", "750", "1000", "1250"}));
  EXPECT_EQ(bars(1), (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"}));
  EXPECT_EQ(YTicks(LineChart({{"s", "#000", {{0, 0.3}, {1, 3}}}}, o)),
            (std::vector<std::string>{"0", "1", "2", "3"}));
}

}  // namespace
}  // namespace sg::comparator
