#include "comparator/coverage.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "comparator/json_numbers.h"

namespace sg::comparator {

using nlohmann::json;

void Coverage::Add(const MirrorCounters& counters) {
  auto key = std::make_tuple(counters.instance, counters.route, counters.mirror);
  auto it = latest_.find(key);
  if (it == latest_.end()) {
    latest_.emplace(key, counters);
  } else if (counters.ts_us >= it->second.ts_us) {
    it->second = counters;
  }
}

void Coverage::Merge(const Coverage& other) {
  for (const auto& [k, v] : other.latest_) Add(v);
}

bool Coverage::SameState(const Coverage& o) const {
  if (latest_.size() != o.latest_.size()) return false;
  for (auto a = latest_.begin(), b = o.latest_.begin(); a != latest_.end(); ++a, ++b) {
    if (a->first != b->first || EncodePairLogLine(a->second) != EncodePairLogLine(b->second)) {
      return false;
    }
  }
  return true;
}

void Coverage::ToJson(json& out) const {
  // Totals over every instance, route and mirror.
  uint64_t requests = 0, dropped = 0;
  std::map<std::string, uint64_t> not_mirrored, mirrored, not_captured;
  std::set<std::string> instances;
  // Per (route, mirror), summed over instances.
  struct Part {
    uint64_t requests = 0, sampled_out = 0, mirrored = 0, sink_dropped = 0;
    std::map<std::string, uint64_t> left_out;      // non-random reasons
    std::map<std::string, uint64_t> not_captured;  // parts of its pair records left out
  };
  std::map<std::pair<std::string, std::string>, Part> parts;
  // A line is per (instance, route, mirror), but a route's requests are the same on each of its
  // mirrors' lines, and sink_dropped is the whole instance's sink: each is counted once, not once
  // per mirror (with two mirrors, the totals were twice the truth).
  std::map<std::pair<std::string, std::string>, uint64_t> route_requests;
  std::map<std::string, uint64_t> instance_dropped;
  uint64_t copies = 0;  // copies the mirrors could have made: a route's requests per mirror
  for (const auto& [key, m] : latest_) {
    instances.insert(m.instance);
    auto& r = route_requests[{m.instance, m.route}];
    r = std::max(r, m.requests);
    auto& d = instance_dropped[m.instance];
    d = std::max(d, m.sink_dropped);
    copies += m.requests;
    Part& part = parts[{m.route, m.mirror}];
    part.requests += m.requests;
    part.sink_dropped += m.sink_dropped;
    for (const auto& [k, v] : m.not_mirrored) {
      not_mirrored[k] += v;
      if (k == "sampled_out") {
        part.sampled_out += v;
      } else {
        part.left_out[k] += v;
      }
    }
    for (const auto& [k, v] : m.mirrored) {
      mirrored[k] += v;
      part.mirrored += v;
    }
    for (const auto& [k, v] : m.not_captured) {
      not_captured[k] += v;
      part.not_captured[k] += v;
    }
  }
  for (const auto& [key, n] : route_requests) requests += n;
  for (const auto& [instance, n] : instance_dropped) dropped += n;
  uint64_t mirrored_total = 0, not_mirrored_total = 0;
  for (const auto& [k, v] : mirrored) mirrored_total += v;
  for (const auto& [k, v] : not_mirrored) not_mirrored_total += v;
  out["counters"] = {{"records", latest_.size()},
                     {"instances", instances.size()},
                     {"requests", requests},
                     {"mirrored", mirrored},
                     {"mirrored_total", mirrored_total},
                     {"not_mirrored", not_mirrored},
                     {"not_mirrored_total", not_mirrored_total},
                     {"mirrored_fraction", copies ? json(Rate(mirrored_total, copies)) : json()},
                     {"sink_dropped", dropped},
                     {"not_captured", not_captured}};

  // Coverage per (route, mirror): of the requests sampling selected, the share whose pair
  // reached the log. The worst part is what the coverage gate reads.
  json by = json::array();
  json worst;
  double worst_fraction = 2;
  for (const auto& [key, p] : parts) {
    const uint64_t selected = p.requests - std::min(p.requests, p.sampled_out);
    // The sink's drops are not told apart by mirror, so every drop of an instance is taken off
    // each of its mirrors: a lower bound on the coverage, never an overestimate.
    const uint64_t captured = p.mirrored - std::min(p.mirrored, p.sink_dropped);
    if (selected == 0) continue;
    const double fraction = std::min(1.0, Rate(captured, selected));
    json row = {{"route", key.first},     {"mirror", key.second},
                {"requests", p.requests}, {"sampled_out", p.sampled_out},
                {"selected", selected},   {"mirrored", p.mirrored},
                {"left_out", p.left_out}, {"sink_dropped", p.sink_dropped},
                {"captured", captured},   {"fraction", fraction}};
    row["not_captured"] = p.not_captured;  // request bodies its records left out, by reason
    if (fraction < worst_fraction) {
      worst_fraction = fraction;
      worst = row;
    }
    by.push_back(std::move(row));
  }
  json coverage = {{"parts", by}, {"valid", !by.empty()}};
  if (!by.empty()) {
    coverage["fraction"] = worst_fraction;
    coverage["worst"] = worst;
  }
  out["coverage"] = std::move(coverage);
}

}  // namespace sg::comparator
