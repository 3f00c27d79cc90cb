// Behaviour docs/gateway.md promises that no other test exercised (issue 23's list): endpoints
// used round-robin, ejection after eject_after_failures and return after eject_duration, 404
// without a route, the text access log, keep_alive_timeout, the client max_connections and
// draining on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Mode = TestUpstream::Mode;

TEST(GatewayPromisesTest, EndpointsAreUsedRoundRobin) {
  TempDir dir;
  TestUpstream a({Mode::kFixed, "from a\n"});
  TestUpstream b({Mode::kFixed, "from b\n"});
  auto config = MakeConfig(a.port());
  config["upstreams"]["primary"]["endpoints"] = {Addr(a.port()), Addr(b.port())};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  EXPECT_EQ(a.received_count(), 5u);
  EXPECT_EQ(b.received_count(), 5u);
}

TEST(GatewayPromisesTest, AFailingEndpointIsEjectedThenTriedAgainAfterEjectDuration) {
  TempDir dir;
  TestUpstream alive({Mode::kFixed});
  const int dead = FreePort();  // nothing listens: every connect is refused
  auto config = MakeConfig(alive.port());
  config["upstreams"]["primary"]["endpoints"] = {Addr(alive.port()), Addr(dead)};
  config["upstreams"]["primary"]["eject_after_failures"] = 2;
  config["upstreams"]["primary"]["eject_duration"] = "3s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto failures_in = [&](int requests) {
    int failed = 0;
    for (int i = 0; i < requests; ++i) {
      auto response = HttpGet(gateway.port(), "/x");
      EXPECT_TRUE(response);
      if (response && response->status != 200) {
        EXPECT_EQ(response->status, 502);
        ++failed;
      }
    }
    return failed;
  };
  // Round-robin sends every other request to the dead endpoint until its second refusal ejects
  // it; then every request goes to the live one.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(failures_in(6), 2);
  EXPECT_EQ(failures_in(6), 0);
  ASSERT_LT(std::chrono::steady_clock::now() - start, 3s) << "12 requests took over eject_duration";
  // After eject_duration the endpoint is tried again (and fails again).
  std::this_thread::sleep_until(start + 3100ms);
  EXPECT_GE(failures_in(4), 1);
}

TEST(GatewayPromisesTest, ARequestNoRouteTakesIs404AndNotForwarded) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["routes"][0]["path_prefix"] = "/only/";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto missed = HttpGet(gateway.port(), "/elsewhere");
  ASSERT_TRUE(missed);
  EXPECT_EQ(missed->status, 404);
  EXPECT_EQ(missed->Header("content-type"), "application/json");
  EXPECT_EQ(primary.received_count(), 0u);
  EXPECT_EQ(HttpGet(gateway.port(), "/only/x")->status, 200);
  EXPECT_EQ(primary.received_count(), 1u);
}

