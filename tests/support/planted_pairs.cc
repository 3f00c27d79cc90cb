#include "tests/support/planted_pairs.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <numbers>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "common/pair_record.h"

namespace sg::testing {
namespace {

constexpr std::array<const char*, kPlantedClasses> kLabels = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
constexpr int kTshirt = 0, kShirt = 6;

// Share of requests per true class: what a shop's users photograph, not the balanced test set.
// T-shirts and shirts are rare here (2% together), so that swapping the two is a few percent of
// traffic (~4%, with the other classes' answers that are wrongly one of them).
constexpr std::array<double, kPlantedClasses> kClassMix = {0.012, 0.10,  0.11, 0.12, 0.10,
                                                           0.10,  0.008, 0.20, 0.11, 0.14};
// The primary's recall per true class, shaped like a Fashion-MNIST CNN's (shirts hardest,
// trousers, sandals and bags easiest): 90.5% over kClassMix.
constexpr std::array<double, kPlantedClasses> kRecall = {0.79, 0.97, 0.79, 0.865, 0.805,
                                                         0.97, 0.55, 0.94, 0.97,  0.94};
// The classes each class is mistaken for, one of three at random (repeats weigh more).
constexpr std::array<std::array<int, 3>, kPlantedClasses> kConfusable = {{
    {kShirt, 2, 3},   // T-shirt/top: Shirt, Pullover, Dress
    {3, 3, 3},        // Trouser: Dress
    {4, 4, kShirt},   // Pullover: Coat, Shirt
    {4, 4, kTshirt},  // Dress: Coat, T-shirt/top
    {2, 2, kShirt},   // Coat: Pullover, Shirt
    {7, 7, 9},        // Sandal: Sneaker, Ankle boot
    {kTshirt, 2, 4},  // Shirt: T-shirt/top, Pullover, Coat
    {5, 9, 9},        // Sneaker: Sandal, Ankle boot
    {2, 2, kShirt},   // Bag: Pullover, Shirt
    {7, 7, 5},        // Ankle boot: Sneaker, Sandal
}};

constexpr int64_t kStartUs = 1795000000000000;   // 2026-11-18, as in docs/pair-log.md
constexpr uint64_t kLargeBody = 262144;          // 256 KiB, compare.json's last size bucket edge
constexpr int64_t kShadowTimeoutUs = 5'000'000;  // gateway.example.json's mirror timeout
constexpr int64_t kCountersIntervalUs = 60'000'000;
constexpr double kLowMargin = 0.1;
constexpr const char* kInstances[] = {"gw-a:31207", "gw-b:31988"};
constexpr const char* k503Body =
    "{\n  \"code\": 503,\n  \"type\": \"ServiceUnavailableException\",\n  \"message\": "
    "\"Model \\\"fashion\\\" has no worker to serve inference request. Please use scale workers "
    "API to add workers.\"\n}\n";

// Distributions written out here (std:: ones differ between standard libraries), over one
// mt19937_64 stream per concern.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) {
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                      static_cast<uint32_t>(stream)};
    engine_.seed(seq);
  }
  uint64_t Bits() { return engine_(); }
  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  double LogUniform(double lo, double hi) { return lo * std::exp(std::log(hi / lo) * Uniform()); }
  size_t Below(size_t n) { return static_cast<size_t>(Uniform() * static_cast<double>(n)); }
  bool Chance(double p) { return Uniform() < p; }
  double Normal() {  // Box-Muller, one value per call
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
  double Exponential() { return -std::log(1.0 - Uniform()); }
  double Pareto(double scale, double alpha) {
    return scale / std::pow(1.0 - Uniform(), 1.0 / alpha);
  }
  double Gamma(double shape) {  // Marsaglia-Tsang, shape >= 1
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x = Normal(), v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const double u = 1.0 - Uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }
  double Beta(double a, double b) {
    const double x = Gamma(a);
    return x / (x + Gamma(b));
  }
  std::string Hex(int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    while (static_cast<int>(out.size()) < digits) {
      uint64_t bits = engine_();
      for (int i = 0; i < 16 && static_cast<int>(out.size()) < digits; ++i, bits >>= 4) {
        out += kHex[bits & 15];
      }
    }
    return out;
  }
  // `k` distinct elements of `pool`, in random order (partial Fisher-Yates).
  std::vector<size_t> Sample(std::vector<size_t> pool, size_t k) {
    k = std::min(k, pool.size());
    for (size_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + Below(pool.size() - i)]);
    pool.resize(k);
    return pool;
  }

 private:
  std::mt19937_64 engine_;
};

