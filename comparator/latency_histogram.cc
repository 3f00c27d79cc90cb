#include "comparator/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sg::comparator {
namespace {
constexpr int64_t kLinearLimit = int64_t{1} << LatencyHistogram::kLinearBits;
constexpr int64_t kSubBuckets = kLinearLimit / 2;
constexpr int64_t kTop = (int64_t{1} << LatencyHistogram::kMaxBits) - 1;
}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::BucketIndex(int64_t value) {
  if (value < 0) value = 0;
  if (value > kTop) value = kTop;
  if (value < kLinearLimit) return static_cast<size_t>(value);
  const int msb = 63 - std::countl_zero(static_cast<uint64_t>(value));  // >= kLinearBits
  const int shift = msb - (kLinearBits - 1);
  const int64_t mantissa = value >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  return static_cast<size_t>(kLinearLimit + (msb - kLinearBits) * kSubBuckets +
                             (mantissa - kSubBuckets));
}

int64_t LatencyHistogram::BucketLow(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < kLinearLimit) return i;
  const int64_t group = (i - kLinearLimit) / kSubBuckets;  // msb - kLinearBits
  const int64_t mantissa = (i - kLinearLimit) % kSubBuckets + kSubBuckets;
  const int shift = static_cast<int>(group) + 1;
  return mantissa << shift;
}

int64_t LatencyHistogram::BucketHigh(size_t index) {
  const auto i = static_cast<int64_t>(index);
  if (i < kLinearLimit) return i + 1;
  const int64_t group = (i - kLinearLimit) / kSubBuckets;
  return BucketLow(index) + (int64_t{1} << (group + 1));
}

void LatencyHistogram::Record(int64_t value, uint64_t count) {
  if (count == 0) return;
  if (value < 0) value = 0;
  counts_[BucketIndex(value)] += count;
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  count_ += count;
  sum_ += static_cast<double>(value) * static_cast<double>(count);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

double LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  return ValueAtRank(static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
}

double LatencyHistogram::ValueAtRank(uint64_t rank) const {
  if (count_ == 0) return 0;
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double low = static_cast<double>(BucketLow(i));
      const double high = static_cast<double>(BucketHigh(i));
      const double mid = i < static_cast<size_t>(kLinearLimit) ? low : (low + high - 1) / 2;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

uint64_t LatencyHistogram::CountAbove(double value) const {
  if (count_ == 0 || value >= static_cast<double>(max_)) return 0;
  if (value < 0) return count_;
  uint64_t above = 0;
  for (size_t i = BucketIndex(static_cast<int64_t>(value)) + 1; i < kBuckets; ++i) {
    above += counts_[i];
  }
  return above;
}

std::vector<LatencyHistogram::Bucket> LatencyHistogram::NonEmptyBuckets() const {
  std::vector<Bucket> out;
  for (size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i]) out.push_back({BucketLow(i), BucketHigh(i), counts_[i]});
  }
  return out;
}

void SignedHistogram::Record(int64_t value) {
  if (value < 0) {
    negative_.Record(-value);
  } else {
    positive_.Record(value);
  }
}

void SignedHistogram::Merge(const SignedHistogram& other) {
  negative_.Merge(other.negative_);
  positive_.Merge(other.positive_);
}

double SignedHistogram::mean() const {
  const uint64_t n = count();
  return n ? (positive_.sum() - negative_.sum()) / static_cast<double>(n) : 0;
}

double SignedHistogram::Quantile(double q) const {
  const uint64_t n = count();
  if (n == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * n));
  rank = std::clamp<uint64_t>(rank, 1, n);
  const uint64_t neg = negative_.count();
  if (rank <= neg) {
    // The rank-th smallest signed value is the (neg - rank + 1)-th largest magnitude.
    return -negative_.ValueAtRank(neg - rank + 1);
  }
  return positive_.ValueAtRank(rank - neg);
}

double SignedHistogram::min() const {
  if (negative_.count()) return -static_cast<double>(negative_.max());
  return static_cast<double>(positive_.min());
}

double SignedHistogram::max() const {
  if (positive_.count()) return static_cast<double>(positive_.max());
  return -static_cast<double>(negative_.min());
}

}  // namespace sg::comparator
