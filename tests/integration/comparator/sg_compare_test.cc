// sg-compare end to end: real binary, real files, exit codes, reports, and the HTML report
// loaded in a real headless Chromium.

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "common/zstd_file.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using RunResult = sg::testing::ToolResult;
using sg::testing::ReadFile;

RunResult RunProgram(const std::vector<std::string>& argv, const fs::path& dir,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) {
  return sg::testing::RunToCompletion(argv, dir, timeout);
}

std::string SgCompare() {
  return (sg::testing::BinDir() / "sg-compare").string();
}

// `n` classification pairs; `flip_every` > 0 makes every flip_every-th pair a top-1 flip.
std::string Pairs(int n, int flip_every, int64_t shadow_extra_us = 1000, int first_id = 0) {
  const char* labels[] = {"Trouser", "Bag", "Coat", "Sneaker"};
  std::string out;
  for (int i = first_id; i < first_id + n; ++i) {
    const std::string top = labels[i % 4], second = labels[(i + 1) % 4];
    PairRecord p;
    p.id = "req-" + std::to_string(i);
    p.ts_us = 1795000000000000 + static_cast<int64_t>(i) * 10000;
    p.route = "classify";
    p.mirror = "student";
    p.request = {"POST",
                 "/predictions/fashion",
                 784,
                 std::string(64, 'b'),
                 {{"x-true-label", top}, {"authorization", "Bearer s3cret"}},
                 std::nullopt,
                 false};
    p.primary.status = 200;
    p.primary.outcome = "ok";
    p.primary.latency_us = 4000 + (i * 37) % 1500;
    p.primary.headers["content-type"] = "application/json";
    p.primary.body = json{{top, 0.9}, {second, 0.1}}.dump();
    p.shadow = p.primary;
    p.shadow.latency_us = p.primary.latency_us + shadow_extra_us + (i * 53) % 400;
    const bool flip = flip_every > 0 && i % flip_every == 0;
    p.shadow.body =
        flip ? json{{top, 0.3}, {second, 0.7}}.dump() : json{{top, 0.89}, {second, 0.11}}.dump();
    out += EncodePairLogLine(p) + "\n";
  }
  return out;
}

constexpr const char* kRules = R"({"rules": [{"name": "fashion", "kind": "classification",
                                               "max_prob_diff": 0.05}]})";
constexpr const char* kGates = R"({"gates": [
    {"metric": "pairs", "min": 200},
    {"metric": "top1_agreement", "min": 0.97, "marginal": 0.93},
    {"metric": "accuracy_delta", "min": -0.1},
    {"metric": "shadow_error_rate", "max": 0.01},
    {"metric": "latency_shift_ms", "max": 5}]})";

