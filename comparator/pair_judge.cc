#include "comparator/pair_judge.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

namespace sg::comparator {

using nlohmann::json;

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kMatch:
      return "match";
    case Outcome::kWithinTolerance:
      return "within_tolerance";
    case Outcome::kMismatch:
      return "mismatch";
    case Outcome::kShadowError:
      return "shadow_error";
    case Outcome::kShadowTimeout:
      return "shadow_timeout";
    case Outcome::kPrimaryError:
      return "primary_error";
    case Outcome::kUnparseable:
      return "unparseable";
  }
  return "?";
}

namespace {

// Non-finite numbers are carried through nlohmann::json as these marker strings.
constexpr const char* kNanMarker = "\x01NaN";
constexpr const char* kPosInfMarker = "\x01+Inf";
constexpr const char* kNegInfMarker = "\x01-Inf";

std::optional<double> NumberOf(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (s.empty() || s[0] != '\x01') return std::nullopt;
    if (s == kNanMarker) return NAN;
    if (s == kPosInfMarker) return INFINITY;
    if (s == kNegInfMarker) return -INFINITY;
  }
  return std::nullopt;
}

// Replaces bare NaN / Infinity / -Infinity tokens (outside strings) with marker strings.
std::string MarkNonFinite(std::string_view body) {
  std::string out;
  out.reserve(body.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < body.size()) {
        out += body[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
    } else if (body.substr(i, 3) == "NaN") {
      out += "\"\\u0001NaN\"";
      i += 2;
    } else if (body.substr(i, 8) == "Infinity") {
      out += "\"\\u0001+Inf\"";
      i += 7;
    } else if (body.substr(i, 9) == "-Infinity") {
      out += "\"\\u0001-Inf\"";
      i += 8;
    } else {
      out += c;
    }
  }
  return out;
}

using Path = std::vector<JsonPathPattern::Segment>;

std::string PathText(const Path& path) {
  std::string out = "$";
  for (const auto& seg : path) {
    if (seg.is_index) {
      out += "[*]";
    } else {
      out += '.';
      out += seg.key;
    }
  }
  return out;
}

bool Ignored(const CompareRule& rule, const Path& path) {
  for (const auto& pattern : rule.ignore) {
    if (PathMatches(pattern, path)) return true;
  }
  return false;
}

// Compares two numbers under the NaN policy and a tolerance: 0 equal, 1 within, 2 different.
int CompareNumber(double p, double s, double abs, double rel, NanPolicy nan) {
  if (std::isnan(p) || std::isnan(s)) {
    return (std::isnan(p) && std::isnan(s) && nan == NanPolicy::kEqual) ? 0 : 2;
  }
  if (std::isinf(p) || std::isinf(s)) {
    return (p == s && nan == NanPolicy::kEqual) ? 0 : 2;
  }
  if (p == s) return 0;
  return std::fabs(p - s) <= abs + rel * std::fabs(p) ? 1 : 2;
}

void DiffRec(const json& p, const json& s, Path& path, const CompareRule& rule, JsonDiff& out) {
  if (Ignored(rule, path)) return;
  const auto pn = NumberOf(p), sn = NumberOf(s);
  if (pn && sn) {
    double abs = rule.abs, rel = rule.rel;
    for (const auto& tol : rule.tolerances) {
      if (PathMatches(tol.path, path)) {
        abs = tol.abs;
        rel = tol.rel;
        break;
      }
    }
    const int c = CompareNumber(*pn, *sn, abs, rel, rule.nan);
    if (c == 1) out.used_tolerance = true;
    if (c == 2) out.fields.push_back(PathText(path));
    return;
  }
  if (p.type() != s.type()) {
    out.fields.push_back(PathText(path));
    return;
  }
  if (p.is_object()) {
    for (auto it = p.begin(); it != p.end(); ++it) {
      path.push_back({false, false, it.key(), 0});
      auto other = s.find(it.key());
      if (other == s.end()) {
        if (!Ignored(rule, path)) out.fields.push_back(PathText(path));
      } else {
        DiffRec(*it, *other, path, rule, out);
      }
      path.pop_back();
    }
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (p.contains(it.key())) continue;
      path.push_back({false, false, it.key(), 0});
      if (!Ignored(rule, path)) out.fields.push_back(PathText(path));
      path.pop_back();
    }
    return;
  }
  if (p.is_array()) {
    const size_t n = std::min(p.size(), s.size());
    for (size_t i = 0; i < n; ++i) {
      path.push_back({true, false, "", i});
      DiffRec(p[i], s[i], path, rule, out);
      path.pop_back();
    }
    if (p.size() != s.size()) {
      path.push_back({true, false, "", n});
      if (!Ignored(rule, path)) out.fields.push_back(PathText(path));
      path.pop_back();
    }
    return;
  }
  if (p != s) out.fields.push_back(PathText(path));
}

