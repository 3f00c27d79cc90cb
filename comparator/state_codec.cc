#include "comparator/state_codec.h"

#include <cmath>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "comparator/comparison.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

// Doubles exactly: nlohmann writes the shortest form that reads back to the same bits; JSON has
// no NaN or infinity, so those are strings.
json Dbl(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

double Dbl(const json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  throw std::invalid_argument("not a number: \"" + s + "\"");
}

template <typename Map>
json Pairs(const Map& m) {
  json out = json::array();
  for (const auto& [k, v] : m) out.push_back(json::array({k, v}));
  return out;
}

std::map<std::string, uint64_t> Counts(const json& j) {
  return j.get<std::map<std::string, uint64_t>>();
}

json Counters(const MirrorCounters& c) {
  return EncodePairLogLine(c);
}

MirrorCounters Counters(const json& j) {
  std::string error;
  auto entry = DecodePairLogLine(j.get<std::string>(), &error);
  if (!entry || !std::holds_alternative<MirrorCounters>(*entry)) {
    throw std::invalid_argument("counters: " + (error.empty() ? "not a counters line" : error));
  }
  return std::get<MirrorCounters>(*entry);
}

}  // namespace

// --- histograms --------------------------------------------------------------------------------

json StateCodec::Encode(const LatencyHistogram& h) {
  json buckets = json::array();
  for (size_t i = 0; i < h.counts_.size(); ++i) {
    if (h.counts_[i]) buckets.push_back(json::array({i, h.counts_[i]}));
  }
  return {{"buckets", buckets},
          {"count", h.count_},
          {"sum", Dbl(h.sum_)},
          {"min", h.min_},
          {"max", h.max_}};
}

void StateCodec::Decode(const json& j, LatencyHistogram* h) {
  std::fill(h->counts_.begin(), h->counts_.end(), 0);
  for (const auto& b : j.at("buckets")) h->counts_.at(b.at(0).get<size_t>()) = b.at(1);
  h->count_ = j.at("count");
  h->sum_ = Dbl(j.at("sum"));
  h->min_ = j.at("min");
  h->max_ = j.at("max");
}

json StateCodec::Encode(const SignedHistogram& h) {
  return {{"negative", Encode(h.negative_)}, {"positive", Encode(h.positive_)}};
}

void StateCodec::Decode(const json& j, SignedHistogram* h) {
  Decode(j.at("negative"), &h->negative_);
  Decode(j.at("positive"), &h->positive_);
}

json StateCodec::Encode(const SparseHistogram& h) {
  return {{"buckets", Pairs(h.buckets_)},
          {"count", h.count_},
          {"sum", Dbl(h.sum_)},
          {"min", h.min_},
          {"max", h.max_}};
}

void StateCodec::Decode(const json& j, SparseHistogram* h) {
  h->buckets_ = j.at("buckets").get<std::vector<std::pair<uint32_t, uint64_t>>>();
  h->count_ = j.at("count");
  h->sum_ = Dbl(j.at("sum"));
  h->min_ = j.at("min");
  h->max_ = j.at("max");
}

// --- the run's aggregates ----------------------------------------------------------------------

json StateCodec::Encode(const OutcomeStats& o) {
  json matrix = json::array();
  for (const auto& [k, v] : o.status_matrix_) matrix.push_back({k.first, k.second, v});
  return {{"pairs", o.pairs_},
          {"outcomes", o.outcomes_},
          {"shadow_5xx", o.shadow_5xx_},
          {"malformed", o.malformed_},
          {"malformed_reasons", o.malformed_reasons_},
          {"status_matrix", matrix},
          {"rule_pairs", o.rule_pairs_},
          {"differing_fields", o.differing_fields_},
          {"reasons", o.reasons_},
          {"first_ts_us", o.first_ts_us_},
          {"last_ts_us", o.last_ts_us_}};
}

void StateCodec::Decode(const json& j, OutcomeStats* o) {
  o->pairs_ = j.at("pairs");
  o->outcomes_ = j.at("outcomes").get<std::array<uint64_t, kOutcomeCount>>();
  o->shadow_5xx_ = j.at("shadow_5xx");
  o->malformed_ = j.at("malformed");
  o->malformed_reasons_ = Counts(j.at("malformed_reasons"));
  o->status_matrix_.clear();
  for (const auto& m : j.at("status_matrix")) {
    o->status_matrix_[{m.at(0).get<int>(), m.at(1).get<int>()}] = m.at(2).get<uint64_t>();
  }
  o->rule_pairs_ = Counts(j.at("rule_pairs"));
  o->differing_fields_ = Counts(j.at("differing_fields"));
  o->reasons_ = Counts(j.at("reasons"));
  o->first_ts_us_ = j.at("first_ts_us");
  o->last_ts_us_ = j.at("last_ts_us");
}

