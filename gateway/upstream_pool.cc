#include "gateway/upstream_pool.h"

#include <array>
#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "gateway/header_rules.h"

namespace sg::gateway {

using Clock = std::chrono::steady_clock;

const char* OutcomeName(UpstreamOutcome outcome) {
  switch (outcome) {
    case UpstreamOutcome::kOk:
      return "ok";
    case UpstreamOutcome::kError:
      return "error";
    case UpstreamOutcome::kTimeout:
      return "timeout";
    case UpstreamOutcome::kConnectFailed:
      return "connect_failed";
    case UpstreamOutcome::kOverload:
      return "overload";
  }
  return "error";
}

void SetUpstreamSocketOptions(Socket& socket) {
  beast::error_code ignored;  // a socket without it is slower, not wrong
  socket.set_option(tcp::no_delay(true), ignored);
}

// One request/response exchange: lease a connection (or connect), write, read header, read
// body, give the connection back. Runs on its shard's thread.
class UpstreamExchange : public std::enable_shared_from_this<UpstreamExchange>, public Deadlined {
 public:
  UpstreamExchange(std::shared_ptr<UpstreamPool> pool, size_t shard,
                   std::shared_ptr<const Request> request, std::chrono::microseconds timeout,
                   net::any_io_executor executor, UpstreamPool::Callback done, std::string head)
      : pool_(std::move(pool)),
        shard_(shard),
        request_(std::move(request)),
        executor_(std::move(executor)),
        done_(std::move(done)),
        result_(std::make_shared<UpstreamResult>()),
        head_text_(std::move(head)) {
    auto total = std::min(timeout, pool_->config().total_timeout);
    result_->dispatched = Clock::now();
    deadline_ = result_->dispatched + total;
    head_ = request_->method() == http::verb::head;
  }

  ~UpstreamExchange() override { pool_->sweepers_[shard_]->Remove(this); }

  void Start() {
    pool_->sweepers_[shard_]->Add(this);
    Attempt(/*allow_idle=*/true);
  }

  void CheckDeadline(Clock::time_point now) override {
    if (!stream_ || now < op_deadline_) return;
    op_deadline_ = Clock::time_point::max();
    timed_out_ = true;
    beast::error_code ignored;
    stream_->cancel(ignored);
  }

 private:
  // The pending operation must finish within `limit` (checked by the shard's sweeper).
  void SetOpDeadline(Clock::duration limit) {
    timed_out_ = false;
    op_deadline_ = Clock::now() + limit;
  }

  Clock::duration Remaining(std::optional<std::chrono::microseconds> cap = std::nullopt) const {
    Clock::duration left = deadline_ - Clock::now();
    if (cap && *cap < left) left = *cap;
    return left;
  }

  void Attempt(bool allow_idle) {
    auto lease = pool_->Acquire(shard_, allow_idle);
    if (lease.ejected) {
      return Finish(UpstreamOutcome::kConnectFailed, "every endpoint is ejected");
    }
    if (!lease.ok) {
      return Finish(UpstreamOutcome::kOverload, "upstream pool at max_connections");
    }
    endpoint_ = lease.endpoint;
    reused_ = lease.stream != nullptr;
    stream_ = lease.stream ? std::move(lease.stream) : pool_->NewStream(shard_);
    // Every step below runs on the shard's thread.
    net::dispatch(stream_->get_executor(),
                  beast::bind_front_handler(
                      reused_ ? &UpstreamExchange::DoWrite : &UpstreamExchange::DoConnect,
                      shared_from_this()));
  }

  void DoConnect() {
    // Connect within the connect timeout (and the whole-exchange deadline).
    SetOpDeadline(Remaining(pool_->config().connect_timeout));
    stream_->async_connect(
        pool_->endpoints_[endpoint_].address,
        beast::bind_front_handler(&UpstreamExchange::OnConnect, shared_from_this()));
  }

  void OnConnect(beast::error_code ec) {
    if (ec) {
      pool_->RecordResult(endpoint_, false, /*connect_failure=*/true);
      return Finish(UpstreamOutcome::kConnectFailed,
                    "connect " + pool_->endpoints_[endpoint_].name + ": " +
                        (timed_out_ ? std::string("timeout") : ec.message()));
    }
    SetUpstreamSocketOptions(*stream_);
    DoWrite();
  }

