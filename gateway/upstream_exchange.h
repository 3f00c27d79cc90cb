// UpstreamExchange: one request/response exchange with an upstream, the only one in the gateway:
// the primary's (driven by ProxySession, which streams the request body and relays the response)
// and every mirror copy's (BufferedExchange, which collects the response whole) run this code.
//
// One attempt: take a pooled keep-alive connection or connect a new one (at max_connections wait
// for one, when asked to), write the head with the body bytes already in memory in one gather
// write (TCP_NODELAY is set on every connected socket: SetUpstreamSocketOptions), hand the rest of
// a streamed body over piece by piece as the user supplies it, read the response header within
// its limits (header size, body limit, interim responses) and then its body piece by piece into
// the user's buffer. A pooled connection the upstream had already closed is retried once on a new
// connection, while the request can still be written again from memory and nothing of the
// response arrived.
//
// Two seams, so that tests drive an exchange without sockets:
// - UpstreamConnections<Stream>: where connections come from and go back to (UpstreamPool for
//   sockets; a fake handing out beast::test::stream in the tests).
// - ExchangeUser: what the exchange's user does with the request body and the response.
//
// Threading: an exchange and its stream live on one thread (a shard's or a shadow thread's
// io_context); every method and every callback runs there.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "gateway/deadline_sweeper.h"
#include "gateway/gateway_config.h"
#include "gateway/header_rules.h"

namespace sg::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Sockets bound to their shard's io_context executor: no type-erased executor copies per
// operation (a measurable share of a small exchange's cost with tcp::socket's any_io_executor).
using Socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

enum class UpstreamOutcome {
  kOk,             // a complete response arrived (any status)
  kError,          // reset, closed early, malformed or oversized response
  kTimeout,        // header or total timeout
  kConnectFailed,  // refused, unreachable or connect timeout
  kOverload,       // the pool is at max_connections
};
const char* OutcomeName(UpstreamOutcome outcome);

// Interim responses (1xx other than 101: 100 Continue, 103 Early Hints) an upstream may send
// before its final response; they are read and dropped. More than this is an upstream error.
inline constexpr int kMaxInterimResponses = 8;
inline bool IsInterimStatus(unsigned status) {
  return status / 100 == 1 && status != 101;
}
// The error once an upstream sends more than kMaxInterimResponses of them.
inline std::string TooManyInterimResponses(const std::string& endpoint_name) {
  return "upstream " + endpoint_name + ": more than " + std::to_string(kMaxInterimResponses) +
         " interim (1xx) responses";
}
// The largest response header an exchange reads.
inline constexpr uint32_t kMaxResponseHeaderBytes = 64 * 1024;

// Sets what every connected upstream socket needs: TCP_NODELAY, so that a request's later small
// write (a body piece after its head, the last chunk) goes out at once instead of waiting for the
// upstream to acknowledge the earlier one, which it delays (40 ms on Linux) while it waits for
// the rest of the request.
void SetUpstreamSocketOptions(Socket& socket);

// A connection the upstream had closed before our request reached it (safe to retry once).
inline bool IsStaleConnectionError(beast::error_code ec) {
  return ec == http::error::end_of_stream || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::eof;
}

// Seam: where an exchange's connections come from and go back to. UpstreamPool implements it for
// sockets. `shard` is the thread's index (a connection is reused only on its own shard).
template <class Stream>
class UpstreamConnections {
 public:
  struct Lease {
    bool ok = false;  // false: at max_connections (or every endpoint ejected, fail-fast)
    bool ejected = false;
    size_t endpoint = 0;
    std::unique_ptr<Stream> stream;  // null: connect a new one (NewStream, Connect)
  };
  virtual ~UpstreamConnections() = default;
  // Leases a connection (an idle one only when `allow_idle`). When none is free and `retry` is
  // set, also queues a waiter (ticket set, 0: not queued) whose `retry` is called (from any
  // thread: it must only post) when one is given back; `front`: it goes first.
  virtual Lease AcquireOrWait(size_t shard, bool allow_idle, std::function<void()> retry,
                              bool front, uint64_t* ticket) = 0;
  // Removes a waiter that gave up; a no-op once its retry was called.
  virtual void CancelWait(uint64_t ticket) = 0;
  // Passes a slot on to the next waiter (one woken too late to use it).
  virtual void WakeNext() = 0;
  virtual std::unique_ptr<Stream> NewStream(size_t shard) = 0;
  // Connects `stream` to `endpoint` and sets its options; `done` runs on the stream's thread.
  virtual void Connect(Stream& stream, size_t endpoint,
                       std::function<void(beast::error_code)> done) = 0;
  // Ends the pending operation on `stream` (it completes with operation_aborted).
  virtual void Close(Stream& stream) = 0;
  // Gives a leased connection back (pooled only when `reusable`); exactly once per lease.
  virtual void Release(size_t shard, size_t endpoint, std::unique_ptr<Stream> stream,
                       bool reusable) = 0;
  // Passive health: a transport success or failure of `endpoint`.
  virtual void RecordResult(size_t endpoint, bool transport_ok, bool connect_failure = false) = 0;
  virtual const std::string& endpoint_name(size_t endpoint) const = 0;
  virtual const UpstreamConfig& config() const = 0;
};

