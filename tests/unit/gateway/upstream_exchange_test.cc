// The upstream exchange driven without sockets: connections are beast::test::stream pairs handed
// out by a fake UpstreamConnections; the test plays the upstream on the other end.
#include "gateway/upstream_exchange.h"

#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/beast/_experimental/test/stream.hpp>

namespace sg::gateway {
namespace {

using TestStream = beast::test::basic_stream<net::io_context::executor_type>;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// A pool of test streams. Each connection's upstream end is kept, to be scripted and read.
class FakeConnections : public UpstreamConnections<TestStream> {
 public:
  explicit FakeConnections(net::io_context& ioc) : ioc_(ioc) {
    config_.name = "up";
    config_.max_response_bytes = 1024;
    config_.max_pending = 4;
  }

  // A pooled connection the next acquisition may reuse: `respond` is what the upstream will
  // have sent, and `closed` whether it closed the connection meanwhile (a stale one).
  TestStream& AddIdle(std::string_view respond, bool closed) {
    auto client = std::make_unique<TestStream>(ioc_.get_executor());
    auto& server = Upstream(*client);
    client->append(respond);
    if (closed) server.close();
    idle_.push_back(std::move(client));
    return server;
  }
  // What the upstream of each new connection answers, in order of connection (missing: it
  // answers nothing and closes).
  std::deque<std::string> fresh_answers;
  bool full = false;                // at max_connections
  bool idle_always = false;         // hands out idle connections even when refused
  beast::error_code connect_error;  // every connect fails with it
  std::vector<bool> acquires;       // allow_idle of each acquisition
  std::vector<bool> releases;       // reusable of each release
  std::vector<bool> results;        // transport_ok of each RecordResult
  int connects = 0;
  std::function<void()> waiter;  // the queued waiter's retry
  std::vector<std::unique_ptr<TestStream>> upstreams;
  std::vector<std::unique_ptr<TestStream>> released;  // the connections given back

  Lease AcquireOrWait(size_t, bool allow_idle, std::function<void()> retry, bool,
                      uint64_t* ticket) override {
    *ticket = 0;
    acquires.push_back(allow_idle);
    Lease lease;
    if (full) {
      if (retry) {
        waiter = std::move(retry);
        *ticket = 7;
      }
      return lease;
    }
    lease.ok = true;
    if ((allow_idle || idle_always) && !idle_.empty()) {
      lease.stream = std::move(idle_.front());
      idle_.pop_front();
    }
    return lease;
  }
  void CancelWait(uint64_t) override { waiter = nullptr; }
  void WakeNext() override {}
  std::unique_ptr<TestStream> NewStream(size_t) override {
    return std::make_unique<TestStream>(ioc_.get_executor());
  }
  void Connect(TestStream& stream, size_t, std::function<void(beast::error_code)> done) override {
    ++connects;
    if (connect_error) return net::post(ioc_, [done, ec = connect_error] { done(ec); });
    auto& server = Upstream(stream);
    if (fresh_answers.empty()) {
      server.close();
    } else {
      stream.append(fresh_answers.front());
      fresh_answers.pop_front();
    }
    net::post(ioc_, [done] { done({}); });
  }
  void Close(TestStream& stream) override { stream.close(); }
  void Release(size_t, size_t, std::unique_ptr<TestStream> stream, bool reusable) override {
    releases.push_back(reusable);
    released.push_back(std::move(stream));
  }
  void RecordResult(size_t, bool transport_ok, bool) override { results.push_back(transport_ok); }
  const std::string& endpoint_name(size_t) const override { return name_; }
  const UpstreamConfig& config() const override { return config_; }

  UpstreamConfig config_;

 private:
  TestStream& Upstream(TestStream& client) {
    upstreams.push_back(std::make_unique<TestStream>(ioc_.get_executor()));
    client.connect(*upstreams.back());
    return *upstreams.back();
  }

