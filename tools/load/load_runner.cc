#include "tools/load/load_runner.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <deque>
#include <limits>
#include <numeric>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/strings.h"
#include "tools/load/locust_errors.h"

namespace sg::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Request = http::request<http::string_body>;

constexpr auto kLate = std::chrono::milliseconds(1);

// One request to send: which corpus item, and when it was due (the latency origin).
struct Job {
  size_t item;
  Clock::time_point due;
};

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A socket error in Locust's words (ConnectionResetError(104, ...)), else `what: message`.
std::string SocketError(const char* what, const boost::system::error_code& ec) {
  if (ec.category() == boost::system::system_category() ||
      ec.category() == boost::system::generic_category()) {
    return LocustOsError(ec.value());
  }
  return std::string(what) + ": " + ec.message();
}

// How one attempt at a request ended.
struct Exchange {
  int status = 0;  // 0: no response
  uint64_t bytes = 0;
  std::string error;       // empty: a response with status < 400; else Locust's text for it
  bool retryable = false;  // a reused keep-alive connection was closed before any response
  std::string body;        // kept only for LoadOptions::on_answer
};

// One run of the load: owns the io_context, the job source (closed loop: a counter; open loop:
// a scheduler feeding a queue) and the workers, each owning one keep-alive connection.
class LoadRun {
 public:
  LoadRun(const LoadOptions& options, const std::vector<CorpusItem>& items)
      : options_(options),
        items_(items),
        schedule_timer_(io_),
        progress_timer_(io_),
        second_timer_(io_),
        stop_timer_(io_),
        signals_(io_) {
    order_.resize(items.size());
    std::iota(order_.begin(), order_.end(), size_t{0});
    if (options.shuffle) std::shuffle(order_.begin(), order_.end(), std::mt19937_64(options.seed));
    for (const auto& item : items) requests_.push_back(BuildRequest(item));
    if (options.requests) {
      limit_ = *options.requests;
    } else if (!options.duration) {
      limit_ = items.size();  // one pass over the corpus
    }
  }

  LoadResult Run() {
    beast::error_code ec;
    tcp::resolver resolver(io_);
    endpoints_ = resolver.resolve(options_.url.host, options_.url.port, ec);
    start_ = Clock::now();
    last_done_ = start_;
    result_.stats.set_start_unix_s(UnixSeconds());
    deadline_ = options_.duration ? start_ + *options_.duration : Clock::time_point::max();
    if (ec) {
      result_.stats.Record(Method(), options_.url.target, 0, false, 0, "resolve: " + ec.message());
      return std::move(result_);
    }
    if (options_.stop) {
      asio::co_spawn(io_, WatchStop(), asio::detached);
    } else {
      signals_.add(SIGINT, ec);
      signals_.add(SIGTERM, ec);
      asio::co_spawn(io_, HandleSignals(), asio::detached);
    }
    if (options_.progress) asio::co_spawn(io_, Progress(), asio::detached);
    if (options_.every_second) asio::co_spawn(io_, EverySecond(), asio::detached);
    if (options_.rate) {
      asio::co_spawn(io_, Schedule(), asio::detached);
    } else {
      schedule_done_ = true;  // closed loop: NextJob makes jobs on demand
      for (int i = 0; i < options_.users; ++i) SpawnWorker();
    }
    io_.run();
    result_.elapsed_s = std::chrono::duration<double>(last_done_ - start_).count();
    if (options_.every_second) options_.every_second(result_.stats, UnixSeconds(), 0);
    return std::move(result_);
  }

 private:
  std::string Method() const { return options_.method; }

  Request BuildRequest(const CorpusItem& item) const {
    Request request(http::string_to_verb(options_.method), options_.url.target, 11);
    if (request.method() == http::verb::unknown) request.method_string(options_.method);
    request.set(http::field::host, options_.url.HostHeader());
    request.set(http::field::user_agent, "sg-load");
    const std::string& type =
        options_.content_type.empty() ? item.content_type : options_.content_type;
    if (!type.empty()) request.set(http::field::content_type, type);
    if (!options_.label_header.empty() && item.label) {
      request.set(options_.label_header, *item.label);
    }
    for (const auto& [name, value] : options_.headers) request.set(name, value);
    request.body() = item.body;
    request.keep_alive(true);
    request.prepare_payload();
    return request;
  }

  size_t NextItem() { return order_[cursor_++ % order_.size()]; }

  bool MayIssue() const { return !stopping_ && issued_ < limit_ && Clock::now() < deadline_; }

  void SpawnWorker() {
    ++live_workers_;
    asio::co_spawn(io_, Worker(), asio::detached);
  }

  void WakeOne() {
    asio::steady_timer* timer = idle_.back();
    idle_.pop_back();
    timer->cancel();
  }

  void WakeAll() {
    while (!idle_.empty()) WakeOne();
  }