  void DoWrite() {
    // Send the whole request within the deadline.
    SetOpDeadline(Remaining());
    auto handler = beast::bind_front_handler(&UpstreamExchange::OnWrite, shared_from_this());
    if (request_->chunked()) return http::async_write(*stream_, *request_, std::move(handler));
    // Head and body in one gather write (the head written once, even when retried).
    if (head_text_.empty()) AppendHead(request_->base(), &head_text_);
    std::array<net::const_buffer, 2> buffers{net::buffer(head_text_),
                                             net::buffer(request_->body())};
    net::async_write(*stream_, buffers, std::move(handler));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return Fail(ec, /*may_retry=*/true);
    DoReadHeader();
  }

  void DoReadHeader() {
    // Read the response header within the header timeout.
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(pool_->config().max_response_bytes));
    parser_->header_limit(64 * 1024);
    if (head_) parser_->skip(true);
    SetOpDeadline(Remaining(pool_->config().header_timeout));
    http::async_read_header(
        *stream_, buffer_, *parser_,
        beast::bind_front_handler(&UpstreamExchange::OnReadHeader, shared_from_this()));
  }

  void OnReadHeader(beast::error_code ec, std::size_t) {
    if (ec) return Fail(ec, /*may_retry=*/!parser_->got_some() && buffer_.size() == 0);
    if (IsInterimStatus(parser_->get().result_int())) {
      // Dropped; the final response follows on the same connection.
      if (++interim_responses_ <= kMaxInterimResponses) return DoReadHeader();
      pool_->RecordResult(endpoint_, false);
      return Finish(UpstreamOutcome::kError,
                    TooManyInterimResponses(pool_->endpoints_[endpoint_].name));
    }
    if (parser_->is_done()) return OnReadBody({}, 0);
    // Read the body within the whole-exchange deadline.
    SetOpDeadline(Remaining());
    http::async_read(*stream_, buffer_, *parser_,
                     beast::bind_front_handler(&UpstreamExchange::OnReadBody, shared_from_this()));
  }

  void OnReadBody(beast::error_code ec, std::size_t) {
    if (ec) return Fail(ec, /*may_retry=*/false);
    result_->response = parser_->release();
    bool reusable = result_->response.keep_alive() && buffer_.size() == 0;
    pool_->Release(shard_, endpoint_, std::move(stream_), reusable);
    pool_->RecordResult(endpoint_, true);
    Finish(UpstreamOutcome::kOk, {});
  }

  // A transport failure. A reused connection the upstream had already closed is retried once on
  // a fresh connection (nothing of the response arrived, so the upstream saw no request).
  void Fail(beast::error_code ec, bool may_retry) {
    bool stale = ec == http::error::end_of_stream || ec == net::error::connection_reset ||
                 ec == net::error::broken_pipe || ec == net::error::eof;
    if (may_retry && reused_ && !retried_ && stale && Remaining().count() > 0) {
      retried_ = true;
      pool_->Release(shard_, endpoint_, std::move(stream_), false);
      buffer_.clear();
      return Attempt(/*allow_idle=*/false);
    }
    pool_->RecordResult(endpoint_, false);
    if (timed_out_ && ec == net::error::operation_aborted) {
      return Finish(UpstreamOutcome::kTimeout, "upstream timeout");
    }
    Finish(UpstreamOutcome::kError,
           "upstream " + pool_->endpoints_[endpoint_].name + ": " + ec.message());
  }

  void Finish(UpstreamOutcome outcome, std::string error) {
    if (stream_) pool_->Release(shard_, endpoint_, std::move(stream_), false);
    result_->outcome = outcome;
    result_->error = std::move(error);
    result_->completed = Clock::now();
    net::post(executor_, [done = std::move(done_), result = std::move(result_)] { done(result); });
  }

