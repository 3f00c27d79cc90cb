// `make demo`, reduced: scripts/demo with the real executables, the committed Fashion-MNIST
// models and the Debian data set, then checks of its tune step (short: kTuneBudget), verdicts,
// reports, capacity section and clean-up.
//
// Every demo process gets TMPDIR = the test's own directory, so each one it starts (servers,
// their workers, the gateway, the load generator) has that path in its command line; the tests
// use it to prove that nothing outlives the demo.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/subprocess.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::ReadFile;

// Pids of live processes whose command line mentions `token` (other than this test).
std::set<pid_t> ProcessesMentioning(const std::string& token) {
  std::set<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(entry.path() / "cmdline");
    if (cmdline.empty()) continue;  // a zombie or a kernel thread
    const pid_t pid = std::stoi(name);
    if (pid != getpid() && cmdline.find(token) != std::string::npos) pids.insert(pid);
  }
  return pids;
}

// Waits until no process mentions `token`; returns what is left after `timeout`.
std::set<pid_t> WaitForNoProcesses(const std::string& token, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = ProcessesMentioning(token);
  while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
    left = ProcessesMentioning(token);
  }
  return left;
}

std::string Describe(const std::set<pid_t>& pids) {
  std::string out;
  for (pid_t pid : pids) {
    std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    out += "\n  " + std::to_string(pid) + ": " + cmdline;
  }
  return out;
}

// The demo's tune step, kept short here (the demo's own default is 40 s). The SLO is loose: the
// test machine may be shared and busy, and what is checked is that tune ran and its winner was
// served, not which configuration won.
constexpr const char* kTuneBudget = "15s";
constexpr const char* kTuneSloMs = "250";

// The student as sg-serve config JSON, 1 worker (a stand-in for a tune output's serve.json).
json StudentServeConfig() {
  const fs::path models = testing::SourceDir() / "models" / "fashion-mnist";
  return json{
      {"cpu", {{"workers", 1}, {"threads_per_worker", 1}, {"pinning", true}}},
      {"models",
       {{"fashion",
         {{"path", (models / "student.pt").string()},
          {"handler", "image_classifier"},
          {"labels", (models / "index_to_name.json").string()},
          {"preprocess",
           {{"resize", 28}, {"crop", 28}, {"channels", 1}, {"mean", {0.2860}}, {"std", {0.3530}}}},
          {"topk", 10},
          {"batch_size", 2},
          {"max_batch_delay_ms", 3}}}}}};
}

class DemoTest : public ::testing::Test {
 protected:
  // Starts scripts/demo with `env` on top of the test's defaults (a key in `env` replaces one).
  std::optional<Subprocess> StartDemo(std::vector<std::pair<std::string, std::string>> env) {
    SpawnOptions options;
    options.set_env = {{"TMPDIR", dir_.path().string()}, {"BIN_DIR", testing::BinDir().string()},
                       {"OUT", out_.string()},           {"TUNE_BUDGET", kTuneBudget},
                       {"TUNE_SLO_MS", kTuneSloMs},      {"TUNE_LIMIT", "300"}};
    for (auto& kv : env) {
      std::erase_if(options.set_env, [&](const auto& d) { return d.first == kv.first; });
      options.set_env.push_back(std::move(kv));
    }
    options.stdout_path = (dir_.path() / "demo.out").string();
    options.stderr_path = (dir_.path() / "demo.err").string();
    std::string error;
    auto child =
        Subprocess::Spawn({(testing::SourceDir() / "scripts" / "demo").string()}, options, &error);
    if (!child) ADD_FAILURE() << "cannot start scripts/demo: " << error;
    return child;
  }

  std::string Output() const {
    return ReadFile(dir_.path() / "demo.out") + "\n--- stderr ---\n" +
           ReadFile(dir_.path() / "demo.err");
  }