  net::io_context& ioc_;
  std::deque<std::unique_ptr<TestStream>> idle_;
  std::string name_ = "up:80";
};

std::shared_ptr<const Request> Get(http::verb method = http::verb::get) {
  auto request = std::make_shared<Request>(method, "/x", 11);
  request->set(http::field::host, "h");
  request->prepare_payload();
  return request;
}

struct Fixture {
  std::shared_ptr<UpstreamResult> Run(std::shared_ptr<const Request> request = Get(),
                                      std::string head = {}) {
    std::shared_ptr<UpstreamResult> result;
    auto exchange = std::make_shared<BufferedExchange<TestStream>>(
        connections, 0, ioc.get_executor(), nullptr, std::move(request), std::chrono::seconds(5),
        ioc.get_executor(), [&](std::shared_ptr<UpstreamResult> r) { result = std::move(r); },
        std::move(head));
    exchange->Start();
    exchange.reset();  // kept alive by its pending operations only
    ioc.run();
    ioc.restart();
    return result;
  }
  net::io_context ioc;
  std::shared_ptr<FakeConnections> connections = std::make_shared<FakeConnections>(ioc);
};

TEST(UpstreamExchangeTest, ReadsAResponseOnANewConnection) {
  Fixture f;
  f.connections->fresh_answers = {std::string(kOk)};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.body(), "ok");
  EXPECT_EQ(f.connections->connects, 1);
  EXPECT_EQ(f.connections->releases, std::vector<bool>{true});  // pooled
  EXPECT_EQ(f.connections->results, std::vector<bool>{true});
  // The upstream got the head and body in one write.
  EXPECT_EQ(f.connections->released.at(0)->nwrite(), 1U);
  EXPECT_EQ(f.connections->upstreams.at(0)->str().rfind("GET /x HTTP/1.1\r\n", 0), 0U);
}

TEST(UpstreamExchangeTest, RetriesAStaleReusedConnectionOnceOnANewOne) {
  Fixture f;
  auto& stale = f.connections->AddIdle("", /*closed=*/true);
  f.connections->fresh_answers = {std::string(kOk)};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.body(), "ok");
  // The second acquisition refuses idle connections; the stale one is not pooled again.
  EXPECT_EQ(f.connections->acquires, (std::vector<bool>{true, false}));
  EXPECT_EQ(f.connections->releases, (std::vector<bool>{false, true}));
  EXPECT_EQ(f.connections->connects, 1);
  // The stale connection's results are not counted against the endpoint.
  EXPECT_EQ(f.connections->results, std::vector<bool>{true});
  EXPECT_FALSE(stale.str().empty());  // it was written to: the failure came on reading
}

TEST(UpstreamExchangeTest, NeverRetriesANewConnection) {
  Fixture f;  // the new connection's upstream closes without answering
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_NE(result->error.find("up:80"), std::string::npos) << result->error;
  EXPECT_EQ(f.connections->acquires, std::vector<bool>{true});
  EXPECT_EQ(f.connections->connects, 1);
  EXPECT_EQ(f.connections->results, std::vector<bool>{false});
}

TEST(UpstreamExchangeTest, RetriesOnlyOnce) {
  Fixture f;
  f.connections->AddIdle("", /*closed=*/true);
  f.connections->AddIdle("", /*closed=*/true);  // would be reused again by a second retry
  auto result = f.Run();                        // the new connection closes as well
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_EQ(f.connections->acquires, (std::vector<bool>{true, false}));
  EXPECT_EQ(f.connections->connects, 1);

  // Even a pool that hands out a stale pooled connection again gets no second retry.
  Fixture g;
  g.connections->idle_always = true;
  for (int i = 0; i < 3; ++i) g.connections->AddIdle("", /*closed=*/true);
  g.connections->fresh_answers = {std::string(kOk)};
  result = g.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_EQ(g.connections->acquires, (std::vector<bool>{true, false}));
  EXPECT_EQ(g.connections->connects, 0);
}

TEST(UpstreamExchangeTest, NoRetryOnceTheResponseStarted) {
  Fixture f;
  f.connections->AddIdle("HTTP/1.1 20", /*closed=*/true);
  f.connections->fresh_answers = {std::string(kOk)};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_EQ(f.connections->acquires, std::vector<bool>{true});
  EXPECT_EQ(f.connections->connects, 0);
}

