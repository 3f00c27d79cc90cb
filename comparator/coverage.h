// Coverage: how much of the traffic the verdict saw. The gateway's counters lines
// (docs/pair-log.md) say, per route and mirror, how many requests came in, how many were mirrored,
// and why the rest were not. Random sampling (`sampled_out`) leaves an unbiased sample; every other
// reason
// (`overload`, `body_too_large`) and pair records the log sink dropped leave out a non-random part
// of the traffic (the busiest moments, the largest requests), so a verdict on what remains may not
// hold for what was left out.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"

namespace sg::comparator {

class Coverage {
 public:
  // Keeps the latest counters per (instance, route, mirror); they are cumulative.
  void Add(const MirrorCounters& counters);
  void Merge(const Coverage& other);
  // {"counters": ..., "coverage": ...} members of the comparison.
  void ToJson(nlohmann::json& comparison) const;
  bool SameState(const Coverage& other) const;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  std::map<std::tuple<std::string, std::string, std::string>, MirrorCounters> latest_;
};

}  // namespace sg::comparator