void SortDistribution(Distribution& d) {
  std::sort(d.begin(), d.end(), [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return a.first < b.first;
  });
}

// Flattens a number or (nested) array of numbers; false when anything else is found.
bool Flatten(const json& v, std::vector<double>& out) {
  if (auto n = NumberOf(v)) {
    out.push_back(*n);
    return true;
  }
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    if (!Flatten(e, out)) return false;
  }
  return true;
}

const json* Select(const json& root, const JsonPathPattern& field) {
  const json* cur = &root;
  for (const auto& seg : field.segments) {
    if (seg.is_index) {
      if (!cur->is_array() || seg.index >= cur->size()) return nullptr;
      cur = &(*cur)[seg.index];
    } else {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(seg.key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
  }
  return cur;
}

bool HasNonFinite(const std::vector<double>& v) {
  return std::any_of(v.begin(), v.end(), [](double x) { return !std::isfinite(x); });
}

// Under NanPolicy::kEqual, identical non-finite values at the same positions are dropped; any
// other non-finite value makes the pair a mismatch (returns false).
bool ResolveNonFinite(std::vector<double>& p, std::vector<double>& s, NanPolicy nan) {
  if (!HasNonFinite(p) && !HasNonFinite(s)) return true;
  if (nan == NanPolicy::kMismatch || p.size() != s.size()) return false;
  std::vector<double> pp, ss;
  for (size_t i = 0; i < p.size(); ++i) {
    const bool pf = std::isfinite(p[i]), sf = std::isfinite(s[i]);
    if (pf && sf) {
      pp.push_back(p[i]);
      ss.push_back(s[i]);
      continue;
    }
    if (CompareNumber(p[i], s[i], 0, 0, nan) != 0) return false;
  }
  p = std::move(pp);
  s = std::move(ss);
  return true;
}

void SkipSpace(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
}

bool ParseNumber(std::string_view s, size_t& i, double* out) {
  const char* begin = s.data() + i;
  auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), *out);
  if (ec != std::errc() || !std::isfinite(*out)) return false;
  i += static_cast<size_t>(ptr - begin);
  return true;
}

// The common shapes of classifier output, read without building a JSON document: a flat object
// {"label": number, ...} whose labels have no escapes, or a flat array of numbers. False (and the
// caller falls back to the full JSON parser) for anything else.
bool ParseFlatDistribution(std::string_view s, const std::vector<std::string>& labels,
                           Distribution* out) {
  size_t i = 0;
  SkipSpace(s, i);
  if (i >= s.size()) return false;
  const char open = s[i];
  if (open != '{' && open != '[') return false;
  const char close = open == '{' ? '}' : ']';
  ++i;
  SkipSpace(s, i);
  if (i < s.size() && s[i] == close) return false;  // empty: not a distribution
  for (size_t index = 0;; ++index) {
    SkipSpace(s, i);
    std::string label;
    if (open == '{') {
      if (i >= s.size() || s[i] != '"') return false;
      const size_t end = s.find('"', i + 1);
      if (end == std::string_view::npos) return false;
      label.assign(s.substr(i + 1, end - i - 1));
      if (label.find('\\') != std::string::npos) return false;
      i = end + 1;
      SkipSpace(s, i);
      if (i >= s.size() || s[i] != ':') return false;
      ++i;
      SkipSpace(s, i);
    } else {
      label = index < labels.size() ? labels[index] : std::to_string(index);
    }
    double value;
    if (!ParseNumber(s, i, &value)) return false;
    out->emplace_back(std::move(label), value);
    SkipSpace(s, i);
    if (i >= s.size()) return false;
    if (s[i] == ',') {
      ++i;
      continue;
    }
    if (s[i] != close) return false;
    ++i;
    break;
  }
  SkipSpace(s, i);
  if (i != s.size()) return false;
  if (open == '{') {
    // Duplicate keys: let the JSON parser decide.
    for (size_t a = 0; a < out->size(); ++a) {
      for (size_t b = a + 1; b < out->size(); ++b) {
        if ((*out)[a].first == (*out)[b].first) return false;
      }
    }
  }
  SortDistribution(*out);
  return true;
}

