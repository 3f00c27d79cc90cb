#include "comparator/comparison.h"

#include <cmath>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "comparator/pair_log_reader.h"
#include "tests/unit/comparator/test_pairs.h"

namespace sg::comparator {
namespace {

using nlohmann::json;
using testing::MakePair;

std::shared_ptr<CompareConfig> ClassificationConfig() {
  auto c = std::make_shared<CompareConfig>();
  CompareRule r;
  r.name = "cls";
  r.kind = CompareKind::kClassification;
  r.margin_buckets = {0.1, 0.5};
  c->rules.push_back(r);
  c->window = std::chrono::seconds(1);
  return c;
}

// A deterministic mix of outcomes, labels, sizes, routes and times.
std::vector<PairRecord> MixedPairs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const char* labels[] = {"Bag", "Coat", "Dress", "Shirt"};
  std::vector<PairRecord> out;
  for (int i = 0; i < n; ++i) {
    const size_t top_index = rng() % 4;
    const std::string top = labels[top_index];
    const std::string other = labels[(top_index + 1 + rng() % 3) % 4];
    const double p = 0.5 + static_cast<double>(rng() % 50) / 100;
    json primary = {{top, p}, {other, 1 - p}};
    json shadow = primary;
    const int kind = static_cast<int>(rng() % 10);
    if (kind == 0) shadow = {{top, 0.4}, {"Sneaker", 0.6}};  // flip
    if (kind == 1) shadow[top] = p - 0.01;                   // within tolerance
    auto pair = MakePair("id-" + std::to_string(seed) + "-" + std::to_string(i), primary.dump(),
                         shadow.dump(), 3000 + static_cast<int64_t>(rng() % 4000),
                         4000 + static_cast<int64_t>(rng() % 6000));
    pair.ts_us = 1795000000000000 + i * 250000;
    pair.request.size = rng() % 40000;
    pair.route = rng() % 3 ? "classify" : "classify-v2";
    pair.request.headers["x-true-label"] = rng() % 5 ? top : "Bag";
    if (kind == 2) {
      pair.shadow.outcome = "shadow_timeout";
      pair.shadow.status = 0;
    }
    if (kind == 3 && rng() % 4 == 0) pair.shadow.body = "oops";
    out.push_back(std::move(pair));
  }
  return out;
}

void ExpectJsonNear(const json& a, const json& b, const std::string& path) {
  if (a.is_number_float() || b.is_number_float()) {
    ASSERT_TRUE(a.is_number() && b.is_number()) << path;
    EXPECT_NEAR(a.get<double>(), b.get<double>(), 1e-12 * std::max(1.0, std::fabs(a.get<double>())))
        << path;
    return;
  }
  ASSERT_EQ(a.type(), b.type()) << path;
  if (a.is_object()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    for (auto it = a.begin(); it != a.end(); ++it) {
      ASSERT_TRUE(b.contains(it.key())) << path << "." << it.key();
      ExpectJsonNear(*it, b[it.key()], path + "." + it.key());
    }
  } else if (a.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << path;
    for (size_t i = 0; i < a.size(); ++i)
      ExpectJsonNear(a[i], b[i], path + "[" + std::to_string(i) + "]");
  } else {
    EXPECT_EQ(a, b) << path;
  }
}

MirrorCounters Counters(const std::string& instance, int64_t ts, uint64_t requests) {
  MirrorCounters m;
  m.ts_us = ts;
  m.instance = instance;
  m.route = "classify";
  m.mirror = "student";
  m.requests = requests;
  m.not_mirrored = {{"sampled_out", 1}, {"body_too_large", 2}, {"overload", 3}};
  m.mirrored = {{"ok", requests - 6}};
  return m;
}

TEST(Comparison, MergeEqualsJudgingEverything) {
  auto config = ClassificationConfig();
  auto a_pairs = MixedPairs(300, 1), b_pairs = MixedPairs(200, 2);
  Comparison a(config), b(config), all(config);
  for (const auto& p : a_pairs) {
    a.Add(p);
    all.Add(p);
  }
  for (const auto& p : b_pairs) {
    b.Add(p);
    all.Add(p);
  }
  a.AddCounters(Counters("h:1", 10, 100));
  all.AddCounters(Counters("h:1", 10, 100));
  b.AddCounters(Counters("h:2", 20, 50));
  all.AddCounters(Counters("h:2", 20, 50));
  a.AddMalformed("invalid JSON");
  all.AddMalformed("invalid JSON");
  Comparison merged(config);
  merged.Merge(a);
  merged.Merge(b);
  EXPECT_TRUE(merged.SameState(all));
  // Equal up to floating-point summation order (sums of probabilities).
  ExpectJsonNear(merged.ToJson(), all.ToJson(), "$");
  // A different split gives a different state (the check can fail).
  Comparison partial(config);
  partial.Merge(a);
  EXPECT_FALSE(partial.SameState(all));
}

TEST(Comparison, CountsOutcomesAccuracyAndSlices) {
  auto config = ClassificationConfig();
  Comparison c(config);
  auto agree = MakePair("1", R"({"Coat": 0.9, "Bag": 0.1})", R"({"Coat": 0.9, "Bag": 0.1})");
  agree.request.headers["x-true-label"] = "Coat";
  auto flip = MakePair("2", R"({"Coat": 0.55, "Bag": 0.45})", R"({"Bag": 0.6, "Coat": 0.4})");
  flip.request.headers["x-true-label"] = "Bag";
  auto flip2 = MakePair("3", R"({"Coat": 0.95, "Bag": 0.05})", R"({"Bag": 0.6, "Coat": 0.4})");
  flip2.request.headers["x-true-label"] = "Coat";
  auto timeout = agree;
  timeout.id = "4";
  timeout.shadow.outcome = "shadow_timeout";
  timeout.shadow.status = 0;
  for (const auto& p : {agree, flip, flip2, timeout}) c.Add(p);
  json j = c.ToJson();
  EXPECT_EQ(j["pairs"], 4);
  EXPECT_EQ(j["outcomes"]["match"], 1);
  EXPECT_EQ(j["outcomes"]["mismatch"], 2);
  EXPECT_EQ(j["outcomes"]["shadow_timeout"], 1);
  EXPECT_EQ(j["classification"]["pairs"], 3);
  EXPECT_EQ(j["classification"]["top1_flips"], 2);
  EXPECT_NEAR(j["classification"]["top1_agreement"].get<double>(), 1.0 / 3, 1e-12);
  // Margins: 0.8 (>= 0.5), 0.1 ([0.1, 0.5)), 0.9 (>= 0.5).
  const auto& flips = j["classification"]["flips_by_primary_margin"];
  ASSERT_EQ(flips.size(), 3u);
  EXPECT_EQ(flips[0]["pairs"], 0);
  EXPECT_EQ(flips[1]["pairs"], 1);
  EXPECT_EQ(flips[1]["flips"], 1);
  EXPECT_EQ(flips[2]["pairs"], 2);
  EXPECT_EQ(flips[2]["flips"], 1);
  // Accuracy over the 3 classified, labeled pairs: primary right on 1 and 3, shadow on 1 and 2.
  EXPECT_EQ(j["accuracy"]["labeled"], 3);
  EXPECT_NEAR(j["accuracy"]["primary"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_NEAR(j["accuracy"]["shadow"].get<double>(), 2.0 / 3, 1e-12);
  EXPECT_EQ(j["accuracy"]["only_primary_correct"], 1);
  EXPECT_EQ(j["accuracy"]["only_shadow_correct"], 1);
  // Confusion: labels Bag, Coat; primary Coat -> shadow Bag twice, Coat -> Coat once.
  EXPECT_EQ(j["classification"]["confusion"]["labels"], json::array({"Bag", "Coat"}));
  EXPECT_EQ(j["classification"]["confusion"]["rows_primary_cols_shadow"],
            json::parse("[[0, 0], [2, 1]]"));
  EXPECT_EQ(j["status_matrix"].size(), 2u);
  EXPECT_EQ(j["latency"]["shadow"]["count"], 3);
  EXPECT_EQ(j["latency"]["shadow"]["fails"], 1);
  EXPECT_EQ(j["latency"]["primary"]["count"], 4);
  EXPECT_EQ(j["slices"]["primary_label"].size(), 2u);  // Coat, (none) for the timeout
  EXPECT_EQ(j["differing_fields"][0]["field"], "top1");
  EXPECT_EQ(j["differing_fields"][0]["count"], 2);
  // Worst example first: the flip with the larger distribution difference.
  ASSERT_EQ(j["examples"].size(), 3u);
  EXPECT_EQ(j["examples"][0]["outcome"], "mismatch");
  EXPECT_EQ(j["examples"][2]["outcome"], "shadow_timeout");
}

TEST(Comparison, ReservoirIsBounded) {
  auto config = ClassificationConfig();
  config->reservoir_size = 50;
  Comparison c(config);
  for (const auto& p : MixedPairs(1000, 3)) c.Add(p);
  json j = c.ToJson();
  EXPECT_EQ(j["latency"]["reservoir"]["size"], 50);
  EXPECT_GT(j["latency"]["reservoir"]["seen"].get<int>(), 800);
  EXPECT_TRUE(j["latency"]["wilcoxon_signed_rank"]["valid"].get<bool>());
}

TEST(Comparison, TimelineCoarsensToFixedSize) {
  auto config = ClassificationConfig();
  Comparison c(config);
  for (const auto& p : MixedPairs(2000, 4)) c.Add(p);  // 500 s at 1 s windows
  json j = c.ToJson();
  EXPECT_LE(j["timeline"]["points"].size(), 240u);
  EXPECT_EQ(j["timeline"]["window_s"], 4.0);
  uint64_t total = 0;
  for (const auto& p : j["timeline"]["points"]) total += p["pairs"].get<uint64_t>();
  EXPECT_EQ(total, 2000u);
}

TEST(Comparison, CountersKeepTheLatestPerInstance) {
  Comparison c(ClassificationConfig());
  c.AddCounters(Counters("h:1", 10, 100));
  c.AddCounters(Counters("h:1", 30, 300));
  c.AddCounters(Counters("h:1", 20, 200));  // older, out of order
  c.AddCounters(Counters("h:2", 5, 50));
  json k = c.ToJson()["counters"];
  EXPECT_EQ(k["instances"], 2);
  EXPECT_EQ(k["requests"], 350);
  EXPECT_EQ(k["not_mirrored"]["overload"], 6);
  EXPECT_EQ(k["not_mirrored_total"], 12);
  EXPECT_EQ(k["mirrored_total"], 350 - 12);
}

TEST(Comparison, CountersSumWhatWasNotCaptured) {
  // The capture policy's counts (capture.body_sample): the latest line per instance and mirror,
  // summed; lines written before the policy have none.
  Comparison c(ClassificationConfig());
  auto a = Counters("h:1", 10, 100);
  a.not_captured = {{"body_sampled_out", 90}, {"body_truncated", 1}};
  auto a_later = Counters("h:1", 20, 200);
  a_later.not_captured = {{"body_sampled_out", 180}, {"body_truncated", 2}};
  auto b = Counters("h:2", 15, 50);
  b.not_captured = {{"body_sampled_out", 45}};
  for (const auto& m : {a, a_later, b, Counters("h:3", 5, 10)}) c.AddCounters(m);
  json k = c.ToJson()["counters"];
  EXPECT_EQ(k["not_captured"], (json{{"body_sampled_out", 225}, {"body_truncated", 2}}));
}

TEST(Comparison, CountersCountARouteWithTwoMirrorsOnce) {
  // One gateway, one route, two mirrors: each mirror's line repeats the route's requests and the
  // instance's sink drops. The totals counted both twice (20 requests for 10, 6 drops for 3).
  Comparison c(ClassificationConfig());
  for (std::string mirror : {"student", "teacher"}) {
    auto m = Counters("h:1:1", 10, 10);
    m.mirror = mirror;
    m.not_mirrored = {{"overload", 1}};
    m.mirrored = {{"ok", 9}};
    m.sink_dropped = 3;
    c.AddCounters(m);
  }
  auto second = Counters("h:2:1", 10, 5);  // another instance, one mirror
  second.not_mirrored = {};
  second.mirrored = {{"ok", 5}};
  second.sink_dropped = 1;
  c.AddCounters(second);
  json j = c.ToJson();
  json k = j["counters"];
  EXPECT_EQ(k["requests"], 15);
  EXPECT_EQ(k["sink_dropped"], 4);
  EXPECT_EQ(k["mirrored_total"], 9 + 9 + 5);
  EXPECT_DOUBLE_EQ(k["mirrored_fraction"].get<double>(), 23.0 / 25.0);  // of 25 possible copies
  // Each mirror's coverage takes off all of its instance's drops: a lower bound.
  int teacher_rows = 0;
  for (const auto& row : j["coverage"]["parts"]) {
    if (row["route"] == "classify" && row["mirror"] == "teacher") {
      EXPECT_EQ(row["captured"], 9 - 3);
      ++teacher_rows;
    }
  }
  EXPECT_EQ(teacher_rows, 1);
}

TEST(Comparison, ExamplesAreRedacted) {
  auto config = ClassificationConfig();
  config->redact.body_chars = 20;
  config->redact.headers = {"authorization"};
  Comparison c(config);
  auto p = MakePair("1", R"({"Coat": 0.9, "Bag": 0.1, "Shirt": 0.0})", R"({"Bag": 0.9})");
  p.request.headers["authorization"] = "Bearer hunter2";
  p.request.body = "secret image bytes";
  c.Add(p);
  const std::string dump = c.ToJson()["examples"].dump();
  EXPECT_EQ(dump.find("hunter2"), std::string::npos);
  EXPECT_EQ(dump.find("secret image"), std::string::npos);
  EXPECT_NE(dump.find("[redacted]"), std::string::npos);
  EXPECT_NE(dump.find("..."), std::string::npos);
}

TEST(PairLogReader, MalformedLinesAreCountedNotFatal) {
  Comparison c(ClassificationConfig());
  auto good = EncodePairLogLine(MakePair("1", R"({"a": 1})", R"({"a": 1})"));
  std::stringstream in;
  in << good << "\n"
     << "not json at all\n"
     << "\n"
     << R"({"v": 1, "type": "pair", "id": "x"})"
     << "\n"
     << R"({"v": 2, "type": "pair"})"
     << "\n"
     << EncodePairLogLine(Counters("h:1", 1, 10)) << "\n"
     << good << "\n"
     << good.substr(0, good.size() / 2);  // truncated last line
  ReadStats stats = ReadPairLog(in, c);
  EXPECT_EQ(stats.lines, 7u);
  EXPECT_EQ(stats.pairs, 2u);
  EXPECT_EQ(stats.counters, 1u);
  EXPECT_EQ(stats.malformed, 4u);
  json j = c.ToJson();
  EXPECT_EQ(j["malformed"]["count"], 4);
  bool truncated = false;
  for (auto it = j["malformed"]["reasons"].begin(); it != j["malformed"]["reasons"].end(); ++it) {
    truncated |= it.key().rfind("truncated last line", 0) == 0;
  }
  EXPECT_TRUE(truncated) << j["malformed"].dump();
}

TEST(PairLogReader, OverlongLinesAndImpossibleValuesAreMalformed) {
  Comparison c(ClassificationConfig());
  auto pair = MakePair("1", R"({"a": 1})", R"({"a": 1})");
  const std::string good = EncodePairLogLine(pair);
  auto negative = pair;
  negative.shadow.latency_us = -5;
  auto impossible = pair;
  impossible.shadow.status = 99;
  std::stringstream in;
  in << std::string(5000, 'x') << "\n"  // longer than the cap: skipped, not held
     << good << "\n"
     << EncodePairLogLine(negative) << "\n"
     << EncodePairLogLine(impossible) << "\n"
     << good << "\r\n"
     << std::string(3000, '{');  // an overlong last line without a newline
  ReadOptions options;
  options.max_line_bytes = good.size() + 1;  // the good line (and its \r) still fits
  ReadStats stats = ReadPairLog(in, c, options);
  EXPECT_EQ(stats.lines, 6u);
  EXPECT_EQ(stats.pairs, 2u);
  EXPECT_EQ(stats.malformed, 4u);
  const json reasons = c.ToJson()["malformed"]["reasons"];
  EXPECT_EQ(reasons["line longer than " + std::to_string(options.max_line_bytes) + " bytes"], 2);
  EXPECT_EQ(reasons["negative latency"], 1);
  EXPECT_EQ(reasons["status outside 100-599"], 1);
}

}  // namespace
}  // namespace sg::comparator

namespace sg::comparator {
namespace {

// `flip_every`-th pair of mirror `mirror` flips its top-1.
void AddPairs(Comparison& c, const std::string& mirror, int n, int flip_every) {
  for (int i = 0; i < n; ++i) {
    const bool flip = i % flip_every == 0;
    auto p =
        testing::MakePair(mirror + std::to_string(i), R"({"Coat": 0.6, "Bag": 0.4})",
                          flip ? R"({"Bag": 0.6, "Coat": 0.4})" : R"({"Coat": 0.6, "Bag": 0.4})");
    p.mirror = mirror;
    c.Add(p);
  }
}

TEST(NoiseFloor, FlagsOnlyWhatExceedsTheNoise) {
  auto config = ClassificationConfig();
  config->noise_floor = {"secondary", 0.5, 0.001};
  Comparison same(config);
  AddPairs(same, "student", 200, 10);    // 10% flips
  AddPairs(same, "secondary", 200, 10);  // 10% flips in the noise too
  json j = same.ToJson();
  EXPECT_EQ(j["pairs"], 200);  // the noise pairs are kept apart
  const json& nf = j["noise_floor"];
  EXPECT_EQ(nf["pairs"], 200);
  EXPECT_NEAR(nf["metrics"]["top1_flip_rate"]["noise"].get<double>(), 0.1, 1e-12);
  EXPECT_FALSE(nf["metrics"]["top1_flip_rate"]["flagged"].get<bool>());
  EXPECT_EQ(nf["flagged"], 0);

  Comparison worse(config);
  AddPairs(worse, "student", 200, 4);  // 25% flips > 0.1 * 1.5 + 0.001
  AddPairs(worse, "secondary", 200, 10);
  const json wf = worse.ToJson()["noise_floor"];
  EXPECT_TRUE(wf["metrics"]["top1_flip_rate"]["flagged"].get<bool>());
  EXPECT_NEAR(wf["metrics"]["top1_flip_rate"]["threshold"].get<double>(), 0.151, 1e-12);
  EXPECT_GE(wf["flagged"].get<int>(), 1);
  bool top1_field_flagged = false;
  for (const auto& f : wf["fields"]) {
    if (f["field"] == "top1") top1_field_flagged = f["flagged"].get<bool>();
  }
  EXPECT_TRUE(top1_field_flagged);

  // Merging carries the noise comparison too.
  Comparison a(config), b(config), merged(config);
  AddPairs(a, "secondary", 50, 10);
  AddPairs(b, "student", 50, 10);
  merged.Merge(a);
  merged.Merge(b);
  Comparison all(config);
  AddPairs(all, "secondary", 50, 10);
  AddPairs(all, "student", 50, 10);
  EXPECT_TRUE(merged.SameState(all));
  ASSERT_NE(merged.noise(), nullptr);
  EXPECT_EQ(merged.noise()->pairs(), 50u);
}

}  // namespace
}  // namespace sg::comparator
