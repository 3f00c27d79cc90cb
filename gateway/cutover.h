// Cutover: one route's progressive cutover (docs/gateway.md, "Progressive cutover"). The
// candidate, one of the route's mirrors, serves a sticky share of the route's keys; each step is
// judged on its own pairs by a fresh OnlineComparator with the comparison's rules and gates, and
// an evaluation thread advances, holds or rolls back every evaluation interval. The state is
// kept in a state file (written by atomic rename) across restarts.
//
// Thread safety: every public method may be called from any thread. The I/O threads call only
// ServesCandidate, MirrorsBack and Offer, which read atomics or take a short lock that no file
// I/O or judging ever holds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "gateway/gateway_config.h"
#include "gateway/gateway_metrics.h"

namespace sg::comparator {
class OnlineComparator;
}  // namespace sg::comparator

namespace sg::gateway {

enum class CutoverState { kIdle, kRunning, kPaused, kRolledBack, kPromoted };
inline constexpr const char* kCutoverStateNames[] = {"IDLE", "RUNNING", "PAUSED", "ROLLED_BACK",
                                                     "PROMOTED"};
inline constexpr const char* kCutoverDecisions[] = {"start", "advance", "promote", "rollback",
                                                    "pause", "resume",  "share"};

// A moment, on both clocks: the steady one measures holds, the wall clock is shown.
struct CutoverInstant {
  std::chrono::steady_clock::time_point steady;
  int64_t unix_us = 0;
  static CutoverInstant Now();
};

// What one evaluation of a step's comparison found.
struct StepVerdict {
  std::string verdict = "INSUFFICIENT_DATA";  // PASS, FAIL, MARGINAL, INSUFFICIENT_DATA
  uint64_t judged = 0;                        // pairs judged at the step
  // The first gate that failed: `gate "NAME" (METRIC) value V > bound B`; empty: none failed.
  std::string failure;
  nlohmann::json failed_gate;                      // that gate as in `gates`; null when none failed
  nlohmann::json gates = nlohmann::json::array();  // each gate: name, metric, status, value, bound
};
// Reads a verdict object (comparator::VerdictJson: "verdict", "gates").
StepVerdict ReadStepVerdict(const nlohmann::json& verdict, uint64_t judged);

// The value of cookie `name` in Cookie header values (RFC 6265 section 4.2.1: "a=1; b=2");
// empty when absent.
std::string_view CookieValue(std::string_view cookie_header, std::string_view name);

class Cutover {
 public:
  // What judges a step: the comparison's rules and gates (both required: config validation).
  struct Judging {
    std::shared_ptr<const comparator::CompareConfig> rules;
    std::shared_ptr<const comparator::GateConfig> gates;
    size_t queue_capacity = 4096;
  };
  // Reads `config.state_file` when there is one (and trusts it only when it names this route's
  // candidate and schedule). `metrics` may be null. Starts no thread: see StartEvaluating.
  Cutover(std::string route, CutoverConfig config, Judging judging, GatewayMetrics* metrics,
          CutoverInstant now = CutoverInstant::Now());
  ~Cutover();
  Cutover(const Cutover&) = delete;
  Cutover& operator=(const Cutover&) = delete;

  // Where each decision goes besides the state (the pair log's "cutover" lines: the gateway
  // sets the instance and submits it to its sink). Called with the cutover's lock held: it must
  // not block or call back. Set before StartEvaluating and the admin API.
  using DecisionLog = std::function<void(CutoverDecision)>;
  void SetDecisionLog(DecisionLog log);

  // ---- I/O threads ----
  // The key that decides who serves a request: its sticky header or cookie, else the client's
  // address.
  std::string_view StickyKey(const boost::beast::http::fields& head,
                             std::string_view client_ip) const;
  // True when the candidate serves the request with this key (its hash is below the share).
  // Counts the request's side.
  bool ServesCandidate(std::string_view key);
  // False once promoted: the old primary then gets no more copies.
  bool MirrorsBack() const { return mirrors_back_.load(std::memory_order_relaxed); }
  // Hands a copy of a candidate pair (this route, the candidate mirror) to the step's comparison.
  void Offer(const PairRecord& record);

  // ---- the evaluation thread ----
  // Starts the thread that evaluates every evaluation_interval; Stop (or the destructor) ends it.
  void StartEvaluating();
  void Stop();
  // One evaluation now: the step's verdict, then Decide.
  void EvaluateNow(CutoverInstant now = CutoverInstant::Now());
  // The decision for a verdict of the current step: a failing gate rolls back; a passed step
  // whose hold and min_judged are met advances (or promotes after the last step).
  void Decide(const StepVerdict& verdict, CutoverInstant now);