bool RouteMatches(const std::string& pattern, const std::string& value) {
  return pattern == "*" || pattern == value;
}

}  // namespace

std::optional<json> ParseBodyJson(std::string_view body) {
  json v = json::parse(body, nullptr, false);
  if (!v.is_discarded()) return v;
  if (body.find("NaN") == std::string_view::npos &&
      body.find("Infinity") == std::string_view::npos) {
    return std::nullopt;
  }
  v = json::parse(MarkNonFinite(body), nullptr, false);
  if (v.is_discarded()) return std::nullopt;
  return v;
}

bool PathMatches(const JsonPathPattern& pattern, const Path& path) {
  if (pattern.segments.size() != path.size()) return false;
  for (size_t i = 0; i < path.size(); ++i) {
    const auto& want = pattern.segments[i];
    const auto& have = path[i];
    if (want.is_index != have.is_index) {
      if (!(want.wildcard && !want.is_index && !have.is_index)) return false;
    }
    if (want.wildcard) continue;
    if (have.is_index ? want.index != have.index : want.key != have.key) return false;
  }
  return true;
}

std::optional<Distribution> ParseDistribution(const json& value,
                                              const std::vector<std::string>& labels) {
  const json* v = &value;
  if (v->is_array() && v->size() == 1 && (*v)[0].is_object()) v = &(*v)[0];
  Distribution out;
  if (v->is_object()) {
    if (v->empty()) return std::nullopt;
    for (auto it = v->begin(); it != v->end(); ++it) {
      auto p = NumberOf(*it);
      if (!p) return std::nullopt;
      out.emplace_back(it.key(), *p);
    }
  } else if (v->is_array()) {
    if (v->empty()) return std::nullopt;
    for (size_t i = 0; i < v->size(); ++i) {
      auto p = NumberOf((*v)[i]);
      if (!p) return std::nullopt;
      out.emplace_back(i < labels.size() ? labels[i] : std::to_string(i), *p);
    }
  } else {
    return std::nullopt;
  }
  SortDistribution(out);
  return out;
}

ClassificationMetrics CompareDistributions(const Distribution& primary, const Distribution& shadow,
                                           int top_k) {
  ClassificationMetrics m;
  m.primary_top1 = primary.empty() ? "" : primary[0].first;
  m.shadow_top1 = shadow.empty() ? "" : shadow[0].first;
  m.top1_agree = m.primary_top1 == m.shadow_top1;
  if (!primary.empty()) {
    m.primary_margin = primary[0].second - (primary.size() > 1 ? primary[1].second : 0.0);
  }
  const size_t k = std::min({static_cast<size_t>(top_k), primary.size(), shadow.size()});
  size_t common = 0;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j < k; ++j) {
      if (primary[i].first == shadow[j].first) {
        ++common;
        break;
      }
    }
  }
  m.topk_overlap = k ? static_cast<double>(common) / static_cast<double>(k) : 0;

  // Union of labels (a handful: a linear scan beats a map); the mass a side does not list is one
  // "rest" label per side.
  double p_sum = 0, q_sum = 0;
  for (const auto& e : primary) p_sum += e.second;
  for (const auto& e : shadow) q_sum += e.second;
  double tv = 0, js = 0;
  auto add = [&](double p, double q) {
    tv += std::fabs(p - q);
    const double mid = (p + q) / 2;
    if (p > 0) js += 0.5 * p * std::log2(p / mid);
    if (q > 0) js += 0.5 * q * std::log2(q / mid);
  };
  auto find = [](const Distribution& d, const std::string& label) {
    for (const auto& e : d) {
      if (e.first == label) return e.second;
    }
    return -1.0;
  };
  for (const auto& [label, p] : primary) {
    const double found = find(shadow, label);
    const double q = found < 0 ? 0.0 : found;
    m.max_abs_diff = std::max(m.max_abs_diff, std::fabs(p - q));
    add(p, q);
  }
  for (const auto& [label, q] : shadow) {
    if (find(primary, label) >= 0) continue;
    m.max_abs_diff = std::max(m.max_abs_diff, q);
    add(0, q);
  }
  add(std::max(0.0, 1 - p_sum), std::max(0.0, 1 - q_sum));
  m.total_variation = tv / 2;
  m.js_distance = std::sqrt(std::clamp(js, 0.0, 1.0));
  return m;
}

