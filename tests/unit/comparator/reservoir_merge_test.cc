// LatencyStats::Merge's reservoir (docs/comparator.md, Merging): the concatenation while both
// reservoirs fit, otherwise a sample weighted by the pairs each side has seen.
//
// Every pair of side A is 1 ms slower on the shadow, every pair of B 1 ms faster, so all the
// absolute differences tie: Wilcoxon's V (the sum of the positive differences' ranks, R's
// statistic) is (pairs from A) x (n + 1) / 2, which shows how many of each the merged reservoir
// holds. R: wilcox.test(c(rep(1, 90), rep(-1, 10)))$statistic is 4545.

#include "comparator/latency_stats.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

LatencyStats Side(size_t capacity, int pairs, int64_t shadow_us, uint64_t seed) {
  LatencyStats s(capacity, seed);
  for (int i = 0; i < pairs; ++i) {
    s.Add(testing::MakePair(std::to_string(i), "{}", "{}", 5000, shadow_us));
  }
  return s;
}

TEST(ReservoirMerge, ReservoirsThatFitAreConcatenated) {
  LatencyStats a = Side(100, 30, 6000, 1);
  a.Merge(Side(100, 20, 4000, 2));
  const auto j = a.ToJson({});
  EXPECT_EQ(j["reservoir"]["size"], 50);
  EXPECT_EQ(j["reservoir"]["seen"], 50);
  EXPECT_DOUBLE_EQ(j["wilcoxon_signed_rank"]["statistic"].get<double>(), 30 * 51 / 2.0);
}

TEST(ReservoirMerge, ReservoirsThatDoNotFitAreSampledByPairsSeen) {
  // 900 pairs seen by A and 100 by B, each reservoir full at 100: the merge keeps 90 of A's and
  // 10 of B's, whatever the order of the merge.
  for (bool a_first : {true, false}) {
    LatencyStats a = Side(100, 900, 6000, 1);
    LatencyStats b = Side(100, 100, 4000, 2);
    LatencyStats& merged = a_first ? a : b;
    merged.Merge(a_first ? b : a);
    const auto j = merged.ToJson({});
    EXPECT_EQ(j["reservoir"]["size"], 100);
    EXPECT_EQ(j["reservoir"]["seen"], 1000);
    EXPECT_DOUBLE_EQ(j["wilcoxon_signed_rank"]["statistic"].get<double>(), 90 * 101 / 2.0)
        << "A merged " << (a_first ? "first" : "second");
  }
}

}  // namespace
}  // namespace sg::comparator
