#include "gateway/jsonl_pair_sink.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/zstd_file.h"
#include "tests/support/test_support.h"

namespace sg::gateway {
namespace {

std::vector<std::string> Lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

PairRecord Record(int i) {
  PairRecord record;
  record.id = "id-" + std::to_string(i);
  record.route = "r";
  record.mirror = "m";
  record.request.method = "POST";
  record.request.target = "/p";
  record.primary.status = 200;
  record.primary.outcome = "ok";
  record.shadow.outcome = "shadow_timeout";
  return record;
}

TEST(JsonlPairSinkTest, WritesDecodableLinesAndFlushesOnClose) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(sink->Submit(Record(i)));
  MirrorCounters counters;
  counters.route = "r";
  counters.mirror = "m";
  counters.requests = 100;
  counters.mirrored["ok"] = 100;
  EXPECT_TRUE(sink->Submit(counters));
  sink->Close();
  EXPECT_FALSE(sink->Submit(Record(101)));  // after Close: dropped, counted
  EXPECT_EQ(sink->dropped(), 1u);
  auto lines = Lines(config.path);
  ASSERT_EQ(lines.size(), 101u);
  for (int i = 0; i < 100; ++i) {
    std::string why;
    auto entry = DecodePairLogLine(lines[static_cast<size_t>(i)], &why);
    ASSERT_TRUE(entry) << why;
    ASSERT_TRUE(std::holds_alternative<PairRecord>(*entry));
    EXPECT_EQ(std::get<PairRecord>(*entry).id, "id-" + std::to_string(i));
    EXPECT_EQ(std::get<PairRecord>(*entry).shadow.outcome, "shadow_timeout");
  }
  std::string why;
  auto last = DecodePairLogLine(lines.back(), &why);
  ASSERT_TRUE(last && std::holds_alternative<MirrorCounters>(*last)) << why;
  EXPECT_EQ(std::get<MirrorCounters>(*last).requests, 100u);
}

TEST(JsonlPairSinkTest, FullQueueDropsAndCountsWithoutBlocking) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.queue_capacity = 4;
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink);
  // Far more than the queue holds, submitted faster than any disk: some are dropped, none block.
  int accepted = 0;
  const int n = 20000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) accepted += sink->Submit(Record(i)) ? 1 : 0;
  auto elapsed = std::chrono::steady_clock::now() - start;
  sink->Close();
  EXPECT_LT(elapsed, std::chrono::seconds(5));
  EXPECT_EQ(static_cast<uint64_t>(accepted) + sink->dropped(), static_cast<uint64_t>(n));
  EXPECT_GT(sink->dropped(), 0u);
  EXPECT_EQ(Lines(config.path).size(), static_cast<size_t>(accepted));
}

TEST(JsonlPairSinkTest, RotatesBySizeKeepingMaxFiles) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_file_bytes = 4096;
  config.max_files = 2;
  config.compression = "none";
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();
  namespace fs = std::filesystem;
  ASSERT_TRUE(fs::exists(config.path));
  ASSERT_TRUE(fs::exists(config.path + ".1"));
  ASSERT_TRUE(fs::exists(config.path + ".2"));
  EXPECT_FALSE(fs::exists(config.path + ".3"));
  for (const auto& file : {config.path, config.path + ".1", config.path + ".2"}) {
    EXPECT_LE(fs::file_size(file), 4096u) << file;
  }
  // The newest records are in the live file, each line whole.
  auto live = Lines(config.path);
  ASSERT_FALSE(live.empty());
  std::string why;
  auto entry = DecodePairLogLine(live.back(), &why);
  ASSERT_TRUE(entry) << why;
  EXPECT_EQ(std::get<PairRecord>(*entry).id, "id-199");
}

TEST(JsonlPairSinkTest, FilesAreReadableByTheirOwnerOnly) {
  // The log holds request and response bodies: 0600 whatever the umask, rotated files too.
  testing::TempDir dir;
  const mode_t old_umask = ::umask(0);
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_file_bytes = 1024;
  config.max_files = 1;
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();
  ::umask(old_umask);
  namespace fs = std::filesystem;
  for (const auto& file : {config.path, config.path + ".1.zst"}) {
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << file;
  }
}

// Every record of a log, oldest first, across its rotated files (compressed or not).
std::vector<std::string> AllIds(const PairLogConfig& config) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (int i = config.max_files; i >= 1; --i) {
    std::string file = config.path + "." + std::to_string(i);
    if (fs::exists(file + ".zst")) files.push_back(file + ".zst");
    if (fs::exists(file)) files.push_back(file);
  }
  files.push_back(config.path);
  std::vector<std::string> ids;
  for (const auto& file : files) {
    std::string error;
    auto in = OpenMaybeCompressed(file, &error);
    EXPECT_TRUE(in) << error;
    if (!in) continue;
    for (std::string line; std::getline(*in, line);) {
      std::string why;
      auto entry = DecodePairLogLine(line, &why);
      EXPECT_TRUE(entry) << file << ": " << why;
      if (entry) ids.push_back(std::get<PairRecord>(*entry).id);
    }
    EXPECT_EQ(CompressedStreamError(*in), "") << file;
  }
  return ids;
}

