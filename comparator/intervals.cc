#include "comparator/intervals.h"

#include <algorithm>

#include "comparator/rank_tests.h"

namespace sg::comparator {

std::pair<uint64_t, uint64_t> QuantileRanks(uint64_t n, double q, double level) {
  const double z = NormalQuantile(1 - (1 - level) / 2);
  const double nd = static_cast<double>(n);
  const double center = nd * q;
  const double spread = z * std::sqrt(nd * q * (1 - q));
  // The k-th order statistic is below the quantile when at least k values are: P(B >= k), B ~
  // Binomial(n, q). Low rank: the largest k with P(B < k) <= alpha / 2; high: the smallest with
  // P(B < k) >= 1 - alpha / 2 (the +1 and the 0.5s are the continuity correction).
  const double lo = std::floor(center + 0.5 - spread);
  const double hi = std::ceil(center + 0.5 + spread);
  const uint64_t low_rank = lo < 1 ? 0 : static_cast<uint64_t>(lo);
  const uint64_t high_rank = hi > nd ? n + 1 : static_cast<uint64_t>(std::max(1.0, hi));
  return {low_rank, high_rank};
}

Interval QuantileRatio(const Interval& num, const Interval& den) {
  Interval out;
  if (!num.valid || !den.valid || den.estimate <= 0) return out;
  out.valid = true;
  out.estimate = num.estimate / den.estimate;
  out.low = den.high > 0 && std::isfinite(den.high) ? num.low / den.high : 0.0;
  out.high = den.low > 0 && std::isfinite(num.high) ? num.high / den.low
                                                    : std::numeric_limits<double>::infinity();
  return out;
}

Interval WilsonInterval(uint64_t successes, uint64_t trials, double level) {
  Interval out;
  if (trials == 0) return out;
  out.valid = true;
  out.estimate = static_cast<double>(successes) / static_cast<double>(trials);
  const double one_sided = 1 - (1 - level) / 2;
  out.low = WilsonLowerBound(successes, trials, one_sided);
  out.high = WilsonUpperBound(successes, trials, one_sided);
  return out;
}

Interval NewcombeDifference(uint64_t x1, uint64_t n1, uint64_t x2, uint64_t n2, double level) {
  Interval out;
  if (n1 == 0 || n2 == 0) return out;
  const Interval a = WilsonInterval(x1, n1, level);
  const Interval b = WilsonInterval(x2, n2, level);
  out.valid = true;
  out.estimate = a.estimate - b.estimate;
  out.low = out.estimate - std::hypot(a.estimate - a.low, b.high - b.estimate);
  out.high = out.estimate + std::hypot(a.high - a.estimate, b.estimate - b.low);
  return out;
}

Interval MeanInterval(uint64_t n, double sum, double sum_sq, double level) {
  Interval out;
  if (n == 0) return out;
  const double nd = static_cast<double>(n);
  out.estimate = sum / nd;
  if (n < 2) return out;
  out.valid = true;
  const double var = std::max(0.0, (sum_sq - sum * sum / nd) / (nd - 1));
  const double half = NormalQuantile(1 - (1 - level) / 2) * std::sqrt(var / nd);
  out.low = out.estimate - half;
  out.high = out.estimate + half;
  return out;
}

}  // namespace sg::comparator
