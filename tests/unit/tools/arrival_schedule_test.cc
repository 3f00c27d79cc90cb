#include "tools/load/arrival_schedule.h"

#include <gtest/gtest.h>

namespace sg::load {
namespace {

using std::chrono::nanoseconds;

TEST(ArrivalScheduleTest, ConstantRateIsExactWithoutDrift) {
  ArrivalSchedule schedule(ArrivalProcess::kConstant, 3.0, 1);
  EXPECT_EQ(schedule.Next(), nanoseconds(0));
  EXPECT_EQ(schedule.Next(), nanoseconds(333333333));
  EXPECT_EQ(schedule.Next(), nanoseconds(666666667));
  for (int i = 3; i < 300000; ++i) schedule.Next();
  // Request 300000 is due at exactly 100000 s: no accumulated rounding error.
  EXPECT_EQ(schedule.Next(), nanoseconds(100000000000000));
}

TEST(ArrivalScheduleTest, PoissonHasTheRequestedMeanRateAndIsReproducible) {
  ArrivalSchedule a(ArrivalProcess::kPoisson, 200.0, 7);
  ArrivalSchedule b(ArrivalProcess::kPoisson, 200.0, 7);
  ArrivalSchedule c(ArrivalProcess::kPoisson, 200.0, 8);
  EXPECT_EQ(a.Next(), nanoseconds(0));
  b.Next();
  c.Next();
  nanoseconds last{0}, previous{0};
  int shorter_than_mean = 0;
  bool differs = false;
  constexpr int kCount = 20000;
  for (int i = 1; i < kCount; ++i) {
    last = a.Next();
    EXPECT_EQ(last, b.Next());
    differs |= last != c.Next();
    ASSERT_GE(last, previous);
    shorter_than_mean += (last - previous) < nanoseconds(5000000);
    previous = last;
  }
  EXPECT_TRUE(differs);
  double rate = (kCount - 1) / std::chrono::duration<double>(last).count();
  EXPECT_NEAR(rate, 200.0, 200.0 * 0.03);
  // Exponential gaps: P(gap < mean) = 1 - 1/e = 0.632; a constant schedule would give 0 or 1.
  EXPECT_NEAR(shorter_than_mean / double(kCount - 1), 0.632, 0.02);
}

}  // namespace
}  // namespace sg::load