json StateCodec::Encode(const LatencyStats& l) {
  return {{"pairs", l.pairs_},
          {"primary", Encode(l.primary_)},
          {"shadow", Encode(l.shadow_)},
          {"primary_fails", l.primary_fails_},
          {"shadow_fails", l.shadow_fails_},
          {"diff", Encode(l.diff_)},
          {"ratio_milli", Encode(l.ratio_milli_)},
          {"reservoir", l.reservoir_},
          {"reservoir_seen", l.reservoir_seen_},
          {"rng_state", l.rng_state_}};
}

void StateCodec::Decode(const json& j, LatencyStats* l) {
  l->pairs_ = j.at("pairs");
  Decode(j.at("primary"), &l->primary_);
  Decode(j.at("shadow"), &l->shadow_);
  l->primary_fails_ = j.at("primary_fails");
  l->shadow_fails_ = j.at("shadow_fails");
  Decode(j.at("diff"), &l->diff_);
  Decode(j.at("ratio_milli"), &l->ratio_milli_);
  l->reservoir_ = j.at("reservoir").get<std::vector<std::pair<int64_t, int64_t>>>();
  if (l->reservoir_.size() > l->reservoir_size_) {
    throw std::invalid_argument("reservoir holds more than reservoir_size");
  }
  l->reservoir_seen_ = j.at("reservoir_seen");
  l->rng_state_ = j.at("rng_state");
}

json StateCodec::Encode(const ClassificationStats& c) {
  json margins = json::array();
  for (const auto& b : c.margin_buckets_) margins.push_back({b.pairs, b.flips});
  json confusion = json::array();
  for (const auto& [k, v] : c.confusion_) confusion.push_back({k.first, k.second, v});
  return {{"n", c.n_},
          {"top1_agree", c.top1_agree_},
          {"sum_topk_overlap", Dbl(c.sum_topk_overlap_)},
          {"sum_max_abs_diff", Dbl(c.sum_max_abs_diff_)},
          {"max_max_abs_diff", Dbl(c.max_max_abs_diff_)},
          {"sum_tv", Dbl(c.sum_tv_)},
          {"sum_js", Dbl(c.sum_js_)},
          {"max_js", Dbl(c.max_js_)},
          {"js_micro", Encode(c.js_micro_)},
          {"margin_buckets", margins},
          {"confusion", confusion},
          {"primary_labels", c.confusion_primary_labels_},
          {"shadow_labels", c.confusion_shadow_labels_},
          {"labeled", c.labeled_},
          {"primary_correct", c.primary_correct_},
          {"shadow_correct", c.shadow_correct_},
          {"only_primary_correct", c.only_primary_correct_},
          {"only_shadow_correct", c.only_shadow_correct_}};
}

void StateCodec::Decode(const json& j, ClassificationStats* c) {
  c->n_ = j.at("n");
  c->top1_agree_ = j.at("top1_agree");
  c->sum_topk_overlap_ = Dbl(j.at("sum_topk_overlap"));
  c->sum_max_abs_diff_ = Dbl(j.at("sum_max_abs_diff"));
  c->max_max_abs_diff_ = Dbl(j.at("max_max_abs_diff"));
  c->sum_tv_ = Dbl(j.at("sum_tv"));
  c->sum_js_ = Dbl(j.at("sum_js"));
  c->max_js_ = Dbl(j.at("max_js"));
  Decode(j.at("js_micro"), &c->js_micro_);
  const json& margins = j.at("margin_buckets");
  if (margins.size() != c->margin_buckets_.size()) {
    throw std::invalid_argument("margin_buckets: " + std::to_string(margins.size()) +
                                " buckets, the config has " +
                                std::to_string(c->margin_buckets_.size()));
  }
  for (size_t i = 0; i < margins.size(); ++i) {
    c->margin_buckets_[i].pairs = margins[i].at(0);
    c->margin_buckets_[i].flips = margins[i].at(1);
  }
  c->confusion_.clear();
  for (const auto& m : j.at("confusion")) {
    c->confusion_[{m.at(0).get<std::string>(), m.at(1).get<std::string>()}] =
        m.at(2).get<uint64_t>();
  }
  c->confusion_primary_labels_ = j.at("primary_labels").get<std::set<std::string>>();
  c->confusion_shadow_labels_ = j.at("shadow_labels").get<std::set<std::string>>();
  c->labeled_ = j.at("labeled");
  c->primary_correct_ = j.at("primary_correct");
  c->shadow_correct_ = j.at("shadow_correct");
  c->only_primary_correct_ = j.at("only_primary_correct");
  c->only_shadow_correct_ = j.at("only_shadow_correct");
}

