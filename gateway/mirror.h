// Mirroring state shared by every session: per-mirror runtime (sampling, bounded in-flight,
// outcome counters, its own upstream pool) and the PairCollector that joins a primary response and
// a shadow response into one PairRecord.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "common/metrics.h"
#include "common/pair_record.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_metrics.h"
#include "gateway/pair_sink.h"
#include "gateway/sampling.h"
#include "gateway/upstream_pool.h"

namespace sg::gateway {

enum class NotMirrored { kNone, kSampledOut, kBodyTooLarge, kOverload, kMemoryBudget };
// Indexed by NotMirrored - 1.
inline constexpr const char* kNotMirroredReasons[] = {"sampled_out", "body_too_large", "overload",
                                                      "memory_budget"};
inline constexpr int kNotMirroredReasonCount = 4;
inline constexpr const char* kShadowOutcomes[] = {"ok", "shadow_error", "shadow_timeout",
                                                  "connect_failed"};
// What of a mirrored request's pair record was not captured, and why (the counters line's
// "not_captured"): the body left out by capture.body_sample (its size and sha256 are kept), or
// cut at capture.max_body_bytes.
enum class NotCaptured { kBodySampledOut, kBodyTruncated };
inline constexpr const char* kNotCapturedReasons[] = {"body_sampled_out", "body_truncated"};
inline constexpr int kNotCapturedReasonCount = 2;

// Shadow outcome index into kShadowOutcomes: ok needs a complete response with status < 500.
int ShadowOutcomeIndex(const UpstreamResult& result);
// Primary outcome: ok | error | timeout | connect_failed (ok needs a status < 500).
const char* PrimaryOutcome(const UpstreamResult& result);
const char* PrimaryOutcome(UpstreamOutcome outcome, unsigned status);

// Spreads a mirror's copies evenly in time. The in-flight bound alone lets a slow shadow's
// copies go in waves: `slots` copies start together, all return together one shadow latency
// later, and the next `slots` start together, so every wave costs the proxy's threads a burst
// of work. The pacer admits at most `slots - burst` copies per mean slot time (an average of
// how long copies held their slots), with bursts of up to `burst`: by Little's law the rate that
// keeps `slots - burst` copies in flight, so a burst still fits under the bound (reaching the
// bound would stop the copies until slots free up, and a burst would follow the gap). Over time
// it admits nearly as many copies as the bound alone (7/8 with MirrorRuntime's burst), just not
// in waves. Before any copy has finished it admits everything. Lock-free (GCRA: one atomic
// theoretical arrival time); thread-safe.
class MirrorPacer {
 public:
  MirrorPacer(int slots, int burst) : slots_(slots), burst_(burst) {}
  // True when a copy may start at `now_ns` (any monotonic clock, in nanoseconds).
  bool Admit(int64_t now_ns);
  // A copy released its slot after holding it `held_ns`.
  void Observe(int64_t held_ns);
  // The time between admissions when pacing; 0 before the first Observe.
  int64_t interval_ns() const;

 private:
  const int slots_;
  const int burst_;
  std::atomic<int64_t> mean_held_ns_{0};
  std::atomic<int64_t> next_ns_{0};  // GCRA's theoretical arrival time
};

class MirrorRuntime {
 public:
  // `label`: the mirror's name in the metrics (empty: config.name); a cutover's reverse mirror
  // has the candidate's name in its pair records but counts under a label of its own.
  MirrorRuntime(const MirrorConfig& config, const std::string& route,
                std::shared_ptr<UpstreamPool> pool, GatewayMetrics& metrics,
                const std::string& label = "");

  // Decides whether this request gets a copy. On kNone an in-flight slot is taken: the caller
  // MUST call Finished() when the shadow exchange ends. Counts every not-mirrored reason;
  // overload covers both the in-flight bound and the pacer (MirrorPacer).
  NotMirrored Admit(std::string_view hash_key, size_t body_size);
  // For a request whose body is streamed (never mirrored): counts sampled_out when sampling
  // leaves it out; else memory_budget when it was streamed because the memory budget could not
  // hold it (`over_budget`) and this mirror would have taken it (no body mirrored, or
  // `body_size`, its size or what of it was read, within max_body_bytes); else body_too_large.
  // Takes no slot.
  NotMirrored CountStreamed(std::string_view hash_key, bool over_budget = false,
                            uint64_t body_size = 0);
  // Records a finished shadow exchange (outcome, latency) and frees its slot.
  void Finished(const UpstreamResult& result);
  // Records a copy not sent because the shadow is down (counted connect_failed); frees its slot.
  void FailedFast();

