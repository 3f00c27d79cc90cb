// WorstExamples: the few pairs a reader should look at first (mismatches, then unreadable
// bodies, then errors and timeouts; the most different first), kept with their payloads already
// redacted. Bounded by `max_examples`; the kept set does not depend on the order pairs arrive in.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/compare_config.h"
#include "comparator/pair_judge.h"

namespace sg::comparator {

struct Example {
  double score = 0;  // ordering key: outcome tier + severity
  std::string id;
  int64_t ts_us = 0;
  std::string route;
  std::string mirror;
  std::string outcome;
  std::string reason;
  std::vector<std::string> fields;
  std::map<std::string, std::string> request_headers;
  uint64_t request_size = 0;
  std::string request_sha256;
  int primary_status = 0;
  int shadow_status = 0;
  int64_t primary_latency_us = 0;
  int64_t shadow_latency_us = 0;
  std::string primary_body;
  std::string shadow_body;
  bool operator==(const Example&) const = default;
};

class WorstExamples {
 public:
  // `config` must outlive this object.
  explicit WorstExamples(const CompareConfig& config) : config_(&config) {}
  void Consider(const PairRecord& pair, const PairJudgement& judgement);
  void Merge(const WorstExamples& other);
  nlohmann::json ToJson() const;
  bool operator==(const WorstExamples& other) const { return examples_ == other.examples_; }

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  void Insert(Example example);
  const CompareConfig* config_;
  std::vector<Example> examples_;  // sorted worst first, at most max_examples
};

}  // namespace sg::comparator
