#include "comparator/pair_judge.h"

#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

CompareRule Rule(CompareKind kind) {
  CompareRule r;
  r.name.assign(1, 'r');  // (assigning a literal trips a GCC 12 -Wrestrict false positive)
  r.kind = kind;
  return r;
}

JsonPathPattern Path(const std::string& text) {
  JsonPathPattern p;
  std::string error;
  EXPECT_TRUE(ParseJsonPath(text, &p, &error)) << error;
  return p;
}

CompareConfig ConfigWith(CompareRule rule) {
  CompareConfig c;
  c.rules.push_back(std::move(rule));
  return c;
}

TEST(ParseDistribution, AcceptsTorchServeShapes) {
  auto d = ParseDistribution(json::parse(R"({"Bag": 0.1, "Coat": 0.8, "Shirt": 0.1})"), {});
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)[0].first, "Coat");
  EXPECT_EQ((*d)[1].first, "Bag");  // ties by label
  d = ParseDistribution(json::parse(R"([{"a": 0.4, "b": 0.6}])"), {});
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)[0].first, "b");
  d = ParseDistribution(json::parse("[0.1, 0.7, 0.2]"), {"x", "y", "z"});
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)[0].first, "y");
  d = ParseDistribution(json::parse("[0.1, 0.7, 0.2]"), {});
  EXPECT_EQ((*d)[0].first, "1");
  EXPECT_FALSE(ParseDistribution(json::parse(R"({"a": "x"})"), {}));
  EXPECT_FALSE(ParseDistribution(json::parse("[]"), {}));
  EXPECT_FALSE(ParseDistribution(json::parse("3"), {}));
}

TEST(CompareDistributions, KnownAnswers) {
  // P = (a .7, b .2, c .1), Q = (b .5, a .4, d .1). JS distance computed independently
  // (sqrt of base-2 JS divergence over labels a, b, c, d).
  Distribution p = {{"a", 0.7}, {"b", 0.2}, {"c", 0.1}};
  Distribution q = {{"b", 0.5}, {"a", 0.4}, {"d", 0.1}};
  auto m = CompareDistributions(p, q, 3);
  EXPECT_EQ(m.primary_top1, "a");
  EXPECT_EQ(m.shadow_top1, "b");
  EXPECT_FALSE(m.top1_agree);
  EXPECT_NEAR(m.primary_margin, 0.5, 1e-12);
  EXPECT_NEAR(m.topk_overlap, 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.max_abs_diff, 0.3, 1e-12);
  EXPECT_NEAR(m.total_variation, 0.4, 1e-12);
  EXPECT_NEAR(m.js_distance, 0.4216570092756991, 1e-12);
  EXPECT_NEAR(CompareDistributions(p, q, 2).topk_overlap, 1.0, 1e-12);

  m = CompareDistributions({{"a", 0.7}, {"b", 0.2}, {"c", 0.1}},
                           {{"a", 0.6}, {"b", 0.3}, {"c", 0.1}}, 5);
  EXPECT_TRUE(m.top1_agree);
  EXPECT_NEAR(m.js_distance, 0.10019734293448772, 1e-12);
  EXPECT_NEAR(m.total_variation, 0.1, 1e-12);

  // Top-k lists: the unlisted mass (0.2 each) is one "rest" label.
  m = CompareDistributions({{"a", 0.5}, {"b", 0.3}}, {{"a", 0.45}, {"c", 0.35}}, 2);
  EXPECT_NEAR(m.js_distance, 0.5709199419889427, 1e-12);
  EXPECT_NEAR(m.total_variation, 0.5 * (0.05 + 0.3 + 0.35), 1e-12);
  EXPECT_NEAR(m.topk_overlap, 0.5, 1e-12);

  m = CompareDistributions(p, p, 5);
  EXPECT_EQ(m.js_distance, 0);
  EXPECT_EQ(m.max_abs_diff, 0);
}

TEST(CompareValues, RegressionKnownAnswers) {
  auto m = CompareValues({1, 2, 4}, {1.5, 2, 1}, 0, 0);
  EXPECT_NEAR(m.mae, (0.5 + 0 + 3) / 3, 1e-12);
  EXPECT_NEAR(m.rmse, std::sqrt((0.25 + 9) / 3), 1e-12);
  EXPECT_NEAR(m.max_error, 3, 1e-12);
  EXPECT_NEAR(m.max_rel_error, 0.75, 1e-12);
  EXPECT_FALSE(m.within);
  EXPECT_TRUE(CompareValues({100, 10}, {101, 10.05}, 0.05, 0.01).within);  // 1 <= .05 + 1
  EXPECT_FALSE(CompareValues({100, 10}, {101.2, 10}, 0.05, 0.01).within);  // 1.2 > 1.05
}

