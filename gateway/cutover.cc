#include "gateway/cutover.h"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "common/strings.h"
#include "comparator/gate_metrics.h"
#include "comparator/online_comparator.h"
#include "gateway/sampling.h"

namespace sg::gateway {

namespace {

constexpr int kStateFileVersion = 1;

const char* StateName(CutoverState state) {
  return kCutoverStateNames[static_cast<int>(state)];
}

std::optional<CutoverState> ParseState(const std::string& name) {
  for (int i = 0; i < 5; ++i) {
    if (name == kCutoverStateNames[i]) return static_cast<CutoverState>(i);
  }
  return std::nullopt;
}

std::string StepName(int step, double share) {
  if (step < 0) return "manual share (" + FormatDouble(share) + "%)";
  return "step " + std::to_string(step) + " (" + FormatDouble(share) + "%)";
}

std::string JsonNumber(const nlohmann::json& value) {
  return value.is_number() ? FormatDouble(value.get<double>()) : std::string("none");
}

// What the report's timeline shows of one evaluation of a step's comparison.
nlohmann::json TimelinePoint(const nlohmann::json& comparison, CutoverInstant now) {
  auto rate = [&](const char* metric) -> nlohmann::json {
    comparator::Gate gate;
    gate.metric = metric;
    auto evidence = comparator::ReadMetric(gate, comparison);
    if (evidence.state != comparator::Evidence::State::kOk) return nullptr;
    return evidence.estimate;
  };
  auto p99 = [&](const char* side) -> nlohmann::json {
    const auto* value = comparison.is_object() && comparison.contains("latency") &&
                                comparison["latency"].contains(side)
                            ? &comparison["latency"][side]
                            : nullptr;
    if (!value || !value->contains("p99_ms") || !(*value)["p99_ms"].is_number()) return nullptr;
    return (*value)["p99_ms"];
  };
  return {{"at", FormatUtcMicros(now.unix_us)},
          {"t_s", static_cast<double>(now.unix_us) / 1e6},
          {"shadow_error_rate", rate("shadow_error_rate")},
          {"mismatch_rate", rate("mismatch_rate")},
          {"p99_primary_ms", p99("primary")},
          {"p99_candidate_ms", p99("shadow")}};
}

}  // namespace

CutoverInstant CutoverInstant::Now() {
  return {std::chrono::steady_clock::now(), NowUnixMicros()};
}

StepVerdict ReadStepVerdict(const nlohmann::json& verdict, uint64_t judged) {
  StepVerdict out;
  out.judged = judged;
  if (!verdict.is_object()) return out;
  out.verdict = verdict.value("verdict", out.verdict);
  for (const auto& gate : verdict.value("gates", nlohmann::json::array())) {
    const bool is_min = gate.contains("min");
    nlohmann::json bound = gate.value("effective_bound", gate.value(is_min ? "min" : "max", 0.0));
    nlohmann::json shown = {{"name", gate.value("name", "")},
                            {"metric", gate.value("metric", "")},
                            {"status", gate.value("status", "")},
                            {"value", gate.value("value", nlohmann::json())},
                            {is_min ? "min" : "max", bound}};
    if (out.failure.empty() && shown["status"] == "FAIL") {
      out.failed_gate = shown;
      out.failure = "gate \"" + shown["name"].get<std::string>() + "\" (" +
                    shown["metric"].get<std::string>() + ") value " + JsonNumber(shown["value"]) +
                    (is_min ? " < bound " : " > bound ") + JsonNumber(bound);
    }
    out.gates.push_back(std::move(shown));
  }
  return out;
}

std::string_view CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    std::string_view value = pair.substr(eq + 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return {};
}

Cutover::Cutover(std::string route, CutoverConfig config, Judging judging, GatewayMetrics* metrics,
                 CutoverInstant now)
    : route_(std::move(route)),
      config_(std::move(config)),
      judging_(std::move(judging)),
      metrics_(metrics) {
  if (metrics_) {
    served_[0] = &metrics_->cutover_served.WithLabels({route_, "primary"});
    served_[1] = &metrics_->cutover_served.WithLabels({route_, "candidate"});
    for (const char* decision : kCutoverDecisions) {
      metrics_->cutover_decisions.WithLabels({route_, decision});  // shown at 0 from the start
    }
  }
  std::lock_guard lock(mutex_);
  step_started_ = now;
  Restore(now);
  PublishMetrics();
}

void Cutover::SetDecisionLog(DecisionLog log) {
  std::lock_guard lock(mutex_);
  decision_log_ = std::move(log);
}

Cutover::~Cutover() {
  Stop();
  std::shared_ptr<comparator::OnlineComparator> comparison;
  {
    std::lock_guard lock(comparison_mutex_);
    comparison.swap(comparison_);
  }
  if (comparison) comparison->Close();
  for (auto& retired : retired_) retired->Close();
}

std::string_view Cutover::StickyKey(const boost::beast::http::fields& head,
                                    std::string_view client_ip) const {
  if (config_.sticky == StickyKey::kHeader) {
    auto it = head.find(config_.sticky_name);
    if (it != head.end() && !it->value().empty()) return {it->value().data(), it->value().size()};
  } else if (config_.sticky == StickyKey::kCookie) {
    for (auto [it, end] = head.equal_range(boost::beast::http::field::cookie); it != end; ++it) {
      auto value = CookieValue({it->value().data(), it->value().size()}, config_.sticky_name);
      if (!value.empty()) return value;
    }
  }
  return client_ip;
}

bool Cutover::ServesCandidate(std::string_view key) {
  uint64_t ppm = share_ppm_.load(std::memory_order_relaxed);
  bool candidate = ppm >= 1000000 || (ppm > 0 && HashSelected(key, ppm));
  if (served_[candidate]) served_[candidate]->Increment();
  return candidate;
}

void Cutover::Offer(const PairRecord& record) {
  if (record.route != route_ || record.mirror != config_.candidate) return;
  std::shared_ptr<comparator::OnlineComparator> comparison;
  {
    std::lock_guard lock(comparison_mutex_);
    comparison = comparison_;
  }
  if (comparison) comparison->Offer(record);
}

void Cutover::StartEvaluating() {
  thread_ = std::thread([this] {
    std::unique_lock lock(thread_mutex_);
    for (;;) {
      thread_cv_.wait_for(lock, config_.evaluation_interval, [this] { return stopping_; });
      if (stopping_) return;
      lock.unlock();
      EvaluateNow();
      lock.lock();
    }
  });
}

void Cutover::Stop() {
  {
    std::lock_guard lock(thread_mutex_);
    stopping_ = true;
  }
  thread_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Cutover::EvaluateNow(CutoverInstant now) {
  std::shared_ptr<comparator::OnlineComparator> comparison;
  uint64_t generation = 0;
  {
    std::lock_guard lock(comparison_mutex_);
    comparison = comparison_;
    generation = comparison_generation_;
  }
  if (!comparison) return;
  // Judging (the rank tests) happens here, outside every lock the admin or I/O threads take.
  const uint64_t judged = comparison->queue_stats().judged;
  auto report = comparison->Report();
  StepVerdict verdict = ReadStepVerdict(report.value("verdict", nlohmann::json()), judged);
  nlohmann::json point = TimelinePoint(report.value("comparison", nlohmann::json()), now);
  {
    std::lock_guard lock(mutex_);
    if (generation != generation_) return;  // the step changed meanwhile: judged another step
    point["share"] = share_;
    point["step"] = step_;
    point["judged"] = judged;
    timeline_.push_back(std::move(point));
    while (timeline_.size() > kTimelineKept) timeline_.pop_front();
    const uint64_t before = generation_;
    DecideLocked(verdict, now);
    // The point survives a restart: a decision wrote the state file, else it is written here.
    if (generation_ == before) WriteStateFile();
  }
  CloseRetired();
}

void Cutover::Decide(const StepVerdict& verdict, CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    DecideLocked(verdict, now);
  }
  CloseRetired();
}

void Cutover::DecideLocked(const StepVerdict& verdict, CutoverInstant now) {
  if (state_ != CutoverState::kRunning && state_ != CutoverState::kPaused) return;
  last_verdict_ = verdict;
  if (!verdict.failure.empty()) {
    const std::string at = StepName(step_, share_);
    // The share goes to 0 first: the next request is served by the old primary.
    Finish(CutoverState::kRolledBack, 0, "rollback", verdict.failure, now, &verdict);
    spdlog::error("cutover {}: ROLLED_BACK at {}: {} ({} pairs judged at the step)", route_, at,
                  verdict.failure, verdict.judged);
    return;
  }
  if (state_ != CutoverState::kRunning || step_ < 0) return;
  const auto& step = config_.steps[static_cast<size_t>(step_)];
  if (now.steady - step_started_.steady < step.hold || verdict.judged < step.min_judged ||
      verdict.verdict != "PASS") {
    return;
  }
  if (static_cast<size_t>(step_) + 1 == config_.steps.size()) {
    Finish(CutoverState::kPromoted, 100, "promote",
           "every step passed (" + std::to_string(verdict.judged) + " pairs judged at the last)",
           now, &verdict);
    spdlog::info("cutover {}: PROMOTED: every step passed; the old primary is no longer mirrored",
                 route_);
    return;
  }
  const int next = step_ + 1;
  const double share = config_.steps[static_cast<size_t>(next)].share;
  std::string reason = StepName(step_, share_) + " passed: " + std::to_string(verdict.judged) +
                       " pairs judged, every gate PASS or not applicable";
  EnterStep(next, share, CutoverState::kRunning, "advance", reason, now, &verdict);
  spdlog::info("cutover {}: advance to {}: {}", route_, StepName(next, share), reason);
}

std::optional<std::string> Cutover::Start(CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    if (state_ != CutoverState::kIdle && state_ != CutoverState::kRolledBack) {
      return std::string("cannot start: the cutover is ") + StateName(state_);
    }
    EnterStep(0, config_.steps[0].share, CutoverState::kRunning, "start", "started", now);
    spdlog::info("cutover {}: started at {}", route_, StepName(0, share_));
  }
  CloseRetired();
  return std::nullopt;
}

