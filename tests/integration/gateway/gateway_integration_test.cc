// The real shadowgate binary on 127.0.0.1 between a client and real upstreams: nginx, and
// TestUpstream (which can be slow, fail, reset, hang or refuse).
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <tuple>

#include "common/pair_record.h"
#include "common/strings.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/run_tool.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Mode = TestUpstream::Mode;

std::string RawGet(int port, const std::string& target, const std::string& id,
                   const std::string& extra = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return RawExchange(port,
                     "GET " + target + " HTTP/1.1\r\nHost: test\r\nX-Request-Id: " + id + "\r\n" +
                         extra + "Connection: close\r\n\r\n",
                     timeout);
}

int StatusOf(const std::string& raw) {
  if (raw.size() < 12 || !raw.starts_with("HTTP/1.1 ")) return 0;
  return std::stoi(raw.substr(9, 3));
}

std::vector<PairRecord> PairsOf(const std::vector<PairLogEntry>& entries) {
  std::vector<PairRecord> pairs;
  for (const auto& entry : entries) {
    if (auto* pair = std::get_if<PairRecord>(&entry)) pairs.push_back(*pair);
  }
  return pairs;
}

// ---------------------------------------------------------------------------------------------
// Shadow faults: the client's bytes never change, every fault is counted with its outcome.

struct FaultCase {
  std::string name;
  Mode mode;  // ignored when refused
  bool refused;
  std::string outcome;
};
void PrintTo(const FaultCase& fault, std::ostream* out) {
  *out << fault.name;
}

// Each fault with the mirrors' exchanges on the I/O threads (shadow_threads 0) and on a shadow
// thread of their own (1, at nice 5).
class ShadowFaultTest : public ::testing::TestWithParam<std::tuple<FaultCase, int>> {};

// The nice value of each of `pid`'s threads named `name` (/proc/PID/task/*/stat, field 19).
std::vector<int> NiceOfThreads(pid_t pid, const std::string& name) {
  std::vector<int> nice;
  auto tasks = std::filesystem::path("/proc") / std::to_string(pid) / "task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string thread_name;
    std::getline(comm, thread_name);
    if (thread_name != name) continue;
    std::ifstream stat_file(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
      if (i == 19) nice.push_back(std::stoi(field));
    }
  }
  return nice;
}

TEST_P(ShadowFaultTest, ClientResponsesAreByteIdenticalAndFaultIsCounted) {
  const auto& [fault, shadow_threads] = GetParam();
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "the primary's answer\n"});
  const int kRequests = 8;

  // Baseline: no mirror.
  std::vector<std::string> baseline;
  {
    GatewayProcess gateway(MakeConfig(primary.port()), dir);
    ASSERT_TRUE(gateway.ready());
    for (int i = 0; i < kRequests; ++i) {
      baseline.push_back(
          RawGet(gateway.port(), "/p/" + std::to_string(i), "id-" + std::to_string(i)));
      ASSERT_EQ(StatusOf(baseline.back()), 200) << baseline.back();
    }
  }

  // The same requests, mirrored to a faulty shadow.
  std::optional<TestUpstream> shadow;
  int shadow_port = FreePort();  // nothing listens there: refused
  if (!fault.refused) {
    TestUpstream::Options options{fault.mode, "shadow\n", 3000ms};
    shadow.emplace(options);
    shadow_port = shadow->port();
  }
  auto config = MakeConfig(primary.port(), shadow_port, {{"timeout", "2s"}});
  config["shadow_threads"] = shadow_threads;
  config["shadow_nice"] = 5;
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  // A shadow thread names itself and lowers its priority once it runs, which may be after the
  // gateway answers /healthz: wait for it.
  const std::vector<int> niced(static_cast<size_t>(shadow_threads), 5);
  WaitUntil([&] { return NiceOfThreads(gateway.process().pid(), "sg-shadow") == niced; }, 5s);
  EXPECT_EQ(NiceOfThreads(gateway.process().pid(), "sg-shadow"), niced);
  for (int i = 0; i < kRequests; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto raw = RawGet(gateway.port(), "/p/" + std::to_string(i), "id-" + std::to_string(i));
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(raw, baseline[static_cast<size_t>(i)]) << fault.name;
    // The client never waits for the shadow (its timeout is 2 s, its delay 3 s): a client that
    // waited would take 2 s at least; the bound leaves a loaded machine 1.5 s for the request.
    EXPECT_LT(elapsed, 1500ms) << fault.name;
    if (fault.refused) {
      // Each refusal is known before the next request: on a shadow thread it is learned
      // concurrently, and a copy dispatched before the fifth was known would still try.
      EXPECT_TRUE(WaitUntil([&] { return gateway.Outcome(fault.outcome) == i + 1; }, 2s));
    }
  }
  EXPECT_TRUE(WaitUntil([&] { return gateway.Outcome(fault.outcome) == kRequests; }, 20s))
      << fault.name << ": " << gateway.Outcome(fault.outcome);
  for (std::string other : {"ok", "shadow_error", "shadow_timeout", "connect_failed"}) {
    if (other != fault.outcome) {
      EXPECT_EQ(gateway.Outcome(other), 0) << other;
    }
  }
  if (fault.refused) {
    // After eject_after_failures (5) refused connects the mirror fails fast: no more attempts.
    EXPECT_EQ(gateway.Metric(
                  "sg_gateway_pool_opened_connections_total{upstream=\"shadow\",pool=\"mirror:r/"
                  "cpu\"}"),
              5);
  }
  auto entries = gateway.StopAndReadPairs();
  int pairs = 0;
  bool counters_seen = false;
  for (const auto& entry : entries) {
    if (auto* pair = std::get_if<PairRecord>(&entry)) {
      ++pairs;
      EXPECT_EQ(pair->shadow.outcome, fault.outcome) << pair->shadow.error;
      EXPECT_EQ(pair->primary.status, 200);
      EXPECT_EQ(pair->primary.body, "the primary's answer\n");
      EXPECT_TRUE(pair->id.starts_with("id-"));
    } else {
      const auto& counters = std::get<MirrorCounters>(entry);
      counters_seen = true;
      EXPECT_EQ(counters.requests, static_cast<uint64_t>(kRequests));
      EXPECT_EQ(counters.mirrored.at(fault.outcome), static_cast<uint64_t>(kRequests));
    }
  }
  // A shadow that is down (ejected after 5 refused connects) gets no copies and no pair records
  // until it is back; those requests are still counted connect_failed above.
  EXPECT_EQ(pairs, fault.refused ? 5 : kRequests);
  EXPECT_TRUE(counters_seen);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ShadowFaultTest,
    ::testing::Combine(::testing::Values(FaultCase{"healthy", Mode::kFixed, false, "ok"},
                                         FaultCase{"slow", Mode::kSlow, false, "shadow_timeout"},
                                         FaultCase{"hang", Mode::kHang, false, "shadow_timeout"},
                                         FaultCase{"error500", Mode::kError, false, "shadow_error"},
                                         FaultCase{"reset", Mode::kReset, false, "shadow_error"},
                                         FaultCase{"closed", Mode::kClose, false, "shadow_error"},
                                         FaultCase{"refused", Mode::kFixed, true,
                                                   "connect_failed"}),
                       ::testing::Values(0, 1)),
    [](const auto& info) {
      return std::get<0>(info.param).name + (std::get<1>(info.param) ? "_ShadowThread" : "");
    });