TEST(UpstreamExchangeTest, ResponseBodyOverTheLimitFails) {
  Fixture f;
  f.connections->config_.max_response_bytes = 10;
  f.connections->fresh_answers = {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "6\r\n012345\r\n5\r\n6789a\r\n0\r\n\r\n",
                                  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"};
  for (int i = 0; i < 2; ++i) {
    auto result = f.Run();
    ASSERT_TRUE(result);
    EXPECT_EQ(result->outcome, UpstreamOutcome::kError) << i;
    EXPECT_NE(result->error.find("body limit"), std::string::npos) << result->error;
  }
  auto result = f.Run();  // at the limit
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.body(), "0123456789");
}

TEST(UpstreamExchangeTest, ChunkedResponseIsCollectedWhole) {
  Fixture f;
  std::string body(20000, 'b');
  std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t at = 0; at < body.size(); at += 3000) {
    auto piece = body.substr(at, 3000);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    answer += size + piece + "\r\n";
  }
  answer += "0\r\n\r\n";
  f.connections->config_.max_response_bytes = 1 << 20;
  f.connections->fresh_answers = {answer};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.body(), body);
}

TEST(UpstreamExchangeTest, InterimResponsesAreDroppedUpToTheLimit) {
  Fixture f;
  std::string interim;
  for (int i = 0; i < kMaxInterimResponses; ++i) interim += "HTTP/1.1 103 Early Hints\r\n\r\n";
  f.connections->fresh_answers = {interim + std::string(kOk),
                                  interim + "HTTP/1.1 100 Continue\r\n\r\n" + std::string(kOk)};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.result_int(), 200);
  result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_EQ(result->error, TooManyInterimResponses("up:80"));
}

TEST(UpstreamExchangeTest, ResponseHeaderOverTheLimitFails) {
  Fixture f;
  f.connections->fresh_answers = {
      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(kMaxResponseHeaderBytes, 'x') + "\r\n\r\n"};
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kError);
  EXPECT_NE(result->error.find("header limit"), std::string::npos) << result->error;
}

TEST(UpstreamExchangeTest, HeadResponseHasNoBody) {
  Fixture f;
  f.connections->fresh_answers = {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"};
  auto result = f.Run(Get(http::verb::head));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
  EXPECT_EQ(result->response.body(), "");
  EXPECT_EQ(f.connections->releases, std::vector<bool>{true});
}

TEST(UpstreamExchangeTest, ConnectFailureIsReported) {
  Fixture f;
  f.connections->connect_error = net::error::connection_refused;
  auto result = f.Run();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->outcome, UpstreamOutcome::kConnectFailed);
  EXPECT_EQ(result->error.rfind("connect up:80: ", 0), 0U) << result->error;
}

// A user that drives the exchange the way the session does: a streamed body, the response read
// piece by piece into its own buffer.
class StreamingUser : public ExchangeUser {
 public:
  StreamingUser(net::io_context& ioc, std::shared_ptr<FakeConnections> connections)
      : exchange(this, ioc.get_executor(), 0), connections_(std::move(connections)) {}
  void Start(std::vector<std::string> pieces, bool retryable) {
    pieces_ = std::move(pieces);
    message = {http::verb::post, "/s", 11};
    message.chunked(true);
    next_ = 0;
    TakePiece();
    ExchangeOptions options;
    options.deadline = Clock::now() + std::chrono::seconds(5);
    exchange.StartStreamed(connections_, options, message, retryable);
  }
  // A GET without a body, with `options`.
  void StartGet(const ExchangeOptions& options) {
    message = {http::verb::get, "/", 11};
    message.body().more = false;  // buffer_body's default is more to come
    exchange.StartStreamed(connections_, options, message, /*retryable=*/true);
  }
  std::shared_ptr<void> ExchangeKeepAlive() override { return keep_; }
  void OnRequestWritten(bool more) override {
    if (!more) return;
    auto& piece = pieces_[next_++];
    exchange.SendBody(piece.data(), piece.size(), next_ < pieces_.size());
  }
  void OnResponsePiece(std::size_t n, bool done) override {
    body.append(buffer_, n);
    if (done) {
      finished = true;
      return exchange.Finish();
    }
    exchange.ReadBody(buffer_, sizeof buffer_);
  }
  void OnExchangeFailed(const ExchangeFailure& f) override { failure = f; }

  BasicUpstreamExchange<TestStream> exchange;
  http::request<http::buffer_body> message;
  std::string body;
  bool finished = false;
  std::optional<ExchangeFailure> failure;

