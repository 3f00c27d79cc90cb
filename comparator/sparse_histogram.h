// SparseHistogram: the LatencyHistogram's buckets kept as a sorted list of the non-empty ones, for
// the many small aggregates (slices, time windows) where a dense histogram would waste memory.
// Mergeable exactly (counts add), like LatencyHistogram.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace sg::comparator {

class SparseHistogram {
 public:
  // Records one value; negative values are recorded as 0.
  void Record(int64_t value);
  void Merge(const SparseHistogram& other);
  uint64_t count() const { return count_; }
  double Quantile(double q) const;
  // The value of the rank-th smallest recording (1-based, clamped to [1, count]): its bucket's
  // midpoint clamped to [min, max]. 0 when empty.
  double ValueAtRank(uint64_t rank) const;
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  int64_t min() const { return min_; }
  int64_t max() const { return max_; }
  bool operator==(const SparseHistogram&) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  std::vector<std::pair<uint32_t, uint64_t>> buckets_;  // (bucket index, count), sorted
  uint64_t count_ = 0;
  double sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

}  // namespace sg::comparator
