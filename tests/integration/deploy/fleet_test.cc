// A fleet of gateways judged as one (issue 19): several real shadowgate processes, each with its
// own pair log and counters, in front of the same primary and shadow (nginx answering a class
// distribution per path, the shadow disagreeing on a known part), take one mirrored run between
// them; `sg-compare` on all their logs must give what one gateway taking the same traffic gives.
//
// Two comparisons:
// - live: the same requests through one gateway. Everything that does not depend on timing (the
//   verdict, the counts, agreement, accuracy, the coverage counters) must be equal; latencies
//   come from two different runs, so only their counts are.
// - exact: the fleet's pair lines in one file with one counters line per (route, mirror) that
//   sums the instances' last lines, as docs/pair-log.md says a reader does. That is the log one
//   gateway would have written for the same pairs; its report must equal the fleet's in every
//   field (latencies included) but the number of instances and counters records.
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using sg::testing::ChildProcess;
using sg::testing::GatewayProcess;
using sg::testing::TempDir;
namespace fs = std::filesystem;

constexpr int kPaths = 20;          // /c/0 .. /c/19, each its own answer
constexpr int kRequests = 300;      // above the default gates' 200 pairs
constexpr int kLargeEvery = 10;     // every 10th request (i % 10 == 3) has a body over the
                                    // mirror's limit: paths 3 and 13 are never mirrored
constexpr int kMirrorMaxBody = 64;  // mirror max_body_bytes
constexpr int kFleet = 3;

std::string Label(int k) {
  return "c" + std::to_string(k);
}

// The answer of path k: top class c<k>; the shadow flips the top two classes when k % 5 == 0
// (4 of the 18 mirrored paths: 77.8% top-1 agreement, a certain FAIL whatever the latencies).
std::string Answer(int k, bool shadow) {
  const bool flip = shadow && k % 5 == 0;
  json answer = {{Label(k), flip ? 0.3 : 0.8}, {Label((k + 1) % kPaths), flip ? 0.7 : 0.2}};
  return answer.dump();
}

std::string NginxServer(bool shadow) {
  std::string body = "default_type application/json;\n";
  for (int k = 0; k < kPaths; ++k) {
    body +=
        "    location = /c/" + std::to_string(k) + " { return 200 '" + Answer(k, shadow) + "'; }\n";
  }
  return body;
}

// Request i: path i % kPaths, its true label as the label header (the primary is right on all
// of them, the shadow on 80%); every kLargeEvery-th carries a body the mirror may not take.
sg::testing::HttpRequestSpec Request(int i) {
  sg::testing::HttpRequestSpec spec;
  const int k = i % kPaths;
  spec.target = "/c/" + std::to_string(k);
  spec.headers = {{"X-Request-Id", "req-" + std::to_string(i)}, {"X-True-Label", Label(k)}};
  if (i % kLargeEvery == 3) {
    spec.method = "POST";
    spec.body = std::string(kMirrorMaxBody * 4, 'x');
    spec.headers.push_back({"Content-Type", "application/octet-stream"});
  }
  return spec;
}

json GatewayConfig(int primary_port, int shadow_port) {
  json config = sg::testing::MakeConfig(primary_port, shadow_port,
                                        {{"max_body_bytes", kMirrorMaxBody}, {"timeout", "2s"}});
  config["upstreams"]["shadow"]["total_timeout"] = "2s";
  config["capture"]["request_headers"] = {"content-type", "x-true-label"};
  return config;
}

// sg-compare report on `logs` (default rules and gates) -> report.json.
json Compare(const std::vector<fs::path>& logs, const fs::path& out) {
  std::vector<std::string> argv = {(sg::testing::BinDir() / "sg-compare").string(), "report",
                                   "--pairs"};
  for (const auto& log : logs) argv.push_back(log.string());
  argv.insert(argv.end(), {"--out", out.string()});
  fs::create_directories(out);
  sg::testing::RunOptions options;
  options.timeout = 120s;
  options.merge_output = true;
  const sg::testing::ToolResult run = sg::testing::RunToCompletion(argv, out, options);
  // 0 PASS, 1 FAIL, 3 MARGINAL, 4 INSUFFICIENT_DATA; 2 is bad input.
  EXPECT_NE(run.exit_code, 2) << run.out;
  EXPECT_NE(run.exit_code, -1) << run.out;
  std::ifstream in(out / "report.json");
  json report = json::parse(in, nullptr, false);
  EXPECT_FALSE(report.is_discarded()) << run.out;
  report["exit_code"] = run.exit_code;
  return report;
}