std::optional<std::string> Cutover::Pause(CutoverInstant now) {
  std::lock_guard lock(mutex_);
  if (state_ != CutoverState::kRunning) {
    return std::string("cannot pause: the cutover is ") + StateName(state_);
  }
  state_ = CutoverState::kPaused;
  Record("pause", "manual", now, nullptr);
  Changed();
  spdlog::info("cutover {}: paused at {}", route_, StepName(step_, share_));
  return std::nullopt;
}

std::optional<std::string> Cutover::Resume(CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    if (state_ != CutoverState::kPaused) {
      return std::string("cannot resume: the cutover is ") + StateName(state_);
    }
    const int step = std::max(step_, 0);
    EnterStep(step, config_.steps[static_cast<size_t>(step)].share, CutoverState::kRunning,
              "resume", "manual", now);
    spdlog::info("cutover {}: resumed at {}", route_, StepName(step_, share_));
  }
  CloseRetired();
  return std::nullopt;
}

std::optional<std::string> Cutover::Promote(CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    if (state_ == CutoverState::kPromoted) return std::string("already PROMOTED");
    Finish(CutoverState::kPromoted, 100, "promote", "manual", now);
    spdlog::warn("cutover {}: PROMOTED by the admin API", route_);
  }
  CloseRetired();
  return std::nullopt;
}

