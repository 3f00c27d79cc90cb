#include "comparator/rank_tests.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <vector>

namespace sg::comparator {
namespace {

// wilcox.test's default tol.root, and uniroot's default maxiter.
constexpr double kRootTolerance = 1e-4;
constexpr int kRootMaxIterations = 1000;

// Counts of the Mann-Whitney statistic for sizes m, n: the coefficients of the Gaussian binomial
// [m + n choose m]_q, built as prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i). The entry for k depends
// only on entries <= k, so the small counts that make up far tails stay exact integers.
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

// An exact null distribution as R's nmath holds it: counts, and how a count becomes a
// probability (psignrank multiplies by exp(-n log 2), pwilcox divides by choose(m + n, n)).
struct Discrete {
  std::vector<double> counts;
  double factor = 1;
  bool divide = false;
  double Prob(size_t k) const { return divide ? counts[k] / factor : counts[k] * factor; }
  double Top() const { return static_cast<double>(counts.size() - 1); }
};

Discrete SignRankDistribution(int n) {
  return {SignRankCounts(n), std::exp(-n * M_LN2), false};
}

Discrete WilcoxDistribution(int m, int n) {
  std::vector<double> counts = WilcoxCounts(m, n);
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  return {std::move(counts), total, true};
}

// R's psignrank/pwilcox after rounding q: sums the shorter tail and complements by flipping the
// tail, so both tails are accurate far out (an upper tail is never 1 - (1 - p)).
double DiscreteTail(const Discrete& d, double q, bool lower_tail) {
  const double top = d.Top();
  if (q < 0) return lower_tail ? 0 : 1;
  if (q >= top) return lower_tail ? 1 : 0;
  double p = 0;
  if (q <= top / 2) {
    for (size_t i = 0; static_cast<double>(i) <= q; ++i) p += d.Prob(i);
  } else {
    q = top - q;
    for (size_t i = 0; static_cast<double>(i) < q; ++i) p += d.Prob(i);
    lower_tail = !lower_tail;
  }
  return lower_tail ? p : 0.5 - p + 0.5;
}

// psignrank rounds its argument to the nearest integer, pwilcox takes the floor.
double SignRankTail(const Discrete& d, double q, bool lower_tail) {
  return DiscreteTail(d, std::nearbyint(q + 1e-7), lower_tail);
}
double WilcoxTail(const Discrete& d, double q, bool lower_tail) {
  return DiscreteTail(d, std::floor(q + 1e-7), lower_tail);
}

// R's qwilcox/qsignrank search (lower tail).
double DiscreteQuantile(const Discrete& d, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return d.Top();
  const size_t top = d.counts.size() - 1;
  double p = 0;
  size_t q = 0;
  if (x <= 0.5) {
    x = x - 10 * DBL_EPSILON;
    for (;;) {
      p += d.Prob(q);
      if (p >= x || q == top) break;
      ++q;
    }
    return static_cast<double>(q);
  }
  x = 1 - x + 10 * DBL_EPSILON;
  for (;;) {
    p += d.Prob(q);
    if (p > x || q == top) return static_cast<double>(top - q);
    ++q;
  }
}

// c[0] * r^7 + ... + c[7], evaluated as R's nested products are.
double Horner(const double (&c)[8], double r) {
  double v = c[0];
  for (int i = 1; i < 8; ++i) v = v * r + c[i];
  return v;
}

// R's qnorm (AS 241, PPND16) for the lower (lower_tail) or upper tail probability p.
double Qnorm(double p, bool lower_tail) {
  static constexpr double kCentralNum[8] = {
      2509.0809287301226727, 33430.575583588128105, 67265.770927008700853, 45921.953931549871457,
      13731.693765509461125, 1971.5909503065514427, 133.14166789178437745, 3.387132872796366608};
  static constexpr double kCentralDen[8] = {
      5226.495278852854561,  28729.085735721942674, 39307.89580009271061,  21213.794301586595867,
      5394.1960214247511077, 687.1870074920579083,  42.313330701600911252, 1.};
  static constexpr double kNearNum[8] = {7.7454501427834140764e-4, .0227238449892691845833,
                                         .24178072517745061177,    1.27045825245236838258,
                                         3.64784832476320460504,   5.7694972214606914055,
                                         4.6303378461565452959,    1.42343711074968357734};
  static constexpr double kNearDen[8] = {1.05075007164441684324e-9, 5.475938084995344946e-4,
                                         .0151986665636164571966,   .14810397642748007459,
                                         .68976733498510000455,     1.6763848301838038494,
                                         2.05319162663775882187,    1.};
  static constexpr double kFarNum[8] = {2.01033439929228813265e-7, 2.71155556874348757815e-5,
                                        .0012426609473880784386,   .026532189526576123093,
                                        .29656057182850489123,     1.7848265399172913358,
                                        5.4637849111641143699,     6.6579046435011037772};
  static constexpr double kFarDen[8] = {2.04426310338993978564e-15, 1.4215117583164458887e-7,
                                        1.8463183175100546818e-5,   7.868691311456132591e-4,
                                        .0148753612908506148525,    .13692988092273580531,
                                        .59983220655588793769,      1.};
  if (std::isnan(p) || p < 0 || p > 1) return NAN;
  if (p == 0) return lower_tail ? -INFINITY : INFINITY;
  if (p == 1) return lower_tail ? INFINITY : -INFINITY;
  const double p_lower = lower_tail ? p : 0.5 - p + 0.5;
  const double q = p_lower - 0.5;
  if (std::fabs(q) <= 0.425) {
    const double r = .180625 - q * q;
    return q * Horner(kCentralNum, r) / Horner(kCentralDen, r);
  }
  // r = min(p, 1 - p), taken from whichever tail holds it without cancellation.
  double r = q > 0 ? (lower_tail ? 0.5 - p + 0.5 : p) : p_lower;
  r = std::sqrt(-std::log(r));
  double val;
  if (r <= 5.) {
    r += -1.6;
    val = Horner(kNearNum, r) / Horner(kNearDen, r);
  } else {
    r += -5.;
    val = Horner(kFarNum, r) / Horner(kFarDen, r);
  }
  return q < 0 ? -val : val;
}

// R's signif(x, digits) (fprec) for the small digit counts used here.
double Signif(double x, int digits) {
  if (x == 0 || !std::isfinite(x)) return x;
  const double sign = x < 0 ? -1 : 1;
  x = std::fabs(x);
  const int e10 = digits - 1 - static_cast<int>(std::floor(std::log10(x)));
  if (e10 > 0) {
    const double pow10 = std::pow(10.0, e10);
    return sign * (std::nearbyint(x * pow10) / pow10);
  }
  const double pow10 = std::pow(10.0, -e10);
  return sign * (std::nearbyint(x / pow10) * pow10);
}

// R's median of a sorted vector: the middle value, or the mean of the two middle values.
double SortedMedian(const std::vector<double>& v) {
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Sign(double v) {
  return v > 0 ? 1 : (v < 0 ? -1 : 0);
}

// R's uniroot(f, lower = a, upper = b, f.lower = fa, f.upper = fb, tol, maxiter = 1000), i.e.
// R_zeroin2: Brent's method (1973) with R's steps and stopping rule, repeated operation by
// operation so that a step function such as a rank statistic lands on R's very root. Non-finite
// values of f become -DBL_MAX / DBL_MAX as in uniroot's wrapper. REQUIRES: fa, fb of opposite sign
// (or zero).
template <class F>
double Uniroot(const F& f, double a, double b, double fa, double fb, double tol) {
  auto eval = [&](double x) {
    const double v = f(x);
    if (std::isfinite(v)) return v;
    return v == -INFINITY ? -DBL_MAX : DBL_MAX;
  };
  double c = a, fc = fa;
  if (fa == 0) return a;
  if (fb == 0) return b;
  for (int left = kRootMaxIterations + 1; left-- > 0;) {
    const double prev_step = b - a;
    if (std::fabs(fc) < std::fabs(fb)) {
      // Make b the best approximation so far.
      a = b;
      b = c;
      c = a;
      fa = fb;
      fb = fc;
      fc = fa;
    }
    const double tol_act = 2 * DBL_EPSILON * std::fabs(b) + tol / 2;
    double new_step = (c - b) / 2;
    if (std::fabs(new_step) <= tol_act || fb == 0) return b;
    // Interpolate when the previous step was large enough and went the right way.
    if (std::fabs(prev_step) >= tol_act && std::fabs(fa) > std::fabs(fb)) {
      double p, q;
      const double cb = c - b;
      if (a == c) {
        // Two distinct points: secant.
        const double t1 = fb / fa;
        p = cb * t1;
        q = 1.0 - t1;
      } else {
        // Inverse quadratic interpolation.
        q = fa / fc;
        const double t1 = fb / fc;
        const double t2 = fb / fa;
        p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0));
        q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0);
      }
      if (p > 0) {
        q = -q;
      } else {
        p = -p;
      }
      if (p < (0.75 * cb * q - std::fabs(tol_act * q) / 2) && p < std::fabs(prev_step * q / 2)) {
        new_step = p / q;
      }
    }
    if (std::fabs(new_step) < tol_act) new_step = new_step > 0 ? tol_act : -tol_act;
    a = b;
    fa = fb;
    b += new_step;
    fb = eval(b);
    if ((fb > 0 && fc > 0) || (fb < 0 && fc < 0)) {
      // Keep the root bracketed between b and c.
      c = a;
      fc = fa;
    }
  }
  return b;  // R warns "_NOT_ converged" and returns the last approximation.
}

