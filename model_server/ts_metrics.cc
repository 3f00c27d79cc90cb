#include "model_server/ts_metrics.h"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <functional>
#include <sstream>

namespace sg::serve {

TorchServeMetrics::TorchServeMetrics(std::string hostname) : hostname_(std::move(hostname)) {}

void TorchServeMetrics::CountResponse(int status) {
  if (status >= 200 && status < 300) {
    ++responses_2xx_;
  } else if (status >= 400 && status < 500) {
    ++responses_4xx_;
  } else if (status >= 500) {
    ++responses_5xx_;
  }
}

void TorchServeMetrics::CountRequest(const std::string& model, const std::string& version) {
  std::lock_guard lock(mutex_);
  series_[{model, version}].requests += 1;
}

void TorchServeMetrics::AddLatency(const std::string& model, const std::string& version,
                                   double inference_us, double queue_us) {
  std::lock_guard lock(mutex_);
  auto& s = series_[{model, version}];
  s.inference_us += inference_us;
  s.queue_us += queue_us;
}

std::string TorchServeMetrics::Render(const std::set<std::string>* names) const {
  std::ostringstream out;
  auto family = [&](const std::string& name, const char* unit, const std::function<void()>& lines) {
    if (names && !names->count(name)) return;
    out << "# HELP " << name << " Torchserve prometheus counter metric with unit: " << unit
        << "\n# TYPE " << name << " counter\n";
    lines();
  };
  auto host = [&](const char* name, const std::atomic<uint64_t>& value) {
    family(name, "Count", [&] {
      out << name << "{Level=\"Host\",Hostname=\"" << hostname_ << "\",} "
          << JavaDouble(static_cast<double>(value.load())) << "\n";
    });
  };
  host("Requests2XX", responses_2xx_);
  host("Requests4XX", responses_4xx_);
  host("Requests5XX", responses_5xx_);
  std::lock_guard lock(mutex_);
  auto per_model = [&](const std::string& name, const char* unit, double Series::*field) {
    family(name, unit, [&] {
      for (const auto& [key, s] : series_) {
        out << name << "{model_name=\"" << key.first << "\",model_version=\"" << key.second
            << "\",hostname=\"" << hostname_ << "\",} " << JavaDouble(s.*field) << "\n";
      }
    });
  };
  per_model("ts_inference_requests_total", "Count", &Series::requests);
  per_model("ts_inference_latency_microseconds", "Microseconds", &Series::inference_us);
  per_model("ts_queue_latency_microseconds", "Microseconds", &Series::queue_us);
  return out.str();
}

std::string LocalHostname() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

std::string JavaDouble(double value) {
  if (!std::isfinite(value))
    return std::isnan(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  std::string text(buffer, end);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

std::string FilterMetricFamilies(const std::string& text, const std::set<std::string>& names) {
  std::string out;
  bool keep = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size() - 1;
    std::string_view line(text.data() + pos, end - pos + 1);
    if (line.rfind("# HELP ", 0) == 0) {
      auto name = line.substr(7);
      name = name.substr(0, name.find_first_of(" \n"));
      keep = names.count(std::string(name)) > 0;
    }
    if (keep) out.append(line);
    pos = end + 1;
  }
  return out;
}

}  // namespace sg::serve
