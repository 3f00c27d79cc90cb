#include "comparator/latency_stats.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "comparator/intervals.h"
#include "comparator/json_numbers.h"
#include "comparator/rank_tests.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

json Side(const LatencyHistogram& h, uint64_t requests, uint64_t fails) {
  json out = {{"requests", requests},
              {"fails", fails},
              {"count", h.count()},
              {"mean_ms", Ms(h.mean())},
              {"min_ms", Ms(static_cast<double>(h.min()))},
              {"p50_ms", Ms(h.Quantile(0.5))},
              {"p90_ms", Ms(h.Quantile(0.9))},
              {"p95_ms", Ms(h.Quantile(0.95))},
              {"p99_ms", Ms(h.Quantile(0.99))},
              {"p999_ms", Ms(h.Quantile(0.999))},
              {"max_ms", Ms(static_cast<double>(h.max()))}};
  json buckets = json::array();
  for (const auto& b : h.NonEmptyBuckets()) {
    buckets.push_back({Ms(static_cast<double>(b.low)), Ms(static_cast<double>(b.high)), b.count});
  }
  out["histogram"] = std::move(buckets);
  return out;
}

// Rank test results in milliseconds (the tests run on whole microseconds, so ties are exact).
json RankJson(const RankTestResult& r) {
  json out = {{"valid", r.valid},
              {"exact", r.exact},
              {"statistic", Num(r.statistic)},
              {"p_value", Num(r.p_value)},
              {"estimate_ms", Num(Ms(r.estimate))},
              {"ci_low_ms", Num(Ms(r.ci_low))},
              {"ci_high_ms", Num(Ms(r.ci_high))},
              {"confidence", r.confidence},
              {"n_x", r.n_x},
              {"n_y", r.n_y}};
  if (!r.note.empty()) out["note"] = r.note;
  return out;
}

json IntervalJson(const Interval& i, double level) {
  return {{"valid", i.valid},
          {"estimate", i.valid ? Num(i.estimate) : json()},
          {"low", i.valid ? Num(i.low) : json()},
          {"high", i.valid ? Num(i.high) : json()},
          {"level", level}};
}

}  // namespace

LatencyStats::LatencyStats(size_t reservoir_size, uint64_t seed)
    : reservoir_size_(reservoir_size), rng_state_(seed) {}

void LatencyStats::Add(const PairRecord& pair) {
  ++pairs_;
  const bool primary_ok = pair.primary.outcome == "ok" && pair.primary.status != 0;
  const bool shadow_ok = pair.shadow.outcome == "ok" && pair.shadow.status != 0;
  if (primary_ok) primary_.Record(pair.primary.latency_us);
  if (shadow_ok) shadow_.Record(pair.shadow.latency_us);
  if (!primary_ok || pair.primary.status >= 500) ++primary_fails_;
  if (!shadow_ok || pair.shadow.status >= 500) ++shadow_fails_;
  if (!primary_ok || !shadow_ok) return;
  diff_.Record(pair.shadow.latency_us - pair.primary.latency_us);
  const double ratio = static_cast<double>(pair.shadow.latency_us) /
                       static_cast<double>(std::max<int64_t>(1, pair.primary.latency_us));
  ratio_milli_.Record(static_cast<int64_t>(std::llround(ratio * 1000)));
  ++reservoir_seen_;
  const std::pair<int64_t, int64_t> sample{pair.primary.latency_us, pair.shadow.latency_us};
  if (reservoir_.size() < reservoir_size_) {
    reservoir_.push_back(sample);
  } else {
    const uint64_t slot = SplitMix64(rng_state_) % reservoir_seen_;
    if (slot < reservoir_.size()) reservoir_[slot] = sample;
  }
}

void LatencyStats::Merge(const LatencyStats& o) {
  pairs_ += o.pairs_;
  primary_.Merge(o.primary_);
  shadow_.Merge(o.shadow_);
  primary_fails_ += o.primary_fails_;
  shadow_fails_ += o.shadow_fails_;
  diff_.Merge(o.diff_);
  ratio_milli_.Merge(o.ratio_milli_);
  // Exact concatenation while it fits; otherwise a sample weighted by pairs seen.
  const size_t cap = reservoir_size_;
  if (reservoir_.size() + o.reservoir_.size() <= cap && reservoir_seen_ == reservoir_.size() &&
      o.reservoir_seen_ == o.reservoir_.size()) {
    reservoir_.insert(reservoir_.end(), o.reservoir_.begin(), o.reservoir_.end());
  } else {
    auto a = reservoir_;
    auto b = o.reservoir_;
    for (auto* v : {&a, &b}) {
      for (size_t i = v->size(); i > 1; --i) {
        std::swap((*v)[i - 1], (*v)[SplitMix64(rng_state_) % i]);
      }
    }
    const double total = static_cast<double>(reservoir_seen_ + o.reservoir_seen_);
    size_t take_a =
        total > 0
            ? static_cast<size_t>(std::llround(static_cast<double>(cap) * reservoir_seen_ / total))
            : 0;
    take_a = std::min(take_a, a.size());
    size_t take_b = std::min(cap - take_a, b.size());
    if (take_a + take_b < cap) take_a = std::min(a.size(), cap - take_b);
    reservoir_.assign(a.begin(), a.begin() + take_a);
    reservoir_.insert(reservoir_.end(), b.begin(), b.begin() + take_b);
  }
  reservoir_seen_ += o.reservoir_seen_;
}

