#include "comparator/slices.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "comparator/intervals.h"
#include "comparator/json_numbers.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

json SideJson(const SparseHistogram& h, uint64_t fails) {
  return {{"count", h.count()},
          {"fails", fails},
          {"mean_ms", Ms(h.mean())},
          {"min_ms", Ms(static_cast<double>(h.min()))},
          {"max_ms", Ms(static_cast<double>(h.max()))},
          {"p50_ms", Ms(h.Quantile(0.5))},
          {"p99_ms", Ms(h.Quantile(0.99))}};
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

std::string Seconds(int64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "+%llds", static_cast<long long>(us / 1000000));
  return buf;
}

}  // namespace

void SliceStats::Add(const PairRecord& pair, const PairJudgement& j,
                     const std::string& true_label) {
  ++pairs;
  ++outcomes[static_cast<size_t>(j.outcome)];
  if (j.classification) {
    ++classified;
    if (j.classification->top1_agree) ++top1_agree;
    if (!true_label.empty()) {
      ++labeled;
      const bool pc = j.classification->primary_top1 == true_label;
      const bool sc = j.classification->shadow_top1 == true_label;
      primary_correct += pc;
      shadow_correct += sc;
      only_primary_correct += pc && !sc;
      only_shadow_correct += sc && !pc;
    }
  }
  if (pair.primary.outcome == "ok" && pair.primary.status != 0) {
    primary_latency.Record(pair.primary.latency_us);
  }
  if (pair.shadow.outcome == "ok" && pair.shadow.status != 0) {
    shadow_latency.Record(pair.shadow.latency_us);
    if (pair.primary.outcome == "ok" && pair.primary.status != 0) {
      ratio_milli.Record(
          std::llround(1000.0 * static_cast<double>(pair.shadow.latency_us) /
                       static_cast<double>(std::max<int64_t>(1, pair.primary.latency_us))));
    }
  }
}

void SliceStats::Merge(const SliceStats& o) {
  pairs += o.pairs;
  for (size_t i = 0; i < kOutcomeCount; ++i) outcomes[i] += o.outcomes[i];
  classified += o.classified;
  top1_agree += o.top1_agree;
  labeled += o.labeled;
  primary_correct += o.primary_correct;
  shadow_correct += o.shadow_correct;
  only_primary_correct += o.only_primary_correct;
  only_shadow_correct += o.only_shadow_correct;
  primary_latency.Merge(o.primary_latency);
  shadow_latency.Merge(o.shadow_latency);
  ratio_milli.Merge(o.ratio_milli);
}

json SliceJson(const std::string& name, const SliceStats& s, double level, uint64_t min_pairs) {
  json outcomes = json::object();
  for (Outcome o : kAllOutcomes) outcomes[OutcomeName(o)] = s.count(o);
  json out = {{"name", name},
              {"pairs", s.pairs},
              {"eligible", s.eligible()},
              {"outcomes", outcomes},
              {"mismatched", s.mismatched()},
              {"mismatch_rate", Rate(s.mismatched(), s.eligible())},
              {"failed", s.failed()},
              {"failure_rate", Rate(s.failed(), s.eligible())},
              {"classified", s.classified},
              {"top1_agree", s.top1_agree},
              {"top1_agreement", s.classified ? json(Rate(s.top1_agree, s.classified)) : json()},
              {"labeled", s.labeled},
              {"primary", SideJson(s.primary_latency, s.count(Outcome::kPrimaryError))},
              {"shadow", SideJson(s.shadow_latency, s.count(Outcome::kShadowError) +
                                                        s.count(Outcome::kShadowTimeout))}};
  if (s.labeled) {
    out["primary_correct"] = s.primary_correct;
    out["shadow_correct"] = s.shadow_correct;
    out["only_primary_correct"] = s.only_primary_correct;
    out["only_shadow_correct"] = s.only_shadow_correct;
    out["primary_accuracy"] = Rate(s.primary_correct, s.labeled);
    out["shadow_accuracy"] = Rate(s.shadow_correct, s.labeled);
  }
  if (s.ratio_milli.count() >= min_pairs) {
    const Interval r = QuantileInterval(s.ratio_milli, 0.5, level);
    out["p50_ratio"] = {{"estimate", r.estimate / 1000},
                        {"low", Num(r.low / 1000)},
                        {"high", Num(r.high / 1000)},
                        {"level", level},
                        {"paired", s.ratio_milli.count()}};
  }
  return out;
}

