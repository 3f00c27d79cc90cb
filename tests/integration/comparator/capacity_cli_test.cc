// sg-compare capacity end to end: the real binary on real pair logs of two gateways, written
// with the pair log's own encoder. The test knows every request's arrival time and computes the
// peak minute from those alone; sg-compare only sees the gateways' counters and pairs.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kStartUs = 1'795'000'000'000'000;  // both gateways start here
constexpr int64_t kIntervalUs = 10'000'000;          // their counters_interval
constexpr int64_t kMinuteUs = 60'000'000;

struct Arrival {
  int64_t ts_us;
  bool mirrored;
};

// One gateway's log: every arrival counted by route "classify"; mirrored ones become a pair for
// mirror "student" and one for "teacher" (two mirrors of one route); counters lines for both
// mirrors every interval from the start, and at shutdown.
std::string GatewayLog(const std::string& instance, const std::vector<Arrival>& arrivals,
                       int64_t shutdown_us) {
  std::string log;
  uint64_t requests = 0;
  size_t next = 0;
  for (int64_t tick = kStartUs + kIntervalUs;; tick += kIntervalUs) {
    tick = std::min(tick, shutdown_us);
    for (; next < arrivals.size() && arrivals[next].ts_us <= tick; ++next) {
      ++requests;
      if (!arrivals[next].mirrored) continue;
      for (const char* mirror : {"student", "teacher"}) {
        PairRecord p;
        p.id = instance + "-" + std::to_string(next);
        p.ts_us = arrivals[next].ts_us;
        p.route = "classify";
        p.mirror = mirror;
        p.request = {"POST", "/predictions/fashion", 10, std::string(64, 'a'), {}, {}, false};
        p.primary = {200, 4000, 0, "ok", {}, "{\"Bag\": 0.9}", false, ""};
        p.shadow = {200, 3000, 20, "ok", {}, "{\"Bag\": 0.9}", false, ""};
        log += EncodePairLogLine(p) + "\n";
      }
    }
    for (const char* mirror : {"student", "teacher"}) {
      MirrorCounters c;
      c.ts_us = tick;
      c.instance = instance;
      c.route = "classify";
      c.mirror = mirror;
      c.requests = requests;
      log += EncodePairLogLine(c) + "\n";
    }
    if (tick == shutdown_us) break;
  }
  return log + "{\"v\": 1, \"type\": \"pair\", \"truncated\n";
}

// Poisson arrivals at `rate` per second in [from_s, to_s) after the start; every
// `mirror_every`-th one is mirrored (the rest were sampled out).
void AddArrivals(std::vector<Arrival>& out, std::mt19937_64& rng, double rate, double from_s,
                 double to_s, int mirror_every) {
  std::exponential_distribution<double> gap(rate);
  int i = 0;
  for (double t = from_s + gap(rng); t < to_s; t += gap(rng)) {
    out.push_back(
        {kStartUs + static_cast<int64_t>(std::llround(t * 1e6)), i++ % mirror_every == 0});
  }
}

// sg-compare with `args` split at spaces (no argument here holds one), and `stdin_path` as its
// standard input when given; its exit code, -1 when it did not exit (the test fails then).
int SgCompare(const std::string& args, const fs::path& dir, std::string* out, std::string* err,
              const fs::path& stdin_path = {}) {
  std::vector<std::string> argv = {(sg::testing::BinDir() / "sg-compare").string()};
  std::istringstream words(args);
  for (std::string word; words >> word;) argv.push_back(word);
  sg::testing::RunOptions options;
  options.timeout = std::chrono::seconds(120);
  options.stdin_path = stdin_path;
  const sg::testing::ToolResult result = sg::testing::RunToCompletion(argv, dir, options);
  *out = result.out;
  *err = result.err;
  return result.exit_code;
}

class CapacityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(17);
    // Gateway a: 4 req/s for 300 s, all mirrored. Gateway b: 2 req/s, and 15 req/s from 125 s
    // to 170 s (the peak, spanning two minutes), every third request mirrored.
    std::vector<Arrival> a, b;
    AddArrivals(a, rng, 4, 0, 300, 1);
    AddArrivals(b, rng, 2, 0, 125, 3);
    AddArrivals(b, rng, 15, 125, 170, 3);
    AddArrivals(b, rng, 2, 170, 300, 3);
    shutdown_us_ = kStartUs + 300'400'000;
    log_a_ = dir_.Write("gw-a.jsonl", GatewayLog("gw-a:1", a, shutdown_us_));
    log_b_ = dir_.Write("gw-b.jsonl", GatewayLog("gw-b:2", b, shutdown_us_ - 200'000));
    for (const auto* list : {&a, &b}) {
      for (const auto& arrival : *list) arrivals_.push_back(arrival.ts_us);
    }
    fleet_ = (sg::testing::SourceDir() / "configs" / "fleet-example.json").string();
  }

  // The busiest full minute's requests / 60, from the arrival times alone. The window starts at
  // the first counters line (the requests before it cannot be placed in time) and ends at the
  // last; minutes (t, t + 60 s] are aligned to its start.
  double ExpectedPeakRps() const {
    const int64_t origin = kStartUs + kIntervalUs;
    std::map<int64_t, int> per_minute;
    for (int64_t ts : arrivals_) {
      if (ts <= origin) continue;
      const int64_t minute = (ts - origin - 1) / kMinuteUs;
      if (origin + (minute + 1) * kMinuteUs <= shutdown_us_) ++per_minute[minute];
    }
    int peak = 0;
    for (const auto& [minute, count] : per_minute) peak = std::max(peak, count);
    return peak / 60.0;
  }

  sg::testing::TempDir dir_;
  fs::path log_a_, log_b_;
  std::string fleet_;
  int64_t shutdown_us_ = 0;
  std::vector<int64_t> arrivals_;
};

TEST_F(CapacityCliTest, PeakMinuteOfTwoGatewaysFromTheirCounters) {
  const double expected = ExpectedPeakRps();
  ASSERT_GT(expected, 8.0);  // the burst minute: well above the 6 req/s elsewhere
  std::string out, err;
  const std::string args = "capacity --pairs " + log_a_.string() + " " + log_b_.string() +
                           " --fleet " + fleet_ + " --pod-rps 4.5 --pod-cpus 2 --json";
  ASSERT_EQ(SgCompare(args, dir_.path(), &out, &err), 0) << err;
  const json capacity = json::parse(out);
  const json& traffic = capacity["traffic"];
  EXPECT_EQ(traffic["source"], "counters");
  EXPECT_EQ(traffic["series"], 2);
  EXPECT_EQ(traffic["malformed"], 2);
  EXPECT_NEAR(traffic["peak_rps"].get<double>(), expected, 1e-9);
  EXPECT_NEAR(traffic["requests"].get<double>(),
              std::count_if(arrivals_.begin(), arrivals_.end(),
                            [](int64_t ts) { return ts > kStartUs + kIntervalUs; }),
              1e-6);
  // required = peak x 1 x 1.5, half per region, pods of 4.5 req/s, at least 2 per region.
  const json& plan = capacity["plan"];
  const double per_region = expected * 1.5 / 2;
  const int64_t pods = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(per_region / 4.5)));
  EXPECT_EQ(plan["pods"], 2 * pods);
  EXPECT_NEAR(plan["cost"]["before_per_year"].get<double>(), 343216.8, 1e-6);
  EXPECT_NEAR(plan["cost"]["after_per_year"].get<double>(), 2.0 * pods * 2 * 0.04 * 8760, 1e-6);

  // The human form: the tables and every formula.
  ASSERT_EQ(SgCompare("capacity --pairs " + log_a_.string() + " " + log_b_.string() + " --fleet " +
                          fleet_ + " --pod-rps 4.5 --pod-cpus 2",
                      dir_.path(), &out, &err),
            0)
      << err;
  for (const auto& f : plan["formulas"]) {
    EXPECT_NE(out.find(f.get<std::string>()), std::string::npos) << f << "\n" << out;
  }
  EXPECT_NE(out.find("| GPUs (before) | 343,216.80 |"), std::string::npos) << out;
}

