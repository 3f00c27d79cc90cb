// Known answers from R (tests/unit/comparator/make_vectors.R -> rank_test_vectors.txt).
#include "comparator/rank_tests.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace sg::comparator {
namespace {

std::vector<std::string> Fields(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string f;
  while (std::getline(ss, f, sep)) out.push_back(f);
  return out;
}

std::vector<double> Numbers(const std::string& csv) {
  std::vector<double> out;
  for (const auto& f : Fields(csv, ',')) out.push_back(std::stod(f));
  return out;
}

std::vector<std::vector<std::string>> Vectors(const std::string& kind) {
  std::ifstream in(sg::testing::SourceDir() / "tests/unit/comparator/rank_test_vectors.txt");
  EXPECT_TRUE(in) << "missing rank_test_vectors.txt";
  std::vector<std::vector<std::string>> out;
  std::string line;
  while (std::getline(in, line)) {
    auto f = Fields(line, '|');
    if (!f.empty() && f[0] == kind) out.push_back(f);
  }
  return out;
}

// Estimates and interval ends are R's uniroot (zeroin) iterates or order statistics, which the
// code reproduces operation by operation: they agree to rounding, far inside uniroot's 1e-4
// tolerance (which an independent root finder would only meet to about 1e-6 relative).
double RootTolerance(double expected) {
  return 1e-9 * std::max(1.0, std::fabs(expected));
}

// p-values to 1e-9 relative wherever R's value is above 1e-300; below that only "as tiny".
void ExpectPValue(double actual, double expected) {
  if (expected > 1e-300) {
    EXPECT_NEAR(actual, expected, 1e-9 * expected);
  } else {
    EXPECT_LE(actual, 1e-300);
    EXPECT_GE(actual, 0);
  }
}

void CheckCase(const std::vector<std::string>& f, const RankTestResult& r) {
  SCOPED_TRACE(f[1]);
  ASSERT_EQ(f.size(), 12u);
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.exact, f[10] == "1");
  EXPECT_EQ(r.statistic, std::stod(f[5]));
  ExpectPValue(r.p_value, std::stod(f[6]));
  EXPECT_NEAR(r.estimate, std::stod(f[7]), RootTolerance(std::stod(f[7])));
  EXPECT_NEAR(r.ci_low, std::stod(f[8]), RootTolerance(std::stod(f[8])));
  EXPECT_NEAR(r.ci_high, std::stod(f[9]), RootTolerance(std::stod(f[9])));
  EXPECT_NEAR(r.confidence, std::stod(f[11]), 1e-12);
}

const std::vector<std::string>* Find(const std::vector<std::vector<std::string>>& cases,
                                     const std::string& name) {
  for (const auto& f : cases) {
    if (f[1] == name) return &f;
  }
  return nullptr;
}

TEST(RankTests, MannWhitneyMatchesR) {
  const auto cases = Vectors("mw");
  ASSERT_GE(cases.size(), 19u);
  for (const auto& f : cases) {
    CheckCase(f, MannWhitney(Numbers(f[3]), Numbers(f[4]), std::stod(f[2])));
  }
}

TEST(RankTests, SignedRankMatchesR) {
  const auto cases = Vectors("sr");
  ASSERT_GE(cases.size(), 24u);
  for (const auto& f : cases) {
    CheckCase(f, SignedRank(Numbers(f[3]), Numbers(f[4]), std::stod(f[2])));
  }
}

