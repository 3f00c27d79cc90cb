#include "gateway/gateway.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/cpu_budget.h"
#include "common/http_server.h"
#include "common/strings.h"
#include "comparator/online_comparator.h"
#include "gateway/admin_guard.h"
#include "gateway/comparison_admin.h"
#include "gateway/cutover_admin.h"
#include "gateway/cutover_pair_sink.h"
#include "gateway/gateway_state.h"
#include "gateway/proxy_session.h"

namespace sg::gateway {

using Clock = std::chrono::steady_clock;

namespace {

// io_threads 0: one I/O thread per CPU of the budget sg-serve plans from (affinity and cgroup
// cpuset, capped by the cgroup quota rounded up), so a pod limited to 2 CPUs on a 64-CPU node runs
// 2, not 64.
int AvailableCpus() {
  return ThreadBudget(DiscoverCpuBudget("", CurrentAffinity()));
}

// "host:pid:start_us". Unique per process: in a container the gateway is PID 1 under the pod's
// host name at every restart, and a restarted gateway appending to the same pair log must count
// as another instance (its counters start again from 0), or the earlier run's are lost.
std::string InstanceName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + std::to_string(NowUnixMicros());
}

}  // namespace

// ---- GatewayState ----

GatewayState::GatewayState(std::vector<net::io_context*> contexts_in,
                           std::vector<net::io_context*> shadow_contexts_in,
                           const GatewayConfig& config_in, std::shared_ptr<PairSink> sink_in)
    : contexts(std::move(contexts_in)),
      shadow_contexts(std::move(shadow_contexts_in)),
      config(config_in),
      routes(config_in.routes),
      metrics(registry),
      sink(std::move(sink_in)),
      body_budget(std::make_shared<BodyBudget>(config_in.max_buffered_body_bytes)) {
  std::vector<std::shared_ptr<DeadlineSweeper>> sweepers;
  for (size_t i = 0; i < contexts.size(); ++i) {
    shards.push_back(std::make_unique<Shard>());
    sweepers.push_back(shards.back()->exchanges);
  }
  for (size_t i = 0; i < shadow_contexts.size(); ++i) {
    shadow_sweepers.push_back(std::make_shared<DeadlineSweeper>());
  }
  const auto& mirror_contexts = shadow_contexts.empty() ? contexts : shadow_contexts;
  const auto& mirror_sweepers = shadow_contexts.empty() ? sweepers : shadow_sweepers;
  unrouted_by_status = std::make_unique<std::atomic<Counter*>[]>(500);
  for (const auto& route : config.routes) {
    RouteRuntime runtime;
    runtime.config = route;
    auto& pool = primary_pools[route.upstream];
    if (!pool) {
      pool = std::make_shared<UpstreamPool>(contexts, sweepers,
                                            *config.FindUpstream(route.upstream), "primary");
    }
    runtime.primary = pool;
    runtime.requests = &metrics.route_requests.WithLabels({route.name});
    runtime.primary_latency = &metrics.primary_latency.WithLabels({route.name});
    runtime.responses_by_status = std::make_unique<std::atomic<Counter*>[]>(500);
    for (const auto& mirror : route.mirrors) {
      // Every mirror has its own pool: a slow shadow never holds primary connections. A shadow
      // whose endpoints are all ejected fails fast (counted connect_failed) until one is back.
      auto shadow_pool = std::make_shared<UpstreamPool>(
          mirror_contexts, mirror_sweepers, *config.FindUpstream(mirror.upstream),
          "mirror:" + route.name + "/" + mirror.name, /*fail_fast_when_ejected=*/true);
      runtime.mirrors.push_back(
          std::make_unique<MirrorRuntime>(mirror, route.name, std::move(shadow_pool), metrics));
    }
    if (route.cutover.enabled()) {
      // The candidate serves through a primary pool of its upstream; the requests it serves are
      // mirrored back to the route's upstream, with the candidate mirror's settings and name.
      size_t index = 0;
      while (route.mirrors[index].name != route.cutover.candidate) ++index;  // checked by config
      const MirrorConfig& candidate = route.mirrors[index];
      runtime.candidate_mirror = runtime.mirrors[index].get();
      auto& candidate_pool = primary_pools[candidate.upstream];
      if (!candidate_pool) {
        candidate_pool = std::make_shared<UpstreamPool>(
            contexts, sweepers, *config.FindUpstream(candidate.upstream), "primary");
      }
      runtime.candidate_primary = candidate_pool;
      MirrorConfig back = candidate;
      back.upstream = route.upstream;
      const std::string label = candidate.name + "~reverse";
      auto back_pool = std::make_shared<UpstreamPool>(
          mirror_contexts, mirror_sweepers, *config.FindUpstream(route.upstream),
          "mirror:" + route.name + "/" + label, /*fail_fast_when_ejected=*/true);
      runtime.reverse_mirror =
          std::make_unique<MirrorRuntime>(back, route.name, std::move(back_pool), metrics, label);
      runtime.cutover = std::make_shared<Cutover>(
          route.name, route.cutover,
          Cutover::Judging{config.comparison.rules, config.comparison.gates,
                           static_cast<size_t>(config.comparison.queue_capacity)},
          &metrics);
      cutovers.push_back(runtime.cutover);
    }
    route_runtimes.push_back(std::move(runtime));
  }
  // Every pair record passes the cutovers on its way to the sink (a cutover requires the
  // comparison, so there is a sink).
  if (!cutovers.empty() && sink) sink = std::make_shared<CutoverPairSink>(sink, cutovers);
  if (config.access_log != AccessLogFormat::kOff) {
    spdlog::sink_ptr out = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    if (!config.access_log_path.empty()) {
      std::string error;
      access_log_file = ReopenableFileSink::Open(config.access_log_path, &error);
      if (!access_log_file) throw std::runtime_error("access_log_path: " + error);
      out = access_log_file;
    }
    access_log = std::make_shared<spdlog::logger>("access", std::move(out));
    access_log->set_pattern("%v");
  }
}

