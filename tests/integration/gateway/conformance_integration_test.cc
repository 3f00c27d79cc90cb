// The proxy's transparency and framing, with the real shadowgate binary between a client and real
// upstreams, on a mirrored and an unmirrored route: small request bodies are not held back by
// Nagle's algorithm, chunked trailers never become headers, Host and framing are checked as nginx
// 1.22 checks them (the same raw request is sent to both), and a client cannot mark its request
// as a shadow copy.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "tests/integration/gateway/gateway_process.h"
#include "tests/integration/gateway/test_upstream.h"
#include "tests/support/test_support.h"

namespace sg::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Mode = TestUpstream::Mode;

// Routes "m" (path /m/, mirrored to "shadow" with `mirror`'s settings) and "u" (every other
// path, no mirror), both to the upstream "primary".
json TwoRouteConfig(int primary_port, int shadow_port, json mirror = json::object()) {
  auto config = MakeConfig(primary_port, shadow_port, std::move(mirror));
  auto mirrored = config["routes"][0];
  mirrored["name"] = "m";
  mirrored["path_prefix"] = "/m/";
  config["routes"] = {mirrored, {{"name", "u"}, {"upstream", "primary"}}};
  return config;
}

// The status code of a raw response whose status line is HTTP/1.1 (0 for anything else).
int StatusOf(const std::string& raw) {
  if (raw.size() < 12 || !raw.starts_with("HTTP/1.1 ")) return 0;
  return std::stoi(raw.substr(9, 3));
}

// ---------------------------------------------------------------------------------------------
// Nagle: a request body written apart from its head, on a socket without TCP_NODELAY, waits
// until the upstream acknowledges the head, and the upstream delays that ACK (40 ms on Linux)
// because it waits for the body: 44 ms per request.

TEST(GatewayConformanceTest, SmallBodiesAreNotHeldBackByNagle) {
  // This proves that no route adds the 44 ms stall to a small POST on a reused client and upstream
  // connection: not an unmirrored route, a mirror at 0% (configured or set at runtime), a body
  // over the mirror's max_body_bytes (all streamed), nor a mirrored one (buffered). Twenty
  // requests in a row take a few milliseconds; with the stall they take 800 ms or more, so the
  // bound (20 ms a request) holds on a loaded machine and fails with the stall.
  TempDir dir;
  TestUpstream primary({Mode::kFixed, "ok\n"});
  TestUpstream shadow({Mode::kFixed, "shadow\n"});
  auto config = MakeConfig(primary.port(), shadow.port());
  auto route = [](const std::string& name, json mirrors) {
    return json{{"name", name},
                {"path_prefix", "/" + name + "/"},
                {"upstream", "primary"},
                {"mirrors", std::move(mirrors)}};
  };
  auto mirror = [](json settings) {
    json m = {{"name", "cpu"}, {"upstream", "shadow"}, {"timeout", "2s"}};
    m.update(settings);
    return json::array({m});
  };
  config["routes"] = {route("plain", json::array()), route("zero", mirror({{"percent", 0}})),
                      route("runtime", mirror(json::object())),
                      route("over", mirror({{"max_body_bytes", 50}})),
                      route("mirrored", mirror(json::object()))};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  HttpRequestSpec put;
  put.method = "PUT";
  put.target = "/admin/routes/runtime/mirrors/cpu";
  put.body = R"({"percent": 0})";
  auto changed = Http(gateway.admin_port(), put);
  ASSERT_TRUE(changed);
  ASSERT_EQ(changed->status, 200) << changed->body;

  const int kRequests = 20;
  for (std::string name : {"plain", "zero", "runtime", "over", "mirrored"}) {
    for (size_t size : {size_t{100}, size_t{2048}}) {
      size_t before = primary.received_count();
      HttpConnection connection(gateway.port());
      ASSERT_TRUE(connection.connected());
      HttpRequestSpec spec;
      spec.method = "POST";
      spec.target = "/" + name + "/predict";
      spec.body = std::string(size, 'x');
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kRequests; ++i) {
        std::string error;
        auto response = connection.Send(spec, &error);
        ASSERT_TRUE(response) << name << " " << size << ": " << error;
        ASSERT_EQ(response->status, 200) << name << " " << size << ": " << response->body;
      }
      auto elapsed = std::chrono::steady_clock::now() - start;
      EXPECT_LT(elapsed, kRequests * 20ms)
          << name << ", " << size
          << " B: " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
          << " ms for " << kRequests << " requests";
      auto received = primary.received();
      ASSERT_EQ(received.size(), before + kRequests);
      EXPECT_EQ(received.back().body, spec.body);
    }
  }
  // A streamed body that arrives in two pieces is written upstream in two: the second one must not
  // wait for the ACK of the first either (TCP_NODELAY, not only one write for what is in memory).
  HttpConnection connection(gateway.port());
  ASSERT_TRUE(connection.connected());
  const std::string half(1000, 'h');
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(connection.Write(
        "POST /plain/split HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n" + half));
    std::this_thread::sleep_for(2ms);  // the first piece is written upstream on its own
    ASSERT_TRUE(connection.Write(half));
    std::string error;
    auto response = connection.Read("POST", 5s, &error);
    ASSERT_TRUE(response) << error;
    ASSERT_EQ(response->status, 200);
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, kRequests * 20ms)
      << "a body in two pieces: "
      << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms for "
      << kRequests << " requests";
  EXPECT_EQ(primary.received().back().body, half + half);
  // The streamed routes' requests were not mirrored; the mirrored route's were.
  EXPECT_TRUE(WaitUntil([&] { return shadow.received_count() == 2 * kRequests; }, 5s))
      << shadow.received_count();
}