// ---------------------------------------------------------------------------------------------

TEST(GatewayTest, NginxPrimaryAndShadowWithPairsAndConnectionReuse) {
  TempDir dir;
  int primary_port = FreePort();
  int shadow_port = FreePort();
  auto conf = WriteNginxConfig(
      dir, {{primary_port,
             R"(location / { default_type application/json; return 200 '{"label": "gpu"}'; })"},
            {shadow_port,
             R"(location / { default_type application/json; return 200 '{"label": "cpu"}'; })"}});
  auto tmp = dir.path().string();
  ChildProcess nginx("/usr/sbin/nginx", {"-p", tmp, "-c", conf.string(), "-e", "stderr"});
  std::string why;
  ASSERT_TRUE(nginx.WaitReady(primary_port, "", 10s, &why)) << why;
  ASSERT_TRUE(WaitForPort(shadow_port, 5s));

  GatewayProcess gateway(MakeConfig(primary_port, shadow_port), dir);
  ASSERT_TRUE(gateway.ready());
  const int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    HttpRequestSpec spec;
    spec.method = "POST";
    spec.target = "/predictions/fashion";
    spec.headers = {{"Content-Type", "image/png"}};
    spec.body = std::string(100, static_cast<char>('a' + i % 26));
    auto response = Http(gateway.port(), spec);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "{\"label\": \"gpu\"}");
    EXPECT_EQ(response->Header("x-request-id").size(), 32u);
  }
  ASSERT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == kRequests; }, 5s));
  // Upstream connections are reused for the primary and for the shadow.
  double reused_primary = gateway.Metric(
      "sg_gateway_pool_reused_exchanges_total{upstream=\"primary\",pool=\"primary\"}");
  double reused_shadow = gateway.Metric(
      "sg_gateway_pool_reused_exchanges_total{upstream=\"shadow\",pool=\"mirror:r/cpu\"}");
  EXPECT_GE(reused_primary, kRequests - 2);
  EXPECT_GE(reused_shadow, kRequests - 2);
  auto entries = gateway.StopAndReadPairs();
  int pairs = 0;
  for (const auto& entry : entries) {
    auto* pair = std::get_if<PairRecord>(&entry);
    if (!pair) continue;
    ++pairs;
    EXPECT_EQ(pair->route, "r");
    EXPECT_EQ(pair->mirror, "cpu");
    EXPECT_EQ(pair->request.method, "POST");
    EXPECT_EQ(pair->request.size, 100u);
    EXPECT_EQ(pair->request.sha256, Sha256Hex(*pair->request.body));
    EXPECT_EQ(pair->request.headers.at("content-type"), "image/png");
    EXPECT_EQ(pair->primary.body, "{\"label\": \"gpu\"}");
    EXPECT_EQ(pair->primary.outcome, "ok");
    EXPECT_EQ(pair->primary.status, 200);
    EXPECT_EQ(pair->primary.headers.at("content-type"), "application/json");
    EXPECT_GT(pair->primary.latency_us, 0);
    EXPECT_EQ(pair->shadow.body, "{\"label\": \"cpu\"}");
    EXPECT_EQ(pair->shadow.headers.at("content-type"), "application/json");
    EXPECT_GE(pair->shadow.send_offset_us, 0);
    // Sent with the primary's request, not after its answer; generous for a loaded machine.
    EXPECT_LT(pair->shadow.send_offset_us, 1000000);
  }
  EXPECT_EQ(pairs, kRequests);
}

