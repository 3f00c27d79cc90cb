// The gateway's Prometheus metric families, registered once per gateway.
#pragma once

#include "common/metrics.h"

namespace sg::gateway {

struct GatewayMetrics {
  explicit GatewayMetrics(MetricsRegistry& registry);

  Family<Counter>& requests;           // {route, status}: responses sent to clients
  Family<Counter>& route_requests;     // {route}: requests matched to each route
  Family<Counter>& client_errors;      // {reason}: requests refused before routing
  Family<Histogram>& primary_latency;  // {route}: primary dispatch to complete response
  Family<Histogram>& shadow_latency;   // {route, mirror}
  Family<Counter>& mirror_outcomes;    // {route, mirror, outcome}
  Family<Counter>& not_mirrored;       // {route, mirror, reason}
  Family<Counter>& not_captured;       // {route, mirror, reason}: left out of pair records
  Family<Gauge>& mirror_in_flight;     // {route, mirror}
  Family<Gauge>& pool_connections;     // {upstream, pool, state=open|idle}
  Family<Counter>& pool_reused;        // {upstream, pool}: requests sent on a reused connection
  Family<Counter>& pool_created;       // {upstream, pool}: connections opened
  Family<Gauge>& client_connections;   // open client connections
  Family<Counter>& pair_sink_dropped;  // records the pair sink dropped (summed over sinks)
  Family<Counter>& admin_refused;      // {reason=host|token}: admin requests refused
  Family<Gauge>& buffered_body_bytes;  // request body bytes held now (max_buffered_body_bytes)
  // The in-process comparator's queue (only with a comparison section).
  Family<Counter>& comparator_accepted;  // records queued for judging
  Family<Counter>& comparator_dropped;   // records dropped because the queue was full
  Family<Counter>& comparator_judged;    // records judged
  Family<Gauge>& comparator_depth;       // records waiting now
  Family<Gauge>& comparator_capacity;    // queue capacity
  // Its checkpoints (with comparison.checkpoint_file).
  Family<Counter>& comparator_checkpoints;       // {result=written|failed|refused}
  Family<Gauge>& comparator_checkpoint_resumed;  // records judged before this process, resumed
  // Progressive cutovers (only routes with a cutover).
  Family<Gauge>& cutover_share;        // {route}: percent of keys the candidate serves
  Family<Gauge>& cutover_step;         // {route}: step index, -1 before the first
  Family<Gauge>& cutover_state;        // {route, state}: 1 for the current state
  Family<Counter>& cutover_decisions;  // {route, decision}
  Family<Counter>& cutover_served;     // {route, side=primary|candidate}: requests served
};

}  // namespace sg::gateway
