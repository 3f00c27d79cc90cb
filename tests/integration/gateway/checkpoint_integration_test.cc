// The comparison's checkpoints end to end (issue 22 item 1): the real shadowgate binary mirrors
// nginx (the shadow answers some paths differently) and is stopped six times during one run,
// three times with SIGTERM and three with kill -9. Each start resumes the checkpoint the last one
// left. The final report equals what one uninterrupted gateway would have judged: sg-compare over
// the pair logs the six gateways wrote, each cut to the records its checkpoint held, as one log.
// A kill -9 loses only the records judged after the last checkpoint (here at most the burst sent
// after it), a SIGTERM nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/integration/gateway/gateway_process.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

// The records (pair and counters lines) of a pair log, in the order written.
std::vector<std::string> RecordLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    EXPECT_TRUE(entry) << why << ": " << line;
    if (entry && !std::holds_alternative<CutoverDecision>(*entry)) lines.push_back(line);
  }
  return lines;
}

size_t PairLines(const std::string& path) {
  size_t pairs = 0;
  for (const auto& line : RecordLines(path)) {
    pairs += line.find(R"("type":"pair")") != std::string::npos ? 1 : 0;
  }
  return pairs;
}

// The checkpoint's "judged" (records judged into its state since the run began); 0 without one.
// The file is replaced by a rename, so a reader sees a whole one.
uint64_t CheckpointJudged(const fs::path& path) {
  if (!fs::exists(path)) return 0;
  json doc = ReadJsonFile(path);
  EXPECT_TRUE(doc.is_object()) << path;
  return doc.is_object() ? doc.value("judged", uint64_t{0}) : 0;
}

// `count` requests, one at a time: /same, /close and /diff in the proportions `mix` gives, so
// each lifetime leaves its own mark on the outcomes.
void Send(const GatewayProcess& gateway, int count, std::array<int, 3> mix, int* sent) {
  static const char* kPaths[] = {"/same", "/close", "/diff"};
  const int cycle = mix[0] + mix[1] + mix[2];
  for (int i = 0; i < count; ++i) {
    const int slot = i % cycle;
    const int path = slot < mix[0] ? 0 : slot < mix[0] + mix[1] ? 1 : 2;
    auto response =
        HttpGet(gateway.port(), std::string(kPaths[path]) + "/" + std::to_string(*sent));
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200);
    ++*sent;
  }
}

