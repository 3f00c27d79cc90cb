#include "model_server/serve_config.h"

#include <cctype>
#include <filesystem>

#include "common/strings.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;

std::string Resolve(const std::string& path, const fs::path& base) {
  if (path.empty() || fs::path(path).is_absolute() || base.empty()) return path;
  return (base / path).lexically_normal().string();
}

std::vector<float> FloatList(const ConfigNode& node) {
  std::vector<float> out;
  for (const auto& e : node.Elements()) out.push_back(static_cast<float>(e.AsNumber()));
  return out;
}

ImagePreprocess ParsePreprocess(const ConfigNode& node) {
  ImagePreprocess p;
  ObjectReader r(node);
  p.resize = r.GetInRange<int>("resize", p.resize, 0, 8192);
  p.crop = r.GetInRange<int>("crop", p.crop, 0, 8192);
  p.channels = r.Get<int>("channels", p.channels);
  if (p.channels != 1 && p.channels != 3) {
    r.Required("channels").Report("must be 1 or 3, got " + std::to_string(p.channels));
  }
  bool has_mean = r.Has("mean"), has_std = r.Has("std");
  if (auto mean = r.Optional("mean")) p.mean = FloatList(*mean);
  if (auto std = r.Optional("std")) p.std = FloatList(*std);
  // Defaults follow the channel count when not given.
  if (p.channels == 1 && !has_mean) p.mean = {0.5f};
  if (p.channels == 1 && !has_std) p.std = {0.5f};
  if (p.mean.size() != static_cast<size_t>(p.channels)) {
    (has_mean ? r.Required("mean") : node)
        .Report("needs " + std::to_string(p.channels) + " values (one per channel), got " +
                std::to_string(p.mean.size()));
  }
  if (p.std.size() != static_cast<size_t>(p.channels)) {
    (has_std ? r.Required("std") : node)
        .Report("needs " + std::to_string(p.channels) + " values (one per channel), got " +
                std::to_string(p.std.size()));
  }
  for (float s : p.std) {
    if (!(s > 0)) {
      r.Required("std").Report("values must be > 0");
      break;
    }
  }
  p.max_pixels = r.GetInRange<int64_t>("max_pixels", p.max_pixels, 1, int64_t{1} << 34);
  r.Finish();
  return p;
}