  // ---- admin ----
  // Each returns an error message (HTTP 409: the state does not allow it) or nullopt.
  std::optional<std::string> Start(CutoverInstant now = CutoverInstant::Now());
  std::optional<std::string> Pause(CutoverInstant now = CutoverInstant::Now());
  std::optional<std::string> Resume(CutoverInstant now = CutoverInstant::Now());
  std::optional<std::string> Promote(CutoverInstant now = CutoverInstant::Now());
  std::optional<std::string> RollBack(const std::string& reason,
                                      CutoverInstant now = CutoverInstant::Now());
  // REQUIRES: 0 <= percent <= 100.
  std::optional<std::string> SetShare(double percent, CutoverInstant now = CutoverInstant::Now());

  // {"route", "candidate", "state", "step", "steps", "share", "step_started_at",
  //  "time_in_step_s", "judged", "verdict", "reason", "decisions"}.
  nlohmann::json StateJson(CutoverInstant now = CutoverInstant::Now()) const;
  // The cutover report (docs/gateway.md): the state plus "timeline", one point per evaluation
  // (the last kTimelineKept, kept in the state file across restarts): {"at", "t_s" (Unix
  // seconds), "share", "step", "judged", "shadow_error_rate", "mismatch_rate", "p99_primary_ms",
  // "p99_candidate_ms"} (null where the step's comparison has no such evidence yet).
  nlohmann::json ReportJson(CutoverInstant now = CutoverInstant::Now()) const;
  CutoverState state() const;
  double share() const;
  const std::string& route() const { return route_; }
  const CutoverConfig& config() const { return config_; }

  // The timeline points kept (in memory and in the state file): 12 hours of 10 s evaluations.
  static constexpr size_t kTimelineKept = 4320;

 private:
  static constexpr size_t kDecisionsKept = 100;

  // REQUIRES: mutex_ held. Each sets the state, writes the state file and updates the metrics.
  void EnterStep(int step, double share, CutoverState state, const char* decision,
                 const std::string& reason, CutoverInstant now,
                 const StepVerdict* verdict = nullptr);
  void Finish(CutoverState state, double share, const char* decision, const std::string& reason,
              CutoverInstant now, const StepVerdict* verdict = nullptr);
  // `verdict`: the evaluation the schedule decided on; null for the admin's decisions.
  void Record(const char* decision, const std::string& reason, CutoverInstant now,
              const StepVerdict* verdict);
  void DecideLocked(const StepVerdict& verdict, CutoverInstant now);
  void NewStepComparison();
  void CloseRetired();
  void Changed();
  void WriteStateFile() const;
  void Restore(CutoverInstant now);
  void PublishMetrics();
  // What the state file holds but its timeline (WriteStateFile writes that a point per line).
  nlohmann::json PersistedJson() const;

  const std::string route_;
  const CutoverConfig config_;
  const Judging judging_;
  GatewayMetrics* const metrics_;            // null in unit tests
  Counter* served_[2] = {nullptr, nullptr};  // {primary, candidate}

  std::atomic<uint64_t> share_ppm_{0};
  std::atomic<bool> mirrors_back_{true};

  // Guarded by mutex_ (admin and the evaluation thread; never an I/O thread).
  mutable std::mutex mutex_;
  CutoverState state_ = CutoverState::kIdle;
  int step_ = -1;            // index into config_.steps; -1 before the first
  double share_ = 0;         // percent
  uint64_t generation_ = 0;  // advanced at every change: an evaluation of an older step is dropped
  CutoverInstant step_started_;
  StepVerdict last_verdict_;
  std::string reason_;
  std::deque<nlohmann::json> decisions_;
  std::deque<nlohmann::json> timeline_;
  DecisionLog decision_log_;
  std::vector<std::shared_ptr<comparator::OnlineComparator>> retired_;  // closed outside mutex_

  // Guarded by comparison_mutex_ (I/O threads: Offer).
  mutable std::mutex comparison_mutex_;
  std::shared_ptr<comparator::OnlineComparator> comparison_;  // the step's; null when not judging
  uint64_t comparison_generation_ = 0;

  // Guarded by thread_mutex_.
  std::mutex thread_mutex_;
  std::condition_variable thread_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sg::gateway
