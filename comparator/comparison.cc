#include "comparator/comparison.h"

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "comparator/intervals.h"
#include "comparator/noise_floor.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

std::vector<double> MarginEdges(const CompareConfig& config) {
  // One set of margin buckets per run: the first classification rule's.
  for (const auto& rule : config.rules) {
    if (rule.kind == CompareKind::kClassification || rule.kind == CompareKind::kAuto) {
      return rule.margin_buckets;
    }
  }
  return {};
}

std::string Header(const PairRecord& pair, const std::string& name) {
  if (name.empty()) return {};
  auto it = pair.request.headers.find(name);
  return it == pair.request.headers.end() ? std::string() : it->second;
}

std::optional<double> ParseScore(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

Comparison::Comparison(std::shared_ptr<const CompareConfig> config)
    : config_(std::move(config)),
      outcomes_(config_->max_slices, config_->max_fields),
      latency_(config_->reservoir_size, config_->seed),
      classification_(MarginEdges(*config_), config_->max_slices),
      by_route_(config_->max_slices),
      by_model_(config_->max_slices),
      by_label_(config_->max_slices),
      by_true_label_(config_->max_slices),
      by_size_(config_->max_slices),
      timeline_(config_->window.count()),
      examples_(*config_) {
  uint64_t low = 0;
  for (uint64_t edge : config_->size_buckets) {
    size_bucket_names_.push_back(std::to_string(low) + "-" + std::to_string(edge - 1) + " B");
    low = edge;
  }
  size_bucket_names_.push_back(">=" + std::to_string(low) + " B");
  if (!config_->noise_floor.mirror.empty()) {
    // The noise comparison shares the rules but has no noise floor of its own.
    auto inner = std::make_shared<CompareConfig>(*config_);
    inner->noise_floor = NoiseFloor{};
    noise_ = std::make_unique<Comparison>(std::move(inner));
  }
}

Comparison::~Comparison() = default;
Comparison::Comparison(Comparison&&) noexcept = default;
Comparison& Comparison::operator=(Comparison&&) noexcept = default;

const std::string& Comparison::SizeBucket(uint64_t size) const {
  const auto& edges = config_->size_buckets;
  size_t i = 0;
  while (i < edges.size() && size >= edges[i]) ++i;
  return size_bucket_names_[i];
}

PairJudgement Comparison::Add(const PairRecord& pair) {
  if (noise_ && pair.mirror == config_->noise_floor.mirror) return noise_->Add(pair);
  PairJudgement j = JudgePair(*config_, pair);
  outcomes_.Add(pair, j);
  const std::string true_label = Header(pair, config_->true_label_header);
  if (j.classification) classification_.Add(*j.classification, true_label);
  if (j.regression)
    scores_.Add(*j.regression, ParseScore(Header(pair, config_->true_score_header)));
  if (j.embedding) embeddings_.Add(*j.embedding);
  latency_.Add(pair);

  static const std::string kNoLabel = "(none)";
  by_route_.At(pair.route).Add(pair, j, true_label);
  by_model_.At(pair.mirror).Add(pair, j, true_label);
  by_label_.At(j.classification ? j.classification->primary_top1 : kNoLabel)
      .Add(pair, j, true_label);
  if (j.classification && !true_label.empty())
    by_true_label_.At(true_label).Add(pair, j, true_label);
  by_size_.At(SizeBucket(pair.request.size)).Add(pair, j, true_label);
  timeline_.At(pair.ts_us).Add(pair, j, true_label);
  timeline_.Bound();
  run_timeline_.Add(pair, j, true_label);
  examples_.Consider(pair, j);
  return j;
}

void Comparison::AddCounters(const MirrorCounters& counters) {
  coverage_.Add(counters);
  run_timeline_.AddCounters(counters);
}

void Comparison::AddMalformed(const std::string& reason) {
  outcomes_.AddMalformed(reason);
}

void Comparison::Merge(const Comparison& o) {
  outcomes_.Merge(o.outcomes_);
  latency_.Merge(o.latency_);
  classification_.Merge(o.classification_);
  scores_.Merge(o.scores_);
  embeddings_.Merge(o.embeddings_);
  by_route_.Merge(o.by_route_);
  by_model_.Merge(o.by_model_);
  by_label_.Merge(o.by_label_);
  by_true_label_.Merge(o.by_true_label_);
  by_size_.Merge(o.by_size_);
  timeline_.Merge(o.timeline_);
  run_timeline_.Merge(o.run_timeline_);
  examples_.Merge(o.examples_);
  coverage_.Merge(o.coverage_);
  if (noise_ && o.noise_) noise_->Merge(*o.noise_);
}

bool Comparison::SameState(const Comparison& o) const {
  return outcomes_ == o.outcomes_ && latency_.SameState(o.latency_) &&
         classification_.pairs() == o.classification_.pairs() && scores_ == o.scores_ &&
         embeddings_ == o.embeddings_ && by_route_ == o.by_route_ && by_model_ == o.by_model_ &&
         by_label_ == o.by_label_ && by_true_label_ == o.by_true_label_ && by_size_ == o.by_size_ &&
         timeline_ == o.timeline_ && run_timeline_.SameState(o.run_timeline_) &&
         examples_ == o.examples_ && coverage_.SameState(o.coverage_) &&
         (noise_ == nullptr) == (o.noise_ == nullptr) && (!noise_ || noise_->SameState(*o.noise_));
}

json Comparison::ToJson() const {
  const double level = config_->confidence;
  const uint64_t min_pairs = config_->min_slice_pairs;
  json out;
  outcomes_.ToJson(out);
  classification_.ToJson(out, level, config_->true_label_header);
  out["regression"] = scores_.ToJson(level, config_->true_score_header);
  out["embedding"] = embeddings_.ToJson();
  out["latency"] = latency_.ToJson({level, config_->tail_multiple});

  // Slices. The median-latency ratios are judged for every slice with enough latencies at once,
  // so their intervals carry the Bonferroni level for that many comparisons.
  const auto windows = timeline_.JudgingWindows(min_pairs, config_->max_time_slices);
  size_t latency_tests = 0;
  auto count_latency = [&](const SliceStats& s) {
    latency_tests += s.ratio_milli.count() >= min_pairs;
  };
  for (const SliceMap* m : {&by_route_, &by_model_, &by_label_, &by_size_}) {
    if (m->slices().size() < 2) continue;
    for (const auto& [k, s] : m->slices()) count_latency(s);
  }
  if (windows.size() >= 2) {
    for (const auto& [k, s] : windows) count_latency(s);
  }
  const double slice_level = BonferroniLevel(level, latency_tests);
  json time = json::array();
  for (const auto& [name, s] : windows) time.push_back(SliceJson(name, s, slice_level, min_pairs));
  out["slices"] = {{"route", by_route_.ToJson(slice_level, min_pairs)},
                   {"model", by_model_.ToJson(slice_level, min_pairs)},
                   {"primary_label", by_label_.ToJson(slice_level, min_pairs)},
                   {"true_label", by_true_label_.ToJson(slice_level, min_pairs)},
                   {"request_size", by_size_.ToJson(slice_level, min_pairs)},
                   {"time", time},
                   {"min_pairs", min_pairs},
                   {"latency_tests", latency_tests},
                   {"latency_level", slice_level}};
  out["timeline"] = {{"window_s", static_cast<double>(timeline_.width_us()) / 1e6},
                     {"points", timeline_.PointsJson()}};
  out["run_timeline"] = run_timeline_.ToJson(config_->min_window_pairs, level);
  coverage_.ToJson(out);
  out["examples"] = examples_.ToJson();
  if (noise_) out["noise_floor"] = NoiseFloorJson(out, noise_->ToJson(), config_->noise_floor);
  return out;
}

}  // namespace sg::comparator
