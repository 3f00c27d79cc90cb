// Comparator throughput on one thread: how many classification pairs per second each stage of
// the offline path handles. Prints one markdown table with pairs/s and ratios.
//
//   sg-bench-comparator [PAIRS]        (default 200000)
//
// The pairs look like the demo's: TorchServe top-5 objects over Fashion-MNIST's 10 labels, a true
// label header, ~3% top-1 flips, 0.5% shadow timeouts. They are generated in memory, encoded with
// common/pair_record.h and then judged, so the numbers exclude disk I/O.
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/pair_record.h"
#include "comparator/compare_config.h"
#include "comparator/comparison.h"
#include "comparator/gates.h"
#include "comparator/pair_judge.h"
#include "comparator/pair_log_reader.h"
#include "comparator/report_writer.h"

namespace {

using namespace sg;
using namespace sg::comparator;
using Clock = std::chrono::steady_clock;

std::vector<std::string> MakeLines(int n) {
  const char* labels[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::string> lines;
  lines.reserve(n);
  for (int i = 0; i < n; ++i) {
    const int truth = static_cast<int>(rng() % 10);
    double p[10], s[10], ps = 0, ss = 0;
    for (int k = 0; k < 10; ++k) {
      p[k] = u(rng) * 0.2 + (k == truth ? 3 : 0);
      s[k] = p[k] * (1 + (u(rng) - 0.5) * 0.05);
      ps += p[k];
      ss += s[k];
    }
    if (u(rng) < 0.03) std::swap(s[truth], s[(truth + 1) % 10]), s[truth] *= 0.1;
    nlohmann::json pj = nlohmann::json::object(), sj = nlohmann::json::object();
    std::vector<int> order(10);
    for (int k = 0; k < 10; ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
    for (int k = 0; k < 5; ++k) pj[labels[order[k]]] = p[order[k]] / ps;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    for (int k = 0; k < 5; ++k) sj[labels[order[k]]] = s[order[k]] / ss;
    PairRecord r;
    r.id = "req-" + std::to_string(i);
    r.ts_us = 1795000000000000 + i * 5000LL;
    r.route = "classify";
    r.mirror = "student";
    r.request = {"POST",
                 "/predictions/fashion",
                 300 + rng() % 600,
                 std::string(64, 'c'),
                 {{"content-type", "image/png"}, {"x-true-label", labels[truth]}},
                 std::nullopt,
                 false};
    r.primary.status = 200;
    r.primary.outcome = "ok";
    r.primary.latency_us = 2000 + static_cast<int64_t>(rng() % 3000);
    r.primary.headers = {{"content-type", "application/json"}};
    r.primary.body = pj.dump();
    r.shadow = r.primary;
    r.shadow.latency_us = r.primary.latency_us * 2 + static_cast<int64_t>(rng() % 2000);
    r.shadow.send_offset_us = 15;
    r.shadow.body = sj.dump();
    if (u(rng) < 0.005) {
      r.shadow.status = 0;
      r.shadow.outcome = "shadow_timeout";
      r.shadow.body.clear();
    }
    lines.push_back(EncodePairLogLine(r));
  }
  return lines;
}

struct Row {
  std::string stage;
  double seconds;
  int pairs;
};

template <typename F>
Row Time(const std::string& stage, int pairs, F&& f) {
  const auto start = Clock::now();
  f();
  return {stage, std::chrono::duration<double>(Clock::now() - start).count(), pairs};
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: sg-bench-comparator [PAIRS>0]\n");
    return 2;
  }
  auto config = std::make_shared<CompareConfig>();
  CompareRule rule;
  rule.name = "fashion";
  rule.kind = CompareKind::kClassification;
  config->rules.push_back(rule);
  GateConfig gates = ParseConfig<GateConfig>(
      R"({"gates": [{"metric": "pairs", "min": 1000},
                    {"metric": "top1_agreement", "min": 0.95, "confidence": 0.95},
                    {"metric": "latency_shift_ms", "max": 5}]})",
      "bench", ParseGateConfig);

  const std::vector<std::string> lines = MakeLines(n);
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size() + 1;
  std::vector<PairRecord> records;
  records.reserve(n);

  std::vector<Row> rows;
  rows.push_back(Time("decode (DecodePairLogLine)", n, [&] {
    std::string error;
    for (const auto& l : lines) {
      auto e = DecodePairLogLine(l, &error);
      records.push_back(std::move(std::get<PairRecord>(*e)));
    }
  }));
  uint64_t sink = 0;
  rows.push_back(Time("judge (JudgePair)", n, [&] {
    for (const auto& r : records) sink += static_cast<uint64_t>(JudgePair(*config, r).outcome);
  }));
  Comparison comparison(config);
  rows.push_back(Time("judge + aggregate (Comparison::Add)", n, [&] {
    for (const auto& r : records) comparison.Add(r);
  }));
  std::string all;
  all.reserve(bytes);
  for (const auto& l : lines) all += l + "\n";
  // The stream is built outside the timing: copying the whole log into a fresh 190 MB buffer
  // costs page faults a file read (a reused buffer) does not have.
  std::istringstream in(std::move(all));
  Comparison streamed(config);
  rows.push_back(Time("end to end: stream read + decode + judge + aggregate", n,
                      [&] { ReadPairLog(in, streamed); }));
  std::string report;
  rows.push_back(Time("report: rank tests on reservoir + JSON/MD/HTML", 0, [&] {
    const auto j = BuildReport(streamed, gates, {"bench", {}, "", "", {}});
    report = RenderMarkdown(j) + RenderHtml(j);
  }));

  std::printf(
      "Comparator throughput, one thread, %d classification pairs (%.1f MB of JSONL), "
      "checksum %llu\n\n",
      n, static_cast<double>(bytes) / 1e6, static_cast<unsigned long long>(sink));
  std::printf("| stage | pairs | seconds | pairs/s | ratio to 200k pairs/s target |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : rows) {
    if (r.pairs == 0) {
      std::printf("| %s | - | %.3f | - | - |\n", r.stage.c_str(), r.seconds);
      continue;
    }
    const double rate = r.pairs / r.seconds;
    std::printf("| %s | %d | %.3f | %.0f | %.2f |\n", r.stage.c_str(), r.pairs, r.seconds, rate,
                rate / 200000);
  }
  return 0;
}
