// The gateway in front of production, with the real shadowgate binary: who may use the admin
// listener (Host allow-list, bearer token, bind check), the global memory budget for buffered
// request bodies, and the operator's conveniences (SIGHUP reopens the logs, the access log's
// latency of refused requests, warnings at the descriptor limit).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Mode = TestUpstream::Mode;

constexpr const char* kToken = "s3cret-admin-token-0123456789";

HttpRequestSpec AdminRequest(const std::string& method, const std::string& target,
                             const std::string& host, const std::string& token = "") {
  HttpRequestSpec spec;
  spec.method = method;
  spec.target = target;
  spec.headers.push_back({"Host", host});
  if (!token.empty()) spec.headers.push_back({"Authorization", "Bearer " + token});
  return spec;
}

TEST(GatewayAdminTest, OtherHostsAndMissingOrWrongTokensAreRefused) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  auto token_file = dir.Write("admin.token", std::string(kToken) + "\n");
  ::chmod(token_file.c_str(), 0600);
  auto config = MakeConfig(primary.port(), shadow.port());
  config["admin"] = {{"token_file", token_file.string()}};
  GatewayProcess gateway(config, dir);  // ready: /healthz needs no token
  ASSERT_TRUE(gateway.ready());
  const int admin = gateway.admin_port();
  const std::string local = "127.0.0.1:" + std::to_string(admin);

  // DNS rebinding: a page on evil.example, its name re-bound to 127.0.0.1, sends its own Host.
  // Refused before anything runs, even with the right token.
  auto put = AdminRequest("PUT", "/admin/routes/r/mirrors/0",
                          "evil.example:" + std::to_string(admin), kToken);
  put.body = R"({"percent": 0})";
  auto rebound = Http(admin, put);
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 421) << rebound->body;
  EXPECT_EQ(json::parse(rebound->body)["code"], 421);
  auto probe = Http(admin, AdminRequest("GET", "/healthz", "evil.example"));
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->status, 421);

  // A loopback Host without the token, or with a wrong one: 401 with a challenge.
  put.headers = {{"Host", local}};
  auto missing = Http(admin, put);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401) << missing->body;
  EXPECT_EQ(missing->Header("www-authenticate"), "Bearer realm=\"shadowgate-admin\"");
  EXPECT_EQ(json::parse(missing->body)["type"], "Unauthorized");
  put.headers.push_back({"Authorization", "Bearer s3cret-admin-token-012345678X"});
  auto wrong = Http(admin, put);
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_NE(wrong->Header("www-authenticate").find("invalid_token"), std::string::npos);
  auto metrics = Http(admin, AdminRequest("GET", "/metrics", local));
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 401);

  // None of them changed anything; the right token does.
  auto shown = Http(
      admin, AdminRequest("GET", "/admin/config", "localhost:" + std::to_string(admin), kToken));
  ASSERT_TRUE(shown);
  ASSERT_EQ(shown->status, 200) << shown->body;
  EXPECT_EQ(json::parse(shown->body)["routes"][0]["mirrors"][0]["percent"], 100);
  EXPECT_EQ(shown->body.find(kToken), std::string::npos);  // the file's name, never the token
  put.headers = {{"Host", local}, {"Authorization", std::string("Bearer ") + kToken}};
  auto changed = Http(admin, put);
  ASSERT_TRUE(changed);
  EXPECT_EQ(changed->status, 200) << changed->body;
  EXPECT_EQ(json::parse(changed->body)["percent"], 0);
  metrics = Http(admin, AdminRequest("GET", "/metrics", local, kToken));
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sg_gateway_admin_refused_total{reason=\"host\"} 2"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("sg_gateway_admin_refused_total{reason=\"token\"} 3"),
            std::string::npos);
}

TEST(GatewayAdminTest, WithoutATokenOnlyLoopbackNamesMayUseIt) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  GatewayProcess gateway(MakeConfig(primary.port()), dir);
  ASSERT_TRUE(gateway.ready());
  const int admin = gateway.admin_port();
  auto rebound = Http(admin, AdminRequest("GET", "/admin/config", "evil.example"));
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 421);
  for (const std::string host : {"localhost", "127.0.0.1", "[::1]"}) {
    auto ok = Http(admin, AdminRequest("GET", "/admin/config", host + ":" + std::to_string(admin)));
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << host;
  }
}

