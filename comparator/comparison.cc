#include "comparator/comparison.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/rank_tests.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

constexpr int kMaxWindows = 240;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Ms(double us) {
  return us / 1000.0;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

double Rate(uint64_t num, uint64_t den) {
  return den ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}

// A JSON number, or null when not finite (JSON has no NaN).
json Num(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

double OutcomeTier(Outcome o) {
  switch (o) {
    case Outcome::kMismatch:
      return 3;
    case Outcome::kUnparseable:
      return 2;
    case Outcome::kShadowError:
    case Outcome::kShadowTimeout:
      return 1;
    default:
      return 0;
  }
}

// Worse examples first; ties by id, then time, so the kept set does not depend on order.
bool Worse(const Example& a, const Example& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.id != b.id) return a.id < b.id;
  return a.ts_us < b.ts_us;
}

void RedactJson(json& v, const std::vector<JsonPathPattern>& patterns,
                std::vector<JsonPathPattern::Segment>& path) {
  for (const auto& p : patterns) {
    if (PathMatches(p, path)) {
      v = "[redacted]";
      return;
    }
  }
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      path.push_back({false, false, it.key(), 0});
      RedactJson(it.value(), patterns, path);
      path.pop_back();
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      path.push_back({true, false, "", i});
      RedactJson(v[i], patterns, path);
      path.pop_back();
    }
  }
}

std::string ShowBody(const std::string& body, const RedactOptions& redact) {
  if (!IsValidUtf8(body)) return "<" + std::to_string(body.size()) + " bytes, not text>";
  std::string shown = body;
  if (!redact.json_fields.empty()) {
    if (auto doc = ParseBodyJson(body)) {
      std::vector<JsonPathPattern::Segment> path;
      RedactJson(*doc, redact.json_fields, path);
      shown = doc->dump(-1, ' ', false, json::error_handler_t::replace);
    } else {
      shown = "<" + std::to_string(body.size()) + " bytes, not JSON: withheld>";
    }
  }
  if (shown.size() > redact.body_chars) {
    size_t cut = redact.body_chars;
    while (cut > 0 && (static_cast<unsigned char>(shown[cut]) & 0xC0) == 0x80) --cut;
    shown = shown.substr(0, cut) + "...";
  }
  return shown;
}

json LatencySide(const LatencyHistogram& h, uint64_t requests, uint64_t fails) {
  json out = {{"requests", requests},
              {"fails", fails},
              {"count", h.count()},
              {"mean_ms", Ms(h.mean())},
              {"min_ms", Ms(static_cast<double>(h.min()))},
              {"p50_ms", Ms(h.Quantile(0.5))},
              {"p90_ms", Ms(h.Quantile(0.9))},
              {"p95_ms", Ms(h.Quantile(0.95))},
              {"p99_ms", Ms(h.Quantile(0.99))},
              {"p999_ms", Ms(h.Quantile(0.999))},
              {"max_ms", Ms(static_cast<double>(h.max()))}};
  json buckets = json::array();
  for (const auto& b : h.NonEmptyBuckets()) {
    buckets.push_back({Ms(static_cast<double>(b.low)), Ms(static_cast<double>(b.high)), b.count});
  }
  out["histogram"] = std::move(buckets);
  return out;
}

json RankJson(const RankTestResult& r) {
  json out = {{"valid", r.valid},
              {"exact", r.exact},
              {"statistic", Num(r.statistic)},
              {"p_value", Num(r.p_value)},
              {"estimate_ms", Num(r.estimate)},
              {"ci_low_ms", Num(r.ci_low)},
              {"ci_high_ms", Num(r.ci_high)},
              {"confidence", r.confidence},
              {"n_x", r.n_x},
              {"n_y", r.n_y}};
  if (!r.note.empty()) out["note"] = r.note;
  return out;
}

json SideJson(const SparseHistogram& h, uint64_t fails) {
  return {{"count", h.count()},
          {"fails", fails},
          {"mean_ms", Ms(h.mean())},
          {"min_ms", Ms(static_cast<double>(h.min()))},
          {"max_ms", Ms(static_cast<double>(h.max()))},
          {"p50_ms", Ms(h.Quantile(0.5))},
          {"p99_ms", Ms(h.Quantile(0.99))}};
}

json SliceJson(const std::string& name, const SliceStats& s) {
  json outcomes = json::object();
  for (Outcome o : kAllOutcomes) outcomes[OutcomeName(o)] = s.outcomes[static_cast<size_t>(o)];
  const uint64_t eligible = s.pairs - s.outcomes[static_cast<size_t>(Outcome::kPrimaryError)];
  const uint64_t bad = s.outcomes[static_cast<size_t>(Outcome::kMismatch)] +
                       s.outcomes[static_cast<size_t>(Outcome::kUnparseable)];
  json out = {{"name", name},
              {"pairs", s.pairs},
              {"outcomes", outcomes},
              {"mismatch_rate", Rate(bad, eligible)},
              {"classified", s.classified},
              {"top1_agreement", s.classified ? json(Rate(s.top1_agree, s.classified)) : json()},
              {"labeled", s.labeled},
              {"primary", SideJson(s.primary_latency,
                                   s.outcomes[static_cast<size_t>(Outcome::kPrimaryError)])},
              {"shadow", SideJson(s.shadow_latency,
                                  s.outcomes[static_cast<size_t>(Outcome::kShadowError)] +
                                      s.outcomes[static_cast<size_t>(Outcome::kShadowTimeout)])}};
  if (s.labeled) {
    out["primary_accuracy"] = Rate(s.primary_correct, s.labeled);
    out["shadow_accuracy"] = Rate(s.shadow_correct, s.labeled);
  }
  return out;
}