  // Called whenever a worker exits or the schedule ends: the run is over when both are done.
  void MaybeFinish() {
    if (!schedule_done_ || live_workers_ > 0 || finished_) return;
    finished_ = true;
    progress_timer_.cancel();
    second_timer_.cancel();
    stop_timer_.cancel();
    beast::error_code ec;
    signals_.cancel(ec);
  }

  // Open loop: queues job k at its due time; wakes an idle worker or opens a connection.
  asio::awaitable<void> Schedule() {
    ArrivalSchedule schedule(options_.arrival, *options_.rate, options_.seed);
    beast::error_code ec;
    while (!stopping_ && issued_ < limit_) {
      Clock::time_point due = start_ + schedule.Next();
      if (due >= deadline_) break;
      schedule_timer_.expires_at(due);
      co_await schedule_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping_) break;
      pending_.push_back({NextItem(), due});
      ++issued_;
      if (!idle_.empty()) {
        WakeOne();
      } else if (live_workers_ < options_.max_connections) {
        SpawnWorker();
      }  // else: it waits in the queue for the next free connection, its clock running
    }
    schedule_done_ = true;
    WakeAll();
    MaybeFinish();
  }

  // The next job for a worker, or nullopt when the run is over for it.
  asio::awaitable<std::optional<Job>> NextJob(asio::steady_timer& wake) {
    if (!options_.rate) {
      if (!MayIssue()) co_return std::nullopt;
      ++issued_;
      co_return Job{NextItem(), Clock::now()};
    }
    beast::error_code ec;
    while (pending_.empty()) {
      if (schedule_done_ || stopping_) co_return std::nullopt;
      idle_.push_back(&wake);
      wake.expires_at(Clock::time_point::max());
      co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    Job job = pending_.front();
    pending_.pop_front();
    co_return job;
  }

  asio::awaitable<void> Worker() {
    auto executor = co_await asio::this_coro::executor;
    beast::tcp_stream stream(executor);
    asio::steady_timer wake(executor);
    beast::flat_buffer buffer;
    bool connected = false;
    while (auto job = co_await NextJob(wake)) {
      Clock::time_point send_start = Clock::now();
      if (send_start - job->due > kLate) ++result_.late_sends;
      Clock::time_point deadline = send_start + options_.timeout;
      Exchange outcome;
      for (int attempt = 0; attempt < 2; ++attempt) {
        bool reused = connected;
        outcome = co_await Send(stream, buffer, connected, requests_[job->item], deadline);
        if (!outcome.retryable || !reused) break;
      }
      last_done_ = Clock::now();
      auto latency = std::chrono::duration_cast<std::chrono::microseconds>(last_done_ - job->due);
      result_.stats.Record(Method(), options_.url.target, latency.count(), outcome.error.empty(),
                           outcome.bytes, outcome.error, UnixSeconds());
      if (options_.on_answer && outcome.error.empty()) options_.on_answer(job->item, outcome.body);
      window_latencies_us_.push_back(latency.count());
    }
    if (connected) {
      beast::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream.socket().close(ec);
    }
    --live_workers_;
    MaybeFinish();
  }

  // One attempt: connect if needed, write, read. Never throws; errors come back as text.
  asio::awaitable<Exchange> Send(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                 bool& connected, const Request& request,
                                 Clock::time_point deadline) {
    Exchange outcome;
    beast::error_code ec;
    auto close = [&] {
      beast::error_code ignored;
      stream.socket().close(ignored);
      connected = false;
      buffer.clear();
    };
    if (!connected) {
      stream.expires_at(deadline);
      co_await stream.async_connect(endpoints_, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        outcome.error = ec == beast::error::timeout
                            ? LocustConnectTimeout(options_.url.host, TimeoutSeconds())
                            : SocketError("connect", ec);
        close();
        co_return outcome;
      }
      stream.socket().set_option(tcp::no_delay(true), ec);
      connected = true;
      ++result_.connections_opened;
    }
    stream.expires_at(deadline);
    co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      outcome.error = ec == beast::error::timeout ? ReadTimeout() : SocketError("write", ec);
      outcome.retryable = ec != beast::error::timeout;
      close();
      co_return outcome;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(options_.body_limit);
    stream.expires_at(deadline);
    co_await http::async_read(stream, buffer, parser,
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // A keep-alive connection the server closed while idle: nothing was answered.
      outcome.retryable = !parser.got_some() &&
                          (ec == http::error::end_of_stream || ec == asio::error::connection_reset);
      if (ec == beast::error::timeout) {
        outcome.error = ReadTimeout();
      } else if (ec == http::error::end_of_stream && !parser.got_some()) {
        outcome.error = LocustRemoteDisconnected();
      } else {
        outcome.error = SocketError("read", ec);
      }
      close();
      co_return outcome;
    }
    const auto& response = parser.get();
    outcome.status = response.result_int();
    outcome.bytes = response.body().size();
    if (options_.on_answer) outcome.body = response.body();
    if (outcome.status >= 400) {
      // Beast gives its own phrase for an empty reason: "<unknown-status>" for a code it does not
      // know, where requests has "" (a known code with an empty reason reads as the standard one).
      std::string_view reason = response.reason();
      if (reason == "<unknown-status>") reason = "";
      outcome.error = LocustHttpError(outcome.status, reason, options_.url.Normalized());
    }
    if (!response.keep_alive()) close();
    co_return outcome;
  }

  asio::awaitable<void> Progress() {
    beast::error_code ec;
    uint64_t last_requests = 0;
    while (!finished_) {
      progress_timer_.expires_after(std::chrono::seconds(1));
      co_await progress_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (finished_) break;
      double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
      uint64_t done = result_.stats.requests();
      std::string line =
          Fixed(elapsed, 0) + "s  sent " + std::to_string(issued_) + "  done " +
          std::to_string(done) + "  failed " + std::to_string(result_.stats.failures()) +
          "  in flight " + std::to_string(issued_ - done - pending_.size()) + "  queued " +
          std::to_string(pending_.size()) + "  " + std::to_string(done - last_requests) + " req/s";
      if (!window_latencies_us_.empty()) {
        std::sort(window_latencies_us_.begin(), window_latencies_us_.end());
        line += "  p50 " + Fixed(NearestRankPercentile(window_latencies_us_, 0.5) / 1000.0, 2) +
                " ms  p99 " + Fixed(NearestRankPercentile(window_latencies_us_, 0.99) / 1000.0, 2) +
                " ms";
      }
      window_latencies_us_.clear();
      last_requests = done;
      options_.progress(line);
    }
  }

  // LoadOptions::every_second: at the start, then each second until the run is over.
  asio::awaitable<void> EverySecond() {
    beast::error_code ec;
    auto next = Clock::now();
    while (!finished_) {
      options_.every_second(result_.stats, UnixSeconds(), live_workers_);
      next += std::chrono::seconds(1);
      second_timer_.expires_at(next);
      co_await second_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  double TimeoutSeconds() const { return std::chrono::duration<double>(options_.timeout).count(); }

  std::string ReadTimeout() const {
    return LocustReadTimeout(options_.url.host, options_.url.port, TimeoutSeconds());
  }

  // First SIGINT/SIGTERM: stop issuing, let in-flight requests finish. Second: stop at once.
  asio::awaitable<void> HandleSignals() {
    beast::error_code ec;
    co_await signals_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    StopIssuing();
    co_await signals_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) io_.stop();
  }

  // LoadOptions::stop: polled, since the caller owns the signals.
  asio::awaitable<void> WatchStop() {
    beast::error_code ec;
    while (!finished_ && !options_.stop->load()) {
      stop_timer_.expires_after(std::chrono::milliseconds(50));
      co_await stop_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!finished_) StopIssuing();
  }

  // Stop issuing requests; those in flight finish.
  void StopIssuing() {
    stopping_ = true;
    result_.interrupted = true;
    pending_.clear();
    schedule_timer_.cancel();
    WakeAll();
  }

  const LoadOptions& options_;
  const std::vector<CorpusItem>& items_;
  asio::io_context io_{1};
  tcp::resolver::results_type endpoints_;
  std::vector<Request> requests_;  // one prepared request per corpus item
  std::vector<size_t> order_;
  size_t cursor_ = 0;
  uint64_t limit_ = std::numeric_limits<uint64_t>::max();
  uint64_t issued_ = 0;
  Clock::time_point start_, deadline_, last_done_;
  bool stopping_ = false;
  bool schedule_done_ = false;
  bool finished_ = false;
  int live_workers_ = 0;
  std::deque<Job> pending_;                   // open loop: due jobs waiting for a connection
  std::vector<asio::steady_timer*> idle_;     // open loop: workers waiting for a job
  std::vector<int64_t> window_latencies_us_;  // since the last progress line
  asio::steady_timer schedule_timer_;
  asio::steady_timer progress_timer_;
  asio::steady_timer second_timer_;
  asio::steady_timer stop_timer_;
  asio::signal_set signals_;
  LoadResult result_;
};

}  // namespace

std::optional<std::string> CheckReachable(const HttpUrl& url, std::chrono::milliseconds timeout) {
  asio::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  std::string where = url.HostPort();
  if (ec) return "cannot resolve " + where + ": " + ec.message();
  beast::tcp_stream stream(io);
  stream.expires_after(timeout);
  stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  io.run();
  if (ec == beast::error::timeout) return "cannot connect to " + where + ": timed out";
  if (ec) return "cannot connect to " + where + ": " + ec.message();
  stream.socket().close(ec);
  return std::nullopt;
}

LoadResult RunLoad(const LoadOptions& options, const std::vector<CorpusItem>& items) {
  LoadRun run(options, items);
  return run.Run();
}

}  // namespace sg::load