TEST(CompareEmbeddings, KnownAnswers) {
  auto m = CompareEmbeddings({1, 0}, {0, 1});
  EXPECT_NEAR(m.cosine, 0, 1e-12);
  EXPECT_NEAR(m.rel_l2, std::sqrt(2.0), 1e-12);
  m = CompareEmbeddings({3, 4}, {6, 8});
  EXPECT_NEAR(m.cosine, 1, 1e-12);
  EXPECT_NEAR(m.rel_l2, 1, 1e-12);
}

TEST(JsonPath, ParsesAndMatches) {
  auto p = Path("$.items[*].id");
  ASSERT_EQ(p.segments.size(), 3u);
  using Seg = JsonPathPattern::Segment;
  std::vector<Seg> concrete = {
      {false, false, "items", 0}, {true, false, "", 7}, {false, false, "id", 0}};
  EXPECT_TRUE(PathMatches(p, concrete));
  EXPECT_FALSE(PathMatches(Path("$.items[6].id"), concrete));
  EXPECT_TRUE(PathMatches(Path("$.items[7].id"), concrete));
  EXPECT_TRUE(PathMatches(Path("$.*[*].id"), concrete));
  EXPECT_FALSE(PathMatches(Path("$.items"), concrete));
  EXPECT_TRUE(PathMatches(Path("$['items'][*]['id']"), concrete));
  JsonPathPattern bad;
  std::string error;
  EXPECT_FALSE(ParseJsonPath("items", &bad, &error));
  EXPECT_FALSE(ParseJsonPath("$.a[", &bad, &error));
  EXPECT_FALSE(ParseJsonPath("$.a[x]", &bad, &error));
  EXPECT_FALSE(ParseJsonPath("$..a", &bad, &error));
}

TEST(DiffJson, IgnoresTolerancesAndReportsPaths) {
  CompareRule rule = Rule(CompareKind::kJson);
  rule.ignore = {Path("$.timestamp"), Path("$.items[*].id")};
  rule.tolerances.push_back({Path("$.items[*].score"), 0.01, 0});
  auto p = json::parse(R"({"timestamp": 1, "items": [{"id": 1, "score": 0.5, "name": "a"},
                                                   {"id": 2, "score": 0.25, "name": "b"}],
                           "total": 2})");
  auto s = json::parse(R"({"timestamp": 9, "items": [{"id": 7, "score": 0.505, "name": "a"},
                                                   {"id": 8, "score": 0.3, "name": "c"}],
                           "total": 2, "extra": true})");
  JsonDiff d = DiffJson(p, s, rule);
  EXPECT_TRUE(d.used_tolerance);
  // Object keys are visited in sorted order.
  std::vector<std::string> want = {"$.items[*].name", "$.items[*].score", "$.extra"};
  EXPECT_EQ(d.fields, want);
  // Array length differences and type differences.
  d = DiffJson(json::parse("[1, 2]"), json::parse("[1, 2, 3]"), rule);
  EXPECT_EQ(d.fields, std::vector<std::string>{"$[*]"});
  d = DiffJson(json::parse(R"({"a": 1})"), json::parse(R"({"a": "1"})"), rule);
  EXPECT_EQ(d.fields, std::vector<std::string>{"$.a"});
  // Relative tolerance from the rule default.
  rule.rel = 0.01;
  d = DiffJson(json::parse(R"({"v": 200})"), json::parse(R"({"v": 201.9})"), rule);
  EXPECT_TRUE(d.fields.empty());
  d = DiffJson(json::parse(R"({"v": 200})"), json::parse(R"({"v": 202.1})"), rule);
  EXPECT_EQ(d.fields.size(), 1u);
}

TEST(DiffJson, NanPolicy) {
  CompareRule rule = Rule(CompareKind::kJson);
  auto p = ParseBodyJson(R"({"x": NaN, "y": Infinity, "z": -Infinity, "s": "NaN"})");
  auto s = ParseBodyJson(R"({"x": NaN, "y": Infinity, "z": -Infinity, "s": "NaN"})");
  ASSERT_TRUE(p && s);
  EXPECT_TRUE(DiffJson(*p, *s, rule).fields.empty());
  rule.nan = NanPolicy::kMismatch;
  std::vector<std::string> want = {"$.x", "$.y", "$.z"};
  EXPECT_EQ(DiffJson(*p, *s, rule).fields, want);
  rule.nan = NanPolicy::kEqual;
  auto s2 = ParseBodyJson(R"({"x": 1, "y": -Infinity, "z": -Infinity, "s": "NaN"})");
  want = {"$.x", "$.y"};
  EXPECT_EQ(DiffJson(*p, *s2, rule).fields, want);
  EXPECT_FALSE(ParseBodyJson("{not json"));
}