// Why an exchange ended without a complete response. The connection was given back (never
// pooled) and the endpoint's result recorded.
struct ExchangeFailure {
  UpstreamOutcome outcome = UpstreamOutcome::kError;
  std::string error;       // human text (pair records)
  beast::error_code ec;    // the transport error, when there was one
  bool waited = false;     // kOverload after waiting pending_timeout for a connection
  bool abandoned = false;  // the user abandoned it while an operation was pending
};

// Seam: the exchange's user. Callbacks run on the exchange's thread, never from within the
// user's own call into the exchange except Start (which may fail at once).
class ExchangeUser {
 public:
  virtual ~ExchangeUser() = default;
  // What the exchange's pending operations hold, so that the user (and the exchange it owns)
  // outlives them.
  virtual std::shared_ptr<void> ExchangeKeepAlive() = 0;
  // A request write completed. `more`: the body goes on; call SendBody with the next piece
  // (no deadline runs meanwhile). Otherwise the exchange goes on to read the response.
  virtual void OnRequestWritten(bool more) = 0;
  // The response header arrived (first call: n == 0, `done` when the response has no body), or
  // `n` body bytes are in the buffer given to ReadBody (`done`: the response is complete). The
  // parser() holds the head. Next call ReadBody (not `done`), Finish (`done`) or Abandon.
  virtual void OnResponsePiece(std::size_t n, bool done) = 0;
  virtual void OnExchangeFailed(const ExchangeFailure& failure) = 0;
};

// How one exchange runs.
struct ExchangeOptions {
  std::chrono::steady_clock::time_point deadline;              // the whole exchange's
  uint64_t body_limit = std::numeric_limits<uint64_t>::max();  // response body bytes
  bool head = false;                 // a HEAD request: the response has no body
  bool wait_for_connection = false;  // at max_connections wait (max_pending, pending_timeout)
};

template <class Stream>
class BasicUpstreamExchange {
 public:
  using Clock = std::chrono::steady_clock;
  using Executor = typename Stream::executor_type;
  using Connections = UpstreamConnections<Stream>;
  using ResponseParser = http::response_parser<http::buffer_body>;

  // `executor`: the thread the exchange runs on (its streams' executor).
  BasicUpstreamExchange(ExchangeUser* user, Executor executor, size_t shard)
      : user_(user), executor_(std::move(executor)), shard_(shard) {}
  BasicUpstreamExchange(const BasicUpstreamExchange&) = delete;
  BasicUpstreamExchange& operator=(const BasicUpstreamExchange&) = delete;
  ~BasicUpstreamExchange() { ReleaseStream(false); }

