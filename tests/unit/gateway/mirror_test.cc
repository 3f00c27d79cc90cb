#include "gateway/mirror.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

namespace sg::gateway {
namespace {

struct Fixture {
  explicit Fixture(MirrorConfig config) {
    UpstreamConfig upstream;
    upstream.name = "shadow";
    upstream.endpoints = {{"127.0.0.1", 1}};
    auto pool = std::make_shared<UpstreamPool>(
        std::vector<net::io_context*>{&ioc}, std::vector<std::shared_ptr<DeadlineSweeper>>{sweeper},
        upstream, "mirror", true);
    mirror = std::make_unique<MirrorRuntime>(config, "r", pool, metrics);
  }
  net::io_context ioc;
  std::shared_ptr<DeadlineSweeper> sweeper = std::make_shared<DeadlineSweeper>();
  MetricsRegistry registry;
  GatewayMetrics metrics{registry};
  std::unique_ptr<MirrorRuntime> mirror;
};

UpstreamResult Result(UpstreamOutcome outcome, int status = 200) {
  UpstreamResult result;
  result.outcome = outcome;
  result.response.result(status);
  return result;
}

TEST(MirrorTest, AdmitCountsEveryReason) {
  MirrorConfig config;
  config.name = "m";
  config.percent = 50;
  config.max_body_bytes = 10;
  config.max_in_flight = 2;
  Fixture f(config);
  int admitted = 0;
  for (int i = 0; i < 4; ++i) {
    if (f.mirror->Admit("", 1) == NotMirrored::kNone) ++admitted;
  }
  // Counter sampling at 50%: 2 of 4 sampled in; both fit in flight.
  EXPECT_EQ(admitted, 2);
  EXPECT_EQ(f.mirror->not_mirrored(0), 2u);
  EXPECT_EQ(f.mirror->in_flight(), 2);
  // The next sampled-in request finds both slots busy: overload.
  f.mirror->set_percent(100);
  EXPECT_EQ(f.mirror->Admit("", 1), NotMirrored::kOverload);
  EXPECT_EQ(f.mirror->not_mirrored(2), 1u);
  EXPECT_EQ(f.mirror->Admit("", 11), NotMirrored::kBodyTooLarge);
  EXPECT_EQ(f.mirror->not_mirrored(1), 1u);
  f.mirror->Finished(Result(UpstreamOutcome::kOk));
  EXPECT_EQ(f.mirror->in_flight(), 1);
  EXPECT_EQ(f.mirror->Admit("", 1), NotMirrored::kNone);
}

constexpr int64_t kMs = 1000 * 1000;

TEST(MirrorPacerTest, AdmitsEverythingBeforeACopyFinished) {
  MirrorPacer pacer(256, 32);
  EXPECT_EQ(pacer.interval_ns(), 0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(pacer.Admit(5 * kMs));
}

TEST(MirrorPacerTest, AdmitsABurstThenOnePerInterval) {
  MirrorPacer pacer(256, 32);
  pacer.Observe(200 * kMs);
  // Paced for 256 - 32 copies in flight: one per 200 ms / 224.
  int64_t interval = 200 * kMs / 224;
  EXPECT_EQ(pacer.interval_ns(), interval);
  const int64_t t = 1000 * kMs;
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += pacer.Admit(t);
  EXPECT_EQ(admitted, 32);
  EXPECT_FALSE(pacer.Admit(t + interval - 1));
  EXPECT_TRUE(pacer.Admit(t + interval));
  EXPECT_FALSE(pacer.Admit(t + interval));
  // Idle time refills the burst, never more.
  admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += pacer.Admit(t + 100 * interval);
  EXPECT_EQ(admitted, 32);
}

TEST(MirrorPacerTest, SpreadsASteadyStreamAtTheSustainableRate) {
  MirrorPacer pacer(256, 32);
  pacer.Observe(200 * kMs);
  // 40,000 requests a second for 2 s, all wanting a copy: about 224 per 200 ms get one (plus the
  // first burst), and no 10 ms stretch gets more than its share plus the burst.
  int admitted = 0, most_in_10ms = 0, in_10ms = 0;
  for (int64_t t = 0; t < 2000 * kMs; t += 25 * 1000) {
    if (t % (10 * kMs) == 0) in_10ms = 0;
    if (pacer.Admit(t)) {
      ++admitted;
      most_in_10ms = std::max(most_in_10ms, ++in_10ms);
    }
  }
  EXPECT_NEAR(admitted, 2 * 1120 + 32, 2);
  EXPECT_LE(most_in_10ms, 32 + 12);
}

TEST(MirrorPacerTest, FollowsTheAverageSlotTime) {
  MirrorPacer pacer(9, 1);
  pacer.Observe(800 * kMs);
  EXPECT_EQ(pacer.interval_ns(), 100 * kMs);
  for (int i = 0; i < 100; ++i) pacer.Observe(80 * kMs);
  EXPECT_NEAR(static_cast<double>(pacer.interval_ns()), 10.0 * kMs, 0.1 * kMs);
}

TEST(MirrorPacerTest, ConcurrentAdmissionsShareOneBurst) {
  MirrorPacer pacer(64, 8);
  pacer.Observe(1000 * kMs);
  std::atomic<int> admitted{0};
  auto admit = [&] {
    for (int i = 0; i < 10000; ++i) admitted += pacer.Admit(7 * kMs);
  };
  std::thread a(admit), b(admit);
  a.join();
  b.join();
  EXPECT_EQ(admitted.load(), 8);
}

// Once a copy has finished, the runtime paces: a slow shadow's copies no longer start in waves.
TEST(MirrorTest, AdmitPacesAfterTheFirstCopyFinished) {
  MirrorConfig config;
  config.name = "m";
  config.max_in_flight = 16;  // a burst of 2, paced for 14 in flight
  Fixture f(config);
  auto slow = Result(UpstreamOutcome::kOk);
  slow.dispatched = std::chrono::steady_clock::now();
  slow.completed = slow.dispatched + std::chrono::seconds(10);  // one copy per 10 s / 14
  EXPECT_EQ(f.mirror->Admit("", 1), NotMirrored::kNone);
  f.mirror->Finished(slow);
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += f.mirror->Admit("", 1) == NotMirrored::kNone;
  EXPECT_EQ(admitted, 2);
  EXPECT_EQ(f.mirror->not_mirrored(2), 8u);  // overload
  EXPECT_EQ(f.mirror->in_flight(), 2);
}

TEST(MirrorTest, BodySizeIgnoredWhenBodyNotMirrored) {
  MirrorConfig config;
  config.mirror_body = false;
  config.max_body_bytes = 1;
  Fixture f(config);
  EXPECT_EQ(f.mirror->Admit("", 1000), NotMirrored::kNone);
}

TEST(MirrorTest, OutcomesAreClassified) {
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kOk, 200)), 0);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kOk, 404)), 0);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kOk, 500)), 1);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kError)), 1);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kOverload)), 1);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kTimeout)), 2);
  EXPECT_EQ(ShadowOutcomeIndex(Result(UpstreamOutcome::kConnectFailed)), 3);
  EXPECT_STREQ(PrimaryOutcome(Result(UpstreamOutcome::kOk, 503)), "error");
  EXPECT_STREQ(PrimaryOutcome(Result(UpstreamOutcome::kTimeout)), "timeout");
}