SliceStats& SliceMap::At(const std::string& key) {
  auto it = slices_.find(key);
  if (it != slices_.end()) return it->second;
  return slices_[slices_.size() < max_slices_ ? key : std::string("(other)")];
}

void SliceMap::Merge(const SliceMap& other) {
  for (const auto& [k, v] : other.slices_) At(k).Merge(v);
}

size_t SliceMap::Judgeable(uint64_t min_pairs) const {
  return static_cast<size_t>(std::count_if(slices_.begin(), slices_.end(), [&](const auto& s) {
    return s.second.eligible() >= min_pairs;
  }));
}

json SliceMap::ToJson(double level, uint64_t min_pairs) const {
  std::vector<std::pair<std::string, const SliceStats*>> sorted;
  for (const auto& [k, v] : slices_) sorted.emplace_back(k, &v);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second->pairs > b.second->pairs; });
  json out = json::array();
  for (const auto& [k, v] : sorted) out.push_back(SliceJson(k, *v, level, min_pairs));
  return out;
}

SliceStats& Timeline::At(int64_t ts_us) {
  return windows_[FloorDiv(ts_us, width_us())];
}

void Timeline::Bound() {
  if (windows_.size() > kMaxWindows) Coarsen(level_ + 1);
}

void Timeline::Coarsen(int level) {
  while (level_ < level || windows_.size() > kMaxWindows) {
    std::map<int64_t, SliceStats> coarser;
    for (auto& [key, stats] : windows_) coarser[FloorDiv(key, 2)].Merge(stats);
    windows_ = std::move(coarser);
    ++level_;
  }
}

void Timeline::Merge(const Timeline& o) {
  if (o.level_ > level_) Coarsen(o.level_);
  const int shift = level_ - o.level_;
  for (const auto& [k, v] : o.windows_) windows_[FloorDiv(k, int64_t{1} << shift)].Merge(v);
  Bound();
}

json Timeline::PointsJson() const {
  json points = json::array();
  for (const auto& [k, s] : windows_) {
    points.push_back(
        {{"start_us", k * width_us()},
         {"pairs", s.pairs},
         {"top1_agreement", s.classified ? json(Rate(s.top1_agree, s.classified)) : json()},
         {"agreement_rate",
          Rate(s.count(Outcome::kMatch) + s.count(Outcome::kWithinTolerance), s.eligible())},
         {"mismatch_rate", Rate(s.mismatched(), s.eligible())},
         {"failure_rate", Rate(s.failed(), s.eligible())},
         {"primary_p99_ms", Ms(s.primary_latency.Quantile(0.99))},
         {"shadow_p99_ms", Ms(s.shadow_latency.Quantile(0.99))}});
  }
  return points;
}

std::vector<std::pair<std::string, SliceStats>> Timeline::JudgingWindows(uint64_t min_pairs,
                                                                         size_t max_windows) const {
  std::vector<std::pair<std::string, SliceStats>> out;
  if (windows_.empty()) return out;
  uint64_t total = 0;
  for (const auto& [k, s] : windows_) total += s.pairs;
  const uint64_t target = std::max<uint64_t>(min_pairs, total / std::max<size_t>(1, max_windows));
  const int64_t origin = windows_.begin()->first;
  const int64_t width = width_us();
  int64_t start = origin;
  SliceStats current;
  auto close = [&](int64_t end) {
    out.emplace_back(Seconds((start - origin) * width) + ".." + Seconds((end - origin) * width),
                     current);
    current = SliceStats{};
  };
  for (auto it = windows_.begin(); it != windows_.end(); ++it) {
    if (current.pairs == 0) start = it->first;
    current.Merge(it->second);
    if (current.pairs >= target) close(it->first + 1);
  }
  if (current.pairs > 0) {
    const int64_t end = windows_.rbegin()->first + 1;
    if (!out.empty()) {
      // Too short to judge alone: fold it into the window before.
      out.back().second.Merge(current);
      const std::string& name = out.back().first;
      out.back().first = name.substr(0, name.find("..")) + ".." + Seconds((end - origin) * width);
    } else {
      close(end);
    }
  }
  return out;
}

}  // namespace sg::comparator
