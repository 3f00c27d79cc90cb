// State shared by the gateway's sessions: config, routes, upstream pools, mirrors, metrics, the
// pair sink, and the session registry used for graceful shutdown. Owned by Gateway; sessions hold
// a shared_ptr so late completions never touch freed state.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "common/metrics.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/mirror.h"
#include "gateway/pair_sink.h"
#include "gateway/routing.h"
#include "gateway/upstream_pool.h"

namespace sg::gateway {

class ProxySession;

struct RouteRuntime {
  RouteConfig config;
  std::shared_ptr<UpstreamPool> primary;
  std::vector<std::unique_ptr<MirrorRuntime>> mirrors;
  Counter* requests = nullptr;  // route_requests{route}
  Histogram* primary_latency = nullptr;
};

struct GatewayState {
  GatewayState(net::io_context& ioc, const GatewayConfig& config, std::shared_ptr<PairSink> sink);

  net::io_context& ioc;
  const GatewayConfig config;
  const RouteTable routes;
  MetricsRegistry registry;
  GatewayMetrics metrics;
  std::shared_ptr<PairSink> sink;                                                // null: no capture
  std::unordered_map<std::string, std::shared_ptr<UpstreamPool>> primary_pools;  // by upstream
  std::vector<RouteRuntime> route_runtimes;
  std::shared_ptr<spdlog::logger> access_log;  // null: off

  std::atomic<bool> draining{false};
  std::atomic<int> active_sessions{0};
  std::atomic<int> shadows_in_flight{0};

  // Counts a response by route and status (the family lookup takes a mutex; fine at this rate).
  void CountResponse(const std::string& route, int status);

  // Session registry, for graceful shutdown. Guarded by sessions_mutex.
  std::mutex sessions_mutex;
  std::unordered_map<ProxySession*, std::weak_ptr<ProxySession>> sessions;
  void AddSession(const std::shared_ptr<ProxySession>& session);
  void RemoveSession(ProxySession* session);
  std::vector<std::shared_ptr<ProxySession>> LiveSessions();
};

}  // namespace sg::gateway
