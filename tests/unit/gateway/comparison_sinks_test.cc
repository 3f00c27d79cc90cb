// FanOutPairSink and ComparatorPairSink: records reach every sink, drops are counted where they
// happen, and closing the comparator's sink judges everything it accepted.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "comparator/online_comparator.h"
#include "gateway/comparator_pair_sink.h"
#include "gateway/fan_out_pair_sink.h"

namespace sg::gateway {
namespace {

using nlohmann::json;

// Keeps what it is given; drops everything once `full`.
class RecordingSink : public PairSink {
 public:
  bool Submit(PairRecord record) override {
    if (full) return Drop();
    pairs.push_back(std::move(record));
    return true;
  }
  bool Submit(MirrorCounters counters) override {
    if (full) return Drop();
    counters_records.push_back(std::move(counters));
    return true;
  }
  uint64_t dropped() const override { return dropped_; }
  void Close() override { closed_at = ++*close_clock; }

  bool full = false;
  std::vector<PairRecord> pairs;
  std::vector<MirrorCounters> counters_records;
  std::shared_ptr<int> close_clock = std::make_shared<int>(0);
  int closed_at = 0;

 private:
  bool Drop() {
    ++dropped_;
    return false;
  }
  uint64_t dropped_ = 0;
};

PairRecord Pair(int i, const std::string& shadow_body) {
  PairRecord record;
  record.id = "id-" + std::to_string(i);
  record.route = "r";
  record.mirror = "m";
  record.primary.status = 200;
  record.primary.outcome = "ok";
  record.primary.body = "same";
  record.shadow.status = 200;
  record.shadow.outcome = "ok";
  record.shadow.body = shadow_body;
  return record;
}

TEST(FanOutPairSinkTest, EverySinkGetsEveryRecordAndItsOwnDropCount) {
  auto log = std::make_shared<RecordingSink>();
  auto online = std::make_shared<RecordingSink>();
  online->close_clock = log->close_clock;
  FanOutPairSink fan_out({log, online});

  EXPECT_TRUE(fan_out.Submit(Pair(1, "same")));
  online->full = true;
  EXPECT_FALSE(fan_out.Submit(Pair(2, "other")));  // one sink dropped it: false
  online->full = false;
  ASSERT_EQ(log->pairs.size(), 2u);
  ASSERT_EQ(online->pairs.size(), 1u);
  EXPECT_EQ(log->pairs[1].shadow.body, "other");  // the copy carries the bodies
  EXPECT_EQ(online->pairs[0].id, "id-1");
  EXPECT_EQ(fan_out.dropped(), 1u);

  MirrorCounters counters;
  counters.requests = 5;
  counters.sink_dropped = 99;  // what the gateway put there: replaced per sink
  EXPECT_TRUE(fan_out.Submit(counters));
  EXPECT_EQ(log->counters_records.at(0).sink_dropped, 0u);
  EXPECT_EQ(online->counters_records.at(0).sink_dropped, 1u);
  EXPECT_EQ(online->counters_records.at(0).requests, 5u);

  fan_out.Close();
  EXPECT_EQ(log->closed_at, 1);  // in order
  EXPECT_EQ(online->closed_at, 2);
}

TEST(FanOutPairSinkTest, CombineAddsAFanOutOnlyForSeveralSinks) {
  EXPECT_EQ(FanOutPairSink::Combine({}), nullptr);
  auto one = std::make_shared<RecordingSink>();
  EXPECT_EQ(FanOutPairSink::Combine({one}), one);
  auto two = FanOutPairSink::Combine({one, std::make_shared<RecordingSink>()});
  EXPECT_NE(dynamic_cast<FanOutPairSink*>(two.get()), nullptr);
}

std::shared_ptr<comparator::OnlineComparator> MakeOnline(size_t capacity) {
  auto rules = std::make_shared<const comparator::CompareConfig>();  // exact bytes
  return std::make_shared<comparator::OnlineComparator>(rules, nullptr, [&] {
    comparator::OnlineOptions o;
    o.queue_capacity = capacity;
    o.run = "test";
    return o;
  }());
}

TEST(ComparatorPairSinkTest, CloseJudgesEverythingAcceptedAndLaterRecordsAreDropped) {
  auto online = MakeOnline(1000);
  ComparatorPairSink sink(online);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(sink.Submit(Pair(i, i % 3 == 0 ? "other" : "same")));
  MirrorCounters counters;
  counters.route = "r";
  counters.mirror = "m";
  counters.requests = 30;
  ASSERT_TRUE(sink.Submit(counters));
  sink.Close();
  auto stats = online->queue_stats();
  EXPECT_EQ(stats.accepted, 31u);
  EXPECT_EQ(stats.judged, 31u);  // Close waited for the worker
  auto report = json::parse(online->RenderJson());
  EXPECT_EQ(report["comparison"]["pairs"], 30);
  EXPECT_EQ(report["comparison"]["outcomes"]["match"], 20);
  EXPECT_EQ(report["comparison"]["outcomes"]["mismatch"], 10);
  EXPECT_EQ(report["comparison"]["counters"]["requests"], 30);

  EXPECT_FALSE(sink.Submit(Pair(99, "same")));
  EXPECT_EQ(sink.dropped(), 1u);
  EXPECT_EQ(online->queue_stats().accepted, 31u);
  sink.Close();  // idempotent
}

TEST(ComparatorPairSinkTest, AFullQueueDropsWithoutBlockingAndCounts) {
  auto online = MakeOnline(1);
  ComparatorPairSink sink(online);
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) accepted += sink.Submit(Pair(i, "same")) ? 1 : 0;
  sink.Close();
  auto stats = online->queue_stats();
  EXPECT_EQ(stats.accepted, static_cast<uint64_t>(accepted));
  EXPECT_EQ(stats.accepted + stats.dropped, 2000u);
  EXPECT_GT(stats.dropped, 0u);  // one slot cannot keep up with a tight loop
  EXPECT_EQ(sink.dropped(), stats.dropped);
  EXPECT_EQ(stats.judged, stats.accepted);
}

}  // namespace
}  // namespace sg::gateway