  std::shared_ptr<UpstreamPool> pool_;
  size_t shard_;
  std::shared_ptr<const Request> request_;
  net::any_io_executor executor_;
  UpstreamPool::Callback done_;
  std::shared_ptr<UpstreamResult> result_;
  Clock::time_point deadline_;
  bool head_ = false;
  size_t endpoint_ = 0;
  bool reused_ = false;
  bool retried_ = false;
  bool timed_out_ = false;
  int interim_responses_ = 0;
  Clock::time_point op_deadline_ = Clock::time_point::max();
  std::unique_ptr<Socket> stream_;
  std::string head_text_;  // the head as written: given, or AppendHead(request_) on first write
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

UpstreamPool::UpstreamPool(std::vector<net::io_context*> contexts,
                           std::vector<std::shared_ptr<DeadlineSweeper>> sweepers,
                           const UpstreamConfig& config, std::string pool_name,
                           bool fail_fast_when_ejected)
    : contexts_(std::move(contexts)),
      sweepers_(std::move(sweepers)),
      config_(config),
      pool_name_(std::move(pool_name)),
      fail_fast_when_ejected_(fail_fast_when_ejected) {
  tcp::resolver resolver(*contexts_.at(0));
  for (const auto& endpoint : config_.endpoints) {
    beast::error_code ec;
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
    if (ec || results.empty()) {
      throw std::runtime_error("upstream " + config_.name + ": cannot resolve " +
                               endpoint.ToString() + ": " + ec.message());
    }
    EndpointState state;
    state.address = results.begin()->endpoint();
    state.name = endpoint.ToString();
    state.idle.resize(contexts_.size());
    endpoints_.push_back(std::move(state));
  }
}

void UpstreamPool::Send(size_t shard, std::shared_ptr<const Request> request,
                        std::chrono::microseconds timeout, net::any_io_executor executor,
                        Callback done, std::string head) {
  std::make_shared<UpstreamExchange>(shared_from_this(), shard, std::move(request), timeout,
                                     std::move(executor), std::move(done), std::move(head))
      ->Start();
}

std::unique_ptr<Socket> UpstreamPool::NewStream(size_t shard) {
  created_.fetch_add(1, std::memory_order_relaxed);
  return std::make_unique<Socket>(contexts_[shard]->get_executor());
}

UpstreamPool::Lease UpstreamPool::Acquire(size_t shard, bool allow_idle) {
  uint64_t no_ticket = 0;
  return AcquireOrWait(shard, allow_idle, nullptr, false, &no_ticket);
}

UpstreamPool::Lease UpstreamPool::AcquireOrWait(size_t shard, bool allow_idle,
                                                std::function<void()> retry, bool front,
                                                uint64_t* ticket) {
  auto now = Clock::now();
  std::vector<std::unique_ptr<Socket>> expired;
  *ticket = 0;
  Lease lease;
  {
    std::lock_guard lock(mutex_);
    lease = AcquireLocked(shard, allow_idle, now, &expired);
    if (!lease.ok && !lease.ejected && retry && !shutdown_ &&
        waiters_.size() < static_cast<size_t>(config_.max_pending)) {
      // Queued under the same lock that found the pool full: no release can slip in between.
      Waiter waiter{next_ticket_++, shard, std::move(retry)};
      *ticket = waiter.ticket;
      if (front) {
        waiters_.push_front(std::move(waiter));
      } else {
        waiters_.push_back(std::move(waiter));
      }
    }
  }
  for (auto& stream : expired) {
    beast::error_code ignored;
    stream->close(ignored);
  }
  return lease;
}

UpstreamPool::Lease UpstreamPool::AcquireLocked(size_t shard, bool allow_idle,
                                                Clock::time_point now,
                                                std::vector<std::unique_ptr<Socket>>* expired) {
  Lease lease;
  // Round-robin over endpoints that are not ejected (all of them when every one is).
  size_t n = endpoints_.size();
  size_t chosen = next_ % n;
  bool all_down = true;  // every endpoint ejected after a connect failure
  for (size_t i = 0; i < n; ++i) {
    size_t candidate = (next_ + i) % n;
    const auto& endpoint = endpoints_[candidate];
    if (endpoint.ejected_until <= now) {
      chosen = candidate;
      all_down = false;
      break;
    }
    all_down = all_down && endpoint.ejected_for_connect;
  }
  if (all_down && fail_fast_when_ejected_) {
    lease.ejected = true;
    return lease;
  }
  next_ = chosen + 1;
  auto& state = endpoints_[chosen];
  lease.endpoint = chosen;
  auto& idle_list = state.idle[shard];
  while (allow_idle && !idle_list.empty()) {
    Idle idle = std::move(idle_list.back());
    idle_list.pop_back();
    if (now - idle.since < config_.idle_timeout) {
      lease.ok = true;
      lease.stream = std::move(idle.stream);
      reused_.fetch_add(1, std::memory_order_relaxed);
      return lease;
    }
    --open_;
    expired->push_back(std::move(idle.stream));
  }
  if (shutdown_) return lease;
  if (open_ < config_.max_connections) {
    ++open_;
    lease.ok = true;
    return lease;
  }
  // At the limit with a connection idle elsewhere (another shard's, another endpoint's): the
  // least recently used one there is closed and this exchange opens its own, so capacity is
  // never stranded idle on a shard that does not need it.
  for (auto& other : endpoints_) {
    for (auto& list : other.idle) {
      if (list.empty()) continue;
      expired->push_back(std::move(list.front().stream));
      list.erase(list.begin());
      lease.ok = true;  // open_ unchanged: one closed, one to open
      return lease;
    }
  }
  return lease;
}

void UpstreamPool::CancelWait(uint64_t ticket) {
  std::lock_guard lock(mutex_);
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->ticket == ticket) {
      waiters_.erase(it);
      return;
    }
  }
}