TEST(CheckpointTest, SixRestartsWithSigtermAndKillEndInOneUninterruptedRunsJudgement) {
  TempDir dir;
  auto upstreams = StartJudgedUpstreams(dir);
  ASSERT_TRUE(upstreams.ready);
  const int primary_port = upstreams.primary_port;
  const int shadow_port = upstreams.shadow_port;
  const auto rules = dir.Write("rules.json", kJudgedRules);
  const auto gates = dir.Write("gates.json", kJudgedGates);
  fs::create_directories(dir.path() / "state");
  const fs::path checkpoint = dir.path() / "state" / "online.ckpt";
  const fs::path reports = dir.path() / "reports";

  auto config = MakeConfig(primary_port, shadow_port);
  // One I/O thread (and no shadow threads): every record goes to the pair log and to the
  // comparator from one thread, so both see the same order and a checkpoint's "judged" names a
  // prefix of the gateway's pair log.
  config["io_threads"] = 1;
  const int queue_capacity = 64;
  const double interval_s = 1;
  config["comparison"] = {{"rules", "rules.json"},
                          {"gates", "gates.json"},
                          {"run", "month"},
                          {"queue_capacity", queue_capacity},
                          {"checkpoint_file", checkpoint.string()},
                          {"checkpoint_interval", "1s"}};

  struct Lifetime {
    bool kill;               // kill -9 after a second burst; else SIGTERM
    std::array<int, 3> mix;  // same : close : diff
  };
  const std::vector<Lifetime> lifetimes = {{false, {3, 1, 0}}, {true, {1, 1, 1}},
                                           {false, {2, 0, 1}}, {true, {0, 1, 2}},
                                           {true, {4, 0, 1}},  {false, {1, 2, 0}}};
  const int kBurstA = 24;     // before the checkpoint the test waits for
  const int kBurstB = 12;     // after it: what a kill -9 may lose
  std::string uninterrupted;  // the records each lifetime's checkpoint held, as one log
  uint64_t lost = 0;
  int sent = 0;
  for (size_t k = 0; k < lifetimes.size(); ++k) {
    SCOPED_TRACE("lifetime " + std::to_string(k) +
                 (lifetimes[k].kill ? " (kill -9)" : " (SIGTERM)"));
    const bool last = k + 1 == lifetimes.size();
    // The report folder only for the last one: gates and reports are not part of the state.
    if (last) config["comparison"]["report_dir"] = reports.string();
    const uint64_t judged_before = CheckpointJudged(checkpoint);
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    // It resumed what the last one left, before judging anything new.
    EXPECT_EQ(gateway.Metric("sg_gateway_comparator_checkpoint_resumed_records"),
              static_cast<double>(judged_before));
    EXPECT_EQ(gateway.Metric("sg_gateway_comparator_checkpoints_total{result=\"refused\"}"), 0);
    json current = AdminComparison(gateway);
    ASSERT_TRUE(current.is_object());
    EXPECT_EQ(current["checkpoint"]["resumed_judged"], judged_before);
    EXPECT_EQ(current["checkpoint"]["resumed"].get<std::string>().empty(), k == 0)
        << current["checkpoint"].dump();
    EXPECT_EQ(current["checkpoint"]["refused"], "");

    ASSERT_NO_FATAL_FAILURE(Send(gateway, kBurstA, lifetimes[k].mix, &sent));
    uint64_t judged_after = 0;
    if (!lifetimes[k].kill) {
      const int status = gateway.process().Stop(10s);
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
      judged_after = CheckpointJudged(checkpoint);
      // A graceful stop loses nothing: every pair and the final counters are in the checkpoint.
      EXPECT_EQ(judged_after - judged_before, RecordLines(gateway.pairs_path()).size());
      EXPECT_EQ(PairLines(gateway.pairs_path()), static_cast<size_t>(kBurstA));
    } else {
      // A checkpoint that holds the first burst, seen in the file itself...
      ASSERT_TRUE(
          WaitUntil([&] { return CheckpointJudged(checkpoint) >= judged_before + kBurstA; }, 20s));
      // (counted once the folder is fsynced too, a moment after the file appears)
      EXPECT_TRUE(WaitUntil(
          [&] {
            return gateway.Metric("sg_gateway_comparator_checkpoints_total{result=\"written\"}") >=
                   1;
          },
          10s));
      // ...then a second burst, in the pair log (so the log holds what a checkpoint may), and
      // kill -9 before or after the next checkpoint took it.
      ASSERT_NO_FATAL_FAILURE(Send(gateway, kBurstB, lifetimes[k].mix, &sent));
      ASSERT_TRUE(WaitUntil(
          [&] { return PairLines(gateway.pairs_path()) == size_t{kBurstA + kBurstB}; }, 20s));
      gateway.process().process().Signal(SIGKILL);
      auto status = gateway.process().process().WaitFor(10s);
      ASSERT_TRUE(status && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);
      judged_after = CheckpointJudged(checkpoint);
      // What was lost: the records judged after the last checkpoint, never more than the burst
      // sent after the one the test saw (the stated bound: checkpoint_interval x the judged
      // rate + queue_capacity).
      EXPECT_GE(judged_after - judged_before, static_cast<uint64_t>(kBurstA));
      EXPECT_LE(judged_after - judged_before, static_cast<uint64_t>(kBurstA + kBurstB));
      lost += kBurstA + kBurstB - (judged_after - judged_before);
    }
    const auto lines = RecordLines(gateway.pairs_path());
    ASSERT_LE(judged_after - judged_before, lines.size());
    for (uint64_t i = 0; i < judged_after - judged_before; ++i) uninterrupted += lines[i] + "\n";
  }
  std::cout << "lost at the three kill -9: " << lost << " of " << 3 * kBurstB
            << " records sent after the last checkpoint seen (interval " << interval_s
            << " s, queue " << queue_capacity << ")\n";

  // One uninterrupted run's judgement of the same records: sg-compare over them as one log, in
  // the order they were judged (--reorder-window 0).
  const auto log = dir.Write("uninterrupted.jsonl", uninterrupted);
  const fs::path offline = dir.path() / "offline";
  auto compared = RunTool(
      "sg-compare",
      {"report", "--pairs", log.string(), "--rules", rules.string(), "--gates", gates.string(),
       "--out", offline.string(), "--run", "month", "--reorder-window", "0"},
      dir.path());
  ASSERT_EQ(compared.exit_code, 1) << compared.err;  // FAIL: the /diff pairs
  const json expected = ReadJsonFile(offline / "report.json");
  ASSERT_TRUE(expected.is_object());

  std::vector<fs::path> finals;
  for (const auto& entry : fs::directory_iterator(reports)) {
    if (entry.path().filename().string().starts_with("final-")) finals.push_back(entry.path());
  }
  ASSERT_EQ(finals.size(), 1u);
  const json online = ReadJsonFile(finals[0] / "report.json");
  ASSERT_TRUE(online.is_object());
  EXPECT_EQ(online["comparison"]["pairs"], sent - static_cast<int>(lost));
  EXPECT_EQ(online["comparison"], expected["comparison"])
      << "online: " << online["comparison"].dump()
      << "\noffline: " << expected["comparison"].dump();
  EXPECT_EQ(online["verdict"], expected["verdict"]);
  // The last checkpoint, decoded by a gateway that only reads it, says the same.
  config["comparison"].erase("report_dir");
  GatewayProcess reader(config, dir);
  ASSERT_TRUE(reader.ready());
  const json resumed = AdminComparison(reader);
  ASSERT_TRUE(resumed.is_object());
  EXPECT_EQ(resumed["comparison"], online["comparison"]);
}