  // The demo's exit code, or -1 (with a test failure) when it did not exit in time.
  int WaitExit(Subprocess& demo, std::chrono::seconds timeout) {
    auto status = demo.WaitFor(timeout);
    if (!status) {
      ADD_FAILURE() << "the demo did not finish in " << timeout.count() << " s\n" << Output();
      return -1;
    }
    if (!WIFEXITED(*status)) {
      ADD_FAILURE() << "the demo " << DescribeWaitStatus(*status) << "\n" << Output();
      return -1;
    }
    return WEXITSTATUS(*status);
  }

  json LoadReport(const fs::path& report_dir) {
    for (const char* file : {"report.json", "report.md", "report.html"}) {
      EXPECT_GT(fs::exists(report_dir / file) ? fs::file_size(report_dir / file) : 0, 1000u)
          << report_dir / file;
    }
    return json::parse(ReadFile(report_dir / "report.json"), nullptr, /*allow_exceptions=*/false);
  }

  testing::TempDir dir_;
  fs::path out_ = dir_.path() / "reports";
};

// Gates whose outcome does not depend on how loaded the machine is: the same requests in the
// same order give the same answers. Latency gates are only checked for a measured value.
bool IsLatencyGate(const std::string& metric) {
  return metric == "p99_ratio" || metric == "shadow_p99_ms" || metric == "latency_shift_ms" ||
         metric == "latency_shift_ratio" || metric == "tail_excess_rate" ||
         metric == "worst_slice_p50_ratio";
}

// Gates whose evidence the demo does not produce: it serves a classifier (no scores), and its
// runs are too short for a p99.9 interval (5000 latencies per side).
bool NotApplicableInTheDemo(const std::string& metric) {
  return metric.rfind("score_", 0) == 0 || metric == "p999_ratio";
}

