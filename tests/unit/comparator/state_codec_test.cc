// The exact state codec (comparator/state_codec.h): every aggregate round-trips through JSON
// text into an equal state (operator== / SameState), the reservoir's random state included (the
// decoded copy samples exactly as the original goes on to), and a whole Comparison decoded from
// its state reports and continues exactly as the original.
#include "comparator/state_codec.h"

#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/comparison.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

constexpr int64_t kDay = int64_t{86400} * 1'000'000;

std::shared_ptr<CompareConfig> Config(bool noise) {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "auto";
  r.kind = CompareKind::kAuto;
  c->rules.push_back(r);
  c->reservoir_size = 40;  // overflows: the sampling's random state matters
  c->max_examples = 4;
  c->window = std::chrono::seconds(1);
  if (noise) c->noise_floor.mirror = "noise";
  return c;
}

// Classifications, scores, JSON, errors, timeouts, odd bytes, labels and true scores over three
// days and two mirrors (one of them the noise floor's).
std::vector<PairRecord> Pairs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<PairRecord> out;
  for (int i = 0; i < n; ++i) {
    const int kind = static_cast<int>(rng() % 6);
    const double p = 0.5 + static_cast<double>(rng() % 50) / 100;
    std::string primary, shadow;
    if (kind <= 2) {
      primary = json{{"Coat", p}, {"Bag", 1 - p}}.dump();
      shadow = kind == 0 ? json{{"Bag", p}, {"Coat", 1 - p}}.dump()
                         : json{{"Coat", p - 0.001 * kind}, {"Bag", 1 - p}}.dump();
    } else if (kind == 3) {
      primary = json{{"score", p}}.dump();
      shadow = json{{"score", p + 0.01}}.dump();
    } else {
      primary = R"({"items": [1, 2.5], "name": "x"})";
      shadow = kind == 4 ? std::string("\xff\xfe not json") : primary;
    }
    PairRecord pair = MakePair("s" + std::to_string(seed) + "-" + std::to_string(i), primary,
                               shadow, 1000 + static_cast<int64_t>(rng() % 30000),
                               1000 + static_cast<int64_t>(rng() % 60000));
    pair.ts_us = 1795000000000000 + static_cast<int64_t>(rng() % (3 * kDay));
    pair.mirror = rng() % 5 == 0 ? "noise" : "student";
    pair.route = rng() % 3 ? "classify" : "score";
    pair.request.size = rng() % 300000;
    pair.request.headers["x-true-label"] = rng() % 2 ? "Coat" : "Bag";
    pair.request.headers["x-true-score"] = std::to_string(p);
    if (rng() % 20 == 0) {
      pair.shadow.outcome = "shadow_timeout";
      pair.shadow.status = 0;
    }
    out.push_back(std::move(pair));
  }
  return out;
}

MirrorCounters Counters(const std::string& instance, int64_t ts, uint64_t requests) {
  MirrorCounters m;
  m.ts_us = ts;
  m.instance = instance;
  m.route = "classify";
  m.mirror = "student";
  m.requests = requests;
  m.not_mirrored = {{"sampled_out", 1}, {"overload", 2}};
  m.mirrored = {{"ok", requests - 3}};
  return m;
}

// Through the text, as a checkpoint stores it.
template <typename T>
void RoundTrip(const T& original, T* decoded) {
  const std::string text = StateCodec::Encode(original).dump();
  StateCodec::Decode(json::parse(text), decoded);
  EXPECT_EQ(StateCodec::Encode(*decoded).dump(), text);
}

