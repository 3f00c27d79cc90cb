#include "comparator/sparse_histogram.h"

#include <algorithm>
#include <cmath>

#include "comparator/latency_histogram.h"

namespace sg::comparator {

void SparseHistogram::Record(int64_t value) {
  if (value < 0) value = 0;
  const auto index = static_cast<uint32_t>(LatencyHistogram::BucketIndex(value));
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), index,
                             [](const auto& b, uint32_t i) { return b.first < i; });
  if (it != buckets_.end() && it->first == index) {
    ++it->second;
  } else {
    buckets_.insert(it, {index, 1});
  }
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  sum_ += static_cast<double>(value);
}

void SparseHistogram::Merge(const SparseHistogram& other) {
  if (other.count_ == 0) return;
  std::vector<std::pair<uint32_t, uint64_t>> merged;
  merged.reserve(buckets_.size() + other.buckets_.size());
  auto a = buckets_.cbegin();
  auto b = other.buckets_.cbegin();
  while (a != buckets_.cend() || b != other.buckets_.cend()) {
    if (b == other.buckets_.end() || (a != buckets_.end() && a->first < b->first)) {
      merged.push_back(*a++);
    } else if (a == buckets_.end() || b->first < a->first) {
      merged.push_back(*b++);
    } else {
      merged.push_back({a->first, a->second + b->second});
      ++a;
      ++b;
    }
  }
  buckets_ = std::move(merged);
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

double SparseHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  return ValueAtRank(static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * count_)));
}

double SparseHistogram::ValueAtRank(uint64_t rank) const {
  if (count_ == 0) return 0;
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (const auto& [index, n] : buckets_) {
    seen += n;
    if (seen >= rank) {
      const double low = static_cast<double>(LatencyHistogram::BucketLow(index));
      const double high = static_cast<double>(LatencyHistogram::BucketHigh(index));
      const double mid = high - low <= 1 ? low : (low + high - 1) / 2;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

}  // namespace sg::comparator