 private:
  void TakePiece() {
    auto& piece = pieces_[next_++];
    message.body() = {piece.data(), piece.size(), next_ < pieces_.size()};
  }
  std::shared_ptr<FakeConnections> connections_;
  std::shared_ptr<int> keep_ = std::make_shared<int>();
  std::vector<std::string> pieces_;
  std::size_t next_ = 0;
  char buffer_[4] = {};  // small, so that the response comes in several pieces
};

TEST(UpstreamExchangeTest, StreamsTheBodyAndRelaysTheResponseInPieces) {
  net::io_context ioc;
  auto connections = std::make_shared<FakeConnections>(ioc);
  connections->fresh_answers = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"};
  StreamingUser user(ioc, connections);
  user.Start({"ab", "cd", "e"}, /*retryable=*/true);
  ioc.run();
  EXPECT_TRUE(user.finished);
  EXPECT_FALSE(user.failure);
  EXPECT_EQ(user.body, "0123456789");
  auto sent = connections->upstreams.at(0)->str();
  EXPECT_NE(sent.find("\r\n\r\n2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n"), std::string::npos)
      << sent;
}

TEST(UpstreamExchangeTest, StreamedFirstPieceIsRetriedButNotOnceMoreWasSent) {
  net::io_context ioc;
  auto connections = std::make_shared<FakeConnections>(ioc);
  connections->AddIdle("", /*closed=*/true);
  connections->fresh_answers = {std::string(kOk)};
  StreamingUser whole(ioc, connections);
  whole.Start({"abc"}, /*retryable=*/true);
  ioc.run();
  EXPECT_TRUE(whole.finished);
  EXPECT_EQ(connections->acquires, (std::vector<bool>{true, false}));
  EXPECT_NE(connections->upstreams.back()->str().find("3\r\nabc\r\n0\r\n\r\n"), std::string::npos);

  // A second piece consumed from the client cannot be sent again: no retry.
  ioc.restart();
  connections->acquires.clear();
  connections->AddIdle("", /*closed=*/true);
  connections->fresh_answers = {std::string(kOk)};
  StreamingUser streamed(ioc, connections);
  streamed.Start({"ab", "c"}, /*retryable=*/true);
  ioc.run();
  ASSERT_TRUE(streamed.failure);
  EXPECT_EQ(streamed.failure->outcome, UpstreamOutcome::kError);
  EXPECT_EQ(connections->acquires, std::vector<bool>{true});

  // Nor a first write the user says cannot be repeated.
  ioc.restart();
  connections->acquires.clear();
  connections->AddIdle("", /*closed=*/true);
  StreamingUser once(ioc, connections);
  once.Start({"abc"}, /*retryable=*/false);
  ioc.run();
  ASSERT_TRUE(once.failure);
  EXPECT_EQ(connections->acquires, std::vector<bool>{true});
}

TEST(UpstreamExchangeTest, PassedDeadlineIsATimeout) {
  net::io_context ioc;
  auto connections = std::make_shared<FakeConnections>(ioc);
  connections->AddIdle("", /*closed=*/false);  // alive, never answers
  StreamingUser user(ioc, connections);
  user.Start({"abc"}, /*retryable=*/true);
  ioc.poll();
  EXPECT_FALSE(user.failure);
  user.exchange.CheckDeadline(Clock::now());  // not yet
  ioc.poll();
  EXPECT_FALSE(user.failure);
  user.exchange.CheckDeadline(Clock::now() + std::chrono::hours(1));
  ioc.run();
  ASSERT_TRUE(user.failure);
  EXPECT_EQ(user.failure->outcome, UpstreamOutcome::kTimeout);
  EXPECT_EQ(connections->results, std::vector<bool>{false});
  EXPECT_EQ(connections->releases, std::vector<bool>{false});
}