std::chrono::milliseconds ParseTimeout(const ConfigNode& node) {
  // A number is seconds (TorchServe's response_timeout); a string is a duration ("500ms").
  if (node.json().is_number()) {
    double s = node.AsNumber();
    if (!(s > 0)) node.Fail("must be > 0");
    return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(node.AsDuration());
  if (d.count() <= 0) node.Fail("must be > 0");
  return d;
}

ModelConfig ParseModel(const ConfigNode& node, const std::string& name, const fs::path& base) {
  ModelConfig m;
  m.name = name;
  ObjectReader r(node);
  m.version = r.Get<std::string>("version", m.version);
  m.path = Resolve(r.Require<std::string>("path"), base);
  auto handler = r.Get<std::string>("handler", HandlerName(m.handler));
  if (auto kind = ParseHandlerName(handler)) {
    m.handler = *kind;
  } else {
    r.Required("handler").Report("must be image_classifier, image_scorer or tensor, got \"" +
                                 handler + "\"");
  }
  m.labels_path = Resolve(r.Get<std::string>("labels", ""), base);
  if (auto pre = r.Optional("preprocess")) {
    try {
      m.preprocess = ParsePreprocess(*pre);
    } catch (const ConfigError& e) {
      pre->Absorb(e);
    }
  }
  m.topk = r.GetInRange<int>("topk", m.topk, 1, 1000);
  if (auto shape = r.Optional("input_shape")) {
    for (const auto& e : shape->Elements()) {
      auto v = e.AsInt();
      if (v <= 0) e.Report("dimensions must be > 0");
      m.input_shape.push_back(v);
    }
  }
  m.workers = r.GetInRange<int>("workers", m.workers, 0, 4096);
  m.batch_size = r.GetInRange<int>("batch_size", m.batch_size, 1, 4096);
  m.max_batch_delay = std::chrono::milliseconds(r.GetInRange<int>(
      "max_batch_delay_ms", static_cast<int>(m.max_batch_delay.count()), 0, 60000));
  m.job_queue_size = r.GetInRange<int>("job_queue_size", m.job_queue_size, 1, 1'000'000);
  m.dispatch_ahead = r.Get<bool>("dispatch_ahead", m.handler != HandlerKind::kTensor);
  if (auto t = r.Optional("response_timeout")) {
    try {
      m.response_timeout = ParseTimeout(*t);
    } catch (const ConfigError& e) {
      t->Absorb(e);
    }
  }
  m.optimize = r.Get<bool>("optimize", m.optimize);
  m.warmup_iterations = r.GetInRange<int>("warmup_iterations", m.warmup_iterations, 0, 1000);
  m.precision = r.Get<std::string>("precision", m.precision);
  if (m.precision != "fp32" && m.precision != "bf16" && m.precision != "int8") {
    r.Required("precision").Report("must be fp32, bf16 or int8, got \"" + m.precision + "\"");
  }
  m.channels_last = r.Get<bool>("channels_last", m.channels_last);
  m.device = r.Get<std::string>("device", m.device);
  if (m.device != "cpu" && m.device != "cuda") {
    r.Required("device").Report("must be cpu or cuda, got \"" + m.device + "\"");
  }
  r.Finish();
  ValidateModel(m, node);
  return m;
}

PlanRequest ParseCpu(const ConfigNode& node) {
  PlanRequest p;
  ObjectReader r(node);
  p.workers = r.GetInRange<int>("workers", p.workers, 0, 4096);
  p.threads_per_worker = r.GetInRange<int>("threads_per_worker", p.threads_per_worker, 0, 4096);
  p.use_logical_cores = r.Get<bool>("use_logical_cores", p.use_logical_cores);
  p.front_cpus = r.GetInRange<int>("front_cpus", p.front_cpus, 0, 4096);
  if (auto pin = r.Optional("pinning")) {
    if (pin->json().is_boolean()) {
      p.pinning = pin->AsBool();
    } else {
      auto text = pin->AsString();
      if (text == "on") {
        p.pinning = true;
      } else if (text == "off") {
        p.pinning = false;
      } else {
        pin->Report("must be true, false, \"on\" or \"off\", got \"" + text + "\"");
      }
    }
  }
  r.Finish();
  return p;
}

}  // namespace

const char* HandlerName(HandlerKind kind) {
  switch (kind) {
    case HandlerKind::kImageClassifier:
      return "image_classifier";
    case HandlerKind::kImageScorer:
      return "image_scorer";
    case HandlerKind::kTensor:
      return "tensor";
  }
  return "?";
}

std::optional<HandlerKind> ParseHandlerName(const std::string& name) {
  if (name == "image_classifier") return HandlerKind::kImageClassifier;
  if (name == "image_scorer") return HandlerKind::kImageScorer;
  if (name == "tensor") return HandlerKind::kTensor;
  return std::nullopt;
}

bool NormalizeAddress(const std::string& text, std::string* host_port, std::string* error) {
  std::string rest = text;
  auto scheme_end = rest.find("://");
  if (scheme_end != std::string::npos) {
    std::string scheme = rest.substr(0, scheme_end);
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https") {
      *error =
          "https is not served: sg-serve speaks plain HTTP (terminate TLS in front of it, "
          "in nginx or a load balancer), got \"" +
          text + "\"";
      return false;
    }
    if (scheme != "http") {
      *error = "must be host:port or http://host:port, got \"" + text + "\"";
      return false;
    }
    rest = rest.substr(scheme_end + 3);
    if (!rest.empty() && rest.back() == '/') rest.pop_back();
    // No port after the host (its last ':' is inside an IPv6 literal or absent): HTTP's 80.
    auto colon = rest.rfind(':');
    auto bracket = rest.rfind(']');
    if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) {
      rest += ":80";
    }
  }
  if (rest.find('/') != std::string::npos || !ParseHostPort(rest)) {
    *error = "must be host:port or http://host:port, got \"" + text + "\"";
    return false;
  }
  *host_port = rest;
  return true;
}