// The fixture holds the cases the audit of issue 14 asked for, with R's method choice.
TEST(RankTests, FixtureCoversRsMethodChoices) {
  const auto sr = Vectors("sr"), mw = Vectors("mw");
  for (const auto& [name, exact] :
       std::vector<std::pair<std::string, bool>>{{"us_exact_49", true},
                                                 {"us_ties_30", false},
                                                 {"us_zeroes_20", false},
                                                 {"us_approx_50", false},
                                                 {"us_approx_49_and_a_zero", false},
                                                 {"us_10000_reservoir", false},
                                                 {"us_p_1e-50", false},
                                                 {"us_p_1e-200", false}}) {
    const auto* f = Find(sr, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ((*f)[10] == "1", exact) << name;
  }
  EXPECT_LT(std::stod((*Find(sr, "us_p_1e-200"))[6]), 1e-200);
  EXPECT_GT(std::stod((*Find(sr, "us_p_1e-200"))[6]), 1e-300);
  for (const auto& [name, exact] : std::vector<std::pair<std::string, bool>>{
           {"us_exact_49_49", true}, {"us_approx_50_49", false}, {"us_approx_49_50", false}}) {
    const auto* f = Find(mw, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ((*f)[10] == "1", exact) << name;
  }
}

// Differences tie and vanish only when they are equal in whole microseconds: 1 us over 5000 and
// over 6000 are one tie group (differencing milliseconds, 5.001 - 5 != 6.001 - 6, split it), and
// distinct differences one microsecond apart stay distinct.
TEST(RankTests, TiesAreExactEquality) {
  std::vector<double> y, x;
  for (int i = 0; i < 30; ++i) {
    y.push_back(5000 + 1000 * i);
    x.push_back(y.back() + 1 + i);  // differences 1, 2, ..., 30 us
  }
  RankTestResult r = SignedRank(x, y, 0.98);
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.statistic, 465);
  // R: wilcox.test(x, y, paired = TRUE)$p.value == 2 * psignrank(464, 30, lower.tail = FALSE)
  EXPECT_NEAR(r.p_value, 1.862645149230957e-09, 1e-18);
  x[1] = y[1] + 1;  // differences 1, 1, 3, ...: a tie, so the normal approximation
  r = SignedRank(x, y, 0.98);
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.statistic, 465);
  x[0] = y[0] - 1;  // differences -1, 1, 3, ...: |-1| and |1| share the average rank 1.5
  r = SignedRank(x, y, 0.98);
  EXPECT_EQ(r.statistic, 465 - 1.5);
  x[1] = y[1];  // -1, 0, 3, ...: the zero is dropped, and the test is no longer exact
  r = SignedRank(x, y, 0.98);
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.n_y, 29);
  EXPECT_EQ(r.statistic, 29.0 * 30 / 2 - 1);
}

TEST(RankTests, NormalTailsMatchPnorm) {
  const auto cases = Vectors("pnorm_upper");
  ASSERT_GE(cases.size(), 10u);
  for (const auto& f : cases) {
    const double x = std::stod(f[1]), upper = std::stod(f[2]);
    SCOPED_TRACE(f[1]);
    EXPECT_NEAR(NormalTwoSidedP(x), std::min(1.0, 2 * upper), 1e-12 * upper);
    EXPECT_NEAR(NormalTwoSidedP(-x), std::min(1.0, 2 * upper), 1e-12 * upper);
  }
  // 1 - Phi(z) would be 0 from z = 8.3 on.
  EXPECT_GT(NormalTwoSidedP(30), 0);
  EXPECT_EQ(NormalTwoSidedP(0), 1);
}

TEST(RankTests, WilsonMatchesPropTest) {
  // R: prop.test(x, n, correct = FALSE, alternative = "greater", conf.level = c)$conf.int[1]
  // and alternative = "less" ... $conf.int[2], printed with sprintf("%.17g").
  EXPECT_NEAR(WilsonLowerBound(980, 1000, 0.95), 0.97131816614898414, 1e-14);
  EXPECT_NEAR(WilsonUpperBound(50, 1000, 0.95), 0.062600203419609382, 1e-14);
  EXPECT_NEAR(WilsonLowerBound(9990, 10000, 0.99), 0.99794701792161822, 1e-14);
  EXPECT_NEAR(WilsonUpperBound(3, 200, 0.9), 0.030609957858329706, 1e-14);
  const auto cases = Vectors("wilson");
  ASSERT_GE(cases.size(), 5u);
  for (const auto& f : cases) {
    SCOPED_TRACE(f[1] + "/" + f[2]);
    const auto s = std::stoull(f[1]), n = std::stoull(f[2]);
    EXPECT_NEAR(WilsonLowerBound(s, n, std::stod(f[3])), std::stod(f[4]), 1e-14);
    EXPECT_NEAR(WilsonUpperBound(s, n, std::stod(f[3])), std::stod(f[5]), 1e-14);
  }
}

