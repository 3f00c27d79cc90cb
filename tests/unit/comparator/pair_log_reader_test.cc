// The pair-log reader's time order: lines out of order within the reorder window are judged in
// time order, later ones are judged where read and counted late, several files are merged by
// time, and folders expand to their pair-log files by name.
#include "comparator/pair_log_reader.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include <gtest/gtest.h>

#include "common/zstd_file.h"
#include "comparator/comparison.h"
#include "tests/support/test_support.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using testing::MakePair;
namespace fs = std::filesystem;

constexpr int64_t kStart = 1795000000000000;

// A small reservoir: the latency sample depends on the order pairs are judged in, so equal
// states mean the same order.
std::shared_ptr<CompareConfig> OrderSensitiveConfig() {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  c->rules.push_back(r);
  c->reservoir_size = 10;
  return c;
}

// Pair `i`: one second apart, latencies that differ for every pair.
PairRecord Pair(int i) {
  auto p = MakePair(std::to_string(i), R"({"a": 0.9, "b": 0.1})", R"({"a": 0.8, "b": 0.2})",
                    4000 + i * 7, 5000 + (i * 131) % 997);
  p.ts_us = kStart + int64_t{i} * 1'000'000;
  return p;
}

std::string Lines(const std::vector<int>& order) {
  std::string out;
  for (int i : order) out += EncodePairLogLine(Pair(i)) + "\n";
  return out;
}

std::vector<int> Sorted(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

// As a gateway writes them: each block of 5 pairs in reverse (answers of a slow request come
// last), so a line is at most 4 s early.
std::vector<int> NearlySorted(int n) {
  auto v = Sorted(n);
  for (int i = 0; i + 5 <= n; i += 5) std::reverse(v.begin() + i, v.begin() + i + 5);
  return v;
}

ReadStats Read(const std::string& text, Comparison& c, const ReadOptions& options = {}) {
  std::stringstream in(text);
  return ReadPairLog(in, c, options);
}

TEST(PairLogOrder, LinesOutOfOrderWithinTheWindowAreJudgedInTimeOrder) {
  auto config = OrderSensitiveConfig();
  Comparison sorted(config), shuffled(config), in_file_order(config);
  Read(Lines(Sorted(200)), sorted);
  ReadStats stats = Read(Lines(NearlySorted(200)), shuffled);
  EXPECT_EQ(stats.pairs, 200u);
  EXPECT_EQ(stats.late, 0u);
  EXPECT_TRUE(sorted.SameState(shuffled));

  // Without the window the same lines are judged as they come: a different sample, lines late.
  ReadOptions no_window;
  no_window.reorder_window = std::chrono::microseconds(0);
  ReadStats unordered = Read(Lines(NearlySorted(200)), in_file_order, no_window);
  EXPECT_EQ(unordered.pairs, 200u);
  EXPECT_EQ(unordered.late, 160u);  // 4 of each block of 5 follow a later one
  EXPECT_FALSE(sorted.SameState(in_file_order));
}

TEST(PairLogOrder, LinesLaterThanTheWindowAreJudgedAndCountedLate) {
  auto config = OrderSensitiveConfig();
  Comparison c(config);
  // Pair 0 comes after 119 s of later pairs: past the 60 s window.
  std::vector<int> order;
  for (int i = 1; i < 120; ++i) order.push_back(i);
  order.push_back(0);
  ReadStats stats = Read(Lines(order), c);
  EXPECT_EQ(stats.pairs, 120u);
  EXPECT_EQ(stats.late, 1u);
  EXPECT_EQ(c.pairs(), 120u);

  // A wider window puts it back in place.
  Comparison wide(config), sorted(config);
  ReadOptions options;
  options.reorder_window = std::chrono::seconds(600);
  EXPECT_EQ(Read(Lines(order), wide, options).late, 0u);
  Read(Lines(Sorted(120)), sorted);
  EXPECT_TRUE(sorted.SameState(wide));
}

TEST(PairLogOrder, HeldBytesAreBounded) {
  // A cap below one line releases every line as it is read: file order again, memory bounded.
  auto config = OrderSensitiveConfig();
  Comparison c(config);
  ReadOptions options;
  options.max_held_bytes = 1;
  EXPECT_EQ(Read(Lines(NearlySorted(200)), c, options).late, 160u);
}

TEST(PairLogOrder, SeveralFilesAreMergedByTime) {
  // Two gateways' logs, interleaved in time, each nearly sorted, one of them rotated and
  // compressed: judged as the one sorted log.
  sg::testing::TempDir dir;
  std::vector<int> a, b;
  for (int i : NearlySorted(300)) (i % 2 == 0 ? a : b).push_back(i);
  const auto a_old = dir.Write("a.jsonl.1", Lines({a.begin(), a.begin() + 70}));
  const auto a_new = dir.Write("a.jsonl", Lines({a.begin() + 70, a.end()}));
  const auto b_log = dir.Write("b.jsonl", Lines(b));
  std::string error;
  ASSERT_TRUE(CompressFileZstd(a_old.string(), a_old.string() + ".zst", 3, &error)) << error;
  fs::remove(a_old);

  auto config = OrderSensitiveConfig();
  Comparison merged(config), sorted(config);
  std::vector<ReadStats> stats;
  // Listed newest first, as a shell's glob might: the order of the arguments does not matter.
  ASSERT_TRUE(ReadPairLogs({b_log.string(), a_new.string(), a_old.string() + ".zst"}, merged,
                           &stats, &error))
      << error;
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[0].pairs + stats[1].pairs + stats[2].pairs, 300u);
  EXPECT_EQ(stats[0].late + stats[1].late + stats[2].late, 0u);
  Read(Lines(Sorted(300)), sorted);
  EXPECT_TRUE(sorted.SameState(merged));
}

