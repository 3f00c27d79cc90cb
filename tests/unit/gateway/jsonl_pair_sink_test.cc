#include "gateway/jsonl_pair_sink.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
  ::umask(old_umask);
  ASSERT_TRUE(sink) << error;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(sink->Submit(Record(i)));
  sink->Close();
  namespace fs = std::filesystem;
  for (const auto& file : {config.path, config.path + ".1"}) {
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << file;
  }
}

}  // namespace
}  // namespace sg::gateway