  // Starts an exchange whose request is complete in memory: `head` (a serialized head with its
  // framing) and `body` go in one gather write. Both must stay valid until the response header
  // arrived (a retry writes them again). REQUIRES: no exchange in progress.
  void StartWhole(std::shared_ptr<Connections> connections, const ExchangeOptions& options,
                  std::string_view head, net::const_buffer body) {
    Begin(std::move(connections), options);
    whole_head_ = head;
    whole_body_ = body;
    message_ = nullptr;
    Attempt(/*allow_idle=*/true);
  }
  // Starts an exchange whose body is streamed: `message` is serialized (its framing as set:
  // Content-Length, or chunked) with its body() as the first piece (body().more: more follows
  // through SendBody). `retryable`: the first write can be written again (its piece stays valid
  // until SendBody or the response header).
  void StartStreamed(std::shared_ptr<Connections> connections, const ExchangeOptions& options,
                     http::request<http::buffer_body>& message, bool retryable) {
    Begin(std::move(connections), options);
    message_ = &message;
    retryable_ = retryable;
    Attempt(/*allow_idle=*/true);
  }
  // The next piece of a streamed body (after OnRequestWritten(true)); the request can no longer
  // be written again, so no retry from here.
  void SendBody(const void* data, std::size_t size, bool more) {
    retryable_ = false;
    message_->body() = {size ? const_cast<void*>(data) : nullptr, size, more};
    DoSerializedWrite();
  }
  // Reads the next piece of the response body into `data` (up to `size` bytes).
  void ReadBody(void* data, std::size_t size) {
    auto& body = parser_->get().body();
    body.data = data;
    body.size = size;
    // Read it within the whole-exchange deadline.
    SetOpDeadline(Remaining());
    op_pending_ = true;
    http::async_read(
        *stream_, buffer_, *parser_,
        [this, keep = user_->ExchangeKeepAlive(), size](beast::error_code ec, std::size_t) {
          op_pending_ = false;
          OnBodyPiece(ec, size);
        });
  }
  // The response is complete: the connection goes back (pooled when the upstream keeps it
  // alive and sent nothing more) and the endpoint is recorded healthy.
  void Finish() {
    bool reusable = parser_->keep_alive() && buffer_.size() == 0;
    connections_->RecordResult(endpoint_, true);
    ReleaseStream(reusable);
  }
  // Ends the exchange now: a pending operation completes with OnExchangeFailed (abandoned); a
  // held connection goes back unpooled; a wait for one is given up.
  void Abandon() {
    abandoned_ = true;
    op_deadline_ = Clock::time_point::max();
    if (op_pending_ && stream_) return connections_->Close(*stream_);
    if (!op_pending_) ReleaseStream(false);
    if (ticket_ != 0) {
      // The pool's waiter may hold the last reference to the user: it goes after this call.
      net::post(executor_, [keep = user_->ExchangeKeepAlive(), connections = connections_,
                            ticket = ticket_] { connections->CancelWait(ticket); });
      ticket_ = 0;
    }
  }
  // Cancels the pending operation (or the wait for a connection) once its deadline passed.
  void CheckDeadline(Clock::time_point now) {
    if (now < op_deadline_) return;
    op_deadline_ = Clock::time_point::max();
    if (ticket_ != 0) {
      // The pool's waiter may hold the last reference to the user: keep one first.
      auto keep = user_->ExchangeKeepAlive();
      connections_->CancelWait(ticket_);
      ticket_ = 0;
      net::post(executor_, [this, keep = std::move(keep)] { OnPendingTimeout(); });
      return;
    }
    if (!stream_ || !op_pending_) return;
    timed_out_ = true;
    connections_->Close(*stream_);
  }

  // The response parser (its head valid from the first OnResponsePiece on).
  ResponseParser& parser() { return *parser_; }
  const std::string& endpoint_name() const { return connections_->endpoint_name(endpoint_); }
  bool reused() const { return reused_; }

 private:
  void Begin(std::shared_ptr<Connections> connections, const ExchangeOptions& options) {
    connections_ = std::move(connections);
    options_ = options;
    retryable_ = true;
    retried_ = false;
    waited_ = false;
    abandoned_ = false;
  }

  // The pending operation must finish within `limit` (checked by CheckDeadline).
  void SetOpDeadline(Clock::duration limit) {
    timed_out_ = false;
    op_deadline_ = Clock::now() + limit;
  }
  Clock::duration Remaining(Clock::duration cap = Clock::duration::max()) const {
    return std::min(cap, Clock::duration(options_.deadline - Clock::now()));
  }

  void Attempt(bool allow_idle) {
    interim_responses_ = 0;
    uint64_t ticket = 0;
    std::function<void()> retry;
    // (The callback is made only when it may wait: most acquisitions succeed at once.)
    auto lease = connections_->AcquireOrWait(shard_, allow_idle, nullptr, false, &ticket);
    if (!lease.ok && !lease.ejected && options_.wait_for_connection &&
        connections_->config().max_pending > 0) {
      // At max_connections: wait (FIFO, bounded by max_pending and pending_timeout) for a
      // connection another exchange gives back.
      retry = [this, keep = user_->ExchangeKeepAlive(), executor = executor_] {
        net::post(executor, [this, keep] { OnSlot(); });
      };
      lease = connections_->AcquireOrWait(shard_, allow_idle, std::move(retry), waited_, &ticket);
    }
    if (!lease.ok && ticket != 0) {
      ticket_ = ticket;
      auto now = Clock::now();
      if (!waited_) {
        waited_ = true;
        pending_deadline_ =
            std::min(now + connections_->config().pending_timeout, options_.deadline);
      }
      op_deadline_ = pending_deadline_;  // CheckDeadline ends the wait
      return;
    }
    waited_ = false;
    if (lease.ejected) return Fail(UpstreamOutcome::kConnectFailed, "every endpoint is ejected");
    if (!lease.ok) return Fail(UpstreamOutcome::kOverload, "upstream pool at max_connections");
    endpoint_ = lease.endpoint;
    reused_ = lease.stream != nullptr;
    stream_ = reused_ ? std::move(lease.stream) : connections_->NewStream(shard_);
    buffer_.clear();
    if (reused_) return DoWrite();
    // Connect within the connect timeout (and the whole-exchange deadline).
    SetOpDeadline(Remaining(connections_->config().connect_timeout));
    op_pending_ = true;
    connections_->Connect(*stream_, endpoint_,
                          [this, keep = user_->ExchangeKeepAlive()](beast::error_code ec) {
                            op_pending_ = false;
                            OnConnect(ec);
                          });
  }

