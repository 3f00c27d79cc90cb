// UpstreamPool: an HTTP/1.1 client for one upstream (its endpoints, round-robin with passive
// ejection) with a bounded pool of keep-alive connections. The gateway runs one io_context per I/O
// thread ("shard"); a connection lives on one shard's io_context and is reused only by exchanges
// of that shard, so an exchange never hops threads. A shard's io_context is run by exactly one
// thread, which serialises its handlers (the implicit strand). Exchanges (upstream_exchange.h)
// lease its connections through the UpstreamConnections seam; Send runs a whole buffered
// exchange (a mirror copy's) and posts the result to the caller's executor.
//
// Thread safety: Send, the UpstreamConnections methods and the accessors may be called from any
// thread.
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

#include "gateway/deadline_sweeper.h"
#include "gateway/gateway_config.h"
#include "gateway/upstream_exchange.h"

namespace sg::gateway {

class UpstreamPool final : public UpstreamConnections<Socket>,
                           public std::enable_shared_from_this<UpstreamPool> {
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
  int open_connections() const;
  int idle_connections() const;
  int pending() const;
  uint64_t connections_created() const { return created_.load(std::memory_order_relaxed); }
  uint64_t connections_reused() const { return reused_.load(std::memory_order_relaxed); }

  // UpstreamConnections: what an exchange (UpstreamExchange) leases and gives back. Every leased
  // connection MUST be released exactly once. When the pool is at max_connections, a `retry`
  // queues a waiter (FIFO over all shards; at most max_pending) under the same lock that found
  // it full. When a connection is given back, the first waiter's `retry` is called on the
  // releasing thread (it must only post to the waiter's executor), and the waiter acquires
  // again; a connection given back on another shard than the waiter's is closed, so that the
  // waiter's shard may open one. `front`: a waiter that lost its freed slot to another request
  // goes first again. WakeNext wakes the first waiter: called by a waiter woken too late to use
  // its slot (it had given up), so that the slot serves the next one.
  Lease AcquireOrWait(size_t shard, bool allow_idle, std::function<void()> retry, bool front,
                      uint64_t* ticket) override;
  void CancelWait(uint64_t ticket) override;
  void WakeNext() override;
  std::unique_ptr<Socket> NewStream(size_t shard) override;
  // Connects to the endpoint's address (resolved at start-up) and sets the socket's options.
  void Connect(Socket& stream, size_t endpoint,
               std::function<void(beast::error_code)> done) override;
  void Close(Socket& stream) override;
  void Release(size_t shard, size_t endpoint, std::unique_ptr<Socket> stream,
               bool reusable) override;
  void RecordResult(size_t endpoint, bool transport_ok, bool connect_failure = false) override;
  // The "host:port" name of endpoint `endpoint` (fixed at start-up).
  const std::string& endpoint_name(size_t endpoint) const override {
    return endpoints_[endpoint].name;
  }
  const UpstreamConfig& config() const override { return config_; }

 private:
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