void GatewayState::CountResponse(RouteRuntime* route, int status) {
  auto& slots = route ? route->responses_by_status : unrouted_by_status;
  if (status < 100 || status > 599) status = 599;
  auto& slot = slots[static_cast<size_t>(status - 100)];
  Counter* counter = slot.load(std::memory_order_acquire);
  if (!counter) {
    counter =
        &metrics.requests.WithLabels({route ? route->config.name : "none", std::to_string(status)});
    slot.store(counter, std::memory_order_release);
  }
  counter->Increment();
}

void GatewayState::AddSession(size_t shard, const std::shared_ptr<ProxySession>& session) {
  auto& registry = *shards[shard];
  std::lock_guard lock(registry.mutex);
  registry.sessions[session.get()] = session;
}

void GatewayState::RemoveSession(size_t shard, ProxySession* session) {
  auto& registry = *shards[shard];
  std::lock_guard lock(registry.mutex);
  registry.sessions.erase(session);
}

std::vector<std::shared_ptr<ProxySession>> GatewayState::LiveSessions() {
  std::vector<std::shared_ptr<ProxySession>> live;
  for (auto& registry : shards) {
    std::lock_guard lock(registry->mutex);
    for (auto& [_, weak] : registry->sessions) {
      if (auto session = weak.lock()) live.push_back(std::move(session));
    }
  }
  return live;
}

void GatewayState::CheckDeadlines(size_t shard) {
  auto now = std::chrono::steady_clock::now();
  auto& registry = *shards[shard];
  std::lock_guard lock(registry.mutex);
  // A session in the map is alive: its destructor removes it under this mutex.
  for (auto& [session, _] : registry.sessions) session->CheckDeadline(now);
  registry.exchanges->CheckAll(now);
}

void GatewayState::CheckShadowDeadlines(size_t index) {
  shadow_sweepers[index]->CheckAll(std::chrono::steady_clock::now());
}

// ---- Gateway::Impl ----

class Gateway::Impl {
 public:
  Impl(GatewayConfig config, std::shared_ptr<PairSink> sink,
       std::shared_ptr<comparator::OnlineComparator> online)
      : config_(std::move(config)),
        sink_(std::move(sink)),
        online_(std::move(online)),
        comparison_admin_(online_, config_.comparison),
        threads_count_(config_.io_threads > 0 ? config_.io_threads : AvailableCpus()),
        contexts_(MakeContexts(threads_count_)),
        shadow_contexts_(MakeContexts(config_.shadow_threads)),
        ioc_(*contexts_[0]),
        acceptor_(ioc_),
        signals_(ioc_, SIGTERM, SIGINT),
        counters_timer_(ioc_),
        drain_timer_(ioc_),
        accept_backoff_(acceptor_.get_executor()),
        reopen_signal_(ioc_, SIGHUP),
        instance_(InstanceName()) {}

