#include "comparator/compare_config.h"

#include <gtest/gtest.h>

#include "tests/support/test_support.h"

namespace sg::comparator {
namespace {

CompareConfig Parse(const std::string& text) {
  return ParseConfig<CompareConfig>(text, "compare.json", ParseCompareConfig);
}

TEST(CompareConfig, CommittedConfigsLoad) {
  for (const char* name : {"configs/compare.json", "configs/compare-json.json"}) {
    const auto path = (sg::testing::SourceDir() / name).string();
    EXPECT_NO_THROW(LoadCompareConfig(path)) << name;
  }
  auto c = LoadCompareConfig((sg::testing::SourceDir() / "configs/compare.json").string());
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].kind, CompareKind::kClassification);
  EXPECT_EQ(c.true_label_header, "x-true-label");
}

TEST(CompareConfig, DefaultsAndValues) {
  auto c = Parse(R"({"rules": [{"name": "a", "kind": "json", "ignore": ["$.t"],
                                 "tolerance": [{"path": "$.s[*]", "abs": 0.1, "rel": 0.01}],
                                 "nan": "mismatch"}],
                     "window": "30s", "true_label_header": "X-Label"})");
  EXPECT_EQ(c.rules[0].route, "*");
  EXPECT_EQ(c.rules[0].nan, NanPolicy::kMismatch);
  EXPECT_EQ(c.rules[0].tolerances[0].abs, 0.1);
  EXPECT_EQ(c.window, std::chrono::seconds(30));
  EXPECT_EQ(c.true_label_header, "x-label");
  EXPECT_EQ(c.reservoir_size, 10000u);
  EXPECT_EQ(c.confidence, 0.98);
}

TEST(CompareConfig, EveryProblemIsReportedWithItsPath) {
  try {
    Parse(R"({"rules": [{"name": "a", "kind": "fuzzy"},
                        {"name": "b", "kind": "json", "ignore": ["items"], "extra": 1},
                        {"name": "c", "kind": "classification", "margin_buckets": [0.5, 0.1],
                         "max_prob_diff": 2}],
              "confidence": 1.5, "unknown": true})");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    for (const char* want :
         {"compare.json: $.rules[0].kind: must be one of", "$.rules[1].ignore[0]: a JSON path",
          "$.rules[1].extra: unknown key", "$.rules[2].margin_buckets: must be increasing",
          "$.rules[2].max_prob_diff: must be in [0, 1]", "$.confidence: must be in",
          "$.unknown: unknown key"}) {
      EXPECT_NE(what.find(want), std::string::npos) << want << "\n" << what;
    }
  }
  EXPECT_THROW(Parse(R"({"rules": [{"name": "a", "kind": "json"}],
                         "noise_floor": {"mirror": "", "rel": -1, "x": 1}})"),
               ConfigError);
  EXPECT_EQ(Parse(R"({"rules": [{"name": "a", "kind": "json"}],
                      "noise_floor": {"mirror": "secondary"}})")
                .noise_floor.mirror,
            "secondary");
  EXPECT_THROW(Parse(R"({"rules": []})"), ConfigError);
  EXPECT_THROW(Parse("{"), ConfigError);
  EXPECT_THROW(LoadCompareConfig("/nonexistent/compare.json"), ConfigError);
}

}  // namespace
}  // namespace sg::comparator