// /metrics after traffic of every kind passes `promtool check metrics` (counters end in _total,
// no reserved or malformed names), with every family the gateway registers in it.
TEST(GatewayTest, MetricsPassPromtool) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  GatewayProcess gateway(MakeConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  for (int i = 0; i < 5; ++i) {
    auto response = HttpGet(gateway.port(), "/predictions/m");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(StatusOf(RawExchange(gateway.port(), "NOT HTTP AT ALL\r\n\r\n")), 400);
  ASSERT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == 5; }, 10s));
  auto metrics = HttpGet(gateway.admin_port(), "/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  for (const char* sample :
       {"sg_gateway_requests_total{", "sg_gateway_client_errors_total{reason=\"bad_request\"}",
        "sg_gateway_primary_latency_seconds_bucket{", "sg_gateway_shadow_latency_seconds_sum{",
        "sg_gateway_pool_connections{", "sg_gateway_client_connections "}) {
    EXPECT_NE(metrics->body.find(sample), std::string::npos) << sample;
  }
  EXPECT_EQ(PromtoolProblems(metrics->body, dir.path()), "") << metrics->body;
}

TEST(GatewayTest, ProxySemanticsAndShadowRedaction) {
  TempDir dir;
  TestUpstream primary({Mode::kEcho});
  TestUpstream shadow({Mode::kEcho});
  GatewayProcess gateway(MakeConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  auto raw = RawExchange(gateway.port(),
                         "POST /x?q=1 HTTP/1.1\r\nHost: api.test\r\n"
                         "Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\n"
                         "Proxy-Authorization: Basic p\r\nAuthorization: Bearer prod\r\n"
                         "Cookie: s=1\r\nX-Forwarded-For: 10.1.1.1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  ASSERT_EQ(StatusOf(raw), 200) << raw;
  ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() == 1; }, 3s));
  auto p = primary.received().at(0);
  EXPECT_EQ(p.method, "POST");
  EXPECT_EQ(p.target, "/x?q=1");
  EXPECT_EQ(p.body, "abcdefg");  // de-chunked
  EXPECT_EQ(p.headers["content-length"], "7");
  EXPECT_EQ(p.headers.count("transfer-encoding"), 0u);
  EXPECT_EQ(p.headers.count("x-hop"), 0u);
  EXPECT_EQ(p.headers.count("keep-alive"), 0u);
  EXPECT_EQ(p.headers.count("proxy-authorization"), 0u);
  EXPECT_EQ(p.headers["authorization"], "Bearer prod");  // the primary gets credentials
  EXPECT_EQ(p.headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
  EXPECT_EQ(p.headers["x-forwarded-proto"], "http");
  EXPECT_EQ(p.headers["x-forwarded-host"], "api.test");
  EXPECT_EQ(p.headers["x-request-id"].size(), 32u);
  EXPECT_NE(raw.find("X-Request-Id: " + p.headers["x-request-id"]), std::string::npos) << raw;
  EXPECT_EQ(p.headers.count("x-shadow-request"), 0u);
  auto s = shadow.received().at(0);
  EXPECT_EQ(s.body, "abcdefg");
  EXPECT_EQ(s.headers.count("authorization"), 0u);  // redacted
  EXPECT_EQ(s.headers.count("cookie"), 0u);
  EXPECT_EQ(s.headers["x-shadow-request"], "1");
  EXPECT_EQ(s.headers["x-request-id"], p.headers["x-request-id"]);
}