TEST_F(DemoTest, ReducedDemoJudgesBothCandidatesAndWritesReports) {
  constexpr int kRequests = 1500;  // enough for the strict gates' Wilson bounds to pass
  auto demo = StartDemo({{"REQUESTS", std::to_string(kRequests)}, {"RATE", "150"}});
  ASSERT_TRUE(demo);
  const int exit_code = WaitExit(*demo, 480s);
  ASSERT_GE(exit_code, 0);
  const std::string output = Output();
  ASSERT_NE(exit_code, 2) << "the demo could not run:\n" << output;

  // The client's view: every request answered, through the gateway.
  const std::string stats = ReadFile(out_ / "load_stats.csv");
  EXPECT_NE(stats.find(",Aggregated," + std::to_string(kRequests) + ",0,"), std::string::npos)
      << stats;

  // Both candidates are built to pass (README: the teacher on pinned CPUs and the distilled
  // student both PASS), so the demo exits 0; a verdict that is not PASS is a regression.
  EXPECT_EQ(exit_code, 0) << output;
  for (const std::string candidate : {"teacher-cpu", "student"}) {
    SCOPED_TRACE(candidate);
    const json report = LoadReport(out_ / candidate);
    ASSERT_TRUE(report.is_object()) << "report.json does not parse";
    const json& c = report["comparison"];
    EXPECT_EQ(c["pairs"], kRequests);
    EXPECT_EQ(c["outcomes"]["shadow_error"], 0);
    EXPECT_EQ(c["outcomes"]["shadow_timeout"], 0);
    EXPECT_EQ(c["accuracy"]["labeled"], kRequests) << "x-true-label did not reach the report";
    EXPECT_GT(c["accuracy"]["primary"].get<double>(), 0.85);
    EXPECT_GT(c["accuracy"]["shadow"].get<double>(), 0.85);
    EXPECT_EQ(c["counters"]["mirrored"]["ok"], kRequests);

    const json& verdict = report["verdict"];
    for (const json& gate : verdict["gates"]) {
      const std::string metric = gate["metric"];
      if (NotApplicableInTheDemo(metric)) {
        EXPECT_EQ(gate["status"], "NOT_APPLICABLE") << gate.dump();
      } else if (IsLatencyGate(metric)) {
        EXPECT_TRUE(gate["value"].is_number()) << gate.dump();
      } else {
        EXPECT_EQ(gate["status"], "PASS") << gate.dump();
      }
    }
    EXPECT_EQ(verdict["verdict"], "PASS") << verdict.dump(2);
    EXPECT_EQ(verdict["exit_code"], 0);
    EXPECT_NE(output.find(candidate + ": PASS"), std::string::npos)
        << "the summary does not show the verdict\n"
        << output;
  }
  // The same model on pinned CPUs answers like the reference.
  const json teacher = LoadReport(out_ / "teacher-cpu");
  EXPECT_GE(teacher["comparison"]["classification"]["top1_agreement"].get<double>(), 0.995);
  const std::string summary = ReadFile(out_ / "summary.txt");
  EXPECT_NE(summary.find("student:"), std::string::npos);

  // Tune ran (its progress and its files) and found a winner within the SLO.
  EXPECT_NE(output.find("tune: round 1"), std::string::npos) << output;
  const fs::path tune = out_ / "tune";
  const json result = json::parse(ReadFile(tune / "result.json"), nullptr, false);
  ASSERT_TRUE(result.is_object()) << "no tune result.json\n" << output;
  ASSERT_TRUE(result["winner"].is_object()) << result.dump(2);
  EXPECT_GT(result["throughput_rps_at_slo"].get<double>(), 0);
  EXPECT_GE(result["measurements"].get<int>(), 1);
  EXPECT_EQ(result["slo_p99_ms"].get<double>(), std::stod(kTuneSloMs));
  ASSERT_TRUE(fs::exists(tune / "serve.json"));
  // The student was started from tune's serve.json, and serves the winner's configuration as
  // its management API describes it (the demo saves that description).
  EXPECT_NE(output.find("(" + (tune / "serve.json").string() + ")"), std::string::npos) << output;
  const json winner = result["winner"];
  const json served = json::parse(ReadFile(out_ / "student" / "served-model.json"), nullptr, false);
  ASSERT_TRUE(served.is_array() && !served.empty()) << served.dump();
  EXPECT_EQ(served[0]["batchSize"], winner["batch_size"]) << served.dump(2);
  EXPECT_EQ(served[0]["maxBatchDelay"], winner["max_batch_delay_ms"]) << served.dump(2);
  EXPECT_EQ(served[0]["workers"].size(), winner["workers"].get<size_t>()) << served.dump(2);
  for (const json& worker : served[0]["workers"]) {
    EXPECT_EQ(worker["threads"], winner["threads_per_worker"]) << served.dump(2);
  }
  const std::string label = winner["label"];
  EXPECT_NE(summary.find("tune's winner for the student"), std::string::npos) << summary;
  EXPECT_NE(summary.find(label), std::string::npos) << summary;
  EXPECT_NE(summary.find("the naive configuration"), std::string::npos) << summary;

  // The capacity section: the demo's peak, tune's pod, the example fleet, pods > 0.
  const json capacity = json::parse(ReadFile(out_ / "capacity.json"), nullptr, false);
  ASSERT_TRUE(capacity.is_object()) << "no capacity.json\n" << output;
  const json& plan = capacity["plan"];
  EXPECT_GT(plan["pods"].get<int>(), 0) << plan.dump(2);
  EXPECT_GT(plan["peak_rps"].get<double>(), 0);
  EXPECT_EQ(plan["pod"]["throughput_rps_at_slo"], result["throughput_rps_at_slo"]);
  EXPECT_EQ(plan["pod"]["cpus"], result["pod"]["cpus"]);
  EXPECT_EQ(plan["gpus"], 30);  // configs/fleet-example.json
  EXPECT_NE(ReadFile(out_ / "capacity.txt").find("saving"), std::string::npos);
  EXPECT_NE(summary.find("capacity, example fleet"), std::string::npos) << summary;
  EXPECT_NE(summary.find(std::to_string(plan["pods"].get<int>()) + " pods"), std::string::npos)
      << summary;

  // The progressive cutover: the pinned teacher is promoted through every step; the broken
  // candidate (wrong input normalisation) is rolled back at its first step by the agreement gate.
  const json promoted =
      json::parse(ReadFile(out_ / "cutover/teacher-cpu/state.json"), nullptr, false);
  ASSERT_TRUE(promoted.is_object()) << output;
  EXPECT_EQ(promoted["state"], "PROMOTED") << promoted.dump(2);
  EXPECT_EQ(promoted["share"], 100.0);
  std::vector<std::string> decisions;
  for (const json& d : promoted["decisions"]) decisions.push_back(d["decision"]);
  EXPECT_EQ(decisions, (std::vector<std::string>{"start", "advance", "advance", "promote"}))
      << promoted.dump(2);
  const json rolled = json::parse(ReadFile(out_ / "cutover/broken/state.json"), nullptr, false);
  ASSERT_TRUE(rolled.is_object()) << output;
  EXPECT_EQ(rolled["state"], "ROLLED_BACK") << rolled.dump(2);
  EXPECT_EQ(rolled["share"], 0.0);
  EXPECT_EQ(rolled["step"], 0) << "rolled back at the first step (20%)";
  EXPECT_NE(rolled["reason"].get<std::string>().find("top1_agreement"), std::string::npos)
      << rolled.dump(2);
  for (const std::string name : {"teacher-cpu", "broken"}) {
    EXPECT_TRUE(fs::exists(out_ / "cutover" / name / "report" / "cutover.html")) << name;
  }
  EXPECT_NE(summary.find("cutover: teacher-cpu PROMOTED (expected PROMOTED), broken ROLLED_BACK"),
            std::string::npos)
      << summary;

  const auto left = WaitForNoProcesses(dir_.path().string(), 5s);
  EXPECT_TRUE(left.empty()) << "left running:" << Describe(left);
}

