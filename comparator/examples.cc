#include "comparator/examples.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "comparator/json_numbers.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

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

}  // namespace

void WorstExamples::Insert(Example example) {
  if (config_->max_examples == 0) return;
  auto pos = std::lower_bound(examples_.begin(), examples_.end(), example, Worse);
  examples_.insert(pos, std::move(example));
  if (examples_.size() > config_->max_examples) examples_.pop_back();
}

void WorstExamples::Consider(const PairRecord& pair, const PairJudgement& j) {
  const double tier = OutcomeTier(j.outcome);
  if (tier == 0 || config_->max_examples == 0) return;
  Example e;
  e.score = tier + 0.999 * std::clamp(j.severity, 0.0, 1.0);
  e.id = pair.id;
  e.ts_us = pair.ts_us;
  const bool keep = examples_.size() < config_->max_examples || Worse(e, examples_.back());
  if (!keep) return;
  e.route = pair.route;
  e.mirror = pair.mirror;
  e.outcome = OutcomeName(j.outcome);
  e.reason = j.reason;
  e.fields.assign(j.fields.begin(), j.fields.begin() + std::min<size_t>(j.fields.size(), 10));
  const auto& secret = config_->redact.headers;
  for (const auto& [name, value] : pair.request.headers) {
    const bool hidden = std::find(secret.begin(), secret.end(), name) != secret.end();
    e.request_headers[name] = hidden ? "[redacted]" : value;
  }
  e.request_size = pair.request.size;
  e.request_sha256 = pair.request.sha256;
  e.primary_status = pair.primary.status;
  e.shadow_status = pair.shadow.status;
  e.primary_latency_us = pair.primary.latency_us;
  e.shadow_latency_us = pair.shadow.latency_us;
  e.primary_body = ShowBody(pair.primary.body, config_->redact);
  e.shadow_body = ShowBody(pair.shadow.body, config_->redact);
  Insert(std::move(e));
}

void WorstExamples::Merge(const WorstExamples& other) {
  for (const auto& e : other.examples_) Insert(e);
}

json WorstExamples::ToJson() const {
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
  return ex;
}

}  // namespace sg::comparator