std::vector<PairLogEntry> ReadLog(const fs::path& path) {
  std::vector<PairLogEntry> entries;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    EXPECT_TRUE(entry) << path << ": " << why;
    if (entry) entries.push_back(std::move(*entry));
  }
  return entries;
}

class Upstreams {
 public:
  explicit Upstreams(const TempDir& dir)
      : primary_port_(sg::testing::FreePort()), shadow_port_(sg::testing::FreePort()) {
    auto conf = sg::testing::WriteNginxConfig(
        dir, {{primary_port_, NginxServer(false)}, {shadow_port_, NginxServer(true)}});
    nginx_.emplace("/usr/sbin/nginx", std::vector<std::string>{"-p", dir.path().string(), "-c",
                                                               conf.string(), "-e", "stderr"});
    std::string why;
    ready_ = nginx_->WaitReady(primary_port_, "", 10s, &why) &&
             nginx_->WaitReady(shadow_port_, "", 10s, &why);
    EXPECT_TRUE(ready_) << why;
  }
  int primary_port() const { return primary_port_; }
  int shadow_port() const { return shadow_port_; }
  bool ready() const { return ready_; }

 private:
  int primary_port_, shadow_port_;
  bool ready_ = false;
  std::optional<ChildProcess> nginx_;
};

// Sends requests [0, kRequests) round-robin over `gateways`; each must answer the primary's body.
void SendRun(std::vector<std::unique_ptr<GatewayProcess>>& gateways) {
  for (int i = 0; i < kRequests; ++i) {
    auto& gateway = *gateways[i % gateways.size()];
    std::string error;
    auto response = sg::testing::Http(gateway.port(), Request(i), &error);
    ASSERT_TRUE(response) << "request " << i << ": " << error;
    ASSERT_EQ(response->status, 200) << response->body;
    ASSERT_EQ(response->body, Answer(i % kPaths, false));
  }
}

// Starts `count` gateways in `dir`, sends the run through them, stops them (SIGTERM: the final
// counters lines are written and the logs flushed) and returns their pair-log paths.
std::vector<fs::path> RunGateways(int count, const Upstreams& upstreams, const TempDir& dir) {
  std::vector<std::unique_ptr<GatewayProcess>> gateways;
  std::vector<fs::path> logs;
  for (int g = 0; g < count; ++g) {
    gateways.push_back(std::make_unique<GatewayProcess>(
        GatewayConfig(upstreams.primary_port(), upstreams.shadow_port()), dir));
    if (!gateways.back()->ready()) return {};
    logs.push_back(dir.path() / ("pairs-" + std::to_string(gateways.back()->port()) + ".jsonl"));
  }
  SendRun(gateways);
  // Mirrors are fire and forget: wait until every gateway's copies have come back.
  for (int g = 0; g < count; ++g) {
    const int mirrored = kRequests / count - (kRequests / count) / kLargeEvery;
    EXPECT_TRUE(sg::testing::WaitUntil([&] { return gateways[g]->Outcome("ok") >= mirrored; }, 20s))
        << "gateway " << g << ": " << gateways[g]->Outcome("ok") << " of " << mirrored;
  }
  for (auto& gateway : gateways) gateway->StopAndReadPairs();
  return logs;
}

// `value` with every number rounded to 9 significant digits: means summed in another order
// differ in the last bits.
json Rounded(const json& value) {
  if (value.is_number_float()) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", value.get<double>());
    return std::stod(text);
  }
  if (!value.is_structured()) return value;
  json out = value;
  for (auto it = out.begin(); it != out.end(); ++it) *it = Rounded(*it);
  return out;
}

// The parts of a comparison that do not depend on timing.
json TimingFree(const json& report) {
  const json& c = report["comparison"];
  json out = {{"verdict", report["verdict"]["verdict"]}, {"exit_code", report["exit_code"]}};
  for (const char* key : {"pairs", "outcomes", "malformed"}) {
    if (c.contains(key)) out[key] = c[key];
  }
  for (const char* key : {"requests", "mirrored", "mirrored_total", "not_mirrored",
                          "not_mirrored_total", "mirrored_fraction", "sink_dropped"}) {
    out["counters"][key] = c["counters"][key];
  }
  out["coverage"] = c["coverage"];
  out["classification"] = Rounded(c["classification"]);
  out["accuracy"] = Rounded(c["accuracy"]);
  out["latency_counts"] = {c["latency"]["primary"]["count"], c["latency"]["shadow"]["count"]};
  // Gates judged on agreement, errors and coverage; not the latency gates.
  for (const auto& gate : report["verdict"]["gates"]) {
    const std::string metric = gate.value("metric", "");
    if (metric.find("latency") != std::string::npos || metric.find("p99") != std::string::npos ||
        metric.find("tail") != std::string::npos || metric.find("p50") != std::string::npos) {
      continue;
    }
    out["gates"][metric] = gate.value("status", "");
  }
  return out;
}