// Random streams: the traffic (requests, the primary's answers and latency) is the same for
// every case of one seed and size; each planted effect draws from its own stream.
enum Stream : uint64_t { kTraffic = 1, kCandidate, kNoise, kFailures, kCoverage, kIds, kOffsets };

using Probs = std::array<double, kPlantedClasses>;

int Top1(const Probs& p) {
  return static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin());
}

int RunnerUp(const Probs& p) {
  const int top = Top1(p);
  int best = top == 0 ? 1 : 0;
  for (int c = 0; c < kPlantedClasses; ++c) {
    if (c != top && p[c] > p[best]) best = c;
  }
  return best;
}

// Rounds to float32 (the model's softmax output) and makes the sum at most 1.
void ToFloat32(Probs& p) {
  for (double& v : p) v = static_cast<float>(v);
  for (;;) {
    double sum = 0;
    for (double v : p) sum += v;
    if (sum <= 1.0) return;
    double& top = p[Top1(p)];
    top = std::nextafter(static_cast<float>(top - (sum - 1.0)), 0.0f);
  }
}

// A ~90% accurate classifier's answer for an image of class `truth`: a confident top-1 most of
// the time, two close candidates on a tenth of requests (more often when it is wrong).
Probs PrimaryAnswer(Rng& rng, int truth) {
  const int top = rng.Chance(kRecall[truth]) ? truth : kConfusable[truth][rng.Below(3)];
  int runner = kConfusable[top][rng.Below(3)];
  if (top != truth && rng.Chance(0.6)) runner = truth;
  double p1, p2;
  if (rng.Chance(top == truth ? 0.08 : 0.4)) {
    p1 = rng.Uniform(0.34, 0.48);
    p2 = p1 - rng.Uniform(0.002, 0.098);
  } else {
    const double rest = std::clamp(0.03 * std::exp(1.2 * rng.Normal()), 5e-5, 0.5);
    p1 = 1.0 - rest;
    p2 = rest * rng.Uniform(0.55, 0.9);
  }
  // The rest over the eight other classes, skewed, none reaching 0.9 of the runner-up.
  Probs p{};
  p[top] = p1;
  p[runner] = p2;
  std::vector<int> others;
  Probs weight{};
  double weight_sum = 0;
  for (int c = 0; c < kPlantedClasses; ++c) {
    if (c == top || c == runner) continue;
    weight[c] = 0.02 + std::pow(rng.Exponential(), 3.0);
    weight_sum += weight[c];
    others.push_back(c);
  }
  const double left = 1.0 - p1 - p2, cap = 0.9 * p2;
  for (int c : others) p[c] = left * weight[c] / weight_sum;
  for (int round = 0; round < 16; ++round) {
    double excess = 0, below = 0;
    for (int c : others) {
      if (p[c] > cap) {
        excess += p[c] - cap;
        p[c] = cap;
      } else if (p[c] < cap) {
        below += p[c];
      }
    }
    if (excess <= 0 || below <= 0) break;
    for (int c : others) {
      if (p[c] < cap) p[c] += excess * p[c] / below;
    }
  }
  ToFloat32(p);
  return p;
}