TEST(CheckpointTest, ACorruptOrForeignCheckpointIsSetAsideAndTheRunStartsEmpty) {
  TempDir dir;
  const int primary_port = FreePort();
  dir.Write("rules.json", kJudgedRules);
  const fs::path checkpoint = dir.path() / "online.ckpt";
  auto config = MakeConfig(primary_port);
  config["comparison"] = {{"rules", "rules.json"}, {"checkpoint_file", checkpoint.string()}};
  {
    // A truncated file.
    dir.Write("online.ckpt", R"({"format": "shadowgate.comparison-checkpoint", "vers)");
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    EXPECT_EQ(gateway.Metric("sg_gateway_comparator_checkpoints_total{result=\"refused\"}"), 1);
    EXPECT_EQ(gateway.Metric("sg_gateway_comparator_checkpoint_resumed_records"), 0);
    const json current = AdminComparison(gateway);
    EXPECT_EQ(current["comparison"]["pairs"], 0);
    EXPECT_NE(current["checkpoint"]["refused"].get<std::string>().find("not JSON"),
              std::string::npos)
        << current["checkpoint"].dump();
    EXPECT_FALSE(fs::exists(checkpoint));
    EXPECT_NE(gateway.process().Log().find("comparison checkpoint " + checkpoint.string() +
                                           " refused: not JSON"),
              std::string::npos)
        << gateway.process().Log();
    // A graceful stop writes this run's own checkpoint.
    const int status = gateway.process().Stop(10s);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeWaitStatus(status);
  }
  int refused = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    if (entry.path().filename().string().starts_with("online.ckpt.refused-")) ++refused;
  }
  EXPECT_EQ(refused, 1);
  ASSERT_TRUE(fs::exists(checkpoint));
  // The rules changed: the checkpoint is foreign now, refused, and set aside too.
  dir.Write("rules.json", R"({"rules": [{"name": "api", "kind": "exact"}]})");
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  EXPECT_EQ(gateway.Metric("sg_gateway_comparator_checkpoints_total{result=\"refused\"}"), 1);
  const json current = AdminComparison(gateway);
  EXPECT_NE(current["checkpoint"]["refused"].get<std::string>().find("another compare config"),
            std::string::npos)
      << current["checkpoint"].dump();
  EXPECT_FALSE(fs::exists(checkpoint));
}

TEST(CheckpointTest, CheckRefusesACheckpointFileItCouldNotWrite) {
  TempDir dir;
  dir.Write("rules.json", kJudgedRules);
  auto write_config = [&](const std::string& name, const fs::path& checkpoint) {
    json config = MakeConfig(FreePort());
    config["comparison"] = {{"rules", "rules.json"}, {"checkpoint_file", checkpoint.string()}};
    return dir.Write(name, config.dump(2));
  };
  const auto missing = write_config("missing.json", dir.path() / "no-such" / "online.ckpt");
  auto check = RunCheck(missing);
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find(missing.string() + ": $.comparison.checkpoint_file: folder \"" +
                              (dir.path() / "no-such").string() + "\" does not exist"),
            std::string::npos)
      << check.output;
  // The start refuses it the same way, before it opens anything.
  auto started = RunShadowgate({"--config", missing.string()});
  EXPECT_EQ(started.exit_code, 2) << started.output;
  EXPECT_NE(started.output.find("$.comparison.checkpoint_file"), std::string::npos)
      << started.output;

  fs::create_directories(dir.path() / "a-folder");
  const auto folder = write_config("folder.json", dir.path() / "a-folder");
  check = RunCheck(folder);
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find(folder.string() + ": $.comparison.checkpoint_file: \"" +
                              (dir.path() / "a-folder").string() + "\" is a folder, not a file"),
            std::string::npos)
      << check.output;

  const auto good = write_config("good.json", dir.path() / "online.ckpt");
  check = RunCheck(good);
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

}  // namespace
}  // namespace sg::testing