void UpstreamPool::WakeNext() {
  std::optional<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    if (waiters_.empty()) return;
    waiter = std::move(waiters_.front());
    waiters_.pop_front();
  }
  waiter->retry();
}

int UpstreamPool::pending() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(waiters_.size());
}

void UpstreamPool::Release(size_t shard, size_t endpoint, std::unique_ptr<Socket> stream,
                           bool reusable) {
  std::optional<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    if (!waiters_.empty()) {
      waiter = std::move(waiters_.front());
      waiters_.pop_front();
    }
    // Kept idle unless a waiter on another shard needs the capacity (a connection cannot move
    // between shards: it is closed, and the waiter opens one on its own shard).
    bool keep = reusable && !shutdown_ && stream->is_open() && (!waiter || waiter->shard == shard);
    if (keep) {
      endpoints_[endpoint].idle[shard].push_back({std::move(stream), Clock::now()});
    } else {
      --open_;
    }
  }
  if (stream) {
    beast::error_code ignored;
    stream->shutdown(tcp::socket::shutdown_both, ignored);
    stream->close(ignored);
  }
  if (waiter) waiter->retry();
}

void UpstreamPool::RecordResult(size_t endpoint, bool transport_ok, bool connect_failure) {
  std::lock_guard lock(mutex_);
  auto& state = endpoints_[endpoint];
  if (transport_ok) {
    state.consecutive_failures = 0;
    return;
  }
  if (config_.eject_after_failures > 0 &&
      ++state.consecutive_failures >= config_.eject_after_failures) {
    state.consecutive_failures = 0;
    state.ejected_until = Clock::now() + config_.eject_duration;
    state.ejected_for_connect = connect_failure;
    if (endpoints_.size() > 1) {
      spdlog::warn(
          "upstream {} ({}): ejecting {} for {} ms", config_.name, pool_name_, state.name,
          std::chrono::duration_cast<std::chrono::milliseconds>(config_.eject_duration).count());
    }
  }
}

bool UpstreamPool::Down() const {
  if (!fail_fast_when_ejected_) return false;
  auto now = Clock::now();
  std::lock_guard lock(mutex_);
  for (const auto& endpoint : endpoints_) {
    if (endpoint.ejected_until <= now || !endpoint.ejected_for_connect) return false;
  }
  return true;
}

void UpstreamPool::SweepIdle() {
  auto now = Clock::now();
  std::vector<std::unique_ptr<Socket>> closing;
  {
    std::lock_guard lock(mutex_);
    for (auto& state : endpoints_) {
      for (auto& list : state.idle) {
        auto keep = list.begin();
        for (auto& idle : list) {
          if (shutdown_ || now - idle.since >= config_.idle_timeout) {
            closing.push_back(std::move(idle.stream));
            --open_;
          } else {
            *keep++ = std::move(idle);
          }
        }
        list.erase(keep, list.end());
      }
    }
  }
  for (auto& stream : closing) {
    beast::error_code ignored;
    stream->close(ignored);
  }
}

void UpstreamPool::Shutdown() {
  std::deque<Waiter> waiters;  // their sessions are stopping too; dropped outside the lock
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
    waiters.swap(waiters_);
  }
  SweepIdle();
}

int UpstreamPool::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_;
}

int UpstreamPool::idle_connections() const {
  std::lock_guard lock(mutex_);
  int idle = 0;
  for (const auto& state : endpoints_) {
    for (const auto& list : state.idle) idle += static_cast<int>(list.size());
  }
  return idle;
}

}  // namespace sg::gateway
