// CompareConfig: how pairs are judged (configs/compare*.json), parsed once into immutable structs.
// The format is documented in docs/comparator.md; every field's default is written next to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace sg::comparator {

// A JSON path such as $.items[*].id or $.scores[3]; "*" matches any key or any index.
struct JsonPathPattern {
  struct Segment {
    bool is_index = false;
    bool wildcard = false;
    std::string key;
    size_t index = 0;
  };
  std::string text;
  std::vector<Segment> segments;
};

// Parses `text` ("$", "$.a", "$.a[2].b", "$.a[*]", "$.*.b", "$['a b']"); false with `error` when
// it is not such a path.
bool ParseJsonPath(const std::string& text, JsonPathPattern* out, std::string* error);

// kAuto judges each pair by the primary's answer: a class distribution as a classification, a
// score ({"score": x} or a bare number) as a regression, any other JSON as json.
enum class CompareKind { kExact, kJson, kClassification, kRegression, kEmbedding, kAuto };

// A rule with a shape other than kAny applies only to pairs whose primary 2xx body has it.
enum class BodyShape {
  kAny,
  kScorer,        // a number, or {"score" | "value" | "prediction": number}
  kDistribution,  // a class distribution: {"label": p, ...}, [{...}] or [p0, p1, ...]
  kOther,         // any other JSON, or not JSON
};
const char* BodyShapeName(BodyShape shape);

// What NaN and infinities compare equal to. JSON has no NaN, but Python and many model servers
// write NaN/Infinity/-Infinity tokens; those bodies are read with the tokens as numbers.
enum class NanPolicy {
  kEqual,  // NaN == NaN and +Inf == +Inf (same sign): a model that emits NaN on both sides agrees
  kMismatch,  // any NaN on either side is a mismatch
};

struct PathTolerance {
  JsonPathPattern path;
  double abs = 0;  // |primary - shadow| <= abs + rel * |primary|
  double rel = 0;
};

struct CompareRule {
  std::string name;          // required, shown in reports
  std::string route = "*";   // route name this rule applies to; "*" = any
  std::string mirror = "*";  // mirror (model) name; "*" = any
  CompareKind kind = CompareKind::kJson;
  BodyShape shape = BodyShape::kAny;
  std::vector<std::string> compare_headers;  // response headers that must be equal (lower-case)
  // Optional sub-value of the response body to judge (e.g. $.predictions); whole body when empty.
  std::string field_text;
  JsonPathPattern field;
  NanPolicy nan = NanPolicy::kEqual;

  // json: ignored paths and numeric tolerances (first matching path wins, else abs/rel below).
  std::vector<JsonPathPattern> ignore;
  std::vector<PathTolerance> tolerances;
  double abs = 0;  // default numeric tolerance: 0 = numbers must be equal (json, regression)
  double rel = 0;

  // classification
  int top_k = 5;                 // k of the top-k overlap (TorchServe's default topk is 5)
  double max_prob_diff = 0.05;   // same top-1 and max |p - q| <= this: within_tolerance
  double max_js_distance = 1.0;  // and Jensen-Shannon distance (base 2) <= this; 1 = no limit
  std::vector<double> margin_buckets = {0.05, 0.1, 0.2, 0.5};  // primary top1-top2 margin edges
  std::vector<std::string> labels;  // names of probability-array indices; index numbers if empty

  // embedding
  double min_cosine = 0.999;  // cosine similarity >= this
  double max_rel_l2 = 0.05;   // ||p - s|| / ||p|| <= this
};

struct RedactOptions {
  std::vector<std::string> headers = {"authorization", "cookie", "set-cookie", "x-api-key"};
  std::vector<JsonPathPattern> json_fields;  // string values replaced in shown response bodies
  size_t body_chars = 300;                   // shown response bodies are cut to this many bytes
};

// Noise floor (Diffy's idea): the gateway also mirrors to a second instance of the primary, under
// the mirror name `mirror`. Those pairs (primary vs secondary) measure non-determinism and are kept
// apart from the candidate's; a candidate metric or differing field is flagged only when it exceeds
// the noise by both thresholds: candidate > noise * (1 + rel) + abs.
struct NoiseFloor {
  std::string mirror;  // empty: no noise floor
  double rel = 0.5;    // relative margin over the noise
  double abs = 0.001;  // absolute margin over the noise (rates and distances are in [0, 1])
};

struct CompareConfig {
  std::vector<CompareRule> rules;  // first matching rule judges a pair; no match: exact bytes
  // Request header carrying the true label (captured by the gateway); empty: no accuracy.
  std::string true_label_header = "x-true-label";
  // Request header carrying a scorer's true score; empty: no error against the truth.
  std::string true_score_header = "x-true-score";
  size_t reservoir_size = 10000;  // latency pairs kept for the rank tests (bounded memory)
  uint64_t seed = 1;              // reservoir sampling seed (runs are reproducible)
  double confidence = 0.98;       // Hodges-Lehmann intervals (Kayenta's default)
  std::chrono::microseconds window = std::chrono::seconds(10);  // time-series bucket, doubled
                                                                // when a run has > 240 buckets
  std::vector<uint64_t> size_buckets = {1024, 16384, 262144};   // request size slice edges, bytes
  size_t max_examples = 10;                                     // worst examples kept
  size_t max_slices = 64;         // distinct values per slice dimension; the rest go to "(other)"
  size_t max_fields = 200;        // distinct differing field paths counted; the rest to "(other)"
  uint64_t min_slice_pairs = 30;  // a slice is judged by the per-slice gates from this many pairs
  size_t max_time_slices = 20;    // the run is judged in at most this many time slices
  double tail_multiple = 1.25;    // tail excess: latencies above this x the primary's p99
  // An hour or a day of the run timeline is judged (named worst, read by the worst_window_*
  // gates) from this many eligible pairs: fewer, and one bad pair would name a quiet hour.
  uint64_t min_window_pairs = 100;
  RedactOptions redact;
  NoiseFloor noise_floor;
};

CompareConfig ParseCompareConfig(const ConfigNode& root);
// The rules `sg-compare` uses without --rules (configs/compare-default.json, built in).
CompareConfig DefaultCompareConfig();
const char* DefaultCompareConfigText();
CompareConfig LoadCompareConfig(const std::string& path);  // throws ConfigError

}  // namespace sg::comparator