  static std::vector<std::unique_ptr<net::io_context>> MakeContexts(int count) {
    std::vector<std::unique_ptr<net::io_context>> contexts;
    // One thread runs each: concurrency hint 1 lets Asio queue handlers posted from that thread
    // privately and never wake another thread (its mutexes stay on: other threads post too).
    for (int i = 0; i < count; ++i) contexts.push_back(std::make_unique<net::io_context>(1));
    return contexts;
  }

  bool Start(std::string* error) {
    std::vector<net::io_context*> contexts;
    for (auto& context : contexts_) {
      contexts.push_back(context.get());
      work_.push_back(net::make_work_guard(*context));
    }
    std::vector<net::io_context*> shadow_contexts;
    for (auto& context : shadow_contexts_) {
      shadow_contexts.push_back(context.get());
      work_.push_back(net::make_work_guard(*context));
    }
    try {
      state_ = std::make_shared<GatewayState>(contexts, shadow_contexts, config_, sink_);
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
    // Every cutover decision also goes to the pair log: a "cutover" line of this instance.
    for (auto& cutover : state_->cutovers) {
      if (!sink_) break;
      cutover->SetDecisionLog([sink = sink_, instance = instance_](CutoverDecision decision) {
        decision.instance = instance;
        sink->Submit(std::move(decision));
      });
    }
    RegisterCollectHook();
    cutover_admin_ =
        std::make_unique<CutoverAdmin>(state_->cutovers, config_.comparison.report_dir);
    if (!Listen(error)) return false;
    sg::http::ServerOptions admin_options;
    admin_options.address = config_.admin_host;
    admin_options.port = config_.admin_port;
    admin_ = std::make_unique<sg::http::HttpServer>(
        ioc_, admin_options, [this](sg::http::Request&& request, sg::http::Responder respond) {
          std::string_view target(request.target().data(), request.target().size());
          if (auto refusal = RefuseAdmin(request, target.substr(0, target.find('?')))) {
            respond(std::move(*refusal));
          } else if (ComparisonAdmin::Matches(target.substr(0, target.find('?')))) {
            RunOnAdminWorker(
                std::move(request), std::move(respond),
                [this](const sg::http::Request& r) { return comparison_admin_.Handle(r); });
          } else if (CutoverAdmin::Matches(target.substr(0, target.find('?')))) {
            RunOnAdminWorker(
                std::move(request), std::move(respond),
                [this](const sg::http::Request& r) { return cutover_admin_->Handle(r); });
          } else {
            respond(HandleAdmin(request));
          }
        });
    if (!admin_->Start(error)) {
      *error = "admin listener: " + *error;
      return false;
    }
    // Before the I/O threads start: no admin request is read before it exists.
    admin_guard_ = std::make_unique<AdminGuard>(config_.admin, admin_->port());
    WarnAboutAdminExposure();
    signals_.async_wait([this](beast::error_code ec, int signal) {
      if (ec) return;
      spdlog::info(
          "signal {}: stopping (grace {} ms)", signal,
          std::chrono::duration_cast<std::chrono::milliseconds>(config_.shutdown_grace).count());
      BeginStop();
    });
    WaitForReopen();
    WarnAboutDescriptorLimit();
    DoAccept();
    ScheduleCounters();
    for (auto& cutover : state_->cutovers) cutover->StartEvaluating();
    for (size_t i = 0; i < contexts_.size(); ++i) {
      sweepers_.push_back(std::make_unique<net::steady_timer>(*contexts_[i]));
      ScheduleSweep(sweepers_.back().get(), [this, i] { state_->CheckDeadlines(i); });
    }
    // Threads are named here rather than by themselves, so that each bears its name once the
    // "listening" line below is logged (one not yet scheduled could not have named itself).
    for (auto& context : contexts_) {
      threads_.emplace_back([context = context.get()] { context->run(); });
      pthread_setname_np(threads_.back().native_handle(), "sg-io");
    }
    for (size_t i = 0; i < shadow_contexts_.size(); ++i) {
      shadow_sweepers_.push_back(std::make_unique<net::steady_timer>(*shadow_contexts_[i]));
      ScheduleSweep(shadow_sweepers_.back().get(), [this, i] { state_->CheckShadowDeadlines(i); });
      threads_.emplace_back([this, context = shadow_contexts_[i].get()] {
        // Linux nice values are per thread: only this one yields.
        if (config_.shadow_nice > 0 &&
            setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), config_.shadow_nice) != 0) {
          spdlog::warn("shadow thread: setpriority({}): {}", config_.shadow_nice,
                       std::strerror(errno));
        }
        context->run();
      });
      pthread_setname_np(threads_.back().native_handle(), "sg-shadow");
    }
    spdlog::info(
        "shadowgate listening on {} (admin {}), {} I/O threads, {} shadow threads, {} routes",
        Endpoint{config_.listen_host, port_}.ToString(),
        Endpoint{config_.admin_host, admin_->port()}.ToString(), threads_count_,
        shadow_contexts_.size(), config_.routes.size());
    return true;
  }

  void Wait() {
    for (auto& thread : threads_) thread.join();
    threads_.clear();
    // The admin listener is closed: finish the comparison requests already handed over, so the
    // owner can close the sink and write a final report with nothing else reading.
    admin_worker_.join();
  }

  void Stop() {
    net::post(ioc_, [this] { BeginStop(); });  // shard 0's thread
  }

  ~Impl() {
    if (!threads_.empty()) {
      Stop();
      Wait();
    }
  }

  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }

 private:
  bool Listen(std::string* error) {
    beast::error_code ec;
    auto address = net::ip::make_address(config_.listen_host, ec);
    if (ec) {
      *error = "listen: invalid address " + config_.listen_host;
      return false;
    }
    tcp::endpoint endpoint(address, config_.listen_port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      *error = "listen " + endpoint.address().to_string() + ":" +
               std::to_string(config_.listen_port) + ": " + ec.message();
      return false;
    }
    port_ = acceptor_.local_endpoint().port();
    return true;
  }

  // SIGHUP (logrotate's convention): reopen the access log and the pair log by name, so that
  // after the files were renamed new ones are written; the gateway keeps running.
  void WaitForReopen() {
    reopen_signal_.async_wait([this](beast::error_code ec, int) {
      if (ec || stopping_) return;
      if (state_->access_log_file) {
        std::string error;
        if (state_->access_log_file->Reopen(&error)) {
          spdlog::info("SIGHUP: reopened the access log {}", state_->access_log_file->path());
        } else {
          spdlog::error("SIGHUP: access log: {}", error);
        }
      }
      if (sink_) sink_->Reopen();
      WaitForReopen();
    });
  }

  // Every client connection takes a descriptor, and so does every upstream connection: warn at
  // start when the limit cannot hold them (raising the soft limit up to the hard one first).
  void WarnAboutDescriptorLimit() {
    rlim_t needed = static_cast<rlim_t>(config_.max_connections) + kReservedDescriptors;
    for (const auto& upstream : config_.upstreams) {
      rlim_t uses = 0;  // pools: one per primary upstream and one per mirror
      for (const auto& route : config_.routes) {
        for (const auto& mirror : route.mirrors) uses += mirror.upstream == upstream.name;
      }
      for (const auto& [name, _] : state_->primary_pools) uses += name == upstream.name;
      needed += uses * static_cast<rlim_t>(upstream.max_connections);
    }
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return;
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = std::min(needed, limit.rlim_max);
      if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    if (limit.rlim_cur >= needed) return;
    spdlog::warn(
        "RLIMIT_NOFILE is {} (hard limit {}), below the {} descriptors max_connections ({}) and "
        "the upstream pools' max_connections may need: at the limit new connections wait in the "
        "listen queue; raise it (ulimit -n, LimitNOFILE=) or lower max_connections",
        limit.rlim_cur, limit.rlim_max, needed, config_.max_connections);
  }

  void DoAccept() {
    // Connections are spread over the shards round-robin; a connection stays on its shard's
    // thread for its whole life (its io_context is its strand).
    next_shard_ = (next_shard_ + 1) % contexts_.size();
    acceptor_.async_accept(contexts_[next_shard_]->get_executor(),
                           beast::bind_front_handler(&Impl::OnAccept, this, next_shard_));
  }

  void OnAccept(size_t shard, beast::error_code ec, Socket socket) {
    if (stopping_) return;
    if (ec) {
      if (ec == net::error::operation_aborted) return;
      // Out of descriptors and the like: wait a little rather than spin, and say so at most once
      // a second (with how many failed since), not at every retry.
      ++accept_failures_;
      auto now = Clock::now();
      if (now - last_accept_warning_ >= std::chrono::seconds(1)) {
        spdlog::warn("accept: {} ({} failures since the last such warning; retrying every 50 ms)",
                     ec.message(), accept_failures_);
        accept_failures_ = 0;
        last_accept_warning_ = now;
      }
      accept_backoff_.expires_after(std::chrono::milliseconds(50));
      accept_backoff_.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && !stopping_) DoAccept();
      });
      return;
    }
    if (state_->active_sessions.load() >= config_.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      auto session = std::make_shared<ProxySession>(std::move(socket), state_, shard);
      state_->AddSession(shard, session);
      session->Start();
    }
    DoAccept();
  }

  // Every tick, `check` runs on the timer's thread: each shard checks the deadlines of its sessions
  // and exchanges, each shadow thread those of its exchanges (one timer per thread instead of a
  // timer operation per socket operation).
  void ScheduleSweep(net::steady_timer* timer, std::function<void()> check) {
    timer->expires_after(kSweepTick);
    timer->async_wait([this, timer, check = std::move(check)](beast::error_code ec) mutable {
      if (ec) return;
      check();
      ScheduleSweep(timer, std::move(check));
    });
  }

  void ScheduleCounters() {
    counters_timer_.expires_after(config_.capture.pair_log.counters_interval);
    counters_timer_.async_wait([this](beast::error_code ec) {
      if (ec || stopping_) return;
      SubmitCounters();
      for (auto& [_, pool] : state_->primary_pools) pool->SweepIdle();
      for (auto& route : state_->route_runtimes) {
        for (auto& mirror : route.mirrors) mirror->pool().SweepIdle();
        if (route.reverse_mirror) route.reverse_mirror->pool().SweepIdle();
      }
      ScheduleCounters();
    });
  }

  void SubmitCounters() {
    if (!sink_) return;
    for (auto& route : state_->route_runtimes) {
      for (auto& mirror : route.mirrors) {
        MirrorCounters counters;
        counters.ts_us = NowUnixMicros();
        counters.instance = instance_;
        counters.route = route.config.name;
        counters.mirror = mirror->config().name;
        counters.requests = static_cast<uint64_t>(route.requests->Value());
        for (int i = 0; i < kNotMirroredReasonCount; ++i) {
          counters.not_mirrored[kNotMirroredReasons[i]] = mirror->not_mirrored(i);
        }
        for (int i = 0; i < 4; ++i) counters.mirrored[kShadowOutcomes[i]] = mirror->outcome(i);
        for (int i = 0; i < kNotCapturedReasonCount; ++i) {
          counters.not_captured[kNotCapturedReasons[i]] = mirror->not_captured(i);
        }
        if (mirror.get() == route.candidate_mirror) {
          // During a cutover the candidate's pairs also come from the copies mirrored back to the
          // old primary: counted here too, so coverage (pairs per request) stays whole.
          const auto& back = *route.reverse_mirror;
          for (int i = 0; i < kNotMirroredReasonCount; ++i) {
            counters.not_mirrored[kNotMirroredReasons[i]] += back.not_mirrored(i);
          }
          for (int i = 0; i < 4; ++i) counters.mirrored[kShadowOutcomes[i]] += back.outcome(i);
          for (int i = 0; i < kNotCapturedReasonCount; ++i) {
            counters.not_captured[kNotCapturedReasons[i]] += back.not_captured(i);
          }
        }
        counters.sink_dropped = sink_->dropped();
        sink_->Submit(std::move(counters));
      }
    }
  }

  void RegisterCollectHook() {
    // A raw pointer: the hook lives in state_->registry, so a shared_ptr here would be a cycle.
    GatewayState* state = state_.get();
    PairSink* sink = sink_.get();
    std::shared_ptr<comparator::OnlineComparator> online = online_;  // no cycle: it knows no state
    // The counters below mirror totals kept elsewhere; one scrape at a time moves them, so two
    // concurrent scrapes never add the same difference twice.
    auto hook_mutex = std::make_shared<std::mutex>();
    state_->registry.AddCollectHook([state, sink, online, hook_mutex] {
      std::lock_guard lock(*hook_mutex);
      auto& m = state->metrics;
      // A counter brought up to a total that only grows.
      auto catch_up = [](Counter& counter, uint64_t total) {
        double delta = static_cast<double>(total) - counter.Value();
        if (delta > 0) counter.Increment(delta);
      };
      m.client_connections.WithLabels({}).Set(state->active_sessions.load());
      m.buffered_body_bytes.WithLabels({}).Set(static_cast<double>(state->body_budget->held()));
      if (sink) catch_up(m.pair_sink_dropped.WithLabels({}), sink->dropped());
      if (online) {
        auto queue = online->queue_stats();
        catch_up(m.comparator_accepted.WithLabels({}), queue.accepted);
        catch_up(m.comparator_dropped.WithLabels({}), queue.dropped);
        catch_up(m.comparator_judged.WithLabels({}), queue.judged);
        m.comparator_depth.WithLabels({}).Set(static_cast<double>(queue.depth));
        m.comparator_capacity.WithLabels({}).Set(static_cast<double>(queue.capacity));
        if (auto c = online->checkpoint_stats(); !c.path.empty()) {
          catch_up(m.comparator_checkpoints.WithLabels({"written"}), c.written);
          catch_up(m.comparator_checkpoints.WithLabels({"failed"}), c.failed);
          catch_up(m.comparator_checkpoints.WithLabels({"refused"}), c.refused.empty() ? 0 : 1);
          m.comparator_checkpoint_resumed.WithLabels({}).Set(static_cast<double>(c.resumed_judged));
        }
      }
      auto pool_gauges = [&](UpstreamPool& pool) {
        const auto& upstream = pool.upstream_name();
        const auto& name = pool.pool_name();
        m.pool_connections.WithLabels({upstream, name, "open"}).Set(pool.open_connections());
        m.pool_connections.WithLabels({upstream, name, "idle"}).Set(pool.idle_connections());
        m.pool_connections.WithLabels({upstream, name, "pending"}).Set(pool.pending());
        catch_up(m.pool_reused.WithLabels({upstream, name}), pool.connections_reused());
        catch_up(m.pool_created.WithLabels({upstream, name}), pool.connections_created());
      };
      for (auto& [_, pool] : state->primary_pools) pool_gauges(*pool);
      for (auto& route : state->route_runtimes) {
        for (auto& mirror : route.mirrors) {
          pool_gauges(mirror->pool());
          m.mirror_in_flight.WithLabels({route.config.name, mirror->config().name})
              .Set(mirror->in_flight());
        }
        if (route.reverse_mirror) {
          pool_gauges(route.reverse_mirror->pool());
          m.mirror_in_flight.WithLabels({route.config.name, route.reverse_mirror->label()})
              .Set(route.reverse_mirror->in_flight());
        }
      }
    });
  }

  // A refusal when the request may not use the admin API (AdminGuard), else nullopt.
  std::optional<sg::http::Response> RefuseAdmin(const sg::http::Request& request,
                                                std::string_view path) {
    auto [first, last] = request.equal_range(boost::beast::http::field::host);
    std::optional<std::string_view> host;
    if (first != last && std::next(first) == last) {
      host = std::string_view(first->value().data(), first->value().size());
    }
    std::optional<std::string_view> authorization;
    if (auto it = request.find(boost::beast::http::field::authorization); it != request.end()) {
      authorization = std::string_view(it->value().data(), it->value().size());
    }
    auto refusal = admin_guard_->Check(path, host, authorization);
    if (!refusal) return std::nullopt;
    state_->metrics.admin_refused.WithLabels({refusal->status == 401 ? "token" : "host"})
        .Increment();
    auto response = sg::http::MakeErrorResponse(
        request, static_cast<sg::http::Status>(refusal->status), refusal->message);
    if (!refusal->www_authenticate.empty()) {
      response.set(boost::beast::http::field::www_authenticate, refusal->www_authenticate);
    }
    return response;
  }

  // The admin API can change what production traffic does: say so when others can reach it.
  void WarnAboutAdminExposure() const {
    const auto& admin = config_.admin;
    if (!IsLoopbackAddress(config_.admin_host)) {
      // The config parser refused this without a token.
      spdlog::warn(
          "admin listener on {} is reachable beyond loopback: only its bearer token ({}) "
          "protects it; bind 127.0.0.1 unless remote access is needed",
          Endpoint{config_.admin_host, admin_->port()}.ToString(), admin.token_file);
    }
    struct stat info {};
    if (!admin.token_file.empty() && stat(admin.token_file.c_str(), &info) == 0 &&
        (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      spdlog::warn("admin token file {} is readable by other users (mode {:o}): chmod 600 it",
                   admin.token_file, info.st_mode & 0777);
    }
  }

  // The comparison endpoints run the rank tests or write a report, the cutover endpoints write
  // the state file: they run on the admin worker thread, never on shard 0's I/O thread (which
  // also proxies). At most kMaxComparisonJobs wait there; more are answered 503 at once.
  void RunOnAdminWorker(sg::http::Request request, sg::http::Responder respond,
                        std::function<sg::http::Response(const sg::http::Request&)> handle) {
    if (comparison_jobs_.fetch_add(1) >= kMaxComparisonJobs) {
      comparison_jobs_.fetch_sub(1);
      respond(sg::http::MakeErrorResponse(request, sg::http::Status::service_unavailable,
                                          "admin requests are queued; retry later"));
      return;
    }
    net::post(admin_worker_, [this, request = std::move(request), respond = std::move(respond),
                              handle = std::move(handle)] {
      respond(handle(request));
      comparison_jobs_.fetch_sub(1);
    });
  }

  sg::http::Response HandleAdmin(const sg::http::Request& request) {
    std::string target(request.target());
    auto path = target.substr(0, target.find('?'));
    auto method = request.method();
    if (path == "/healthz") {
      return sg::http::MakeTextResponse(request, sg::http::Status::ok, "ok\n");
    }
    if (path == "/readyz") {
      bool ready = !state_->draining.load();
      return sg::http::MakeTextResponse(
          request, ready ? sg::http::Status::ok : sg::http::Status::service_unavailable,
          ready ? "ready\n" : "draining\n");
    }
    if (path == "/metrics") {
      return sg::http::MakeTextResponse(request, sg::http::Status::ok, state_->registry.Render(),
                                        kPrometheusContentType);
    }
    if (path == "/admin/config") {
      auto json = GatewayConfigToJson(config_);
      // Percents as they are now (they change at runtime).
      for (size_t r = 0; r < state_->route_runtimes.size(); ++r) {
        auto& route = state_->route_runtimes[r];
        for (size_t m = 0; m < route.mirrors.size(); ++m) {
          json["routes"][r]["mirrors"][m]["percent"] = route.mirrors[m]->percent();
        }
      }
      return sg::http::MakeJsonResponse(request, sg::http::Status::ok, json);
    }
    // PUT /admin/routes/{route}/mirrors/{i}  {"percent": 12.5}
    auto parts = Split(path, '/');
    if (parts.size() == 6 && parts[1] == "admin" && parts[2] == "routes" && parts[4] == "mirrors") {
      if (method != boost::beast::http::verb::put) {
        return sg::http::MakeErrorResponse(request, sg::http::Status::method_not_allowed,
                                           "use PUT");
      }
      MirrorRuntime* mirror = FindMirror(parts[3], parts[5]);
      if (!mirror) {
        return sg::http::MakeErrorResponse(request, sg::http::Status::not_found,
                                           "no mirror " + parts[5] + " on route " + parts[3]);
      }
      auto body = nlohmann::json::parse(request.body(), nullptr, false);
      if (body.is_discarded() || !body.is_object() || !body.contains("percent") ||
          !body["percent"].is_number() || body.size() != 1) {
        return sg::http::MakeErrorResponse(request, sg::http::Status::bad_request,
                                           "body must be {\"percent\": <0-100>}");
      }
      double percent = body["percent"].get<double>();
      if (!(percent >= 0 && percent <= 100)) {
        return sg::http::MakeErrorResponse(request, sg::http::Status::bad_request,
                                           "percent must be in [0, 100]");
      }
      double previous = mirror->percent();
      mirror->set_percent(percent);
      // A cutover's mirror back to the old primary follows its candidate's percent.
      for (auto& route : state_->route_runtimes) {
        if (route.candidate_mirror == mirror) route.reverse_mirror->set_percent(percent);
      }
      spdlog::info("admin: route {} mirror {} percent {} -> {}", parts[3], mirror->config().name,
                   previous, percent);
      return sg::http::MakeJsonResponse(request, sg::http::Status::ok,
                                        {{"route", parts[3]},
                                         {"mirror", mirror->config().name},
                                         {"percent", percent},
                                         {"previous", previous}});
    }
    return sg::http::MakeErrorResponse(request, sg::http::Status::not_found, "unknown admin path");
  }

  MirrorRuntime* FindMirror(const std::string& route_name, const std::string& mirror_key) {
    for (auto& route : state_->route_runtimes) {
      if (route.config.name != route_name) continue;
      for (size_t i = 0; i < route.mirrors.size(); ++i) {
        if (std::to_string(i) == mirror_key || route.mirrors[i]->config().name == mirror_key) {
          return route.mirrors[i].get();
        }
      }
    }
    return nullptr;
  }

  // Runs on an I/O thread. Stop accepting, drain sessions, wait for in-flight work (primary and
  // shadows) up to the grace period, then stop everything.
  void BeginStop() {
    if (stopping_.exchange(true)) return;
    state_->draining = true;
    beast::error_code ignored;
    net::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    signals_.cancel(ignored);
    reopen_signal_.cancel(ignored);
    counters_timer_.cancel();
    for (auto& session : state_->LiveSessions()) session->Drain();
    drain_deadline_ = Clock::now() + config_.shutdown_grace;
    PollDrain();
  }

  void PollDrain() {
    bool idle = state_->active_sessions.load() == 0 && state_->shadows_in_flight.load() == 0;
    if (!idle && Clock::now() < drain_deadline_) {
      drain_timer_.expires_after(std::chrono::milliseconds(20));
      drain_timer_.async_wait([this](beast::error_code) { PollDrain(); });
      return;
    }
    if (!idle) {
      spdlog::warn("grace period over: closing {} connections, {} shadows in flight",
                   state_->active_sessions.load(), state_->shadows_in_flight.load());
      for (auto& session : state_->LiveSessions()) session->Abort();
    }
    SubmitCounters();
    admin_->Stop();
    for (auto& [_, pool] : state_->primary_pools) pool->Shutdown();
    for (auto& route : state_->route_runtimes) {
      for (auto& mirror : route.mirrors) mirror->pool().Shutdown();
      if (route.reverse_mirror) route.reverse_mirror->pool().Shutdown();
    }
    for (auto& cutover : state_->cutovers) cutover->Stop();
    work_.clear();
    for (auto& context : contexts_) context->stop();
    for (auto& context : shadow_contexts_) context->stop();
  }

  GatewayConfig config_;
  std::shared_ptr<PairSink> sink_;
  std::shared_ptr<comparator::OnlineComparator> online_;  // null: no comparison
  const ComparisonAdmin comparison_admin_;
  static constexpr int kMaxComparisonJobs = 4;
  std::atomic<int> comparison_jobs_{0};  // handed to admin_worker_ and not answered yet
  int threads_count_;
  std::vector<std::unique_ptr<net::io_context>> contexts_;         // one per I/O thread (shard)
  std::vector<std::unique_ptr<net::io_context>> shadow_contexts_;  // one per shadow thread
  net::io_context& ioc_;  // shard 0: also runs the acceptor, admin, signals and timers
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
  size_t next_shard_ = 0;
  static constexpr std::chrono::milliseconds kSweepTick{50};         // timeout resolution
  std::vector<std::unique_ptr<net::steady_timer>> sweepers_;         // one per shard
  std::vector<std::unique_ptr<net::steady_timer>> shadow_sweepers_;  // one per shadow context
  tcp::acceptor acceptor_;
  net::signal_set signals_;
  net::steady_timer counters_timer_;
  net::steady_timer drain_timer_;
  net::steady_timer accept_backoff_;
  // Accept failures since the last warning, and its time (shard 0's thread only).
  uint64_t accept_failures_ = 0;
  Clock::time_point last_accept_warning_;
  static constexpr rlim_t kReservedDescriptors = 64;  // logs, listeners, epoll, eventfds, ...
  net::signal_set reopen_signal_;
  std::string instance_;
  std::shared_ptr<GatewayState> state_;
  std::unique_ptr<sg::http::HttpServer> admin_;
  std::unique_ptr<AdminGuard> admin_guard_;      // set once admin_ is bound (its port)
  std::unique_ptr<CutoverAdmin> cutover_admin_;  // set once state_ exists
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  Clock::time_point drain_deadline_;
  // Last: destroyed (joined) first, while everything its jobs use is still alive.
  net::thread_pool admin_worker_{1};
};

Gateway::Gateway(GatewayConfig config, std::shared_ptr<PairSink> sink,
                 std::shared_ptr<comparator::OnlineComparator> online)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(sink), std::move(online))) {}
Gateway::~Gateway() = default;
bool Gateway::Start(std::string* error) {
  return impl_->Start(error);
}
void Gateway::Wait() {
  impl_->Wait();
}
void Gateway::Stop() {
  impl_->Stop();
}
uint16_t Gateway::port() const {
  return impl_->port();
}
uint16_t Gateway::admin_port() const {
  return impl_->admin_port();
}

}  // namespace sg::gateway
