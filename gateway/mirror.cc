#include "gateway/mirror.h"

#include <algorithm>

#include "common/clock.h"
#include "common/strings.h"

namespace sg::gateway {

namespace {
int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

bool MirrorPacer::Admit(int64_t now_ns) {
  int64_t interval = interval_ns();
  if (interval <= 0) return true;
  // A copy conforms while the theoretical arrival time is at most `burst - 1` intervals ahead.
  int64_t tolerance = interval * (burst_ - 1);
  int64_t next = next_ns_.load(std::memory_order_relaxed);
  for (;;) {
    int64_t start = std::max(next, now_ns);
    if (start - now_ns > tolerance) return false;
    if (next_ns_.compare_exchange_weak(next, start + interval, std::memory_order_relaxed)) {
      return true;
    }
  }
}

void MirrorPacer::Observe(int64_t held_ns) {
  // An exponential average (1/8 per copy). Concurrent updates may lose a sample: an average.
  int64_t mean = mean_held_ns_.load(std::memory_order_relaxed);
  held_ns = std::max<int64_t>(held_ns, 1);
  mean_held_ns_.store(mean == 0 ? held_ns : mean + (held_ns - mean) / 8, std::memory_order_relaxed);
}

int64_t MirrorPacer::interval_ns() const {
  // Paced for `slots - burst` copies in flight, so that a burst fits under the bound (which,
  // when reached, stops the copies until slots free up, and then a burst follows the gap).
  int paced = slots_ > burst_ ? slots_ - burst_ : slots_;
  return mean_held_ns_.load(std::memory_order_relaxed) / paced;
}

int ShadowOutcomeIndex(const UpstreamResult& result) {
  switch (result.outcome) {
    case UpstreamOutcome::kOk:
      return result.response.result_int() < 500 ? 0 : 1;
    case UpstreamOutcome::kTimeout:
      return 2;
    case UpstreamOutcome::kConnectFailed:
      return 3;
    default:
      return 1;
  }
}

const char* PrimaryOutcome(UpstreamOutcome outcome, unsigned status) {
  switch (outcome) {
    case UpstreamOutcome::kOk:
      return status < 500 ? "ok" : "error";
    case UpstreamOutcome::kTimeout:
      return "timeout";
    case UpstreamOutcome::kConnectFailed:
      return "connect_failed";
    default:
      return "error";
  }
}

const char* PrimaryOutcome(const UpstreamResult& result) {
  return PrimaryOutcome(result.outcome, result.response.result_int());
}

MirrorRuntime::MirrorRuntime(const MirrorConfig& config, const std::string& route,
                             std::shared_ptr<UpstreamPool> pool, GatewayMetrics& metrics,
                             const std::string& label)
    : config_(config),
      route_(route),
      label_(label.empty() ? config.name : label),
      pool_(std::move(pool)),
      sampler_(config.sampling == Sampling::kHash),
      percent_(config.percent),
      ppm_(PercentToPpm(config.percent)),
      pacer_(config.max_in_flight, std::max(1, config.max_in_flight / 8)) {
  for (int i = 0; i < kNotMirroredReasonCount; ++i) {
    not_mirrored_[i] = &metrics.not_mirrored.WithLabels({route, label_, kNotMirroredReasons[i]});
  }
  for (int i = 0; i < kNotCapturedReasonCount; ++i) {
    not_captured_[i] = &metrics.not_captured.WithLabels({route, label_, kNotCapturedReasons[i]});
  }
  for (int i = 0; i < 4; ++i) {
    outcomes_[i] = &metrics.mirror_outcomes.WithLabels({route, label_, kShadowOutcomes[i]});
  }
  latency_ = &metrics.shadow_latency.WithLabels({route, label_});
}

NotMirrored MirrorRuntime::Admit(std::string_view hash_key, size_t body_size) {
  if (!sampler_.Sample(ppm_.load(std::memory_order_relaxed), hash_key)) {
    not_mirrored_[0]->Increment();
    return NotMirrored::kSampledOut;
  }
  if (config_.mirror_body && body_size > static_cast<size_t>(config_.max_body_bytes)) {
    not_mirrored_[1]->Increment();
    return NotMirrored::kBodyTooLarge;
  }
  if (in_flight_.fetch_add(1, std::memory_order_acq_rel) >= config_.max_in_flight ||
      !pacer_.Admit(SteadyNanos())) {
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    not_mirrored_[2]->Increment();
    return NotMirrored::kOverload;
  }
  return NotMirrored::kNone;
}

NotMirrored MirrorRuntime::CountStreamed(std::string_view hash_key, bool over_budget,
                                         uint64_t body_size) {
  if (!sampler_.Sample(ppm_.load(std::memory_order_relaxed), hash_key)) {
    not_mirrored_[0]->Increment();
    return NotMirrored::kSampledOut;
  }
  if (over_budget &&
      (!config_.mirror_body || body_size <= static_cast<uint64_t>(config_.max_body_bytes))) {
    not_mirrored_[3]->Increment();
    return NotMirrored::kMemoryBudget;
  }
  not_mirrored_[1]->Increment();
  return NotMirrored::kBodyTooLarge;
}

void MirrorRuntime::Finished(const UpstreamResult& result) {
  pacer_.Observe(
      std::chrono::duration_cast<std::chrono::nanoseconds>(result.completed - result.dispatched)
          .count());
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  outcomes_[ShadowOutcomeIndex(result)]->Increment();
  if (result.outcome == UpstreamOutcome::kOk) {
    latency_->Observe(ToMicros(result.completed - result.dispatched) / 1e6);
  }
}

void MirrorRuntime::FailedFast() {
  in_flight_.fetch_sub(1, std::memory_order_acq_rel);
  outcomes_[3]->Increment();
}

void MirrorRuntime::set_percent(double percent) {
  percent_.store(percent, std::memory_order_relaxed);
  ppm_.store(PercentToPpm(percent), std::memory_order_relaxed);
}

uint64_t MirrorRuntime::not_mirrored(int reason) const {
  return static_cast<uint64_t>(not_mirrored_[reason]->Value());
}

uint64_t MirrorRuntime::outcome(int index) const {
  return static_cast<uint64_t>(outcomes_[index]->Value());
}

bool MirrorRuntime::KeepsBody(std::string_view id, double default_share) const {
  return BodySampled(id, PercentToPpm(config_.capture_body_sample.value_or(default_share) * 100));
}

void PairCollector::SetRequest(PairRecord record) {
  // Field by field: record_.primary may be being set by the session's thread.
  record_.id = std::move(record.id);
  record_.ts_us = record.ts_us;
  record_.route = std::move(record.route);
  record_.mirror = std::move(record.mirror);
  record_.served_by_candidate = record.served_by_candidate;
  record_.request = std::move(record.request);
}

void PairCollector::SetPrimary(CapturedResponse primary) {
  if (reversed_) {
    // The candidate's answer, in a shadow's words.
    if (primary.outcome == "error") primary.outcome = "shadow_error";
    if (primary.outcome == "timeout") primary.outcome = "shadow_timeout";
    record_.shadow = std::move(primary);
  } else {
    record_.primary = std::move(primary);
  }
  Arrived();
}

void PairCollector::SetShadow(CapturedResponse shadow) {
  if (reversed_) {
    // The old primary's answer, in a primary's words.
    if (shadow.outcome == "shadow_error") shadow.outcome = "error";
    if (shadow.outcome == "shadow_timeout") shadow.outcome = "timeout";
    copy_offset_us_ = shadow.send_offset_us;
    shadow.send_offset_us = 0;
    record_.primary = std::move(shadow);
  } else {
    record_.shadow = std::move(shadow);
  }
  Arrived();
}

void PairCollector::Arrived() {
  // acq_rel: the second arrival sees every write the first made before it arrived.
  if (halves_.fetch_add(1, std::memory_order_acq_rel) == 1 && sink_) {
    if (reversed_) record_.shadow.send_offset_us = -copy_offset_us_;
    sink_->Submit(std::move(record_));
  }
}

CapturedRequest CaptureRequest(const Request& request, const CaptureConfig& capture,
                               bool with_body) {
  CapturedRequest captured;
  captured.method = std::string(request.method_string());
  captured.target = std::string(request.target());
  const auto& body = request.body();
  captured.size = body.size();
  captured.sha256 = Sha256Hex(body);
  for (const auto& name : capture.request_headers) {
    auto it = request.find(name);
    if (it == request.end()) continue;
    const bool secret =
        std::find(capture.redacted.begin(), capture.redacted.end(), name) != capture.redacted.end();
    captured.headers[name] = secret ? std::string("[redacted]") : std::string(it->value());
  }
  if (!with_body) return captured;
  auto limit = static_cast<size_t>(capture.max_body_bytes);
  captured.body = body.substr(0, std::min(limit, body.size()));
  captured.body_truncated = body.size() > limit;
  return captured;
}

CapturedResponse CaptureResponse(const UpstreamResult& result, const std::string& outcome,
                                 const std::vector<std::string>& header_names,
                                 int64_t max_body_bytes) {
  CapturedResponse captured;
  if (result.outcome == UpstreamOutcome::kOk) {
    captured = CaptureHead(result.response.base(), result.response.body(), outcome, header_names,
                           max_body_bytes);
  } else {
    captured.outcome = outcome;
    captured.error = result.error;
  }
  captured.latency_us = ToMicros(result.completed - result.dispatched);
  return captured;
}

CapturedResponse CaptureHead(const http::response_header<>& head, std::string_view body,
                             const std::string& outcome,
                             const std::vector<std::string>& header_names, int64_t max_body_bytes) {
  CapturedResponse captured;
  captured.outcome = outcome;
  captured.status = head.result_int();
  for (const auto& name : header_names) {
    auto it = head.find(name);
    if (it != head.end()) captured.headers[name] = std::string(it->value());
  }
  if (body.size() > static_cast<size_t>(max_body_bytes)) {
    captured.body = body.substr(0, static_cast<size_t>(max_body_bytes));
    captured.body_truncated = true;
  } else {
    captured.body = body;
  }
  if (outcome != "ok") captured.error = "status " + std::to_string(captured.status);
  return captured;
}

}  // namespace sg::gateway