json StateCodec::Encode(const ScoreStats& s) {
  return {{"pairs", s.pairs_},
          {"values", s.values_},
          {"beyond", s.beyond_},
          {"sum_abs", Dbl(s.sum_abs_)},
          {"sum_signed", Dbl(s.sum_signed_)},
          {"sum_sq", Dbl(s.sum_sq_)},
          {"max_error", Dbl(s.max_error_)},
          {"max_rel_error", Dbl(s.max_rel_error_)},
          {"primary_sum", Dbl(s.primary_sum_)},
          {"primary_sum_sq", Dbl(s.primary_sum_sq_)},
          {"true_pairs", s.true_pairs_},
          {"true_abs_primary", Dbl(s.true_abs_primary_)},
          {"true_abs_shadow", Dbl(s.true_abs_shadow_)},
          {"true_delta_sum", Dbl(s.true_delta_sum_)},
          {"true_delta_sq", Dbl(s.true_delta_sq_)}};
}

void StateCodec::Decode(const json& j, ScoreStats* s) {
  s->pairs_ = j.at("pairs");
  s->values_ = j.at("values");
  s->beyond_ = j.at("beyond");
  s->sum_abs_ = Dbl(j.at("sum_abs"));
  s->sum_signed_ = Dbl(j.at("sum_signed"));
  s->sum_sq_ = Dbl(j.at("sum_sq"));
  s->max_error_ = Dbl(j.at("max_error"));
  s->max_rel_error_ = Dbl(j.at("max_rel_error"));
  s->primary_sum_ = Dbl(j.at("primary_sum"));
  s->primary_sum_sq_ = Dbl(j.at("primary_sum_sq"));
  s->true_pairs_ = j.at("true_pairs");
  s->true_abs_primary_ = Dbl(j.at("true_abs_primary"));
  s->true_abs_shadow_ = Dbl(j.at("true_abs_shadow"));
  s->true_delta_sum_ = Dbl(j.at("true_delta_sum"));
  s->true_delta_sq_ = Dbl(j.at("true_delta_sq"));
}

json StateCodec::Encode(const EmbeddingStats& e) {
  return {{"pairs", e.pairs_},
          {"sum_cosine", Dbl(e.sum_cosine_)},
          {"min_cosine", Dbl(e.min_cosine_)},
          {"sum_rel_l2", Dbl(e.sum_rel_l2_)},
          {"max_rel_l2", Dbl(e.max_rel_l2_)}};
}

void StateCodec::Decode(const json& j, EmbeddingStats* e) {
  e->pairs_ = j.at("pairs");
  e->sum_cosine_ = Dbl(j.at("sum_cosine"));
  e->min_cosine_ = Dbl(j.at("min_cosine"));
  e->sum_rel_l2_ = Dbl(j.at("sum_rel_l2"));
  e->max_rel_l2_ = Dbl(j.at("max_rel_l2"));
}

// --- slices and windows ------------------------------------------------------------------------

json StateCodec::Encode(const SliceStats& s) {
  return {{"pairs", s.pairs},
          {"outcomes", s.outcomes},
          {"classified", s.classified},
          {"top1_agree", s.top1_agree},
          {"labeled", s.labeled},
          {"primary_correct", s.primary_correct},
          {"shadow_correct", s.shadow_correct},
          {"only_primary_correct", s.only_primary_correct},
          {"only_shadow_correct", s.only_shadow_correct},
          {"primary_latency", Encode(s.primary_latency)},
          {"shadow_latency", Encode(s.shadow_latency)},
          {"ratio_milli", Encode(s.ratio_milli)}};
}

void StateCodec::Decode(const json& j, SliceStats* s) {
  s->pairs = j.at("pairs");
  s->outcomes = j.at("outcomes").get<std::array<uint64_t, kOutcomeCount>>();
  s->classified = j.at("classified");
  s->top1_agree = j.at("top1_agree");
  s->labeled = j.at("labeled");
  s->primary_correct = j.at("primary_correct");
  s->shadow_correct = j.at("shadow_correct");
  s->only_primary_correct = j.at("only_primary_correct");
  s->only_shadow_correct = j.at("only_shadow_correct");
  Decode(j.at("primary_latency"), &s->primary_latency);
  Decode(j.at("shadow_latency"), &s->shadow_latency);
  Decode(j.at("ratio_milli"), &s->ratio_milli);
}