// mirror_body false: the shadow gets the head (redacted, marked) and no body; the primary the body.
TEST(GatewayTest, MirrorWithoutBodySendsTheHeadOnly) {
  TempDir dir;
  TestUpstream primary({Mode::kEcho});
  TestUpstream shadow({Mode::kEcho});
  GatewayProcess gateway(MakeConfig(primary.port(), shadow.port(), {{"mirror_body", false}}), dir);
  ASSERT_TRUE(gateway.ready());
  auto raw = RawExchange(gateway.port(),
                         "POST /y HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n"
                         "Authorization: Bearer prod\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(StatusOf(raw), 200) << raw;
  ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() == 1; }, 3s));
  EXPECT_EQ(primary.received().at(0).body, "hello");
  auto s = shadow.received().at(0);
  EXPECT_EQ(s.method, "POST");
  EXPECT_EQ(s.target, "/y");
  EXPECT_EQ(s.body, "");
  EXPECT_EQ(s.headers["content-length"], "0");
  EXPECT_EQ(s.headers.count("authorization"), 0u);
  EXPECT_EQ(s.headers["x-shadow-request"], "1");
}

TEST(GatewayTest, ChunkedUpstreamResponseAndKeepAliveAndPipelining) {
  TempDir dir;
  TestUpstream primary({Mode::kChunked, "0123456789abcdef"});
  GatewayProcess gateway(MakeConfig(primary.port()), dir);
  ASSERT_TRUE(gateway.ready());
  // Two pipelined requests on one connection, then the second closes it.
  auto raw = RawExchange(gateway.port(),
                         "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
                         "GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  size_t first = raw.find("HTTP/1.1 200");
  size_t second = raw.find("HTTP/1.1 200", first + 1);
  ASSERT_NE(second, std::string::npos) << raw;
  EXPECT_EQ(raw.find("Transfer-Encoding"), std::string::npos);
  EXPECT_NE(raw.find("Content-Length: 16"), std::string::npos);
  EXPECT_EQ(raw.substr(second - 16, 16), "0123456789abcdef");
  EXPECT_TRUE(raw.ends_with("0123456789abcdef"));
  EXPECT_NE(raw.find("Connection: close"), std::string::npos);
  // One upstream connection served both (pooled keep-alive).
  EXPECT_EQ(primary.connections(), 1);
  // HEAD: headers only.
  auto head =
      RawExchange(gateway.port(), "HEAD /h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(head), 200) << head;
  EXPECT_TRUE(head.ends_with("\r\n\r\n")) << head;
}

TEST(GatewayTest, HostileAndBrokenRequestsGetTheRightStatus) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["max_streamed_body_bytes"] = 150000;  // unmirrored bodies stream, up to this
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  int port = gateway.port();
  auto post = [&](const std::string& headers, const std::string& body) {
    return RawExchange(port, "POST /x HTTP/1.1\r\nHost: t\r\n" + headers + "\r\n" + body, 3s);
  };
  EXPECT_EQ(StatusOf(post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "abc")), 400);
  EXPECT_EQ(StatusOf(post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "abc")), 400);
  EXPECT_EQ(StatusOf(post("Content-Length: 3\r\nContent-Length: 4\r\n", "abcd")), 400);
  EXPECT_EQ(StatusOf(post("Content-Length: x\r\n", "")), 400);
  EXPECT_EQ(StatusOf(post("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n")), 400);
  EXPECT_EQ(StatusOf(post("Transfer-Encoding: gzip\r\n", "abc")), 400);
  EXPECT_EQ(StatusOf(RawExchange(port, "NOT HTTP AT ALL\r\n\r\n")), 400);
  EXPECT_EQ(StatusOf(post("X-Big: " + std::string(8000, 'x') + "\r\n", "")), 431);
  EXPECT_EQ(StatusOf(post("Content-Length: 200000\r\n", "")), 413);
  auto chunked_big = post("Transfer-Encoding: chunked\r\n",
                          "30000\r\n" + std::string(0x30000, 'a') + "\r\n0\r\n\r\n");
  EXPECT_EQ(StatusOf(chunked_big), 413);
  // Too slow: half a header, then nothing (client_header_timeout 400 ms).
  auto start = std::chrono::steady_clock::now();
  auto slow = RawExchange(port, "GET /x HTTP/1.1\r\nHost: t\r\n", 3s);
  EXPECT_EQ(StatusOf(slow), 408) << slow;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // Body promised, never sent.
  EXPECT_EQ(StatusOf(post("Content-Length: 10\r\n", "abc")), 408);
  // Every refusal above closed its connection, and the gateway still serves.
  auto ok = HttpGet(port, "/fine");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_TRUE(gateway.process().process().Running());
}

TEST(GatewayTest, UpstreamFailuresMapTo502And504) {
  TempDir dir;
  struct Case {
    std::optional<Mode> mode;  // nullopt: refused
    int status;
  };
  for (auto [mode, status] : {Case{std::nullopt, 502}, Case{Mode::kReset, 502},
                              Case{Mode::kClose, 502}, Case{Mode::kHang, 504}}) {
    std::optional<TestUpstream> upstream;
    int port = FreePort();
    if (mode) {
      upstream.emplace(TestUpstream::Options{*mode});
      port = upstream->port();
    }
    GatewayProcess gateway(MakeConfig(port), dir);
    ASSERT_TRUE(gateway.ready());
    auto response = HttpGet(gateway.port(), "/x");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, status) << static_cast<int>(mode.value_or(Mode::kFixed));
    EXPECT_EQ(response->Header("content-type"), "application/json");
  }
}

