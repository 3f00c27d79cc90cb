// LatencyStats: both sides' latency distributions, the paired differences and ratios, and a
// bounded reservoir of paired latencies for the rank tests. Fixed memory, mergeable (exact for
// every histogram; for the reservoir while the merged pairs fit in it).
//
// Besides the distributions, ToJson() reports what the latency gates judge (docs/comparator.md):
// the paired median shift relative to the primary's median, the p50/p99/p99.9 ratios with
// order-statistic intervals, and the tail excess: how much more often the candidate than the
// primary is slower than `tail_multiple` x the primary's p99.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/pair_record.h"
#include "comparator/latency_histogram.h"

namespace sg::comparator {

struct LatencyOptions {
  double level = 0.98;          // two-sided level of every interval (compare config `confidence`)
  double tail_multiple = 1.25;  // tail excess threshold: this x the primary's p99
};

class LatencyStats {
 public:
  LatencyStats(size_t reservoir_size, uint64_t seed);

  void Add(const PairRecord& pair);
  // REQUIRES: the same reservoir size.
  void Merge(const LatencyStats& other);
  nlohmann::json ToJson(const LatencyOptions& options) const;
  // Equal state but for the sampling generator's position.
  bool SameState(const LatencyStats& other) const;

  const LatencyHistogram& primary() const { return primary_; }
  const LatencyHistogram& shadow() const { return shadow_; }

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  size_t reservoir_size_;
  uint64_t pairs_ = 0;
  LatencyHistogram primary_;
  LatencyHistogram shadow_;
  uint64_t primary_fails_ = 0;
  uint64_t shadow_fails_ = 0;
  SignedHistogram diff_;          // shadow - primary, us, both sides ok
  LatencyHistogram ratio_milli_;  // shadow / primary * 1000, both sides ok
  // Reservoir of (primary, shadow) latencies, algorithm R with a seeded splitmix64.
  std::vector<std::pair<int64_t, int64_t>> reservoir_;
  uint64_t reservoir_seen_ = 0;
  uint64_t rng_state_;
};

}  // namespace sg::comparator