std::optional<std::string> Cutover::RollBack(const std::string& reason, CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    if (state_ == CutoverState::kPromoted) {
      return std::string("cannot roll back: the cutover is PROMOTED");
    }
    Finish(CutoverState::kRolledBack, 0, "rollback", reason, now);
    spdlog::warn("cutover {}: ROLLED_BACK by the admin API: {}", route_, reason);
  }
  CloseRetired();
  return std::nullopt;
}

std::optional<std::string> Cutover::SetShare(double percent, CutoverInstant now) {
  {
    std::lock_guard lock(mutex_);
    if (state_ == CutoverState::kPromoted) {
      return std::string("cannot set a share: the cutover is PROMOTED");
    }
    EnterStep(step_, percent, CutoverState::kPaused, "share",
              "manual share " + FormatDouble(percent) + "%", now);
    spdlog::info("cutover {}: manual share {}% (PAUSED)", route_, FormatDouble(percent));
  }
  CloseRetired();
  return std::nullopt;
}

CutoverState Cutover::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

double Cutover::share() const {
  std::lock_guard lock(mutex_);
  return share_;
}

nlohmann::json Cutover::StateJson(CutoverInstant now) const {
  std::lock_guard lock(mutex_);
  nlohmann::json out = PersistedJson();
  out.erase("version");
  const bool judging = state_ == CutoverState::kRunning || state_ == CutoverState::kPaused;
  out["step_started_at"] = FormatUtcMicros(step_started_.unix_us);
  out["time_in_step_s"] = std::chrono::duration<double>(now.steady - step_started_.steady).count();
  uint64_t judged = 0;
  if (judging) {
    std::lock_guard comparison_lock(comparison_mutex_);
    if (comparison_) judged = comparison_->queue_stats().judged;
  }
  out["judged"] = judged;  // now; the verdict's is the last evaluation's
  out["verdict"] = {{"verdict", last_verdict_.verdict}, {"gates", last_verdict_.gates}};
  if (!last_verdict_.failure.empty()) out["verdict"]["failure"] = last_verdict_.failure;
  out["evaluation_interval_s"] = std::chrono::duration<double>(config_.evaluation_interval).count();
  return out;
}

