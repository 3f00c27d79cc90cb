#include "comparator/online_comparator.h"

#include <algorithm>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

OnlineOptions Options(size_t queue_capacity, const std::string& run) {
  OnlineOptions o;
  o.queue_capacity = queue_capacity;
  o.run = run;
  return o;
}

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
  OnlineComparator online(Config(), PairsGate(400), Options(100000, "test"));
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

// A pair whose judging takes a while (two classification answers of `labels` labels each), so
// that what is offered right after it waits in the queue.
PairRecord SlowPair(int labels) {
  json answer = json::object();
  for (int i = 0; i < labels; ++i) answer["label" + std::to_string(i)] = 1.0 / labels;
  return MakePair("slow", answer.dump(), answer.dump());
}

TEST(OnlineComparator, FullQueueDropsAndCounts) {
  // A queue of 2 behind a worker busy with a slow pair: offers beyond the 2 waiting are refused
  // and counted, and the queue never holds more than its capacity (an unbounded queue fails
  // both). Offered until the first drop, at most 20,000 times.
  OnlineComparator online(Config(), nullptr, Options(2, "test"));
  ASSERT_TRUE(online.Offer(SlowPair(2000)));
  const auto pair = MakePair("x", R"({"a": 1})", R"({"a": 1})");
  int offered = 1, accepted = 1;
  size_t max_depth = 0;
  while (online.queue_stats().dropped == 0 && offered < 20000) {
    accepted += online.Offer(pair) ? 1 : 0;
    ++offered;
    max_depth = std::max(max_depth, online.queue_stats().depth);
  }
  online.Flush();
  const auto q = online.queue_stats();
  EXPECT_GT(q.dropped, 0u);
  EXPECT_LE(max_depth, 2u);
  EXPECT_EQ(q.capacity, 2u);
  EXPECT_EQ(q.accepted, static_cast<uint64_t>(accepted));
  EXPECT_EQ(q.accepted + q.dropped, static_cast<uint64_t>(offered));
  EXPECT_EQ(q.judged, q.accepted);
  json j = json::parse(online.RenderJson());
  EXPECT_EQ(j["comparison"]["pairs"], accepted);
  EXPECT_EQ(j["queue"]["dropped"], q.dropped);
  EXPECT_FALSE(j.contains("verdict"));  // no gates given
}

TEST(OnlineComparator, CloseJudgesWhatWasQueued) {
  // The 50 pairs wait behind a slow one when Close() is called: a Close (or destructor) that
  // stops the worker without judging the queue leaves them out of the comparison.
  OnlineComparator online(Config(), nullptr, OnlineOptions{});
  ASSERT_TRUE(online.Offer(SlowPair(2000)));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(online.Offer(MakePair("x", "{}", "{}")));
  online.Close();
  auto q = online.queue_stats();
  EXPECT_EQ(q.accepted, 51u);
  ASSERT_EQ(q.judged, 51u);  // (Flush below would wait forever for the rest)
  EXPECT_EQ(q.depth, 0u);
  EXPECT_EQ(json::parse(online.RenderJson())["comparison"]["pairs"], 51);
  // Closed: later offers are refused and counted; Close and Flush return at once.
  EXPECT_FALSE(online.Offer(MakePair("late", "{}", "{}")));
  online.Close();
  online.Flush();
  q = online.queue_stats();
  EXPECT_EQ(q.dropped, 1u);
  EXPECT_EQ(q.judged, 51u);
}

TEST(OnlineComparator, DestructorReturnsWithRecordsQueued) {
  // The destructor is Close(): it judges the queue (above) and joins the worker, without
  // hanging on a full queue or on records offered from another thread meanwhile.
  auto online = std::make_unique<OnlineComparator>(Config(), nullptr, Options(4, "t"));
  ASSERT_TRUE(online->Offer(SlowPair(2000)));
  std::thread offering([&] {
    for (int i = 0; i < 1000; ++i) online->Offer(MakePair("x", "{}", "{}"));
  });
  offering.join();
  online.reset();
}

}  // namespace
}  // namespace sg::comparator
