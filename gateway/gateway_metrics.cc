#include "gateway/gateway_metrics.h"

namespace sg::gateway {

GatewayMetrics::GatewayMetrics(MetricsRegistry& registry)
    : requests(registry.AddCounter("sg_gateway_requests_total",
                                   "Responses sent to clients, by route and status.",
                                   {"route", "status"})),
      route_requests(registry.AddCounter("sg_gateway_route_requests_total",
                                         "Requests matched to each route.", {"route"})),
      client_errors(registry.AddCounter("sg_gateway_client_errors_total",
                                        "Requests refused before routing, by reason.", {"reason"})),
      primary_latency(registry.AddHistogram("sg_gateway_primary_latency_seconds",
                                            "Primary upstream latency, dispatch to response.",
                                            LatencyBucketsSeconds(), {"route"})),
      shadow_latency(registry.AddHistogram("sg_gateway_shadow_latency_seconds",
                                           "Shadow upstream latency, dispatch to response.",
                                           LatencyBucketsSeconds(), {"route", "mirror"})),
      mirror_outcomes(registry.AddCounter("sg_gateway_mirror_outcomes_total",
                                          "Mirrored requests by outcome.",
                                          {"route", "mirror", "outcome"})),
      not_mirrored(registry.AddCounter("sg_gateway_not_mirrored_total",
                                       "Requests not mirrored, by reason.",
                                       {"route", "mirror", "reason"})),
      not_captured(registry.AddCounter(
          "sg_gateway_not_captured_total",
          "Mirrored pairs whose record left out part of the request body, by reason: "
          "body_sampled_out (capture.body_sample; size and sha256 kept) or body_truncated "
          "(cut at capture.max_body_bytes).",
          {"route", "mirror", "reason"})),
      mirror_in_flight(registry.AddGauge("sg_gateway_mirror_in_flight",
                                         "Shadow exchanges in flight.", {"route", "mirror"})),
      pool_connections(registry.AddGauge("sg_gateway_pool_connections",
                                         "Upstream pool connections by state.",
                                         {"upstream", "pool", "state"})),
      pool_reused(registry.AddCounter("sg_gateway_pool_reused_exchanges_total",
                                      "Exchanges sent on a reused pooled connection.",
                                      {"upstream", "pool"})),
      pool_created(registry.AddCounter("sg_gateway_pool_opened_connections_total",
                                       "Upstream connections opened.", {"upstream", "pool"})),
      client_connections(
          registry.AddGauge("sg_gateway_client_connections", "Open client connections.")),
      pair_sink_dropped(registry.AddCounter("sg_gateway_pair_sink_dropped_total",
                                            "Pair records dropped by the pair sinks (summed).")),
      admin_refused(registry.AddCounter("sg_gateway_admin_refused_total",
                                        "Admin requests refused: Host not allowed, or no or a "
                                        "wrong token.",
                                        {"reason"})),
      buffered_body_bytes(
          registry.AddGauge("sg_gateway_buffered_body_bytes",
                            "Request body bytes held in memory now, over all connections.")),
      comparator_accepted(registry.AddCounter("sg_gateway_comparator_records_accepted_total",
                                              "Records queued for the in-process comparator.")),
      comparator_dropped(registry.AddCounter("sg_gateway_comparator_records_dropped_total",
                                             "Records dropped: the comparator queue was full.")),
      comparator_judged(registry.AddCounter("sg_gateway_comparator_records_judged_total",
                                            "Records the in-process comparator has judged.")),
      comparator_depth(registry.AddGauge("sg_gateway_comparator_queue_depth",
                                         "Records waiting in the comparator queue.")),
      comparator_capacity(registry.AddGauge("sg_gateway_comparator_queue_capacity",
                                            "Capacity of the comparator queue.")),
      comparator_checkpoints(registry.AddCounter(
          "sg_gateway_comparator_checkpoints_total",
          "Checkpoints of the comparison: written, failed to write, or refused at start (found "
          "but of another run or rules, or corrupt: set aside).",
          {"result"})),
      comparator_checkpoint_resumed(registry.AddGauge(
          "sg_gateway_comparator_checkpoint_resumed_records",
          "Records judged before this process started, resumed from the checkpoint.")),
      cutover_share(registry.AddGauge("sg_gateway_cutover_share",
                                      "Percent of the route's keys the cutover candidate serves.",
                                      {"route"})),
      cutover_step(registry.AddGauge("sg_gateway_cutover_step",
                                     "The cutover's step index (-1 before the first).", {"route"})),
      cutover_state(registry.AddGauge("sg_gateway_cutover_state",
                                      "1 for the cutover's current state, 0 for the others.",
                                      {"route", "state"})),
      cutover_decisions(registry.AddCounter("sg_gateway_cutover_decisions_total",
                                            "Cutover decisions, automatic and manual.",
                                            {"route", "decision"})),
      cutover_served(registry.AddCounter("sg_gateway_cutover_served_total",
                                         "Requests of a cutover route, by the side that served.",
                                         {"route", "side"})) {}

}  // namespace sg::gateway