nlohmann::json Cutover::ReportJson(CutoverInstant now) const {
  nlohmann::json out = StateJson(now);
  std::lock_guard lock(mutex_);
  nlohmann::json timeline = nlohmann::json::array();
  for (const auto& point : timeline_) timeline.push_back(point);
  out["timeline"] = std::move(timeline);
  out["generated_at"] = FormatUtcMicros(now.unix_us);
  return out;
}

void Cutover::EnterStep(int step, double share, CutoverState state, const char* decision,
                        const std::string& reason, CutoverInstant now, const StepVerdict* verdict) {
  state_ = state;
  step_ = step;
  share_ = share;
  step_started_ = now;
  last_verdict_ = StepVerdict();
  reason_ = reason;
  share_ppm_.store(PercentToPpm(share), std::memory_order_relaxed);
  mirrors_back_.store(true, std::memory_order_relaxed);
  Record(decision, reason, now, verdict);
  NewStepComparison();
  Changed();
}

void Cutover::Finish(CutoverState state, double share, const char* decision,
                     const std::string& reason, CutoverInstant now, const StepVerdict* verdict) {
  share_ppm_.store(PercentToPpm(share), std::memory_order_relaxed);
  mirrors_back_.store(state != CutoverState::kPromoted, std::memory_order_relaxed);
  state_ = state;
  share_ = share;
  reason_ = reason;
  step_started_ = now;
  Record(decision, reason, now, verdict);
  ++generation_;
  std::lock_guard lock(comparison_mutex_);
  if (comparison_) retired_.push_back(std::move(comparison_));
  comparison_ = nullptr;
  comparison_generation_ = generation_;
  Changed();
}

void Cutover::Record(const char* decision, const std::string& reason, CutoverInstant now,
                     const StepVerdict* verdict) {
  nlohmann::json entry = {{"at", FormatUtcMicros(now.unix_us)},
                          {"decision", decision},
                          {"state", StateName(state_)},
                          {"step", step_},
                          {"share", share_},
                          {"reason", reason}};
  CutoverDecision line;
  line.ts_us = now.unix_us;
  line.route = route_;
  line.mirror = config_.candidate;
  line.decision = decision;
  line.state = StateName(state_);
  line.step = step_;
  line.share = share_;
  line.reason = reason;
  if (verdict) {
    entry["judged"] = verdict->judged;
    line.judged = verdict->judged;
    if (const auto& gate = verdict->failed_gate; gate.is_object()) {
      entry["gate"] = gate;
      line.gate = gate.value("name", "");
      line.metric = gate.value("metric", "");
      line.bound_kind = gate.contains("min") ? "min" : "max";
      if (gate["value"].is_number()) line.value = gate["value"].get<double>();
      if (gate[line.bound_kind].is_number()) line.bound = gate[line.bound_kind].get<double>();
    }
  }
  decisions_.push_back(std::move(entry));
  while (decisions_.size() > kDecisionsKept) decisions_.pop_front();
  if (metrics_) metrics_->cutover_decisions.WithLabels({route_, decision}).Increment();
  if (decision_log_) decision_log_(std::move(line));
}

void Cutover::NewStepComparison() {
  ++generation_;
  comparator::OnlineOptions options;
  options.queue_capacity = judging_.queue_capacity;
  options.run = "cutover " + route_ + " " + StepName(step_, share_);
  auto comparison =
      std::make_shared<comparator::OnlineComparator>(judging_.rules, judging_.gates, options);
  std::lock_guard lock(comparison_mutex_);
  if (comparison_) retired_.push_back(std::move(comparison_));
  comparison_ = std::move(comparison);
  comparison_generation_ = generation_;
}

void Cutover::CloseRetired() {
  std::vector<std::shared_ptr<comparator::OnlineComparator>> retired;
  {
    std::lock_guard lock(mutex_);
    retired.swap(retired_);
  }
  for (auto& old : retired) old->Close();
}

void Cutover::Changed() {
  PublishMetrics();
  WriteStateFile();
}