void ValidateModel(const ModelConfig& m, const ConfigNode& node) {
  if (m.preprocess.crop > 0 && m.preprocess.resize > 0 && m.preprocess.crop > m.preprocess.resize) {
    node.Report("preprocess.crop (" + std::to_string(m.preprocess.crop) +
                ") must not exceed preprocess.resize (" + std::to_string(m.preprocess.resize) +
                ")");
  }
}

ModelConfig TorchServeModelDefaults() {
  ModelConfig m;
  m.max_batch_delay = std::chrono::milliseconds(100);
  return m;
}

ServeConfig ParseServeConfig(const ConfigNode& root) {
  ServeConfig c;
  ObjectReader r(root);
  fs::path base = fs::path(root.file()).parent_path();
  for (const char* key : {"inference_address", "management_address", "metrics_address"}) {
    std::string& field = std::string(key) == "inference_address"    ? c.inference_address
                         : std::string(key) == "management_address" ? c.management_address
                                                                    : c.metrics_address;
    std::string error;
    if (!NormalizeAddress(r.Get<std::string>(key, field), &field, &error)) {
      r.Required(key).Report(error);
    }
  }
  c.max_request_size = r.GetInRange<int64_t>(
      "max_request_size", static_cast<int64_t>(c.max_request_size), 1, int64_t{1} << 32);
  c.max_buffered_body_bytes = static_cast<uint64_t>(
      r.GetInRange<int64_t>("max_buffered_body_bytes",
                            static_cast<int64_t>(c.max_buffered_body_bytes), 1, int64_t{1} << 40));
  if (auto cpu = r.Optional("cpu")) {
    try {
      c.cpu = ParseCpu(*cpu);
    } catch (const ConfigError& e) {
      cpu->Absorb(e);
    }
  }
  c.cpu_root = r.Get<std::string>("cpu_root", c.cpu_root);
  auto models = r.Required("models");
  if (!models.json().is_object() || models.json().empty()) {
    models.Fail("must be an object with at least one model, {\"name\": {\"path\": ...}}");
  }
  for (const auto& [name, value] : models.json().items()) {
    auto child = models.Child(name);
    try {
      c.models.push_back(ParseModel(child, name, base));
    } catch (const ConfigError& e) {
      child.Absorb(e);
    }
  }
  r.Finish();
  return c;
}

ServeConfig LoadServeConfig(const std::string& path) {
  return LoadConfigFile<ServeConfig>(path, ParseServeConfig);
}

std::string ModelConfigToJson(const ModelConfig& m) {
  nlohmann::json pre = {
      {"resize", m.preprocess.resize},     {"crop", m.preprocess.crop},
      {"channels", m.preprocess.channels}, {"mean", m.preprocess.mean},
      {"std", m.preprocess.std},           {"max_pixels", m.preprocess.max_pixels}};
  nlohmann::json model = {{"version", m.version},
                          {"path", m.path},
                          {"handler", HandlerName(m.handler)},
                          {"labels", m.labels_path},
                          {"preprocess", pre},
                          {"topk", m.topk},
                          {"workers", m.workers},
                          {"batch_size", m.batch_size},
                          {"max_batch_delay_ms", m.max_batch_delay.count()},
                          {"job_queue_size", m.job_queue_size},
                          {"dispatch_ahead", m.dispatch_ahead},
                          {"response_timeout", std::to_string(m.response_timeout.count()) + "ms"},
                          {"optimize", m.optimize},
                          {"warmup_iterations", m.warmup_iterations},
                          {"precision", m.precision},
                          {"channels_last", m.channels_last},
                          {"device", m.device}};
  if (!m.input_shape.empty()) model["input_shape"] = m.input_shape;
  return nlohmann::json{{"name", m.name}, {"model", model}}.dump();
}

ModelConfig ModelConfigFromJson(const std::string& json) {
  return ParseConfig<ModelConfig>(json, "<worker spec>", [](const ConfigNode& root) {
    ObjectReader r(root);
    auto name = r.Require<std::string>("name");
    auto model = ParseModel(r.Required("model"), name, fs::path());
    r.Finish();
    return model;
  });
}

}  // namespace sg::serve