TEST(GatewayTest, InterimResponsesAreSkippedForTheFinalOne) {
  // 103 Early Hints before the final response: the client and the pair record get the final one;
  // an upstream that sends only interim responses is a 502, not a hang.
  TempDir dir;
  TestUpstream primary({Mode::kEarlyHints, "final\n"});
  TestUpstream shadow({Mode::kEarlyHints, "shadow final\n"});
  {
    GatewayProcess gateway(MakeConfig(primary.port(), shadow.port()), dir);
    ASSERT_TRUE(gateway.ready());
    for (int i = 0; i < 3; ++i) {  // the same upstream connections, reused
      auto response = HttpGet(gateway.port(), "/x");
      ASSERT_TRUE(response);
      EXPECT_EQ(response->status, 200);
      EXPECT_EQ(response->body, "final\n");
      EXPECT_EQ(response->Header("link"), "");
    }
    ASSERT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == 3; }, 5s));
    auto pairs = PairsOf(gateway.StopAndReadPairs());
    ASSERT_EQ(pairs.size(), 3u);
    for (const auto& pair : pairs) {
      EXPECT_EQ(pair.primary.status, 200);
      EXPECT_EQ(pair.primary.body, "final\n");
      EXPECT_EQ(pair.shadow.status, 200);
      EXPECT_EQ(pair.shadow.body, "shadow final\n");
    }
  }
  TestUpstream endless({Mode::kEndlessHints});
  TestUpstream endless_shadow({Mode::kEndlessHints});
  GatewayProcess gateway(MakeConfig(endless.port(), endless_shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  auto response = HttpGet(gateway.port(), "/x");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 502);
  EXPECT_NE(response->body.find("interim"), std::string::npos) << response->body;
  EXPECT_TRUE(WaitUntil([&] { return gateway.Outcome("shadow_error") == 1; }, 5s));
}

// Sends `n` GETs at once; returns their statuses (0: no response) and the slowest one's time.
std::vector<int> ConcurrentGets(int port, int n, std::chrono::milliseconds* slowest) {
  std::vector<int> statuses(static_cast<size_t>(n));
  std::vector<std::thread> clients;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      auto response = HttpGet(port, "/q/" + std::to_string(i));
      statuses[static_cast<size_t>(i)] = response ? response->status : 0;
    });
  }
  for (auto& client : clients) client.join();
  *slowest = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return statuses;
}

TEST(GatewayTest, RequestsWaitForAPrimaryConnectionAtTheLimit) {
  // One primary connection, an upstream taking 300 ms: four requests at once (on two shards) are
  // served one after the other on it, none refused (pending_timeout is far longer than the
  // 900 ms the last one waits, so a slow start of the client threads cannot time it out).
  TempDir dir;
  TestUpstream primary({Mode::kSlow, "slow\n", 300ms});
  auto config = MakeConfig(primary.port());
  config["upstreams"]["primary"]["max_connections"] = 1;
  config["upstreams"]["primary"]["pending_timeout"] = "30s";
  {
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    std::chrono::milliseconds slowest{};
    auto statuses = ConcurrentGets(gateway.port(), 4, &slowest);
    EXPECT_EQ(statuses, std::vector<int>(4, 200));
    EXPECT_GE(slowest, 1100ms);  // 4 x 300 ms through one connection, not in parallel
    EXPECT_EQ(primary.received_count(), 4u);
    EXPECT_EQ(gateway.Metric("sg_gateway_pool_connections{upstream=\"primary\",pool=\"primary\","
                             "state=\"pending\"}"),
              0);
  }
  // max_pending 1: one exchange, one waiting, the other two refused at once.
  config["upstreams"]["primary"]["max_pending"] = 1;
  {
    GatewayProcess gateway(config, dir);
    ASSERT_TRUE(gateway.ready());
    std::chrono::milliseconds slowest{};
    auto statuses = ConcurrentGets(gateway.port(), 4, &slowest);
    EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 2);
    EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 503), 2);
  }
  // A wait longer than pending_timeout ends with 503 after pending_timeout, not when the
  // connection frees (4 s later).
  TestUpstream slower({Mode::kSlow, "slower\n", 4000ms});
  config = MakeConfig(slower.port());
  config["upstreams"]["primary"]["max_connections"] = 1;
  config["upstreams"]["primary"]["header_timeout"] = "10s";
  config["upstreams"]["primary"]["total_timeout"] = "10s";  // MakeConfig's 2 s would be a 504
  config["upstreams"]["primary"]["pending_timeout"] = "200ms";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  std::thread first([&] { EXPECT_EQ(HttpGet(gateway.port(), "/first")->status, 200); });
  ASSERT_TRUE(WaitUntil([&] { return slower.received_count() == 1; }, 2s));
  auto start = std::chrono::steady_clock::now();
  auto refused = HttpGet(gateway.port(), "/second");
  auto waited = std::chrono::steady_clock::now() - start;
  first.join();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(refused->body.find("pending_timeout"), std::string::npos) << refused->body;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 3000ms);
}

