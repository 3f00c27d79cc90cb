#include "gateway/sampling.h"

#include <gtest/gtest.h>

#include <string>

namespace sg::gateway {
namespace {

TEST(SamplingTest, PercentToPpm) {
  EXPECT_EQ(PercentToPpm(0), 0u);
  EXPECT_EQ(PercentToPpm(-3), 0u);
  EXPECT_EQ(PercentToPpm(100), 1000000u);
  EXPECT_EQ(PercentToPpm(12.5), 125000u);
  EXPECT_EQ(PercentToPpm(0.0001), 1u);
}

TEST(SamplingTest, CounterIsExactOverEveryWindow) {
  for (double percent : {0.0, 0.1, 1.0, 12.5, 33.3, 50.0, 99.9, 100.0}) {
    uint64_t ppm = PercentToPpm(percent);
    uint64_t selected = 0;
    const uint64_t n = 100000;
    for (uint64_t i = 0; i < n; ++i) selected += CounterSelected(i, ppm) ? 1 : 0;
    // Exact to one request: floor(n * p).
    EXPECT_EQ(selected, n * ppm / 1000000) << percent;
  }
}

TEST(SamplingTest, HashIsConsistentAndAccurate) {
  uint64_t ppm = PercentToPpm(20);
  int selected = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    std::string key = "user-" + std::to_string(i);
    bool first = HashSelected(key, ppm);
    EXPECT_EQ(first, HashSelected(key, ppm));  // the same key, the same answer
    selected += first ? 1 : 0;
    // Raising the percent only adds keys.
    if (first) {
      EXPECT_TRUE(HashSelected(key, PercentToPpm(30)));
    }
  }
  EXPECT_NEAR(selected / double(n), 0.20, 0.01);
}

TEST(SamplingTest, BodySampleIsConsistentAccurateAndIndependentOfHashSampling) {
  const uint64_t tenth = PercentToPpm(10), percent = PercentToPpm(1);
  int bodies = 0, mirrored = 0, both = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const std::string id = "req-" + std::to_string(i);
    const bool body = BodySampled(id, percent);
    EXPECT_EQ(body, BodySampled(id, percent));  // the same id, the same answer on every mirror
    if (body) {
      EXPECT_TRUE(BodySampled(id, tenth));  // a larger share only adds ids
    }
    const bool mirror = HashSelected(id, tenth);  // a mirror hash-sampling on the same key
    bodies += body;
    mirrored += mirror;
    both += body && mirror;
  }
  EXPECT_NEAR(bodies / double(n), 0.01, 0.001);
  // Of the requests a mirror took by the same key, still 1% keep their body, not 10%.
  EXPECT_NEAR(both / double(mirrored), 0.01, 0.003);
  EXPECT_TRUE(BodySampled("x", PercentToPpm(100)));
  EXPECT_FALSE(BodySampled("x", 0));
}

TEST(SamplingTest, SamplerFallsBackToCounterWithoutKey) {
  MirrorSampler hash(true);
  int selected = 0;
  for (int i = 0; i < 1000; ++i) selected += hash.Sample(PercentToPpm(10), "") ? 1 : 0;
  EXPECT_EQ(selected, 100);
  MirrorSampler counter(false);
  EXPECT_TRUE(counter.Sample(PercentToPpm(100), "k"));
  EXPECT_FALSE(counter.Sample(0, "k"));
  // With a key, hash sampling answers the same for the same key.
  bool a = hash.Sample(PercentToPpm(50), "key-1");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(hash.Sample(PercentToPpm(50), "key-1"), a);
}

}  // namespace
}  // namespace sg::gateway
