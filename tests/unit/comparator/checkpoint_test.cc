// Checkpoints of the online comparator (comparator/checkpoint.h) on real files: resumed for the
// same run and config and continued exactly as one uninterrupted comparison; written
// periodically while pairs arrive (not only at Close); refused, logged and set aside when they
// belong to another run or config, are truncated or corrupt.
#include "comparator/checkpoint.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "comparator/online_comparator.h"
#include "comparator/state_codec.h"
#include "tests/support/test_support.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::MakePair;
using namespace std::chrono_literals;

std::shared_ptr<const CompareConfig> Config() {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  c->rules.push_back(r);
  c->reservoir_size = 50;  // overflows: the reservoir's random state must survive a restart
  return c;
}

std::vector<PairRecord> Pairs(int n, int first) {
  std::mt19937_64 rng(first);
  std::vector<PairRecord> out;
  for (int i = first; i < first + n; ++i) {
    const bool flip = rng() % 10 == 0;
    std::string id = "p";
    id += std::to_string(i);  // not "p" + to_string(i): GCC 12's -Wrestrict false positive
    auto p = MakePair(id, R"({"Coat": 0.8, "Bag": 0.2})",
                      flip ? R"({"Bag": 0.8, "Coat": 0.2})" : R"({"Coat": 0.79, "Bag": 0.21})",
                      1000 + static_cast<int64_t>(rng() % 9000),
                      1000 + static_cast<int64_t>(rng() % 9000));
    p.ts_us += int64_t{i} * 600'000'000;  // ten minutes apart: several hours
    out.push_back(std::move(p));
  }
  return out;
}

OnlineOptions Options(const fs::path& path, std::chrono::milliseconds interval = 1h) {
  OnlineOptions o;
  o.run = "month-1";
  o.checkpoint_path = path.string();
  o.checkpoint_interval = interval;
  o.config_sha256 = "cafe";
  return o;
}

// The state a checkpoint file holds, encoded (for exact comparison).
std::string StateIn(const fs::path& path) {
  std::ifstream in(path);
  const json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded()) return "(not JSON)";
  Comparison c(Config());
  std::string error;
  if (!DecodeComparisonState(doc["state"], &c, &error)) return error;
  return StateCodec::Encode(c).dump();
}

std::string Reference(const std::vector<PairRecord>& pairs) {
  Comparison c(Config());
  for (const auto& p : pairs) c.Add(p);
  return StateCodec::Encode(c).dump();
}

TEST(Checkpoint, ARestartedRunResumesAndEndsAsOneUninterruptedRun) {
  sg::testing::TempDir dir;
  const fs::path path = dir.path() / "comparison.ckpt";
  std::vector<PairRecord> all;
  // Three processes' lifetimes, each stopped gracefully (Close writes the checkpoint).
  for (int life = 0; life < 3; ++life) {
    OnlineComparator online(Config(), nullptr, Options(path));
    const auto stats = online.checkpoint_stats();
    EXPECT_EQ(stats.refused, "");
    EXPECT_EQ(stats.resumed.empty(), life == 0) << stats.resumed;
    EXPECT_EQ(stats.resumed_judged, all.size());
    for (auto& p : Pairs(120, life * 1000)) {
      all.push_back(p);
      ASSERT_TRUE(online.Offer(std::move(p)));
    }
    online.Close();
    EXPECT_EQ(online.checkpoint_stats().written, 1u);
  }
  EXPECT_EQ(StateIn(path), Reference(all));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
}