class SgCompareTest : public ::testing::Test {
 protected:
  RunResult Report(const std::string& pairs, const std::string& rules = kRules,
                   const std::string& gates = kGates, const std::vector<std::string>& extra = {}) {
    const auto pairs_path = dir_.Write("pairs.jsonl", pairs);
    const auto rules_path = dir_.Write("rules.json", rules);
    const auto gates_path = dir_.Write("gates.json", gates);
    std::vector<std::string> argv = {SgCompare(), "report",
                                     "--pairs",   pairs_path.string(),
                                     "--rules",   rules_path.string(),
                                     "--gates",   gates_path.string(),
                                     "--out",     out().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProgram(argv, dir_.path());
  }
  fs::path out() const { return dir_.path() / "reports" / "run1"; }
  json ReportJson() const { return json::parse(ReadFile(out() / "report.json")); }

  sg::testing::TempDir dir_;
};

TEST_F(SgCompareTest, PassWritesAllThreeReports) {
  auto r = Report(Pairs(400, 0));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verdict: PASS"), std::string::npos) << r.out;
  for (const char* f : {"report.json", "report.md", "report.html"}) {
    EXPECT_TRUE(fs::exists(out() / f)) << f;
  }
  json j = ReportJson();
  EXPECT_EQ(j["schema"], "shadowgate.comparison.v1");
  EXPECT_EQ(j["run"], "run1");
  EXPECT_EQ(j["verdict"]["verdict"], "PASS");
  EXPECT_EQ(j["comparison"]["pairs"], 400);
  EXPECT_EQ(j["comparison"]["outcomes"]["within_tolerance"], 400);
  EXPECT_NEAR(j["comparison"]["accuracy"]["delta"].get<double>(), 0, 1e-12);
  // The shadow is ~1.2 ms slower on every request: the paired test finds it.
  const auto& w = j["comparison"]["latency"]["wilcoxon_signed_rank"];
  EXPECT_GT(w["ci_low_ms"].get<double>(), 1.0);
  EXPECT_LT(w["ci_high_ms"].get<double>(), 1.5);
  // The secret header never reaches a report.
  EXPECT_EQ(ReadFile(out() / "report.json").find("s3cret"), std::string::npos);
  EXPECT_EQ(ReadFile(out() / "report.html").find("s3cret"), std::string::npos);
}

TEST_F(SgCompareTest, ExitCodesFollowTheVerdict) {
  EXPECT_EQ(Report(Pairs(400, 5)).exit_code, 1);  // 80% agreement: FAIL
  EXPECT_EQ(ReportJson()["verdict"]["verdict"], "FAIL");
  EXPECT_EQ(Report(Pairs(400, 20)).exit_code, 3);  // 95%: MARGINAL
  EXPECT_EQ(ReportJson()["verdict"]["verdict"], "MARGINAL");
  EXPECT_EQ(Report(Pairs(100, 0)).exit_code, 4);  // too few pairs
  EXPECT_EQ(ReportJson()["verdict"]["verdict"], "INSUFFICIENT_DATA");
  EXPECT_EQ(Report(Pairs(400, 0, 9000)).exit_code, 1);  // 9 ms slower, allowed 5
}

TEST_F(SgCompareTest, BadInputExitsTwoWithFileAndPath) {
  auto r = Report(Pairs(10, 0), R"({"rules": [{"name": "x", "kind": "classification",
                                               "top_k": 0, "tolerence": 1}]})");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("rules.json: $.rules[0].top_k: must be in [1, 1000], got 0"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("rules.json: $.rules[0].tolerence: unknown key"), std::string::npos)
      << r.err;
  r = Report(Pairs(10, 0), kRules, R"({"gates": [{"metric": "p42", "max": 1}]})");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("gates.json: $.gates[0].metric: unknown metric"), std::string::npos)
      << r.err;
  r = Report(Pairs(10, 0), "{not json");
  EXPECT_EQ(r.exit_code, 2);
  r = RunProgram({SgCompare(), "report", "--pairs", "/nonexistent.jsonl", "--rules",
                  dir_.Write("r.json", kRules).string(), "--gates",
                  dir_.Write("g.json", kGates).string(), "--out", out().string()},
                 dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent.jsonl: cannot open"), std::string::npos) << r.err;
  r = RunProgram({SgCompare(), "report", "--pairs", "x"}, dir_.path());
  EXPECT_EQ(r.exit_code, 2);
  r = RunProgram({SgCompare(), "frobnicate"}, dir_.path());
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(SgCompareTest, CheckValidatesConfigsWithoutPairs) {
  // `sg-compare check` (docs/comparator.md): exit 0 for good configs and the built-in defaults, 2
  // naming the file and the JSON path of each problem.
  const auto rules = dir_.Write("rules.json", kRules);
  const auto gates = dir_.Write("gates.json", kGates);
  auto ok = RunProgram({SgCompare(), "check", "--rules", rules.string(), "--gates", gates.string()},
                       dir_.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  auto defaults = RunProgram({SgCompare(), "check", "--defaults"}, dir_.path());
  EXPECT_EQ(defaults.exit_code, 0) << defaults.out << defaults.err;
  const auto bad = dir_.Write("bad-gates.json", R"({"gates": [{"metric": "pairs", "mni": 2}]})");
  auto refused = RunProgram({SgCompare(), "check", "--gates", bad.string()}, dir_.path());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE((refused.out + refused.err).find(bad.string() + ": $.gates[0].mni: unknown key"),
            std::string::npos)
      << refused.out << refused.err;
}

TEST_F(SgCompareTest, RunNamesTheReport) {
  auto r = Report(Pairs(300, 0), kRules, kGates, {"--run", "canary-42"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReportJson()["run"], "canary-42");
  EXPECT_NE(ReadFile(out() / "report.md").find("canary-42"), std::string::npos);
}

TEST_F(SgCompareTest, MalformedLinesAreCountedNotFatal) {
  std::string pairs = Pairs(300, 0);
  pairs.insert(pairs.find('\n', pairs.size() / 2) + 1,
               "garbage line\n{\"v\": 1, \"type\": \"pair\"}\n");
  pairs += R"({"v": 1, "type": "pair", "id": "cut)";  // truncated last line
  auto r = Report(pairs);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  json j = ReportJson();
  EXPECT_EQ(j["comparison"]["pairs"], 300);
  EXPECT_EQ(j["comparison"]["malformed"]["count"], 3);
}

TEST_F(SgCompareTest, MirrorSelectsOneCandidateOfASharedLog) {
  // One gateway log, two candidates: "student" always agrees, "flaky" flips every 5th answer.
  std::string flaky = Pairs(400, 5, 1000, 400);
  const std::string from = "\"mirror\":\"student\"", to = "\"mirror\":\"flaky\"";
  for (size_t at = flaky.find(from); at != std::string::npos; at = flaky.find(from, at)) {
    flaky.replace(at, from.size(), to);
  }
  const std::string log = Pairs(400, 0) + flaky;

  auto together = Report(log);  // 90% agreement over both: FAIL, with a warning
  EXPECT_EQ(together.exit_code, 1) << together.out << together.err;
  EXPECT_EQ(ReportJson()["comparison"]["pairs"], 800);
  EXPECT_NE(together.err.find("several candidates together: flaky (400 pairs), student (400"),
            std::string::npos)
      << together.err;

  auto student = Report(log, kRules, kGates, {"--mirror", "student"});
  EXPECT_EQ(student.exit_code, 0) << student.out << student.err;
  json j = ReportJson();
  EXPECT_EQ(j["comparison"]["pairs"], 400);
  EXPECT_EQ(j["comparison"]["classification"]["top1_agreement"], 1.0);
  EXPECT_EQ(j["inputs"]["mirrors"], json::array({"student"}));
  EXPECT_EQ(student.err.find("several candidates"), std::string::npos) << student.err;

  auto only_flaky = Report(log, kRules, kGates, {"--mirror", "flaky"});
  EXPECT_EQ(only_flaky.exit_code, 1) << only_flaky.out << only_flaky.err;
  EXPECT_EQ(ReportJson()["comparison"]["pairs"], 400);

  auto none = Report(log, kRules, kGates, {"--mirror", "nobody"});
  EXPECT_EQ(none.exit_code, 4) << none.out;  // no pairs: INSUFFICIENT_DATA
  EXPECT_NE(none.err.find("--mirror nobody: no pairs"), std::string::npos) << none.err;
}

TEST_F(SgCompareTest, SeveralReplicaLogsEqualOneLog) {
  const auto a = dir_.Write("a.jsonl", Pairs(150, 7, 1000, 0));
  const auto b = dir_.Write("b.jsonl", Pairs(150, 7, 1000, 150));
  const auto both = dir_.Write("both.jsonl", Pairs(150, 7, 1000, 0) + Pairs(150, 7, 1000, 150));
  const auto rules = dir_.Write("r.json", kRules), gates = dir_.Write("g.json", kGates);
  auto r1 = RunProgram(
      {SgCompare(), "report", "--pairs", a.string(), b.string(), "--rules", rules.string(),
       "--gates", gates.string(), "--out", (dir_.path() / "split").string()},
      dir_.path());
  auto r2 = RunProgram({SgCompare(), "report", "--pairs", both.string(), "--rules", rules.string(),
                        "--gates", gates.string(), "--out", (dir_.path() / "joined").string()},
                       dir_.path());
  EXPECT_EQ(r1.exit_code, r2.exit_code);
  json j1 = json::parse(ReadFile(dir_.path() / "split" / "report.json"));
  json j2 = json::parse(ReadFile(dir_.path() / "joined" / "report.json"));
  EXPECT_EQ(j1["comparison"], j2["comparison"]);
  EXPECT_EQ(j1["verdict"], j2["verdict"]);
}

TEST_F(SgCompareTest, CompressedRotatedLogsJudgeAsTheirText) {
  // A replica's log as the gateway leaves it: the older half rotated and zstd-compressed.
  const auto older = dir_.Write("pairs.jsonl.1", Pairs(150, 7, 1000, 0));
  const auto live = dir_.Write("pairs.jsonl", Pairs(150, 7, 1000, 150));
  const auto both = dir_.Write("both.jsonl", Pairs(150, 7, 1000, 0) + Pairs(150, 7, 1000, 150));
  std::string error;
  ASSERT_TRUE(CompressFileZstd(older.string(), older.string() + ".zst", 3, &error)) << error;
  const auto rules = dir_.Write("r.json", kRules), gates = dir_.Write("g.json", kGates);
  auto run = [&](const std::vector<std::string>& pairs, const std::string& out) {
    std::vector<std::string> argv = {SgCompare(), "report", "--pairs"};
    argv.insert(argv.end(), pairs.begin(), pairs.end());
    for (const auto& arg : {"--rules", rules.c_str(), "--gates", gates.c_str(), "--out"}) {
      argv.push_back(arg);
    }
    argv.push_back((dir_.path() / out).string());
    return RunProgram(argv, dir_.path());
  };
  auto r1 = run({older.string() + ".zst", live.string()}, "zst");
  auto r2 = run({both.string()}, "text");
  EXPECT_EQ(r1.exit_code, r2.exit_code) << r1.err;
  json j1 = json::parse(ReadFile(dir_.path() / "zst" / "report.json"));
  json j2 = json::parse(ReadFile(dir_.path() / "text" / "report.json"));
  EXPECT_EQ(j1["comparison"]["pairs"], 300);
  EXPECT_EQ(j1["comparison"], j2["comparison"]);
  EXPECT_EQ(j1["verdict"], j2["verdict"]);
  // A compressed file cut short loses an unknown number of records: bad input, named.
  std::string bytes = ReadFile(older.string() + ".zst");
  const auto cut = dir_.Write("cut.jsonl.1.zst", bytes.substr(0, bytes.size() / 2));
  auto r3 = run({cut.string()}, "cut");
  EXPECT_EQ(r3.exit_code, 2);
  EXPECT_NE(r3.err.find("cut.jsonl.1.zst: truncated zstd frame"), std::string::npos) << r3.err;
}

// --- the HTML report in a real browser ---------------------------------------------------------

struct BrowserResult {
  int exit_code = -1;
  std::string dom;
  std::string log;
};

BrowserResult LoadInChromium(const fs::path& html, const fs::path& work) {
  fs::create_directories(work / "profile");
  auto r = RunProgram({"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                       "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
                       "--user-data-dir=" + (work / "profile").string(), "--dump-dom",
                       "file://" + fs::absolute(html).string()},
                      work, std::chrono::seconds(90));
  return {r.exit_code, r.out, r.err};
}

// Console messages (errors included) that the page produced.
std::vector<std::string> ConsoleLines(const std::string& log) {
  std::vector<std::string> out;
  std::stringstream ss(log);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.find(":CONSOLE(") != std::string::npos || line.find("Uncaught") != std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

class ChromiumTest : public SgCompareTest {
 protected:
  void SetUp() override {
    if (!fs::exists("/usr/bin/chromium")) GTEST_SKIP() << "chromium is not installed";
  }
};

TEST_F(ChromiumTest, ConsoleErrorsAreDetected) {
  // The detector itself: a page with a script error must be caught.
  const auto page = dir_.Write("broken.html",
                               "<!DOCTYPE html><html><body><p>x</p>"
                               "<script>undefinedFunction();</script></body></html>");
  auto b = LoadInChromium(page, dir_.path() / "broken");
  EXPECT_EQ(b.exit_code, 0) << b.log;
  EXPECT_FALSE(ConsoleLines(b.log).empty()) << b.log;
}

TEST_F(ChromiumTest, ReportRendersWithChartsAndNoErrors) {
  std::string pairs = Pairs(400, 20);
  auto r = Report(pairs);
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  auto b = LoadInChromium(out() / "report.html", dir_.path() / "browser");
  ASSERT_EQ(b.exit_code, 0) << b.log;
  EXPECT_TRUE(ConsoleLines(b.log).empty()) << b.log;
  // The DOM the browser built: the verdict and every chart, each with drawn content.
  EXPECT_NE(b.dom.find("id=\"verdict\""), std::string::npos);
  EXPECT_NE(b.dom.find(">MARGINAL<"), std::string::npos);
  const std::regex svg("<svg[^>]*class=\"chart\"");
  const auto charts =
      std::distance(std::sregex_iterator(b.dom.begin(), b.dom.end(), svg), std::sregex_iterator());
  EXPECT_GE(charts, 7);
  for (const char* title :
       {"Latency percentiles", "Latency CDF", "Latency histogram", "Agreement over time",
        "p99 latency over time", "Top differing fields", "Primary x shadow top-1"}) {
    EXPECT_NE(b.dom.find(title), std::string::npos) << title;
  }
  EXPECT_EQ(b.dom.find("no data"), std::string::npos);  // every chart had data
  EXPECT_NE(b.dom.find("class=\"series\""), std::string::npos);
  EXPECT_NE(b.dom.find("class=\"bar\""), std::string::npos);
  EXPECT_NE(b.dom.find("class=\"cell\""), std::string::npos);
}

}  // namespace
}  // namespace sg