TEST(GatewayConformanceTest, StaleUpstreamConnectionIsRetriedWithTheBodyInMemory) {
  // The upstream closes every connection after its response, so each request after the first
  // finds a pooled connection that is closed: it is retried once on a fresh one, which needs
  // the body sent so far: buffered (a mirrored route) or read with the head (a small streamed
  // body).
  TempDir dir;
  TestUpstream primary({Mode::kCloseAfter, "ok\n"});
  TestUpstream shadow({Mode::kFixed});
  auto config = TwoRouteConfig(primary.port(), shadow.port());
  config["io_threads"] = 1;  // one shard: every request finds the connection pooled before it
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  int sent = 0;
  for (std::string target : {"/u/streamed", "/m/buffered"}) {
    for (std::string method : {"GET", "POST"}) {
      // The upstream has closed every connection the gateway pooled.
      ASSERT_TRUE(
          WaitUntil([&] { return primary.closed_connections() == primary.connections(); }, 2s));
      HttpRequestSpec spec;
      spec.method = method;
      spec.target = target;
      if (method == "POST") spec.body = std::string(2000, 'p');
      auto response = Http(gateway.port(), spec);
      ASSERT_TRUE(response);
      EXPECT_EQ(response->status, 200) << method << " " << target << ": " << response->body;
      ++sent;
      EXPECT_EQ(primary.received().back().body, spec.body);
    }
  }
  EXPECT_EQ(primary.received_count(), static_cast<size_t>(sent));
  // Every request but the first went to a stale connection first.
  EXPECT_EQ(gateway.Metric(
                "sg_gateway_pool_reused_exchanges_total{upstream=\"primary\",pool=\"primary\"}"),
            sent - 1);
}

// ---------------------------------------------------------------------------------------------
// Trailers (RFC 9110 section 6.5.1: never merged into the header section).