TEST(GatewayPromisesTest, TextAccessLogHasALinePerResponse) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["routes"][0]["path_prefix"] = "/only/";
  const auto access = dir.path() / "access.log";
  config["access_log"] = "text";
  config["access_log_path"] = access.string();
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  ASSERT_EQ(HttpGet(gateway.port(), "/only/found")->status, 200);
  ASSERT_EQ(HttpGet(gateway.port(), "/missing")->status, 404);
  std::vector<std::string> lines;
  ASSERT_TRUE(WaitUntil(
      [&] {
        lines.clear();
        std::ifstream in(access);
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return lines.size() == 2;
      },
      5s));
  EXPECT_NE(lines[0].find("GET /only/found"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(" 200 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("GET /missing"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" 404 "), std::string::npos) << lines[1];
  EXPECT_FALSE(json::accept(lines[0])) << "text, not JSON: " << lines[0];
}

HttpRequestSpec Get(const std::string& target) {
  HttpRequestSpec spec;
  spec.target = target;
  return spec;
}

TEST(GatewayPromisesTest, CountersLinesAreWrittenEveryCountersInterval) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  auto config = MakeConfig(primary.port(), shadow.port());
  config["capture"]["pair_log"] = {{"counters_interval", "200ms"}};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  const auto pairs = dir.path() / ("pairs-" + std::to_string(gateway.port()) + ".jsonl");
  auto counters_lines = [&] {
    int n = 0;
    std::ifstream in(pairs);
    for (std::string line; std::getline(in, line);) {
      n += line.find("\"type\":\"counters\"") != std::string::npos;
    }
    return n;
  };
  // While the gateway runs (not only the final one at stop), one line per interval.
  EXPECT_TRUE(WaitUntil([&] { return counters_lines() >= 3; }, 5s)) << counters_lines();
  EXPECT_TRUE(gateway.process().process().Running());
}

TEST(GatewayPromisesTest, AnIdleClientConnectionIsClosedAfterKeepAliveTimeout) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["keep_alive_timeout"] = "300ms";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  HttpConnection connection(gateway.port());
  ASSERT_TRUE(connection.connected());
  ASSERT_EQ(connection.Send(Get("/a"))->status, 200);
  ASSERT_EQ(connection.Send(Get("/b"))->status, 200);  // kept alive between requests
  const auto idle_from = std::chrono::steady_clock::now();
  std::string error;
  // Nothing more is sent: the gateway closes the connection, well before this read's 5 s.
  EXPECT_FALSE(connection.Read("GET", 5s, &error));
  const auto idle = std::chrono::steady_clock::now() - idle_from;
  EXPECT_GE(idle, 250ms) << error;
  EXPECT_LT(idle, 3s) << error;
}

TEST(GatewayPromisesTest, ClientConnectionsOverMaxConnectionsAreClosedAtOnce) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["max_connections"] = 2;
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto first = std::make_unique<HttpConnection>(gateway.port());
  HttpConnection second(gateway.port());
  ASSERT_EQ(first->Send(Get("/1"))->status, 200);
  ASSERT_EQ(second.Send(Get("/2"))->status, 200);
  {
    HttpConnection third(gateway.port());  // the kernel accepts it; the gateway closes it
    std::string error;
    EXPECT_FALSE(third.Send(Get("/3"), &error));
  }
  EXPECT_EQ(primary.received_count(), 2u);
  // One closed, a new connection is served again.
  first.reset();
  EXPECT_TRUE(WaitUntil(
      [&] {
        HttpConnection again(gateway.port());
        auto response = again.Send(Get("/4"));
        return response && response->status == 200;
      },
      5s));
}

TEST(GatewayPromisesTest,
     DrainingTurnsReadyz503ClosesIdleConnectionsAndBusyOnesAfterTheirResponse) {
  TempDir dir;
  TestUpstream primary({Mode::kSlow, "slow\n", 500ms});
  auto config = MakeConfig(primary.port());
  config["shutdown_grace"] = "5s";
  config["upstreams"]["primary"]["header_timeout"] = "3s";  // MakeConfig's 500 ms races the 500 ms
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  HttpConnection idle(gateway.port());
  ASSERT_EQ(idle.Send(Get("/first"))->status, 200);  // kept alive, then idle
  HttpConnection busy(gateway.port());
  ASSERT_TRUE(busy.Write("GET /busy HTTP/1.1\r\nHost: t\r\n\r\n"));
  ASSERT_TRUE(WaitUntil([&] { return primary.received_count() == 2; }, 3s));
  gateway.process().process().Signal(SIGTERM);
  // While the busy request is in flight: not ready, the idle connection closed.
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto ready = HttpGet(gateway.admin_port(), "/readyz");
        return ready && ready->status == 503;
      },
      2s));
  std::string error;
  EXPECT_FALSE(idle.Read("GET", 2s, &error));
  // The busy one gets its response, marked as the connection's last.
  auto last = busy.Read("GET", 5s, &error);
  ASSERT_TRUE(last) << error;
  EXPECT_EQ(last->status, 200);
  EXPECT_EQ(last->body, "slow\n");
  EXPECT_EQ(last->Header("connection"), "close");
}

}  // namespace
}  // namespace sg::testing