TEST(JudgePair, OutcomesFromTransport) {
  auto config = ConfigWith(Rule(CompareKind::kClassification));
  auto pair = MakePair("1", R"({"a": 0.9, "b": 0.1})", R"({"a": 0.9, "b": 0.1})");
  EXPECT_EQ(JudgePair(config, pair).outcome, Outcome::kMatch);
  auto p = pair;
  p.primary.outcome = "timeout";
  p.primary.status = 0;
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kPrimaryError);
  p = pair;
  p.shadow.outcome = "shadow_timeout";
  p.shadow.status = 0;
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kShadowTimeout);
  p.shadow.outcome = "connect_failed";
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kShadowError);
  p = pair;
  p.shadow.status = 404;
  auto j = JudgePair(config, p);
  EXPECT_EQ(j.outcome, Outcome::kMismatch);
  EXPECT_EQ(j.fields, std::vector<std::string>{"status"});
  // A 5xx where the primary did not fail is the candidate failing: an error, not a mismatch.
  p.shadow.status = 503;
  j = JudgePair(config, p);
  EXPECT_EQ(j.outcome, Outcome::kShadowError);
  EXPECT_EQ(j.reason, "shadow answered 503, primary 200");
  p.primary.status = 500;
  p.shadow.status = 503;
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kMismatch);
  p = pair;
  p.shadow.body_truncated = true;
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kUnparseable);
  p = pair;
  p.shadow.body = "<html>oops</html>";
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kUnparseable);
  p = pair;
  p.primary.status = p.shadow.status = 404;
  p.shadow.body = "different error text";
  EXPECT_EQ(JudgePair(config, p).outcome, Outcome::kMatch);
}

TEST(JudgePair, ClassificationTolerance) {
  CompareRule rule = Rule(CompareKind::kClassification);
  rule.max_prob_diff = 0.05;
  auto config = ConfigWith(rule);
  auto j =
      JudgePair(config, MakePair("1", R"({"a": 0.90, "b": 0.10})", R"({"a": 0.86, "b": 0.14})"));
  EXPECT_EQ(j.outcome, Outcome::kWithinTolerance);
  ASSERT_TRUE(j.classification);
  EXPECT_NEAR(j.classification->max_abs_diff, 0.04, 1e-12);
  j = JudgePair(config, MakePair("2", R"({"a": 0.90, "b": 0.10})", R"({"a": 0.80, "b": 0.20})"));
  EXPECT_EQ(j.outcome, Outcome::kMismatch);
  EXPECT_EQ(j.fields, std::vector<std::string>{"probabilities"});
  j = JudgePair(config, MakePair("3", R"({"a": 0.6, "b": 0.4})", R"({"a": 0.4, "b": 0.6})"));
  EXPECT_EQ(j.outcome, Outcome::kMismatch);
  EXPECT_EQ(j.fields, std::vector<std::string>{"top1"});
  // Header comparison when configured.
  config.rules[0].compare_headers = {"content-type"};
  auto pair = MakePair("4", R"({"a": 1})", R"({"a": 1})");
  pair.shadow.headers["content-type"] = "text/plain";
  j = JudgePair(config, pair);
  EXPECT_EQ(j.outcome, Outcome::kMismatch);
  EXPECT_EQ(j.fields, std::vector<std::string>{"header:content-type"});
}

