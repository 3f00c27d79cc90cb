// The gateway's metric work, done by its own registry (common/metrics.h) and by prometheus-cpp
// 1.0.1's core (Debian's prometheus-cpp-dev), in one binary: per-request updates as the gateway
// makes them (children looked up once at start, pointers kept), a label lookup as the refusal
// paths make it, and /metrics rendering of a registry shaped like a running gateway's.
//
//   sg-bench-metrics [--iterations N] [--threads T]      wall clock, both sides, a table
//   sg-bench-metrics --case C --impl own|lib --iterations N
//       one case, one side; under `valgrind --tool=callgrind --collect-atstart=no` only the
//       measured loop is counted (callgrind's client requests toggle collection around it), so
//       PROGRAM TOTALS / N is instructions per operation (bench/gateway/metrics.sh does that)
//   sg-bench-metrics --print own|lib                       one side's /metrics text
//
// Cases: counter (one Increment), histogram (one Observe, 18 latency buckets), request (what
// one proxied request costs without a mirror: the response counter through the per-status
// slot, the route counter, the primary latency histogram), mirrored_request (request plus the
// mirror's outcome counter and shadow latency histogram), lookup (a child by label values, as
// client_errors counts a refused request), render (the whole /metrics text).
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_TOGGLE_COLLECT
#endif

#include "common/metrics.h"
#include "gateway/gateway_metrics.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace pm = prometheus;

// A running gateway's shape: routes, the statuses each has answered, one mirror per route.
constexpr int kRoutes = 4;
const char* const kStatuses[] = {"200", "404", "502", "503", "504"};
const char* const kOutcomes[] = {"ok", "error", "timeout", "refused"};
const char* const kReasons[] = {"sampled_out", "body_too_large", "overload", "memory_budget"};

// Latencies in seconds, log-normal around 2 ms, as the bench upstreams answer.
std::vector<double> Latencies() {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(0.002), 0.6);
  std::vector<double> out(1024);
  for (double& v : out) v = dist(rng);
  return out;
}

std::string Route(int i) {
  return "route" + std::to_string(i);
}

// The per-request pointers the gateway keeps (RouteRuntime, MirrorRuntime, the status slots).
template <typename C, typename H>
struct HotPath {
  std::array<std::atomic<C*>, 500> by_status{};  // GatewayState::CountResponse's slots
  C* route_requests = nullptr;
  H* primary_latency = nullptr;
  C* mirror_ok = nullptr;
  H* shadow_latency = nullptr;
};

// Own registry: the gateway's real families (gateway/gateway_metrics.cc).
struct Own {
  sg::MetricsRegistry registry;
  sg::gateway::GatewayMetrics metrics{registry};
  HotPath<sg::Counter, sg::Histogram> hot;

  Own() {
    for (int r = 0; r < kRoutes; ++r) {
      std::string route = Route(r);
      metrics.route_requests.WithLabels({route}).Increment(1000);
      auto& h = metrics.primary_latency.WithLabels({route});
      auto& s = metrics.shadow_latency.WithLabels({route, "shadow"});
      for (double v : Latencies()) h.Observe(v), s.Observe(v);
      for (const char* status : kStatuses) metrics.requests.WithLabels({route, status}).Increment();
      for (const char* o : kOutcomes) metrics.mirror_outcomes.WithLabels({route, "shadow", o});
      for (const char* o : kReasons) metrics.not_mirrored.WithLabels({route, "shadow", o});
      metrics.mirror_in_flight.WithLabels({route, "shadow"}).Set(3);
    }
    for (const char* pool : {"primary", "shadow"}) {
      for (const char* state : {"open", "idle", "pending"}) {
        metrics.pool_connections.WithLabels({pool, "p0", state}).Set(4);
      }
      metrics.pool_reused.WithLabels({pool, "p0"}).Increment(990);
      metrics.pool_created.WithLabels({pool, "p0"}).Increment(10);
    }
    for (const char* reason : {"bad_request", "timeout"}) {
      metrics.client_errors.WithLabels({reason}).Increment();
    }
    metrics.client_connections.WithLabels({}).Set(64);
    metrics.buffered_body_bytes.WithLabels({}).Set(0);
    metrics.pair_sink_dropped.WithLabels({});
    hot.route_requests = &metrics.route_requests.WithLabels({Route(0)});
    hot.primary_latency = &metrics.primary_latency.WithLabels({Route(0)});
    hot.mirror_ok = &metrics.mirror_outcomes.WithLabels({Route(0), "shadow", "ok"});
    hot.shadow_latency = &metrics.shadow_latency.WithLabels({Route(0), "shadow"});
  }
  sg::Counter& Response(int status) {
    auto& slot = hot.by_status[static_cast<size_t>(status - 100)];
    sg::Counter* c = slot.load(std::memory_order_acquire);
    if (!c) {
      c = &metrics.requests.WithLabels({Route(0), std::to_string(status)});
      slot.store(c, std::memory_order_release);
    }
    return *c;
  }
  sg::Counter& Lookup(const char* reason) { return metrics.client_errors.WithLabels({reason}); }
  std::string Render() const { return registry.Render(); }
};