json SliceList(const std::map<std::string, SliceStats>& slices) {
  std::vector<std::pair<std::string, const SliceStats*>> sorted;
  for (const auto& [k, v] : slices) sorted.emplace_back(k, &v);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second->pairs > b.second->pairs; });
  json out = json::array();
  for (const auto& [k, v] : sorted) out.push_back(SliceJson(k, *v));
  return out;
}

}  // namespace

// --- SparseHistogram ---------------------------------------------------------------------------

void SparseHistogram::Record(int64_t value) {
  if (value < 0) value = 0;
  const auto index = static_cast<uint32_t>(LatencyHistogram::BucketIndex(value));
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), index,
                             [](const auto& b, uint32_t i) { return b.first < i; });
  if (it != buckets_.end() && it->first == index) {
    ++it->second;
  } else {
    buckets_.insert(it, {index, 1});
  }
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  sum_ += static_cast<double>(value);
}

void SparseHistogram::Merge(const SparseHistogram& other) {
  if (other.count_ == 0) return;
  std::vector<std::pair<uint32_t, uint64_t>> merged;
  merged.reserve(buckets_.size() + other.buckets_.size());
  auto a = buckets_.cbegin();
  auto b = other.buckets_.cbegin();
  while (a != buckets_.cend() || b != other.buckets_.cend()) {
    if (b == other.buckets_.end() || (a != buckets_.end() && a->first < b->first)) {
      merged.push_back(*a++);
    } else if (a == buckets_.end() || b->first < a->first) {
      merged.push_back(*b++);
    } else {
      merged.push_back({a->first, a->second + b->second});
      ++a;
      ++b;
    }
  }
  buckets_ = std::move(merged);
  min_ = count_ ? std::min(min_, other.min_) : other.min_;
  max_ = count_ ? std::max(max_, other.max_) : other.max_;
  count_ += other.count_;
  sum_ += other.sum_;
}

double SparseHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * count_));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (const auto& [index, n] : buckets_) {
    seen += n;
    if (seen >= rank) {
      const double low = static_cast<double>(LatencyHistogram::BucketLow(index));
      const double high = static_cast<double>(LatencyHistogram::BucketHigh(index));
      const double mid = high - low <= 1 ? low : (low + high - 1) / 2;
      return std::clamp(mid, static_cast<double>(min_), static_cast<double>(max_));
    }
  }
  return static_cast<double>(max_);
}

void SliceStats::Merge(const SliceStats& o) {
  pairs += o.pairs;
  for (size_t i = 0; i < kOutcomeCount; ++i) outcomes[i] += o.outcomes[i];
  classified += o.classified;
  top1_agree += o.top1_agree;
  labeled += o.labeled;
  primary_correct += o.primary_correct;
  shadow_correct += o.shadow_correct;
  primary_latency.Merge(o.primary_latency);
  shadow_latency.Merge(o.shadow_latency);
}

// --- Comparison --------------------------------------------------------------------------------

Comparison::Comparison(std::shared_ptr<const CompareConfig> config)
    : config_(std::move(config)),
      margin_buckets_(config_->rules.empty() ? 1 : 0),
      rng_state_(config_->seed) {
  uint64_t low = 0;
  for (uint64_t edge : config_->size_buckets) {
    size_bucket_names_.push_back(std::to_string(low) + "-" + std::to_string(edge - 1) + " B");
    low = edge;
  }
  size_bucket_names_.push_back(">=" + std::to_string(low) + " B");
  if (!config_->noise_floor.mirror.empty()) {
    // The noise comparison shares the rules but has no noise floor of its own.
    auto inner = std::make_shared<CompareConfig>(*config_);
    inner->noise_floor = NoiseFloor{};
    noise_ = std::make_unique<Comparison>(std::move(inner));
  }
  // Margin buckets come from the first classification rule (one set per run).
  for (const auto& rule : config_->rules) {
    if (rule.kind == CompareKind::kClassification) {
      margin_buckets_.assign(rule.margin_buckets.size() + 1, MarginBucket{});
      break;
    }
  }
  if (margin_buckets_.empty()) margin_buckets_.assign(1, MarginBucket{});
}

const std::string& Comparison::SizeBucket(uint64_t size) const {
  const auto& edges = config_->size_buckets;
  size_t i = 0;
  while (i < edges.size() && size >= edges[i]) ++i;
  return size_bucket_names_[i];
}

void Comparison::AddToBoundedMap(std::map<std::string, uint64_t>& map, const std::string& key,
                                 uint64_t count, size_t limit) {
  auto it = map.find(key);
  if (it != map.end()) {
    it->second += count;
  } else if (map.size() < limit) {
    map.emplace(key, count);
  } else {
    map["(other)"] += count;
  }
}

void Comparison::AddToSlice(std::map<std::string, SliceStats>& slices, const std::string& key,
                            const PairRecord& pair, const PairJudgement& j,
                            const std::string& true_label) {
  auto it = slices.find(key);
  if (it == slices.end()) {
    const std::string& k = slices.size() < config_->max_slices ? key : std::string("(other)");
    it = slices.try_emplace(k).first;
  }
  RecordInSlice(it->second, pair, j, true_label);
}

