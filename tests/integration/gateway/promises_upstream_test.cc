// Upstream-side behaviour docs/gateway.md promises that no other test exercised (issue 23's
// list): idle_timeout, connect_timeout, total_timeout, max_response_bytes, 502 on a malformed
// upstream response, bodies delimited by the upstream's close, HTTP/1.0 clients, a primary
// failing mid-stream in the pair record, and write_timeout.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <variant>
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
using Clock = std::chrono::steady_clock;

sockaddr_in Loopback(int port) {
  return sockaddr_in{AF_INET, htons(static_cast<uint16_t>(port)), {htonl(INADDR_LOOPBACK)}, {}};
}

int ListenOn127(int backlog, int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(fd, backlog) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len)) {
    ADD_FAILURE() << "cannot listen on 127.0.0.1";
    if (fd >= 0) ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// An upstream that answers every connection's first request head with the same raw bytes, then
// closes the connection (`close_after`) or leaves it open until the upstream is destroyed. One
// connection at a time; for answers TestUpstream cannot give (malformed, close-delimited, a body
// that stops half-way).
class RawUpstream {
 public:
  RawUpstream(std::string answer, bool close_after)
      : answer_(std::move(answer)), close_after_(close_after) {
    listen_fd_ = ListenOn127(16, &port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawUpstream() {
    stopping_ = true;
    thread_.join();
    for (int fd : open_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  int port() const { return port_; }
  int served() const { return served_.load(); }

 private:
  void Serve() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string head;
      char buf[4096];
      while (!stopping_ && head.find("\r\n\r\n") == std::string::npos) {
        pollfd c{fd, POLLIN, 0};
        if (::poll(&c, 1, 20) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      for (size_t sent = 0; sent < answer_.size();) {
        ssize_t n = ::send(fd, answer_.data() + sent, answer_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
      ++served_;
      if (close_after_) {
        ::close(fd);
      } else {
        open_.push_back(fd);
      }
    }
  }

  std::string answer_;
  bool close_after_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> served_{0};
  std::vector<int> open_;  // the serving thread's, then the destructor's
  std::thread thread_;
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

std::string HeadOf(const std::string& raw) {
  return raw.substr(0, raw.find("\r\n\r\n") + 2);
}
std::string BodyOf(const std::string& raw) {
  const size_t end = raw.find("\r\n\r\n");
  return end == std::string::npos ? "" : raw.substr(end + 4);
}

// The one pair record among the log's entries; nullptr (and a failure) otherwise.
const PairRecord* OnlyPair(const std::vector<PairLogEntry>& entries) {
  const PairRecord* pair = nullptr;
  int n = 0;
  for (const auto& e : entries) {
    if (const auto* p = std::get_if<PairRecord>(&e)) {
      pair = p;
      ++n;
    }
  }
  EXPECT_EQ(n, 1);
  return n == 1 ? pair : nullptr;
}

TEST(GatewayUpstreamPromisesTest, AMalformedUpstreamResponseIs502) {
  TempDir dir;
  for (const std::string answer :
       {"garbage, not HTTP\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: "
        "6\r\n\r\nhello!"}) {
    RawUpstream upstream(answer, /*close_after=*/true);
    GatewayProcess gateway(MakeConfig(upstream.port()), dir);
    ASSERT_TRUE(gateway.ready());
    auto response = HttpGet(gateway.port(), "/x");
    ASSERT_TRUE(response) << answer;
    EXPECT_EQ(response->status, 502) << answer;
    EXPECT_EQ(response->Header("content-type"), "application/json") << answer;
    EXPECT_TRUE(json::accept(response->body)) << response->body;
  }
}

TEST(GatewayUpstreamPromisesTest, BodiesDelimitedByTheUpstreamsCloseReachEveryClient) {
  TempDir dir;
  // Small: it fits the 64 KiB buffer and is sent whole, with Content-Length.
  {
    RawUpstream upstream("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
                         /*close_after=*/true);
    GatewayProcess gateway(MakeConfig(upstream.port()), dir);
    ASSERT_TRUE(gateway.ready());
    auto response = HttpGet(gateway.port(), "/small");
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "until close");
    EXPECT_EQ(response->Header("content-length"), "11");
  }
  // Large (1 MiB): relayed as it arrives, chunked to HTTP/1.1 and close-delimited to HTTP/1.0.
  const std::string body = Pattern(1 << 20);
  RawUpstream upstream("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body,
                       /*close_after=*/true);
  auto config = MakeConfig(upstream.port());
  config["upstreams"]["primary"]["total_timeout"] = "20s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  HttpRequestSpec spec;
  spec.target = "/large";
  spec.timeout = 20s;
  auto v11 = Http(gateway.port(), spec);
  ASSERT_TRUE(v11);
  EXPECT_EQ(v11->status, 200);
  EXPECT_EQ(v11->Header("transfer-encoding"), "chunked");
  EXPECT_TRUE(v11->body == body) << v11->body.size() << " bytes";
  const std::string raw =
      RawExchange(gateway.port(), "GET /large HTTP/1.0\r\nHost: t\r\n\r\n", 20s);
  const std::string head = HeadOf(raw);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;
  EXPECT_EQ(head.find("chunked"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  EXPECT_TRUE(BodyOf(raw) == body) << BodyOf(raw).size() << " bytes";
}

TEST(GatewayUpstreamPromisesTest, HttpOneZeroClientsGetOneOneAndKeepAliveOnlyWhenAsked) {
  TempDir dir;
  TestUpstream primary({Mode::kChunked, "chunked from upstream\n"});
  GatewayProcess gateway(MakeConfig(primary.port()), dir);
  ASSERT_TRUE(gateway.ready());
  // Without keep-alive: an HTTP/1.1 status line, never chunked, the connection closed after.
  const std::string raw = RawExchange(gateway.port(), "GET /a HTTP/1.0\r\nHost: t\r\n\r\n", 5s);
  const std::string head = HeadOf(raw);
  EXPECT_TRUE(head.starts_with("HTTP/1.1 200")) << head;
  EXPECT_EQ(head.find("chunked"), std::string::npos) << head;
  EXPECT_EQ(BodyOf(raw), "chunked from upstream\n");
  // With keep-alive: "Connection: keep-alive" and a second request on the same connection.
  HttpConnection connection(gateway.port());
  ASSERT_TRUE(connection.connected());
  for (const char* target : {"/b", "/c"}) {
    ASSERT_TRUE(connection.Write(std::string("GET ") + target +
                                 " HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"));
    std::string error;
    auto response = connection.Read("GET", 5s, &error);
    ASSERT_TRUE(response) << target << ": " << error;
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("connection"), "keep-alive");
    EXPECT_EQ(response->body, "chunked from upstream\n");
  }
  EXPECT_EQ(primary.received_count(), 3u);
}

// A GET with a client timeout of `timeout`, and how long its answer took.
std::pair<std::optional<HttpResponse>, Clock::duration> TimedGet(
    int port, const std::string& target, std::chrono::milliseconds timeout) {
  HttpRequestSpec spec;
  spec.target = target;
  spec.timeout = timeout;
  const auto start = Clock::now();
  auto response = Http(port, spec);
  return {std::move(response), Clock::now() - start};
}

TEST(GatewayUpstreamPromisesTest, TotalTimeoutBoundsAResponseWhoseBodyStalls) {
  // The head arrives at once (header_timeout is met), half the body, then nothing.
  TempDir dir;
  RawUpstream upstream("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234",
                       /*close_after=*/false);
  auto config = MakeConfig(upstream.port());
  config["upstreams"]["primary"]["header_timeout"] = "30s";
  config["upstreams"]["primary"]["total_timeout"] = "1s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  const auto [response, took] = TimedGet(gateway.port(), "/stall", 40s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 504);
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 15s);  // far below header_timeout's 30 s
}

TEST(GatewayUpstreamPromisesTest, ConnectTimeoutEndsAConnectNobodyAnswers) {
  // A listener whose accept queue is full (backlog 0, one connection queued and never accepted):
  // the kernel drops further SYNs, so a connect neither succeeds nor is refused.
  int port = 0;
  const int listener = ListenOn127(0, &port);
  ASSERT_GE(listener, 0);
  std::vector<int> fillers;
  bool full = false;
  for (int i = 0; i < 8 && !full; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const sockaddr_in addr = Loopback(port);
    ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
    pollfd p{fd, POLLOUT, 0};
    full = ::poll(&p, 1, 300) == 0;  // not connected within 300 ms: the SYN was dropped
  }
  ASSERT_TRUE(full) << "the accept queue never filled";
  TempDir dir;
  auto config = MakeConfig(port);
  config["upstreams"]["primary"]["connect_timeout"] = "300ms";
  config["upstreams"]["primary"]["total_timeout"] = "20s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  const auto [response, took] = TimedGet(gateway.port(), "/x", 30s);
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 502);
  EXPECT_NE(response->body.find("timeout"), std::string::npos) << response->body;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 10s);  // far below total_timeout's 20 s
}

TEST(GatewayUpstreamPromisesTest, IdlePooledConnectionsAreClosedAfterIdleTimeout) {
  TempDir dir;
  TestUpstream primary({Mode::kFixed});
  auto config = MakeConfig(primary.port());
  config["upstreams"]["primary"]["idle_timeout"] = "1s";
  // Idle connections are swept every counters_interval (and checked when one is taken).
  config["capture"]["pair_log"] = {{"counters_interval", "100ms"}};
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  ASSERT_EQ(HttpGet(gateway.port(), "/x")->status, 200);
  const auto idle_from = Clock::now();
  ASSERT_EQ(primary.connections(), 1);
  EXPECT_TRUE(WaitUntil([&] { return primary.closed_connections() == 1; }, 10s));
  const auto idle = Clock::now() - idle_from;
  EXPECT_GE(idle, 800ms);
  EXPECT_LT(idle, 8s);
  // The next request opens a new connection.
  ASSERT_EQ(HttpGet(gateway.port(), "/y")->status, 200);
  EXPECT_EQ(primary.connections(), 2);
}

TEST(GatewayUpstreamPromisesTest, MaxResponseBytesBoundsAShadowsResponseNotThePrimarys) {
  TempDir dir;
  const std::string big = Pattern(5000);
  TestUpstream primary({Mode::kFixed, big});
  TestUpstream shadow({Mode::kFixed, big});
  auto config = MakeConfig(primary.port(), shadow.port());
  config["upstreams"]["primary"]["max_response_bytes"] = 1000;
  config["upstreams"]["shadow"]["max_response_bytes"] = 1000;
  config["capture"]["max_body_bytes"] = 8192;
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  auto response = HttpGet(gateway.port(), "/x");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);  // the primary's response is relayed, not buffered
  EXPECT_TRUE(response->body == big) << response->body.size() << " bytes";
  auto pairs = gateway.StopAndReadPairs();
  const PairRecord* pair = OnlyPair(pairs);
  ASSERT_NE(pair, nullptr);
  EXPECT_EQ(pair->primary.outcome, "ok");
  EXPECT_EQ(pair->shadow.outcome, "shadow_error");
  EXPECT_NE(pair->shadow.error.find("limit"), std::string::npos) << pair->shadow.error;
}

TEST(GatewayUpstreamPromisesTest, APrimaryFailingMidStreamIsAnErrorInThePairRecord) {
  TempDir dir;
  TestUpstream primary({Mode::kResetMidBody, Pattern(4 << 20)});
  TestUpstream shadow({Mode::kFixed});
  auto config = MakeConfig(primary.port(), shadow.port());
  config["upstreams"]["primary"]["total_timeout"] = "20s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  const std::string raw = RawExchange(gateway.port(), "GET /x HTTP/1.1\r\nHost: t\r\n\r\n", 20s);
  ASSERT_TRUE(raw.starts_with("HTTP/1.1 200")) << raw.substr(0, 200);
  EXPECT_LT(BodyOf(raw).size(), size_t{4 << 20});  // cut short, the connection closed
  auto pairs = gateway.StopAndReadPairs();
  const PairRecord* pair = OnlyPair(pairs);
  ASSERT_NE(pair, nullptr);
  EXPECT_EQ(pair->primary.outcome, "error");
  EXPECT_NE(pair->primary.error.find("mid-response"), std::string::npos) << pair->primary.error;
  EXPECT_EQ(pair->shadow.outcome, "ok");
}

TEST(GatewayUpstreamPromisesTest, WriteTimeoutClosesAClientThatStopsReading) {
  // 32 MiB the client never reads: once the socket buffers are full the gateway's write waits,
  // and after write_timeout it gives up, closing both connections.
  TempDir dir;
  const size_t size = size_t{32} << 20;
  TestUpstream primary({Mode::kFixed, std::string(size, 'w')});
  auto config = MakeConfig(primary.port());
  config["write_timeout"] = "500ms";
  config["upstreams"]["primary"]["total_timeout"] = "60s";
  GatewayProcess gateway(config, dir);
  ASSERT_TRUE(gateway.ready());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const sockaddr_in addr = Loopback(gateway.port());
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // The gateway abandons the exchange: the upstream sees its connection closed.
  EXPECT_TRUE(WaitUntil([&] { return primary.closed_connections() == 1; }, 20s));
  // What the client can still read ends well before the whole body.
  size_t received = 0;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    received += static_cast<size_t>(n);
  }
  ::close(fd);
  EXPECT_LT(received, size);
}

}  // namespace
}  // namespace sg::testing