// prometheus-cpp: the same families, names, labels and children.
struct Lib {
  std::shared_ptr<pm::Registry> registry = std::make_shared<pm::Registry>();
  pm::Family<pm::Counter>& requests = pm::BuildCounter()
                                          .Name("sg_gateway_requests_total")
                                          .Help("Responses sent to clients, by route and status.")
                                          .Register(*registry);
  pm::Family<pm::Counter>& route_requests = pm::BuildCounter()
                                                .Name("sg_gateway_route_requests_total")
                                                .Help("Requests matched to each route.")
                                                .Register(*registry);
  pm::Family<pm::Counter>& client_errors = pm::BuildCounter()
                                               .Name("sg_gateway_client_errors_total")
                                               .Help("Requests refused before routing, by reason.")
                                               .Register(*registry);
  pm::Family<pm::Histogram>& primary_latency =
      pm::BuildHistogram()
          .Name("sg_gateway_primary_latency_seconds")
          .Help("Primary upstream latency, dispatch to response.")
          .Register(*registry);
  pm::Family<pm::Histogram>& shadow_latency =
      pm::BuildHistogram()
          .Name("sg_gateway_shadow_latency_seconds")
          .Help("Shadow upstream latency, dispatch to response.")
          .Register(*registry);
  pm::Family<pm::Counter>& mirror_outcomes = pm::BuildCounter()
                                                 .Name("sg_gateway_mirror_outcomes_total")
                                                 .Help("Mirrored requests by outcome.")
                                                 .Register(*registry);
  pm::Family<pm::Counter>& not_mirrored = pm::BuildCounter()
                                              .Name("sg_gateway_not_mirrored_total")
                                              .Help("Requests not mirrored, by reason.")
                                              .Register(*registry);
  pm::Family<pm::Gauge>& mirror_in_flight = pm::BuildGauge()
                                                .Name("sg_gateway_mirror_in_flight")
                                                .Help("Shadow exchanges in flight.")
                                                .Register(*registry);
  pm::Family<pm::Gauge>& pool_connections = pm::BuildGauge()
                                                .Name("sg_gateway_pool_connections")
                                                .Help("Upstream pool connections by state.")
                                                .Register(*registry);
  pm::Family<pm::Counter>& pool_reused = pm::BuildCounter()
                                             .Name("sg_gateway_pool_reused_exchanges_total")
                                             .Help("Exchanges sent on a reused pooled connection.")
                                             .Register(*registry);
  pm::Family<pm::Counter>& pool_created = pm::BuildCounter()
                                              .Name("sg_gateway_pool_opened_connections_total")
                                              .Help("Upstream connections opened.")
                                              .Register(*registry);
  pm::Family<pm::Gauge>& client_connections = pm::BuildGauge()
                                                  .Name("sg_gateway_client_connections")
                                                  .Help("Open client connections.")
                                                  .Register(*registry);
  pm::Family<pm::Gauge>& buffered_body_bytes =
      pm::BuildGauge()
          .Name("sg_gateway_buffered_body_bytes")
          .Help("Request body bytes held in memory now, over all connections.")
          .Register(*registry);
  pm::Family<pm::Counter>& pair_sink_dropped =
      pm::BuildCounter()
          .Name("sg_gateway_pair_sink_dropped_total")
          .Help("Pair records dropped by the pair sinks (summed).")
          .Register(*registry);
  HotPath<pm::Counter, pm::Histogram> hot;
  const std::vector<double> bounds = sg::LatencyBucketsSeconds();