TEST(GatewayTest, OverloadAndRuntimePercentAndAdmin) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kHang});
  GatewayProcess gateway(
      MakeConfig(primary.port(), shadow.port(),
                 {{"max_in_flight", 2}, {"timeout", "5s"}, {"max_body_bytes", 10}}),
      dir);
  ASSERT_TRUE(gateway.ready());
  for (int i = 0; i < 5; ++i) ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  EXPECT_EQ(gateway.NotMirrored("overload"), 3);
  // Too large to mirror, still proxied.
  HttpRequestSpec big;
  big.method = "POST";
  big.target = "/x";
  big.body = std::string(11, 'b');
  EXPECT_EQ(Http(gateway.port(), big)->status, 200);
  EXPECT_EQ(gateway.NotMirrored("body_too_large"), 1);

  // Runtime control: 0% stops mirroring at once.
  HttpRequestSpec put;
  put.method = "PUT";
  put.target = "/admin/routes/r/mirrors/0";
  put.body = R"({"percent": 0})";
  auto changed = Http(gateway.admin_port(), put);
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->status, 200) << changed->body;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  EXPECT_EQ(gateway.NotMirrored("sampled_out"), 4);
  auto config = HttpGet(gateway.admin_port(), "/admin/config");
  ASSERT_TRUE(config);
  EXPECT_EQ(json::parse(config->body)["routes"][0]["mirrors"][0]["percent"], 0);
  put.body = R"({"percent": 120})";
  EXPECT_EQ(Http(gateway.admin_port(), put)->status, 400);
  put.target = "/admin/routes/nope/mirrors/0";
  put.body = R"({"percent": 5})";
  EXPECT_EQ(Http(gateway.admin_port(), put)->status, 404);
  EXPECT_EQ(HttpGet(gateway.admin_port(), "/readyz")->status, 200);
  EXPECT_EQ(gateway.Metric("sg_gateway_requests_total{route=\"r\",status=\"200\"}"), 10);
  EXPECT_EQ(gateway.Metric("sg_gateway_mirror_in_flight{route=\"r\",mirror=\"cpu\"}"), 2);
}

TEST(GatewayTest, SigtermFinishesInFlightRequestsAndFlushesPairs) {
  TempDir dir;
  TestUpstream primary({Mode::kSlow, "slow primary\n", 400ms});
  TestUpstream shadow({Mode::kFixed});
  GatewayProcess gateway(MakeConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  std::optional<HttpResponse> response;
  std::thread client([&] { response = HttpGet(gateway.port(), "/x"); });
  ASSERT_TRUE(WaitUntil([&] { return primary.received_count() == 1; }, 3s));
  gateway.process().process().Signal(SIGTERM);
  client.join();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "slow primary\n");
  auto entries = gateway.StopAndReadPairs();
  ASSERT_GE(entries.size(), 2u);
  EXPECT_EQ(std::get<PairRecord>(entries[0]).primary.body, "slow primary\n");
  EXPECT_FALSE(WaitForPort(gateway.port(), 100ms));
}

TEST(GatewayTest, CheckSubcommandListsProblemsAndExits2) {
  TempDir dir;
  auto bad =
      dir.Write("bad.json", R"({"upstreams": {}, "routes": [{"upstream": "x"}], "oops": 1})");
  auto check = RunCheck(bad);
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_NE(check.output.find(bad.string() + ": $.oops: unknown key"), std::string::npos)
      << check.output;
  EXPECT_NE(check.output.find(bad.string() + ": $.routes[0].upstream: unknown upstream \"x\""),
            std::string::npos)
      << check.output;
  // The example passes from the repository's root, where its reports/ folder is, as the docs
  // run it; from elsewhere, the folders it names relative to the working directory are missing.
  auto example = SourceDir() / "configs" / "gateway.example.json";
  auto from_root = RunCheck(example, SourceDir());
  EXPECT_EQ(from_root.exit_code, 0) << from_root.output;
  auto elsewhere = RunCheck(example, dir.path());
  EXPECT_EQ(elsewhere.exit_code, 2) << elsewhere.output;
  EXPECT_NE(elsewhere.output.find("$.capture.pair_log.path: folder \"reports\" does not exist"),
            std::string::npos)
      << elsewhere.output;
}

// ---------------------------------------------------------------------------------------------
// Streaming: bodies that are not mirrored pass through a bounded buffer both ways.

// The gateway's peak resident memory (VmHWM) in bytes, negative when unreadable.
int64_t PeakRss(pid_t pid) {
  return sg::testing::ProcStatusKiB(pid, "VmHWM") * 1024;
}