void RecordInSlice(SliceStats& s, const PairRecord& pair, const PairJudgement& j,
                   const std::string& true_label) {
  ++s.pairs;
  ++s.outcomes[static_cast<size_t>(j.outcome)];
  if (j.classification) {
    ++s.classified;
    if (j.classification->top1_agree) ++s.top1_agree;
    if (!true_label.empty()) {
      ++s.labeled;
      if (j.classification->primary_top1 == true_label) ++s.primary_correct;
      if (j.classification->shadow_top1 == true_label) ++s.shadow_correct;
    }
  }
  if (pair.primary.outcome == "ok" && pair.primary.status != 0) {
    s.primary_latency.Record(pair.primary.latency_us);
  }
  if (pair.shadow.outcome == "ok" && pair.shadow.status != 0) {
    s.shadow_latency.Record(pair.shadow.latency_us);
  }
}

void Comparison::AddConfusion(const std::string& primary, const std::string& shadow,
                              uint64_t count) {
  // At most max_slices labels per axis; later ones are "(other)".
  auto bounded = [&](std::set<std::string>& seen, const std::string& label) -> std::string {
    if (seen.count(label)) return label;
    if (seen.size() < config_->max_slices) {
      seen.insert(label);
      return label;
    }
    return "(other)";
  };
  confusion_[{bounded(confusion_primary_labels_, primary),
              bounded(confusion_shadow_labels_, shadow)}] += count;
}

void Comparison::AddExample(Example example) {
  if (config_->max_examples == 0) return;
  auto pos = std::lower_bound(examples_.begin(), examples_.end(), example, Worse);
  examples_.insert(pos, std::move(example));
  if (examples_.size() > config_->max_examples) examples_.pop_back();
}

Comparison::~Comparison() = default;
Comparison::Comparison(Comparison&&) noexcept = default;

PairJudgement Comparison::Add(const PairRecord& pair) {
  if (noise_ && pair.mirror == config_->noise_floor.mirror) return noise_->Add(pair);
  PairJudgement j = JudgePair(*config_, pair);
  ++pairs_;
  ++outcomes_[static_cast<size_t>(j.outcome)];
  if (pairs_ == 1) {
    first_ts_us_ = last_ts_us_ = pair.ts_us;
  } else {
    first_ts_us_ = std::min(first_ts_us_, pair.ts_us);
    last_ts_us_ = std::max(last_ts_us_, pair.ts_us);
  }
  ++status_matrix_[{pair.primary.status, pair.shadow.status}];
  static const std::string kNoRule = "(exact bytes)";
  AddToBoundedMap(rule_pairs_, j.rule ? j.rule->name : kNoRule, 1, config_->max_slices);
  if (j.outcome == Outcome::kMismatch || j.outcome == Outcome::kUnparseable) {
    for (const auto& f : j.fields) AddToBoundedMap(differing_fields_, f, 1, config_->max_fields);
  }
  if (j.outcome != Outcome::kMatch && j.outcome != Outcome::kWithinTolerance) {
    // Reasons without their numbers, so they aggregate.
    std::string reason = j.reason.substr(0, j.reason.find_first_of("0123456789"));
    AddToBoundedMap(mismatch_reasons_, std::string(OutcomeName(j.outcome)) + ": " + reason, 1,
                    config_->max_fields);
  }

  std::string true_label;
  if (!config_->true_label_header.empty()) {
    auto it = pair.request.headers.find(config_->true_label_header);
    if (it != pair.request.headers.end()) true_label = it->second;
  }
  if (j.classification) {
    const auto& m = *j.classification;
    auto& c = classification_;
    ++c.n;
    if (m.top1_agree) ++c.top1_agree;
    c.sum_topk_overlap += m.topk_overlap;
    c.sum_max_abs_diff += m.max_abs_diff;
    c.max_max_abs_diff = std::max(c.max_max_abs_diff, m.max_abs_diff);
    c.sum_tv += m.total_variation;
    c.sum_js += m.js_distance;
    c.max_js = std::max(c.max_js, m.js_distance);
    c.js_milli.Record(static_cast<int64_t>(std::llround(m.js_distance * 1e6)));
    size_t bucket = 0;
    const auto& edges = j.rule->margin_buckets;
    while (bucket < edges.size() && bucket + 1 < margin_buckets_.size() &&
           m.primary_margin >= edges[bucket]) {
      ++bucket;
    }
    ++margin_buckets_[bucket].pairs;
    if (!m.top1_agree) ++margin_buckets_[bucket].flips;
    AddConfusion(m.primary_top1, m.shadow_top1, 1);
    if (!true_label.empty()) {
      auto& a = accuracy_;
      ++a.labeled;
      const bool pc = m.primary_top1 == true_label, sc = m.shadow_top1 == true_label;
      if (pc) ++a.primary_correct;
      if (sc) ++a.shadow_correct;
      if (pc && !sc) ++a.only_primary_correct;
      if (sc && !pc) ++a.only_shadow_correct;
    }
  }
  if (j.regression) {
    auto& r = regression_;
    ++r.pairs;
    r.values += j.regression->n;
    r.sum_abs += j.regression->mae * static_cast<double>(j.regression->n);
    r.sum_sq += j.regression->rmse * j.regression->rmse * static_cast<double>(j.regression->n);
    r.max_error = std::max(r.max_error, j.regression->max_error);
    r.max_rel_error = std::max(r.max_rel_error, j.regression->max_rel_error);
  }
  if (j.embedding) {
    auto& e = embedding_;
    ++e.pairs;
    e.sum_cosine += j.embedding->cosine;
    e.min_cosine = std::min(e.min_cosine, j.embedding->cosine);
    e.sum_rel_l2 += j.embedding->rel_l2;
    e.max_rel_l2 = std::max(e.max_rel_l2, j.embedding->rel_l2);
  }

  // Latency per side (a response arrived) and paired (both arrived).
  const bool primary_ok = pair.primary.outcome == "ok" && pair.primary.status != 0;
  const bool shadow_ok = pair.shadow.outcome == "ok" && pair.shadow.status != 0;
  if (primary_ok) primary_latency_.Record(pair.primary.latency_us);
  if (shadow_ok) shadow_latency_.Record(pair.shadow.latency_us);
  if (!primary_ok || pair.primary.status >= 500) ++primary_fails_;
  if (!shadow_ok || pair.shadow.status >= 500) ++shadow_fails_;
  if (primary_ok && shadow_ok) {
    latency_diff_.Record(pair.shadow.latency_us - pair.primary.latency_us);
    const double ratio = static_cast<double>(pair.shadow.latency_us) /
                         static_cast<double>(std::max<int64_t>(1, pair.primary.latency_us));
    latency_ratio_milli_.Record(static_cast<int64_t>(std::llround(ratio * 1000)));
    ++reservoir_seen_;
    const std::pair<int64_t, int64_t> sample{pair.primary.latency_us, pair.shadow.latency_us};
    if (reservoir_.size() < config_->reservoir_size) {
      reservoir_.push_back(sample);
    } else {
      const uint64_t slot = SplitMix64(rng_state_) % reservoir_seen_;
      if (slot < reservoir_.size()) reservoir_[slot] = sample;
    }
  }

  static const std::string kNoLabel = "(none)";
  const std::string& label = j.classification ? j.classification->primary_top1 : kNoLabel;
  AddToSlice(by_route_, pair.route, pair, j, true_label);
  AddToSlice(by_model_, pair.mirror, pair, j, true_label);
  AddToSlice(by_label_, label, pair, j, true_label);
  AddToSlice(by_size_, SizeBucket(pair.request.size), pair, j, true_label);

  const int64_t width = config_->window.count() << window_level_;
  RecordInSlice(windows_[FloorDiv(pair.ts_us, width)], pair, j, true_label);
  if (windows_.size() > kMaxWindows) CoarsenWindows(window_level_ + 1);

  const double tier = OutcomeTier(j.outcome);
  if (tier > 0 && config_->max_examples > 0) {
    Example e;
    e.score = tier + 0.999 * std::clamp(j.severity, 0.0, 1.0);
    e.id = pair.id;
    e.ts_us = pair.ts_us;
    const bool keep = examples_.size() < config_->max_examples || Worse(e, examples_.back());
    if (keep) {
      e.route = pair.route;
      e.mirror = pair.mirror;
      e.outcome = OutcomeName(j.outcome);
      e.reason = j.reason;
      e.fields.assign(j.fields.begin(), j.fields.begin() + std::min<size_t>(j.fields.size(), 10));
      for (const auto& [name, value] : pair.request.headers) {
        const bool secret =
            std::find(config_->redact.headers.begin(), config_->redact.headers.end(), name) !=
            config_->redact.headers.end();
        e.request_headers[name] = secret ? "[redacted]" : value;
      }
      e.request_size = pair.request.size;
      e.request_sha256 = pair.request.sha256;
      e.primary_status = pair.primary.status;
      e.shadow_status = pair.shadow.status;
      e.primary_latency_us = pair.primary.latency_us;
      e.shadow_latency_us = pair.shadow.latency_us;
      e.primary_body = ShowBody(pair.primary.body, config_->redact);
      e.shadow_body = ShowBody(pair.shadow.body, config_->redact);
      AddExample(std::move(e));
    }
  }
  return j;
}

