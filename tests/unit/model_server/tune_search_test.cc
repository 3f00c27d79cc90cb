// sg-serve tune's search through its Measurer seam: scripted figures and a fake clock that each
// measurement advances by its run plus a start-up cost, so the budget is real to the search.
#include "model_server/tune_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "model_server/tune_report.h"

namespace sg::serve {
namespace {

struct Figures {
  double rps = 100;
  double p99_ms = 10;
  uint64_t failures = 0;
};

class FakeMeasurer : public Measurer {
 public:
  // `figures(config, nth run of this config at this length)`.
  explicit FakeMeasurer(std::function<Figures(const TuneConfig&, int)> figures)
      : figures_(std::move(figures)) {}

  Measurement Measure(const TuneConfig& config, double seconds, bool want_answers) override {
    now_ += seconds + overhead_s;
    calls.push_back({config.Label(), seconds});
    int nth = runs_[{config.Label(), seconds}]++;
    Figures f = figures_(config, nth);
    Measurement m;
    m.seconds = seconds;
    m.rps = f.rps;
    m.p99_ms = f.p99_ms;
    m.failures = f.failures;
    m.requests = static_cast<uint64_t>(f.rps * seconds);
    if (want_answers) {
      for (int i = 0; i < 100; ++i) {
        bool flip = config.precision == "bf16" && i < bf16_disagreements;
        m.answers.push_back(std::string("{\"cat\": ") + (flip ? "0.1" : "0.9") +
                            ", \"dog\": " + (flip ? "0.9" : "0.1") + "}");
      }
    }
    if (stop_after && static_cast<int>(calls.size()) >= *stop_after) stopped_ = true;
    if (stop_when && stop_when(calls)) stopped_ = true;
    return m;
  }
  bool Stopped() const override { return stopped_; }

  double now_ = 0;
  double overhead_s = 2;
  int bf16_disagreements = 0;
  std::optional<int> stop_after;
  std::function<bool(const std::vector<std::pair<std::string, double>>&)> stop_when;
  std::vector<std::pair<std::string, double>> calls;