std::vector<double> SortedFinite(std::span<const double> v) {
  std::vector<double> out;
  out.reserve(v.size());
  for (double x : v) {
    if (std::isfinite(x)) out.push_back(x);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Sum of the (average) ranks of the values a - shift among (a - shift) ∪ b, and sum(t^3 - t) over
// tie groups, as R's rank(c(x - d, y)) and table() give them. REQUIRES: a and b sorted ascending
// (a - shift stays sorted: rounding is monotone).
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

// R's W(d) for the rank-sum interval: the standardized statistic of x - d against y.
double RankSumZ(const std::vector<double>& x, const std::vector<double>& y, double d,
                bool correct) {
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  const RankSums s = MergeRanks(x, y, d);
  const double dz = s.rank_sum_a - nx * (nx + 1) / 2 - nx * ny / 2;
  const double correction = correct ? Sign(dz) * 0.5 : 0;
  const double sigma =
      std::sqrt((nx * ny / 12) * ((nx + ny + 1) - s.tie_term / ((nx + ny) * (nx + ny - 1))));
  return (dz - correction) / sigma;
}

// Signed-rank statistic of the non-zero values of x - d: V, their count, and sum(t^3 - t) over
// groups of tied |x - d|. REQUIRES: x sorted ascending. The negative values, walked from the
// right, and the positive ones, walked from the left, are each sorted by |x - d|: one merge ranks
// them in O(n).
struct SignedRanks {
  double v = 0;
  double n = 0;
  double tie_term = 0;
};
SignedRanks ComputeSignedRanks(const std::vector<double>& x, double d) {
  auto below = [&](double v) { return v - d < 0; };
  auto at_most = [&](double v) { return v - d <= 0; };
  size_t neg = static_cast<size_t>(std::partition_point(x.begin(), x.end(), below) - x.begin());
  size_t pos = static_cast<size_t>(std::partition_point(x.begin(), x.end(), at_most) - x.begin());
  SignedRanks out;
  out.n = static_cast<double>(neg + (x.size() - pos));
  double next_rank = 1;
  while (neg > 0 || pos < x.size()) {
    const double a = neg > 0 ? -(x[neg - 1] - d) : INFINITY;
    const double b = pos < x.size() ? x[pos] - d : INFINITY;
    const double value = std::min(a, b);
    size_t count = 0, positives = 0;
    while (neg > 0 && -(x[neg - 1] - d) == value) --neg, ++count;
    while (pos < x.size() && x[pos] - d == value) ++pos, ++count, ++positives;
    const double t = static_cast<double>(count);
    out.v += (next_rank + (t - 1) / 2) * static_cast<double>(positives);
    out.tie_term += t * t * t - t;
    next_rank += t;
  }
  return out;
}

// R's W(d) for the signed-rank interval: the standardized statistic of the non-zero x - d.
double SignedRankZ(const std::vector<double>& x, double d, bool correct) {
  const SignedRanks s = ComputeSignedRanks(x, d);
  const double zd = s.v - s.n * (s.n + 1) / 4;
  const double sigma = std::sqrt(s.n * (s.n + 1) * (2 * s.n + 1) / 24 - s.tie_term / 48);
  const double correction = correct ? Sign(zd) * 0.5 : 0;
  return (zd - correction) / sigma;
}

}  // namespace

double NormalTwoSidedP(double z) {
  // 2 * min(Phi(z), 1 - Phi(z)) without forming 1 - Phi(z).
  return std::min(1.0, std::erfc(std::fabs(z) * M_SQRT1_2));
}

double NormalQuantile(double p) {
  return Qnorm(p, true);
}

double WilcoxCdfForTest(double q, int m, int n) {
  return WilcoxTail(WilcoxDistribution(m, n), q, true);
}
double WilcoxQuantileForTest(double p, int m, int n) {
  return DiscreteQuantile(WilcoxDistribution(m, n), p);
}
double SignRankCdfForTest(double q, int n) {
  return SignRankTail(SignRankDistribution(n), q, true);
}
double SignRankQuantileForTest(double p, int n) {
  return DiscreteQuantile(SignRankDistribution(n), p);
}

RankTestResult MannWhitney(std::span<const double> x_in, std::span<const double> y_in,
                           double confidence) {
  RankTestResult r;
  r.confidence = confidence;
  const std::vector<double> x = SortedFinite(x_in), y = SortedFinite(y_in);
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
    const Discrete dist = WilcoxDistribution(static_cast<int>(nx), static_cast<int>(ny));
    const double p = r.statistic > nx * ny / 2 ? WilcoxTail(dist, r.statistic - 1, false)
                                               : WilcoxTail(dist, r.statistic, true);
    r.p_value = std::min(2 * p, 1.0);
    std::vector<double> diffs;
    diffs.reserve(x.size() * y.size());
    for (double a : x) {
      for (double b : y) diffs.push_back(a - b);
    }
    std::sort(diffs.begin(), diffs.end());
    double qu = DiscreteQuantile(dist, alpha / 2);
    if (qu == 0) qu = 1;
    const double ql = nx * ny - qu;
    r.ci_low = diffs[static_cast<size_t>(qu) - 1];
    r.ci_high = diffs[static_cast<size_t>(ql)];
    const double achieved = 2 * WilcoxTail(dist, std::trunc(qu) - 1, true);
    if (achieved - alpha > alpha / 2) {
      r.confidence = 1 - achieved;
      r.note = "requested confidence not achievable";
    }
    r.estimate = SortedMedian(diffs);
    return r;
  }
  if (nx < 50 && ny < 50) r.note = "ties: normal approximation instead of the exact test";
  const double z0 = r.statistic - nx * ny / 2;
  const double sigma =
      std::sqrt((nx * ny / 12) * ((nx + ny + 1) - ranks.tie_term / ((nx + ny) * (nx + ny - 1))));
  const double z = (z0 - Sign(z0) * 0.5) / sigma;
  // R gives NA when every observation is tied (sigma = 0): there is no evidence of a shift.
  r.p_value = std::isfinite(z) ? NormalTwoSidedP(z) : 1;
  const double mumin = x.front() - y.back(), mumax = x.back() - y.front();
  if (mumin == mumax) {
    // Every x - y difference is the same; R's wilcox.test stops with an error here.
    r.estimate = r.ci_low = r.ci_high = mumin;
    r.note = "every difference x - y is the same";
    return r;
  }
  const double w_min = RankSumZ(x, y, mumin, true), w_max = RankSumZ(x, y, mumax, true);
  auto root = [&](double zq) {
    const double f_lower = w_min - zq;
    if (f_lower <= 0) return mumin;
    const double f_upper = w_max - zq;
    if (f_upper >= 0) return mumax;
    return Uniroot([&](double d) { return RankSumZ(x, y, d, true) - zq; }, mumin, mumax, f_lower,
                   f_upper, kRootTolerance);
  };
  r.ci_low = root(Qnorm(alpha / 2, false));
  r.ci_high = root(Qnorm(alpha / 2, true));
  auto w = [&](double d) { return RankSumZ(x, y, d, false); };
  r.estimate = Uniroot(w, mumin, mumax, w(mumin), w(mumax), kRootTolerance);
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
  std::sort(x.begin(), x.end());
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
    const Discrete dist = SignRankDistribution(static_cast<int>(n));
    const double p = r.statistic > n * (n + 1) / 4 ? SignRankTail(dist, r.statistic - 1, false)
                                                   : SignRankTail(dist, r.statistic, true);
    r.p_value = std::min(2 * p, 1.0);
    std::vector<double> walsh;
    walsh.reserve(x.size() * (x.size() + 1) / 2);
    for (size_t i = 0; i < x.size(); ++i) {
      for (size_t j = i; j < x.size(); ++j) walsh.push_back((x[i] + x[j]) / 2);
    }
    std::sort(walsh.begin(), walsh.end());
    double qu = DiscreteQuantile(dist, alpha / 2);
    if (qu == 0) qu = 1;
    const double ql = n * (n + 1) / 2 - qu;
    r.ci_low = walsh[static_cast<size_t>(qu) - 1];
    r.ci_high = walsh[static_cast<size_t>(ql)];
    const double achieved = 2 * SignRankTail(dist, std::trunc(qu) - 1, true);
    if (achieved - alpha > alpha / 2) {
      r.confidence = 1 - Signif(achieved, 2);
      r.note = "requested confidence not achievable";
    }
    r.estimate = SortedMedian(walsh);
    return r;
  }
  if (n < 50) r.note = "ties or zeroes: normal approximation instead of the exact test";
  const double z0 = r.statistic - n * (n + 1) / 4;
  const double sigma = std::sqrt(n * (n + 1) * (2 * n + 1) / 24 - s.tie_term / 48);
  r.p_value = NormalTwoSidedP((z0 - Sign(z0) * 0.5) / sigma);
  const double mumin = x.front(), mumax = x.back();
  const double w_min = SignedRankZ(x, mumin, true);
  const double w_max = std::isfinite(w_min) ? SignedRankZ(x, mumax, true) : NAN;
  if (!std::isfinite(w_max)) {
    r.estimate = (mumin + mumax) / 2;
    r.ci_low = r.ci_high = NAN;
    r.confidence = 0;
    r.note = "all observations tied: no confidence interval";
    return r;
  }
  // Widen the interval's nominal alpha until both ends bracket a root, as R does.
  for (;;) {
    const double min_diff = w_min - Qnorm(alpha / 2, false);
    const double max_diff = w_max - Qnorm(alpha / 2, true);
    if (!(min_diff < 0 || max_diff > 0) || alpha / 2 >= 1) break;
    alpha *= 2;
  }
  if (alpha >= 1 || 1 - confidence < alpha * 0.75) {
    r.confidence = 1 - std::min(1.0, alpha);
    r.note = "requested confidence not achievable";
  }
  if (alpha < 1) {
    auto root = [&](double zq) {
      return Uniroot([&](double d) { return SignedRankZ(x, d, true) - zq; }, mumin, mumax,
                     w_min - zq, w_max - zq, kRootTolerance);
    };
    r.ci_low = root(Qnorm(alpha / 2, false));
    r.ci_high = root(Qnorm(alpha / 2, true));
  } else {
    r.ci_low = r.ci_high = SortedMedian(x);
  }
  auto w = [&](double d) { return SignedRankZ(x, d, false); };
  r.estimate = Uniroot(w, mumin, mumax, w(mumin), w(mumax), kRootTolerance);
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

double WilsonUpperBound(uint64_t successes, uint64_t trials, double confidence) {
  if (trials == 0) return 1;
  if (successes >= trials) return 1;
  const double n = static_cast<double>(trials);
  const double p = static_cast<double>(successes) / n;
  const double z = NormalQuantile(confidence);
  const double z22n = z * z / (2 * n);
  return (p + z22n + z * std::sqrt(p * (1 - p) / n + z22n / (2 * n))) / (1 + 2 * z22n);
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

}  // namespace sg::comparator