TEST_F(CapacityCliTest, ReportGetsACapacitySectionWhenItsInputsAreGiven) {
  const fs::path tune = dir_.Write(
      "tune.json", R"({"pod": {"cpus": 2}, "throughput_rps_at_slo": 4.5, "slo_p99_ms": 50,
                      "winner": {"workers": 2, "threads": 1}})");
  const fs::path out_dir = dir_.path() / "report";
  std::string out, err;
  const int rc = SgCompare("report --pairs " + log_a_.string() + " " + log_b_.string() + " --out " +
                               out_dir.string() + " --mirror student --fleet " + fleet_ +
                               " --tune " + tune.string(),
                           dir_.path(), &out, &err);
  ASSERT_NE(rc, 2) << err;
  const json report = json::parse(sg::testing::ReadFile(out_dir / "report.json"));
  ASSERT_TRUE(report.contains("capacity")) << report.dump().substr(0, 500);
  EXPECT_NEAR(report["capacity"]["traffic"]["peak_rps"].get<double>(), ExpectedPeakRps(), 1e-9);
  EXPECT_EQ(report["capacity"]["plan"]["pod"]["source"], tune.string());
  const std::string md = sg::testing::ReadFile(out_dir / "report.md");
  EXPECT_NE(md.find("## Capacity and cost"), std::string::npos);
  EXPECT_NE(md.find("before (GPUs) = 30 GPUs x 1.306 USD/GPU-hour"), std::string::npos);
  EXPECT_NE(sg::testing::ReadFile(out_dir / "report.html").find("<h2>Capacity and cost</h2>"),
            std::string::npos);

  // Without --fleet there is no section.
  ASSERT_NE(
      SgCompare("report --pairs " + log_a_.string() + " --out " + (out_dir / "plain").string(),
                dir_.path(), &out, &err),
      2)
      << err;
  EXPECT_FALSE(
      json::parse(sg::testing::ReadFile(out_dir / "plain" / "report.json")).contains("capacity"));
}

TEST_F(CapacityCliTest, BadInputExitsTwoNamingTheFileAndPath) {
  std::string out, err;
  const fs::path fleet = dir_.Write("fleet.json", R"({"gpu_hour_price": 1.3, "regions":
      [{"name": "r", "gpus": 4}], "vcpu_hour_price": 0.04, "hours": 8760})");
  EXPECT_EQ(SgCompare("capacity --peak-rps 10 --pod-rps 5 --pod-cpus 2 --fleet " + fleet.string(),
                      dir_.path(), &out, &err),
            2);
  EXPECT_NE(err.find(fleet.string() + ": $.hours: unknown key"), std::string::npos) << err;

  const fs::path tune = dir_.Write(
      "tune.json", R"({"pod": {"cpus": 2}, "throughput_rps_at_slo": 0, "slo_p99_ms": 50})");
  EXPECT_EQ(SgCompare("capacity --peak-rps 10 --tune " + tune.string() + " --fleet " + fleet_,
                      dir_.path(), &out, &err),
            2);
  EXPECT_NE(err.find(tune.string() + ": $.throughput_rps_at_slo: is 0: no configuration met"),
            std::string::npos)
      << err;

  // No pod throughput; no peak; both --tune and --pod-rps; a report's capacity flag without
  // --fleet; standard input that the verdict reads.
  EXPECT_EQ(SgCompare("capacity --peak-rps 10 --fleet " + fleet_, dir_.path(), &out, &err), 2);
  EXPECT_NE(err.find("give --tune FILE, or --pod-rps"), std::string::npos) << err;
  EXPECT_EQ(
      SgCompare("capacity --pod-rps 5 --pod-cpus 2 --fleet " + fleet_, dir_.path(), &out, &err), 2);
  EXPECT_NE(err.find("give --pairs FILE... or --peak-rps"), std::string::npos) << err;
  EXPECT_EQ(SgCompare("capacity --peak-rps 1 --pod-rps 5 --pod-cpus 2 --tune " + tune.string() +
                          " --fleet " + fleet_,
                      dir_.path(), &out, &err),
            2);
  EXPECT_EQ(SgCompare("report --pairs " + log_a_.string() + " --out " + dir_.path().string() +
                          "/r --pod-rps 5 --pod-cpus 2",
                      dir_.path(), &out, &err),
            2);
  EXPECT_NE(err.find("need --fleet"), std::string::npos) << err;
  EXPECT_EQ(SgCompare("report --pairs - --out " + dir_.path().string() +
                          "/r --pod-rps 5 --pod-cpus 2 --fleet " + fleet_,
                      dir_.path(), &out, &err, log_a_),
            2);
  EXPECT_NE(err.find("standard input is read for the verdict"), std::string::npos) << err;
  // A log with nothing to measure.
  const fs::path empty = dir_.Write("empty.jsonl", "not json\n");
  EXPECT_EQ(SgCompare("capacity --pairs " + empty.string() + " --pod-rps 5 --pod-cpus 2 --fleet " +
                          fleet_,
                      dir_.path(), &out, &err),
            2);
  EXPECT_NE(err.find(empty.string() + ": no counters series"), std::string::npos) << err;
}

}  // namespace
}  // namespace sg