void Comparison::CoarsenWindows(int level) {
  while (window_level_ < level || windows_.size() > kMaxWindows) {
    std::map<int64_t, SliceStats> coarser;
    for (auto& [key, stats] : windows_) {
      // Floor division by 2, so negative keys coarsen consistently too.
      const int64_t k = key >= 0 ? key / 2 : -((-key + 1) / 2);
      coarser[k].Merge(stats);
    }
    windows_ = std::move(coarser);
    ++window_level_;
  }
}

void Comparison::AddCounters(const MirrorCounters& counters) {
  auto key = std::make_tuple(counters.instance, counters.route, counters.mirror);
  auto it = counters_.find(key);
  if (it == counters_.end()) {
    counters_.emplace(key, counters);
  } else if (counters.ts_us >= it->second.ts_us) {
    it->second = counters;
  }
}

void Comparison::AddMalformed(const std::string& reason) {
  ++malformed_;
  AddToBoundedMap(malformed_reasons_, reason, 1, config_->max_fields);
}

void Comparison::Merge(const Comparison& o) {
  if (o.pairs_) {
    first_ts_us_ = pairs_ ? std::min(first_ts_us_, o.first_ts_us_) : o.first_ts_us_;
    last_ts_us_ = pairs_ ? std::max(last_ts_us_, o.last_ts_us_) : o.last_ts_us_;
  }
  pairs_ += o.pairs_;
  for (size_t i = 0; i < kOutcomeCount; ++i) outcomes_[i] += o.outcomes_[i];
  malformed_ += o.malformed_;
  for (const auto& [k, v] : o.malformed_reasons_) {
    AddToBoundedMap(malformed_reasons_, k, v, config_->max_fields);
  }
  for (const auto& [k, v] : o.status_matrix_) status_matrix_[k] += v;
  for (const auto& [k, v] : o.rule_pairs_) AddToBoundedMap(rule_pairs_, k, v, config_->max_slices);
  for (const auto& [k, v] : o.differing_fields_) {
    AddToBoundedMap(differing_fields_, k, v, config_->max_fields);
  }
  for (const auto& [k, v] : o.mismatch_reasons_) {
    AddToBoundedMap(mismatch_reasons_, k, v, config_->max_fields);
  }
  auto& c = classification_;
  const auto& oc = o.classification_;
  c.n += oc.n;
  c.top1_agree += oc.top1_agree;
  c.sum_topk_overlap += oc.sum_topk_overlap;
  c.sum_max_abs_diff += oc.sum_max_abs_diff;
  c.max_max_abs_diff = std::max(c.max_max_abs_diff, oc.max_max_abs_diff);
  c.sum_tv += oc.sum_tv;
  c.sum_js += oc.sum_js;
  c.max_js = std::max(c.max_js, oc.max_js);
  c.js_milli.Merge(oc.js_milli);
  for (size_t i = 0; i < margin_buckets_.size() && i < o.margin_buckets_.size(); ++i) {
    margin_buckets_[i].pairs += o.margin_buckets_[i].pairs;
    margin_buckets_[i].flips += o.margin_buckets_[i].flips;
  }
  for (const auto& [k, v] : o.confusion_) AddConfusion(k.first, k.second, v);
  accuracy_.labeled += o.accuracy_.labeled;
  accuracy_.primary_correct += o.accuracy_.primary_correct;
  accuracy_.shadow_correct += o.accuracy_.shadow_correct;
  accuracy_.only_primary_correct += o.accuracy_.only_primary_correct;
  accuracy_.only_shadow_correct += o.accuracy_.only_shadow_correct;
  regression_.pairs += o.regression_.pairs;
  regression_.values += o.regression_.values;
  regression_.sum_abs += o.regression_.sum_abs;
  regression_.sum_sq += o.regression_.sum_sq;
  regression_.max_error = std::max(regression_.max_error, o.regression_.max_error);
  regression_.max_rel_error = std::max(regression_.max_rel_error, o.regression_.max_rel_error);
  embedding_.pairs += o.embedding_.pairs;
  embedding_.sum_cosine += o.embedding_.sum_cosine;
  embedding_.min_cosine = std::min(embedding_.min_cosine, o.embedding_.min_cosine);
  embedding_.sum_rel_l2 += o.embedding_.sum_rel_l2;
  embedding_.max_rel_l2 = std::max(embedding_.max_rel_l2, o.embedding_.max_rel_l2);

  primary_latency_.Merge(o.primary_latency_);
  shadow_latency_.Merge(o.shadow_latency_);
  primary_fails_ += o.primary_fails_;
  shadow_fails_ += o.shadow_fails_;
  latency_diff_.Merge(o.latency_diff_);
  latency_ratio_milli_.Merge(o.latency_ratio_milli_);

  // Reservoir: exact concatenation while it fits; otherwise a sample weighted by pairs seen.
  const size_t cap = config_->reservoir_size;
  if (reservoir_.size() + o.reservoir_.size() <= cap && reservoir_seen_ == reservoir_.size() &&
      o.reservoir_seen_ == o.reservoir_.size()) {
    reservoir_.insert(reservoir_.end(), o.reservoir_.begin(), o.reservoir_.end());
  } else {
    auto a = reservoir_;
    auto b = o.reservoir_;
    for (auto* v : {&a, &b}) {
      for (size_t i = v->size(); i > 1; --i) {
        std::swap((*v)[i - 1], (*v)[SplitMix64(rng_state_) % i]);
      }
    }
    const double total = static_cast<double>(reservoir_seen_ + o.reservoir_seen_);
    size_t take_a =
        total > 0
            ? static_cast<size_t>(std::llround(static_cast<double>(cap) * reservoir_seen_ / total))
            : 0;
    take_a = std::min(take_a, a.size());
    size_t take_b = std::min(cap - take_a, b.size());
    if (take_a + take_b < cap) take_a = std::min(a.size(), cap - take_b);
    reservoir_.assign(a.begin(), a.begin() + take_a);
    reservoir_.insert(reservoir_.end(), b.begin(), b.begin() + take_b);
  }
  reservoir_seen_ += o.reservoir_seen_;

  auto merge_slices = [&](std::map<std::string, SliceStats>& into,
                          const std::map<std::string, SliceStats>& from) {
    for (const auto& [k, v] : from) {
      auto it = into.find(k);
      if (it == into.end() && into.size() >= config_->max_slices) it = into.find("(other)");
      if (it == into.end()) {
        const std::string& key = into.size() < config_->max_slices ? k : std::string("(other)");
        it = into.try_emplace(key).first;
      }
      it->second.Merge(v);
    }
  };
  merge_slices(by_route_, o.by_route_);
  merge_slices(by_model_, o.by_model_);
  merge_slices(by_label_, o.by_label_);
  merge_slices(by_size_, o.by_size_);

  if (o.window_level_ > window_level_) CoarsenWindows(o.window_level_);
  const int shift = window_level_ - o.window_level_;
  for (const auto& [k, v] : o.windows_) {
    int64_t key = k;
    for (int i = 0; i < shift; ++i) key = key >= 0 ? key / 2 : -((-key + 1) / 2);
    windows_[key].Merge(v);
  }
  if (windows_.size() > kMaxWindows) CoarsenWindows(window_level_ + 1);

  for (const auto& e : o.examples_) AddExample(e);
  for (const auto& [k, v] : o.counters_) AddCounters(v);
  if (noise_ && o.noise_) noise_->Merge(*o.noise_);
}