TEST(UpstreamExchangeTest, WaitsForAConnectionWhenAskedTo) {
  net::io_context ioc;
  auto connections = std::make_shared<FakeConnections>(ioc);
  connections->full = true;
  StreamingUser user(ioc, connections);
  user.Start({"abc"}, /*retryable=*/true);
  // Mirrors do not wait (wait_for_connection unset): overload at once.
  ioc.run();
  ASSERT_TRUE(user.failure);
  EXPECT_EQ(user.failure->outcome, UpstreamOutcome::kOverload);
  EXPECT_FALSE(user.failure->waited);

  ioc.restart();
  StreamingUser waiting(ioc, connections);
  ExchangeOptions options;
  options.deadline = Clock::now() + std::chrono::seconds(5);
  options.wait_for_connection = true;
  waiting.StartGet(options);
  ASSERT_TRUE(connections->waiter);
  connections->full = false;
  connections->fresh_answers = {std::string(kOk)};
  connections->waiter();  // a connection was given back
  ioc.run();
  EXPECT_TRUE(waiting.finished);
  EXPECT_FALSE(waiting.failure);

  ioc.restart();
  connections->full = true;
  StreamingUser timed_out(ioc, connections);
  timed_out.StartGet(options);
  ASSERT_TRUE(connections->waiter);
  timed_out.exchange.CheckDeadline(Clock::now() + std::chrono::hours(1));
  ioc.run();
  ASSERT_TRUE(timed_out.failure);
  EXPECT_EQ(timed_out.failure->outcome, UpstreamOutcome::kOverload);
  EXPECT_TRUE(timed_out.failure->waited);
  EXPECT_FALSE(connections->waiter);  // the wait was cancelled
}

TEST(UpstreamExchangeTest, AbandonedWhilePendingReportsOnceAndNeverPools) {
  net::io_context ioc;
  auto connections = std::make_shared<FakeConnections>(ioc);
  connections->AddIdle("", /*closed=*/false);
  StreamingUser user(ioc, connections);
  user.Start({"abc"}, /*retryable=*/true);
  ioc.poll();  // waiting for the response header
  user.exchange.Abandon();
  ioc.run();
  ASSERT_TRUE(user.failure);
  EXPECT_TRUE(user.failure->abandoned);
  EXPECT_EQ(connections->releases, std::vector<bool>{false});
  EXPECT_TRUE(connections->results.empty());  // not the upstream's failure
}

// A mirror's exchange shares the primary's request; whatever happens to it reaches only its own
// result: the primary's request and response are untouched.
TEST(UpstreamExchangeTest, MirrorFailureNeverTouchesThePrimary) {
  for (int failure = 0; failure < 4; ++failure) {
    SCOPED_TRACE(failure);
    Fixture primary;
    primary.connections->fresh_answers = {std::string(kOk)};
    auto mirror = std::make_shared<FakeConnections>(primary.ioc);
    switch (failure) {
      case 0:
        mirror->connect_error = net::error::connection_refused;
        break;
      case 1:
        mirror->AddIdle("HTTP/1.1 500 X\r\nContent-Length: 9\r\n\r\npartial", true);
        break;
      case 2:
        mirror->full = true;
        break;
      case 3:
        mirror->fresh_answers = {"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n"};
        break;
    }
    auto request = std::make_shared<Request>(http::verb::post, "/x", 11);
    request->body() = "payload";
    request->prepare_payload();
    const std::string before = request->body();
    std::shared_ptr<UpstreamResult> shadow;
    auto copy = std::make_shared<BufferedExchange<TestStream>>(
        mirror, 0, primary.ioc.get_executor(), nullptr, request, std::chrono::seconds(5),
        primary.ioc.get_executor(), [&](std::shared_ptr<UpstreamResult> r) { shadow = r; },
        "POST /x HTTP/1.1\r\nX-Shadow-Request: 1\r\nContent-Length: 7\r\n\r\n");
    copy->Start();
    copy.reset();
    auto result = primary.Run(request);
    ASSERT_TRUE(shadow);
    EXPECT_NE(shadow->outcome, UpstreamOutcome::kOk);
    ASSERT_TRUE(result);
    EXPECT_EQ(result->outcome, UpstreamOutcome::kOk) << result->error;
    EXPECT_EQ(result->response.body(), "ok");
    EXPECT_EQ(request->body(), before);
    EXPECT_EQ(primary.connections->results, std::vector<bool>{true});
    auto sent = primary.connections->upstreams.at(0)->str();
    EXPECT_EQ(sent.find("X-Shadow-Request"), std::string::npos);
    EXPECT_EQ(sent.substr(sent.size() - 7), "payload");
  }
}

}  // namespace
}  // namespace sg::gateway