TEST(MirrorTest, CaptureCutsBodyAndKeepsSelectedHeaders) {
  auto result = Result(UpstreamOutcome::kOk, 200);
  result.response.set(http::field::content_type, "application/json");
  result.response.set("X-Other", "1");
  result.response.body() = "0123456789";
  auto captured = CaptureResponse(result, "ok", {"content-type"}, 4);
  EXPECT_EQ(captured.status, 200);
  EXPECT_EQ(captured.body, "0123");
  EXPECT_TRUE(captured.body_truncated);
  ASSERT_EQ(captured.headers.size(), 1u);
  EXPECT_EQ(captured.headers["content-type"], "application/json");
  auto failed = CaptureResponse(Result(UpstreamOutcome::kTimeout), "shadow_timeout", {}, 4);
  EXPECT_EQ(failed.status, 0);
  EXPECT_EQ(failed.outcome, "shadow_timeout");
}

// The pair is submitted once both halves are in, whichever comes first.
class RecordingSink : public PairSink {
 public:
  bool Submit(PairRecord record) override {
    records.push_back(std::move(record));
    return true;
  }
  bool Submit(MirrorCounters) override { return true; }
  uint64_t dropped() const override { return 0; }
  void Close() override {}
  std::vector<PairRecord> records;
};

TEST(MirrorTest, CollectorSubmitsWhenBothHalvesArrive) {
  auto sink = std::make_shared<RecordingSink>();
  PairCollector a(sink);
  PairRecord record;
  record.id = "x";
  record.request.target = "/a";
  a.SetRequest(record);
  CapturedResponse shadow;
  shadow.outcome = "ok";
  a.SetShadow(shadow);
  EXPECT_TRUE(sink->records.empty());
  CapturedResponse primary;
  primary.status = 201;
  a.SetPrimary(primary);
  ASSERT_EQ(sink->records.size(), 1u);
  EXPECT_EQ(sink->records[0].id, "x");
  EXPECT_EQ(sink->records[0].request.target, "/a");
  EXPECT_EQ(sink->records[0].primary.status, 201);
  EXPECT_EQ(sink->records[0].shadow.outcome, "ok");
}

