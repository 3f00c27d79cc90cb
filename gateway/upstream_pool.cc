#include "gateway/upstream_pool.h"

#include <optional>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>

namespace sg::gateway {

using Clock = std::chrono::steady_clock;

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
  auto exchange = std::make_shared<BufferedExchange<Socket>>(
      shared_from_this(), shard, contexts_[shard]->get_executor(), sweepers_[shard],
      std::move(request), timeout, std::move(executor), std::move(done), std::move(head));
  // Every step runs on the shard's thread.
  net::dispatch(contexts_[shard]->get_executor(), [exchange] { exchange->Start(); });
}

std::unique_ptr<Socket> UpstreamPool::NewStream(size_t shard) {
  created_.fetch_add(1, std::memory_order_relaxed);
  return std::make_unique<Socket>(contexts_[shard]->get_executor());
}

void UpstreamPool::Connect(Socket& stream, size_t endpoint,
                           std::function<void(beast::error_code)> done) {
  stream.async_connect(endpoints_[endpoint].address,
                       [&stream, done = std::move(done)](beast::error_code ec) {
                         if (!ec) SetUpstreamSocketOptions(stream);
                         done(ec);
                       });
}

void UpstreamPool::Close(Socket& stream) {
  beast::error_code ignored;
  stream.close(ignored);
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