TEST(RankTests, ExactDistributionsMatchR) {
  for (const auto& f : Vectors("pwilcox")) {
    EXPECT_NEAR(WilcoxCdfForTest(std::stod(f[1]), std::stoi(f[2]), std::stoi(f[3])),
                std::stod(f[4]), 1e-12)
        << f[1];
  }
  for (const auto& f : Vectors("qwilcox")) {
    EXPECT_EQ(WilcoxQuantileForTest(std::stod(f[1]), std::stoi(f[2]), std::stoi(f[3])),
              std::stod(f[4]))
        << f[1];
  }
  for (const auto& f : Vectors("psignrank")) {
    EXPECT_NEAR(SignRankCdfForTest(std::stod(f[1]), std::stoi(f[2])), std::stod(f[3]), 1e-12)
        << f[1];
  }
  for (const auto& f : Vectors("qsignrank")) {
    EXPECT_EQ(SignRankQuantileForTest(std::stod(f[1]), std::stoi(f[2])), std::stod(f[3])) << f[1];
  }
  for (const auto& f : Vectors("qnorm")) {
    EXPECT_NEAR(NormalQuantile(std::stod(f[1])), std::stod(f[2]), 1e-9) << f[1];
  }
}

TEST(RankTests, DegenerateInputsAreNotErrors) {
  std::vector<double> empty, one = {1.0};
  EXPECT_FALSE(MannWhitney(empty, one, 0.98).valid);
  const std::vector<double> same = {3, 4, 5};
  const RankTestResult r = SignedRank(same, same, 0.98);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.estimate, 0);
  EXPECT_EQ(r.p_value, 1);
  // Every x - y difference equal (R's wilcox.test stops with an error): the shift is that value.
  const std::vector<double> threes = {3000, 3000}, five = {5000};
  const RankTestResult m = MannWhitney(threes, five, 0.95);
  EXPECT_TRUE(m.valid);
  EXPECT_FALSE(m.exact);
  EXPECT_EQ(m.estimate, -2000);
  EXPECT_EQ(m.ci_low, -2000);
  EXPECT_EQ(m.ci_high, -2000);
  // Everything tied (R's p-value is NA): no evidence of a shift.
  const RankTestResult t = MannWhitney(threes, threes, 0.95);
  EXPECT_TRUE(t.valid);
  EXPECT_EQ(t.p_value, 1);
  EXPECT_EQ(t.estimate, 0);
  // One distinct non-zero difference repeated: R's midrange, and no interval.
  const std::vector<double> x = {5003, 6003, 7003}, y = {5000, 6000, 7000};
  const RankTestResult s = SignedRank(x, y, 0.95);
  EXPECT_TRUE(s.valid);
  EXPECT_EQ(s.estimate, 3);
  EXPECT_TRUE(std::isnan(s.ci_low));
  EXPECT_EQ(s.confidence, 0);
}

TEST(RankTests, DetectsAShiftItWasGiven) {
  // A 2.0 shift on 400 pairs: the interval must contain it and exclude 0.
  std::vector<double> primary, shadow;
  uint64_t state = 7;
  for (int i = 0; i < 400; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const double noise = static_cast<double>(state >> 40) / static_cast<double>(1ULL << 24);
    primary.push_back(5 + 3 * noise);
    shadow.push_back(primary.back() + 2.0 + (noise - 0.5) * 0.2);
  }
  const RankTestResult r = SignedRank(shadow, primary, 0.98);
  EXPECT_LT(r.ci_low, 2.0);
  EXPECT_GT(r.ci_high, 2.0);
  EXPECT_GT(r.ci_low, 0.0);
  EXPECT_LT(r.p_value, 1e-10);
  const RankTestResult m = MannWhitney(shadow, primary, 0.98);
  EXPECT_NEAR(m.estimate, 2.0, 0.3);
}

}  // namespace
}  // namespace sg::comparator