TEST(JudgePair, FlatReaderAndJsonParserAgree) {
  // Flat {"label": p} bodies take a fast reader; escapes, nesting, NaN and duplicates take the
  // JSON parser. Both must give the same judgement.
  CompareRule rule = Rule(CompareKind::kClassification);
  auto config = ConfigWith(rule);
  auto fast =
      JudgePair(config, MakePair("1", R"({"a b": 0.7, "c": 0.3})", R"([{"a b": 0.6, "c": 0.4}])"));
  auto slow = JudgePair(
      config, MakePair("2", R"( [ { "a b" : 7e-1 , "c" : 0.3 } ] )", R"({"a b": 0.6, "c": 0.4})"));
  ASSERT_TRUE(fast.classification && slow.classification);
  EXPECT_EQ(fast.outcome, slow.outcome);
  EXPECT_DOUBLE_EQ(fast.classification->js_distance, slow.classification->js_distance);
  EXPECT_DOUBLE_EQ(fast.classification->max_abs_diff, 0.1);
  auto escaped =
      JudgePair(config, MakePair("3", R"({"a\"b": 0.9, "c": 0.1})", R"({"a\"b": 0.9, "c": 0.10})"));
  ASSERT_TRUE(escaped.classification);
  EXPECT_EQ(escaped.classification->primary_top1, "a\"b");
  EXPECT_EQ(escaped.outcome, Outcome::kMatch);
  // Duplicate keys: the JSON parser keeps the last value.
  auto dup = JudgePair(
      config, MakePair("4", R"({"a": 0.1, "a": 0.9, "b": 0.1})", R"({"a": 0.9, "b": 0.1})"));
  EXPECT_EQ(dup.outcome, Outcome::kMatch);
  // Trailing garbage is not a distribution: from the shadow, an unreadable answer; from the
  // primary, nothing to judge against (left out like a primary failure, unless identical).
  EXPECT_EQ(JudgePair(config, MakePair("5", R"({"a": 1})", R"({"a": 1} x)")).outcome,
            Outcome::kUnparseable);
  EXPECT_EQ(JudgePair(config, MakePair("6", R"({"a": 1})", R"({"a": 1)")).outcome,
            Outcome::kUnparseable);
  EXPECT_EQ(JudgePair(config, MakePair("5p", R"({"a": 1} x)", R"({"a": 1})")).outcome,
            Outcome::kPrimaryError);
  EXPECT_EQ(JudgePair(config, MakePair("6p", R"({"a": 1)", R"({"a": 1)")).outcome, Outcome::kMatch);
  // Probability arrays with labels.
  config.rules[0].labels = {"x", "y"};
  auto arr = JudgePair(config, MakePair("7", "[0.2, 0.8]", "[0.22, 0.78]"));
  ASSERT_TRUE(arr.classification);
  EXPECT_EQ(arr.classification->primary_top1, "y");
  EXPECT_EQ(arr.outcome, Outcome::kWithinTolerance);
}

TEST(JudgePair, RegressionEmbeddingExactAndField) {
  CompareRule reg = Rule(CompareKind::kRegression);
  reg.abs = 0.01;
  reg.field = Path("$.predictions");
  reg.field_text = "$.predictions";
  auto config = ConfigWith(reg);
  EXPECT_EQ(JudgePair(config, MakePair("1", R"({"predictions": [1.0, 2.0]})",
                                       R"({"predictions": [1.005, 2.0]})"))
                .outcome,
            Outcome::kWithinTolerance);
  EXPECT_EQ(JudgePair(config, MakePair("2", R"({"predictions": [1.0, 2.0]})",
                                       R"({"predictions": [1.5, 2.0]})"))
                .outcome,
            Outcome::kMismatch);
  EXPECT_EQ(
      JudgePair(config, MakePair("3", R"({"predictions": [1.0]})", R"({"other": 1})")).outcome,
      Outcome::kUnparseable);
  EXPECT_EQ(
      JudgePair(config, MakePair("4", R"({"predictions": [1, 2]})", R"({"predictions": [1]})"))
          .fields,
      std::vector<std::string>{"length"});
  CompareRule emb = Rule(CompareKind::kEmbedding);
  emb.min_cosine = 0.99;
  emb.max_rel_l2 = 0.05;
  config = ConfigWith(emb);
  EXPECT_EQ(JudgePair(config, MakePair("5", "[1, 0, 0]", "[0.999, 0.01, 0]")).outcome,
            Outcome::kWithinTolerance);
  EXPECT_EQ(JudgePair(config, MakePair("6", "[1, 0, 0]", "[0.5, 0.5, 0]")).outcome,
            Outcome::kMismatch);
  EXPECT_EQ(JudgePair(config, MakePair("7", "[NaN, 1]", "[NaN, 1.0]")).outcome, Outcome::kMatch);
  config = ConfigWith(Rule(CompareKind::kExact));
  EXPECT_EQ(JudgePair(config, MakePair("8", "abc", "abd")).outcome, Outcome::kMismatch);
  EXPECT_EQ(JudgePair(config, MakePair("9", "abc", "abc")).outcome, Outcome::kMatch);
}

TEST(JudgePair, FirstMatchingRuleWins) {
  CompareConfig config;
  CompareRule a = Rule(CompareKind::kExact);
  a.name = "a";
  a.route = "other";
  CompareRule b = Rule(CompareKind::kJson);
  b.name = "b";
  b.mirror = "student";
  config.rules = {a, b};
  auto pair = MakePair("1", R"({"x": 1})", R"({"x": 1.0})");
  auto j = JudgePair(config, pair);
  ASSERT_NE(j.rule, nullptr);
  EXPECT_EQ(j.rule->name, "b");
  EXPECT_EQ(j.outcome, Outcome::kMatch);  // 1 == 1.0 numerically
  pair.mirror = "teacher";
  EXPECT_EQ(JudgePair(config, pair).rule, nullptr);  // no rule: exact bytes
  EXPECT_EQ(JudgePair(config, pair).outcome, Outcome::kMismatch);
}

}  // namespace
}  // namespace sg::comparator