bool Comparison::SameState(const Comparison& o) const {
  auto counters_equal = [&] {
    if (counters_.size() != o.counters_.size()) return false;
    for (auto a = counters_.begin(), b = o.counters_.begin(); a != counters_.end(); ++a, ++b) {
      if (a->first != b->first || EncodePairLogLine(a->second) != EncodePairLogLine(b->second)) {
        return false;
      }
    }
    return true;
  };
  return pairs_ == o.pairs_ && outcomes_ == o.outcomes_ && malformed_ == o.malformed_ &&
         malformed_reasons_ == o.malformed_reasons_ && status_matrix_ == o.status_matrix_ &&
         rule_pairs_ == o.rule_pairs_ && differing_fields_ == o.differing_fields_ &&
         mismatch_reasons_ == o.mismatch_reasons_ && first_ts_us_ == o.first_ts_us_ &&
         last_ts_us_ == o.last_ts_us_ && classification_.n == o.classification_.n &&
         classification_.top1_agree == o.classification_.top1_agree &&
         classification_.js_milli == o.classification_.js_milli &&
         std::fabs(classification_.sum_js - o.classification_.sum_js) < 1e-9 &&
         margin_buckets_ == o.margin_buckets_ && confusion_ == o.confusion_ &&
         accuracy_ == o.accuracy_ && regression_.pairs == o.regression_.pairs &&
         embedding_.pairs == o.embedding_.pairs && primary_latency_ == o.primary_latency_ &&
         shadow_latency_ == o.shadow_latency_ && primary_fails_ == o.primary_fails_ &&
         shadow_fails_ == o.shadow_fails_ && latency_diff_ == o.latency_diff_ &&
         latency_ratio_milli_ == o.latency_ratio_milli_ && reservoir_ == o.reservoir_ &&
         reservoir_seen_ == o.reservoir_seen_ && by_route_ == o.by_route_ &&
         by_model_ == o.by_model_ && by_label_ == o.by_label_ && by_size_ == o.by_size_ &&
         window_level_ == o.window_level_ && windows_ == o.windows_ && examples_ == o.examples_ &&
         counters_equal() && (noise_ == nullptr) == (o.noise_ == nullptr) &&
         (!noise_ || noise_->SameState(*o.noise_));
}

