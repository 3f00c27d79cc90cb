#include "comparator/outcome_stats.h"

#include <algorithm>
#include <vector>

#include <nlohmann/json.hpp>

#include "comparator/json_numbers.h"
namespace sg::comparator {

using nlohmann::json;

namespace {

json SortedCounts(const std::map<std::string, uint64_t>& m, const char* key) {
  std::vector<std::pair<std::string, uint64_t>> v(m.begin(), m.end());
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  json arr = json::array();
  for (const auto& [k, n] : v) arr.push_back({{key, k}, {"count", n}});
  return arr;
}

}  // namespace

void AddBounded(std::map<std::string, uint64_t>& map, const std::string& key, uint64_t count,
                size_t limit) {
  auto it = map.find(key);
  if (it != map.end()) {
    it->second += count;
  } else if (map.size() < limit) {
    map.emplace(key, count);
  } else {
    map["(other)"] += count;
  }
}

void OutcomeStats::Add(const PairRecord& pair, const PairJudgement& j) {
  ++pairs_;
  ++outcomes_[static_cast<size_t>(j.outcome)];
  if (j.outcome == Outcome::kShadowError && pair.shadow.status >= 500) ++shadow_5xx_;
  if (pairs_ == 1) {
    first_ts_us_ = last_ts_us_ = pair.ts_us;
  } else {
    first_ts_us_ = std::min(first_ts_us_, pair.ts_us);
    last_ts_us_ = std::max(last_ts_us_, pair.ts_us);
  }
  ++status_matrix_[{pair.primary.status, pair.shadow.status}];
  static const std::string kNoRule = "(exact bytes)";
  AddBounded(rule_pairs_, j.rule ? j.rule->name : kNoRule, 1, max_rules_);
  if (j.outcome == Outcome::kMismatch || j.outcome == Outcome::kUnparseable) {
    for (const auto& f : j.fields) AddBounded(differing_fields_, f, 1, max_fields_);
  }
  if (j.outcome != Outcome::kMatch && j.outcome != Outcome::kWithinTolerance) {
    // Reasons without their numbers, so they aggregate.
    const std::string reason = j.reason.substr(0, j.reason.find_first_of("0123456789"));
    AddBounded(reasons_, std::string(OutcomeName(j.outcome)) + ": " + reason, 1, max_fields_);
  }
}

void OutcomeStats::AddMalformed(const std::string& reason) {
  ++malformed_;
  AddBounded(malformed_reasons_, reason, 1, max_fields_);
}

void OutcomeStats::Merge(const OutcomeStats& o) {
  if (o.pairs_) {
    first_ts_us_ = pairs_ ? std::min(first_ts_us_, o.first_ts_us_) : o.first_ts_us_;
    last_ts_us_ = pairs_ ? std::max(last_ts_us_, o.last_ts_us_) : o.last_ts_us_;
  }
  pairs_ += o.pairs_;
  for (size_t i = 0; i < kOutcomeCount; ++i) outcomes_[i] += o.outcomes_[i];
  shadow_5xx_ += o.shadow_5xx_;
  malformed_ += o.malformed_;
  for (const auto& [k, v] : o.malformed_reasons_) AddBounded(malformed_reasons_, k, v, max_fields_);
  for (const auto& [k, v] : o.status_matrix_) status_matrix_[k] += v;
  for (const auto& [k, v] : o.rule_pairs_) AddBounded(rule_pairs_, k, v, max_rules_);
  for (const auto& [k, v] : o.differing_fields_) AddBounded(differing_fields_, k, v, max_fields_);
  for (const auto& [k, v] : o.reasons_) AddBounded(reasons_, k, v, max_fields_);
}

void OutcomeStats::ToJson(json& out) const {
  out["pairs"] = pairs_;
  out["malformed"] = {{"count", malformed_}, {"reasons", malformed_reasons_}};
  const double duration_s =
      pairs_ > 1 ? static_cast<double>(last_ts_us_ - first_ts_us_) / 1e6 : 0.0;
  out["time"] = {
      {"first_ts_us", first_ts_us_}, {"last_ts_us", last_ts_us_}, {"duration_s", duration_s}};
  json outcomes = json::object();
  for (Outcome o : kAllOutcomes) outcomes[OutcomeName(o)] = count(o);
  out["outcomes"] = outcomes;
  const uint64_t eligible = pairs_ - count(Outcome::kPrimaryError);
  const uint64_t failed =
      count(Outcome::kShadowError) + count(Outcome::kShadowTimeout) + count(Outcome::kUnparseable);
  out["rates"] = {
      {"eligible_pairs", eligible},
      {"match_rate", Rate(count(Outcome::kMatch), eligible)},
      {"agreement_rate", Rate(count(Outcome::kMatch) + count(Outcome::kWithinTolerance), eligible)},
      {"mismatch_rate", Rate(count(Outcome::kMismatch) + count(Outcome::kUnparseable), eligible)},
      {"shadow_error_rate", Rate(count(Outcome::kShadowError), eligible)},
      {"shadow_5xx", shadow_5xx_},
      {"shadow_timeout_rate", Rate(count(Outcome::kShadowTimeout), eligible)},
      {"unparseable_rate", Rate(count(Outcome::kUnparseable), eligible)},
      {"failure_rate", Rate(failed, eligible)},
      {"primary_error_rate", Rate(count(Outcome::kPrimaryError), pairs_)}};
  json matrix = json::array();
  for (const auto& [k, v] : status_matrix_) {
    matrix.push_back({{"primary", k.first}, {"shadow", k.second}, {"count", v}});
  }
  out["status_matrix"] = matrix;
  out["rules"] = rule_pairs_;
  out["differing_fields"] = SortedCounts(differing_fields_, "field");
  out["reasons"] = SortedCounts(reasons_, "reason");
}

}  // namespace sg::comparator
