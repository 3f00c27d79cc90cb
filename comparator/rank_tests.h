// Rank statistics for latency comparison, matching R 4.2's
//   wilcox.test(x, y, paired = TRUE/FALSE, conf.int = TRUE, correct = TRUE, exact = NULL,
//               conf.level = c, alternative = "two.sided")
// and prop.test's Wilson interval.
//
// Units: pass latencies as integer-valued doubles in MICROSECONDS (any exactly representable
// values work; integers keep x - y and every Walsh average exact). Ties and zero differences are
// detected by exact equality on those values, as R's rank() does: no epsilon merges distinct
// values or splits equal ones. Every output except the statistic is in the input's units.
//
// Method choice is R's: the signed-rank test is exact when there are fewer than 50 non-zero
// differences and no ties and no zeroes among them; the rank-sum test is exact when both samples
// have fewer than 50 observations and there are no ties. Otherwise the normal approximation with
// R's tie-corrected variance and continuity correction (0.5 * sign(z)) is used, and p-values are
// computed from the upper tail with erfc, so they stay accurate down to ~1e-300.
//
// Hodges-Lehmann estimates and intervals: exact case from the sorted Walsh averages (signed rank)
// or pairwise differences (rank sum) at R's qsignrank/qwilcox ranks, with R's adjustment of the
// level when the requested one is not achievable. Asymptotic case: the roots of the standardized
// statistic found by R's uniroot (Brent's zeroin, tol = 1e-4 absolute, maxiter = 1000) on R's
// interval [min, max] with R's function values, so the results are R's to the last bits rather
// than only to within uniroot's tolerance. Each statistic evaluation is O(n) on presorted data;
// the exact case (n < 50) alone builds the O(n^2) Walsh averages or differences.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sg::comparator {

// R's qnorm (Wichura's AS 241, as in R 4.2).
double NormalQuantile(double p);
// Two-sided p-value of a standard normal statistic z, accurate in the far tails (erfc); 1 for NaN.
double NormalTwoSidedP(double z);

// The exact null distributions MannWhitney and SignedRank use, lower tail, for the tests that
// check them against R's pwilcox/qwilcox and psignrank/qsignrank.
double WilcoxCdfForTest(double q, int m, int n);
double WilcoxQuantileForTest(double p, int m, int n);
double SignRankCdfForTest(double q, int n);
double SignRankQuantileForTest(double p, int n);

struct RankTestResult {
  bool valid = false;    // false when there are too few observations (see `note`)
  bool exact = false;    // exact distribution (true) or normal approximation
  double statistic = 0;  // W (rank sum of x minus its minimum) or V (sum of positive ranks)
  double p_value = 1;    // two-sided
  double estimate = 0;   // Hodges-Lehmann: location shift (x - y) or (pseudo)median of x - y
  double ci_low = 0;
  double ci_high = 0;
  double confidence = 0;  // the level of [ci_low, ci_high] (R's attr(conf.int, "conf.level"))
  int64_t n_x = 0;
  int64_t n_y = 0;  // Mann-Whitney: size of y; signed-rank: number of non-zero differences
  std::string note;
};

// Wilcoxon rank-sum / Mann-Whitney U test of x against y, shift = location of x minus y.
// REQUIRES: 0 < confidence < 1. Non-finite values are ignored.
RankTestResult MannWhitney(std::span<const double> x, std::span<const double> y, double confidence);

// Wilcoxon signed-rank test on the paired differences x[i] - y[i].
// REQUIRES: x.size() == y.size(), 0 < confidence < 1. Pairs with a non-finite difference are
// ignored.
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