RegressionMetrics CompareValues(const std::vector<double>& primary,
                                const std::vector<double>& shadow, double abs, double rel) {
  RegressionMetrics m;
  m.n = std::min(primary.size(), shadow.size());
  double sum_abs = 0, sum_sq = 0;
  for (size_t i = 0; i < m.n; ++i) {
    const double e = std::fabs(primary[i] - shadow[i]);
    m.sum_signed += shadow[i] - primary[i];
    m.sum_signed_sq += e * e;
    m.primary_sum += primary[i];
    m.primary_sum_sq += primary[i] * primary[i];
    sum_abs += e;
    sum_sq += e * e;
    m.max_error = std::max(m.max_error, e);
    if (primary[i] != 0) m.max_rel_error = std::max(m.max_rel_error, e / std::fabs(primary[i]));
    if (e > abs + rel * std::fabs(primary[i])) m.within = false;
  }
  if (m.n) {
    m.mae = sum_abs / static_cast<double>(m.n);
    m.rmse = std::sqrt(sum_sq / static_cast<double>(m.n));
  }
  if (primary.size() != shadow.size()) m.within = false;
  return m;
}

EmbeddingMetrics CompareEmbeddings(const std::vector<double>& primary,
                                   const std::vector<double>& shadow) {
  EmbeddingMetrics m;
  double dot = 0, pp = 0, ss = 0, dd = 0;
  const size_t n = std::min(primary.size(), shadow.size());
  for (size_t i = 0; i < n; ++i) {
    dot += primary[i] * shadow[i];
    pp += primary[i] * primary[i];
    ss += shadow[i] * shadow[i];
    dd += (primary[i] - shadow[i]) * (primary[i] - shadow[i]);
  }
  m.cosine = (pp > 0 && ss > 0) ? dot / std::sqrt(pp * ss) : (pp == ss ? 1 : 0);
  m.rel_l2 = pp > 0 ? std::sqrt(dd / pp) : (dd > 0 ? INFINITY : 0);
  return m;
}

JsonDiff DiffJson(const json& primary, const json& shadow, const CompareRule& rule) {
  JsonDiff out;
  Path path;
  DiffRec(primary, shadow, path, rule, out);
  return out;
}

namespace {

// The least tolerance a scorer's number gets when an auto or classification rule judges it.
constexpr double kScorerTolerance = 1e-3;

// A scorer's answer: a bare number, or an object with one numeric member named "score", "value"
// or "prediction" (an image scorer's {"score": 0.73}), alone or in a one-element array. Its
// number, or nullptr.
const json* ScorerValue(const json& v) {
  if (NumberOf(v)) return &v;
  if (v.is_array() && v.size() == 1 && v[0].is_object())
    return ScorerValue(v[0]);  // a batch of one
  if (!v.is_object() || v.size() != 1) return nullptr;
  const auto it = v.begin();
  if (it.key() != "score" && it.key() != "value" && it.key() != "prediction") return nullptr;
  return NumberOf(*it) ? &*it : nullptr;
}

// What the primary's 2xx body looks like, for rules selected by shape and for kind "auto". A
// flat distribution read on the way is handed to `flat` (when given), so it is read once.
BodyShape ShapeOf(const PairRecord& pair, const std::vector<std::string>& labels,
                  Distribution* flat = nullptr) {
  Distribution d;
  if (ParseFlatDistribution(pair.primary.body, labels, &d)) {
    // {"score": 0.7} reads as a one-label distribution too: the key decides.
    const bool scorer =
        d.size() == 1 && pair.primary.body.front() == '{' &&
        (d[0].first == "score" || d[0].first == "value" || d[0].first == "prediction");
    if (!scorer && flat) *flat = std::move(d);
    return scorer ? BodyShape::kScorer : BodyShape::kDistribution;
  }
  auto doc = ParseBodyJson(pair.primary.body);
  if (!doc) return BodyShape::kOther;
  if (ScorerValue(*doc)) return BodyShape::kScorer;
  if (ParseDistribution(*doc, labels)) return BodyShape::kDistribution;
  return BodyShape::kOther;
}

bool Is2xx(int status) {
  return status >= 200 && status < 300;
}

}  // namespace