  Lib() {
    for (int r = 0; r < kRoutes; ++r) {
      std::string route = Route(r);
      route_requests.Add({{"route", route}}).Increment(1000);
      auto& h = primary_latency.Add({{"route", route}}, bounds);
      auto& s = shadow_latency.Add({{"route", route}, {"mirror", "shadow"}}, bounds);
      for (double v : Latencies()) h.Observe(v), s.Observe(v);
      for (const char* status : kStatuses) {
        requests.Add({{"route", route}, {"status", status}}).Increment();
      }
      for (const char* o : kOutcomes) {
        mirror_outcomes.Add({{"route", route}, {"mirror", "shadow"}, {"outcome", o}});
      }
      for (const char* o : kReasons) {
        not_mirrored.Add({{"route", route}, {"mirror", "shadow"}, {"reason", o}});
      }
      mirror_in_flight.Add({{"route", route}, {"mirror", "shadow"}}).Set(3);
    }
    for (const char* pool : {"primary", "shadow"}) {
      for (const char* state : {"open", "idle", "pending"}) {
        pool_connections.Add({{"upstream", pool}, {"pool", "p0"}, {"state", state}}).Set(4);
      }
      pool_reused.Add({{"upstream", pool}, {"pool", "p0"}}).Increment(990);
      pool_created.Add({{"upstream", pool}, {"pool", "p0"}}).Increment(10);
    }
    for (const char* reason : {"bad_request", "timeout"}) {
      client_errors.Add({{"reason", reason}}).Increment();
    }
    client_connections.Add({}).Set(64);
    buffered_body_bytes.Add({}).Set(0);
    pair_sink_dropped.Add({});
    hot.route_requests = &route_requests.Add({{"route", Route(0)}});
    hot.primary_latency = &primary_latency.Add({{"route", Route(0)}}, bounds);
    hot.mirror_ok =
        &mirror_outcomes.Add({{"route", Route(0)}, {"mirror", "shadow"}, {"outcome", "ok"}});
    hot.shadow_latency = &shadow_latency.Add({{"route", Route(0)}, {"mirror", "shadow"}}, bounds);
  }
  pm::Counter& Response(int status) {
    auto& slot = hot.by_status[static_cast<size_t>(status - 100)];
    pm::Counter* c = slot.load(std::memory_order_acquire);
    if (!c) {
      c = &requests.Add({{"route", Route(0)}, {"status", std::to_string(status)}});
      slot.store(c, std::memory_order_release);
    }
    return *c;
  }
  pm::Counter& Lookup(const char* reason) { return client_errors.Add({{"reason", reason}}); }
  std::string Render() const { return pm::TextSerializer().Serialize(registry->Collect()); }
};

enum class Case { kCounter, kHistogram, kRequest, kMirroredRequest, kLookup, kRender };
const char* const kCaseNames[] = {"counter",          "histogram", "request",
                                  "mirrored_request", "lookup",    "render"};

volatile size_t sink_bytes = 0;  // keeps the rendered text from being optimised away