TEST(FleetTest, SeveralGatewaysJudgedAsOneEqualOneGatewayTakingTheSameTraffic) {
  TempDir dir;
  Upstreams upstreams(dir);
  ASSERT_TRUE(upstreams.ready());

  // The fleet: three gateways, each with its own pair log and counters.
  TempDir fleet_dir;
  auto fleet_logs = RunGateways(kFleet, upstreams, fleet_dir);
  ASSERT_EQ(fleet_logs.size(), static_cast<size_t>(kFleet));

  // Per instance: counters of its own (one instance name each) counting only its own requests.
  std::set<std::string> instances;
  std::map<std::string, MirrorCounters> summed;  // by (route "/" mirror), summed over instances
  std::vector<PairRecord> fleet_pairs;
  for (int g = 0; g < kFleet; ++g) {
    const int requests = kRequests / kFleet, large = requests / kLargeEvery;
    std::optional<MirrorCounters> last;
    int pairs = 0;
    for (auto& entry : ReadLog(fleet_logs[g])) {
      if (auto* pair = std::get_if<PairRecord>(&entry)) {
        ++pairs;
        fleet_pairs.push_back(*pair);
      } else {
        last = std::get<MirrorCounters>(entry);
      }
    }
    ASSERT_TRUE(last) << "gateway " << g << " wrote no counters line";
    instances.insert(last->instance);
    EXPECT_EQ(pairs, requests - large) << "gateway " << g;
    EXPECT_EQ(last->requests, static_cast<uint64_t>(requests)) << "gateway " << g;
    EXPECT_EQ(last->not_mirrored["body_too_large"], static_cast<uint64_t>(large));
    EXPECT_EQ(last->mirrored["ok"], static_cast<uint64_t>(requests - large));
    MirrorCounters& sum = summed[last->route + "/" + last->mirror];
    sum.route = last->route;
    sum.mirror = last->mirror;
    sum.ts_us = std::max(sum.ts_us, last->ts_us);
    sum.requests += last->requests;
    for (const auto& [k, v] : last->not_mirrored) sum.not_mirrored[k] += v;
    for (const auto& [k, v] : last->mirrored) sum.mirrored[k] += v;
    for (const auto& [k, v] : last->not_captured) sum.not_captured[k] += v;
    sum.sink_dropped += last->sink_dropped;
  }
  EXPECT_EQ(instances.size(), static_cast<size_t>(kFleet)) << "instances must be told apart";

  const json fleet = Compare(fleet_logs, fleet_dir.path() / "report-fleet");
  const json& counters = fleet["comparison"]["counters"];
  EXPECT_EQ(counters["instances"], kFleet);
  EXPECT_EQ(counters["records"], kFleet);
  EXPECT_EQ(counters["requests"], kRequests);
  EXPECT_EQ(counters["not_mirrored"]["body_too_large"], kRequests / kLargeEvery);
  EXPECT_EQ(counters["mirrored"]["ok"], kRequests - kRequests / kLargeEvery);

  // Exact: the same pairs in one log with one summed counters line, as one gateway writes it.
  {
    std::ofstream merged(fleet_dir.path() / "merged.jsonl");
    for (const auto& pair : fleet_pairs) merged << EncodePairLogLine(pair) << "\n";
    for (auto& [key, sum] : summed) {
      sum.instance = "one-gateway";
      merged << EncodePairLogLine(sum) << "\n";
    }
  }
  const json one_log =
      Compare({fleet_dir.path() / "merged.jsonl"}, fleet_dir.path() / "report-merged");
  json a = fleet["comparison"], b = one_log["comparison"];
  EXPECT_EQ(b["counters"]["instances"], 1);
  for (json* c : {&a, &b}) {
    (*c)["counters"].erase("instances");
    (*c)["counters"].erase("records");
  }
  EXPECT_EQ(a, b) << "fleet:\n" << a.dump(1) << "\none log:\n" << b.dump(1);
  EXPECT_EQ(fleet["verdict"], one_log["verdict"]);
  EXPECT_EQ(fleet["exit_code"], one_log["exit_code"]);

  // Live: one gateway taking the same traffic.
  TempDir single_dir;
  auto single_logs = RunGateways(1, upstreams, single_dir);
  ASSERT_EQ(single_logs.size(), 1u);
  const json single = Compare(single_logs, single_dir.path() / "report-single");
  EXPECT_EQ(single["comparison"]["counters"]["instances"], 1);
  EXPECT_EQ(TimingFree(fleet), TimingFree(single)) << "fleet:\n"
                                                   << TimingFree(fleet).dump(1) << "\nsingle:\n"
                                                   << TimingFree(single).dump(1);
  // The run is meant to fail on agreement (14 of 18 mirrored paths agree): a verdict that judged
  // nothing would also match.
  EXPECT_EQ(fleet["verdict"]["verdict"], "FAIL");
  EXPECT_DOUBLE_EQ(fleet["comparison"]["classification"]["top1_agreement"].get<double>(),
                   14.0 / 18.0)
      << fleet["comparison"]["classification"].dump(1);
  EXPECT_DOUBLE_EQ(fleet["comparison"]["accuracy"]["shadow"].get<double>(), 14.0 / 18.0);
}

