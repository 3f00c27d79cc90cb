#include "common/metrics.h"

#include <thread>

#include <gtest/gtest.h>

namespace sg {
namespace {

TEST(MetricsTest, RendersCountersAndGaugesWithLabels) {
  MetricsRegistry registry;
  auto& requests = registry.AddCounter("requests_total", "Requests handled.", {"route", "code"});
  requests.WithLabels({"api", "200"}).Increment();
  requests.WithLabels({"api", "200"}).Increment(2);
  requests.WithLabels({"api", "500"}).Increment();
  registry.AddGauge("in_flight", "Requests in flight.").WithLabels({}).Set(-1.5);
  EXPECT_EQ(registry.Render(),
            "# HELP requests_total Requests handled.\n"
            "# TYPE requests_total counter\n"
            "requests_total{route=\"api\",code=\"200\"} 3\n"
            "requests_total{route=\"api\",code=\"500\"} 1\n"
            "# HELP in_flight Requests in flight.\n"
            "# TYPE in_flight gauge\n"
            "in_flight -1.5\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry registry;
  auto& h = registry.AddHistogram("latency_seconds", "Latency.", {0.1, 0.5, 1}, {"side"});
  auto& primary = h.WithLabels({"primary"});
  for (double v : {0.05, 0.1, 0.3, 0.7, 2.0}) primary.Observe(v);
  EXPECT_EQ(registry.Render(),
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{side=\"primary\",le=\"0.1\"} 2\n"
            "latency_seconds_bucket{side=\"primary\",le=\"0.5\"} 3\n"
            "latency_seconds_bucket{side=\"primary\",le=\"1\"} 4\n"
            "latency_seconds_bucket{side=\"primary\",le=\"+Inf\"} 5\n"
            "latency_seconds_sum{side=\"primary\"} 3.15\n"
            "latency_seconds_count{side=\"primary\"} 5\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddCounter("x_total", "a\\b\nc", {"path"}).WithLabels({"a\"b\\c\nd"}).Increment();
  EXPECT_EQ(registry.Render(),
            "# HELP x_total a\\\\b\\nc\n"
            "# TYPE x_total counter\n"
            "x_total{path=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, SpecialValues) {
  MetricsRegistry registry;
  auto& g = registry.AddGauge("g", "G.", {"k"});
  g.WithLabels({"nan"}).Set(std::numeric_limits<double>::quiet_NaN());
  g.WithLabels({"pinf"}).Set(std::numeric_limits<double>::infinity());
  g.WithLabels({"small"}).Set(1e-7);
  std::string text = registry.Render();
  EXPECT_NE(text.find("g{k=\"nan\"} NaN\n"), std::string::npos);
  EXPECT_NE(text.find("g{k=\"pinf\"} +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("g{k=\"small\"} 1e-07\n"), std::string::npos);
}

TEST(MetricsTest, RejectsBadNamesAndDuplicates) {
  MetricsRegistry registry;
  EXPECT_THROW(registry.AddCounter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(registry.AddCounter("ok", "x", {"bad-label"}), std::invalid_argument);
  EXPECT_THROW(registry.AddHistogram("h", "x", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(registry.AddHistogram("h2", "x", {1, 1}), std::invalid_argument);
  registry.AddCounter("dup", "x");
  EXPECT_THROW(registry.AddGauge("dup", "x"), std::invalid_argument);
  EXPECT_THROW(registry.AddCounter("wrong_arity", "x", {"a"}).WithLabels({}),
               std::invalid_argument);
}

TEST(MetricsTest, CountersNeverDecrease) {
  Counter c;
  c.Increment(2);
  c.Increment(-1);
  EXPECT_EQ(c.Value(), 2);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  auto& counter = registry.AddCounter("c_total", "C.").WithLabels({});
  auto& hist = registry.AddHistogram("h", "H.", {1}).WithLabels({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Increment();
        hist.Observe(0.5);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.Value(), 40000);
  auto snap = hist.Take();
  EXPECT_EQ(snap.count, 40000u);
  EXPECT_EQ(snap.sum, 20000);
}

TEST(MetricsTest, CollectHooksRunBeforeRendering) {
  MetricsRegistry registry;
  auto& g = registry.AddGauge("queue_depth", "Depth.").WithLabels({});
  int depth = 7;
  registry.AddCollectHook([&] { g.Set(depth); });
  EXPECT_NE(registry.Render().find("queue_depth 7\n"), std::string::npos);
}

}  // namespace
}  // namespace sg