TEST(GatewayConformanceTest, ChunkedTrailersAreDroppedOnEveryPath) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  GatewayProcess gateway(TwoRouteConfig(primary.port(), shadow.port(), {{"max_body_bytes", 1000}}),
                         dir);
  ASSERT_TRUE(gateway.ready());
  const std::string trailers =
      "Host: evil.test\r\nAuthorization: Bearer from-trailer\r\nX-Shadow-Request: 1\r\n"
      "X-Trailer: t\r\n\r\n";
  auto send = [&](const std::string& target, const std::string& body) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", body.size());
    return RawExchange(gateway.port(), "POST " + target +
                                           " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                           "Transfer-Encoding: chunked\r\n\r\n" +
                                           size + body + "\r\n0\r\n" + trailers);
  };
  auto expect_clean = [](const TestUpstream::Received& got, const std::string& path) {
    EXPECT_EQ(got.headers.at("host"), "t") << path;
    EXPECT_EQ(got.headers.count("authorization"), 0u) << path;
    EXPECT_EQ(got.headers.count("x-trailer"), 0u) << path;
  };
  // Mirrored: the body is collected, re-framed with Content-Length, and copied to the shadow.
  ASSERT_EQ(StatusOf(send("/m/small", "hello")), 200);
  ASSERT_EQ(primary.received_count(), 1u);
  expect_clean(primary.received().back(), "mirrored");
  EXPECT_EQ(primary.received().back().body, "hello");
  EXPECT_EQ(primary.received().back().headers.count("x-shadow-request"), 0u);
  ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() == 1; }, 3s));
  expect_clean(shadow.received().back(), "shadow copy");
  EXPECT_EQ(shadow.received().back().headers.at("x-shadow-request"), "1");
  // Mirrored route, but the body grows past max_body_bytes in the piece that ends it: streamed,
  // what was collected first.
  const std::string large(1500, 'L');
  ASSERT_EQ(StatusOf(send("/m/large", large)), 200);
  ASSERT_EQ(primary.received_count(), 2u);
  expect_clean(primary.received().back(), "mirrored, over the limit");
  EXPECT_EQ(primary.received().back().body, large);
  // Unmirrored: streamed with its chunked framing.
  ASSERT_EQ(StatusOf(send("/u/streamed", "hello")), 200);
  ASSERT_EQ(primary.received_count(), 3u);
  expect_clean(primary.received().back(), "unmirrored");
  EXPECT_EQ(primary.received().back().body, "hello");
  EXPECT_EQ(shadow.received_count(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Host and framing, against nginx 1.22 as the reference.

struct Answer {
  int status_class = 0;    // 2 for 2xx, ...; 0: no HTTP/1.1 response
  bool forwarded = false;  // the primary upstream received the request
  bool operator==(const Answer& other) const = default;
};
void PrintTo(const Answer& answer, std::ostream* out) {
  *out << "{" << answer.status_class << "xx, " << (answer.forwarded ? "forwarded" : "not forwarded")
       << "}";
}

// Sends `request` to the proxy on `port` in front of `upstream`; `raw` gets the response.
Answer Ask(int port, const TestUpstream& upstream, const std::string& request, std::string* raw) {
  size_t before = upstream.received_count();
  *raw = RawExchange(port, request, 3s);
  // A forwarded request was recorded before the upstream answered it.
  return {StatusOf(*raw) / 100, upstream.received_count() > before};
}

TEST(GatewayConformanceTest, HostAndFramingAsNginx) {
  TempDir dir;
  TestUpstream nginx_primary({Mode::kFixed});
  TestUpstream nginx_shadow({Mode::kFixed});
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  // nginx as a plain reverse proxy, with `mirror` on /m/ (as the gateway bench runs it).
  int nginx_port = FreePort();
  auto to = [](const TestUpstream& upstream) {
    return "http://127.0.0.1:" + std::to_string(upstream.port());
  };
  auto conf = WriteNginxConfig(
      dir, {{nginx_port, "location /m/ { mirror /_shadow; proxy_pass " + to(nginx_primary) +
                             "; }\n    location = /_shadow { internal; proxy_pass " +
                             to(nginx_shadow) + "$request_uri; }\n    location / { proxy_pass " +
                             to(nginx_primary) + "; }"}});
  ChildProcess nginx("/usr/sbin/nginx",
                     {"-p", dir.path().string(), "-c", conf.string(), "-e", "stderr"});
  std::string why;
  ASSERT_TRUE(nginx.WaitReady(nginx_port, "", 10s, &why)) << why;
  GatewayProcess gateway(TwoRouteConfig(primary.port(), shadow.port()), dir);
  ASSERT_TRUE(gateway.ready());

  struct Case {
    std::string name;
    std::string request;  // "PATH" stands for the target
    Answer expected;
  };
  const std::vector<Case> cases = {
      {"HTTP/1.1 with Host",
       "GET PATH HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
       {2, true}},
      {"HTTP/1.1 without Host", "GET PATH HTTP/1.1\r\nConnection: close\r\n\r\n", {4, false}},
      {"empty Host", "GET PATH HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", {4, false}},
      {"Host of spaces", "GET PATH HTTP/1.1\r\nHost:   \r\nConnection: close\r\n\r\n", {4, false}},
      {"Connection naming Host",
       "GET PATH HTTP/1.1\r\nHost: t\r\nConnection: host, close\r\n\r\n",
       {2, true}},
      {"two Host fields",
       "GET PATH HTTP/1.1\r\nHost: t\r\nHost: u\r\nConnection: close\r\n\r\n",
       {4, false}},
      {"two equal Host fields",
       "GET PATH HTTP/1.1\r\nHost: t\r\nHost: t\r\nConnection: close\r\n\r\n",
       {4, false}},
      {"obs-fold (SP)",
       "GET PATH HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n two\r\nConnection: close\r\n\r\n",
       {4, false}},
      {"obs-fold (HTAB)",
       "GET PATH HTTP/1.1\r\nHost: t\r\nX-Folded: one\r\n\ttwo\r\nConnection: close\r\n\r\n",
       {4, false}},
      {"obs-fold of Host",
       "GET PATH HTTP/1.1\r\nHost: t\r\n u\r\nConnection: close\r\n\r\n",
       {4, false}},
      {"HTTP/1.0 without Host", "GET PATH HTTP/1.0\r\n\r\n", {2, true}},
      {"HTTP/1.0 with Host", "GET PATH HTTP/1.0\r\nHost: t\r\n\r\n", {2, true}},
      {"HTTP/1.0 POST with Content-Length",
       "POST PATH HTTP/1.0\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
       {2, true}},
      {"HTTP/1.0 with Transfer-Encoding: chunked",
       "POST PATH HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
       {4, false}},
  };
  for (std::string path : {"/m/x", "/u/x"}) {
    for (const auto& c : cases) {
      std::string request = c.request;
      request.replace(request.find("PATH"), 4, path);
      std::string nginx_raw, raw;
      auto reference = Ask(nginx_port, nginx_primary, request, &nginx_raw);
      auto answer = Ask(gateway.port(), primary, request, &raw);
      EXPECT_EQ(reference, c.expected) << c.name << " on " << path << " (nginx): " << nginx_raw;
      EXPECT_EQ(answer, reference) << c.name << " on " << path << ": " << raw;
      if (answer.forwarded && request.find("\r\nHost: t\r\n") != std::string::npos) {
        // The client's Host reaches the primary, whatever Connection names.
        auto got = primary.received().back();
        EXPECT_EQ(got.headers["host"], "t") << c.name << " on " << path;
      }
    }
    // HTTP/1.0 keep-alive: both answers HTTP/1.1, the first one saying keep-alive.
    std::string pipelined = "GET " + path +
                            " HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n" + "GET " +
                            path + " HTTP/1.0\r\nHost: t\r\n\r\n";
    for (int port : {nginx_port, gateway.port()}) {
      auto raw = RawExchange(port, pipelined, 3s);
      auto second = raw.find("HTTP/1.1 200", 1);
      ASSERT_TRUE(raw.starts_with("HTTP/1.1 200")) << raw;
      ASSERT_NE(second, std::string::npos) << raw;
      auto first_head = raw.substr(0, raw.find("\r\n\r\n"));
      EXPECT_NE(ToLowerAscii(first_head).find("connection: keep-alive"), std::string::npos)
          << (port == nginx_port ? "nginx: " : "shadowgate: ") << first_head;
    }
  }
  // Expect: 100-continue is answered for HTTP/1.1 only; an HTTP/1.0 client cannot know 1xx
  // responses, and RFC 9110 section 10.1.1 says to ignore the expectation (as nginx does). The
  // head goes alone: the body would follow the 100.
  for (std::string version : {"1.0", "1.1"}) {
    std::string head = "POST /u/x HTTP/" + version +
                       "\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    for (int port : {nginx_port, gateway.port()}) {
      auto raw = RawExchange(port, head, 1s);
      EXPECT_EQ(raw.find("100 Continue") != std::string::npos, version == "1.1")
          << "HTTP/" << version << (port == nginx_port ? ", nginx: " : ", shadowgate: ") << raw;
    }
  }
  // The gateway's refusals are counted.
  EXPECT_GT(gateway.Metric("sg_gateway_client_errors_total{reason=\"bad_host\"}"), 0);
}

// ---------------------------------------------------------------------------------------------
// shadow_header: only the gateway marks a request as a shadow copy.

TEST(GatewayConformanceTest, ClientCannotMarkPrimaryTrafficAsShadow) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  TestUpstream shadow({Mode::kFixed});
  GatewayProcess gateway(TwoRouteConfig(primary.port(), shadow.port(), {{"max_body_bytes", 1000}}),
                         dir);
  ASSERT_TRUE(gateway.ready());
  struct Case {
    std::string name;
    std::string target;
    std::string body;
    bool mirrored;
  };
  const std::vector<Case> cases = {
      {"unmirrored", "/u/x", "abc", false},
      {"mirrored", "/m/x", "abc", true},
      {"mirrored, over max_body_bytes", "/m/x", std::string(2000, 'b'), false}};
  for (const auto& c : cases) {
    for (std::string marker : {"X-Shadow-Request: 1", "x-shadow-request: yes"}) {
      size_t primaries = primary.received_count();
      size_t shadows = shadow.received_count();
      auto raw = RawExchange(gateway.port(),
                             "POST " + c.target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" +
                                 marker + "\r\nContent-Length: " + std::to_string(c.body.size()) +
                                 "\r\n\r\n" + c.body);
      ASSERT_EQ(StatusOf(raw), 200) << raw;
      ASSERT_EQ(primary.received_count(), primaries + 1);
      EXPECT_EQ(primary.received().back().headers.count("x-shadow-request"), 0u)
          << c.name << ", " << marker;
      if (c.mirrored) {
        ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() == shadows + 1; }, 3s));
        // Exactly one marker, the gateway's (repeated headers would read "1, yes").
        EXPECT_EQ(shadow.received().back().headers.at("x-shadow-request"), "1") << marker;
      }
    }
  }
  EXPECT_EQ(shadow.received_count(), 2u);

  // With another shadow_header, that one is stripped from client requests and set on copies;
  // X-Shadow-Request is then an ordinary header.
  auto config = TwoRouteConfig(primary.port(), shadow.port());
  config["shadow_header"] = "X-Canary";
  GatewayProcess canary(config, dir);
  ASSERT_TRUE(canary.ready());
  auto raw = RawExchange(canary.port(),
                         "POST /m/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Canary: 1\r\n"
                         "X-Shadow-Request: 1\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(StatusOf(raw), 200) << raw;
  EXPECT_EQ(primary.received().back().headers.count("x-canary"), 0u);
  EXPECT_EQ(primary.received().back().headers.at("x-shadow-request"), "1");
  ASSERT_TRUE(WaitUntil([&] { return shadow.received_count() == 3; }, 3s));
  EXPECT_EQ(shadow.received().back().headers.at("x-canary"), "1");
}

}  // namespace
}  // namespace sg::testing