  // The pool freed a connection slot for this waiting exchange (posted by the pool).
  void OnSlot() {
    if (ticket_ == 0 || abandoned_) {
      // Gave up (timed out, abandoned) after the pool had chosen it: the slot goes on.
      connections_->WakeNext();
      return;
    }
    ticket_ = 0;
    op_deadline_ = Clock::time_point::max();
    Attempt(/*allow_idle=*/true);
  }

  void OnPendingTimeout() {
    waited_ = false;
    if (abandoned_) return;
    Fail(UpstreamOutcome::kOverload, "no upstream connection within pending_timeout", {},
         /*waited=*/true);
  }

  void OnConnect(beast::error_code ec) {
    if (abandoned_) return Abandoned();
    if (ec) {
      connections_->RecordResult(endpoint_, false, /*connect_failure=*/true);
      return Fail(UpstreamOutcome::kConnectFailed,
                  "connect " + endpoint_name() + ": " +
                      (timed_out_ ? std::string("timeout") : ec.message()),
                  ec);
    }
    DoWrite();
  }

  void DoWrite() {
    // Send the request (its head with the body bytes in memory) within the exchange deadline.
    if (message_) {
      // Made once per exchange object, on its first streamed request: a mirror copy's (never
      // streamed) stays small enough for malloc's per-thread cache (tcache, up to 1032 bytes),
      // which measurably costs less per copy than a larger block (callgrind).
      if (!serializer_) serializer_ = std::make_unique<std::optional<Serializer>>();
      serializer_->emplace(*message_);
      return DoSerializedWrite();
    }
    // Head and body in one gather write.
    SetOpDeadline(Remaining());
    op_pending_ = true;
    std::array<net::const_buffer, 2> buffers{net::buffer(whole_head_), whole_body_};
    net::async_write(*stream_, buffers,
                     [this, keep = user_->ExchangeKeepAlive()](beast::error_code ec, std::size_t) {
                       op_pending_ = false;
                       OnWritten(ec, /*more=*/false);
                     });
  }

  void DoSerializedWrite() {
    SetOpDeadline(Remaining());
    op_pending_ = true;
    bool more = message_->body().more;
    auto handler = [this, keep = user_->ExchangeKeepAlive(), more](beast::error_code ec,
                                                                   std::size_t) {
      op_pending_ = false;
      OnWritten(ec == http::error::need_buffer ? beast::error_code{} : ec, more);
    };
    auto& serializer = **serializer_;
    if (message_->body().size == 0 && more && !serializer.is_header_done()) {
      return http::async_write_header(*stream_, serializer, std::move(handler));
    }
    http::async_write(*stream_, serializer, std::move(handler));
  }

  void OnWritten(beast::error_code ec, bool more) {
    if (abandoned_) return Abandoned();
    if (ec) return Failed(ec, /*may_retry=*/retryable_);
    if (more) return user_->OnRequestWritten(true);
    user_->OnRequestWritten(false);
    DoReadHeader();
  }

  void DoReadHeader() {
    // Read the response header within the header timeout and the limits.
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    parser_->header_limit(kMaxResponseHeaderBytes);
    if (options_.head) parser_->skip(true);
    SetOpDeadline(Remaining(connections_->config().header_timeout));
    op_pending_ = true;
    http::async_read_header(
        *stream_, buffer_, *parser_,
        [this, keep = user_->ExchangeKeepAlive()](beast::error_code ec, std::size_t) {
          op_pending_ = false;
          OnHeader(ec);
        });
  }