void Cutover::PublishMetrics() {
  if (!metrics_) return;
  metrics_->cutover_share.WithLabels({route_}).Set(share_);
  metrics_->cutover_step.WithLabels({route_}).Set(step_);
  for (int i = 0; i < 5; ++i) {
    metrics_->cutover_state.WithLabels({route_, kCutoverStateNames[i]})
        .Set(static_cast<int>(state_) == i ? 1 : 0);
  }
}

nlohmann::json Cutover::PersistedJson() const {
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& decision : decisions_) decisions.push_back(decision);
  return {{"version", kStateFileVersion},
          {"route", route_},
          {"candidate", config_.candidate},
          {"steps", CutoverToJson(config_)["steps"]},
          {"state", StateName(state_)},
          {"step", step_},
          {"share", share_},
          {"reason", reason_},
          {"decisions", std::move(decisions)}};
}

void Cutover::WriteStateFile() const {
  if (config_.state_file.empty()) return;
  // A temporary file renamed over the old one: a crash leaves the old or the new state whole.
  // Indented, but one line per timeline point: thousands of points stay thousands of lines.
  std::string text = PersistedJson().dump(2);
  text.resize(text.size() - 2);  // "\n}": the object goes on
  text += ",\n  \"timeline\": [";
  for (size_t i = 0; i < timeline_.size(); ++i) {
    text += (i == 0 ? "\n    " : ",\n    ") + timeline_[i].dump();
  }
  text += timeline_.empty() ? "]\n}\n" : "\n  ]\n}\n";
  std::string error;
  if (!WriteFileAtomically(config_.state_file, text, 0600, &error)) {
    spdlog::error("cutover {}: cannot write the state file {}: {}", route_, config_.state_file,
                  error);
  }
}

void Cutover::Restore(CutoverInstant now) {
  if (config_.state_file.empty()) {
    spdlog::info("cutover {}: no state_file: starting IDLE at share 0", route_);
    return;
  }
  std::ifstream in(config_.state_file);
  if (!in) {
    spdlog::info("cutover {}: no state file {} yet: starting IDLE at share 0", route_,
                 config_.state_file);
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto distrust = [&](const std::string& why) {
    spdlog::error("cutover {}: state file {} not used ({}): starting IDLE at share 0", route_,
                  config_.state_file, why);
  };
  auto doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return distrust("not a JSON object");
  if (doc.value("version", 0) != kStateFileVersion) return distrust("unknown version");
  if (doc.value("route", "") != route_ || doc.value("candidate", "") != config_.candidate ||
      doc.value("steps", nlohmann::json()) != CutoverToJson(config_)["steps"]) {
    return distrust("it was written for another route, candidate or schedule");
  }
  auto state = ParseState(doc.value("state", ""));
  const auto& step = doc.value("step", nlohmann::json());
  const auto& share = doc.value("share", nlohmann::json());
  if (!state || !step.is_number_integer() || !share.is_number()) {
    return distrust("state, step or share missing or mistyped");
  }
  const int step_index = step.get<int>();
  const double percent = share.get<double>();
  if (step_index < -1 || step_index >= static_cast<int>(config_.steps.size()) ||
      !(percent >= 0 && percent <= 100)) {
    return distrust("step or share out of range");
  }
  for (const auto& decision : doc.value("decisions", nlohmann::json::array())) {
    decisions_.push_back(decision);
  }
  while (decisions_.size() > kDecisionsKept) decisions_.pop_front();
  // The report's timeline from before the restart (files written before it was kept have none).
  if (const auto timeline = doc.value("timeline", nlohmann::json::array()); timeline.is_array()) {
    for (const auto& point : timeline) {
      if (point.is_object() && point.value("t_s", nlohmann::json()).is_number()) {
        timeline_.push_back(point);
      }
    }
  }
  while (timeline_.size() > kTimelineKept) timeline_.pop_front();
  state_ = *state;
  step_ = step_index;
  share_ = percent;
  reason_ = doc.value("reason", "");
  step_started_ = now;
  share_ppm_.store(PercentToPpm(share_), std::memory_order_relaxed);
  mirrors_back_.store(state_ != CutoverState::kPromoted, std::memory_order_relaxed);
  if (state_ == CutoverState::kRunning || state_ == CutoverState::kPaused) NewStepComparison();
  spdlog::warn("cutover {}: resumed from {}: {} at {}", route_, config_.state_file,
               StateName(state_), StepName(step_, share_));
}

}  // namespace sg::gateway
