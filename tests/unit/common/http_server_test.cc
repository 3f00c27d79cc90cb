#include "common/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <latch>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace sg::http {
namespace {

// A server on a free port with two I/O threads, stopped and joined on destruction.
class ServerFixture {
 public:
  ServerFixture(Handler handler, ServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(io_, options, std::move(handler));
    std::string error;
    started_ = server_->Start(&error);
    EXPECT_TRUE(started_) << error;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~ServerFixture() {
    server_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  int port() const { return server_->port(); }
  HttpServer& server() { return *server_; }

 private:
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
  bool started_ = false;
};

Handler Echo() {
  return [](Request&& request, Responder respond) {
    respond(MakeTextResponse(request, Status::ok,
                             std::string(request.method_string()) + " " +
                                 std::string(request.target()) + " " + request.body()));
  };
}

TEST(HttpServerTest, AnswersAndKeepsConnectionsAlive) {
  ServerFixture fx(Echo());
  auto response = testing::HttpGet(fx.port(), "/hello");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /hello ");
  EXPECT_EQ(response->Header("server"), "shadowgate");
  // Two pipelined requests on one connection: both answered, in order, then the close.
  std::string raw = testing::RawExchange(
      fx.port(),
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz");
  auto first = raw.find("GET /a ");
  auto second = raw.find("POST /b xyz");
  EXPECT_NE(first, std::string::npos) << raw;
  EXPECT_NE(second, std::string::npos) << raw;
  EXPECT_LT(first, second);
}

// Threads started by a handler. JoinAll() must run before the server's io_context is stopped:
// a thread still answering then would post to a destroyed executor.
class AnswerThreads {
 public:
  void Add(std::thread thread) {
    std::lock_guard lock(mutex_);
    threads_.push_back(std::move(thread));
  }
  void JoinAll() {
    std::lock_guard lock(mutex_);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

TEST(HttpServerTest, HandlerMayAnswerLaterFromAnotherThread) {
  AnswerThreads threads;  // outlives the server's handler, which adds to it
  ServerFixture fx([&threads](Request&& request, Responder respond) {
    // The answer is written only after the handler has returned.
    auto handler_returned = std::make_shared<std::latch>(1);
    threads.Add(std::thread([request = std::move(request), respond, handler_returned]() mutable {
      handler_returned->wait();
      respond(MakeJsonResponse(request, Status::accepted, {{"late", true}}));
      respond(MakeTextResponse(request, Status::ok, "ignored second answer"));
    }));
    handler_returned->count_down();
  });
  // Declared after `fx`, so destroyed (and joining) before it, whatever assertion returns.
  struct JoinOnExit {
    AnswerThreads& threads;
    ~JoinOnExit() { threads.JoinAll(); }
  } join{threads};
  auto response = testing::HttpGet(fx.port(), "/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 202);
  EXPECT_EQ(response->Header("content-type"), "application/json");
  EXPECT_EQ(nlohmann::json::parse(response->body)["late"], true);
}

TEST(HttpServerTest, DroppedResponderBecomes500AndThrowingHandlerToo) {
  ServerFixture fx([](Request&& request, Responder) {
    if (request.target() == "/throw") throw std::runtime_error("boom");
  });
  auto response = testing::HttpGet(fx.port(), "/drop");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  auto body = nlohmann::json::parse(response->body);
  EXPECT_EQ(body["code"], 500);
  EXPECT_EQ(body["type"], "InternalServerError");
  EXPECT_EQ(body["message"], "the request handler returned no response");
  response = testing::HttpGet(fx.port(), "/throw");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(nlohmann::json::parse(response->body)["message"], "boom");
}

TEST(HttpServerTest, LimitsGive413And431AndClose) {
  ServerOptions options;
  options.body_limit = 10;
  options.header_limit = 256;
  ServerFixture fx(Echo(), options);
  testing::HttpRequestSpec spec;
  spec.method = "POST";
  spec.body = std::string(11, 'x');
  auto response = testing::Http(fx.port(), spec);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(nlohmann::json::parse(response->body)["message"], "request body exceeds 10 bytes");
  EXPECT_EQ(response->Header("connection"), "close");

  spec = {};
  spec.headers = {{"X-Big", std::string(400, 'a')}};
  response = testing::Http(fx.port(), spec);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 431);
}

TEST(HttpServerTest, AmbiguousFramingIs400) {
  ServerFixture fx(Echo());
  std::string raw = testing::RawExchange(
      fx.port(),
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  EXPECT_EQ(raw.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << raw;
  raw = testing::RawExchange(fx.port(),
                             "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "zz\r\nabc\r\n0\r\n\r\n");
  EXPECT_EQ(raw.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << raw;
}

TEST(HttpServerTest, SlowClientGets408) {
  ServerOptions options;
  options.read_timeout = std::chrono::milliseconds(200);
  ServerFixture fx(Echo(), options);
  // The head arrives, the promised body never does.
  std::string raw = testing::RawExchange(
      fx.port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
      std::chrono::seconds(5));
  EXPECT_EQ(raw.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << raw;
}

TEST(HttpServerTest, ExpectContinueGets100ThenTheAnswer) {
  ServerFixture fx(Echo());
  std::string raw = testing::RawExchange(
      fx.port(),
      "PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
      "Connection: close\r\n\r\nok");
  EXPECT_EQ(raw.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u) << raw;
  EXPECT_NE(raw.find("PUT /up ok"), std::string::npos);
}

// A client's keep-alive connection, left open after its request was answered.
class IdleClient {
 public:
  explicit IdleClient(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~IdleClient() { close(fd_); }
  // Sends a keep-alive GET and reads its whole response (Content-Length framed).
  bool Exchange() {
    const std::string request = "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n";
    if (!connected_ || send(fd_, request.data(), request.size(), MSG_NOSIGNAL) < 0) return false;
    std::string got;
    char chunk[4096];
    while (got.find("GET /idle ") == std::string::npos) {
      if (!Readable(std::chrono::seconds(10))) return false;
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      got.append(chunk, static_cast<size_t>(n));
    }
    std::transform(got.begin(), got.end(), got.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    return got.rfind("http/1.1 200 ok\r\n", 0) == 0 &&
           got.find("connection: close") == std::string::npos;
  }
  // True when the server closes the connection (end of stream) within `timeout`.
  bool ClosedByServerWithin(std::chrono::milliseconds timeout) {
    char byte;
    return Readable(timeout) && recv(fd_, &byte, 1, 0) == 0;
  }

 private:
  bool Readable(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }
  int fd_;
  bool connected_ = false;
};

TEST(HttpServerTest, StopClosesIdleConnectionsAndRefusesNewOnes) {
  // The idle timeout is far longer than the test waits, so only Stop() can close the idle
  // keep-alive connection (a Stop that leaves idle connections open fails here).
  ServerOptions options;
  options.idle_timeout = std::chrono::minutes(10);
  ServerFixture fx(Echo(), options);
  const int port = fx.port();
  IdleClient idle(port);
  ASSERT_TRUE(idle.Exchange());
  EXPECT_EQ(fx.server().ActiveConnectionsForTest(), 1u);
  fx.server().Stop();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  EXPECT_TRUE(idle.ClosedByServerWithin(std::chrono::seconds(10)));
  // The acceptor closes on its executor, soon after Stop(): wait for the port to refuse.
  while (testing::WaitForPort(port, std::chrono::milliseconds(10)) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(testing::WaitForPort(port, std::chrono::milliseconds(10)));
  while (fx.server().ActiveConnectionsForTest() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(fx.server().ActiveConnectionsForTest(), 0u);
}

TEST(HttpServerTest, BindFailureIsReported) {
  ServerFixture first(Echo());
  boost::asio::io_context io;
  ServerOptions options;
  options.port = static_cast<uint16_t>(first.port());
  HttpServer second(io, options, Echo());
  std::string error;
  EXPECT_FALSE(second.Start(&error));
  EXPECT_EQ(error, "bind 127.0.0.1:" + std::to_string(first.port()) + ": Address already in use");
}

TEST(HttpServerTest, BodiesBeingReceivedAreBoundedByTheBudget) {
  // Two stalled 2 MiB uploads hold a 4 MiB budget; a third is refused at once (503, closed)
  // instead of growing memory; once they are handed to the handler their room is free again.
  ServerOptions options;
  options.body_limit = 8 << 20;
  options.max_buffered_body_bytes = 4 << 20;
  ServerFixture fx(
      [](Request&& request, Responder respond) {
        respond(MakeTextResponse(request, Status::ok, std::to_string(request.body().size())));
      },
      options);
  const size_t size = 2 << 20;
  const std::string head =
      "POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(size) + "\r\n\r\n";
  const std::string half(size / 2, 'x');
  testing::HttpConnection first(fx.port());
  testing::HttpConnection second(fx.port());
  ASSERT_TRUE(first.Write(head + half));
  ASSERT_TRUE(second.Write(head + half));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fx.server().BufferedBodyBytesForTest() < (4u << 20) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(fx.server().BufferedBodyBytesForTest(), 4u << 20);

  std::string raw = testing::RawExchange(fx.port(), head, std::chrono::seconds(5));
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 503")) << raw.substr(0, 200);
  EXPECT_NE(raw.find("Retry-After: 1"), std::string::npos);
  EXPECT_NE(raw.find("Connection: close"), std::string::npos);
  // A chunked body is counted as it grows: no room is left for one either.
  std::string chunked = "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  chunked += "100000\r\n" + std::string(1 << 20, 'c') + "\r\n";
  raw = testing::RawExchange(fx.port(), chunked, std::chrono::seconds(5));
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 503")) << raw.substr(0, 200);

  for (auto* client : {&first, &second}) {
    ASSERT_TRUE(client->Write(half));
    auto response = client->Read("POST", std::chrono::seconds(10));
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, std::to_string(size));
  }
  EXPECT_EQ(fx.server().BufferedBodyBytesForTest(), 0u);
  testing::HttpRequestSpec spec;
  spec.method = "POST";
  spec.body = std::string(3 << 20, 'y');
  auto response = testing::Http(fx.port(), spec);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, std::to_string(3 << 20));
}

}  // namespace
}  // namespace sg::http
