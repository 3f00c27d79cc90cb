// A seeded generator of realistic pair logs (docs/pair-log.md) with planted regressions, for the
// planted-regression suite (tests/integration/comparator/planted_regressions_test.cc).
//
// The traffic is what a gateway in front of a Fashion-MNIST image classifier (or an image
// scorer) would log: Poisson arrivals over tens of minutes from two gateway replicas, PNG and
// JPEG bodies from 300 B to 300 KB, a skewed class mix, a ~90% accurate primary with some
// low-margin answers, TorchServe's top-5 object with float32 probabilities written as Python's
// json.dumps writes them, log-normal latencies with a heavy tail, and counters lines that agree
// with the pairs. Every field of `PlantedOptions` defaults to "nothing planted": the candidate is
// then the primary itself (byte-identical answers, latencies from the same distribution).
//
// Determinism: the same options give the same bytes (own distributions over std::mt19937_64, no
// std:: distribution whose output depends on the standard library). The requests and the
// primary's answers come from their own random streams, so for one seed and one pair count
// every case plants its regression into the same traffic.
//
// Planted shares are exact counts (round(share * pairs) pairs, chosen at random), not
// probabilities, so a case's effect does not vary with the seed; which pairs carry it does.
#pragma once

#include <cstdint>
#include <string>

namespace sg::testing {

enum class PlantedModel {
  kClassifier,  // 10 Fashion-MNIST classes, TorchServe top-5 object {"label": p, ...}
  kScorer,      // image scorer, {"score": x}
};

struct PlantedOptions {
  uint64_t seed = 1;
  int pairs = 4000;  // pairs of mirror "candidate"
  PlantedModel model = PlantedModel::kClassifier;
  int64_t duration_s = 20 * 60;  // span of the arrivals
  // Requests carry the truth: x-true-label (classifier) or x-true-score (scorer).
  bool truth = false;
  // Classifier: share of requests on route "classify-v2" (the rest on "classify").
  double v2_share = 0.1;
  // Scorer: scores lie in [0, score_max]; the population has mean score_max/2, sd score_max/5.
  double score_max = 1.0;
  // Scorer with truth: the primary's error against the truth is normal with this sd (as a
  // fraction of score_max): 0.049 gives an MAE of ~0.39 on a 0..10 scale.
  double primary_error_sd = 0.049;

  // Latency of both sides, milliseconds: a per-request cost shared by the pair (log-normal with
  // median `latency_median_ms` and sd `latency_shared_sigma` in log space, larger bodies
  // costing more), times independent per-side noise exp(N(0, latency_side_sigma)), times, on an
  // independent `latency_tail_share` of each side's requests, a Pareto(1.5, latency_tail_alpha)
  // factor (a GC pause, a cold cache, a noisy neighbour).
  double latency_median_ms = 5.0;
  double latency_shared_sigma = 0.35;
  double latency_side_sigma = 0.12;
  double latency_tail_share = 0.005;
  double latency_tail_alpha = 2.0;

  // --- the candidate ("candidate" mirror), classifier answers ---
  // Numeric drift: every answer's logits get independent normal noise scaled so that its most
  // movable probability changes by ~d, d log-uniform in [prob_drift / 20, prob_drift] per request;
  // the top-1 and the five listed labels are kept. 0: byte-identical answers.
  double prob_drift = 0;
  // Two labels whose probabilities the candidate swaps in every answer (a label-map bug).
  std::string swap_a, swap_b;
  // Share of pairs whose top-1 and runner-up the candidate swaps, among low-margin pairs
  // (primary margin < 0.1; ~11% of traffic).
  double flips_low_margin = 0;
  // Share of pairs whose top-1 and runner-up the candidate swaps, among all pairs not flipped
  // above (mostly confident answers: clear errors).
  double flips_any = 0;
  // Share of pairs where the primary is right and the candidate answers the primary's
  // runner-up instead (a wrong answer).
  double accuracy_drop = 0;
  // Share of pairs where the primary is wrong and the candidate answers a third class (also
  // wrong): disagreement that costs no accuracy.
  double wrong_differently = 0;
  // Fraction of route "classify-v2"'s pairs whose top-1 and runner-up the candidate swaps.
  double v2_flip_rate = 0;
  // Share of pairs answered 200 with a body that is not JSON (a Python dict repr, an empty
  // body, a cut object).
  double invalid_json = 0;

  // --- the candidate, scorer answers ---
  double score_drift = 0;  // candidate = primary + U(-score_drift, score_drift)
  double score_bias = 0;   // candidate = primary + score_bias (clamped to the scale)
  // With truth: the candidate's error against the truth has this many times the primary's sd
  // (the primary's error plus independent extra error).
  double score_error_ratio = 1;

  // --- the candidate's latency ---
  double latency_scale = 1;  // every request
  double tail_share = 0;     // share of requests `tail_factor` times slower
  double tail_factor = 1;
  double large_body_factor = 1;  // requests with bodies over 256 KiB (~8% of traffic)

  // --- the candidate's failures (shares of pairs, disjoint) ---
  double transport_errors = 0;  // half "shadow_error" (connection reset), half "connect_failed"
  double timeouts = 0;          // "shadow_timeout" after the mirror's 5 s timeout
  // HTTP 503 with TorchServe's error body; with burst_len_s > 0, this share of the requests
  // that arrive in [burst_start_s, burst_start_s + burst_len_s) only.
  double http_503 = 0;
  int64_t burst_start_s = 0;
  int64_t burst_len_s = 0;

  // --- noise floor: mirror "noise", a second instance of the primary ---
  bool noise_mirror = false;
  double noise_flips = 0;  // share of pairs it flips, among low-margin pairs
  // Its numeric non-determinism (as prob_drift); the candidate gets prob_drift.
  double noise_drift = 1e-5;

  // --- coverage: the counters lines count this share of all requests as not mirrored ---
  double not_mirrored_share = 0;
  std::string not_mirrored_reason = "overload";  // sampled_out | body_too_large | overload
};

// The pair log (pair lines and counters lines, ordered by ts_us, each ending in '\n').
std::string GeneratePlantedLog(const PlantedOptions& options);

// The Fashion-MNIST class names, index order (models/fashion-mnist/index_to_name.json).
const char* PlantedLabel(int index);
inline constexpr int kPlantedClasses = 10;

// `value` as Python's repr() (and so json.dumps) writes it: the shortest digits that read back
// to the same double, exponent form below 1e-4 and from 1e16 ("1e-05", "0.0001", "1.0").
std::string PythonFloat(double value);

}  // namespace sg::testing