json Comparison::ToJson() const {
  json out;
  out["pairs"] = pairs_;
  out["malformed"] = {{"count", malformed_}, {"reasons", malformed_reasons_}};
  const double duration_s =
      pairs_ > 1 ? static_cast<double>(last_ts_us_ - first_ts_us_) / 1e6 : 0.0;
  out["time"] = {
      {"first_ts_us", first_ts_us_}, {"last_ts_us", last_ts_us_}, {"duration_s", duration_s}};
  json outcomes = json::object();
  for (Outcome o : kAllOutcomes) outcomes[OutcomeName(o)] = outcome_count(o);
  out["outcomes"] = outcomes;
  const uint64_t eligible = pairs_ - outcome_count(Outcome::kPrimaryError);
  out["rates"] = {
      {"eligible_pairs", eligible},
      {"match_rate", Rate(outcome_count(Outcome::kMatch), eligible)},
      {"agreement_rate",
       Rate(outcome_count(Outcome::kMatch) + outcome_count(Outcome::kWithinTolerance), eligible)},
      {"mismatch_rate",
       Rate(outcome_count(Outcome::kMismatch) + outcome_count(Outcome::kUnparseable), eligible)},
      {"shadow_error_rate", Rate(outcome_count(Outcome::kShadowError), eligible)},
      {"shadow_timeout_rate", Rate(outcome_count(Outcome::kShadowTimeout), eligible)},
      {"primary_error_rate", Rate(outcome_count(Outcome::kPrimaryError), pairs_)}};
  json matrix = json::array();
  for (const auto& [k, v] : status_matrix_) {
    matrix.push_back({{"primary", k.first}, {"shadow", k.second}, {"count", v}});
  }
  out["status_matrix"] = matrix;
  out["rules"] = rule_pairs_;
  auto sorted_counts = [](const std::map<std::string, uint64_t>& m, const char* key) {
    std::vector<std::pair<std::string, uint64_t>> v(m.begin(), m.end());
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    json arr = json::array();
    for (const auto& [k, n] : v) arr.push_back({{key, k}, {"count", n}});
    return arr;
  };
  out["differing_fields"] = sorted_counts(differing_fields_, "field");
  out["reasons"] = sorted_counts(mismatch_reasons_, "reason");

  const auto& c = classification_;
  const double conf = config_->confidence;
  json cls = {{"pairs", c.n}};
  if (c.n) {
    const double n = static_cast<double>(c.n);
    cls["top1_agreement"] = Rate(c.top1_agree, c.n);
    cls["top1_agreement_wilson_low"] = WilsonLowerBound(c.top1_agree, c.n, conf);
    cls["wilson_confidence"] = conf;
    cls["top1_flips"] = c.n - c.top1_agree;
    cls["mean_topk_overlap"] = c.sum_topk_overlap / n;
    cls["mean_max_abs_prob_diff"] = c.sum_max_abs_diff / n;
    cls["max_abs_prob_diff"] = c.max_max_abs_diff;
    cls["mean_total_variation"] = c.sum_tv / n;
    cls["mean_js_distance"] = c.sum_js / n;
    cls["p99_js_distance"] = c.js_milli.Quantile(0.99) / 1e6;
    cls["max_js_distance"] = c.max_js;
  }
  std::vector<double> edges;
  for (const auto& rule : config_->rules) {
    if (rule.kind == CompareKind::kClassification) {
      edges = rule.margin_buckets;
      break;
    }
  }
  json flips = json::array();
  for (size_t i = 0; i < margin_buckets_.size(); ++i) {
    const double low = i == 0 ? 0.0 : edges[i - 1];
    const double high = i < edges.size() ? edges[i] : 1.0;
    flips.push_back({{"margin_low", low},
                     {"margin_high", high},
                     {"pairs", margin_buckets_[i].pairs},
                     {"flips", margin_buckets_[i].flips},
                     {"flip_rate", Rate(margin_buckets_[i].flips, margin_buckets_[i].pairs)}});
  }
  cls["flips_by_primary_margin"] = flips;
  std::vector<std::string> labels;
  for (const auto& [k, v] : confusion_) {
    labels.push_back(k.first);
    labels.push_back(k.second);
  }
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  json rows = json::array();
  for (const auto& p : labels) {
    json row = json::array();
    for (const auto& s : labels) {
      auto it = confusion_.find({p, s});
      row.push_back(it == confusion_.end() ? 0 : it->second);
    }
    rows.push_back(row);
  }
  cls["confusion"] = {{"labels", labels}, {"rows_primary_cols_shadow", rows}};
  out["classification"] = cls;

  const auto& a = accuracy_;
  json acc = {{"label_header", config_->true_label_header}, {"labeled", a.labeled}};
  if (a.labeled) {
    acc["primary"] = Rate(a.primary_correct, a.labeled);
    acc["shadow"] = Rate(a.shadow_correct, a.labeled);
    acc["delta"] = Rate(a.shadow_correct, a.labeled) - Rate(a.primary_correct, a.labeled);
    acc["only_primary_correct"] = a.only_primary_correct;
    acc["only_shadow_correct"] = a.only_shadow_correct;
  }
  out["accuracy"] = acc;
  const auto& r = regression_;
  json reg = {{"pairs", r.pairs}, {"values", r.values}};
  if (r.values) {
    reg["mae"] = r.sum_abs / static_cast<double>(r.values);
    reg["rmse"] = std::sqrt(r.sum_sq / static_cast<double>(r.values));
    reg["max_error"] = r.max_error;
    reg["max_rel_error"] = r.max_rel_error;
  }
  out["regression"] = reg;
  const auto& e = embedding_;
  json emb = {{"pairs", e.pairs}};
  if (e.pairs) {
    emb["mean_cosine"] = e.sum_cosine / static_cast<double>(e.pairs);
    emb["min_cosine"] = e.min_cosine;
    emb["mean_rel_l2"] = e.sum_rel_l2 / static_cast<double>(e.pairs);
    emb["max_rel_l2"] = Num(e.max_rel_l2);
  }
  out["embedding"] = emb;

  json lat;
  lat["primary"] = LatencySide(primary_latency_, pairs_, primary_fails_);
  lat["shadow"] = LatencySide(shadow_latency_, pairs_, shadow_fails_);
  lat["difference_ms"] = {
      {"count", latency_diff_.count()},         {"mean", Ms(latency_diff_.mean())},
      {"min", Ms(latency_diff_.min())},         {"p50", Ms(latency_diff_.Quantile(0.5))},
      {"p90", Ms(latency_diff_.Quantile(0.9))}, {"p99", Ms(latency_diff_.Quantile(0.99))},
      {"max", Ms(latency_diff_.max())}};
  lat["ratio"] = {{"count", latency_ratio_milli_.count()},
                  {"p50", latency_ratio_milli_.Quantile(0.5) / 1000},
                  {"p90", latency_ratio_milli_.Quantile(0.9) / 1000},
                  {"p99", latency_ratio_milli_.Quantile(0.99) / 1000},
                  {"max", static_cast<double>(latency_ratio_milli_.max()) / 1000}};
  const double p99p = primary_latency_.Quantile(0.99);
  lat["p99_ratio"] = p99p > 0 ? json(shadow_latency_.Quantile(0.99) / p99p) : json();
  std::vector<double> xs, ys;
  xs.reserve(reservoir_.size());
  ys.reserve(reservoir_.size());
  for (const auto& [p, s] : reservoir_) {
    ys.push_back(Ms(static_cast<double>(p)));
    xs.push_back(Ms(static_cast<double>(s)));
  }
  lat["reservoir"] = {{"size", reservoir_.size()},
                      {"seen", reservoir_seen_},
                      {"capacity", config_->reservoir_size}};
  lat["mann_whitney"] = RankJson(MannWhitney(xs, ys, conf));
  lat["wilcoxon_signed_rank"] = RankJson(SignedRank(xs, ys, conf));
  lat["tests_compare"] = "shadow minus primary, milliseconds";
  out["latency"] = lat;

  out["slices"] = {{"route", SliceList(by_route_)},
                   {"model", SliceList(by_model_)},
                   {"primary_label", SliceList(by_label_)},
                   {"request_size", SliceList(by_size_)}};

  const int64_t width = config_->window.count() << window_level_;
  json points = json::array();
  for (const auto& [k, s] : windows_) {
    const uint64_t elig = s.pairs - s.outcomes[static_cast<size_t>(Outcome::kPrimaryError)];
    points.push_back(
        {{"start_us", k * width},
         {"pairs", s.pairs},
         {"top1_agreement", s.classified ? json(Rate(s.top1_agree, s.classified)) : json()},
         {"agreement_rate", Rate(s.outcomes[0] + s.outcomes[1], elig)},
         {"mismatch_rate", Rate(s.outcomes[static_cast<size_t>(Outcome::kMismatch)] +
                                    s.outcomes[static_cast<size_t>(Outcome::kUnparseable)],
                                elig)},
         {"primary_p99_ms", Ms(s.primary_latency.Quantile(0.99))},
         {"shadow_p99_ms", Ms(s.shadow_latency.Quantile(0.99))}});
  }
  out["timeline"] = {{"window_s", static_cast<double>(width) / 1e6}, {"points", points}};

  // Not-mirrored counters: the latest per (instance, route, mirror), summed.
  uint64_t requests = 0, dropped = 0;
  std::map<std::string, uint64_t> not_mirrored, mirrored;
  std::set<std::string> instances;
  for (const auto& [key, m] : counters_) {
    instances.insert(m.instance);
    requests += m.requests;
    dropped += m.sink_dropped;
    for (const auto& [k, v] : m.not_mirrored) not_mirrored[k] += v;
    for (const auto& [k, v] : m.mirrored) mirrored[k] += v;
  }
  uint64_t mirrored_total = 0, not_mirrored_total = 0;
  for (const auto& [k, v] : mirrored) mirrored_total += v;
  for (const auto& [k, v] : not_mirrored) not_mirrored_total += v;
  out["counters"] = {
      {"records", counters_.size()},
      {"instances", instances.size()},
      {"requests", requests},
      {"mirrored", mirrored},
      {"mirrored_total", mirrored_total},
      {"not_mirrored", not_mirrored},
      {"not_mirrored_total", not_mirrored_total},
      {"mirrored_fraction", requests ? json(Rate(mirrored_total, requests)) : json()},
      {"sink_dropped", dropped}};

  json ex = json::array();
  for (const auto& e : examples_) {
    ex.push_back(
        {{"id", e.id},
         {"ts_us", e.ts_us},
         {"route", e.route},
         {"mirror", e.mirror},
         {"outcome", e.outcome},
         {"reason", e.reason},
         {"fields", e.fields},
         {"severity", e.score},
         {"request",
          {{"headers", e.request_headers}, {"size", e.request_size}, {"sha256", e.request_sha256}}},
         {"primary",
          {{"status", e.primary_status},
           {"latency_ms", Ms(static_cast<double>(e.primary_latency_us))},
           {"body", e.primary_body}}},
         {"shadow",
          {{"status", e.shadow_status},
           {"latency_ms", Ms(static_cast<double>(e.shadow_latency_us))},
           {"body", e.shadow_body}}}});
  }
  out["examples"] = ex;
  if (noise_) out["noise_floor"] = NoiseFloorJson(out);
  return out;
}

