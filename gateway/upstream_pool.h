// UpstreamPool: an HTTP/1.1 client for one upstream (its endpoints, round-robin with passive
// ejection) with a bounded pool of keep-alive connections. The gateway runs one io_context per I/O
// thread ("shard"); a connection lives on one shard's io_context and is reused only by exchanges
// of that shard, so an exchange never hops threads. A shard's io_context is run by exactly one
// thread, which serialises its handlers (the implicit strand). The result is posted to the
// caller's executor.
//
// Thread safety: Send and the accessors may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "gateway/deadline_sweeper.h"
#include "gateway/gateway_config.h"

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

// Sets what every connected upstream socket needs: TCP_NODELAY, so that a request's later small
// write (a body piece after its head, the last chunk) goes out at once instead of waiting for the
// upstream to acknowledge the earlier one, which it delays (40 ms on Linux) while it waits for
// the rest of the request.
void SetUpstreamSocketOptions(Socket& socket);

struct UpstreamResult {
  UpstreamOutcome outcome = UpstreamOutcome::kError;
  Response response;  // valid when outcome == kOk
  std::string error;  // human text otherwise
  std::chrono::steady_clock::time_point dispatched;
  std::chrono::steady_clock::time_point completed;
};

class UpstreamPool : public std::enable_shared_from_this<UpstreamPool> {
 public:
  // Resolves endpoint names now (start-up). Throws std::runtime_error when one cannot be resolved.
  // `contexts`: one per shard, each run by one thread. `fail_fast_when_ejected`: when every
  // endpoint is ejected after failing to connect, exchanges fail at once with kConnectFailed
  // instead of trying anyway (for mirrors: a dead shadow costs nothing per request).
  // `sweepers`: one per shard, checked by that shard's thread (shared: exchanges destroyed late,
  // with their io_context, still deregister).
  UpstreamPool(std::vector<net::io_context*> contexts,
               std::vector<std::shared_ptr<DeadlineSweeper>> sweepers, const UpstreamConfig& config,
               std::string pool_name, bool fail_fast_when_ejected = false);

  using Callback = std::function<void(std::shared_ptr<UpstreamResult>)>;
  // Sends `request` (complete, with its framing headers set) and reads the response. `timeout`
  // bounds the whole exchange (and is capped by the upstream's total_timeout). `done` is posted to
  // `executor` exactly once. `head`, when not empty, is the head written instead of `request`'s
  // own (a mirror copy's, AppendShadowHead): the request then only lends its body.
  // REQUIRES: `shard` < the number of contexts; `executor` belongs to that shard; a non-empty
  // `head` only for a request that is not chunked.
  void Send(size_t shard, std::shared_ptr<const Request> request, std::chrono::microseconds timeout,
            net::any_io_executor executor, Callback done, std::string head = {});

  // True while every endpoint is ejected after connect failures and the pool fails fast.
  bool Down() const;
  // Closes idle connections past the idle timeout.
  void SweepIdle();
  // Closes every idle connection; later releases close instead of pooling.
  void Shutdown();

  const std::string& upstream_name() const { return config_.name; }
  const std::string& pool_name() const { return pool_name_; }
  const UpstreamConfig& config() const { return config_; }
  int open_connections() const;
  int idle_connections() const;
  uint64_t connections_created() const { return created_.load(std::memory_order_relaxed); }
  uint64_t connections_reused() const { return reused_.load(std::memory_order_relaxed); }

  // For an exchange its caller drives itself (the session's streamed path): lease a connection,
  // connect when the lease has none (NewStream, endpoint_address), give it back with Release
  // (pooled only when `reusable`: the exchange completed cleanly) and report with RecordResult.
  // Every leased connection MUST be released exactly once.
  struct Lease {
    bool ok = false;  // false: pool at max_connections (or every endpoint ejected, fail-fast)
    bool ejected = false;
    size_t endpoint = 0;
    std::unique_ptr<Socket> stream;  // null: connect a new one
  };
  Lease Acquire(size_t shard, bool allow_idle);
  // Acquire, and when the pool is at max_connections, also queue a waiter (FIFO over all shards;
  // at most max_pending) under the same lock, setting `ticket` (0: not queued). When a connection
  // is given back, the first waiter's `retry` is called on the releasing thread (it must only
  // post to the waiter's executor), and the waiter acquires again; a connection given back on
  // another shard than the waiter's is closed, so that the waiter's shard may open one. `front`:
  // a waiter that lost its freed slot to another request goes first again.
  Lease AcquireOrWait(size_t shard, bool allow_idle, std::function<void()> retry, bool front,
                      uint64_t* ticket);
  // Removes a waiter that gave up (timeout); a no-op once its retry was called.
  void CancelWait(uint64_t ticket);
  // Wakes the first waiter, if any: called by a waiter woken too late to use its slot (it had
  // given up), so that the slot serves the next one.
  void WakeNext();
  int pending() const;
  void Release(size_t shard, size_t endpoint, std::unique_ptr<Socket> stream, bool reusable);
  void RecordResult(size_t endpoint, bool transport_ok, bool connect_failure = false);
  std::unique_ptr<Socket> NewStream(size_t shard);
  // The resolved address and the "host:port" name of endpoint `endpoint` (fixed at start-up).
  const tcp::endpoint& endpoint_address(size_t endpoint) const {
    return endpoints_[endpoint].address;
  }
  const std::string& endpoint_name(size_t endpoint) const { return endpoints_[endpoint].name; }

 private:
  friend class UpstreamExchange;
  struct Idle {
    std::unique_ptr<Socket> stream;
    std::chrono::steady_clock::time_point since;
  };
  struct Waiter {
    uint64_t ticket = 0;
    size_t shard = 0;
    std::function<void()> retry;
  };
  Lease AcquireLocked(size_t shard, bool allow_idle, std::chrono::steady_clock::time_point now,
                      std::vector<std::unique_ptr<Socket>>* expired);
  struct EndpointState {
    tcp::endpoint address;
    std::string name;
    std::vector<std::vector<Idle>> idle;  // per shard
    int consecutive_failures = 0;
    std::chrono::steady_clock::time_point ejected_until{};
    bool ejected_for_connect = false;  // the failure that ejected it was a connect failure
  };

  const std::vector<net::io_context*> contexts_;
  const std::vector<std::shared_ptr<DeadlineSweeper>> sweepers_;
  const UpstreamConfig config_;
  const std::string pool_name_;
  const bool fail_fast_when_ejected_;
  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> reused_{0};
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::vector<EndpointState> endpoints_;
  size_t next_ = 0;
  int open_ = 0;  // leased + idle
  std::deque<Waiter> waiters_;
  uint64_t next_ticket_ = 1;
  bool shutdown_ = false;
};

}  // namespace sg::gateway