// `iterations` operations of one case on `side`.
template <typename Side>
void Loop(Side& side, Case c, long iterations, const std::vector<double>& latencies) {
  const char* reasons[] = {"bad_request", "timeout", "bad_host", "header_too_large"};
  for (long i = 0; i < iterations; ++i) {
    const double v = latencies[static_cast<size_t>(i) & 1023];
    switch (c) {
      case Case::kCounter:
        side.hot.route_requests->Increment();
        break;
      case Case::kHistogram:
        side.hot.primary_latency->Observe(v);
        break;
      case Case::kMirroredRequest:
        side.hot.mirror_ok->Increment();
        side.hot.shadow_latency->Observe(v * 1.5);
        [[fallthrough]];
      case Case::kRequest:
        side.hot.route_requests->Increment();
        side.hot.primary_latency->Observe(v);
        side.Response(200).Increment();
        break;
      case Case::kLookup:
        side.Lookup(reasons[i & 3]).Increment();
        break;
      case Case::kRender:
        sink_bytes = sink_bytes + side.Render().size();
        break;
    }
  }
}

// Nanoseconds per operation: the best of 5 rounds (the least disturbed on a shared machine),
// `threads` threads each doing `iterations` (per-thread time).
template <typename Side>
double Time(Side& side, Case c, long iterations, int threads, const std::vector<double>& lat) {
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back([&] { Loop(side, c, iterations, lat); });
    Loop(side, c, iterations, lat);
    for (auto& t : pool) t.join();
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count();
    best = std::min(best, ns / static_cast<double>(iterations));
  }
  return best;
}

int Usage() {
  std::fprintf(stderr,
               "usage: sg-bench-metrics [--iterations N] [--threads T]\n"
               "       sg-bench-metrics --case "
               "counter|histogram|request|mirrored_request|lookup|render --impl own|lib "
               "[--iterations N]\n"
               "       sg-bench-metrics --print own|lib\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 0;
  int threads = 1;
  int only = -1;
  std::string impl, print;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string value = argv[++i];
    if (arg == "--iterations") {
      iterations = std::atol(value.c_str());
    } else if (arg == "--threads") {
      threads = std::atoi(value.c_str());
    } else if (arg == "--case") {
      for (int k = 0; k < 6; ++k) {
        if (value == kCaseNames[k]) only = k;
      }
      if (only < 0) return Usage();
    } else if (arg == "--impl" && (value == "own" || value == "lib")) {
      impl = value;
    } else if (arg == "--print" && (value == "own" || value == "lib")) {
      print = value;
    } else {
      return Usage();
    }
  }
  if (iterations < 0 || threads < 1 || (only >= 0) != !impl.empty()) return Usage();
  const auto latencies = Latencies();
  Own own;
  Lib lib;
  if (!print.empty()) {
    std::fputs((print == "own" ? own.Render() : lib.Render()).c_str(), stdout);
    return 0;
  }
  auto count_for = [&](Case c) {
    if (iterations > 0) return c == Case::kRender ? std::max(1L, iterations / 1000) : iterations;
    return c == Case::kRender ? 2000L : 2000000L;
  };

  if (only >= 0) {  // one case, one side, collection toggled around the loop only
    const Case c = static_cast<Case>(only);
    const long n = count_for(c);
    CALLGRIND_TOGGLE_COLLECT;
    if (impl == "own")
      Loop(own, c, n, latencies);
    else
      Loop(lib, c, n, latencies);
    CALLGRIND_TOGGLE_COLLECT;
    std::printf("%s %s %ld\n", kCaseNames[only], impl.c_str(), n);
    return 0;
  }

  std::printf("| case | own ns/op | prometheus-cpp ns/op | prometheus-cpp/own |\n");
  std::printf("| --- | ---: | ---: | ---: |\n");
  for (int k = 0; k < 6; ++k) {
    const Case c = static_cast<Case>(k);
    const long n = count_for(c);
    const int t = c == Case::kRender ? 1 : threads;
    const double a = Time(own, c, n, t, latencies);
    const double b = Time(lib, c, n, t, latencies);
    std::printf("| %s | %.1f | %.1f | %.2fx |\n", kCaseNames[k], a, b, b / a);
  }
  std::printf(
      "\n%d thread(s), best of 5 rounds; /metrics text: own %zu bytes, prometheus-cpp %zu "
      "bytes\n",
      threads, own.Render().size(), lib.Render().size());
  return 0;
}