// A gateway's counters are keyed by its instance name. In a container the gateway is PID 1 and
// the host name is the pod's, so with "host:pid" a gateway restarted in the same pod was the same
// instance as its previous run, appending to the same pair log: sg-compare kept the last counters
// line per instance and counted only the last run's requests (14 requests, 14 pairs in the log:
// counted 4). The name now carries the start time. Reproduced with two runs as PID 1 of their own
// PID namespace (unshare, root).
TEST(FleetTest, RestartedGatewayInAPidNamespaceIsANewInstance) {
  if (geteuid() != 0) GTEST_SKIP() << "not root: unshare --pid needs CAP_SYS_ADMIN";
  TempDir dir;
  Upstreams upstreams(dir);
  ASSERT_TRUE(upstreams.ready());
  const fs::path log = dir.path() / "pairs.jsonl";
  // Lines of `kind` ("pair", "counters") in the log so far.
  auto lines = [&](const std::string& kind) {
    const std::string text = sg::testing::ReadFile(log), key = "\"type\":\"" + kind + "\"";
    int n = 0;
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) ++n;
    return n;
  };
  int pairs = 0, requests = 0;
  for (int run_requests : {10, 4}) {
    json config = GatewayConfig(upstreams.primary_port(), upstreams.shadow_port());
    const int port = sg::testing::FreePort(), admin = sg::testing::FreePort();
    config["listen"] = sg::testing::Addr(port);
    config["admin_listen"] = sg::testing::Addr(admin);
    config["capture"]["pair_log"] = {{"path", log.string()}, {"counters_interval", "60s"}};
    auto path = dir.Write("gateway.json", config.dump());
    const int counters_before = lines("counters");
    {
      // PID 1 of a new PID namespace, as in a container; SIGTERM reaches it when unshare dies.
      ChildProcess gateway("/usr/bin/unshare", {"--pid", "--kill-child=SIGTERM",
                                                (sg::testing::BinDir() / "shadowgate").string(),
                                                "--config", path.string()});
      std::string why;
      ASSERT_TRUE(gateway.WaitReady(admin, "/healthz", 10s, &why)) << why;
      for (int i = 1; i <= run_requests; ++i) {
        auto r = sg::testing::Http(port, Request(i));
        ASSERT_TRUE(r && r->status == 200);
        pairs += i % kLargeEvery == 3 ? 0 : 1;
      }
      requests += run_requests;
      ASSERT_TRUE(sg::testing::WaitUntil([&] { return lines("pair") == pairs; }, 10s));
    }
    // The final counters line is written when unshare's SIGTERM reaches the gateway.
    ASSERT_TRUE(sg::testing::WaitUntil([&] { return lines("counters") > counters_before; }, 10s));
  }
  std::set<std::string> instances;
  for (auto& entry : ReadLog(log)) {
    if (auto* c = std::get_if<MirrorCounters>(&entry)) instances.insert(c->instance);
  }
  EXPECT_EQ(instances.size(), 2u) << "both runs were named " << *instances.begin();
  const json report = Compare({log}, dir.path() / "report");
  EXPECT_EQ(report["comparison"]["pairs"], pairs);
  EXPECT_EQ(report["comparison"]["counters"]["requests"], requests);
}

}  // namespace
}  // namespace sg