std::string Pattern(size_t size) {
  std::string body(size, '\0');
  for (size_t i = 0; i < size; ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return body;
}

json StreamingConfig(int primary_port, int shadow_port = 0, json mirror = json::object()) {
  auto config = MakeConfig(primary_port, shadow_port, std::move(mirror));
  config["client_body_timeout"] = "10s";
  config["upstreams"]["primary"]["total_timeout"] = "60s";
  config["upstreams"]["primary"]["header_timeout"] = "30s";
  return config;
}

constexpr size_t kBig = 64 << 20;
// Growth of the gateway's peak RSS over its start-up peak: far below the 64 MiB bodies (and
// independent of a sanitizer's fixed overhead).
constexpr int64_t kRssGrowthBound = 24 << 20;

// `body` in chunked encoding, `piece` bytes a chunk.
std::string Chunked(const std::string& body, size_t piece) {
  std::string out;
  for (size_t at = 0; at < body.size(); at += piece) {
    auto part = body.substr(at, piece);
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", part.size());
    out += size + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// The body of a raw response (after the head), de-chunked when it was sent chunked.
std::string BodyOf(const std::string& raw) {
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return "";
  std::string body = raw.substr(end + 4);
  if (raw.substr(0, end).find("Transfer-Encoding: chunked") == std::string::npos) return body;
  std::string out;
  size_t at = 0;
  for (;;) {
    auto line = body.find("\r\n", at);
    if (line == std::string::npos) return "<bad chunking>";
    size_t size = std::stoul(body.substr(at, line - at), nullptr, 16);
    if (size == 0) return out;
    out.append(body, line + 2, size);
    at = line + 2 + size + 2;
  }
}

TEST(GatewayStreamingTest, LargeUploadsAreRelayedWithBoundedMemory) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "stored\n"});
  GatewayProcess gateway(StreamingConfig(primary.port()), dir);
  ASSERT_TRUE(gateway.ready());
  const auto start_peak = PeakRss(gateway.process().pid());
  const std::string body = Pattern(kBig);
  auto raw = RawExchange(gateway.port(),
                         "POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         "Content-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body,
                         60s);
  ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
  ASSERT_EQ(primary.received_count(), 1u);
  auto got = primary.received().at(0);
  EXPECT_EQ(got.headers["content-length"], std::to_string(kBig));
  EXPECT_TRUE(got.body == body) << got.body.size();

  // A chunked upload stays chunked to the upstream.
  raw = RawExchange(gateway.port(),
                    "POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n" +
                        Chunked(body.substr(0, body.size() / 2), 1 << 20),
                    60s);
  ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
  ASSERT_EQ(primary.received_count(), 2u);
  got = primary.received().at(1);
  EXPECT_EQ(got.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(got.headers.count("content-length"), 0u);
  EXPECT_TRUE(got.body == body.substr(0, body.size() / 2)) << got.body.size();

  auto peak = PeakRss(gateway.process().pid());
  std::printf("gateway peak RSS: %lld KiB at start, %lld KiB after 64 MiB + 32 MiB uploads\n",
              static_cast<long long>(start_peak / 1024), static_cast<long long>(peak / 1024));
  EXPECT_GT(start_peak, 0);
  EXPECT_LT(peak - start_peak, kRssGrowthBound);
}

TEST(GatewayStreamingTest, LargeResponsesAreRelayedWithTheirFraming) {
  TempDir dir;
  const std::string body = Pattern(kBig);
  for (Mode mode : {Mode::kFixed, Mode::kChunked}) {
    TestUpstream primary({mode, body});
    GatewayProcess gateway(StreamingConfig(primary.port()), dir);
    ASSERT_TRUE(gateway.ready());
    const auto start_peak = PeakRss(gateway.process().pid());
    auto raw = RawGet(gateway.port(), "/download", "big-1", "", 60s);  // 64 MiB on a loaded machine
    ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
    auto head = raw.substr(0, raw.find("\r\n\r\n"));
    if (mode == Mode::kChunked) {
      EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
    } else {
      EXPECT_NE(head.find("Content-Length: " + std::to_string(kBig)), std::string::npos) << head;
    }
    EXPECT_NE(head.find("X-Request-Id: big-1"), std::string::npos) << head;
    auto got = BodyOf(raw);
    EXPECT_TRUE(got == body) << got.size();
    auto peak = PeakRss(gateway.process().pid());
    std::printf("gateway peak RSS: %lld KiB at start, %lld KiB after a 64 MiB %s response\n",
                static_cast<long long>(start_peak / 1024), static_cast<long long>(peak / 1024),
                mode == Mode::kChunked ? "chunked" : "Content-Length");
    EXPECT_GT(start_peak, 0);
    EXPECT_LT(peak - start_peak, kRssGrowthBound);
  }
}

TEST(GatewayStreamingTest, OverTheMirrorLimitIsStreamedAndCountedSmallIsPaired) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "primary\n"});
  TestUpstream shadow({Mode::kFixed, "shadow\n"});
  GatewayProcess gateway(StreamingConfig(primary.port(), shadow.port(), {{"max_body_bytes", 1000}}),
                         dir);
  ASSERT_TRUE(gateway.ready());
  const std::string large = Pattern(4 << 20);
  HttpRequestSpec spec;
  spec.method = "POST";
  spec.target = "/big";
  spec.body = large;
  auto response = Http(gateway.port(), spec);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "primary\n");
  ASSERT_EQ(primary.received_count(), 1u);
  EXPECT_TRUE(primary.received().at(0).body == large);
  EXPECT_EQ(gateway.NotMirrored("body_too_large"), 1);

  // A chunked body growing past the limit is streamed too, what was collected first.
  const std::string chunked = Pattern(8 << 20);
  auto raw = RawExchange(gateway.port(),
                         "POST /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n" +
                             Chunked(chunked, 300000),
                         30s);
  ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
  ASSERT_EQ(primary.received_count(), 2u);
  auto got = primary.received().at(1);
  EXPECT_EQ(got.headers["transfer-encoding"], "chunked");
  EXPECT_TRUE(got.body == chunked) << got.body.size();
  EXPECT_EQ(gateway.NotMirrored("body_too_large"), 2);
  // A small chunked body is still mirrored, re-framed with Content-Length.
  raw = RawExchange(gateway.port(),
                    "POST /small HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nsmall\r\n5\r\n body\r\n0\r\n\r\n");
  ASSERT_EQ(StatusOf(raw), 200) << raw;
  EXPECT_EQ(primary.received().at(2).headers["content-length"], "10");

  spec.target = "/small";
  spec.body = "small body";
  response = Http(gateway.port(), spec);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  ASSERT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == 2; }, 5s));
  EXPECT_EQ(gateway.NotMirrored("body_too_large"), 2);
  ASSERT_EQ(shadow.received_count(), 2u);
  for (const auto& copy : shadow.received()) EXPECT_EQ(copy.body, "small body");
  auto pairs = PairsOf(gateway.StopAndReadPairs());
  for (const auto& pair : pairs) {
    EXPECT_EQ(pair.request.target, "/small");
    EXPECT_EQ(pair.request.size, 10u);
    EXPECT_EQ(*pair.request.body, "small body");
    EXPECT_EQ(pair.primary.body, "primary\n");
    EXPECT_EQ(pair.shadow.body, "shadow\n");
  }
  EXPECT_EQ(pairs.size(), 2u);
}

