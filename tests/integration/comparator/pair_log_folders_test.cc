// sg-compare over many logs (issue 22 item 4): the rotated logs of two gateways, some compressed,
// named by their folders, judge as one time-sorted log; their counters add up per instance; a
// corrupt compressed file among many is bad input, named.

#include <algorithm>
#include <filesystem>
#include <fstream>

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
using sg::testing::ReadFile;

constexpr int64_t kStart = 1795000000000000;

// A small reservoir: the latency sample depends on the order pairs are judged in.
constexpr const char* kRules = R"({"rules": [{"name": "fashion", "kind": "classification",
                                               "max_prob_diff": 0.05}],
                                   "reservoir_size": 20})";
constexpr const char* kGates = R"({"gates": [{"metric": "pairs", "min": 200},
                                             {"metric": "top1_agreement", "min": 0.8}]})";

std::string PairLine(int i) {
  const char* labels[] = {"Trouser", "Bag", "Coat", "Sneaker"};
  const std::string top = labels[i % 4], second = labels[(i + 1) % 4];
  PairRecord p;
  p.id = "req-" + std::to_string(i);
  p.ts_us = kStart + int64_t{i} * 5'000'000;  // one every 5 s
  p.route = "classify";
  p.mirror = "student";
  p.request = {"POST", "/predictions/fashion", 784, std::string(64, 'b'), {}, std::nullopt, false};
  p.primary.status = 200;
  p.primary.outcome = "ok";
  p.primary.latency_us = 4000 + (i * 37) % 1500;
  p.primary.body = json{{top, 0.9}, {second, 0.1}}.dump();
  p.shadow = p.primary;
  p.shadow.latency_us = 5000 + (i * 53) % 1400;
  p.shadow.body = i % 9 == 0 ? json{{top, 0.3}, {second, 0.7}}.dump() : p.primary.body;
  return EncodePairLogLine(p);
}

std::string CountersLine(const std::string& instance, int64_t ts_us, uint64_t pairs) {
  MirrorCounters m;
  m.ts_us = ts_us;
  m.instance = instance;
  m.route = "classify";
  m.mirror = "student";
  m.requests = 2 * pairs;  // half of the requests sampled out
  m.not_mirrored = {{"sampled_out", pairs}};
  m.mirrored = {{"ok", pairs}};
  return EncodePairLogLine(m);
}

void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

struct Line {
  int64_t ts_us;
  std::string text;
};

// One gateway's lines as it writes them: its pairs in blocks of three written in reverse (a pair
// is written when both answers are in), a counters line after every 50 pairs, and a restart
// (a new instance whose counters start again from 0) after `restart_after` pairs.
std::vector<Line> GatewayLines(const std::string& host, const std::vector<int>& pairs,
                               size_t restart_after) {
  std::vector<Line> lines;
  int start = 100;
  uint64_t counted = 0;
  for (size_t k = 0; k < pairs.size(); k += 3) {
    const size_t end = std::min(pairs.size(), k + 3);
    for (size_t j = end; j-- > k;) {
      lines.push_back({kStart + int64_t{pairs[j]} * 5'000'000, PairLine(pairs[j])});
    }
    for (size_t j = k; j < end; ++j) {
      ++counted;
      if (counted % 50 == 0 || j + 1 == pairs.size() || j + 1 == restart_after) {
        const int64_t ts = kStart + int64_t{pairs[j]} * 5'000'000 + 1;
        lines.push_back({ts, CountersLine(host + ":1:" + std::to_string(start), ts, counted)});
      }
      if (j + 1 == restart_after) {
        start += 100;
        counted = 0;
      }
    }
  }
  return lines;
}

// Writes `lines` as a rotated log in `folder`: the newest part in pairs.jsonl, older ones in
// pairs.jsonl.1 ... (newest first), compressed where `compressed[i]` says.
void WriteRotated(const fs::path& folder, const std::vector<Line>& lines, size_t parts,
                  const std::vector<bool>& compressed) {
  fs::create_directories(folder);
  const size_t per = (lines.size() + parts - 1) / parts;
  for (size_t part = 0; part < parts; ++part) {
    std::string text;
    for (size_t i = part * per; i < std::min(lines.size(), (part + 1) * per); ++i) {
      text += lines[i].text + "\n";
    }
    const size_t age = parts - 1 - part;  // 0: the live file
    const fs::path path =
        folder / (age == 0 ? "pairs.jsonl" : "pairs.jsonl." + std::to_string(age));
    WriteBytes(path, text);
    if (age > 0 && compressed[age]) {
      std::string error;
      ASSERT_TRUE(CompressFileZstd(path.string(), path.string() + ".zst", 3, &error)) << error;
      fs::remove(path);
    }
  }
}

class PairLogFoldersTest : public ::testing::Test {
 protected:
  sg::testing::ToolResult Report(const std::vector<std::string>& pairs, const std::string& out,
                                 const fs::path& stdin_path = {}) {
    std::vector<std::string> argv = {(sg::testing::BinDir() / "sg-compare").string(), "report",
                                     "--pairs"};
    argv.insert(argv.end(), pairs.begin(), pairs.end());
    argv.insert(argv.end(), {"--rules", rules_.string(), "--gates", gates_.string(), "--out",
                             (dir_.path() / out).string()});
    sg::testing::RunOptions options;
    options.timeout = std::chrono::seconds(60);
    options.stdin_path = stdin_path;
    return sg::testing::RunToCompletion(argv, dir_.path(), options);
  }
  json ReportJson(const std::string& out) {
    return json::parse(ReadFile(dir_.path() / out / "report.json"));
  }

  sg::testing::TempDir dir_;
  fs::path rules_ = dir_.Write("rules.json", kRules);
  fs::path gates_ = dir_.Write("gates.json", kGates);
};

