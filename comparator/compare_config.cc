#include "comparator/compare_config.h"

#include <algorithm>
#include <cctype>

namespace sg::comparator {

bool ParseJsonPath(const std::string& text, JsonPathPattern* out, std::string* error) {
  out->text = text;
  out->segments.clear();
  if (text.empty() || text[0] != '$') {
    *error = "a JSON path starts with \"$\", got \"" + text + "\"";
    return false;
  }
  size_t i = 1;
  while (i < text.size()) {
    JsonPathPattern::Segment seg;
    if (text[i] == '.') {
      size_t j = i + 1;
      while (j < text.size() && text[j] != '.' && text[j] != '[') ++j;
      seg.key = text.substr(i + 1, j - i - 1);
      if (seg.key.empty()) {
        *error = "empty key at offset " + std::to_string(i) + " in \"" + text + "\"";
        return false;
      }
      seg.wildcard = seg.key == "*";
      i = j;
    } else if (text[i] == '[') {
      const size_t close = text.find(']', i);
      if (close == std::string::npos) {
        *error = "unclosed \"[\" in \"" + text + "\"";
        return false;
      }
      std::string inner = text.substr(i + 1, close - i - 1);
      if (inner == "*") {
        seg.is_index = true;
        seg.wildcard = true;
      } else if (inner.size() >= 2 && (inner.front() == '\'' || inner.front() == '"') &&
                 inner.back() == inner.front()) {
        seg.key = inner.substr(1, inner.size() - 2);
      } else if (!inner.empty() && std::all_of(inner.begin(), inner.end(), [](char c) {
                   return std::isdigit(static_cast<unsigned char>(c));
                 })) {
        seg.is_index = true;
        seg.index = std::stoul(inner);
      } else {
        *error = "bad index \"[" + inner + "]\" in \"" + text + "\"";
        return false;
      }
      i = close + 1;
    } else {
      *error = "expected \".\" or \"[\" at offset " + std::to_string(i) + " in \"" + text + "\"";
      return false;
    }
    out->segments.push_back(std::move(seg));
  }
  return true;
}

const char* BodyShapeName(BodyShape shape) {
  switch (shape) {
    case BodyShape::kAny:
      return "any";
    case BodyShape::kScorer:
      return "scorer";
    case BodyShape::kDistribution:
      return "distribution";
    case BodyShape::kOther:
      return "other";
  }
  return "?";
}

namespace {

JsonPathPattern PathOf(const ConfigNode& node) {
  JsonPathPattern out;
  std::string error;
  std::string text;
  try {
    text = node.AsString();
  } catch (const ConfigError& e) {
    node.Absorb(e);
    return out;
  }
  if (!ParseJsonPath(text, &out, &error)) node.Report(error);
  return out;
}

std::vector<JsonPathPattern> PathsOf(const ConfigNode& node) {
  std::vector<JsonPathPattern> out;
  for (const auto& element : node.Elements()) out.push_back(PathOf(element));
  return out;
}

std::vector<double> NumbersOf(const ConfigNode& node) {
  std::vector<double> out;
  for (const auto& element : node.Elements()) {
    try {
      out.push_back(element.AsNumber());
    } catch (const ConfigError& e) {
      element.Absorb(e);
    }
  }
  return out;
}

double NonNegative(ObjectReader& reader, const char* key, double fallback) {
  return reader.GetInRange<double>(key, fallback, 0.0, 1e300);
}

CompareRule ParseRule(const ConfigNode& node) {
  ObjectReader r(node);
  CompareRule rule;
  rule.name = r.Require<std::string>("name");
  rule.route = r.Get<std::string>("route", rule.route);
  rule.mirror = r.Get<std::string>("mirror", rule.mirror);
  const std::string kind = r.Require<std::string>("kind");
  if (kind == "exact") {
    rule.kind = CompareKind::kExact;
  } else if (kind == "json") {
    rule.kind = CompareKind::kJson;
  } else if (kind == "classification") {
    rule.kind = CompareKind::kClassification;
  } else if (kind == "regression") {
    rule.kind = CompareKind::kRegression;
  } else if (kind == "embedding") {
    rule.kind = CompareKind::kEmbedding;
  } else if (kind == "auto") {
    rule.kind = CompareKind::kAuto;
  } else if (r.Has("kind")) {
    r.Required("kind").Report(
        "must be one of auto, exact, json, classification, regression, embedding, got \"" + kind +
        "\"");
  }
  const std::string shape = r.Get<std::string>("shape", "any");
  bool shape_known = false;
  for (BodyShape s :
       {BodyShape::kAny, BodyShape::kScorer, BodyShape::kDistribution, BodyShape::kOther}) {
    if (shape == BodyShapeName(s)) {
      rule.shape = s;
      shape_known = true;
    }
  }
  if (!shape_known) {
    r.Required("shape").Report("must be one of any, scorer, distribution, other, got \"" + shape +
                               "\"");
  }
  for (auto& h : r.Get<std::vector<std::string>>("compare_headers", {})) {
    rule.compare_headers.push_back(ToLowerAscii(h));
  }
  if (auto f = r.Optional("field")) {
    rule.field = PathOf(*f);
    rule.field_text = rule.field.text;
    for (const auto& seg : rule.field.segments) {
      if (seg.wildcard) f->Report("field must not contain wildcards");
    }
  }
  const std::string nan = r.Get<std::string>("nan", "equal");
  if (nan == "equal") {
    rule.nan = NanPolicy::kEqual;
  } else if (nan == "mismatch") {
    rule.nan = NanPolicy::kMismatch;
  } else {
    r.Required("nan").Report("must be \"equal\" or \"mismatch\", got \"" + nan + "\"");
  }
  if (auto n = r.Optional("ignore")) rule.ignore = PathsOf(*n);
  if (auto n = r.Optional("tolerance")) {
    for (const auto& element : n->Elements()) {
      ObjectReader t(element);
      PathTolerance tol;
      tol.path = PathOf(t.Required("path"));
      tol.abs = NonNegative(t, "abs", 0);
      tol.rel = NonNegative(t, "rel", 0);
      t.Finish();
      rule.tolerances.push_back(std::move(tol));
    }
  }
  rule.abs = NonNegative(r, "abs", rule.abs);
  rule.rel = NonNegative(r, "rel", rule.rel);
  rule.top_k = r.GetInRange<int>("top_k", rule.top_k, 1, 1000);
  rule.max_prob_diff = r.GetInRange<double>("max_prob_diff", rule.max_prob_diff, 0.0, 1.0);
  rule.max_js_distance = r.GetInRange<double>("max_js_distance", rule.max_js_distance, 0.0, 1.0);
  if (auto n = r.Optional("margin_buckets")) {
    rule.margin_buckets = NumbersOf(*n);
    for (size_t i = 0; i < rule.margin_buckets.size(); ++i) {
      if (rule.margin_buckets[i] <= 0 || rule.margin_buckets[i] > 1 ||
          (i > 0 && rule.margin_buckets[i] <= rule.margin_buckets[i - 1])) {
        n->Report("must be increasing values in (0, 1]");
        break;
      }
    }
  }
  rule.labels = r.Get<std::vector<std::string>>("labels", {});
  rule.min_cosine = r.GetInRange<double>("min_cosine", rule.min_cosine, -1.0, 1.0);
  rule.max_rel_l2 = NonNegative(r, "max_rel_l2", rule.max_rel_l2);
  r.Finish();
  return rule;
}

}  // namespace

CompareConfig ParseCompareConfig(const ConfigNode& root) {
  ObjectReader r(root);
  CompareConfig config;
  auto rules = r.Required("rules");
  for (const auto& element : rules.Elements()) {
    try {
      config.rules.push_back(ParseRule(element));
    } catch (const ConfigError& e) {
      element.Absorb(e);
    }
  }
  if (config.rules.empty() && rules.json().is_array()) rules.Report("needs at least one rule");
  config.true_label_header =
      ToLowerAscii(r.Get<std::string>("true_label_header", config.true_label_header));
  config.true_score_header =
      ToLowerAscii(r.Get<std::string>("true_score_header", config.true_score_header));
  config.reservoir_size = static_cast<size_t>(r.GetInRange<int64_t>(
      "reservoir_size", static_cast<int64_t>(config.reservoir_size), 10, 1000000));
  config.seed = static_cast<uint64_t>(r.GetInRange<int64_t>("seed", 1, 0, INT64_MAX));
  config.confidence = r.GetInRange<double>("confidence", config.confidence, 0.5, 0.9999);
  config.window = r.Get<std::chrono::microseconds>("window", config.window);
  if (config.window.count() <= 0) r.Required("window").Report("must be positive");
  if (auto n = r.Optional("size_buckets")) {
    config.size_buckets.clear();
    double previous = -1;
    for (double v : NumbersOf(*n)) {
      if (v <= previous || v < 0) {
        n->Report("must be increasing non-negative sizes in bytes");
        break;
      }
      previous = v;
      config.size_buckets.push_back(static_cast<uint64_t>(v));
    }
  }
  config.max_examples = static_cast<size_t>(r.GetInRange<int64_t>("max_examples", 10, 0, 1000));
  config.max_slices = static_cast<size_t>(r.GetInRange<int64_t>("max_slices", 64, 1, 10000));
  config.max_fields = static_cast<size_t>(r.GetInRange<int64_t>("max_fields", 200, 1, 100000));
  config.min_slice_pairs = static_cast<uint64_t>(r.GetInRange<int64_t>(
      "min_slice_pairs", static_cast<int64_t>(config.min_slice_pairs), 1, INT64_MAX));
  config.max_time_slices = static_cast<size_t>(r.GetInRange<int64_t>(
      "max_time_slices", static_cast<int64_t>(config.max_time_slices), 1, 1000));
  config.min_window_pairs = static_cast<uint64_t>(r.GetInRange<int64_t>(
      "min_window_pairs", static_cast<int64_t>(config.min_window_pairs), 1, INT64_MAX));
  config.tail_multiple = r.GetInRange<double>("tail_multiple", config.tail_multiple, 1.0, 1000.0);
  if (auto n = r.Optional("noise_floor")) {
    ObjectReader nr(*n);
    config.noise_floor.mirror = nr.Require<std::string>("mirror");
    if (nr.Has("mirror") && config.noise_floor.mirror.empty()) {
      nr.Required("mirror").Report("must not be empty");
    }
    config.noise_floor.rel = nr.GetInRange<double>("rel", config.noise_floor.rel, 0.0, 1e6);
    config.noise_floor.abs = nr.GetInRange<double>("abs", config.noise_floor.abs, 0.0, 1.0);
    nr.Finish();
  }
  if (auto n = r.Optional("redact")) {
    ObjectReader rr(*n);
    auto headers = rr.Get<std::vector<std::string>>("headers", config.redact.headers);
    config.redact.headers.clear();
    for (auto& h : headers) config.redact.headers.push_back(ToLowerAscii(h));
    if (auto f = rr.Optional("json_fields")) config.redact.json_fields = PathsOf(*f);
    config.redact.body_chars =
        static_cast<size_t>(rr.GetInRange<int64_t>("body_chars", 300, 0, 1 << 20));
    rr.Finish();
  }
  r.Finish();
  return config;
}

CompareConfig LoadCompareConfig(const std::string& path) {
  return LoadConfigFile<CompareConfig>(path, ParseCompareConfig);
}

CompareConfig DefaultCompareConfig() {
  return ParseConfig<CompareConfig>(DefaultCompareConfigText(), "(built-in rules)",
                                    ParseCompareConfig);
}

}  // namespace sg::comparator