TEST(GatewayStreamingTest, UpstreamResetMidStreamClosesTheClientConnection) {
  TempDir dir;
  TestUpstream primary({Mode::kResetMidBody, Pattern(8 << 20)});
  GatewayProcess gateway(StreamingConfig(primary.port()), dir);
  ASSERT_TRUE(gateway.ready());
  // Keep-alive requested: only a closed connection can end the exchange.
  auto raw = RawExchange(gateway.port(), "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 20s);
  ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
  auto head = raw.substr(0, raw.find("\r\n\r\n"));
  EXPECT_NE(head.find("Content-Length: " + std::to_string(8 << 20)), std::string::npos) << head;
  EXPECT_LT(raw.size() - head.size() - 4, size_t{8 << 20});  // cut short
  EXPECT_EQ(raw.find("HTTP/1.1 502"), std::string::npos);    // never a second response
  EXPECT_TRUE(gateway.process().process().Running());
}

TEST(GatewayStreamingTest, MirroredExchangeStreamsALargePrimaryResponseAndCapturesItsStart) {
  TempDir dir;
  const std::string body = Pattern(16 << 20);
  TestUpstream primary({Mode::kFixed, body});
  TestUpstream shadow({Mode::kFixed, "shadow\n"});
  GatewayProcess gateway(StreamingConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());
  const auto start_peak = PeakRss(gateway.process().pid());
  auto raw = RawExchange(gateway.port(),
                         "POST /m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                         "Content-Length: 5\r\n\r\nhello",
                         30s);
  ASSERT_EQ(StatusOf(raw), 200) << raw.substr(0, 300);
  EXPECT_TRUE(BodyOf(raw) == body) << BodyOf(raw).size();
  ASSERT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == 1; }, 5s));
  auto peak = PeakRss(gateway.process().pid());
  std::printf("gateway peak RSS: %lld KiB at start, %lld KiB after a mirrored 16 MiB response\n",
              static_cast<long long>(start_peak / 1024), static_cast<long long>(peak / 1024));
  EXPECT_GT(start_peak, 0);
  EXPECT_LT(peak - start_peak, kRssGrowthBound);
  auto pairs = PairsOf(gateway.StopAndReadPairs());
  for (const auto& pair : pairs) {
    EXPECT_EQ(*pair.request.body, "hello");
    EXPECT_EQ(pair.primary.status, 200);
    EXPECT_EQ(pair.primary.outcome, "ok");
    EXPECT_EQ(pair.primary.body, body.substr(0, 1024));  // capture.max_body_bytes
    EXPECT_TRUE(pair.primary.body_truncated);
    EXPECT_EQ(pair.shadow.body, "shadow\n");
  }
  EXPECT_EQ(pairs.size(), 1u);
}

}  // namespace
}  // namespace sg::testing