// A primary refused at once completes before the copy is made (DispatchMirrors posts the copy):
// the request half set after it keeps the primary.
TEST(MirrorTest, CollectorKeepsAPrimaryThatCameBeforeTheRequest) {
  auto sink = std::make_shared<RecordingSink>();
  PairCollector a(sink);
  CapturedResponse primary;
  primary.status = 503;
  primary.outcome = "error";
  a.SetPrimary(primary);
  PairRecord record;
  record.id = "y";
  record.mirror = "m";
  a.SetRequest(record);
  EXPECT_TRUE(sink->records.empty());
  a.SetShadow(CapturedResponse{});
  ASSERT_EQ(sink->records.size(), 1u);
  EXPECT_EQ(sink->records[0].id, "y");
  EXPECT_EQ(sink->records[0].mirror, "m");
  EXPECT_EQ(sink->records[0].primary.status, 503);
  EXPECT_EQ(sink->records[0].primary.outcome, "error");
}

// Served by the candidate: the client's answer (the session's exchange) is the record's shadow,
// the copy to the old primary its primary, each outcome in its side's words.
TEST(PairCollectorTest, AReversedPairKeepsTheOldPrimaryAsTheReference) {
  auto sink = std::make_shared<RecordingSink>();
  PairCollector collector(sink, /*reversed=*/true);
  PairRecord request;
  request.id = "x";
  request.mirror = "cpu";
  request.served_by_candidate = true;
  collector.SetRequest(request);
  CapturedResponse copy;  // the old primary's answer, from the mirror's exchange
  copy.status = 200;
  copy.outcome = "ok";
  copy.body = "reference";
  copy.send_offset_us = 12;
  collector.SetShadow(copy);
  EXPECT_TRUE(sink->records.empty());
  CapturedResponse served;  // the candidate's answer, which the client got
  served.status = 500;
  served.outcome = "error";
  served.body = "candidate";
  collector.SetPrimary(served);
  ASSERT_EQ(sink->records.size(), 1u);
  const auto& record = sink->records[0];
  EXPECT_TRUE(record.served_by_candidate);
  EXPECT_EQ(record.primary.body, "reference");
  EXPECT_EQ(record.primary.outcome, "ok");
  EXPECT_EQ(record.primary.send_offset_us, 0);
  EXPECT_EQ(record.shadow.body, "candidate");
  EXPECT_EQ(record.shadow.outcome, "shadow_error");
  EXPECT_EQ(record.shadow.send_offset_us, -12);
}

}  // namespace
}  // namespace sg::gateway