TEST_F(PairLogFoldersTest, TwoGatewaysRotatedLogsJudgeAsOneSortedLog) {
  // 600 pairs over 50 minutes: gateway A got two of every three requests, B the third.
  std::vector<int> a_pairs, b_pairs;
  for (int i = 0; i < 600; ++i) (i % 3 == 0 ? b_pairs : a_pairs).push_back(i);
  const auto a = GatewayLines("gw-a", a_pairs, 200);  // restarted after 200 pairs
  const auto b = GatewayLines("gw-b", b_pairs, 0);
  const fs::path a_dir = dir_.path() / "logs" / "gw-a", b_dir = dir_.path() / "logs" / "gw-b";
  // A: pairs.jsonl.3.zst, .2.zst, .1 (its compression not done yet), pairs.jsonl;
  // B: pairs.jsonl.2.zst, .1.zst, pairs.jsonl. Other files in the folders are left alone.
  WriteRotated(a_dir, a, 4, {false, false, true, true});
  WriteRotated(b_dir, b, 3, {false, true, true});
  dir_.Write("logs/gw-a/README.txt", "not a log\n");
  dir_.Write("logs/gw-b/.pairs.jsonl.3.zst.tmp", "half-written by the compressor");

  std::vector<Line> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::stable_sort(all.begin(), all.end(),
                   [](const Line& x, const Line& y) { return x.ts_us < y.ts_us; });
  std::string sorted;
  for (const auto& line : all) sorted += line.text + "\n";
  const fs::path sorted_path = dir_.Write("sorted.jsonl", sorted);

  auto folders = Report({a_dir.string(), b_dir.string()}, "folders");
  auto one = Report({sorted_path.string()}, "sorted");
  auto piped = Report({"-"}, "stdin", sorted_path);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(folders.exit_code, 0) << folders.err;
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_NE(folders.err.find("7 pair-log files merged by time"), std::string::npos) << folders.err;
  EXPECT_EQ(folders.err.find("out of time order"), std::string::npos) << folders.err;

  const json j_folders = ReportJson("folders"), j_sorted = ReportJson("sorted");
  EXPECT_EQ(j_sorted["comparison"]["pairs"], 600);
  EXPECT_EQ(j_folders["comparison"], j_sorted["comparison"]);
  EXPECT_EQ(j_folders["verdict"], j_sorted["verdict"]);
  EXPECT_EQ(ReportJson("stdin")["comparison"], j_sorted["comparison"]);

  // Counters: the latest line of each instance (A before and after its restart, B), summed.
  const json& counters = j_folders["comparison"]["counters"];
  EXPECT_EQ(counters["instances"], 3);
  EXPECT_EQ(counters["records"], 3);
  EXPECT_EQ(counters["requests"], 2 * 600);
  EXPECT_EQ(counters["mirrored"]["ok"], 600);
  EXPECT_EQ(counters["not_mirrored"]["sampled_out"], 600);
}

TEST_F(PairLogFoldersTest, ACorruptCompressedFileAmongManyIsBadInputNamed) {
  std::vector<int> pairs;
  for (int i = 0; i < 500; ++i) pairs.push_back(i);
  const fs::path folder = dir_.path() / "gw";
  const auto lines = GatewayLines("gw", pairs, 0);
  WriteRotated(folder, lines, 5, {false, true, true, true, true});
  std::string text;
  for (const auto& line : lines) text += line.text + "\n";
  const fs::path plain = dir_.Write("plain.jsonl", text);
  auto good = Report({folder.string()}, "good");
  EXPECT_EQ(good.exit_code, 0) << good.err;
  // capacity reads the same folders, compressed files included.
  auto Capacity = [&](const fs::path& pairs, bool as_json) {
    std::vector<std::string> argv = {
        (sg::testing::BinDir() / "sg-compare").string(),
        "capacity",
        "--fleet",
        (sg::testing::SourceDir() / "configs" / "fleet-example.json").string(),
        "--pod-rps",
        "100",
        "--pod-cpus",
        "1",
        "--pairs",
        pairs.string()};
    if (as_json) argv.push_back("--json");
    return sg::testing::RunToCompletion(argv, dir_.path());
  };
  auto from_folder = Capacity(folder, true), from_text = Capacity(plain, true);
  ASSERT_EQ(from_folder.exit_code, 0) << from_folder.err;
  ASSERT_EQ(from_text.exit_code, 0) << from_text.err;
  EXPECT_EQ(json::parse(from_folder.out)["traffic"], json::parse(from_text.out)["traffic"]);

  // Bytes flipped inside pairs.jsonl.3.zst: its checksum (or its blocks) no longer match.
  const fs::path bad = folder / "pairs.jsonl.3.zst";
  std::string bytes = ReadFile(bad);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
  WriteBytes(bad, bytes);
  auto r = Report({folder.string()}, "bad");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(bad.string() + ": "), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_.path() / "bad" / "report.json"));
  auto capacity = Capacity(folder, false);
  EXPECT_EQ(capacity.exit_code, 2);
  EXPECT_NE(capacity.err.find(bad.string() + ": "), std::string::npos) << capacity.err;

  // A folder without pair logs, a path that is not there: bad input too.
  fs::create_directories(dir_.path() / "empty");
  auto empty = Report({(dir_.path() / "empty").string()}, "empty");
  EXPECT_EQ(empty.exit_code, 2);
  EXPECT_NE(empty.err.find("no pair-log files in the folder"), std::string::npos) << empty.err;
  auto missing = Report({(dir_.path() / "nowhere").string()}, "missing");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nowhere: cannot open: No such file or directory"), std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace sg
