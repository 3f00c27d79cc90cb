// UpstreamPool: an HTTP/1.1 client for one upstream (its endpoints, round-robin with passive
// ejection) with a bounded pool of keep-alive connections. Each exchange runs on its connection's
// own strand; the result is posted to the caller's executor.
//
// Thread safety: Send and the accessors may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "gateway/gateway_config.h"

namespace sg::gateway {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

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
  UpstreamPool(net::io_context& ioc, const UpstreamConfig& config, std::string pool_name);

  using Callback = std::function<void(std::shared_ptr<UpstreamResult>)>;
  // Sends `request` (complete, with its framing headers set) and reads the response. `timeout`
  // bounds the whole exchange (and is capped by the upstream's total_timeout). `done` is posted to
  // `executor` exactly once.
  void Send(std::shared_ptr<const Request> request, std::chrono::microseconds timeout,
            net::any_io_executor executor, Callback done);

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

 private:
  friend class UpstreamExchange;
  struct Idle {
    std::unique_ptr<beast::tcp_stream> stream;
    std::chrono::steady_clock::time_point since;
  };
  struct EndpointState {
    tcp::endpoint address;
    std::string name;
    std::vector<Idle> idle;
    int consecutive_failures = 0;
    std::chrono::steady_clock::time_point ejected_until{};
  };
  struct Lease {
    bool ok = false;  // false: pool at max_connections
    size_t endpoint = 0;
    std::unique_ptr<beast::tcp_stream> stream;  // null: connect a new one
  };

  Lease Acquire(bool allow_idle);
  // Gives a connection back: pooled when `reusable`, else closed.
  void Release(size_t endpoint, std::unique_ptr<beast::tcp_stream> stream, bool reusable);
  void RecordResult(size_t endpoint, bool transport_ok);
  std::unique_ptr<beast::tcp_stream> NewStream();

  net::io_context& ioc_;
  const UpstreamConfig config_;
  const std::string pool_name_;
  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> reused_{0};
  // Guarded by mutex_.
  mutable std::mutex mutex_;
  std::vector<EndpointState> endpoints_;
  size_t next_ = 0;
  int open_ = 0;  // leased + idle
  bool shutdown_ = false;
};

}  // namespace sg::gateway