TEST(JsonlPairSinkTest, RotatedFilesAreCompressedAndReadBackWhole) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_file_bytes = 8192;
  config.max_files = 100;
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();  // waits for the last compression
  namespace fs = std::filesystem;
  int compressed = 0;
  for (int i = 1; i <= config.max_files; ++i) {
    std::string file = config.path + "." + std::to_string(i);
    EXPECT_FALSE(fs::exists(file)) << file << " left uncompressed";
    if (!fs::exists(file + ".zst")) continue;
    ++compressed;
    EXPECT_TRUE(IsZstdFile(file + ".zst"));
    EXPECT_LT(fs::file_size(file + ".zst"), 8192u / 4) << file;
  }
  EXPECT_GE(compressed, 5);
  auto ids = AllIds(config);
  ASSERT_EQ(ids.size(), 400u);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(ids[static_cast<size_t>(i)], "id-" + std::to_string(i));
}

// Without compression the rotated files are fsynced, then their folder, on a thread of their
// own (fsync itself cannot be seen from here): every record is still there, in order, in whole
// lines, and nothing but the log's files is left in the folder.
TEST(JsonlPairSinkTest, PlainRotatedFilesAreReadBackWhole) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_file_bytes = 4096;
  config.max_files = 100;
  config.compression = "none";
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();  // joins the last rotation's fsync
  namespace fs = std::filesystem;
  int rotated = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(name.rfind("pairs.jsonl", 0), 0u) << name;
    EXPECT_EQ(name.find(".zst"), std::string::npos) << name;
    rotated += name != "pairs.jsonl";
  }
  EXPECT_GE(rotated, 10);
  auto ids = AllIds(config);
  ASSERT_EQ(ids.size(), 400u);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(ids[static_cast<size_t>(i)], "id-" + std::to_string(i));
}

TEST(JsonlPairSinkTest, RetentionByTotalSizeDropsTheOldestFilesOnly) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_file_bytes = 4096;
  config.max_files = 1000;
  config.compression = "none";  // sizes as written: the cap is easy to check
  config.max_total_bytes = 5 * 4096;
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();
  namespace fs = std::filesystem;
  uint64_t rotated = 0;
  for (int i = 1; i <= config.max_files; ++i) {
    std::string file = config.path + "." + std::to_string(i);
    if (fs::exists(file)) rotated += fs::file_size(file);
  }
  // At the last rotation the live file was empty: the rotated files fit the cap.
  EXPECT_LE(rotated, static_cast<uint64_t>(config.max_total_bytes));
  EXPECT_GT(rotated, static_cast<uint64_t>(config.max_total_bytes) / 2);
  // What is kept is the newest records, with no gap.
  auto ids = AllIds(config);
  ASSERT_FALSE(ids.empty());
  ASSERT_LT(ids.size(), 1000u);
  size_t first = 1000 - ids.size();
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], "id-" + std::to_string(first + i));
}

TEST(JsonlPairSinkTest, RetentionByAgeRemovesOldRotatedFilesAtStart) {
  testing::TempDir dir;
  namespace fs = std::filesystem;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  config.max_files = 10;
  config.max_age = std::chrono::hours(24);
  // Files of an earlier run: .1 from an hour ago, .2 and .3 from two days ago.
  for (int i = 1; i <= 3; ++i) {
    auto file = dir.Write("pairs.jsonl." + std::to_string(i) + ".zst", "x");
    auto age = i == 1 ? std::chrono::hours(1) : std::chrono::hours(48);
    fs::last_write_time(file, fs::file_time_type::clock::now() - age);
  }
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  sink->Close();
  EXPECT_TRUE(fs::exists(config.path + ".1.zst"));
  EXPECT_FALSE(fs::exists(config.path + ".2.zst"));
  EXPECT_FALSE(fs::exists(config.path + ".3.zst"));
}

TEST(JsonlPairSinkTest, PlainRotatedFilesOfAnEarlierRunAreCompressedAtStart) {
  testing::TempDir dir;
  PairLogConfig config;
  config.path = (dir.path() / "pairs.jsonl").string();
  std::string text;
  for (int i = 0; i < 10; ++i) text += EncodePairLogLine(Record(i)) + "\n";
  dir.Write("pairs.jsonl.1", text);  // a run stopped while compressing it
  std::string error;
  auto sink = JsonlPairSink::Open(config, &error);
  ASSERT_TRUE(sink) << error;
  sink->Close();
  namespace fs = std::filesystem;
  EXPECT_FALSE(fs::exists(config.path + ".1"));
  ASSERT_TRUE(fs::exists(config.path + ".1.zst"));
  EXPECT_EQ(AllIds(config).size(), 10u);
}

}  // namespace
}  // namespace sg::gateway
