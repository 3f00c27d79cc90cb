// Confidence intervals the gates judge: quantiles and their ratios from histograms
// (distribution-free, from order statistics), proportions and their differences (Wilson,
// Newcombe), and means (normal approximation). Every `level` is two-sided: each end of the
// interval is a one-sided bound at (1 + level) / 2.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

namespace sg::comparator {

struct Interval {
  double estimate = 0;
  double low = -std::numeric_limits<double>::infinity();
  double high = std::numeric_limits<double>::infinity();
  bool valid = false;  // false: not enough data for an estimate
};

// Ranks (1-based) of the order statistics that bound the q-quantile of n values at `level`
// (normal approximation to the binomial count below the quantile, continuity corrected). A low
// rank of 0 means no lower bound, a high rank of n + 1 no upper bound from n values.
std::pair<uint64_t, uint64_t> QuantileRanks(uint64_t n, double q, double level);

// The q-quantile of a histogram (anything with count(), Quantile() and ValueAtRank()) with its
// order-statistic interval; ends that n values cannot bound are infinite (low: 0).
template <typename Histogram>
Interval QuantileInterval(const Histogram& h, double q, double level) {
  Interval out;
  const uint64_t n = h.count();
  if (n == 0) return out;
  out.valid = true;
  out.estimate = h.Quantile(q);
  const auto [lo, hi] = QuantileRanks(n, q, level);
  out.low = lo == 0 ? 0.0 : h.ValueAtRank(lo);
  out.high = hi > n ? std::numeric_limits<double>::infinity() : h.ValueAtRank(hi);
  return out;
}

// The ratio of two quantiles, numerator / denominator, with a conservative interval: each
// quantile's interval at the Bonferroni level 1 - (1 - level) / 2, combined as
// [num.low / den.high, num.high / den.low]. Invalid when a side is empty or its quantile is 0.
Interval QuantileRatio(const Interval& numerator, const Interval& denominator);
template <typename Histogram>
Interval QuantileRatioInterval(const Histogram& numerator, const Histogram& denominator, double q,
                               double level) {
  const double each = 1 - (1 - level) / 2;
  return QuantileRatio(QuantileInterval(numerator, q, each),
                       QuantileInterval(denominator, q, each));
}

// Wilson score interval for successes / trials (R: prop.test(correct = FALSE)).
Interval WilsonInterval(uint64_t successes, uint64_t trials, double level);

// p1 - p2 for two proportions x1/n1 and x2/n2, with Newcombe's hybrid score interval (method 10
// of Newcombe 1998) built from the two Wilson intervals.
Interval NewcombeDifference(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2, double level);

// The mean of n values from their sum and sum of squares, with a normal-approximation interval
// (mean -/+ z * sd / sqrt(n), sd with n - 1). Invalid when n < 2.
Interval MeanInterval(uint64_t n, double sum, double sum_sq, double level);

// Bonferroni: the level each of `tests` comparisons needs for a family-wise `level`.
inline double BonferroniLevel(double level, size_t tests) {
  return tests <= 1 ? level : 1 - (1 - level) / static_cast<double>(tests);
}

}  // namespace sg::comparator