TEST(StateCodec, EveryAggregateRoundTripsToAnEqualState) {
  auto config = Config(false);
  const auto pairs = Pairs(300, 1);
  OutcomeStats outcomes(64, 200), outcomes2(64, 200);
  LatencyStats latency(40, 7), latency2(40, 7);
  ClassificationStats classes({0.05, 0.1}, 64), classes2({0.05, 0.1}, 64);
  ScoreStats scores, scores2;
  EmbeddingStats embeddings, embeddings2;
  SliceMap slices(64), slices2(64);
  Timeline timeline(1'000'000), timeline2(1'000'000);
  RunTimeline run(30, 2), run2(30, 2);  // small bounds: some windows and pairs are dropped
  WorstExamples examples(*config), examples2(*config);
  Coverage coverage, coverage2;
  SparseHistogram sparse, sparse2;
  for (const auto& pair : pairs) {
    const PairJudgement j = JudgePair(*config, pair);
    outcomes.Add(pair, j);
    latency.Add(pair);
    if (j.classification) classes.Add(*j.classification, "Coat");
    if (j.regression) scores.Add(*j.regression, 0.7);
    slices.At(pair.route).Add(pair, j, "Coat");
    timeline.At(pair.ts_us).Add(pair, j, "");
    timeline.Bound();
    run.Add(pair, j, "");
    examples.Consider(pair, j);
    sparse.Record(pair.shadow.latency_us);
  }
  EmbeddingMetrics e;
  e.cosine = 0.1 + 1.0 / 3;
  e.rel_l2 = 0.2;
  embeddings.Add(e);
  outcomes.AddMalformed("invalid JSON");
  for (int d = 0; d < 3; ++d) {
    coverage.Add(Counters("h:1:1", 1795000000000000 + d * kDay, 100 * (d + 1)));
    run.AddCounters(Counters("h:1:1", 1795000000000000 + d * kDay, 100 * (d + 1)));
  }
  ASSERT_GT(run.days().dropped(), 0u);
  ASSERT_GT(StateCodec::Encode(latency)["reservoir_seen"].get<uint64_t>(), 40u);

  RoundTrip(outcomes, &outcomes2);
  EXPECT_EQ(outcomes2, outcomes);
  RoundTrip(latency, &latency2);
  EXPECT_TRUE(latency2.SameState(latency));
  RoundTrip(classes, &classes2);
  EXPECT_EQ(classes2, classes);
  RoundTrip(scores, &scores2);
  EXPECT_EQ(scores2, scores);
  RoundTrip(embeddings, &embeddings2);
  EXPECT_EQ(embeddings2, embeddings);
  RoundTrip(slices, &slices2);
  EXPECT_EQ(slices2, slices);
  RoundTrip(timeline, &timeline2);
  EXPECT_EQ(timeline2, timeline);
  RoundTrip(run, &run2);
  EXPECT_TRUE(run2.SameState(run));
  RoundTrip(examples, &examples2);
  EXPECT_EQ(examples2, examples);
  RoundTrip(coverage, &coverage2);
  EXPECT_TRUE(coverage2.SameState(coverage));
  RoundTrip(sparse, &sparse2);
  EXPECT_EQ(sparse2, sparse);

  // The reservoir goes on sampling as the original does (its random state was kept).
  for (const auto& pair : Pairs(200, 2)) {
    latency.Add(pair);
    latency2.Add(pair);
  }
  EXPECT_TRUE(latency2.SameState(latency));
}

TEST(StateCodec, ADecodedComparisonReportsAndContinuesExactlyAsTheOriginal) {
  for (bool noise : {false, true}) {
    auto config = Config(noise);
    Comparison original(config);
    for (const auto& pair : Pairs(500, 3)) original.Add(pair);
    original.AddCounters(Counters("h:1:1", 1795000000000000, 400));
    original.AddMalformed("truncated line");
    const std::string text = StateCodec::Encode(original).dump();

    Comparison decoded(config);
    std::string error;
    ASSERT_TRUE(DecodeComparisonState(json::parse(text), &decoded, &error)) << error;
    EXPECT_TRUE(decoded.SameState(original));
    EXPECT_EQ(decoded.ToJson(), original.ToJson());
    EXPECT_EQ(StateCodec::Encode(decoded).dump(), text);

    // Both go on with the same pairs: still the same state, to the last bit of every sum.
    for (const auto& pair : Pairs(300, 4)) {
      original.Add(pair);
      decoded.Add(pair);
    }
    EXPECT_EQ(StateCodec::Encode(decoded).dump(), StateCodec::Encode(original).dump());
    EXPECT_EQ(decoded.ToJson(), original.ToJson());
  }
}

TEST(StateCodec, AStateItCannotReadIsAnErrorNotACrash) {
  auto config = Config(true);
  Comparison c(config);
  for (const auto& pair : Pairs(50, 5)) c.Add(pair);
  const json good = StateCodec::Encode(c);
  std::string error;
  Comparison target(config);
  json missing = good;
  missing.erase("latency");
  EXPECT_FALSE(DecodeComparisonState(missing, &target, &error));
  EXPECT_NE(error.find("latency"), std::string::npos) << error;
  json wrong_type = good;
  wrong_type["outcomes"]["pairs"] = "many";
  EXPECT_FALSE(DecodeComparisonState(wrong_type, &target, &error));
  // A state from a config without the noise floor does not fit this one.
  Comparison plain(Config(false));
  EXPECT_FALSE(DecodeComparisonState(StateCodec::Encode(plain), &target, &error));
  EXPECT_NE(error.find("noise floor"), std::string::npos) << error;
  json bad_bucket = good;
  bad_bucket["latency"]["primary"]["buckets"] = json::array({json::array({1u << 30, 1})});
  EXPECT_FALSE(DecodeComparisonState(bad_bucket, &target, &error));
}

}  // namespace
}  // namespace sg::comparator