  void OnHeader(beast::error_code ec) {
    if (abandoned_) return Abandoned();
    if (ec) {
      // Retried only when nothing of the response arrived (the upstream saw no request).
      return Failed(ec, retryable_ && !parser_->got_some() && buffer_.size() == 0);
    }
    if (IsInterimStatus(parser_->get().result_int())) {
      // An interim response (100 Continue, 103 Early Hints) is dropped: the final one follows
      // on the same connection.
      if (++interim_responses_ <= kMaxInterimResponses) return DoReadHeader();
      connections_->RecordResult(endpoint_, false);
      return Fail(UpstreamOutcome::kError, TooManyInterimResponses(endpoint_name()));
    }
    retryable_ = false;
    if (parser_->is_done()) return user_->OnResponsePiece(0, true);  // no body
    user_->OnResponsePiece(0, false);
  }

  void OnBodyPiece(beast::error_code ec, std::size_t size) {
    if (abandoned_) return Abandoned();
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return Failed(ec, /*may_retry=*/false);
    user_->OnResponsePiece(size - parser_->get().body().size, parser_->is_done());
  }

  // A transport failure. A reused connection the upstream had already closed is retried once on
  // a fresh connection.
  void Failed(beast::error_code ec, bool may_retry) {
    if (may_retry && reused_ && !retried_ && IsStaleConnectionError(ec) &&
        Clock::now() < options_.deadline) {
      retried_ = true;
      ReleaseStream(false);
      return Attempt(/*allow_idle=*/false);
    }
    connections_->RecordResult(endpoint_, false);
    if (timed_out_ && ec == net::error::operation_aborted) {
      return Fail(UpstreamOutcome::kTimeout, "upstream timeout", ec);
    }
    Fail(UpstreamOutcome::kError, "upstream " + endpoint_name() + ": " + ec.message(), ec);
  }

  // The user abandoned the exchange while an operation was pending.
  void Abandoned() { Fail(UpstreamOutcome::kError, "client connection closed"); }

  void Fail(UpstreamOutcome outcome, std::string error, beast::error_code ec = {},
            bool waited = false) {
    ReleaseStream(false);
    op_deadline_ = Clock::time_point::max();
    ExchangeFailure failure;
    failure.outcome = outcome;
    failure.error = std::move(error);
    failure.ec = ec;
    failure.waited = waited;
    failure.abandoned = abandoned_;
    user_->OnExchangeFailed(failure);
  }

  void ReleaseStream(bool reusable) {
    if (stream_) connections_->Release(shard_, endpoint_, std::move(stream_), reusable);
  }

  ExchangeUser* const user_;
  const Executor executor_;
  const size_t shard_;
  std::shared_ptr<Connections> connections_;
  ExchangeOptions options_;
  // The request: whole (head and body, one gather write) or serialized from message_.
  std::string_view whole_head_;
  net::const_buffer whole_body_;
  http::request<http::buffer_body>* message_ = nullptr;
  using Serializer = http::request_serializer<http::buffer_body>;
  std::unique_ptr<std::optional<Serializer>> serializer_;  // made on the first streamed request
  // The attempt in progress.
  std::unique_ptr<Stream> stream_;
  size_t endpoint_ = 0;
  bool reused_ = false;
  bool retried_ = false;
  bool retryable_ = true;  // the request can be written again (nothing streamed, no response)
  bool op_pending_ = false;
  bool abandoned_ = false;
  bool timed_out_ = false;
  int interim_responses_ = 0;
  Clock::time_point op_deadline_ = Clock::time_point::max();
  // Waiting for a connection (the pool at max_connections): the pool's ticket (0: not waiting);
  // an exchange that waited already goes first when it waits again.
  uint64_t ticket_ = 0;
  bool waited_ = false;
  Clock::time_point pending_deadline_;
  beast::flat_buffer buffer_;
  std::optional<ResponseParser> parser_;
};

// The gateway's exchange, over shard-typed sockets (instantiated once, in upstream_exchange.cc).
using UpstreamExchange = BasicUpstreamExchange<Socket>;
extern template class BasicUpstreamExchange<Socket>;

struct UpstreamResult {
  UpstreamOutcome outcome = UpstreamOutcome::kError;
  Response response;  // valid when outcome == kOk
  std::string error;  // human text otherwise
  std::chrono::steady_clock::time_point dispatched;
  std::chrono::steady_clock::time_point completed;
};

