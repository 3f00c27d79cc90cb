// Known answers from R (tests/unit/comparator/make_vectors.R -> rank_test_vectors.txt).
#include "comparator/rank_tests.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
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

// R's uniroot(tol = 1e-4) in the asymptotic case; exact cases agree to rounding.
double Tolerance(bool exact, double expected) {
  return exact ? 1e-9 * std::max(1.0, std::fabs(expected)) : 3e-4;
}

void CheckCase(const std::vector<std::string>& f, const RankTestResult& r) {
  SCOPED_TRACE(f[1]);
  const bool exact = f[10] == "1";
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.exact, exact);
  EXPECT_NEAR(r.statistic, std::stod(f[5]), 1e-9);
  const double p = std::stod(f[6]);
  EXPECT_NEAR(r.p_value, p, 1e-9 + 1e-7 * p);
  EXPECT_NEAR(r.estimate, std::stod(f[7]), Tolerance(exact, std::stod(f[7])));
  EXPECT_NEAR(r.ci_low, std::stod(f[8]), Tolerance(exact, std::stod(f[8])));
  EXPECT_NEAR(r.ci_high, std::stod(f[9]), Tolerance(exact, std::stod(f[9])));
}

TEST(RankTests, MannWhitneyMatchesR) {
  const auto cases = Vectors("mw");
  ASSERT_GE(cases.size(), 7u);
  for (const auto& f : cases) {
    CheckCase(f, MannWhitney(Numbers(f[3]), Numbers(f[4]), std::stod(f[2])));
  }
}

TEST(RankTests, SignedRankMatchesR) {
  const auto cases = Vectors("sr");
  ASSERT_GE(cases.size(), 5u);
  for (const auto& f : cases) {
    CheckCase(f, SignedRank(Numbers(f[3]), Numbers(f[4]), std::stod(f[2])));
  }
}

TEST(RankTests, WilsonMatchesPropTest) {
  const auto cases = Vectors("wilson");
  ASSERT_GE(cases.size(), 5u);
  for (const auto& f : cases) {
    SCOPED_TRACE(f[1] + "/" + f[2]);
    const auto s = std::stoull(f[1]), n = std::stoull(f[2]);
    EXPECT_NEAR(WilsonLowerBound(s, n, std::stod(f[3])), std::stod(f[4]), 1e-12);
    EXPECT_NEAR(WilsonUpperBound(s, n, std::stod(f[3])), std::stod(f[5]), 1e-12);
  }
}

TEST(RankTests, ExactDistributionsMatchR) {
  for (const auto& f : Vectors("pwilcox")) {
    EXPECT_NEAR(WilcoxCdf(std::stod(f[1]), std::stoi(f[2]), std::stoi(f[3])), std::stod(f[4]),
                1e-12)
        << f[1];
  }
  for (const auto& f : Vectors("qwilcox")) {
    EXPECT_EQ(WilcoxQuantile(std::stod(f[1]), std::stoi(f[2]), std::stoi(f[3])), std::stod(f[4]))
        << f[1];
  }
  for (const auto& f : Vectors("psignrank")) {
    EXPECT_NEAR(SignRankCdf(std::stod(f[1]), std::stoi(f[2])), std::stod(f[3]), 1e-12) << f[1];
  }
  for (const auto& f : Vectors("qsignrank")) {
    EXPECT_EQ(SignRankQuantile(std::stod(f[1]), std::stoi(f[2])), std::stod(f[3])) << f[1];
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