  const MirrorConfig& config() const { return config_; }
  const std::string& route() const { return route_; }
  const std::string& label() const { return label_; }  // its name in the metrics
  UpstreamPool& pool() { return *pool_; }
  double percent() const { return percent_.load(std::memory_order_relaxed); }
  void set_percent(double percent);
  int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  uint64_t not_mirrored(int reason) const;
  uint64_t outcome(int index) const;
  // Whether this mirror's pair of request `id` keeps the request body (capture.body_sample, or
  // the mirror's capture_body_sample); thread-safe.
  bool KeepsBody(std::string_view id, double default_share) const;
  void CountNotCaptured(NotCaptured reason) {
    not_captured_[static_cast<int>(reason)]->Increment();
  }
  uint64_t not_captured(int reason) const {
    return static_cast<uint64_t>(not_captured_[reason]->Value());
  }

 private:
  const MirrorConfig config_;
  const std::string route_;
  const std::string label_;
  std::shared_ptr<UpstreamPool> pool_;
  MirrorSampler sampler_;
  std::atomic<double> percent_;
  std::atomic<uint64_t> ppm_;
  std::atomic<int> in_flight_{0};
  MirrorPacer pacer_;
  Counter* not_mirrored_[kNotMirroredReasonCount];
  Counter* outcomes_[4];
  Histogram* latency_;
  Counter* not_captured_[kNotCapturedReasonCount];  // sg_gateway_not_captured_total
};

// Joins the two halves of one pair; whichever arrives second submits the record. Each part is
// set once, by one thread: the request half and the shadow by the mirror's thread (in that
// order), the primary by the session's. No lock: a thread that set its half never waits for the
// other (which may be a low-priority shadow thread, preempted).
//
// `reversed` (a progressive cutover): the session's exchange went to the mirror's upstream (the
// candidate) and the copy to the route's own upstream. The record keeps its orientation, primary
// = the route's upstream: SetPrimary's response becomes the record's shadow and SetShadow's its
// primary (outcomes in each side's words), and the candidate's send_offset_us is the negated
// offset of the copy.
class PairCollector {
 public:
  explicit PairCollector(std::shared_ptr<PairSink> sink, bool reversed = false)
      : sink_(std::move(sink)), reversed_(reversed) {}
  // The record's request half (id, ts_us, route, mirror, served_by, request); its primary and
  // shadow are left as they are. REQUIRES: before SetShadow, on the thread that calls SetShadow.
  void SetRequest(PairRecord record);
  // The response of the session's exchange (the one the client got).
  void SetPrimary(CapturedResponse primary);
  // The copy's response.
  void SetShadow(CapturedResponse shadow);

 private:
  // The second of SetPrimary and SetShadow submits.
  void Arrived();

  std::shared_ptr<PairSink> sink_;
  const bool reversed_;
  PairRecord record_;
  int64_t copy_offset_us_ = 0;  // reversed: the copy's send_offset_us
  std::atomic<int> halves_{0};
};

// The request as the pair log records it: method, target, size and digest of the body, the
// `capture.request_headers` subset and, `with_body`, the body cut at `capture.max_body_bytes`.
CapturedRequest CaptureRequest(const Request& request, const CaptureConfig& capture,
                               bool with_body = true);

// A response (or its absence) as the pair log records it: status, the `header_names` subset,
// the body cut at `max_body_bytes`.
CapturedResponse CaptureResponse(const UpstreamResult& result, const std::string& outcome,
                                 const std::vector<std::string>& header_names,
                                 int64_t max_body_bytes);
// The same for a response that arrived, from its head and (captured) body, without a copy of
// either; the latency is left to the caller.
CapturedResponse CaptureHead(const http::response_header<>& head, std::string_view body,
                             const std::string& outcome,
                             const std::vector<std::string>& header_names, int64_t max_body_bytes);

}  // namespace sg::gateway
