#include "common/metrics.h"

#include "common/strings.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

namespace sg {
namespace {

void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

bool ValidMetricName(const std::string& name) {
  static const std::regex kPattern("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name, kPattern);
}

bool ValidLabelName(const std::string& name) {
  static const std::regex kPattern("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name, kPattern) && name.rfind("__", 0) != 0;
}

// {a="x",b="y"}, with `extra` (e.g. le="0.5") appended; "" when there are no labels at all.
std::string LabelBlock(const std::vector<std::string>& names, const LabelValues& values,
                       const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "{" : ",") + extra;
  if (!out.empty()) out += "}";
  return out;
}

void RenderHeader(std::string& out, const std::string& name, const std::string& help,
                  const char* type) {
  out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Counter::Increment(double delta) {
  if (!(delta >= 0)) return;  // counters never go down; ignore negative or NaN deltas
  AtomicAdd(value_, delta);
}

void Gauge::Add(double delta) {
  AtomicAdd(value_, delta);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i + 1 < bounds_.size(); ++i) {
    if (!(bounds_[i] < bounds_[i + 1])) {
      throw std::invalid_argument("histogram bounds must be strictly increasing");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // Bucket i counts values <= bounds_[i]; the last one counts the rest (+Inf).
  size_t index = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                     bounds_.begin());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::Take() const {
  Snapshot snapshot;
  snapshot.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative.push_back(running);
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> out;
  double bound = start;
  for (int i = 0; i < count; ++i, bound *= factor) out.push_back(bound);
  return out;
}

template <typename Metric>
Family<Metric>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                       std::function<std::unique_ptr<Metric>()> make)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      make_(std::move(make)) {}

template <typename Metric>
Metric& Family<Metric>::WithLabels(const LabelValues& values) {
  if (values.size() != label_names_.size()) {
    throw std::invalid_argument(name_ + ": expected " + std::to_string(label_names_.size()) +
                                " label values, got " + std::to_string(values.size()));
  }
  std::lock_guard lock(mutex_);
  auto& slot = children_[values];
  if (!slot) slot = make_();
  return *slot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <typename Metric>
Family<Metric>& MetricsRegistry::Add(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names,
                                     std::function<std::unique_ptr<Metric>()> make) {
  if (!ValidMetricName(name)) throw std::invalid_argument("invalid metric name: " + name);
  for (const auto& label : label_names) {
    if (!ValidLabelName(label) || label == "le") {
      throw std::invalid_argument(name + ": invalid label name: " + label);
    }
  }
  std::lock_guard lock(mutex_);
  for (const auto& any : families_) {
    bool taken = std::visit([&](const auto& family) { return family->name() == name; }, any);
    if (taken) throw std::invalid_argument("metric registered twice: " + name);
  }
  auto family = std::unique_ptr<Family<Metric>>(
      new Family<Metric>(name, help, std::move(label_names), std::move(make)));
  auto& ref = *family;
  families_.emplace_back(std::move(family));
  return ref;
}

Family<Counter>& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                             std::vector<std::string> label_names) {
  return Add<Counter>(name, help, std::move(label_names),
                      [] { return std::make_unique<Counter>(); });
}

Family<Gauge>& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                         std::vector<std::string> label_names) {
  return Add<Gauge>(name, help, std::move(label_names), [] { return std::make_unique<Gauge>(); });
}

Family<Histogram>& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                                 std::vector<double> bounds,
                                                 std::vector<std::string> label_names) {
  Histogram check(bounds);  // validate bounds now, not at first use
  return Add<Histogram>(name, help, std::move(label_names),
                        [bounds] { return std::make_unique<Histogram>(bounds); });
}

void MetricsRegistry::AddCollectHook(std::function<void()> hook) {
  std::lock_guard lock(mutex_);
  hooks_.push_back(std::move(hook));
}

std::string MetricsRegistry::Render() const {
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mutex_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();

  std::string out;
  std::lock_guard lock(mutex_);
  for (const auto& any : families_) {
    std::visit(
        [&out](const auto& family) {
          using Metric = typename std::decay_t<decltype(*family)>::MetricType;
          std::lock_guard child_lock(family->mutex_);
          if constexpr (std::is_same_v<Metric, Counter>) {
            RenderHeader(out, family->name_, family->help_, "counter");
          } else if constexpr (std::is_same_v<Metric, Gauge>) {
            RenderHeader(out, family->name_, family->help_, "gauge");
          } else {
            RenderHeader(out, family->name_, family->help_, "histogram");
          }
          for (const auto& [values, metric] : family->children_) {
            if constexpr (std::is_same_v<Metric, Histogram>) {
              auto snap = metric->Take();
              for (size_t i = 0; i <= snap.bounds.size(); ++i) {
                std::string le = i < snap.bounds.size() ? FormatDouble(snap.bounds[i]) : "+Inf";
                out += family->name_ + "_bucket" +
                       LabelBlock(family->label_names_, values, "le=\"" + le + "\"") + " " +
                       std::to_string(snap.cumulative[i]) + "\n";
              }
              std::string labels = LabelBlock(family->label_names_, values);
              out += family->name_ + "_sum" + labels + " " + FormatDouble(snap.sum) + "\n";
              out += family->name_ + "_count" + labels + " " + std::to_string(snap.count) + "\n";
            } else {
              out += family->name_ + LabelBlock(family->label_names_, values) + " " +
                     FormatDouble(metric->Value()) + "\n";
            }
          }
        },
        any);
  }
  return out;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

}  // namespace sg