const CompareRule* FindRule(const CompareConfig& config, const PairRecord& pair) {
  std::optional<BodyShape> shape;  // computed once, only when a rule asks for one
  for (const auto& rule : config.rules) {
    if (!RouteMatches(rule.route, pair.route) || !RouteMatches(rule.mirror, pair.mirror)) continue;
    if (rule.shape != BodyShape::kAny) {
      if (!Is2xx(pair.primary.status)) continue;
      if (!shape) shape = ShapeOf(pair, rule.labels);
      if (*shape != rule.shape) continue;
    }
    return &rule;
  }
  return nullptr;
}

PairJudgement JudgePair(const CompareConfig& config, const PairRecord& pair) {
  PairJudgement j;
  j.rule = FindRule(config, pair);
  if (pair.primary.outcome != "ok" || pair.primary.status == 0) {
    j.outcome = Outcome::kPrimaryError;
    j.reason = "primary " + pair.primary.outcome +
               (pair.primary.error.empty() ? "" : ": " + pair.primary.error);
    return j;
  }
  if (pair.shadow.outcome != "ok" || pair.shadow.status == 0) {
    j.outcome =
        pair.shadow.outcome == "shadow_timeout" ? Outcome::kShadowTimeout : Outcome::kShadowError;
    j.reason = "shadow " + pair.shadow.outcome +
               (pair.shadow.error.empty() ? "" : ": " + pair.shadow.error);
    j.severity = 1;
    return j;
  }
  if (pair.primary.status != pair.shadow.status) {
    // A server error where the primary did not fail is the candidate failing, not disagreeing.
    const bool shadow_failed = pair.shadow.status >= 500 && pair.primary.status < 500;
    j.outcome = shadow_failed ? Outcome::kShadowError : Outcome::kMismatch;
    j.fields.push_back("status");
    j.reason = shadow_failed ? "shadow answered " + std::to_string(pair.shadow.status) +
                                   ", primary " + std::to_string(pair.primary.status)
                             : "status " + std::to_string(pair.primary.status) + " vs " +
                                   std::to_string(pair.shadow.status);
    j.severity = 1;
    return j;
  }
  if (j.rule) {
    for (const auto& name : j.rule->compare_headers) {
      auto a = pair.primary.headers.find(name);
      auto b = pair.shadow.headers.find(name);
      const bool pa = a != pair.primary.headers.end(), pb = b != pair.shadow.headers.end();
      if (pa != pb || (pa && a->second != b->second)) j.fields.push_back("header:" + name);
    }
  }
  const bool header_diff = !j.fields.empty();
  auto finish = [&](Outcome body_outcome) {
    j.outcome = header_diff ? Outcome::kMismatch : body_outcome;
    if (header_diff && j.reason.empty()) j.reason = "headers differ: " + j.fields.front();
    if (header_diff) j.severity = std::max(j.severity, 0.5);
    return j;
  };
  auto unparseable = [&](std::string reason) {
    j.outcome = Outcome::kUnparseable;
    j.reason = std::move(reason);
    j.severity = 0.5;
    return j;
  };
  // The primary's answer cannot be read under the rule: nothing to judge the candidate against.
  // Identical bytes still agree; anything else is left out like a primary failure.
  auto primary_unreadable = [&](const std::string& why) {
    if (pair.primary.body == pair.shadow.body) return finish(Outcome::kMatch);
    j.outcome = Outcome::kPrimaryError;
    j.reason = "primary " + why + ": the pair cannot be judged";
    return j;
  };
  auto classify = [&](const Distribution& pd, const Distribution& sd) -> PairJudgement {
    j.classification = CompareDistributions(pd, sd, j.rule->top_k);
    const auto& m = *j.classification;
    j.severity = std::max(m.js_distance, m.max_abs_diff);
    if (!m.top1_agree) {
      j.outcome = Outcome::kMismatch;
      j.reason = "top-1 " + m.primary_top1 + " vs " + m.shadow_top1;
      j.fields.push_back("top1");
      j.severity = 0.5 + 0.5 * j.severity;
      return j;
    }
    if (m.max_abs_diff == 0) return finish(Outcome::kMatch);
    if (m.max_abs_diff <= j.rule->max_prob_diff && m.js_distance <= j.rule->max_js_distance) {
      return finish(Outcome::kWithinTolerance);
    }
    j.outcome = Outcome::kMismatch;
    j.fields.push_back("probabilities");
    j.reason = "same top-1, max |dp| " + FormatDouble(m.max_abs_diff) + ", JS distance " +
               FormatDouble(m.js_distance);
    return j;
  };
  // Error statuses are compared by status (and configured headers) only.
  if (!Is2xx(pair.primary.status)) return finish(Outcome::kMatch);
  CompareKind kind = j.rule ? j.rule->kind : CompareKind::kExact;
  Distribution primary_flat;     // the primary's distribution when ShapeOf read it flat
  bool scorer_by_shape = false;  // an auto or classification rule judges a scorer's number
  if (kind == CompareKind::kAuto || kind == CompareKind::kClassification) {
    // "auto" judges by the primary's shape; a classification rule still judges a scorer's
    // {"score": x} as a number (read as a one-label distribution it would always agree).
    const BodyShape shape = ShapeOf(pair, j.rule->labels, &primary_flat);
    if (shape == BodyShape::kScorer) {
      scorer_by_shape = true;
      kind = CompareKind::kRegression;
    } else if (kind == CompareKind::kAuto) {
      kind = shape == BodyShape::kDistribution ? CompareKind::kClassification : CompareKind::kJson;
    }
  }
  const bool identical = pair.primary.body == pair.shadow.body &&
                         pair.primary.body_truncated == pair.shadow.body_truncated;
  if (kind == CompareKind::kExact ||
      (identical && (kind == CompareKind::kJson || kind == CompareKind::kEmbedding))) {
    if (identical) return finish(Outcome::kMatch);
    j.fields.push_back("body");
    j.reason = "bodies differ";
    j.severity = 1;
    j.outcome = Outcome::kMismatch;
    return j;
  }
  if (pair.shadow.body_truncated) return unparseable("shadow body truncated at capture");
  if (pair.primary.body_truncated) return primary_unreadable("body truncated at capture");
  const CompareRule& rule = *j.rule;
  if (kind == CompareKind::kClassification && rule.field.segments.empty() &&
      !primary_flat.empty()) {
    Distribution sd;
    if (ParseFlatDistribution(pair.shadow.body, rule.labels, &sd))
      return classify(primary_flat, sd);
  }
  auto p_doc = ParseBodyJson(pair.primary.body);
  if (!p_doc) return primary_unreadable("body is not JSON");
  auto s_doc = ParseBodyJson(pair.shadow.body);
  if (!s_doc) return unparseable("shadow body is not JSON");
  const json* p = &*p_doc;
  const json* s = &*s_doc;
  if (!rule.field.segments.empty()) {
    p = Select(*p, rule.field);
    if (!p) return primary_unreadable("body has no " + rule.field_text);
    s = Select(*s, rule.field);
    if (!s) return unparseable("shadow body has no " + rule.field_text);
  }
  switch (kind) {
    case CompareKind::kJson: {
      JsonDiff diff = DiffJson(*p, *s, rule);
      if (!diff.fields.empty()) {
        j.fields.insert(j.fields.end(), diff.fields.begin(), diff.fields.end());
        j.reason =
            std::to_string(diff.fields.size()) + " field(s) differ, first " + diff.fields.front();
        j.severity = std::min(1.0, 0.1 * static_cast<double>(diff.fields.size()));
        j.outcome = Outcome::kMismatch;
        return j;
      }
      return finish(diff.used_tolerance ? Outcome::kWithinTolerance : Outcome::kMatch);
    }
    case CompareKind::kClassification: {
      auto pd = ParseDistribution(*p, rule.labels);
      if (!pd) return primary_unreadable("body is not a class distribution");
      auto sd = ParseDistribution(*s, rule.labels);
      if (!sd) return unparseable("shadow body is not a class distribution");
      std::vector<double> pv, sv;
      for (const auto& e : *pd) pv.push_back(e.second);
      for (const auto& e : *sd) sv.push_back(e.second);
      if (HasNonFinite(pv) || HasNonFinite(sv)) {
        const bool both_same =
            rule.nan == NanPolicy::kEqual && pair.primary.body == pair.shadow.body;
        j.outcome = both_same ? Outcome::kMatch : Outcome::kMismatch;
        j.reason = "non-finite probability";
        j.fields.push_back("probabilities");
        j.severity = both_same ? 0 : 1;
        return j;
      }
      return classify(*pd, *sd);
    }
    case CompareKind::kRegression:
    case CompareKind::kEmbedding: {
      if (kind == CompareKind::kRegression && ScorerValue(*p)) {
        // A scorer: the shadow must answer a score too.
        const json* ps = ScorerValue(*p);
        const json* ss = ScorerValue(*s);
        if (!ss) return unparseable("shadow body is not a score");
        p = ps;
        s = ss;
      }
      std::vector<double> pv, sv;
      if (!Flatten(*p, pv)) return primary_unreadable("body is not a number or numeric array");
      if (!Flatten(*s, sv)) return unparseable("shadow body is not a number or numeric array");
      if (pv.size() != sv.size()) {
        j.outcome = Outcome::kMismatch;
        j.fields.push_back("length");
        j.reason = "length " + std::to_string(pv.size()) + " vs " + std::to_string(sv.size());
        j.severity = 1;
        return j;
      }
      if (!ResolveNonFinite(pv, sv, rule.nan)) {
        j.outcome = Outcome::kMismatch;
        j.fields.push_back("non-finite");
        j.reason = "non-finite values differ";
        j.severity = 1;
        return j;
      }
      if (kind == CompareKind::kRegression) {
        // A rule written for another kind has no tolerance meant for scores: floating-point
        // noise (kScorerTolerance, absolute or relative) is not a difference.
        const double abs = scorer_by_shape ? std::max(rule.abs, kScorerTolerance) : rule.abs;
        const double rel = scorer_by_shape ? std::max(rule.rel, kScorerTolerance) : rule.rel;
        j.regression = CompareValues(pv, sv, abs, rel);
        const auto& m = *j.regression;
        j.severity = std::min(1.0, m.max_rel_error);
        if (m.max_error == 0) return finish(Outcome::kMatch);
        if (m.within) return finish(Outcome::kWithinTolerance);
        j.outcome = Outcome::kMismatch;
        j.fields.push_back("values");
        j.reason = "max error " + FormatDouble(m.max_error) + " beyond abs " + FormatDouble(abs) +
                   " + rel " + FormatDouble(rel);
        return j;
      }
      j.embedding = CompareEmbeddings(pv, sv);
      const auto& m = *j.embedding;
      j.severity = std::clamp(1 - m.cosine, 0.0, 1.0);
      if (pv == sv) return finish(Outcome::kMatch);
      if (m.cosine >= rule.min_cosine && m.rel_l2 <= rule.max_rel_l2) {
        return finish(Outcome::kWithinTolerance);
      }
      j.outcome = Outcome::kMismatch;
      j.fields.push_back("embedding");
      j.reason = "cosine " + FormatDouble(m.cosine) + ", relative L2 " + FormatDouble(m.rel_l2);
      return j;
    }
    case CompareKind::kExact:
    case CompareKind::kAuto:
      break;
  }
  return finish(Outcome::kMatch);
}

}  // namespace sg::comparator
