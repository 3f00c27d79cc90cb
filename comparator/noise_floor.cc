#include "comparator/noise_floor.h"

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace sg::comparator {

using nlohmann::json;

namespace {

std::optional<double> Number(const json& j, const char* a, const char* b) {
  if (!j.contains(a) || !j[a].contains(b) || !j[a][b].is_number()) return std::nullopt;
  return j[a][b].get<double>();
}

std::optional<double> FlipRate(const json& j) {
  auto pairs = Number(j, "classification", "pairs");
  auto flips = Number(j, "classification", "top1_flips");
  if (!pairs || !flips || *pairs == 0) return std::nullopt;
  return *flips / *pairs;
}

// Differing fields as a share of eligible pairs.
std::map<std::string, double> FieldRates(const json& j) {
  std::map<std::string, double> out;
  const double eligible = j["rates"]["eligible_pairs"].get<double>();
  if (eligible <= 0) return out;
  for (const auto& f : j["differing_fields"]) {
    out[f["field"].get<std::string>()] = f["count"].get<double>() / eligible;
  }
  return out;
}

}  // namespace

json NoiseFloorJson(const json& candidate, const json& noise, const NoiseFloor& nf) {
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
  for (const char* m : {"mismatch_rate", "shadow_error_rate", "shadow_timeout_rate",
                        "unparseable_rate", "failure_rate"}) {
    metrics[m] = compare(Number(candidate, "rates", m), Number(noise, "rates", m));
  }
  metrics["top1_flip_rate"] = compare(FlipRate(candidate), FlipRate(noise));
  for (const char* m :
       {"mean_max_abs_prob_diff", "mean_total_variation", "mean_js_distance", "p99_js_distance"}) {
    metrics[m] =
        compare(Number(candidate, "classification", m), Number(noise, "classification", m));
  }
  const auto cf = FieldRates(candidate), nfields = FieldRates(noise);
  json fields = json::array();
  for (const auto& [name, rate] : cf) {
    auto it = nfields.find(name);
    json row = compare(rate, it == nfields.end() ? 0.0 : it->second);
    row["field"] = name;
    fields.push_back(std::move(row));
  }
  for (const auto& [name, rate] : nfields) {
    if (cf.count(name)) continue;
    json row = compare(0.0, rate);
    row["field"] = name;
    fields.push_back(std::move(row));
  }
  // The noise per slice, for the per-slice gates: name -> its rates.
  json slices = json::object();
  if (noise.contains("slices")) {
    for (auto dim = noise["slices"].begin(); dim != noise["slices"].end(); ++dim) {
      if (!dim->is_array()) continue;
      json by_name = json::object();
      for (const auto& s : *dim) {
        by_name[s["name"].get<std::string>()] = {{"eligible", s["eligible"]},
                                                 {"mismatch_rate", s["mismatch_rate"]},
                                                 {"failure_rate", s["failure_rate"]},
                                                 {"top1_agreement", s["top1_agreement"]}};
      }
      slices[dim.key()] = std::move(by_name);
    }
  }
  const bool enough = noise["rates"]["eligible_pairs"].get<uint64_t>() > 0;
  return {{"mirror", nf.mirror},
          {"rel", nf.rel},
          {"abs", nf.abs},
          {"pairs", noise["pairs"]},
          {"valid", enough},
          {"metrics", metrics},
          {"fields", fields},
          {"slices", slices},
          {"flagged", enough ? json(flagged) : json()},
          {"noise_latency_p99_ms", noise["latency"]["shadow"]["p99_ms"]}};
}

}  // namespace sg::comparator
