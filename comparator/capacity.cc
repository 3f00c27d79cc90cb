#include "comparator/capacity.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/strings.h"
#include "common/zstd_file.h"

namespace sg::comparator {

using nlohmann::json;

namespace {

constexpr int64_t kMinuteUs = 60'000'000;
constexpr const char* kCapacitySchema = "shadowgate.capacity.v1";

// A number that must be > 0 (an ObjectReader has ranges for closed intervals only); `if_zero`,
// when given, says what a 0 means.
double Positive(ObjectReader& reader, std::string_view key, const char* if_zero = nullptr) {
  const double value = reader.Require<double>(key);
  if (reader.Has(key) && !(value > 0)) {
    reader.Required(key).Report(value == 0 && if_zero != nullptr
                                    ? std::string(if_zero)
                                    : "must be > 0, got " + FormatDouble(value));
  }
  return value;
}

}  // namespace

std::string FormatGrouped(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  const std::string_view text = buf;
  const size_t sign = text[0] == '-' ? 1 : 0;
  const size_t point = std::min(text.find('.'), text.size());
  std::string out(text.substr(0, sign));
  for (size_t i = sign; i < point; ++i) {
    if (i > sign && (point - i) % 3 == 0) out += ',';
    out += text[i];
  }
  out += text.substr(point);
  return out;
}

std::string FormatTrimmed(double value, int decimals) {
  std::string s = FormatGrouped(value, decimals);
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

double YearlyGpuCost(int64_t gpus, double gpu_hour_price, double hours_per_year) {
  return static_cast<double>(gpus) * gpu_hour_price * hours_per_year;
}

// --- traffic ---

void TrafficMeter::Add(const PairRecord& pair) {
  pairs_[{pair.route, pair.mirror}].push_back(pair.ts_us);
}

void TrafficMeter::Add(const MirrorCounters& counters) {
  uint64_t& requests =
      counters_[{counters.instance, counters.route, counters.mirror}][counters.ts_us];
  requests = std::max(requests, counters.requests);
}

TrafficSummary TrafficMeter::Summarize() const {
  TrafficSummary s;
  s.malformed = malformed_;
  // One series per (instance, route): every mirror of a route counts the route's requests, so
  // the first mirror (by name) stands for all of them.
  std::map<std::pair<std::string, std::string>, const std::map<int64_t, uint64_t>*> series;
  for (const auto& [key, points] : counters_) {
    series.emplace(std::pair{std::get<0>(key), std::get<1>(key)}, &points);
  }
  std::vector<const std::map<int64_t, uint64_t>*> placed;
  for (const auto& [key, points] : series) {
    if (points->size() >= 2) {
      placed.push_back(points);
    } else {
      s.notes.push_back("instance " + key.first + ", route " + key.second +
                        ": one counters line, so its requests cannot be placed in time");
    }
  }
  // Pairs: one mirror per route, the one with the most pairs.
  std::vector<const std::vector<int64_t>*> pair_times;
  {
    std::map<std::string, const std::vector<int64_t>*> best;
    for (const auto& [key, times] : pairs_) {
      auto& b = best[key.first];
      if (b == nullptr || times.size() > b->size()) b = &times;
    }
    for (const auto& [route, times] : best) pair_times.push_back(times);
  }
  int64_t first = INT64_MAX, last = INT64_MIN;
  if (!placed.empty()) {
    s.source = "counters";
    for (const auto* points : placed) {
      first = std::min(first, points->begin()->first);
      last = std::max(last, points->rbegin()->first);
    }
  } else {
    for (const auto* times : pair_times) {
      for (int64_t ts : *times) {
        first = std::min(first, ts);
        last = std::max(last, ts);
      }
    }
    if (first >= last) {
      s.notes.push_back(
          "no counters series with two lines and fewer than two distinct pair times: no rate");
      return s;
    }
    s.source = "pairs";
    s.notes.push_back(
        "no counters lines to place in time: the rate counts the captured pairs only, a lower "
        "bound unless every request was mirrored and nothing was dropped");
  }
  s.start_us = first;
  s.end_us = last;
  const int64_t span_us = last - first;
  const size_t n = static_cast<size_t>((span_us + kMinuteUs - 1) / kMinuteUs);
  s.minutes.resize(n);
  for (size_t k = 0; k < n; ++k) {
    s.minutes[k].start_us = first + static_cast<int64_t>(k) * kMinuteUs;
    s.minutes[k].full = s.minutes[k].start_us + kMinuteUs <= last;
  }
  auto minute_of = [&](int64_t ts) {
    return std::min(static_cast<size_t>((ts - first) / kMinuteUs), n - 1);
  };
  for (const auto* times : pair_times) {
    for (int64_t ts : *times) {
      if (ts < first || ts > last) continue;
      ++s.minutes[minute_of(ts)].pairs;
      ++s.pairs;
    }
  }
  if (s.source == "pairs") {
    for (auto& m : s.minutes) m.requests = static_cast<double>(m.pairs);
    s.requests = static_cast<double>(s.pairs);
  }
  // Counters: the requests between two lines of a series, spread evenly over the time between
  // them (the gateway writes a line every counters_interval, 10 s by default).
  bool restarted = false;
  for (const auto* points : placed) {
    auto prev = points->begin();
    for (auto it = std::next(prev); it != points->end(); prev = it++) {
      const int64_t a = prev->first, b = it->first;
      restarted |= it->second < prev->second;
      const double delta =
          static_cast<double>(it->second >= prev->second ? it->second - prev->second : it->second);
      s.requests += delta;
      for (size_t k = minute_of(a); k <= minute_of(b - 1); ++k) {
        const int64_t lo = std::max(a, s.minutes[k].start_us);
        const int64_t hi = std::min(b, s.minutes[k].start_us + kMinuteUs);
        s.minutes[k].requests += delta * static_cast<double>(hi - lo) / static_cast<double>(b - a);
      }
    }
  }
  s.series = static_cast<int>(placed.size());
  if (restarted) {
    s.notes.push_back(
        "a counters series went down (a gateway restart under the same instance "
        "name?): its value after the drop was counted as new requests");
  }
  for (size_t k = 0; k < n; ++k) {
    if (s.minutes[k].full &&
        (s.peak_minute < 0 || s.minutes[k].requests > s.minutes[s.peak_minute].requests)) {
      s.peak_minute = static_cast<int>(k);
    }
  }
  const double span_s = static_cast<double>(span_us) / 1e6;
  s.mean_rps = s.requests / span_s;
  if (s.peak_minute >= 0) {
    s.peak_rps = s.minutes[s.peak_minute].requests / 60.0;
  } else {
    s.peak_rps = s.mean_rps;
    s.notes.push_back("the window (" + FormatTrimmed(span_s) +
                      " s) holds no full minute: the mean rate over it is used, not a peak");
  }
  return s;
}

bool ReadTrafficFile(const std::string& path, TrafficMeter& meter, std::string* error) {
  std::unique_ptr<std::istream> file;  // plain or zstd, as the gateway leaves its rotated files
  std::istream* in = &std::cin;
  if (path != "-") {
    file = OpenMaybeCompressed(path, error);
    if (!file) return false;
    in = file.get();
  }
  std::string line;
  while (std::getline(*in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (Trim(line).empty()) continue;
    std::string why;
    auto entry = DecodePairLogLine(line, &why);
    if (!entry) {
      meter.AddMalformed();
      continue;
    }
    if (const auto* pair = std::get_if<PairRecord>(&*entry)) {
      meter.Add(*pair);
    } else if (const auto* counters = std::get_if<MirrorCounters>(&*entry)) {
      meter.Add(*counters);
    }  // a cutover decision carries no traffic
  }
  if (std::string bad = CompressedStreamError(*in); !bad.empty()) {
    *error = path + ": " + bad;
    return false;
  }
  if (in->bad()) {
    *error = path + ": read failed";
    return false;
  }
  return true;
}

json TrafficToJson(const TrafficSummary& t) {
  json minutes = json::array();
  for (const auto& m : t.minutes) {
    minutes.push_back({{"start_us", m.start_us},
                       {"start", FormatUtcMicros(m.start_us)},
                       {"requests", m.requests},
                       {"pairs", m.pairs},
                       {"full", m.full}});
  }
  return {{"source", t.source},
          {"start_us", t.start_us},
          {"end_us", t.end_us},
          {"duration_s", static_cast<double>(t.end_us - t.start_us) / 1e6},
          {"requests", t.requests},
          {"pairs", t.pairs},
          {"malformed", t.malformed},
          {"series", t.series},
          {"peak_minute", t.peak_minute >= 0 ? json(t.minutes[t.peak_minute].start_us) : json()},
          {"peak_rps", t.peak_rps},
          {"mean_rps", t.mean_rps},
          {"minutes", std::move(minutes)},
          {"notes", t.notes}};
}

// --- inputs ---

PodThroughput LoadTuneResult(const std::string& path) {
  return LoadConfigFile<PodThroughput>(path, [&path](const ConfigNode& root) {
    // Other keys are ignored (no Finish()): tune may write more than the three agreed.
    ObjectReader reader(root);
    PodThroughput out;
    out.source = path;
    if (auto pod = reader.Optional("pod")) {
      ObjectReader pod_reader(*pod);
      out.cpus = pod_reader.Require<int64_t>("cpus");
      if (pod_reader.Has("cpus") && out.cpus < 1) {
        pod_reader.Required("cpus").Report("must be >= 1, got " + std::to_string(out.cpus));
      }
    } else {
      root.Report("missing required key \"pod\"");
    }
    out.throughput_rps_at_slo =
        Positive(reader, "throughput_rps_at_slo",
                 "is 0: no configuration met the SLO, so there is no throughput to plan with");
    out.slo_p99_ms = Positive(reader, "slo_p99_ms");
    return out;
  });
}

Fleet LoadFleet(const std::string& path) {
  return LoadConfigFile<Fleet>(path, [&path](const ConfigNode& root) {
    ObjectReader reader(root);
    Fleet out;
    out.file = path;
    out.description = reader.Get<std::string>("description", "");
    out.currency = reader.Get<std::string>("currency", out.currency);
    out.hours_per_year = reader.GetInRange<double>("hours_per_year", out.hours_per_year, 1, 8784);
    out.gpu_hour_price = Positive(reader, "gpu_hour_price");
    std::set<std::string> names;
    if (auto regions = reader.Optional("regions")) {
      for (const auto& node : regions->Elements()) {
        ObjectReader region(node);
        FleetRegion r;
        r.name = region.Require<std::string>("name");
        r.gpus = region.Require<int64_t>("gpus");
        if (region.Has("gpus") && r.gpus < 1) {
          region.Required("gpus").Report("must be >= 1, got " + std::to_string(r.gpus));
        }
        if (!r.name.empty() && !names.insert(r.name).second) {
          region.Required("name").Report("duplicate region name \"" + r.name + "\"");
        }
        region.Finish();
        out.regions.push_back(std::move(r));
      }
      if (out.regions.empty()) regions->Report("must hold at least one region");
    } else {
      root.Report("missing required key \"regions\"");
    }
    if (reader.Has("cpu_pod_hour_price"))
      out.cpu_pod_hour_price = Positive(reader, "cpu_pod_hour_price");
    if (reader.Has("vcpu_hour_price")) out.vcpu_hour_price = Positive(reader, "vcpu_hour_price");
    if (out.cpu_pod_hour_price.has_value() == out.vcpu_hour_price.has_value()) {
      root.Report("give exactly one of \"cpu_pod_hour_price\" and \"vcpu_hour_price\"");
    }
    out.min_pods_per_region =
        reader.GetInRange<int64_t>("min_pods_per_region", out.min_pods_per_region, 0, 1'000'000);
    reader.Finish();
    return out;
  });
}

// --- the plan ---

json PlanCapacity(const CapacityInputs& in) {
  const Fleet& fleet = in.fleet;
  const std::string cur = fleet.currency;
  std::vector<std::string> formulas;
  formulas.push_back("peak = " + in.peak_source);
  const double required = in.peak_rps * in.traffic_scale * in.headroom;
  formulas.push_back("required throughput = peak x traffic scale x headroom = " +
                     FormatTrimmed(in.peak_rps) + " x " + FormatTrimmed(in.traffic_scale) + " x " +
                     FormatTrimmed(in.headroom) + " = " + FormatTrimmed(required) + " req/s");
  int64_t gpus = 0;
  std::string gpu_sum;
  for (const auto& r : fleet.regions) {
    gpus += r.gpus;
    gpu_sum += (gpu_sum.empty() ? "" : " + ") + std::to_string(r.gpus) + " (" + r.name + ")";
  }
  formulas.push_back("GPUs = " + gpu_sum + " = " + std::to_string(gpus));
  const double pod_rps = in.pod.throughput_rps_at_slo;
  json regions = json::array();
  int64_t pods = 0;
  for (const auto& r : fleet.regions) {
    const double share = static_cast<double>(r.gpus) / static_cast<double>(gpus);
    const double rps = required * share;
    const double exact = rps / pod_rps;
    // Less than a part in 10^9 over a whole number is rounding, not a pod.
    const auto needed = static_cast<int64_t>(std::ceil(exact - 1e-9));
    const int64_t region_pods = std::max(fleet.min_pods_per_region, needed);
    pods += region_pods;
    formulas.push_back(r.name + ": " + FormatTrimmed(required) + " req/s x " +
                       std::to_string(r.gpus) + "/" + std::to_string(gpus) +
                       " GPUs = " + FormatTrimmed(rps) + " req/s; pods = max(" +
                       std::to_string(fleet.min_pods_per_region) + ", ceil(" + FormatTrimmed(rps) +
                       " / " + FormatTrimmed(pod_rps) + " req/s per pod)) = max(" +
                       std::to_string(fleet.min_pods_per_region) + ", ceil(" +
                       FormatTrimmed(exact) + ")) = " + std::to_string(region_pods));
    regions.push_back({{"name", r.name},
                       {"gpus", r.gpus},
                       {"share", share},
                       {"rps", rps},
                       {"pods_exact", exact},
                       {"pods", region_pods}});
  }
  std::string pods_sum;
  for (const auto& r : regions) {
    pods_sum += (pods_sum.empty() ? "" : " + ") + std::to_string(r["pods"].get<int64_t>());
  }
  formulas.push_back("pods = " + pods_sum + " = " + std::to_string(pods) + " (" +
                     std::to_string(pods * in.pod.cpus) + " CPUs at " +
                     std::to_string(in.pod.cpus) + " per pod)");
  double pod_hour = 0;
  if (fleet.cpu_pod_hour_price) {
    pod_hour = *fleet.cpu_pod_hour_price;
    formulas.push_back("pod price = " + FormatTrimmed(pod_hour, 6) + " " + cur +
                       "/pod-hour (fleet file)");
  } else {
    pod_hour = static_cast<double>(in.pod.cpus) * fleet.vcpu_hour_price.value_or(0);
    formulas.push_back("pod price = " + std::to_string(in.pod.cpus) + " vCPUs x " +
                       FormatTrimmed(fleet.vcpu_hour_price.value_or(0), 6) + " " + cur +
                       "/vCPU-hour = " + FormatTrimmed(pod_hour, 6) + " " + cur + "/pod-hour");
  }
  const double hours = fleet.hours_per_year;
  const double before = YearlyGpuCost(gpus, fleet.gpu_hour_price, hours);
  const double after = static_cast<double>(pods) * pod_hour * hours;
  const double saving = before - after;
  formulas.push_back("before (GPUs) = " + std::to_string(gpus) + " GPUs x " +
                     FormatTrimmed(fleet.gpu_hour_price, 6) + " " + cur + "/GPU-hour x " +
                     FormatTrimmed(hours) + " hours/year = " + FormatGrouped(before, 2) + " " +
                     cur + "/year");
  formulas.push_back("after (CPU pods) = " + std::to_string(pods) + " pods x " +
                     FormatTrimmed(pod_hour, 6) + " " + cur + "/pod-hour x " +
                     FormatTrimmed(hours) + " hours/year = " + FormatGrouped(after, 2) + " " + cur +
                     "/year");
  formulas.push_back("saving = " + FormatGrouped(before, 2) + " - " + FormatGrouped(after, 2) +
                     " = " + FormatGrouped(saving, 2) + " " + cur + "/year (" +
                     FormatTrimmed(100 * saving / before, 2) + "% of before)");
  json pod = {{"cpus", in.pod.cpus},
              {"throughput_rps_at_slo", pod_rps},
              {"slo_p99_ms", in.pod.slo_p99_ms ? json(*in.pod.slo_p99_ms) : json()},
              {"source", in.pod.source},
              {"hour_price", pod_hour}};
  return {{"peak_rps", in.peak_rps},
          {"peak_source", in.peak_source},
          {"traffic_scale", in.traffic_scale},
          {"headroom", in.headroom},
          {"required_rps", required},
          {"pod", std::move(pod)},
          {"gpus", gpus},
          {"regions", std::move(regions)},
          {"pods", pods},
          {"cpus", pods * in.pod.cpus},
          {"cost",
           {{"currency", cur},
            {"hours_per_year", hours},
            {"gpu_hour_price", fleet.gpu_hour_price},
            {"before_per_year", before},
            {"after_per_year", after},
            {"saving_per_year", saving},
            {"saving_fraction", saving / before}}},
          {"fleet", {{"file", fleet.file}, {"description", fleet.description}}},
          {"formulas", formulas}};
}

json CapacityJson(const TrafficSummary* traffic, const json& plan) {
  json out = {{"schema", kCapacitySchema}};
  if (traffic != nullptr) out["traffic"] = TrafficToJson(*traffic);
  out["plan"] = plan;
  return out;
}

// --- rendering ---

namespace {

std::string Row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}

std::string TrafficText(const json& t) {
  const auto& minutes = t["minutes"];
  std::string s = "Production traffic (" + t["source"].get<std::string>() +
                  "): " + FormatTrimmed(t["requests"].get<double>(), 1) + " requests from " +
                  FormatUtcMicros(t["start_us"].get<int64_t>()) + " to " +
                  FormatUtcMicros(t["end_us"].get<int64_t>()) + " (" +
                  FormatTrimmed(t["duration_s"].get<double>()) + " s), mean " +
                  FormatTrimmed(t["mean_rps"].get<double>()) + " req/s, " +
                  std::to_string(t["series"].get<int>()) + " counters series (instance x route), " +
                  std::to_string(t["pairs"].get<uint64_t>()) + " pairs, " +
                  std::to_string(t["malformed"].get<uint64_t>()) + " malformed lines.\n\n";
  // The busiest minutes (ten at most), in time order.
  std::vector<size_t> order(minutes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return minutes[a]["requests"].get<double>() > minutes[b]["requests"].get<double>();
  });
  order.resize(std::min<size_t>(order.size(), 10));
  std::sort(order.begin(), order.end());
  s += Row({"minute from (UTC)", "requests", "req/s", "pairs captured", "full minute"});
  s += Row({"---", "---:", "---:", "---:", "---"});
  for (size_t i : order) {
    const auto& m = minutes[i];
    // A partial minute's rate is over the part of it inside the window.
    const double seconds = std::min<double>(
        60, static_cast<double>(t["end_us"].get<int64_t>() - m["start_us"].get<int64_t>()) / 1e6);
    s += Row({m["start"].get<std::string>(), FormatTrimmed(m["requests"].get<double>(), 1),
              FormatTrimmed(m["requests"].get<double>() / std::max(seconds, 1e-6)),
              std::to_string(m["pairs"].get<uint64_t>()),
              m["full"].get<bool>() ? "yes" : "no (not a peak)"});
  }
  if (minutes.size() > order.size()) {
    s += "\n(the " + std::to_string(order.size()) + " busiest of " +
         std::to_string(minutes.size()) + " minutes; all of them in the JSON)\n";
  }
  for (const auto& note : t["notes"]) s += "\nNote: " + note.get<std::string>() + "\n";
  return s + "\n";
}

}  // namespace

std::string RenderCapacityText(const json& capacity) {
  const json& p = capacity["plan"];
  const json& cost = p["cost"];
  const std::string cur = cost["currency"].get<std::string>();
  std::string s;
  const std::string description = p["fleet"]["description"].get<std::string>();
  s += "Fleet: " + p["fleet"]["file"].get<std::string>() +
       (description.empty() ? "" : " (" + description + ")") + "\n\n";
  if (capacity.contains("traffic")) s += TrafficText(capacity["traffic"]);
  const json& pod = p["pod"];
  s += "Pod: " + std::to_string(pod["cpus"].get<int64_t>()) + " CPUs, " +
       FormatTrimmed(pod["throughput_rps_at_slo"].get<double>()) + " req/s at the SLO" +
       (pod["slo_p99_ms"].is_number()
            ? " (p99 <= " + FormatTrimmed(pod["slo_p99_ms"].get<double>()) + " ms)"
            : "") +
       ", from " + pod["source"].get<std::string>() + "\n\n";
  s += Row({"region", "GPUs", "req/s to serve", "CPU pods"});
  s += Row({"---", "---:", "---:", "---:"});
  for (const auto& r : p["regions"]) {
    s += Row({r["name"].get<std::string>(), std::to_string(r["gpus"].get<int64_t>()),
              FormatTrimmed(r["rps"].get<double>()), std::to_string(r["pods"].get<int64_t>())});
  }
  s += Row({"total", std::to_string(p["gpus"].get<int64_t>()),
            FormatTrimmed(p["required_rps"].get<double>()),
            std::to_string(p["pods"].get<int64_t>())});
  s += "\n" + Row({"yearly cost", cur});
  s += Row({"---", "---:"});
  s += Row({"GPUs (before)", FormatGrouped(cost["before_per_year"].get<double>(), 2)});
  s += Row({"CPU pods (after)", FormatGrouped(cost["after_per_year"].get<double>(), 2)});
  s += Row({"saving", FormatGrouped(cost["saving_per_year"].get<double>(), 2) + " (" +
                          FormatTrimmed(100 * cost["saving_fraction"].get<double>(), 2) + "%)"});
  s += "\nFormulas:\n\n```\n";
  for (const auto& f : p["formulas"]) s += f.get<std::string>() + "\n";
  return s + "```\n";
}

}  // namespace sg::comparator
