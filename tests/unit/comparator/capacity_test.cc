// Capacity and cost (comparator/capacity.h): the published migration's arithmetic, pods per
// region, prices, the traffic meter's minutes, and the fleet and tune files' errors.
#include "comparator/capacity.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "tests/support/test_support.h"

namespace sg::comparator {
namespace {

using nlohmann::json;

constexpr int64_t kT0 = 1'795'000'020'000'000;  // a window start, Unix microseconds
constexpr int64_t kSecond = 1'000'000;

Fleet PublishedFleet() {
  Fleet fleet;
  fleet.file = "fleet.json";
  fleet.gpu_hour_price = 1.306;
  fleet.regions = {{"region-1", 15}, {"region-2", 15}};
  fleet.vcpu_hour_price = 0.04;
  return fleet;
}

CapacityInputs Inputs(double peak_rps, double pod_rps, int64_t pod_cpus) {
  CapacityInputs in;
  in.peak_rps = peak_rps;
  in.peak_source = "given";
  in.pod.cpus = pod_cpus;
  in.pod.throughput_rps_at_slo = pod_rps;
  in.pod.source = "given";
  in.fleet = PublishedFleet();
  return in;
}

bool HasFormula(const json& plan, const std::string& text) {
  for (const auto& f : plan["formulas"]) {
    if (f.get<std::string>().find(text) != std::string::npos) return true;
  }
  return false;
}

// The published migration: 15 GPUs in each of 2 regions at 1.306 USD per GPU-hour for a year.
// It states 343,202 USD; 30 x 1.306 x 8,760 (= 365 x 24 = 12 x 730) is 343,216.80. No usual
// hours per year gives 343,202 (8,766 = 365.25 x 24: 343,451.88; 8,784, a leap year:
// 344,157.12), nor does rounding a per-GPU month (953 x 12 x 30 = 343,080) or day (31.34 x 365 x
// 30 = 343,173); it needs 8,759.62 hours, or a price of 1.30594 USD shown rounded to 1.306. The
// formula's figure is pinned here; docs/comparator.md says why it differs.
TEST(CapacityTest, PublishedMigrationGpuCost) {
  EXPECT_DOUBLE_EQ(YearlyGpuCost(30, 1.306, 365 * 24), 343216.8);
  const json plan = PlanCapacity(Inputs(100, 400, 2));
  EXPECT_NEAR(plan["cost"]["before_per_year"].get<double>(), 343216.8, 1e-6);
  EXPECT_EQ(plan["gpus"], 30);
  EXPECT_TRUE(HasFormula(
      plan,
      "before (GPUs) = 30 GPUs x 1.306 USD/GPU-hour x 8,760 hours/year = 343,216.80 USD/year"))
      << plan["formulas"].dump(1);
  EXPECT_TRUE(HasFormula(plan, "GPUs = 15 (region-1) + 15 (region-2) = 30"));
  EXPECT_EQ(FormatGrouped(YearlyGpuCost(30, 1.306, 8760), 0), "343,217");
}

TEST(CapacityTest, PodsPerRegionFromPeakScaleHeadroomAndMinimum) {
  // 1000 req/s x 2 (scale) x 1.5 = 3000 req/s, split 2:1 by GPUs: 2000 and 1000 req/s; pods of
  // 300 req/s: ceil(6.667) = 7 and ceil(3.333) = 4.
  CapacityInputs in = Inputs(1000, 300, 4);
  in.traffic_scale = 2;
  in.fleet.regions = {{"a", 20}, {"b", 10}};
  json plan = PlanCapacity(in);
  EXPECT_NEAR(plan["required_rps"].get<double>(), 3000, 1e-9);
  EXPECT_EQ(plan["regions"][0]["pods"], 7);
  EXPECT_EQ(plan["regions"][1]["pods"], 4);
  EXPECT_EQ(plan["pods"], 11);
  EXPECT_EQ(plan["cpus"], 44);
  EXPECT_TRUE(HasFormula(plan,
                         "required throughput = peak x traffic scale x headroom = 1,000 x "
                         "2 x 1.5 = 3,000 req/s"));
  EXPECT_TRUE(HasFormula(plan,
                         "a: 3,000 req/s x 20/30 GPUs = 2,000 req/s; pods = max(1, "
                         "ceil(2,000 / 300 req/s per pod)) = max(1, ceil(6.667)) = 7"));

  // A whole number of pods' worth needs exactly that many, even when the arithmetic is inexact
  // in binary (0.1 x 3 = 0.30000000000000004; / 0.3 = 1.0000000000000002).
  in = Inputs(0.1, 0.3, 1);
  in.traffic_scale = 3;
  in.headroom = 1;
  in.fleet.regions = {{"only", 1}};
  in.fleet.min_pods_per_region = 0;
  EXPECT_EQ(PlanCapacity(in)["pods"], 1);

  // The minimum per region holds when the traffic needs less.
  in = Inputs(1, 1000, 2);
  in.fleet.min_pods_per_region = 2;
  plan = PlanCapacity(in);
  EXPECT_EQ(plan["regions"][0]["pods"], 2);
  EXPECT_EQ(plan["pods"], 4);
}

TEST(CapacityTest, CpuCostFromVcpuOrPodPriceAndSaving) {
  // 4 pods of 2 vCPUs at 0.04 USD/vCPU-hour: 4 x 0.08 x 8760 = 2803.20 USD.
  CapacityInputs in = Inputs(100, 400, 2);
  in.fleet.min_pods_per_region = 2;
  json plan = PlanCapacity(in);
  EXPECT_EQ(plan["pods"], 4);
  EXPECT_NEAR(plan["cost"]["after_per_year"].get<double>(), 2803.2, 1e-9);
  EXPECT_NEAR(plan["cost"]["saving_per_year"].get<double>(), 343216.8 - 2803.2, 1e-6);
  EXPECT_NEAR(plan["cost"]["saving_fraction"].get<double>(), 1 - 2803.2 / 343216.8, 1e-12);
  EXPECT_TRUE(HasFormula(plan, "pod price = 2 vCPUs x 0.04 USD/vCPU-hour = 0.08 USD/pod-hour"));
  EXPECT_TRUE(HasFormula(plan, "saving = 343,216.80 - 2,803.20 = 340,413.60 USD/year (99.18% "));

  in.fleet.vcpu_hour_price.reset();
  in.fleet.cpu_pod_hour_price = 0.5;
  in.fleet.hours_per_year = 8766;
  plan = PlanCapacity(in);
  EXPECT_NEAR(plan["cost"]["after_per_year"].get<double>(), 4 * 0.5 * 8766, 1e-9);
  EXPECT_NEAR(plan["cost"]["before_per_year"].get<double>(), 30 * 1.306 * 8766, 1e-6);
}

TEST(CapacityTest, Formatting) {
  EXPECT_EQ(FormatGrouped(343216.8, 2), "343,216.80");
  EXPECT_EQ(FormatGrouped(-1234.5, 1), "-1,234.5");
  EXPECT_EQ(FormatGrouped(999, 2), "999.00");
  EXPECT_EQ(FormatGrouped(1000, 0), "1,000");
  EXPECT_EQ(FormatGrouped(1234567, 0), "1,234,567");
  EXPECT_EQ(FormatTrimmed(8760), "8,760");
  EXPECT_EQ(FormatTrimmed(1.5), "1.5");
  EXPECT_EQ(FormatTrimmed(0.187, 2), "0.19");
}

MirrorCounters Counters(const std::string& instance, const std::string& mirror, int64_t ts_us,
                        uint64_t requests) {
  MirrorCounters c;
  c.instance = instance;
  c.route = "classify";
  c.mirror = mirror;
  c.ts_us = ts_us;
  c.requests = requests;
  return c;
}

PairRecord Pair(int64_t ts_us, const std::string& mirror = "student") {
  PairRecord p;
  p.ts_us = ts_us;
  p.route = "classify";
  p.mirror = mirror;
  return p;
}

TEST(TrafficMeterTest, CountersSpreadOverMinutesAndSummedOverInstances) {
  TrafficMeter meter;
  // Instance a: 600 requests in the first 60 s, 1200 from 60 s to 120 s, 300 in 120-150 s.
  // Its lines every 30 s; the requests between two lines are spread evenly over them.
  const uint64_t a[] = {0, 300, 600, 1200, 1800, 2100};
  for (int i = 0; i < 6; ++i) meter.Add(Counters("a", "student", kT0 + i * 30 * kSecond, a[i]));
  // A second mirror of the same route counts the same requests: not added twice.
  for (int i = 0; i < 6; ++i) meter.Add(Counters("a", "teacher", kT0 + i * 30 * kSecond, a[i]));
  // Instance b: lines at 30 s and 90 s, 120 requests between them: 60 fall in each minute.
  meter.Add(Counters("b", "student", kT0 + 30 * kSecond, 1000));
  meter.Add(Counters("b", "student", kT0 + 90 * kSecond, 1120));
  // Pairs of one mirror per route are counted per minute, next to the requests.
  meter.Add(Pair(kT0 + 10 * kSecond));
  meter.Add(Pair(kT0 + 70 * kSecond));
  meter.Add(Pair(kT0 + 71 * kSecond));
  meter.Add(Pair(kT0 + 71 * kSecond, "teacher"));
  const TrafficSummary t = meter.Summarize();
  EXPECT_EQ(t.source, "counters");
  EXPECT_EQ(t.series, 2);
  EXPECT_EQ(t.start_us, kT0);
  EXPECT_EQ(t.end_us, kT0 + 150 * kSecond);
  ASSERT_EQ(t.minutes.size(), 3u);
  EXPECT_NEAR(t.minutes[0].requests, 600 + 60, 1e-9);
  EXPECT_NEAR(t.minutes[1].requests, 1200 + 60, 1e-9);
  EXPECT_NEAR(t.minutes[2].requests, 300, 1e-9);
  EXPECT_TRUE(t.minutes[1].full);
  EXPECT_FALSE(t.minutes[2].full);
  EXPECT_EQ(t.minutes[0].pairs, 1u);
  EXPECT_EQ(t.minutes[1].pairs, 2u);
  EXPECT_NEAR(t.requests, 2100 + 120, 1e-9);
  EXPECT_EQ(t.peak_minute, 1);
  EXPECT_NEAR(t.peak_rps, 1260.0 / 60, 1e-12);
  EXPECT_NEAR(t.mean_rps, 2220.0 / 150, 1e-12);
}

TEST(TrafficMeterTest, PartialMinutesAreNotPeaksAndShortWindowsUseTheMean) {
  TrafficMeter meter;
  // 90 s: a full first minute with 60 requests, then 30 s with 300 (a partial minute).
  meter.Add(Counters("a", "m", kT0, 0));
  meter.Add(Counters("a", "m", kT0 + 60 * kSecond, 60));
  meter.Add(Counters("a", "m", kT0 + 90 * kSecond, 360));
  TrafficSummary t = meter.Summarize();
  EXPECT_EQ(t.peak_minute, 0);
  EXPECT_NEAR(t.peak_rps, 1.0, 1e-12);

  TrafficMeter short_window;
  short_window.Add(Counters("a", "m", kT0, 0));
  short_window.Add(Counters("a", "m", kT0 + 40 * kSecond, 200));
  t = short_window.Summarize();
  EXPECT_EQ(t.peak_minute, -1);
  EXPECT_NEAR(t.peak_rps, 5.0, 1e-12);
  EXPECT_FALSE(t.notes.empty());
}

TEST(TrafficMeterTest, PairsWhenNoCountersCanBePlacedAndRestarts) {
  TrafficMeter meter;
  meter.Add(Counters("a", "m", kT0, 5000));  // one line: cannot be placed in time
  for (int i = 0; i <= 120; ++i) meter.Add(Pair(kT0 + i * kSecond / 2));
  TrafficSummary t = meter.Summarize();
  EXPECT_EQ(t.source, "pairs");
  EXPECT_EQ(t.pairs, 121u);
  EXPECT_EQ(t.peak_minute, 0);  // [first, last] is 60 s: one full minute, the last pair in it
  EXPECT_NEAR(t.peak_rps, 121.0 / 60, 1e-12);
  EXPECT_EQ(t.minutes[0].requests, 121);

  TrafficMeter restarted;
  restarted.Add(Counters("a", "m", kT0, 100));
  restarted.Add(Counters("a", "m", kT0 + 60 * kSecond, 160));
  restarted.Add(Counters("a", "m", kT0 + 120 * kSecond, 30));  // went down: 30 new requests
  t = restarted.Summarize();
  EXPECT_NEAR(t.requests, 60 + 30, 1e-9);
  EXPECT_NEAR(t.peak_rps, 1.0, 1e-12);

  EXPECT_EQ(TrafficMeter().Summarize().source, "");
}

TEST(CapacityFilesTest, FleetAndTuneFilesAreReadAndTheirErrorsNamed) {
  sg::testing::TempDir dir;
  const auto example = sg::testing::SourceDir() / "configs" / "fleet-example.json";
  const Fleet fleet = LoadFleet(example.string());
  EXPECT_EQ(fleet.regions.size(), 2u);
  EXPECT_DOUBLE_EQ(fleet.gpu_hour_price, 1.306);
  EXPECT_DOUBLE_EQ(fleet.hours_per_year, 8760);

  const auto bad = dir.Write("fleet.json", R"({"gpu_hour_price": 0, "regions": [{"name": "x",
      "gpus": 0, "cpus": 3}, {"name": "x", "gpus": 1}], "vcpu_hour_price": 1,
      "cpu_pod_hour_price": 2, "colour": "red"})");
  try {
    LoadFleet(bad.string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    const std::string file = bad.string() + ": ";
    EXPECT_NE(all.find(file + "$.gpu_hour_price: must be > 0, got 0"), std::string::npos) << all;
    EXPECT_NE(all.find(file + "$.regions[0].gpus: must be >= 1, got 0"), std::string::npos);
    EXPECT_NE(all.find(file + "$.regions[0].cpus: unknown key"), std::string::npos) << all;
    EXPECT_NE(all.find(file + "$.regions[1].name: duplicate region name"), std::string::npos);
    EXPECT_NE(all.find("exactly one of"), std::string::npos);
    EXPECT_NE(all.find(file + "$.colour: unknown key"), std::string::npos);
  }

  const auto tune = dir.Write("tune.json", R"({"pod": {"cpus": 2, "workers": 2},
      "throughput_rps_at_slo": 401.5, "slo_p99_ms": 50, "table": []})");
  const PodThroughput pod = LoadTuneResult(tune.string());
  EXPECT_EQ(pod.cpus, 2);
  EXPECT_DOUBLE_EQ(pod.throughput_rps_at_slo, 401.5);
  EXPECT_EQ(pod.slo_p99_ms, 50);
  const auto bad_tune = dir.Write("bad-tune.json", R"({"pod": {"cpus": 0},
      "throughput_rps_at_slo": -1})");
  try {
    LoadTuneResult(bad_tune.string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    EXPECT_NE(all.find(bad_tune.string() + ": $.pod.cpus: must be >= 1, got 0"), std::string::npos)
        << all;
    EXPECT_NE(all.find("$.throughput_rps_at_slo: must be > 0, got -1"), std::string::npos);
    EXPECT_NE(all.find("missing required key \"slo_p99_ms\""), std::string::npos);
  }
}

TEST(CapacityTest, TextShowsTablesAndEveryFormula) {
  TrafficMeter meter;
  meter.Add(Counters("a", "m", kT0, 0));
  meter.Add(Counters("a", "m", kT0 + 120 * kSecond, 1200));
  const TrafficSummary traffic = meter.Summarize();
  const json plan = PlanCapacity(Inputs(traffic.peak_rps, 400, 2));
  const json capacity = CapacityJson(&traffic, plan);
  EXPECT_EQ(capacity["schema"], "shadowgate.capacity.v1");
  EXPECT_EQ(capacity["traffic"]["minutes"].size(), 2u);
  const std::string text = RenderCapacityText(capacity);
  for (const auto& f : plan["formulas"]) {
    EXPECT_NE(text.find(f.get<std::string>()), std::string::npos) << f;
  }
  EXPECT_NE(text.find("| GPUs (before) | 343,216.80 |"), std::string::npos) << text;
  EXPECT_NE(text.find("| total | 30 | 15 | 2 |"), std::string::npos) << text;
}

}  // namespace
}  // namespace sg::comparator