// The five labels a top-5 answer lists.
std::array<bool, kPlantedClasses> Top5(const Probs& p) {
  std::array<int, kPlantedClasses> order;
  for (int c = 0; c < kPlantedClasses; ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  std::array<bool, kPlantedClasses> listed{};
  for (int k = 0; k < 5; ++k) listed[order[k]] = true;
  return listed;
}

// Numeric drift: independent N(0, sigma) noise (cut at 3 sd) on each logit, renormalized, with
// sigma chosen so that the probability that moves most moves by about d, d log-uniform in
// [max_change / 20, max_change] (sigma at most 0.1: a confident answer's small probabilities move
// by 10% at most). Changes over 1.5 d scale sigma down. The top-1 and the set of listed labels
// are kept (halving sigma until they are, else no drift): a label that drops out of the top 5
// reads as a difference of its whole probability, which is not numeric drift.
Probs Drift(Rng& rng, const Probs& p, double max_change) {
  double spread = 0;  // the largest p(1 - p): d(p)/d(logit) of the most movable class
  for (double v : p) spread = std::max(spread, v * (1 - v));
  const double d = rng.LogUniform(max_change / 20, max_change);
  double sigma = std::min(0.1, d / std::max(spread, 1e-9));
  Probs noise;
  for (double& z : noise) z = std::clamp(rng.Normal(), -3.0, 3.0);
  for (int attempt = 0; attempt < 8; ++attempt) {
    Probs q;
    double sum = 0;
    for (int c = 0; c < kPlantedClasses; ++c) sum += q[c] = p[c] * std::exp(sigma * noise[c]);
    double change = 0;
    for (int c = 0; c < kPlantedClasses; ++c) {
      q[c] /= sum;
      change = std::max(change, std::abs(q[c] - p[c]));
    }
    ToFloat32(q);
    if (Top1(q) != Top1(p) || Top5(q) != Top5(p)) {
      sigma /= 2;
    } else if (change > 1.5 * d) {
      sigma *= d / change;
    } else {
      return q;
    }
  }
  return p;
}

// TorchServe's top-5 object as Python's json.dumps writes it (highest first).
std::string TopKBody(const Probs& p) {
  std::array<int, kPlantedClasses> order;
  for (int c = 0; c < kPlantedClasses; ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  std::string body = "{";
  for (int k = 0; k < 5; ++k) {
    if (k > 0) body += ", ";
    body += '"';
    body += kLabels[order[k]];
    body += "\": " + PythonFloat(p[order[k]]);
  }
  return body + "}";
}

std::string ScoreBody(double score) {
  return "{\"score\": " + PythonFloat(static_cast<float>(score)) + "}";
}

std::string Uuid(Rng& rng) {
  std::string h = rng.Hex(32);
  h[12] = '4';
  h[16] = "89ab"[rng.Below(4)];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

enum class Failure { kNone, kInvalidJson, kReset, kRefused, kTimeout, kHttp503 };

const char* CountersOutcome(Failure f) {
  switch (f) {
    case Failure::kReset:
    case Failure::kHttp503:  // the gateway counts a 5xx answer as shadow_error
      return "shadow_error";
    case Failure::kRefused:
      return "connect_failed";
    case Failure::kTimeout:
      return "shadow_timeout";
    default:
      return "ok";
  }
}

struct Request {
  int64_t arrival_us = 0;
  std::string id, instance, route, target, content_type, sha256;
  uint64_t size = 0;
  int truth = 0;
  double true_score = 0;
  Probs primary{};
  double primary_score = 0;
  double primary_error = 0;  // scorer: primary_score - true_score before clamping
  double cost_ms = 0;        // the request's own cost, shared by both sides
  int64_t primary_latency_us = 0;
};

struct Answer {
  Probs probs{};
  double score = 0;
  Failure failure = Failure::kNone;
  int64_t latency_us = 0;
};

class Generator {
 public:
  explicit Generator(const PlantedOptions& o)
      : o_(o),
        traffic_(o.seed, kTraffic),
        candidate_(o.seed, kCandidate),
        noise_(o.seed, kNoise),
        failures_(o.seed, kFailures),
        coverage_(o.seed, kCoverage),
        ids_(o.seed, kIds),
        offsets_(o.seed, kOffsets) {}

  std::string Run() {
    MakeTraffic();
    std::vector<Answer> candidate = CandidateAnswers();
    EmitPairs("candidate", candidate);
    if (o_.noise_mirror) EmitPairs("noise", NoiseAnswers());
    EmitCounters();
    std::stable_sort(lines_.begin(), lines_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string out;
    for (const auto& [ts, line] : lines_) out += line + "\n";
    return out;
  }

 private:
  bool classifier() const { return o_.model == PlantedModel::kClassifier; }

  std::vector<std::string> Routes() const {
    if (!classifier()) return {"score"};
    return {"classify", "classify-v2"};
  }

  uint64_t BodySize(Rng& rng, bool* png) {
    const double u = rng.Uniform();
    *png = u < 0.30;
    if (u < 0.30) return static_cast<uint64_t>(rng.LogUniform(300, 8000));        // PNG crops
    if (u < 0.80) return static_cast<uint64_t>(rng.LogUniform(8000, 120000));     // phone JPEGs
    if (u < 0.92) return static_cast<uint64_t>(rng.Uniform(120000, kLargeBody));  // photos
    return static_cast<uint64_t>(rng.Uniform(kLargeBody + 1, 300000));            // > 256 KiB
  }

  // One side's latency for a request of cost `cost_ms`, in ms.
  double SideLatencyMs(Rng& rng, double cost_ms) {
    double ms = cost_ms * std::exp(o_.latency_side_sigma * rng.Normal());
    if (rng.Chance(o_.latency_tail_share)) {
      ms *= std::min(rng.Pareto(1.5, o_.latency_tail_alpha), 200.0);
    }
    return ms;
  }

  static int64_t Micros(double ms) { return std::max<int64_t>(150, std::llround(ms * 1000)); }

  void MakeTraffic() {
    const int n = o_.pairs;
    const int64_t span_us = o_.duration_s * 1'000'000;
    std::vector<int64_t> arrivals(n);
    for (auto& a : arrivals) a = static_cast<int64_t>(traffic_.Uniform() * span_us);
    std::sort(arrivals.begin(), arrivals.end());
    std::set<std::string> ids;
    requests_.resize(n);
    for (int i = 0; i < n; ++i) {
      Request& r = requests_[i];
      r.arrival_us = arrivals[i];
      do {
        r.id = Uuid(ids_);
      } while (!ids.insert(r.id).second);
      r.instance = kInstances[traffic_.Below(2)];
      bool png = false;
      r.size = BodySize(traffic_, &png);
      r.content_type = png ? "image/png" : "image/jpeg";
      r.sha256 = traffic_.Hex(64);
      if (classifier()) {
        const bool v2 = traffic_.Chance(o_.v2_share);
        r.route = v2 ? "classify-v2" : "classify";
        r.target = v2 ? "/v2/predictions/fashion" : "/predictions/fashion";
        double u = traffic_.Uniform();
        r.truth = kPlantedClasses - 1;
        for (int c = 0; c < kPlantedClasses; ++c) {
          if (u < kClassMix[c]) {
            r.truth = c;
            break;
          }
          u -= kClassMix[c];
        }
        r.primary = PrimaryAnswer(traffic_, r.truth);
      } else {
        r.route = "score";
        r.target = "/predictions/image_scorer";
        const double population = o_.score_max * traffic_.Beta(2.6, 2.6);
        if (o_.truth) {
          r.true_score = std::round(population * 100) / 100;  // ratings come with 2 decimals
          r.primary_error = o_.primary_error_sd * o_.score_max * traffic_.Normal();
          r.primary_score = std::clamp(r.true_score + r.primary_error, 0.0, o_.score_max);
        } else {
          r.primary_score = population;
        }
        r.primary_score = static_cast<float>(r.primary_score);
      }
      r.cost_ms = o_.latency_median_ms * std::exp(o_.latency_shared_sigma * traffic_.Normal()) *
                  (0.85 + 0.6 * static_cast<double>(r.size) / 300000.0);
      r.primary_latency_us = Micros(SideLatencyMs(traffic_, r.cost_ms));
    }
  }

  std::vector<size_t> Indices(bool (*keep)(const Request&, const PlantedOptions&)) const {
    std::vector<size_t> out;
    for (size_t i = 0; i < requests_.size(); ++i) {
      if (keep(requests_[i], o_)) out.push_back(i);
    }
    return out;
  }

  size_t Count(double share) const {
    return static_cast<size_t>(std::llround(share * static_cast<double>(requests_.size())));
  }

  static bool LowMargin(const Request& r, const PlantedOptions&) {
    return r.primary[Top1(r.primary)] - r.primary[RunnerUp(r.primary)] < kLowMargin;
  }

  // Picks `k` pairs of `pool` not yet in `taken`, and marks them taken.
  std::vector<size_t> Pick(Rng& rng, std::vector<size_t> pool, size_t k, std::vector<bool>& taken) {
    std::erase_if(pool, [&](size_t i) { return taken[i]; });
    auto picked = rng.Sample(std::move(pool), k);
    for (size_t i : picked) taken[i] = true;
    return picked;
  }

  std::vector<Answer> CandidateAnswers() {
    const size_t n = requests_.size();
    std::vector<Answer> out(n);
    std::vector<bool> taken(n, false);
    std::vector<size_t> all(n);
    for (size_t i = 0; i < n; ++i) all[i] = i;
    for (size_t i = 0; i < n; ++i) {
      out[i].probs = requests_[i].primary;
      out[i].score = requests_[i].primary_score;
    }

    if (classifier()) {
      // Label swap: every answer.
      if (!o_.swap_a.empty()) {
        const int a = Index(o_.swap_a), b = Index(o_.swap_b);
        for (auto& answer : out) std::swap(answer.probs[a], answer.probs[b]);
      }
      auto swap_top2 = [&](size_t i) {
        Probs& p = out[i].probs;
        std::swap(p[Top1(p)], p[RunnerUp(p)]);
      };
      for (size_t i : Pick(candidate_, Indices(LowMargin), Count(o_.flips_low_margin), taken)) {
        swap_top2(i);
      }
      for (size_t i : Pick(candidate_, all, Count(o_.flips_any), taken)) swap_top2(i);
      auto right = [](const Request& r, const PlantedOptions&) {
        return Top1(r.primary) == r.truth;
      };
      for (size_t i : Pick(candidate_, Indices(right), Count(o_.accuracy_drop), taken)) {
        swap_top2(i);
      }
      auto wrong = [](const Request& r, const PlantedOptions&) {
        return Top1(r.primary) != r.truth;
      };
      for (size_t i : Pick(candidate_, Indices(wrong), Count(o_.wrong_differently), taken)) {
        Probs& p = out[i].probs;
        const int top = Top1(p);
        int third = -1;
        for (int c = 0; c < kPlantedClasses; ++c) {
          if (c != top && c != requests_[i].truth && (third < 0 || p[c] > p[third])) third = c;
        }
        std::swap(p[top], p[third]);
      }
      auto v2 = [](const Request& r, const PlantedOptions&) { return r.route == "classify-v2"; };
      const auto v2_pairs = Indices(v2);
      const auto v2_flips =
          static_cast<size_t>(std::llround(o_.v2_flip_rate * static_cast<double>(v2_pairs.size())));
      for (size_t i : Pick(candidate_, v2_pairs, v2_flips, taken)) swap_top2(i);
      if (o_.prob_drift > 0) {
        for (auto& answer : out) answer.probs = Drift(candidate_, answer.probs, o_.prob_drift);
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        const Request& r = requests_[i];
        double s = r.primary_score;
        if (o_.truth && o_.score_error_ratio != 1) {
          const double extra_sd = o_.primary_error_sd * o_.score_max *
                                  std::sqrt(o_.score_error_ratio * o_.score_error_ratio - 1);
          s = r.true_score + r.primary_error + extra_sd * candidate_.Normal();
        }
        if (o_.score_drift > 0) s += candidate_.Uniform(-o_.score_drift, o_.score_drift);
        s += o_.score_bias;
        s = std::clamp(s, 0.0, o_.score_max);
        out[i].score = static_cast<float>(s);
      }
    }

    // Latency: the same per-side model as the primary, then the planted slowdowns.
    const auto tail = candidate_.Sample(all, Count(o_.tail_share));
    std::vector<bool> in_tail(n, false);
    for (size_t i : tail) in_tail[i] = true;
    for (size_t i = 0; i < n; ++i) {
      double ms = SideLatencyMs(candidate_, requests_[i].cost_ms) * o_.latency_scale;
      if (requests_[i].size > kLargeBody) ms *= o_.large_body_factor;
      if (in_tail[i]) ms *= o_.tail_factor;
      out[i].latency_us = Micros(ms);
    }

    // Failures, on disjoint pairs.
    std::vector<bool> failed(n, false);
    size_t k = 0;
    for (size_t i : Pick(failures_, all, Count(o_.transport_errors), failed)) {
      out[i].failure = k++ % 2 == 0 ? Failure::kReset : Failure::kRefused;
    }
    for (size_t i : Pick(failures_, all, Count(o_.timeouts), failed)) {
      out[i].failure = Failure::kTimeout;
    }
    for (size_t i : Pick(failures_, all, Count(o_.invalid_json), failed)) {
      out[i].failure = Failure::kInvalidJson;
    }
    if (o_.burst_len_s > 0) {
      std::vector<size_t> window;
      for (size_t i = 0; i < n; ++i) {
        const int64_t at = requests_[i].arrival_us;
        if (at >= o_.burst_start_s * 1'000'000 &&
            at < (o_.burst_start_s + o_.burst_len_s) * 1'000'000) {
          window.push_back(i);
        }
      }
      const auto count =
          static_cast<size_t>(std::llround(o_.http_503 * static_cast<double>(window.size())));
      for (size_t i : Pick(failures_, window, count, failed)) out[i].failure = Failure::kHttp503;
    } else {
      for (size_t i : Pick(failures_, all, Count(o_.http_503), failed)) {
        out[i].failure = Failure::kHttp503;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      switch (out[i].failure) {
        case Failure::kReset:  // reset part-way through the answer
          out[i].latency_us =
              std::max<int64_t>(150, std::llround(out[i].latency_us * failures_.Uniform(0.3, 1.0)));
          break;
        case Failure::kRefused:
          out[i].latency_us = std::llround(failures_.Uniform(80, 900));
          break;
        case Failure::kTimeout:
          out[i].latency_us = kShadowTimeoutUs + std::llround(failures_.Uniform(50, 4000));
          break;
        case Failure::kHttp503:  // rejected at the queue, before inference
          out[i].latency_us = std::llround(failures_.Uniform(300, 1500));
          break;
        default:
          break;
      }
    }
    return out;
  }

  // A second instance of the primary: its own latency draws, numeric non-determinism, and
  // top-1 flips on low-margin requests.
  std::vector<Answer> NoiseAnswers() {
    const size_t n = requests_.size();
    std::vector<Answer> out(n);
    std::vector<bool> taken(n, false);
    for (size_t i = 0; i < n; ++i) out[i].probs = requests_[i].primary;
    for (size_t i : Pick(noise_, Indices(LowMargin), Count(o_.noise_flips), taken)) {
      Probs& p = out[i].probs;
      std::swap(p[Top1(p)], p[RunnerUp(p)]);
    }
    for (size_t i = 0; i < n; ++i) {
      if (o_.noise_drift > 0) out[i].probs = Drift(noise_, out[i].probs, o_.noise_drift);
      out[i].latency_us = Micros(SideLatencyMs(noise_, requests_[i].cost_ms));
    }
    return out;
  }

  static int Index(const std::string& label) {
    for (int c = 0; c < kPlantedClasses; ++c) {
      if (label == kLabels[c]) return c;
    }
    std::fprintf(stderr, "planted_pairs: unknown label %s\n", label.c_str());
    std::abort();
  }

  std::string Body(const Probs& p, double score) const {
    return classifier() ? TopKBody(p) : ScoreBody(score);
  }

  void EmitPairs(const std::string& mirror, const std::vector<Answer>& answers) {
    for (size_t i = 0; i < requests_.size(); ++i) {
      const Request& r = requests_[i];
      const Answer& a = answers[i];
      PairRecord p;
      p.id = r.id;
      p.ts_us = kStartUs + r.arrival_us + r.primary_latency_us;
      p.route = r.route;
      p.mirror = mirror;
      p.request.method = "POST";
      p.request.target = r.target;
      p.request.size = r.size;
      p.request.sha256 = r.sha256;
      p.request.headers["content-type"] = r.content_type;
      if (o_.truth) {
        if (classifier()) {
          p.request.headers["x-true-label"] = kLabels[r.truth];
        } else {
          p.request.headers["x-true-score"] = PythonFloat(r.true_score);
        }
      }
      p.primary.status = 200;
      p.primary.outcome = "ok";
      p.primary.latency_us = r.primary_latency_us;
      p.primary.headers["content-type"] = "application/json";
      p.primary.body = Body(r.primary, r.primary_score);

      CapturedResponse& s = p.shadow;
      s.outcome = "ok";
      s.status = 200;
      s.headers["content-type"] = "application/json";
      s.body = Body(a.probs, a.score);
      switch (a.failure) {
        case Failure::kNone:
          break;
        case Failure::kInvalidJson:
          switch (invalid_++ % 3) {
            case 0:  // a handler that returned str(dict)
              std::replace(s.body.begin(), s.body.end(), '"', '\'');
              break;
            case 1:  // an empty 200
              s.body.clear();
              break;
            default:  // an answer cut short by the handler
              s.body.resize(s.body.size() / 2);
              break;
          }
          break;
        case Failure::kReset:
          s = {};
          s.outcome = "shadow_error";
          s.error = "upstream 10.0.7.21:8082: Connection reset by peer";
          break;
        case Failure::kRefused:
          s = {};
          s.outcome = "connect_failed";
          s.error = "connect 10.0.7.21:8082: Connection refused";
          break;
        case Failure::kTimeout:
          s = {};
          s.outcome = "shadow_timeout";
          s.error = "upstream timeout";
          break;
        case Failure::kHttp503:
          s.outcome = "shadow_error";
          s.status = 503;
          s.body = k503Body;
          break;
      }
      s.latency_us = a.latency_us;
      s.send_offset_us = std::llround(offsets_.Uniform(3, 80));
      lines_.emplace_back(p.ts_us, EncodePairLogLine(p));
      events_.push_back({p.ts_us, r.instance, r.route, mirror, "", CountersOutcome(a.failure)});
    }
    mirrors_.push_back(mirror);
  }

  void EmitCounters() {
    // Requests the gateway did not mirror: not in the log, only in the counters (both mirrors
    // of a route skip the same requests).
    const double share = o_.not_mirrored_share;
    const auto skipped = share <= 0
                             ? 0
                             : static_cast<size_t>(std::llround(
                                   static_cast<double>(requests_.size()) * share / (1.0 - share)));
    const auto routes = Routes();
    const int64_t span_us = o_.duration_s * 1'000'000;
    for (size_t i = 0; i < skipped; ++i) {
      const int64_t ts = kStartUs + static_cast<int64_t>(coverage_.Uniform() * span_us);
      const std::string instance = kInstances[coverage_.Below(2)];
      const std::string route =
          classifier() && coverage_.Chance(o_.v2_share) ? "classify-v2" : routes[0];
      for (const auto& mirror : mirrors_) {
        events_.push_back({ts, instance, route, mirror, o_.not_mirrored_reason, ""});
      }
    }
    std::sort(events_.begin(), events_.end(),
              [](const Event& a, const Event& b) { return a.ts_us < b.ts_us; });
    const int64_t last = events_.empty() ? kStartUs : events_.back().ts_us;

    using Key = std::tuple<std::string, std::string, std::string>;
    std::map<Key, MirrorCounters> totals;
    for (const char* instance : kInstances) {
      for (const auto& route : routes) {
        for (const auto& mirror : mirrors_) {
          MirrorCounters& c = totals[{instance, route, mirror}];
          c.instance = instance;
          c.route = route;
          c.mirror = mirror;
          for (const char* reason : {"sampled_out", "body_too_large", "overload"}) {
            c.not_mirrored[reason] = 0;
          }
          for (const char* outcome : {"ok", "shadow_error", "shadow_timeout", "connect_failed"}) {
            c.mirrored[outcome] = 0;
          }
        }
      }
    }
    size_t next = 0;
    for (int64_t tick = kStartUs + kCountersIntervalUs;; tick += kCountersIntervalUs) {
      const bool final_tick = tick > last;
      if (final_tick) tick = last + 1000;  // at shutdown
      for (; next < events_.size() && events_[next].ts_us <= tick; ++next) {
        const Event& e = events_[next];
        MirrorCounters& c = totals[{e.instance, e.route, e.mirror}];
        ++c.requests;
        if (!e.not_mirrored.empty()) {
          ++c.not_mirrored[e.not_mirrored];
        } else {
          ++c.mirrored[e.outcome];
        }
      }
      for (auto& [key, c] : totals) {
        c.ts_us = tick;
        lines_.emplace_back(tick, EncodePairLogLine(c));
      }
      if (final_tick) break;
    }
  }

  struct Event {
    int64_t ts_us;
    std::string instance, route, mirror;
    std::string not_mirrored;  // a reason, or "" when mirrored
    std::string outcome;       // counters outcome when mirrored
  };

  const PlantedOptions& o_;
  Rng traffic_, candidate_, noise_, failures_, coverage_, ids_, offsets_;
  std::vector<Request> requests_;
  std::vector<std::string> mirrors_;
  std::vector<Event> events_;
  std::vector<std::pair<int64_t, std::string>> lines_;
  int invalid_ = 0;
};

}  // namespace

const char* PlantedLabel(int index) {
  return kLabels.at(index);
}

std::string PythonFloat(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  char buf[64];
  const auto result =
      std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);  // shortest
  std::string text(buf, result.ptr);
  std::string sign;
  if (text[0] == '-') {
    sign = "-";
    text.erase(0, 1);
  }
  const size_t e = text.find('e');
  const int exponent = std::stoi(text.substr(e + 1));
  std::string digits = text.substr(0, e);
  std::erase(digits, '.');
  std::string out;
  if (exponent < -4 || exponent >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const int magnitude = std::abs(exponent);
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
  } else if (exponent < 0) {
    out = "0." + std::string(-exponent - 1, '0') + digits;
  } else {
    const auto whole = static_cast<size_t>(exponent) + 1;
    if (digits.size() <= whole) {
      out = digits + std::string(whole - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, whole) + "." + digits.substr(whole);
    }
  }
  return sign + out;
}

std::string GeneratePlantedLog(const PlantedOptions& options) {
  return Generator(options).Run();
}

}  // namespace sg::testing