 private:
  std::function<Figures(const TuneConfig&, int)> figures_;
  std::map<std::pair<std::string, double>, int> runs_;
  bool stopped_ = false;
};

TuneConfig Layout(int w, int t, bool pin = true) {
  TuneConfig c;
  c.workers = w;
  c.threads = t;
  c.pinning = pin;
  return c;
}

// A 4-CPU space: 2 x 8 grid layouts (the plan 1x4 pinned among them), the naive 4x4 unpinned.
TuneSpace FourCpuSpace() {
  TuneSpace space;
  space.plan = Layout(1, 4);
  space.layouts = CpuLayouts(4, 4, 4, false, {true, false}, space.plan);
  space.naive = NaiveConfig(4);
  return space;
}

SearchOptions Options(FakeMeasurer& fake, double budget_s = 300) {
  SearchOptions o;
  o.budget_s = budget_s;
  o.slo_p99_ms = 20;
  o.overhead_s = 2;
  o.max_measure_s = 1000;  // each round's length its own
  o.clock = [&fake] { return fake.now_; };
  return o;
}

// Throughput grows with workers (pinned better), p99 with workers too: 4x1 pinned is fastest
// but misses a 20 ms SLO; 2x2 pinned (310 req/s) is the best that meets it, 10% ahead of the
// next (2x1 pinned, 280).
Figures WorkersScale(const TuneConfig& c, int) {
  Figures f;
  f.rps = 100.0 * c.workers + 30.0 * c.threads + (c.pinning ? 50 : 0);
  f.p99_ms = c.workers >= 3 ? 30 : 8.0 + c.workers;
  return f;
}

std::string LabelOf(const SearchResult& r, std::optional<size_t> i) {
  return i ? r.trials[*i].config.Label() : "none";
}

TEST(TuneSearchTest, CpuLayoutsCoverTheBudgetThePlanAndTheNaiveReference) {
  TuneConfig plan = Layout(1, 2);
  auto layouts = CpuLayouts(2, 2, 2, true, {true, false}, plan);
  std::set<std::string> labels;
  for (const auto& c : layouts) labels.insert(c.Label());
  // 1x1, 1x2, 2x1 pinned and unpinned, 1x1 pinned with a front CPU, the naive 2x2 unpinned.
  EXPECT_EQ(labels, (std::set<std::string>{"1x1 pin b1 opt fp32", "1x2 pin b1 opt fp32",
                                           "2x1 pin b1 opt fp32", "1x1 pin front1 b1 opt fp32",
                                           "1x1 nopin b1 opt fp32", "1x2 nopin b1 opt fp32",
                                           "2x1 nopin b1 opt fp32", "2x2 nopin b1 opt fp32"}));
  EXPECT_EQ(layouts.back(), NaiveConfig(2));
  // On one CPU the naive configuration (1x1 unpinned) is a layout of the grid already.
  auto one = CpuLayouts(1, 1, 1, true, {true, false}, Layout(1, 1));
  EXPECT_EQ(one.size(), 2u);
  EXPECT_NE(std::find(one.begin(), one.end(), NaiveConfig(1)), one.end());
  // Hyperthreads: logical-core variants appear only when there are more logical units.
  auto ht = CpuLayouts(2, 4, 4, false, {true}, plan);
  bool any_logical = false;
  for (const auto& c : ht) any_logical |= c.logical_cores;
  EXPECT_TRUE(any_logical);
}

TEST(TuneSearchTest, PicksTheFastestConfigurationThatMeetsTheSlo) {
  FakeMeasurer fake(WorkersScale);
  auto space = FourCpuSpace();
  auto options = Options(fake);
  auto result = SuccessiveHalving(space, fake, options);
  ASSERT_TRUE(result.winner);
  EXPECT_EQ(LabelOf(result, result.winner), "2x2 pin b1 opt fp32");
  // The faster 4x1 was measured and refused for its p99.
  bool saw_4x1 = false;
  for (const auto& t : result.trials) {
    if (t.config.Label() == "4x1 pin b1 opt fp32") {
      saw_4x1 = true;
      EXPECT_EQ(t.Ineligible(options), "p99 30.00 > 20.00 ms");
    }
  }
  EXPECT_TRUE(saw_4x1);
  EXPECT_FALSE(result.interrupted);
  EXPECT_LE(fake.now_, options.budget_s);
}

TEST(TuneSearchTest, LaterRoundsMeasureFewerConfigurationsForLonger) {
  FakeMeasurer fake(WorkersScale);
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  std::map<double, int> runs_per_length;
  for (const auto& [label, seconds] : fake.calls) ++runs_per_length[seconds];
  ASSERT_GE(runs_per_length.size(), 2u);
  // Every layout once at the shortest length, fewer at each longer one.
  EXPECT_EQ(runs_per_length.begin()->second, static_cast<int>(space.layouts.size()));
  int previous = runs_per_length.begin()->second + 1;
  for (const auto& [seconds, count] : runs_per_length) {
    EXPECT_LT(count, previous) << seconds << " s";
    previous = count;
  }
  // The references take part in the last round, so the ratios compare runs of one length.
  double longest = runs_per_length.rbegin()->first;
  ASSERT_TRUE(result.naive && result.plan && result.winner);
  for (auto i : {*result.naive, *result.plan, *result.winner}) {
    EXPECT_EQ(result.trials[i].Deciding().front()->seconds, longest) << LabelOf(result, i);
  }
}

TEST(TuneSearchTest, FailedRequestsMakeAConfigurationIneligible) {
  FakeMeasurer fake([](const TuneConfig& c, int n) {
    Figures f = WorkersScale(c, n);
    if (c.Label() == "2x2 pin b1 opt fp32") f.failures = 3;
    return f;
  });
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  // The next best without failures, 2x1 pinned (280 req/s) and 1x4 pinned (270), tie within
  // the 5% noise: the lower p99 (9 ms against 10) decides.
  EXPECT_EQ(LabelOf(result, result.winner), "1x4 pin b1 opt fp32");
  EXPECT_TRUE(result.tie);
}

TEST(TuneSearchTest, NothingEligibleMeansNoWinner) {
  FakeMeasurer fake([](const TuneConfig&, int) { return Figures{100, 50, 0}; });
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  EXPECT_FALSE(result.winner);
  EXPECT_FALSE(result.trials.empty());
}

// Two leaders 3% apart, the leader's first run at each length a lucky outlier (310, then
// 280): both are measured again and the medians decide (300 against 280).
TEST(TuneSearchTest, LeadersWithinNoiseAreMeasuredAgainAndMediansDecide) {
  FakeMeasurer fake([](const TuneConfig& c, int nth) {
    Figures f{50, 5, 0};
    if (c.Label() == "1x2 pin b1 opt fp32") f.rps = 300;
    if (c.Label() == "2x1 pin b1 opt fp32") f.rps = nth == 0 ? 310 : 280;
    return f;
  });
  TuneSpace space;
  space.plan = Layout(1, 2);
  space.layouts = CpuLayouts(2, 2, 2, false, {true, false}, space.plan);
  space.naive = NaiveConfig(2);
  auto options = Options(fake);
  auto result = SuccessiveHalving(space, fake, options);
  ASSERT_TRUE(result.winner);
  EXPECT_EQ(LabelOf(result, result.winner), "1x2 pin b1 opt fp32");
  for (const auto& t : result.trials) {
    if (t.config.Label() == "1x2 pin b1 opt fp32" || t.config.Label() == "2x1 pin b1 opt fp32") {
      EXPECT_EQ(t.Deciding().size(), static_cast<size_t>(options.max_repeats)) << t.config.Label();
    }
  }
  EXPECT_FALSE(result.tie);  // 300 against 280 is beyond the 5% noise
}

TEST(TuneSearchTest, AnUnbreakableTieGoesToTheLowerP99) {
  FakeMeasurer fake([](const TuneConfig& c, int) {
    Figures f{50, 5, 0};
    if (c.Label() == "1x2 pin b1 opt fp32") f = {301, 9, 0};
    if (c.Label() == "2x1 pin b1 opt fp32") f = {300, 6, 0};
    return f;
  });
  TuneSpace space;
  space.plan = Layout(1, 2);
  space.layouts = CpuLayouts(2, 2, 2, false, {true}, space.plan);
  space.naive = NaiveConfig(2);
  auto result = SuccessiveHalving(space, fake, Options(fake));
  EXPECT_TRUE(result.tie);
  EXPECT_EQ(LabelOf(result, result.winner), "2x1 pin b1 opt fp32");
}

TEST(TuneSearchTest, ClearLeadersAreNotRepeated) {
  FakeMeasurer fake(WorkersScale);
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  for (const auto& t : result.trials) EXPECT_EQ(t.Deciding().size(), 1u) << t.config.Label();
  EXPECT_FALSE(result.tie);
}

// bf16 is faster; it wins only when its answers agree with fp32's.
SearchResult RunWithBf16(int disagreements, SearchOptions* options_out) {
  FakeMeasurer fake([](const TuneConfig& c, int) {
    Figures f{100.0 * c.workers, 5, 0};
    if (c.precision == "bf16") f.rps *= 1.5;
    return f;
  });
  fake.bf16_disagreements = disagreements;
  TuneSpace space;
  space.plan = Layout(1, 2);
  space.layouts = CpuLayouts(2, 2, 2, false, {true}, space.plan);
  space.naive = NaiveConfig(2);
  space.variants = {{true, "fp32"}, {true, "bf16"}};
  *options_out = Options(fake);
  return SuccessiveHalving(space, fake, *options_out);
}

TEST(TuneSearchTest, Bf16IsEligibleOnlyWithAgreementAgainstFp32) {
  SearchOptions options;
  auto agreeing = RunWithBf16(0, &options);
  ASSERT_TRUE(agreeing.winner);
  const Trial& w = agreeing.trials[*agreeing.winner];
  EXPECT_EQ(w.config.precision, "bf16");
  ASSERT_TRUE(w.agreement);
  EXPECT_DOUBLE_EQ(*w.agreement, 1.0);

  auto disagreeing = RunWithBf16(5, &options);  // 95% < 99%
  ASSERT_TRUE(disagreeing.winner);
  EXPECT_EQ(disagreeing.trials[*disagreeing.winner].config.precision, "fp32");
  bool refused = false;
  for (const auto& t : disagreeing.trials) {
    if (t.config.precision == "bf16") {
      EXPECT_EQ(t.Ineligible(options), "agreement 95.00% < 99.00%");
      refused = true;
    }
  }
  EXPECT_TRUE(refused);
}

TEST(TuneSearchTest, ASmallBudgetEndsTheSearchWithWhatWasMeasured) {
  FakeMeasurer fake(WorkersScale);
  auto space = FourCpuSpace();
  auto options = Options(fake, 20);  // 17 layouts at >= 3 s each do not fit
  auto result = SuccessiveHalving(space, fake, options);
  EXPECT_TRUE(result.budget_spent);
  EXPECT_LE(fake.now_, options.budget_s);
  EXPECT_LT(result.trials.size(), space.layouts.size());
  ASSERT_TRUE(result.winner);  // the best of what was measured
}

TEST(TuneSearchTest, AStopKeepsWhatWasMeasured) {
  FakeMeasurer fake(WorkersScale);
  fake.stop_after = 5;
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  EXPECT_TRUE(result.interrupted);
  EXPECT_EQ(fake.calls.size(), 5u);
  EXPECT_EQ(result.measurements, 5);
  ASSERT_TRUE(result.winner);
  // The table lists exactly what was measured.
  auto table = FormatTuneTable(result, Options(fake));
  for (const auto& [label, seconds] : fake.calls) {
    EXPECT_NE(table.find(label), std::string::npos) << label;
  }
}

TEST(TuneSearchTest, ARoundCutShortDoesNotPromoteTheReferencesMeasuredInIt) {
  // Each round measures the references (the naive configuration, the plan) first. A stop in
  // round 3 right after them left the plan as the only eligible trial of the furthest round, and
  // it won although round 2 had measured 2x2 pinned faster (seen in the demo on a loaded machine:
  // the naive configuration at 1272 req/s picked over 3690).
  FakeMeasurer fake(WorkersScale);
  fake.stop_when = [](const std::vector<std::pair<std::string, double>>& calls) {
    std::set<double> lengths;
    for (const auto& call : calls) lengths.insert(call.second);
    if (lengths.size() < 3) return false;
    return std::count_if(calls.begin(), calls.end(),
                         [&](const auto& call) { return call.second == *lengths.rbegin(); }) >= 2;
  };
  auto space = FourCpuSpace();
  auto result = SuccessiveHalving(space, fake, Options(fake));
  ASSERT_TRUE(result.interrupted);
  ASSERT_TRUE(result.plan);
  EXPECT_EQ(result.trials[*result.plan].round, 3);  // the plan reached the cut round
  ASSERT_TRUE(result.winner);
  EXPECT_EQ(LabelOf(result, result.winner), "2x2 pin b1 opt fp32");
}

TEST(TuneSearchTest, ExhaustiveMeasuresEveryCombinationOnceAndSpendsMore) {
  auto space = FourCpuSpace();
  space.batching = {{1, 5}, {4, 2}};
  FakeMeasurer exhaustive_fake(WorkersScale);
  auto all = Exhaustive(space, exhaustive_fake, Options(exhaustive_fake), 5);
  EXPECT_EQ(exhaustive_fake.calls.size(), space.Product().size());
  EXPECT_EQ(space.Product().size(), 2 * space.layouts.size());
  EXPECT_EQ(LabelOf(all, all.winner), "2x2 pin b1 opt fp32");
  FakeMeasurer halving_fake(WorkersScale);
  auto halving = SuccessiveHalving(space, halving_fake, Options(halving_fake, 150));
  ASSERT_TRUE(halving.winner);
  EXPECT_EQ(halving.trials[*halving.winner].config.workers, 2);
  EXPECT_EQ(halving.trials[*halving.winner].config.threads, 2);
  EXPECT_LT(halving_fake.now_, exhaustive_fake.now_);
}

TEST(TuneSearchTest, ExhaustiveCanBeLimitedToAHeadToHead) {
  auto space = FourCpuSpace();
  FakeMeasurer fake(WorkersScale);
  auto result =
      Exhaustive(space, fake, Options(fake), 5, {"1x1 pin b1 opt fp32", "2x2 pin b1 opt fp32"});
  ASSERT_EQ(fake.calls.size(), 2u);
  EXPECT_EQ(fake.calls[0].first, "1x1 pin b1 opt fp32");
  EXPECT_EQ(fake.calls[1].first, "2x2 pin b1 opt fp32");
  EXPECT_EQ(LabelOf(result, result.winner), "2x2 pin b1 opt fp32");
}

TEST(TuneSearchTest, TopOneAgreementReadsEachAnswerShape) {
  std::vector<std::string> classes = {R"({"Coat": 0.8, "Shirt": 0.2})",
                                      R"({"Bag": 0.3, "Coat": 0.7})"};
  std::vector<std::string> swapped = {R"({"Shirt": 0.6, "Coat": 0.4})",
                                      R"({"Coat": 0.7, "Bag": 0.3})"};
  EXPECT_DOUBLE_EQ(TopOneAgreement(classes, classes), 1.0);
  EXPECT_DOUBLE_EQ(TopOneAgreement(classes, swapped), 0.5);
  EXPECT_DOUBLE_EQ(TopOneAgreement({R"({"score": 2.0})"}, {R"({"score": 2.01})"}), 1.0);
  EXPECT_DOUBLE_EQ(TopOneAgreement({R"({"score": 2.0})"}, {R"({"score": 2.5})"}), 0.0);
  EXPECT_DOUBLE_EQ(TopOneAgreement({R"({"data": [0.1, 0.7, 0.2], "shape": [3]})"},
                                   {R"({"data": [0.2, 0.6, 0.1], "shape": [3]})"}),
                   1.0);
  EXPECT_DOUBLE_EQ(TopOneAgreement({R"({"Coat": 1})"}, {"not json"}), 0.0);
  EXPECT_DOUBLE_EQ(TopOneAgreement({}, {}), 0.0);
}

}  // namespace
}  // namespace sg::serve
