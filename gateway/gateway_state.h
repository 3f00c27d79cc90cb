// State shared by the gateway's sessions: config, routes, upstream pools, mirrors, metrics, the
// pair sink, and the session registry used for graceful shutdown. Owned by Gateway; sessions hold
// a shared_ptr so late completions never touch freed state.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include "common/metrics.h"
#include "gateway/body_budget.h"
#include "gateway/cutover.h"
#include "gateway/deadline_sweeper.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/mirror.h"
#include "gateway/pair_sink.h"
#include "gateway/reopenable_file_sink.h"
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
  // requests{route, status} children by status (100-599), looked up once each.
  std::unique_ptr<std::atomic<Counter*>[]> responses_by_status;
  // A progressive cutover (docs/gateway.md); all null without one. The candidate's upstream as a
  // primary pool (requests it serves), the candidate mirror (in `mirrors`), and the mirror back
  // to the route's upstream for the requests the candidate serves.
  std::shared_ptr<Cutover> cutover;
  std::shared_ptr<UpstreamPool> candidate_primary;
  MirrorRuntime* candidate_mirror = nullptr;
  std::unique_ptr<MirrorRuntime> reverse_mirror;
};

struct GatewayState {
  // `contexts`: one io_context per I/O thread (shard). `shadow_contexts`: one per shadow thread
  // (the mirrors' exchanges run there); empty: they run on the shards.
  GatewayState(std::vector<net::io_context*> contexts,
               std::vector<net::io_context*> shadow_contexts, const GatewayConfig& config,
               std::shared_ptr<PairSink> sink);

  const std::vector<net::io_context*> contexts;
  const std::vector<net::io_context*> shadow_contexts;
  const GatewayConfig config;
  const RouteTable routes;
  MetricsRegistry registry;
  GatewayMetrics metrics;
  std::shared_ptr<PairSink> sink;                                                // null: no capture
  std::unordered_map<std::string, std::shared_ptr<UpstreamPool>> primary_pools;  // by upstream
  std::vector<RouteRuntime> route_runtimes;
  std::vector<std::shared_ptr<Cutover>> cutovers;  // the routes' (RouteRuntime::cutover)
  std::shared_ptr<spdlog::logger> access_log;  // null: off
  // The access log's file with access_log_path (SIGHUP reopens it); null: stdout or off.
  std::shared_ptr<ReopenableFileSink> access_log_file;
  // Request body bytes held in memory over all connections (max_buffered_body_bytes).
  const std::shared_ptr<BodyBudget> body_budget;

  std::atomic<bool> draining{false};
  std::atomic<int> active_sessions{0};
  std::atomic<int> shadows_in_flight{0};

  // Counts a response by route (null: no route) and status. The family lookup (a mutex) happens
  // once per (route, status).
  void CountResponse(RouteRuntime* route, int status);
  std::unique_ptr<std::atomic<Counter*>[]> unrouted_by_status;

  // Session registry per shard: for deadlines (the shard's sweeper) and graceful shutdown.
  struct Shard {
    // Guarded by mutex (the shard's thread iterates; a session may be destroyed elsewhere).
    std::mutex mutex;
    std::unordered_map<ProxySession*, std::weak_ptr<ProxySession>> sessions;
    std::shared_ptr<DeadlineSweeper> exchanges = std::make_shared<DeadlineSweeper>();
  };
  std::vector<std::unique_ptr<Shard>> shards;  // one per context
  // One per shadow context: only its exchanges' deadlines (no sessions live there).
  std::vector<std::shared_ptr<DeadlineSweeper>> shadow_sweepers;
  void AddSession(size_t shard, const std::shared_ptr<ProxySession>& session);
  void RemoveSession(size_t shard, ProxySession* session);
  std::vector<std::shared_ptr<ProxySession>> LiveSessions();
  // Runs CheckDeadline on every session of `shard`. REQUIRES: called on that shard's thread.
  void CheckDeadlines(size_t shard);
  // The same for the mirrors' exchanges of shadow context `index`, on its thread.
  void CheckShadowDeadlines(size_t index);

  // Where a mirror copy of a request on `shard` runs: the index into the mirror pools' contexts
  // (the shadow contexts, or the shards themselves when there are none).
  size_t MirrorShard(size_t shard) const {
    return shadow_contexts.empty() ? shard : shard % shadow_contexts.size();
  }
  net::io_context& MirrorContext(size_t mirror_shard) const {
    return *(shadow_contexts.empty() ? contexts : shadow_contexts)[mirror_shard];
  }
};

}  // namespace sg::gateway
