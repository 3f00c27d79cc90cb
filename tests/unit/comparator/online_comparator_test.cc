#include "comparator/online_comparator.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

std::shared_ptr<const CompareConfig> Config() {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  c->rules.push_back(r);
  return c;
}

std::shared_ptr<const GateConfig> PairsGate(double min) {
  auto g = std::make_shared<GateConfig>();
  Gate gate;
  gate.name = gate.metric = "pairs";
  gate.bound = min;
  g->gates.push_back(gate);
  return g;
}

TEST(OnlineComparator, JudgesFromManyThreads) {
  OnlineComparator online(Config(), PairsGate(400), {100000, "test", "", ""});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE(online.Offer(MakePair(std::to_string(t) + "-" + std::to_string(i),
                                          R"({"a": 0.9, "b": 0.1})", R"({"a": 0.9, "b": 0.1})")));
      }
    });
  }
  for (auto& t : threads) t.join();
  MirrorCounters counters;
  counters.instance = "h:1";
  counters.requests = 400;
  EXPECT_TRUE(online.Offer(counters));
  online.Flush();
  const auto q = online.queue_stats();
  EXPECT_EQ(q.accepted, 401u);
  EXPECT_EQ(q.judged, 401u);
  EXPECT_EQ(q.dropped, 0u);
  json j = json::parse(online.RenderJson());
  EXPECT_EQ(j["comparison"]["pairs"], 400);
  EXPECT_EQ(j["comparison"]["outcomes"]["match"], 400);
  EXPECT_EQ(j["comparison"]["counters"]["requests"], 400);
  EXPECT_EQ(j["verdict"]["verdict"], "PASS");
  EXPECT_EQ(j["queue"]["judged"], 401);
}

TEST(OnlineComparator, FullQueueDropsAndCounts) {
  OnlineComparator online(Config(), nullptr, {2, "test", "", ""});
  const auto pair = MakePair("x", R"({"a": 1})", R"({"a": 1})");
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) accepted += online.Offer(pair) ? 1 : 0;
  online.Flush();
  const auto q = online.queue_stats();
  EXPECT_EQ(q.accepted, static_cast<uint64_t>(accepted));
  EXPECT_EQ(q.accepted + q.dropped, 2000u);
  EXPECT_EQ(q.judged, q.accepted);
  json j = json::parse(online.RenderJson());
  EXPECT_EQ(j["comparison"]["pairs"], accepted);
  EXPECT_FALSE(j.contains("verdict"));  // no gates given
}

TEST(OnlineComparator, DestructorJudgesWhatWasQueued) {
  auto online = std::make_unique<OnlineComparator>(Config(), nullptr, OnlineOptions{});
  for (int i = 0; i < 50; ++i) online->Offer(MakePair("x", "{}", "{}"));
  online.reset();  // must not hang or crash
  SUCCEED();
}

}  // namespace
}  // namespace sg::comparator