namespace {

template <typename Key>
json EncodeSlices(const std::map<Key, SliceStats>& slices) {
  json out = json::array();
  for (const auto& [k, s] : slices) out.push_back({k, StateCodec::Encode(s)});
  return out;
}

template <typename Key>
std::map<Key, SliceStats> DecodeSlices(const json& j) {
  std::map<Key, SliceStats> out;
  for (const auto& e : j) StateCodec::Decode(e.at(1), &out[e.at(0).get<Key>()]);
  return out;
}

}  // namespace

json StateCodec::Encode(const SliceMap& m) {
  return {{"slices", EncodeSlices(m.slices_)}};
}

void StateCodec::Decode(const json& j, SliceMap* m) {
  m->slices_ = DecodeSlices<std::string>(j.at("slices"));
  if (m->slices_.size() > m->max_slices_ + 1) {  // + "(other)"
    throw std::invalid_argument("more slices than max_slices");
  }
}

json StateCodec::Encode(const Timeline& t) {
  return {{"level", t.level_}, {"windows", EncodeSlices(t.windows_)}};
}

void StateCodec::Decode(const json& j, Timeline* t) {
  t->level_ = j.at("level");
  t->windows_ = DecodeSlices<int64_t>(j.at("windows"));
  if (t->windows_.size() > Timeline::kMaxWindows) {
    throw std::invalid_argument("more windows than the timeline keeps");
  }
}

json StateCodec::Encode(const WindowSeries& w) {
  return {{"windows", EncodeSlices(w.windows_)},
          {"first", w.first_},
          {"newest", w.newest_},
          {"dropped", w.dropped_}};
}

void StateCodec::Decode(const json& j, WindowSeries* w) {
  w->windows_ = DecodeSlices<int64_t>(j.at("windows"));
  w->first_ = j.at("first");
  w->newest_ = j.at("newest");
  w->dropped_ = j.at("dropped");
  if (w->windows_.size() > w->max_windows_) {
    throw std::invalid_argument("more windows than the series keeps");
  }
}

json StateCodec::Encode(const RunTimeline& t) {
  json days = json::array();
  for (const auto& [day, snapshots] : t.day_counters_) {
    json lines = json::array();
    for (const auto& [k, c] : snapshots) lines.push_back(Counters(c));
    days.push_back({day, lines});
  }
  json base = json::array();
  for (const auto& [k, c] : t.counters_base_) base.push_back(Counters(c));
  return {{"hours", Encode(t.hours_)},
          {"days", Encode(t.days_)},
          {"day_counters", days},
          {"counters_base", base},
          {"newest_counters_day", t.newest_counters_day_}};
}

void StateCodec::Decode(const json& j, RunTimeline* t) {
  Decode(j.at("hours"), &t->hours_);
  Decode(j.at("days"), &t->days_);
  auto key = [](const MirrorCounters& c) { return std::make_tuple(c.instance, c.route, c.mirror); };
  t->day_counters_.clear();
  for (const auto& d : j.at("day_counters")) {
    auto& snapshots = t->day_counters_[d.at(0).get<int64_t>()];
    for (const auto& line : d.at(1)) {
      MirrorCounters c = Counters(line);
      snapshots[key(c)] = std::move(c);
    }
  }
  t->counters_base_.clear();
  for (const auto& line : j.at("counters_base")) {
    MirrorCounters c = Counters(line);
    t->counters_base_[key(c)] = std::move(c);
  }
  t->newest_counters_day_ = j.at("newest_counters_day");
}

// --- examples and coverage ---------------------------------------------------------------------

json StateCodec::Encode(const WorstExamples& w) {
  json out = json::array();
  for (const Example& e : w.examples_) {
    out.push_back({{"score", Dbl(e.score)},
                   {"id", e.id},
                   {"ts_us", e.ts_us},
                   {"route", e.route},
                   {"mirror", e.mirror},
                   {"outcome", e.outcome},
                   {"reason", e.reason},
                   {"fields", e.fields},
                   {"request_headers", e.request_headers},
                   {"request_size", e.request_size},
                   {"request_sha256", e.request_sha256},
                   {"primary_status", e.primary_status},
                   {"shadow_status", e.shadow_status},
                   {"primary_latency_us", e.primary_latency_us},
                   {"shadow_latency_us", e.shadow_latency_us},
                   // Bodies are bytes: not always UTF-8, which JSON strings must be.
                   {"primary_body", Base64Encode(e.primary_body)},
                   {"shadow_body", Base64Encode(e.shadow_body)}});
  }
  return out;
}

