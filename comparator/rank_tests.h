// Rank statistics for latency comparison, matching R's wilcox.test(..., conf.int = TRUE,
// correct = TRUE, alternative = "two.sided") and prop.test's Wilson interval.
//
// Exact distributions are used where R uses them (fewer than 50 observations per sample and no
// ties or zeroes); otherwise the normal approximation with tie and continuity corrections, and the
// Hodges-Lehmann confidence interval found as the root of the standardized statistic, as R does.
// R finds its roots with uniroot(tol = 1e-4); these functions bisect to ~1e-12 of the range, so
// results agree with R's to about 1e-4 in the asymptotic case and exactly in the exact case.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sg::comparator {

// Standard normal distribution function and its inverse.
double NormalCdf(double x);
double NormalQuantile(double p);

// Exact null distributions (R's pwilcox/qwilcox and psignrank/qsignrank, lower tail).
double WilcoxCdf(double q, int m, int n);
double WilcoxQuantile(double p, int m, int n);
double SignRankCdf(double q, int n);
double SignRankQuantile(double p, int n);

struct RankTestResult {
  bool valid = false;    // false when there are too few observations (see `note`)
  bool exact = false;    // exact distribution (true) or normal approximation
  double statistic = 0;  // W (rank sum of x minus its minimum) or V (sum of positive ranks)
  double p_value = 1;    // two-sided
  double estimate = 0;   // Hodges-Lehmann: location shift (x - y) or (pseudo)median of x - y
  double ci_low = 0;
  double ci_high = 0;
  double confidence = 0;  // the level of [ci_low, ci_high]
  int64_t n_x = 0;
  int64_t n_y = 0;  // Mann-Whitney: size of y; signed-rank: number of non-zero differences
  std::string note;
};

// Wilcoxon rank-sum / Mann-Whitney U test of x against y, shift = location of x minus y.
// REQUIRES: 0 < confidence < 1. Non-finite values are ignored.
RankTestResult MannWhitney(std::span<const double> x, std::span<const double> y, double confidence);

// Wilcoxon signed-rank test on the paired differences x[i] - y[i].
// REQUIRES: x.size() == y.size(), 0 < confidence < 1.
RankTestResult SignedRank(std::span<const double> x, std::span<const double> y, double confidence);

// One-sided Wilson score lower bound for a proportion at `confidence` (z = NormalQuantile(c)),
// equal to R's prop.test(successes, trials, correct = FALSE, alternative = "greater").
// Returns 0 when trials == 0.
double WilsonLowerBound(uint64_t successes, uint64_t trials, double confidence);
double WilsonUpperBound(uint64_t successes, uint64_t trials, double confidence);

// One-sided Wald bounds for the difference of two paired proportions (p_x - p_y) from the
// discordant counts: x_only = pairs where only x succeeded, y_only = only y, n = all pairs.
// d = (x_only - y_only) / n, se = sqrt(x_only + y_only - (x_only - y_only)^2 / n) / n, and
// low/high = d -/+ NormalQuantile(confidence) * se. Both 0 when n == 0.
struct PairedInterval {
  double estimate = 0;
  double low = 0;
  double high = 0;
};
PairedInterval PairedDifferenceInterval(uint64_t x_only, uint64_t y_only, uint64_t n,
                                        double confidence);

}  // namespace sg::comparator