// An exchange whose response is collected whole (the mirrors'): it sends a complete request
// (its own head when given, else the request's), reads the response within the upstream's
// max_response_bytes, and posts the result to `done_executor` exactly once. Its deadline is
// checked by `sweeper` (the thread's DeadlineSweeper).
template <class Stream>
class BufferedExchange final : public ExchangeUser,
                               public Deadlined,
                               public std::enable_shared_from_this<BufferedExchange<Stream>> {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void(std::shared_ptr<UpstreamResult>)>;
  using DoneExecutor = net::any_io_executor;

  // REQUIRES: a non-empty `head` only for a request that is not chunked; `request` complete
  // (its framing set).
  BufferedExchange(std::shared_ptr<UpstreamConnections<Stream>> connections, size_t shard,
                   typename Stream::executor_type executor,
                   std::shared_ptr<DeadlineSweeper> sweeper, std::shared_ptr<const Request> request,
                   std::chrono::microseconds timeout, DoneExecutor done_executor, Callback done,
                   std::string head)
      : exchange_(this, std::move(executor), shard),
        connections_(std::move(connections)),
        sweeper_(std::move(sweeper)),
        request_(std::move(request)),
        done_executor_(std::move(done_executor)),
        done_(std::move(done)),
        result_(std::make_shared<UpstreamResult>()),
        head_(std::move(head)) {
    result_->dispatched = Clock::now();
    options_.deadline =
        result_->dispatched + std::min(timeout, connections_->config().total_timeout);
    options_.body_limit = static_cast<uint64_t>(connections_->config().max_response_bytes);
    options_.head = request_->method() == http::verb::head;
  }
  ~BufferedExchange() override {
    if (sweeper_) sweeper_->Remove(this);
  }

  // REQUIRES: called on the exchange's thread.
  void Start() {
    if (sweeper_) sweeper_->Add(this);
    if (request_->chunked()) {
      // Serialized with its chunked framing (the mirrors' copies always have a Content-Length).
      message_ = std::make_unique<http::request<http::buffer_body>>();
      message_->base() = request_->base();
      message_->body() = {const_cast<char*>(request_->body().data()), request_->body().size(),
                          false};
      return exchange_.StartStreamed(connections_, options_, *message_, /*retryable=*/true);
    }
    if (head_.empty()) AppendHead(request_->base(), &head_);
    exchange_.StartWhole(connections_, options_, head_, net::buffer(request_->body()));
  }
  void CheckDeadline(Clock::time_point now) override { exchange_.CheckDeadline(now); }

 private:
  std::shared_ptr<void> ExchangeKeepAlive() override { return this->shared_from_this(); }
  void OnRequestWritten(bool) override {}
  void OnResponsePiece(std::size_t n, bool done) override {
    auto& body = result_->response.body();
    body.resize(filled_ + n);
    filled_ += n;
    if (done) {
      result_->response.base() = std::move(exchange_.parser().get().base());
      exchange_.Finish();
      return Complete(UpstreamOutcome::kOk, {});
    }
    // The next piece straight into the body: all of a declared length at once, else growing.
    auto length = exchange_.parser().content_length_remaining();
    std::size_t room =
        length ? static_cast<std::size_t>(*length) : std::max<std::size_t>(kMinPiece, filled_);
    body.resize(filled_ + room);
    exchange_.ReadBody(body.data() + filled_, room);
  }
  void OnExchangeFailed(const ExchangeFailure& failure) override {
    result_->response = {};
    Complete(failure.outcome, failure.error);
  }
  void Complete(UpstreamOutcome outcome, std::string error) {
    result_->outcome = outcome;
    result_->error = std::move(error);
    result_->completed = Clock::now();
    net::post(done_executor_,
              [done = std::move(done_), result = std::move(result_)] { done(result); });
  }

  static constexpr std::size_t kMinPiece = 8192;
  BasicUpstreamExchange<Stream> exchange_;
  std::shared_ptr<UpstreamConnections<Stream>> connections_;
  std::shared_ptr<DeadlineSweeper> sweeper_;
  std::shared_ptr<const Request> request_;
  DoneExecutor done_executor_;
  Callback done_;
  std::shared_ptr<UpstreamResult> result_;
  std::string head_;  // the head as written: given, or AppendHead(request_) on start
  // A chunked request's serialized form (made only then: see BasicUpstreamExchange::DoWrite).
  std::unique_ptr<http::request<http::buffer_body>> message_;
  ExchangeOptions options_;
  std::size_t filled_ = 0;  // response body bytes read
};

}  // namespace sg::gateway
