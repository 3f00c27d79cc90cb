#include "comparator/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace sg::comparator {
namespace {

double ExactQuantile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

TEST(LatencyHistogram, BucketsTileTheRange) {
  for (size_t i = 0; i + 1 < LatencyHistogram::kBuckets; ++i) {
    ASSERT_EQ(LatencyHistogram::BucketHigh(i), LatencyHistogram::BucketLow(i + 1)) << i;
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketLow(i)), i);
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketHigh(i) - 1), i);
  }
  EXPECT_EQ(LatencyHistogram::BucketIndex(-5), 0u);
  EXPECT_EQ(LatencyHistogram::BucketIndex(int64_t{1} << 50), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogram, QuantilesWithinOnePercent) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(std::log(8000.0), 0.8);
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<int64_t>(dist(rng));
    values.push_back(v);
    h.Record(v);
  }
  for (double q : {0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const double exact = ExactQuantile(values, q);
    EXPECT_NEAR(h.Quantile(q), exact, std::max(1.0, exact * 0.01)) << q;
  }
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h.max(), *std::max_element(values.begin(), values.end()));
  double sum = 0;
  for (auto v : values) sum += static_cast<double>(v);
  EXPECT_DOUBLE_EQ(h.mean(), sum / 100000);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v : {1, 2, 3, 4, 100}) h.Record(v);
  EXPECT_EQ(h.Quantile(0.19), 1);
  EXPECT_EQ(h.Quantile(0.5), 3);
  EXPECT_EQ(h.Quantile(0.79), 4);
  EXPECT_EQ(h.Quantile(1.0), 100);
  EXPECT_EQ(LatencyHistogram().Quantile(0.5), 0);
}

TEST(LatencyHistogram, MergeEqualsRecordingBoth) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> dist(0, 5000000);
  LatencyHistogram a, b, both;
  for (int i = 0; i < 5000; ++i) {
    const int64_t v = dist(rng);
    (i % 3 ? a : b).Record(v);
    both.Record(v);
  }
  LatencyHistogram merged = a;
  merged.Merge(b);
  EXPECT_EQ(merged.count(), both.count());
  EXPECT_EQ(merged.NonEmptyBuckets().size(), both.NonEmptyBuckets().size());
  for (double q : {0.5, 0.99}) EXPECT_EQ(merged.Quantile(q), both.Quantile(q));
  EXPECT_EQ(merged.min(), both.min());
  EXPECT_EQ(merged.max(), both.max());
  LatencyHistogram other_order = b;
  other_order.Merge(a);
  EXPECT_TRUE(other_order == merged);
}

TEST(SignedHistogram, QuantilesAcrossZero) {
  SignedHistogram h;
  for (int v : {-300, -20, -1, 0, 5, 40, 1000}) h.Record(v);
  EXPECT_EQ(h.count(), 7u);
  EXPECT_EQ(h.Quantile(0.0), -300);
  EXPECT_NEAR(h.Quantile(0.28), -20, 0.01);
  EXPECT_EQ(h.Quantile(0.42), -1);
  EXPECT_EQ(h.Quantile(0.57), 0);
  EXPECT_EQ(h.Quantile(1.0), 1000);
  EXPECT_EQ(h.min(), -300);
  EXPECT_EQ(h.max(), 1000);
  EXPECT_NEAR(h.mean(), (-300 - 20 - 1 + 0 + 5 + 40 + 1000) / 7.0, 1e-9);
}

}  // namespace
}  // namespace sg::comparator
