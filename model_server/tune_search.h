// `sg-serve tune`'s search: which configurations to measure, for how long, and which one wins.
// Plain logic over plain data; the measurements come through `Measurer`, a seam that the real
// tuner implements by starting sg-serve and driving it with sg-load's engine (tune_measure.h),
// and unit tests implement with scripted figures.
//
// The search ("successive halving with expansion"):
//  1. round 1: every CPU layout (workers x threads, pinning, physical/logical cores, front CPUs)
//     with the first batching and model variant, a short run each;
//  2. round 2: the leaders (the best 1/eta of the eligible) and, for each, its other batching
//     settings and its other model variants (one dimension at a time), eta times longer;
//  3. later rounds: the best 1/eta of the last round, eta times longer, until two are left;
//  4. the references (the naive configuration and the rule-based plan) are measured in every
//     round, so the winner's ratios to them compare runs of the same length;
//  5. when the two leaders are within `noise` of each other, both are measured again,
//     alternately, up to `max_repeats` runs each, and the medians decide (then the lower p99).
// Eligible: no failed request, p99 <= the SLO, and for a numerics-changing variant (bf16, int8),
// top-1 agreement with fp32 on the corpus >= `min_agreement`. The budget covers everything
// (start-up, warm-up, measurement); once it is spent, or `Measurer::Stopped()`, the search ends
// with what it has. `Exhaustive` measures the whole product space once each, for the benchmark.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sg::serve {

// One point of the search space: what sg-serve's config sets for the tuned model.
struct TuneConfig {
  int workers = 1;
  int threads = 1;  // threads per worker
  bool pinning = true;
  bool logical_cores = false;  // plan hyperthread siblings too
  int front_cpus = 0;
  int batch_size = 1;
  int batch_delay_ms = 5;
  bool optimize = true;            // freeze + optimize_for_inference
  std::string precision = "fp32";  // fp32 | bf16 | int8 (dynamic, Linear layers)
  bool channels_last = false;      // channels-last memory format

  // "2x1 pin b1 opt fp32", plus " logical", " front1", " d5ms" (delay, only with batch > 1),
  // " cl" (channels-last).
  std::string Label() const;
  bool ChangesNumerics() const { return precision != "fp32"; }
  bool operator==(const TuneConfig&) const = default;
};

// One run of one configuration, warm-up excluded.
struct Measurement {
  double seconds = 0;  // the measured duration asked for
  uint64_t requests = 0, failures = 0;
  double avg_ms = 0, min_ms = 0, max_ms = 0, median_ms = 0, p99_ms = 0;
  double rps = 0;     // completed requests / elapsed seconds
  std::string error;  // the server did not start, or the run was cut short; empty: ok
  // The server's answer to each corpus item in order (only when asked for: agreement checks).
  std::vector<std::string> answers;
};

// The seam between the search and the real world.
class Measurer {
 public:
  virtual ~Measurer() = default;
  // Runs `config` for `seconds` after its warm-up; with `want_answers`, also sends each
  // agreement item once and returns the answers. A failure to start is a Measurement with
  // `error` set, not an exception.
  virtual Measurement Measure(const TuneConfig& config, double seconds, bool want_answers) = 0;
  // True once the user asked to stop (SIGINT): the search measures nothing more.
  virtual bool Stopped() const = 0;
};

// How the worker prepares the model: TuneConfig's model fields.
struct ModelVariant {
  bool optimize = true;
  std::string precision = "fp32";
  bool channels_last = false;
  bool operator==(const ModelVariant&) const = default;
  void ApplyTo(TuneConfig* c) const {
    c->optimize = optimize;
    c->precision = precision;
    c->channels_last = channels_last;
  }
};

// The space, one dimension at a time (see the header comment for how they combine).
struct TuneSpace {
  std::vector<TuneConfig> layouts;  // CPU layouts; batching and model fields ignored
  std::vector<std::pair<int, int>> batching = {{1, 5}};  // (batch size, delay ms); [0] first
  std::vector<ModelVariant> variants = {ModelVariant{}};
  TuneConfig naive;  // TorchServe's defaults: a worker per logical CPU, torch's threads, unpinned
  TuneConfig plan;   // sg-serve's rule-based plan
  // Every combination of the three dimensions (the exhaustive sweep), references included.
  std::vector<TuneConfig> Product() const;
  // `layout` with the first batching and variant.
  TuneConfig WithDefaults(const TuneConfig& layout) const;
};

