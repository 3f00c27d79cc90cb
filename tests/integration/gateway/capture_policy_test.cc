// The capture policy (issue 22 item 2) with the real shadowgate binary: request bodies kept for
// a sampled share of pairs, per mirror, while every pair keeps the body's size and sha256 and
// both responses; the counters line and /metrics say what was not captured and why.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Mode = TestUpstream::Mode;

TEST(CapturePolicyTest, BodiesOfASampledShareHashesAndSizesOfAll) {
  TempDir dir;
  TestUpstream primary({Mode::kEcho});
  TestUpstream shadow({Mode::kEcho});
  // Mirror "cpu" keeps a quarter of the bodies (capture.body_sample), mirror "all" every body
  // (its own capture_body_sample); bodies are captured up to 1024 bytes.
  json config = MakeConfig(primary.port(), shadow.port());
  config["capture"]["body_sample"] = 0.25;
  config["routes"][0]["mirrors"].push_back(
      {{"name", "all"}, {"upstream", "shadow"}, {"timeout", "300ms"}, {"capture_body_sample", 1}});
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());

  constexpr int kRequests = 200;
  std::map<std::string, std::string> sent;  // id -> body
  for (int i = 0; i < kRequests; ++i) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = "/p";
    spec.headers = {{"x-request-id", "req-" + std::to_string(i)}};
    // The last one is over the capture limit: cut where its body is kept.
    spec.body = i + 1 == kRequests ? std::string(3000, 'z') : "body number " + std::to_string(i);
    sent[spec.headers[0].second] = spec.body;
    auto response = Http(gateway.port(), spec);
    ASSERT_TRUE(response);
    ASSERT_EQ(response->status, 200);
  }
  // At least: a copy retried on a stale pooled connection arrives twice.
  ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() >= 2 * kRequests; }, 30s));
  // Every copy was sent, so every record was captured: /metrics has the final counts.
  auto metrics = HttpGet(gateway.admin_port(), "/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  auto not_captured = [&](const std::string& mirror, const std::string& reason) {
    return gateway.Metric("sg_gateway_not_captured_total{route=\"r\",mirror=\"" + mirror +
                          "\",reason=\"" + reason + "\"}");
  };
  const double cpu_sampled_out = not_captured("cpu", "body_sampled_out");
  const double all_truncated = not_captured("all", "body_truncated");
  const double all_sampled_out = not_captured("all", "body_sampled_out");

  std::map<std::string, int> pairs, bodies;
  std::map<std::string, MirrorCounters> last;
  for (const auto& entry : gateway.StopAndReadPairs()) {
    if (const auto* counters = std::get_if<MirrorCounters>(&entry)) {
      last[counters->mirror] = *counters;
      continue;
    }
    const auto* pair = std::get_if<PairRecord>(&entry);
    if (pair == nullptr) continue;
    const std::string& body = sent.at(pair->id);
    ++pairs[pair->mirror];
    // Every pair: the body's size and digest, and both responses (the echo of the body).
    EXPECT_EQ(pair->request.size, body.size());
    EXPECT_EQ(pair->request.sha256, Sha256Hex(body));
    EXPECT_EQ(pair->primary.body.rfind("POST /p\n", 0), 0u) << pair->primary.body;
    EXPECT_EQ(pair->shadow.body.rfind("POST /p\n", 0), 0u) << pair->shadow.body;
    EXPECT_EQ(pair->primary.status, 200);
    EXPECT_EQ(pair->shadow.status, 200);
    if (pair->request.body) {
      ++bodies[pair->mirror];
      EXPECT_EQ(*pair->request.body, body.substr(0, 1024));
      EXPECT_EQ(pair->request.body_truncated, body.size() > 1024);
    } else {
      EXPECT_FALSE(pair->request.body_truncated);
    }
  }
  EXPECT_EQ(pairs["cpu"], kRequests);
  EXPECT_EQ(pairs["all"], kRequests);
  EXPECT_EQ(bodies["all"], kRequests);
  // A quarter by the request id's hash: 50 expected, 6 the standard deviation.
  EXPECT_GE(bodies["cpu"], 20);
  EXPECT_LE(bodies["cpu"], 80);

  // The last counters line of each mirror says what was left out, and why.
  ASSERT_EQ(last.count("cpu"), 1u);
  ASSERT_EQ(last.count("all"), 1u);
  EXPECT_EQ(last["cpu"].not_captured["body_sampled_out"],
            static_cast<uint64_t>(kRequests - bodies["cpu"]));
  EXPECT_EQ(last["all"].not_captured["body_sampled_out"], 0u);
  EXPECT_EQ(last["all"].not_captured["body_truncated"], 1u);
  // The same counts as Prometheus counters, which promtool accepts.
  EXPECT_EQ(cpu_sampled_out, kRequests - bodies["cpu"]);
  EXPECT_EQ(all_sampled_out, 0);
  EXPECT_EQ(all_truncated, 1);
  EXPECT_NE(metrics->body.find("# TYPE sg_gateway_not_captured_total counter"), std::string::npos);
  EXPECT_EQ(PromtoolProblems(metrics->body, dir.path()), "") << metrics->body;
}

}  // namespace
}  // namespace sg::testing
