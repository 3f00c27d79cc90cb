// OutcomeStats: what every judged pair adds up to, whatever its rule. Outcomes and their rates,
// the status-code matrix, pairs per rule, differing fields and reasons (bounded maps), the time
// span, and the pair-log lines that could not be decoded.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/pair_judge.h"

namespace sg::comparator {

// Adds `count` to map[key], or to map["(other)"] once the map holds `limit` keys.
void AddBounded(std::map<std::string, uint64_t>& map, const std::string& key, uint64_t count,
                size_t limit);

class OutcomeStats {
 public:
  OutcomeStats(size_t max_rules, size_t max_fields)
      : max_rules_(max_rules), max_fields_(max_fields) {}

  void Add(const PairRecord& pair, const PairJudgement& judgement);
  void AddMalformed(const std::string& reason);
  void Merge(const OutcomeStats& other);
  // "pairs", "malformed", "time", "outcomes", "rates", "status_matrix", "rules",
  // "differing_fields" and "reasons" members of the comparison.
  void ToJson(nlohmann::json& comparison) const;
  bool operator==(const OutcomeStats&) const = default;

  uint64_t pairs() const { return pairs_; }
  uint64_t malformed() const { return malformed_; }
  uint64_t count(Outcome o) const { return outcomes_[static_cast<size_t>(o)]; }

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  size_t max_rules_;
  size_t max_fields_;
  uint64_t pairs_ = 0;
  std::array<uint64_t, kOutcomeCount> outcomes_{};
  uint64_t shadow_5xx_ = 0;  // shadow errors that were HTTP 5xx answers (part of shadow_error)
  uint64_t malformed_ = 0;
  std::map<std::string, uint64_t> malformed_reasons_;
  std::map<std::pair<int, int>, uint64_t> status_matrix_;
  std::map<std::string, uint64_t> rule_pairs_;
  std::map<std::string, uint64_t> differing_fields_;
  std::map<std::string, uint64_t> reasons_;
  int64_t first_ts_us_ = 0;
  int64_t last_ts_us_ = 0;
};

}  // namespace sg::comparator