TEST(GatewayAdminTest, BindingBeyondLoopbackNeedsAToken) {
  TempDir dir;
  auto config = MakeConfig(FreePort());
  config["listen"] = "127.0.0.1:" + std::to_string(FreePort());
  config["admin_listen"] = "0.0.0.0:" + std::to_string(FreePort());
  auto path = dir.Write("gw.json", config.dump());
  // `check` and the start both refuse, exit 2, naming the JSON path.
  for (auto args : {std::vector<std::string>{"check", "--config", path.string()},
                    std::vector<std::string>{"--config", path.string()}}) {
    auto result = RunShadowgate(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.output;
    EXPECT_NE(result.output.find("gw.json: $.admin_listen: \"0.0.0.0:"), std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("is beyond loopback: set admin.token_file"), std::string::npos)
        << result.output;
  }
  // With a token it starts, and warns.
  auto token_file = dir.Write("admin.token", std::string(kToken) + "\n");
  ::chmod(token_file.c_str(), 0600);
  config["admin"] = {{"token_file", "admin.token"}};  // beside the config
  path = dir.Write("gw.json", config.dump());
  ChildProcess process("shadowgate", {"--config", path.string()});
  const int admin = std::stoi(config["admin_listen"].get<std::string>().substr(8));
  std::string why;
  ASSERT_TRUE(process.WaitReady(admin, "/healthz", 10s, &why)) << why;
  EXPECT_NE(process.Log().find("is reachable beyond loopback"), std::string::npos) << process.Log();
}

TEST(GatewayConfigCheckTest, WhatTheMachineMustProvideIsCheckedByCheckAndAtStart) {
  // An endpoint that does not resolve and a pair log in a missing folder passed `check`, then
  // failed at start with exit 1 and no JSON path.
  TempDir dir;
  auto config = MakeConfig(FreePort());
  config["upstreams"]["primary"]["endpoints"].push_back("no-such-host.invalid:80");
  config["capture"]["pair_log"] = {{"path", (dir.path() / "missing" / "pairs.jsonl").string()}};
  config["access_log_path"] = (dir.path() / "access.log").string();  // a folder that exists
  auto path = dir.Write("gw.json", config.dump());
  for (auto args : {std::vector<std::string>{"check", "--config", path.string()},
                    std::vector<std::string>{"--config", path.string()}}) {
    auto result = RunShadowgate(args);
    EXPECT_EQ(result.exit_code, 2) << args[0] << ": " << result.output;
    EXPECT_NE(result.output.find("gw.json: $.upstreams.primary.endpoints[1]: cannot resolve "
                                 "\"no-such-host.invalid\""),
              std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("gw.json: $.capture.pair_log.path: folder \"" +
                                 (dir.path() / "missing").string() + "\" does not exist"),
              std::string::npos)
        << result.output;
    EXPECT_EQ(result.output.find("access_log_path"), std::string::npos) << result.output;
  }
  // Once the machine provides them, `check` passes.
  std::filesystem::create_directories(dir.path() / "missing");
  config["upstreams"]["primary"]["endpoints"].erase(1);
  path = dir.Write("gw.json", config.dump());
  auto result = RunShadowgate({"check", "--config", path.string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
}

// ---------------------------------------------------------------------------------------------
// The memory budget: request bodies held in memory over all connections.

constexpr int kStalledClients = 200;
constexpr size_t kUpload = 1 << 20;                        // each client's Content-Length
constexpr size_t kSentBeforeStall = kUpload - (64 << 10);  // then it stalls
constexpr int64_t kBudget = 16 << 20;                      // max_buffered_body_bytes in the test
// What the gateway may hold besides the budgeted bodies: every connection's buffers (a 64 KiB
// relay buffer, the client read buffer, which Beast grows to 64 KiB, parsers and sockets), an
// upstream connection for each streamed request, and the allocator's slack. 192 KiB each is
// about 1.5 times what they take; the process's own start-up size is measured.
constexpr int64_t kPerConnectionOverhead = 192 << 10;

TEST(GatewayMemoryBudgetTest, StalledUploadsPastTheBudgetAreStreamedAndMemoryStaysBounded) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "stored\n"});
  TestUpstream shadow({Mode::kFixed, "stored\n"});
  auto config =
      MakeConfig(primary.port(), shadow.port(),
                 {{"max_body_bytes", 2 << 20}, {"timeout", "30s"}, {"max_in_flight", 512}});
  config["max_request_body_bytes"] = 2 << 20;
  config["max_buffered_body_bytes"] = kBudget;
  config["client_body_timeout"] = "60s";
  config["upstreams"]["primary"]["total_timeout"] = "60s";
  config["upstreams"]["primary"]["header_timeout"] = "30s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  const pid_t pid = gateway.process().pid();
  const int64_t start_rss = ProcStatusKiB(pid, "VmRSS") * 1024;
  ASSERT_GT(start_rss, 0);

  // 200 clients each announce 1 MiB for a mirrored route and stall 64 KiB before its end.
  const std::string body(kUpload, 'u');
  const std::string head =
      "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(kUpload) + "\r\n\r\n";
  std::vector<std::unique_ptr<HttpConnection>> clients;
  for (int i = 0; i < kStalledClients; ++i) {
    clients.push_back(std::make_unique<HttpConnection>(gateway.port()));
    ASSERT_TRUE(clients.back()->connected());
    ASSERT_TRUE(clients.back()->Write(head + body.substr(0, kSentBeforeStall))) << i;
  }
  // The budget holds 16 of them; every other one is streamed to the primary, not mirrored.
  const int buffered = static_cast<int>(kBudget / static_cast<int64_t>(kUpload));
  // (Expectations, not assertions, up to the measurement: without a budget it is still taken.)
  EXPECT_TRUE(WaitUntil(
      [&] { return gateway.NotMirrored("memory_budget") == kStalledClients - buffered; }, 20s))
      << gateway.NotMirrored("memory_budget");
  EXPECT_EQ(gateway.Metric("sg_gateway_buffered_body_bytes"), static_cast<double>(kBudget));
  // Wait until every stalled byte went through the gateway (the streamed ones to the primary):
  // the primary's connections for them are open and the gateway's memory has settled.
  EXPECT_TRUE(WaitUntil([&] { return primary.connections() >= kStalledClients - buffered; }, 10s));
  int64_t stalled_rss = 0;
  for (int i = 0; i < 20; ++i) {  // the largest of a few samples, 50 ms apart
    stalled_rss = std::max(stalled_rss, ProcStatusKiB(pid, "VmRSS") * 1024);
    std::this_thread::sleep_for(50ms);
  }
  const int64_t bound = start_rss + kBudget + kStalledClients * kPerConnectionOverhead;
  std::printf(
      "gateway RSS: %lld KiB at start, %lld KiB with %d stalled 1 MiB uploads; bound "
      "%lld KiB (start + %lld KiB budget + %d x %lld KiB)\n",
      static_cast<long long>(start_rss >> 10), static_cast<long long>(stalled_rss >> 10),
      kStalledClients, static_cast<long long>(bound >> 10), static_cast<long long>(kBudget >> 10),
      kStalledClients, static_cast<long long>(kPerConnectionOverhead >> 10));
  EXPECT_LT(stalled_rss, bound);

  // The clients resume: every request completes.
  for (auto& client : clients) ASSERT_TRUE(client->Write(body.substr(kSentBeforeStall)));
  for (int i = 0; i < kStalledClients; ++i) {
    std::string error;
    auto response = clients[i]->Read("POST", 30s, &error);
    ASSERT_TRUE(response) << i << ": " << error;
    EXPECT_EQ(response->status, 200) << i;
  }
  EXPECT_EQ(primary.received_count(), static_cast<size_t>(kStalledClients));
  for (const auto& received : primary.received()) EXPECT_EQ(received.body.size(), kUpload);
  EXPECT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == buffered; }, 10s))
      << gateway.Outcome("ok");
  EXPECT_TRUE(
      WaitUntil([&] { return gateway.Metric("sg_gateway_buffered_body_bytes") == 0; }, 10s));

  const int64_t peak = ProcStatusKiB(pid, "VmHWM") * 1024;
  std::printf("gateway peak RSS (VmHWM): %lld KiB\n", static_cast<long long>(peak >> 10));
  EXPECT_LT(peak, bound);  // resuming them all at once did not pass it either
  auto pairs = gateway.StopAndReadPairs();
  int counted = 0;
  for (const auto& entry : pairs) {
    if (const auto* counters = std::get_if<MirrorCounters>(&entry)) {
      counted = static_cast<int>(counters->not_mirrored.at("memory_budget"));
    }
  }
  EXPECT_EQ(counted, kStalledClients - buffered);  // the counters records say why too
}