void StateCodec::Decode(const json& j, WorstExamples* w) {
  auto bytes = [](const json& text) {
    auto b = Base64Decode(text.get<std::string>());
    if (!b) throw std::invalid_argument("example body: not base64");
    return *b;
  };
  w->examples_.clear();
  for (const auto& x : j) {
    Example e;
    e.score = Dbl(x.at("score"));
    e.id = x.at("id");
    e.ts_us = x.at("ts_us");
    e.route = x.at("route");
    e.mirror = x.at("mirror");
    e.outcome = x.at("outcome");
    e.reason = x.at("reason");
    e.fields = x.at("fields").get<std::vector<std::string>>();
    e.request_headers = x.at("request_headers").get<std::map<std::string, std::string>>();
    e.request_size = x.at("request_size");
    e.request_sha256 = x.at("request_sha256");
    e.primary_status = x.at("primary_status");
    e.shadow_status = x.at("shadow_status");
    e.primary_latency_us = x.at("primary_latency_us");
    e.shadow_latency_us = x.at("shadow_latency_us");
    e.primary_body = bytes(x.at("primary_body"));
    e.shadow_body = bytes(x.at("shadow_body"));
    w->examples_.push_back(std::move(e));
  }
  if (w->examples_.size() > w->config_->max_examples) {
    throw std::invalid_argument("more examples than max_examples");
  }
}

json StateCodec::Encode(const Coverage& c) {
  json out = json::array();
  for (const auto& [k, v] : c.latest_) out.push_back(Counters(v));
  return out;
}

void StateCodec::Decode(const json& j, Coverage* c) {
  c->latest_.clear();
  for (const auto& line : j) {
    MirrorCounters m = Counters(line);
    c->latest_[std::make_tuple(m.instance, m.route, m.mirror)] = std::move(m);
  }
}

// --- the comparison ----------------------------------------------------------------------------

json StateCodec::Encode(const Comparison& c) {
  json out = {{"outcomes", Encode(c.outcomes_)},
              {"latency", Encode(c.latency_)},
              {"classification", Encode(c.classification_)},
              {"scores", Encode(c.scores_)},
              {"embeddings", Encode(c.embeddings_)},
              {"by_route", Encode(c.by_route_)},
              {"by_model", Encode(c.by_model_)},
              {"by_label", Encode(c.by_label_)},
              {"by_true_label", Encode(c.by_true_label_)},
              {"by_size", Encode(c.by_size_)},
              {"timeline", Encode(c.timeline_)},
              {"run_timeline", Encode(c.run_timeline_)},
              {"examples", Encode(c.examples_)},
              {"coverage", Encode(c.coverage_)}};
  if (c.noise_) out["noise"] = Encode(*c.noise_);
  return out;
}

void StateCodec::Decode(const json& j, Comparison* c) {
  Decode(j.at("outcomes"), &c->outcomes_);
  Decode(j.at("latency"), &c->latency_);
  Decode(j.at("classification"), &c->classification_);
  Decode(j.at("scores"), &c->scores_);
  Decode(j.at("embeddings"), &c->embeddings_);
  Decode(j.at("by_route"), &c->by_route_);
  Decode(j.at("by_model"), &c->by_model_);
  Decode(j.at("by_label"), &c->by_label_);
  Decode(j.at("by_true_label"), &c->by_true_label_);
  Decode(j.at("by_size"), &c->by_size_);
  Decode(j.at("timeline"), &c->timeline_);
  Decode(j.at("run_timeline"), &c->run_timeline_);
  Decode(j.at("examples"), &c->examples_);
  Decode(j.at("coverage"), &c->coverage_);
  if ((c->noise_ != nullptr) != j.contains("noise")) {
    throw std::invalid_argument(c->noise_ ? "the config has a noise floor, the state none"
                                          : "the state has a noise floor, the config none");
  }
  if (c->noise_) Decode(j.at("noise"), c->noise_.get());
}

bool DecodeComparisonState(const json& state, Comparison* comparison, std::string* error) {
  try {
    StateCodec::Decode(state, comparison);
    return true;
  } catch (const std::exception& e) {
    *error = e.what();
    return false;
  }
}

}  // namespace sg::comparator