// TorchServe's defaults on `logical_cpus` CPUs: a worker per logical CPU, each with torch's
// default thread count (every CPU), unpinned.
TuneConfig NaiveConfig(int logical_cpus);

// Which layouts a CPU budget allows: every workers x threads with workers * threads <= units,
// pinned and unpinned, with front_cpus 1 when units >= 2 and `front` (pinned only, the front
// keeping one unit), logical-core variants when `logical_units` > `units` (hyperthreads); plus
// the naive configuration (`logical_cpus` workers x `logical_cpus` threads, unpinned) as an
// oversubscribed reference. `plan` is the rule-based plan's layout (added when missing).
std::vector<TuneConfig> CpuLayouts(int units, int logical_units, int logical_cpus, bool front,
                                   const std::vector<bool>& pinning, const TuneConfig& plan);

struct SearchOptions {
  double budget_s = 300;      // everything included
  double slo_p99_ms = 100;    // the latency objective
  int eta = 3;                // keep 1/eta per round, runs eta times longer
  double min_measure_s = 1;   // the shortest run (round 1 gets at least this)
  double max_measure_s = 30;  // no run longer than this
  // Estimated seconds a measurement costs beyond its run (start-up, warm-up, stop); replaced by
  // the observed mean once there are measurements.
  double overhead_s = 3;
  double noise = 0.05;          // throughputs closer than this (relative) are a tie: measure again
  int max_repeats = 3;          // runs per leader when they tie
  double min_agreement = 0.99;  // top-1 agreement with fp32 for a numerics-changing variant
  // Seconds since some fixed point; the real tuner passes a steady clock, tests a fake one.
  std::function<double()> clock;
  // One line per event (a round starts, a configuration measured); empty: silent.
  std::function<void(const std::string&)> progress;
};

// Everything measured about one configuration.
struct Trial {
  TuneConfig config;
  std::vector<Measurement> runs;    // in the order measured
  std::optional<double> agreement;  // top-1 agreement with fp32 (numerics-changing variants)
  int round = 0;                    // the last round it took part in
  bool reference_naive = false, reference_plan = false;

  // The runs of the longest duration measured: the ones that decide.
  std::vector<const Measurement*> Deciding() const;
  // Medians over Deciding() (0 when there are none).
  double Rps() const;
  double P99() const;
  // Why it is not eligible ("p99 12.3 > 10 ms", "3 failed", "agreement 97.0% < 99%",
  // "not measured", the run's error); empty when eligible.
  std::string Ineligible(const SearchOptions& options) const;
};

struct SearchResult {
  std::vector<Trial> trials;     // every configuration tried, in the order first measured
  std::optional<size_t> winner;  // index into trials; none when nothing met the SLO
  std::optional<size_t> naive, plan;
  bool tie = false;           // the winner's lead was within noise after the repeats
  bool interrupted = false;   // Measurer::Stopped() ended it
  bool budget_spent = false;  // the budget ended it before the last round
  int measurements = 0;
  double elapsed_s = 0;
};

// The staged successive halving described above.
SearchResult SuccessiveHalving(const TuneSpace& space, Measurer& measurer,
                               const SearchOptions& options);
// Every configuration of space.Product() (or only those labelled as in `only`, when given), one
// run of `measure_s` each, in order (the budget is ignored).
SearchResult Exhaustive(const TuneSpace& space, Measurer& measurer, const SearchOptions& options,
                        double measure_s, const std::vector<std::string>& only = {});

// Top-1 agreement between two lists of answers (same items, same order): the share of items
// whose answers name the same top class (image_classifier: the label with the highest
// probability; tensor: the argmax of "data") or the same score within 1% (image_scorer: {"score":
// x}). An answer that does not parse counts as a disagreement. 0 when either list is empty.
double TopOneAgreement(const std::vector<std::string>& reference,
                       const std::vector<std::string>& candidate);

// The median of `values`; 0 when empty.
double Median(std::vector<double> values);

}  // namespace sg::serve