bool LatencyStats::SameState(const LatencyStats& o) const {
  return pairs_ == o.pairs_ && primary_ == o.primary_ && shadow_ == o.shadow_ &&
         primary_fails_ == o.primary_fails_ && shadow_fails_ == o.shadow_fails_ &&
         diff_ == o.diff_ && ratio_milli_ == o.ratio_milli_ && reservoir_ == o.reservoir_ &&
         reservoir_seen_ == o.reservoir_seen_;
}

json LatencyStats::ToJson(const LatencyOptions& options) const {
  const double level = options.level;
  json lat;
  lat["primary"] = Side(primary_, pairs_, primary_fails_);
  lat["shadow"] = Side(shadow_, pairs_, shadow_fails_);
  lat["difference_ms"] = {{"count", diff_.count()},         {"mean", Ms(diff_.mean())},
                          {"min", Ms(diff_.min())},         {"p50", Ms(diff_.Quantile(0.5))},
                          {"p90", Ms(diff_.Quantile(0.9))}, {"p99", Ms(diff_.Quantile(0.99))},
                          {"max", Ms(diff_.max())}};
  lat["ratio"] = {{"count", ratio_milli_.count()},
                  {"p50", ratio_milli_.Quantile(0.5) / 1000},
                  {"p90", ratio_milli_.Quantile(0.9) / 1000},
                  {"p99", ratio_milli_.Quantile(0.99) / 1000},
                  {"max", static_cast<double>(ratio_milli_.max()) / 1000}};
  const double p99p = primary_.Quantile(0.99);
  lat["p99_ratio"] = p99p > 0 ? json(shadow_.Quantile(0.99) / p99p) : json();

  // Quantile ratios (shadow / primary) with order-statistic intervals. A quantile needs at least
  // 5 values beyond it on each side for its interval (p99: 500 latencies, p99.9: 5000).
  json ratios = json::object();
  for (const auto& [name, q] : {std::pair{"p50", 0.5}, {"p99", 0.99}, {"p999", 0.999}}) {
    const double need = 5 / (1 - q);
    Interval r;
    if (static_cast<double>(std::min(primary_.count(), shadow_.count())) >= need) {
      r = QuantileRatioInterval(shadow_, primary_, q, level);
    }
    json j = IntervalJson(r, level);
    j["min_latencies"] = static_cast<uint64_t>(std::ceil(need));
    ratios[name] = std::move(j);
  }
  lat["quantile_ratios"] = std::move(ratios);

  // Tail excess: share of the candidate's latencies above tail_multiple x the primary's p99,
  // minus the primary's own share above the same threshold (Newcombe interval).
  {
    const double threshold = options.tail_multiple * p99p;
    const uint64_t s_above = shadow_.CountAbove(threshold);
    const uint64_t p_above = primary_.CountAbove(threshold);
    const Interval d =
        NewcombeDifference(s_above, shadow_.count(), p_above, primary_.count(), level);
    json t = IntervalJson(d, level);
    t["multiple"] = options.tail_multiple;
    t["threshold_ms"] = Ms(threshold);
    t["shadow_above"] = s_above;
    t["primary_above"] = p_above;
    t["shadow_count"] = shadow_.count();
    t["primary_count"] = primary_.count();
    lat["tail_excess"] = std::move(t);
  }

  // The rank tests run on whole microseconds: differences are exact and ties are R's ties.
  std::vector<double> xs, ys;
  xs.reserve(reservoir_.size());
  ys.reserve(reservoir_.size());
  for (const auto& [p, s] : reservoir_) {
    ys.push_back(static_cast<double>(p));
    xs.push_back(static_cast<double>(s));
  }
  lat["reservoir"] = {
      {"size", reservoir_.size()}, {"seen", reservoir_seen_}, {"capacity", reservoir_size_}};
  lat["mann_whitney"] = RankJson(MannWhitney(xs, ys, level));
  const RankTestResult paired = SignedRank(xs, ys, level);
  lat["wilcoxon_signed_rank"] = RankJson(paired);
  lat["tests_compare"] = "shadow minus primary, milliseconds";

  // The paired shift relative to the primary's median: the gate a fast model needs, where an
  // absolute shift in ms says nothing.
  const double median = primary_.Quantile(0.5);
  Interval shift;
  if (paired.valid && median > 0) {
    shift.valid = true;
    shift.estimate = paired.estimate / median;
    shift.low = paired.ci_low / median;
    shift.high = paired.ci_high / median;
  }
  json rel = IntervalJson(shift, level);
  rel["primary_median_ms"] = Ms(median);
  rel["test"] = "wilcoxon_signed_rank";
  lat["relative_shift"] = std::move(rel);
  return lat;
}

}  // namespace sg::comparator