TEST(GatewayMemoryBudgetTest, ChunkedBodiesPastTheBudgetAreStreamedWithWhatWasCollected) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "stored\n"});
  TestUpstream shadow({Mode::kFixed, "stored\n"});
  auto config =
      MakeConfig(primary.port(), shadow.port(), {{"max_body_bytes", 1 << 20}, {"timeout", "10s"}});
  config["max_request_body_bytes"] = 1 << 20;
  config["max_buffered_body_bytes"] = 256 << 10;
  config["client_body_timeout"] = "10s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  // One client holds a 200 KB chunked body open (collected: it may be mirrored) ...
  HttpConnection holder(gateway.port());
  ASSERT_TRUE(holder.Write("POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           std::string("30d40\r\n") + std::string(200000, 'a') + "\r\n"));
  ASSERT_TRUE(WaitUntil([&] { return gateway.Metric("sg_gateway_buffered_body_bytes") > 0; }, 5s));
  // ... so a second one of 300 KB does not fit: it goes to the primary whole, unmirrored.
  HttpConnection second(gateway.port());
  const std::string big(300000, 'b');
  ASSERT_TRUE(second.Write("POST /b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
                           std::string("493e0\r\n") + big + "\r\n0\r\n\r\n"));
  auto response = second.Read("POST", 10s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  ASSERT_TRUE(WaitUntil([&] { return primary.received_count() == 1; }, 5s));
  EXPECT_EQ(primary.received().at(0).target, "/b");
  EXPECT_TRUE(primary.received().at(0).body == big);
  EXPECT_EQ(gateway.NotMirrored("memory_budget"), 1);
  // The first completes, mirrored.
  ASSERT_TRUE(holder.Write("0\r\n\r\n"));
  response = holder.Read("POST", 10s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(WaitUntil([&] { return gateway.Outcome("ok") == 1; }, 5s));
  EXPECT_TRUE(WaitUntil([&] { return gateway.Metric("sg_gateway_buffered_body_bytes") == 0; }, 5s));
}

// ---------------------------------------------------------------------------------------------
// Operating it: SIGHUP, the access log, the descriptor limit.

size_t Lines(const std::filesystem::path& path) {
  auto text = ReadFile(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(GatewayOperationsTest, SighupReopensTheAccessLogAndThePairLog) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  auto config = MakeConfig(primary.port(), shadow.port());
  const auto access = dir.path() / "access.log";
  config["access_log"] = "json";
  config["access_log_path"] = access.string();
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  const auto pairs = dir.path() / ("pairs-" + std::to_string(gateway.port()) + ".jsonl");
  ASSERT_EQ(HttpGet(gateway.port(), "/first")->status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Lines(access) == 1 && Lines(pairs) == 1; }, 5s));

  // logrotate renames the files, then signals.
  std::filesystem::rename(access, dir.path() / "access.log.1");
  std::filesystem::rename(pairs, pairs.string() + ".1");
  ::kill(gateway.process().pid(), SIGHUP);
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto log = gateway.process().Log();
        return log.find("reopened the access log") != std::string::npos &&
               log.find("pair log: reopened") != std::string::npos;
      },
      5s))
      << gateway.process().Log();
  ASSERT_TRUE(gateway.process().process().Running());
  ASSERT_EQ(HttpGet(gateway.port(), "/second")->status, 200);
  ASSERT_TRUE(WaitUntil([&] { return Lines(access) == 1 && Lines(pairs) == 1; }, 5s));
  EXPECT_NE(ReadFile(access).find("/second"), std::string::npos);
  EXPECT_NE(ReadFile(pairs).find("/second"), std::string::npos);
  EXPECT_EQ(Lines(dir.path() / "access.log.1"), 1u);  // the old files got nothing more
  EXPECT_EQ(Lines(pairs.string() + ".1"), 1u);
  struct stat info {};
  ASSERT_EQ(::stat(pairs.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST(GatewayOperationsTest, AccessLogLatencyOfARefusedRequestStartsAtItsFirstByte) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  const auto access = dir.path() / "access.log";
  config["access_log"] = "json";
  config["access_log_path"] = access.string();
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  // A header that takes 200 ms to arrive and is refused (obs-fold: 400) ...
  HttpConnection folded(gateway.port());
  ASSERT_TRUE(folded.Write("GET /folded HTTP/1.1\r\nHost: t\r\n"));
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(folded.Write("X-A: 1\r\n  continued\r\n\r\n"));
  auto refused = folded.Read("GET", 5s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  // ... and one that never ends (408 after client_header_timeout, 400 ms).
  HttpConnection slow(gateway.port());
  ASSERT_TRUE(slow.Write("GET /slow HTTP/1.1\r\nHost: t\r\n"));
  auto timed_out = slow.Read("GET", 5s);
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(timed_out->status, 408);
  ASSERT_TRUE(WaitUntil([&] { return Lines(access) == 2; }, 5s));
  std::istringstream in(ReadFile(access));
  std::map<int, int64_t> latency;
  for (std::string line; std::getline(in, line);) {
    auto entry = json::parse(line);
    latency[entry["status"].get<int>()] = entry["latency_us"].get<int64_t>();
  }
  // From the request's first byte, not from boot (hours), the previous request or the refusal
  // (about 0). The gateway takes the first byte's time when its read completes, which a loaded
  // machine delays after the client's write, so the bounds leave 50 ms under the client's waits
  // (a CI run measured 199,586 us for the 200 ms one).
  EXPECT_GE(latency[400], 150000);
  EXPECT_LT(latency[400], 2000000);
  EXPECT_GE(latency[408], 350000);
  EXPECT_LT(latency[408], 2000000);
}

TEST(GatewayOperationsTest, DescriptorLimitIsWarnedAtStartAndAcceptFailuresOncePerSecond) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  const int port = FreePort();
  const int admin = FreePort();
  config["listen"] = "127.0.0.1:" + std::to_string(port);
  config["admin_listen"] = "127.0.0.1:" + std::to_string(admin);
  auto path = dir.Write("gw.json", config.dump());
  // 48 descriptors, soft and hard: max_connections (10,000 by default) cannot be served.
  ChildProcess process("/bin/sh", {"-c", "ulimit -n 48 && exec \"$0\" \"$@\"",
                                   (BinDir() / "shadowgate").string(), "--config", path.string()});
  std::string why;
  ASSERT_TRUE(process.WaitReady(admin, "/healthz", 10s, &why)) << why;
  EXPECT_NE(process.Log().find("RLIMIT_NOFILE is 48 (hard limit 48), below the 10"),
            std::string::npos)
      << process.Log();
  // More connections than descriptors: accept fails (EMFILE) and is retried every 50 ms.
  std::vector<std::unique_ptr<HttpConnection>> clients;
  for (int i = 0; i < 80; ++i) clients.push_back(std::make_unique<HttpConnection>(port));
  ASSERT_TRUE(WaitUntil(
      [&] { return process.Log().find("accept: Too many open files") != std::string::npos; }, 5s));
  std::this_thread::sleep_for(2500ms);  // the promise is about time: warnings per second
  auto log = process.Log();
  size_t warnings = 0;
  for (size_t at = log.find("accept: "); at != std::string::npos;
       at = log.find("accept: ", at + 1)) {
    ++warnings;
  }
  EXPECT_GE(warnings, 2u) << log;
  EXPECT_LE(warnings, 4u) << log;  // 2.5 s: one a second (50 a second' worth of failures)
  EXPECT_NE(log.find("failures since the last such warning"), std::string::npos) << log;
  clients.clear();
}

}  // namespace
}  // namespace sg::testing
