#include "comparator/rank_tests.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

namespace sg::comparator {
namespace {

// Counts of the Mann-Whitney statistic for sizes m, n: the coefficients of the Gaussian binomial
// [m + n choose m]_q, built as prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i). Every intermediate
// product is itself a Gaussian binomial, so every value stays a non-negative count.
std::vector<double> WilcoxCounts(int m, int n) {
  const size_t degree = static_cast<size_t>(m) * static_cast<size_t>(n);
  std::vector<double> f(degree + 1, 0.0);
  f[0] = 1;
  for (int i = 1; i <= m; ++i) {
    const size_t shift = static_cast<size_t>(n + i);
    for (size_t k = degree; k >= shift && k <= degree; --k) f[k] -= f[k - shift];
    for (size_t k = static_cast<size_t>(i); k <= degree; ++k) f[k] += f[k - i];
  }
  return f;
}

// Counts of the signed-rank statistic: the coefficients of prod_{i=1..n} (1 + q^i).
std::vector<double> SignRankCounts(int n) {
  const size_t degree = static_cast<size_t>(n) * (n + 1) / 2;
  std::vector<double> f(degree + 1, 0.0);
  f[0] = 1;
  size_t top = 0;
  for (int i = 1; i <= n; ++i) {
    top += i;
    for (size_t k = top; k >= static_cast<size_t>(i); --k) f[k] += f[k - i];
  }
  return f;
}

double Sum(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0);
}

// Lower-tail probability of a discrete distribution given by counts, summing the smaller tail as R
// does (pwilcox, psignrank).
double DiscreteCdf(const std::vector<double>& counts, double q) {
  const double top = static_cast<double>(counts.size() - 1);
  q = std::floor(q + 1e-7);
  if (q < 0) return 0;
  if (q >= top) return 1;
  const double total = Sum(counts);
  double p = 0;
  if (q <= top / 2) {
    for (int i = 0; i <= static_cast<int>(q); ++i) p += counts[i] / total;
    return p;
  }
  const int upper = static_cast<int>(top - q);
  for (int i = 0; i < upper; ++i) p += counts[i] / total;
  return 1 - p;
}

// R's qwilcox/qsignrank search.
double DiscreteQuantile(const std::vector<double>& counts, double x) {
  const double total = Sum(counts);
  const int top = static_cast<int>(counts.size() - 1);
  double p = 0;
  int q = 0;
  if (x <= 0.5) {
    x = x - 10 * DBL_EPSILON;
    for (;;) {
      p += counts[q] / total;
      if (p >= x || q == top) break;
      ++q;
    }
    return q;
  }
  x = 1 - x + 10 * DBL_EPSILON;
  for (;;) {
    p += counts[q] / total;
    if (p > x || q == top) return top - q;
    ++q;
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  if (n == 0) return 0;
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Sign(double v) {
  return v > 0 ? 1 : (v < 0 ? -1 : 0);
}

// Root of a non-increasing function f on [lo, hi] with f(lo) > 0 > f(hi), by bisection.
double Bisect(const std::function<double(double)>& f, double lo, double hi) {
  const double tol = 1e-12 * std::max(1.0, std::fabs(hi - lo));
  for (int i = 0; i < 200 && hi - lo > tol; ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (f(mid) > 0) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo + (hi - lo) / 2;
}

std::vector<double> Finite(std::span<const double> v) {
  std::vector<double> out;
  out.reserve(v.size());
  for (double x : v) {
    if (std::isfinite(x)) out.push_back(x);
  }
  return out;
}

// Sum of the (average) ranks of the values of `a` among a ∪ b, and sum(t^3 - t) over tie groups.
// REQUIRES: a and b sorted ascending.
struct RankSums {
  double rank_sum_a = 0;
  double tie_term = 0;
};
RankSums MergeRanks(const std::vector<double>& a, const std::vector<double>& b, double shift) {
  RankSums out;
  size_t i = 0, j = 0;
  double next_rank = 1;
  while (i < a.size() || j < b.size()) {
    double v;
    if (j >= b.size() || (i < a.size() && a[i] - shift <= b[j])) {
      v = a[i] - shift;
    } else {
      v = b[j];
    }
    size_t ca = 0, cb = 0;
    while (i < a.size() && a[i] - shift == v) ++i, ++ca;
    while (j < b.size() && b[j] == v) ++j, ++cb;
    const double t = static_cast<double>(ca + cb);
    const double average = next_rank + (t - 1) / 2;
    out.rank_sum_a += average * static_cast<double>(ca);
    out.tie_term += t * t * t - t;
    next_rank += t;
  }
  return out;
}

// Signed-rank statistic of the non-zero values of x - d: V, the count, and sum(t^3 - t).
struct SignedRanks {
  double v = 0;
  double n = 0;
  double tie_term = 0;
};
SignedRanks ComputeSignedRanks(const std::vector<double>& x, double d) {
  std::vector<double> xd;
  xd.reserve(x.size());
  for (double v : x) {
    if (v - d != 0) xd.push_back(v - d);
  }
  std::sort(xd.begin(), xd.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); });
  SignedRanks out;
  out.n = static_cast<double>(xd.size());
  size_t i = 0;
  double next_rank = 1;
  while (i < xd.size()) {
    size_t j = i;
    double positives = 0;
    while (j < xd.size() && std::fabs(xd[j]) == std::fabs(xd[i])) {
      if (xd[j] > 0) positives += 1;
      ++j;
    }
    const double t = static_cast<double>(j - i);
    out.v += (next_rank + (t - 1) / 2) * positives;
    out.tie_term += t * t * t - t;
    next_rank += t;
    i = j;
  }
  return out;
}

}  // namespace

double NormalCdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

double NormalQuantile(double p) {
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  double lo = -40, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    if (mid == lo || mid == hi) break;
    if (NormalCdf(mid) < p) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return (lo + hi) / 2;
}

double WilcoxCdf(double q, int m, int n) {
  return DiscreteCdf(WilcoxCounts(m, n), q);
}
double WilcoxQuantile(double p, int m, int n) {
  return DiscreteQuantile(WilcoxCounts(m, n), p);
}
double SignRankCdf(double q, int n) {
  return DiscreteCdf(SignRankCounts(n), q);
}
double SignRankQuantile(double p, int n) {
  return DiscreteQuantile(SignRankCounts(n), p);
}

RankTestResult MannWhitney(std::span<const double> x_in, std::span<const double> y_in,
                           double confidence) {
  RankTestResult r;
  r.confidence = confidence;
  std::vector<double> x = Finite(x_in), y = Finite(y_in);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  r.n_x = static_cast<int64_t>(x.size());
  r.n_y = static_cast<int64_t>(y.size());
  if (x.empty() || y.empty()) {
    r.note = "needs at least one observation on each side";
    return r;
  }
  r.valid = true;
  const RankSums ranks = MergeRanks(x, y, 0);
  r.statistic = ranks.rank_sum_a - nx * (nx + 1) / 2;
  const bool ties = ranks.tie_term != 0;
  const double alpha = 1 - confidence;
  if (nx < 50 && ny < 50 && !ties) {
    r.exact = true;
    const int m = static_cast<int>(nx), n = static_cast<int>(ny);
    const std::vector<double> counts = WilcoxCounts(m, n);
    const double p = r.statistic > nx * ny / 2 ? 1 - DiscreteCdf(counts, r.statistic - 1)
                                               : DiscreteCdf(counts, r.statistic);
    r.p_value = std::min(2 * p, 1.0);
    std::vector<double> diffs;
    diffs.reserve(x.size() * y.size());
    for (double a : x) {
      for (double b : y) diffs.push_back(a - b);
    }
    std::sort(diffs.begin(), diffs.end());
    double qu = DiscreteQuantile(counts, alpha / 2);
    if (qu == 0) qu = 1;
    const double ql = nx * ny - qu;
    r.ci_low = diffs[static_cast<size_t>(qu) - 1];
    r.ci_high = diffs[static_cast<size_t>(ql)];
    const double achieved = 2 * DiscreteCdf(counts, std::trunc(qu) - 1);
    if (achieved - alpha > alpha / 2) r.confidence = 1 - achieved;
    r.estimate = Median(std::move(diffs));
    return r;
  }
  const double total = nx + ny;
  auto standardized = [&](double d, bool correct) {
    const RankSums s = MergeRanks(x, y, d);
    const double dz = s.rank_sum_a - nx * (nx + 1) / 2 - nx * ny / 2;
    const double correction = correct ? Sign(dz) * 0.5 : 0;
    const double sigma =
        std::sqrt((nx * ny / 12) * ((total + 1) - s.tie_term / (total * (total - 1))));
    return (dz - correction) / sigma;
  };
  r.p_value = 2 * std::min(NormalCdf(standardized(0, true)), 1 - NormalCdf(standardized(0, true)));
  const double mumin = x.front() - y.back(), mumax = x.back() - y.front();
  const double w_min = standardized(mumin, true), w_max = standardized(mumax, true);
  auto root = [&](double zq) {
    if (w_min - zq <= 0) return mumin;
    if (w_max - zq >= 0) return mumax;
    return Bisect([&](double d) { return standardized(d, true) - zq; }, mumin, mumax);
  };
  r.ci_low = root(NormalQuantile(1 - alpha / 2));
  r.ci_high = root(NormalQuantile(alpha / 2));
  if (mumin == mumax) {
    r.estimate = mumin;
  } else {
    r.estimate = Bisect([&](double d) { return standardized(d, false); }, mumin, mumax);
  }
  return r;
}

RankTestResult SignedRank(std::span<const double> x_in, std::span<const double> y_in,
                          double confidence) {
  RankTestResult r;
  r.confidence = confidence;
  std::vector<double> x;
  const size_t pairs = std::min(x_in.size(), y_in.size());
  bool zeroes = false;
  for (size_t i = 0; i < pairs; ++i) {
    const double d = x_in[i] - y_in[i];
    if (!std::isfinite(d)) continue;
    if (d == 0) {
      zeroes = true;
      continue;
    }
    x.push_back(d);
  }
  r.n_x = static_cast<int64_t>(pairs);
  r.n_y = static_cast<int64_t>(x.size());
  const double n = static_cast<double>(x.size());
  if (x.empty()) {
    // R yields NaN here; every difference is zero, so there is no shift at all.
    r.valid = pairs > 0;
    r.note = pairs > 0 ? "every paired difference is zero" : "no paired observations";
    return r;
  }
  r.valid = true;
  const SignedRanks s = ComputeSignedRanks(x, 0);
  r.statistic = s.v;
  const bool ties = s.tie_term != 0;
  double alpha = 1 - confidence;
  if (n < 50 && !ties && !zeroes) {
    r.exact = true;
    const int ni = static_cast<int>(n);
    const std::vector<double> counts = SignRankCounts(ni);
    const double p = r.statistic > n * (n + 1) / 4 ? 1 - DiscreteCdf(counts, r.statistic - 1)
                                                   : DiscreteCdf(counts, r.statistic);
    r.p_value = std::min(2 * p, 1.0);
    std::vector<double> walsh;
    for (size_t i = 0; i < x.size(); ++i) {
      for (size_t j = i; j < x.size(); ++j) walsh.push_back((x[i] + x[j]) / 2);
    }
    std::sort(walsh.begin(), walsh.end());
    double qu = DiscreteQuantile(counts, alpha / 2);
    if (qu == 0) qu = 1;
    const double ql = n * (n + 1) / 2 - qu;
    r.ci_low = walsh[static_cast<size_t>(qu) - 1];
    r.ci_high = walsh[static_cast<size_t>(ql)];
    const double achieved = 2 * DiscreteCdf(counts, std::trunc(qu) - 1);
    if (achieved - alpha > alpha / 2) r.confidence = 1 - achieved;
    r.estimate = Median(std::move(walsh));
    return r;
  }
  auto standardized = [&](double d, bool correct) {
    const SignedRanks sd = ComputeSignedRanks(x, d);
    const double zd = sd.v - sd.n * (sd.n + 1) / 4;
    const double sigma = std::sqrt(sd.n * (sd.n + 1) * (2 * sd.n + 1) / 24 - sd.tie_term / 48);
    const double correction = correct ? Sign(zd) * 0.5 : 0;
    return (zd - correction) / sigma;
  };
  const double z0 = standardized(0, true);
  r.p_value = 2 * std::min(NormalCdf(z0), 1 - NormalCdf(z0));
  const double mumin = *std::min_element(x.begin(), x.end());
  const double mumax = *std::max_element(x.begin(), x.end());
  const double w_min = standardized(mumin, true), w_max = standardized(mumax, true);
  if (!std::isfinite(w_min) || !std::isfinite(w_max)) {
    r.estimate = (mumin + mumax) / 2;
    r.ci_low = r.ci_high = NAN;
    r.confidence = 0;
    r.note = "all observations tied: no confidence interval";
    return r;
  }
  while (w_min - NormalQuantile(1 - alpha / 2) < 0 || w_max - NormalQuantile(alpha / 2) > 0) {
    alpha *= 2;
    if (alpha >= 1) break;
  }
  if (alpha < 1) {
    auto root = [&](double zq) {
      return Bisect([&](double d) { return standardized(d, true) - zq; }, mumin, mumax);
    };
    r.ci_low = root(NormalQuantile(1 - alpha / 2));
    r.ci_high = root(NormalQuantile(alpha / 2));
  } else {
    r.ci_low = r.ci_high = Median(x);
  }
  if (1 - confidence < alpha * 0.75) {
    r.confidence = 1 - std::min(1.0, alpha);
    r.note = "requested confidence not achievable";
  }
  r.estimate = mumin == mumax
                   ? mumin
                   : Bisect([&](double d) { return standardized(d, false); }, mumin, mumax);
  return r;
}

double WilsonLowerBound(uint64_t successes, uint64_t trials, double confidence) {
  if (trials == 0 || successes == 0) return 0;
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double z = NormalQuantile(confidence);
  const double z22n = z * z / (2 * n);
  return (p + z22n - z * std::sqrt(p * (1 - p) / n + z22n / (2 * n))) / (1 + 2 * z22n);
}

PairedInterval PairedDifferenceInterval(uint64_t x_only, uint64_t y_only, uint64_t n,
                                        double confidence) {
  PairedInterval out;
  if (n == 0) return out;
  const double nn = static_cast<double>(n);
  const double b = static_cast<double>(x_only), c = static_cast<double>(y_only);
  out.estimate = (b - c) / nn;
  const double se = std::sqrt(std::max(0.0, b + c - (b - c) * (b - c) / nn)) / nn;
  const double z = NormalQuantile(confidence);
  out.low = out.estimate - z * se;
  out.high = out.estimate + z * se;
  return out;
}

double WilsonUpperBound(uint64_t successes, uint64_t trials, double confidence) {
  if (trials == 0) return 1;
  if (successes >= trials) return 1;
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double z = NormalQuantile(confidence);
  const double z22n = z * z / (2 * n);
  return (p + z22n + z * std::sqrt(p * (1 - p) / n + z22n / (2 * n))) / (1 + 2 * z22n);
}

}  // namespace sg::comparator