TEST_F(DemoTest, InterruptStopsEveryProcessItStarted) {
  // No tune here: an earlier tune's output (TUNE_FROM) serves the student, so this test stays
  // as long as it was and checks that path too.
  const fs::path earlier = dir_.path() / "earlier-tune";
  fs::create_directories(earlier);
  std::ofstream(earlier / "serve.json") << StudentServeConfig().dump(2);
  std::ofstream(earlier / "result.json")
      << json{{"pod", {{"cpus", 1}}}, {"throughput_rps_at_slo", 100.0}, {"slo_p99_ms", 50}}.dump();
  auto demo = StartDemo({{"REQUESTS", "100000"}, {"RATE", "50"}, {"TUNE_FROM", earlier.string()}});
  ASSERT_TRUE(demo);
  // Wait for the load phase: servers, workers, gateway and load generator are all running.
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  while (Output().find("replaying") == std::string::npos) {
    ASSERT_TRUE(demo->Running()) << Output();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << Output();
    std::this_thread::sleep_for(200ms);
  }
  // 3 servers with at least one worker each, the gateway and sg-load: waited for (sg-load may
  // still be starting when "replaying" is printed), not assumed after a fixed pause.
  auto running = ProcessesMentioning(dir_.path().string());
  while (running.size() < 8 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(demo->Running()) << Output();
    std::this_thread::sleep_for(100ms);
    running = ProcessesMentioning(dir_.path().string());
  }
  EXPECT_GE(running.size(), 8u) << Describe(running);
  EXPECT_EQ(Output().find("tune: round 1"), std::string::npos) << Output();
  EXPECT_NE(Output().find("(" + (earlier / "serve.json").string() + ")"), std::string::npos)
      << Output();
  // The student serves the given serve.json: its batch size, not the demo's own config's.
  const json served = json::parse(ReadFile(out_ / "student" / "served-model.json"), nullptr, false);
  ASSERT_TRUE(served.is_array() && !served.empty()) << served.dump();
  EXPECT_EQ(served[0]["batchSize"], 2);
  EXPECT_EQ(served[0]["maxBatchDelay"], 3);

  demo->Signal(SIGINT);
  EXPECT_EQ(WaitExit(*demo, 60s), 130) << Output();
  const auto left = WaitForNoProcesses(dir_.path().string(), 10s);
  EXPECT_TRUE(left.empty()) << "left running after Ctrl-C:" << Describe(left);
}

