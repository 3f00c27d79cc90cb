// LatencyHistogram: a mergeable log-linear histogram of non-negative integers (microseconds).
//
// Values below 256 have a bucket each; above, every power of two is split into 128 linear
// buckets, so a bucket's half-width is at most 1/256 of its value and a reported quantile is
// within 0.4% of the true one (well inside the 1% budget). Memory is fixed (about 4,500 counters
// for values up to 2^40 us, larger values are clamped to the top bucket); merging adds counters,
// so merge(a, b) equals recording a and then b exactly, in any order.
// Not thread-safe: one owner, or external locking.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sg::comparator {

class LatencyHistogram {
 public:
  static constexpr int kLinearBits = 8;  // 256 exact buckets, then 128 per power of two
  static constexpr int kMaxBits = 40;    // values >= 2^40 land in the top bucket
  static constexpr size_t kBuckets =
      (1u << kLinearBits) + (kMaxBits - kLinearBits) * (1u << (kLinearBits - 1));

  LatencyHistogram();

  // Records one value; negative values are recorded as 0.
  void Record(int64_t value, uint64_t count = 1);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  double sum() const { return sum_; }

  // The value at quantile q in [0, 1]: the bucket holding the ceil(q * count)-th smallest value
  // (at least the first), reported as that bucket's midpoint clamped to [min, max]. 0 when empty.
  double Quantile(double q) const;
  // The value of the rank-th smallest recording (1-based, clamped to [1, count]), as above.
  double ValueAtRank(uint64_t rank) const;
  // Recordings in buckets that lie wholly above `value` (the bucket holding `value` is not
  // counted, so the count is exact to the bucket's width, 0.4% of the value).
  uint64_t CountAbove(double value) const;

  // Non-empty buckets as (lower bound, upper bound exclusive, count), ascending.
  struct Bucket {
    int64_t low;
    int64_t high;
    uint64_t count;
  };
  std::vector<Bucket> NonEmptyBuckets() const;

  static size_t BucketIndex(int64_t value);
  static int64_t BucketLow(size_t index);
  static int64_t BucketHigh(size_t index);  // exclusive

  bool operator==(const LatencyHistogram& other) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

// A histogram of signed values (e.g. shadow minus primary latency): one LatencyHistogram for the
// negative magnitudes and one for the non-negative values.
class SignedHistogram {
 public:
  void Record(int64_t value);
  void Merge(const SignedHistogram& other);
  uint64_t count() const { return negative_.count() + positive_.count(); }
  double mean() const;
  double Quantile(double q) const;
  // The value of the rank-th smallest recording (1-based, clamped to [1, count]), as above.
  double ValueAtRank(uint64_t rank) const;
  double min() const;
  double max() const;
  bool operator==(const SignedHistogram& other) const = default;

 private:
  friend struct StateCodec;  // comparator/state_codec.h: the exact state, for checkpoints
  LatencyHistogram negative_;  // magnitudes of values < 0
  LatencyHistogram positive_;  // values >= 0
};

}  // namespace sg::comparator