json Comparison::NoiseFloorJson(const json& candidate) const {
  const json noise = noise_->ToJson();
  const NoiseFloor& nf = config_->noise_floor;
  auto number = [](const json& j, const char* a, const char* b) -> std::optional<double> {
    if (!j.contains(a) || !j[a].contains(b) || !j[a][b].is_number()) return std::nullopt;
    return j[a][b].get<double>();
  };
  uint64_t flagged = 0;
  auto compare = [&](std::optional<double> c, std::optional<double> n) {
    json row = {{"candidate", c ? json(*c) : json()}, {"noise", n ? json(*n) : json()}};
    if (c && n) {
      const double threshold = *n * (1 + nf.rel) + nf.abs;
      row["threshold"] = threshold;
      row["flagged"] = *c > threshold;
      if (*c > threshold) ++flagged;
    } else {
      row["flagged"] = false;
    }
    return row;
  };
  json metrics = json::object();
  for (const char* m : {"mismatch_rate", "shadow_error_rate", "shadow_timeout_rate"}) {
    metrics[m] = compare(number(candidate, "rates", m), number(noise, "rates", m));
  }
  auto flip_rate = [&](const json& j) -> std::optional<double> {
    auto pairs = number(j, "classification", "pairs");
    auto flips = number(j, "classification", "top1_flips");
    if (!pairs || !flips || *pairs == 0) return std::nullopt;
    return *flips / *pairs;
  };
  metrics["top1_flip_rate"] = compare(flip_rate(candidate), flip_rate(noise));
  for (const char* m :
       {"mean_max_abs_prob_diff", "mean_total_variation", "mean_js_distance", "p99_js_distance"}) {
    metrics[m] =
        compare(number(candidate, "classification", m), number(noise, "classification", m));
  }
  // Differing fields as a share of eligible pairs on each side.
  auto field_rates = [](const json& j) {
    std::map<std::string, double> out;
    const double eligible = j["rates"]["eligible_pairs"].get<double>();
    if (eligible <= 0) return out;
    for (const auto& f : j["differing_fields"]) {
      out[f["field"].get<std::string>()] = f["count"].get<double>() / eligible;
    }
    return out;
  };
  const auto cf = field_rates(candidate), nfields = field_rates(noise);
  json fields = json::array();
  for (const auto& [name, rate] : cf) {
    auto it = nfields.find(name);
    const double noise_rate = it == nfields.end() ? 0.0 : it->second;
    json row = compare(rate, noise_rate);
    row["field"] = name;
    fields.push_back(std::move(row));
  }
  for (const auto& [name, rate] : nfields) {
    if (cf.count(name)) continue;
    json row = compare(0.0, rate);
    row["field"] = name;
    fields.push_back(std::move(row));
  }
  const bool enough = noise["rates"]["eligible_pairs"].get<uint64_t>() > 0;
  return {{"mirror", nf.mirror},
          {"rel", nf.rel},
          {"abs", nf.abs},
          {"pairs", noise["pairs"]},
          {"valid", enough},
          {"metrics", metrics},
          {"fields", fields},
          {"flagged", enough ? json(flagged) : json()},
          {"noise_latency_p99_ms", noise["latency"]["shadow"]["p99_ms"]}};
}

}  // namespace sg::comparator