TEST_F(DemoTest, InterruptDuringTuneStopsTuneAndItsServers) {
  auto demo = StartDemo({{"REQUESTS", "100000"}, {"RATE", "50"}, {"TUNE_BUDGET", "60s"}});
  ASSERT_TRUE(demo);
  // Wait for a measurement: tune's own sg-serve, its config in $OUT/tune/logs/N.json.
  const std::string logs = (out_ / "tune" / "logs").string();
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (ProcessesMentioning(logs).empty()) {
    ASSERT_TRUE(demo->Running()) << Output();
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << Output();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(Output().find("starting the reference"), std::string::npos) << Output();

  demo->Signal(SIGINT);
  EXPECT_EQ(WaitExit(*demo, 60s), 130) << Output();
  const auto left = WaitForNoProcesses(dir_.path().string(), 10s);
  EXPECT_TRUE(left.empty()) << "left running after Ctrl-C in tune:" << Describe(left);
  // Tune was stopped by the demo's clean-up (SIGTERM) and kept what it had measured.
  const json result = json::parse(ReadFile(out_ / "tune" / "result.json"), nullptr, false);
  ASSERT_TRUE(result.is_object()) << Output();
  EXPECT_EQ(result["interrupted"], true);
}

TEST_F(DemoTest, OwnBackendsAreJudgedWithoutBundledServers) {
  // The user's primary and candidate: one sg-serve with the committed teacher, used as both.
  const int port = testing::FreePort(), management = testing::FreePort(),
            metrics = testing::FreePort();
  const fs::path models = testing::SourceDir() / "models" / "fashion-mnist";
  const fs::path config = dir_.path() / "own.json";
  std::ofstream(config) << json{
      {"inference_address", "127.0.0.1:" + std::to_string(port)},
      {"management_address", "127.0.0.1:" + std::to_string(management)},
      {"metrics_address", "127.0.0.1:" + std::to_string(metrics)},
      {"cpu", {{"workers", 1}, {"pinning", false}}},
      {"models",
       {{"fashion",
         {{"path", (models / "teacher.pt").string()},
          {"handler", "image_classifier"},
          {"labels", (models / "index_to_name.json").string()},
          {"preprocess",
           {{"resize", 28}, {"crop", 28}, {"channels", 1}, {"mean", {0.2860}}, {"std", {0.3530}}}},
          {"topk", 10}}}}}}.dump();
  testing::ChildProcess server("sg-serve", {"--config", config.string()});
  ASSERT_TRUE(server.started());
  std::string why;
  ASSERT_TRUE(server.WaitReady(port, "/ping", 120s, &why)) << why;

  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  // 150 requests: fewer than configs/gates.json's 200 pairs, however many copies a loaded
  // machine drops.
  auto demo =
      StartDemo({{"PRIMARY", url}, {"CANDIDATE", url}, {"REQUESTS", "150"}, {"RATE", "100"}});
  ASSERT_TRUE(demo);
  const int exit_code = WaitExit(*demo, 300s);
  const std::string output = Output();
  EXPECT_EQ(output.find("starting the reference"), std::string::npos) << output;
  // Tune and the capacity from tune apply to the bundled student only: skipped, with a note.
  EXPECT_EQ(output.find("tune: round 1"), std::string::npos) << output;
  EXPECT_NE(output.find("skipped: CANDIDATE is your own backend"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(out_ / "tune"));
  EXPECT_FALSE(fs::exists(out_ / "capacity.json"));
  EXPECT_NE(ReadFile(out_ / "summary.txt").find("tune and capacity: skipped"), std::string::npos);
  // configs/gates.json wants 200 pairs: the verdict is INSUFFICIENT_DATA (exit 4).
  EXPECT_EQ(exit_code, 4) << output;
  const json report = LoadReport(out_);
  ASSERT_TRUE(report.is_object());
  EXPECT_EQ(report["verdict"]["verdict"], "INSUFFICIENT_DATA");
  // Every request mirrored on a quiet machine; a loaded one may drop copies (overload).
  EXPECT_GT(report["comparison"]["pairs"].get<int>(), 100);
  EXPECT_LE(report["comparison"]["pairs"].get<int>(), 150);
  EXPECT_EQ(report["comparison"]["classification"]["top1_agreement"], 1.0);
}

}  // namespace
}  // namespace sg