TEST(PairLogOrder, FilesAreOpenOnlyAroundTheirTime) {
  // One gateway's day in 12 rotated files and a second gateway's in one: at most the second's
  // and two of the first's (at a rotation's boundary) are open at once, not all 13.
  sg::testing::TempDir dir;
  std::vector<std::string> files;
  std::vector<int> b;
  for (int f = 0; f < 12; ++f) {
    std::vector<int> a;
    for (int i = f * 200; i < (f + 1) * 200; ++i) (i % 2 == 0 ? a : b).push_back(i);
    files.push_back(dir.Write("a.jsonl." + std::to_string(12 - f), Lines(a)).string());
  }
  files.push_back(dir.Write("b.jsonl", Lines(b)).string());
  auto config = OrderSensitiveConfig();
  Comparison merged(config), sorted(config);
  std::vector<ReadStats> stats;
  std::string error;
  size_t most_open = 0;
  ASSERT_TRUE(ReadPairLogs(files, merged, &stats, &error, {}, &most_open)) << error;
  EXPECT_LE(most_open, 3u);
  EXPECT_GE(most_open, 2u);
  Read(Lines(Sorted(2400)), sorted);
  EXPECT_TRUE(sorted.SameState(merged));
}

TEST(PairLogInputs, FoldersExpandToTheirPairLogFilesByName) {
  sg::testing::TempDir dir;
  fs::create_directories(dir.path() / "gw" / "sub.jsonl");  // a folder: not read, not recursed
  for (const char* name :
       {"pairs.jsonl", "pairs.jsonl.1", "pairs.jsonl.1.zst", "pairs.jsonl.2.zst", "other.jsonl.zst",
        "notes.txt", "pairs.jsonl.bak", ".pairs.jsonl.3.zst.tmp", ".hidden.jsonl"}) {
    dir.Write(std::string("gw/") + name, "");
  }
  const std::string gw = (dir.path() / "gw").string();
  std::vector<std::string> files;
  std::string error;
  ASSERT_TRUE(ExpandPairLogInputs({gw, "-"}, &files, &error)) << error;
  // pairs.jsonl.1 is left for its compressed copy; names in order; "-" kept.
  EXPECT_EQ(files,
            (std::vector<std::string>{gw + "/other.jsonl.zst", gw + "/pairs.jsonl",
                                      gw + "/pairs.jsonl.1.zst", gw + "/pairs.jsonl.2.zst", "-"}));

  files.clear();
  EXPECT_FALSE(ExpandPairLogInputs({gw, gw + "/pairs.jsonl"}, &files, &error));
  EXPECT_NE(error.find("pairs.jsonl: listed twice"), std::string::npos) << error;
  files.clear();
  EXPECT_FALSE(ExpandPairLogInputs({"-", "-"}, &files, &error));
  EXPECT_EQ(error, "-: listed twice");
  files.clear();
  fs::create_directories(dir.path() / "empty");
  EXPECT_FALSE(ExpandPairLogInputs({(dir.path() / "empty").string()}, &files, &error));
  EXPECT_NE(error.find("empty: no pair-log files in the folder"), std::string::npos) << error;
  // A file that is not there is named when it is opened.
  files.clear();
  const std::string nowhere = (dir.path() / "nowhere").string();
  ASSERT_TRUE(ExpandPairLogInputs({nowhere}, &files, &error)) << error;
  auto config = OrderSensitiveConfig();
  Comparison c(config);
  std::vector<ReadStats> stats;
  EXPECT_FALSE(ReadPairLogs(files, c, &stats, &error));
  EXPECT_EQ(error, nowhere + ": cannot open: No such file or directory");
}

}  // namespace
}  // namespace sg::comparator