TEST(Checkpoint, IsWrittenPeriodicallyWhilePairsArrive) {
  sg::testing::TempDir dir;
  const fs::path path = dir.path() / "comparison.ckpt";
  OnlineComparator online(Config(), nullptr, Options(path, 20ms));
  const auto pairs = Pairs(60, 7);
  for (auto p : pairs) ASSERT_TRUE(online.Offer(std::move(p)));
  online.Flush();
  // No Close: the worker writes it on its own within the interval (waited on the file itself).
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (StateIn(path) != Reference(pairs) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(StateIn(path), Reference(pairs));
  EXPECT_GE(online.checkpoint_stats().written, 1u);
}

TEST(Checkpoint, ForeignOrCorruptCheckpointsAreRefusedAndSetAside) {
  sg::testing::TempDir dir;
  const fs::path path = dir.path() / "comparison.ckpt";
  {
    OnlineComparator online(Config(), nullptr, Options(path));
    for (auto p : Pairs(30, 1)) online.Offer(std::move(p));
  }  // Close: written
  std::ifstream in(path);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(good.empty());

  struct Case {
    std::string name, content, run, config, reason;
  };
  std::string tampered = good;
  const size_t at = tampered.find("\"outcomes\":[");
  tampered.insert(at + 12, "9");  // valid JSON, a count that was never judged
  const Case cases[] = {
      {"other run", good, "month-2", "cafe", "of run \"month-1\", this is run \"month-2\""},
      {"other config", good, "month-1", "beef", "written with another compare config"},
      {"truncated", good.substr(0, good.size() / 2), "month-1", "cafe", "not JSON"},
      {"tampered", tampered, "month-1", "cafe", "checksum does not match"},
      {"empty", "", "month-1", "cafe", "not JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const auto& e : fs::directory_iterator(dir.path())) fs::remove(e.path());
    std::ofstream(path, std::ios::binary) << c.content;
    OnlineOptions o = Options(path);
    o.run = c.run;
    o.config_sha256 = c.config;
    OnlineComparator online(Config(), nullptr, o);
    const auto stats = online.checkpoint_stats();
    EXPECT_NE(stats.refused.find(c.reason), std::string::npos) << stats.refused;
    EXPECT_EQ(stats.resumed, "");
    // Never merged: the run starts empty; the file is kept beside, under another name.
    EXPECT_EQ(online.Report()["comparison"]["pairs"], 0);
    EXPECT_FALSE(fs::exists(path));
    int aside = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) {
      if (e.path().filename().string().rfind("comparison.ckpt.refused-", 0) == 0) {
        ++aside;
        std::ifstream kept(e.path(), std::ios::binary);
        EXPECT_EQ(std::string((std::istreambuf_iterator<char>(kept)), {}), c.content);
      }
    }
    EXPECT_EQ(aside, 1);
  }
}

}  // namespace
}  // namespace sg::comparator

namespace sg::comparator {
namespace {

TEST(Checkpoint, BytesThatAreNotUtf8AreWrittenAndResumedAsTheReportShowsThem) {
  // A header value is any bytes (obs-text): as the true label it names a slice in the state. The
  // checkpoint must not throw in the judging thread (that ended the gateway); it writes U+FFFD
  // for each bad byte, as the report does, so the resumed run reports what the first one did.
  sg::testing::TempDir dir;
  const fs::path path = dir.path() / "comparison.ckpt";
  std::vector<PairRecord> pairs = Pairs(30, 3);
  for (size_t i = 0; i < pairs.size(); ++i) {
    pairs[i].request.headers["x-true-label"] = i % 2 ? "Coat"
                                                     : "Co\xff\xfe"
                                                       "at";
    pairs[i].route = i % 3 ? "classify" : "cl\xc3(assify";
  }
  json first;
  {
    OnlineComparator online(Config(), nullptr, Options(path));
    for (auto p : pairs) ASSERT_TRUE(online.Offer(std::move(p)));
    online.Close();
    EXPECT_EQ(online.checkpoint_stats().written, 1u) << online.checkpoint_stats().last_error;
    first = json::parse(online.RenderJson())["comparison"];
  }
  OnlineComparator resumed(Config(), nullptr, Options(path));
  EXPECT_EQ(resumed.checkpoint_stats().refused, "");
  EXPECT_EQ(resumed.checkpoint_stats().resumed_judged, pairs.size());
  const json again = json::parse(resumed.RenderJson())["comparison"];
  EXPECT_EQ(again, first);
  EXPECT_EQ(again["pairs"], pairs.size());
}

}  // namespace
}  // namespace sg::comparator
