#include "gateway/gateway_config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <arpa/inet.h>

#include "common/strings.h"
#include "comparator/checkpoint.h"
#include "comparator/compare_config.h"
#include "comparator/gates.h"

namespace sg::gateway {
namespace {

std::string FormatMicros(Micros value) {
  auto us = value.count();
  if (us % 1000000 == 0) return std::to_string(us / 1000000) + "s";
  if (us % 1000 == 0) return std::to_string(us / 1000) + "ms";
  return std::to_string(us) + "us";
}

// True when `name` can be written as a header name: an RFC 9110 token (letters, digits and
// !#$%&'*+-.^_`|~). A config value that is written into requests must not carry CR or LF.
bool IsHeaderName(std::string_view name) {
  static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  if (name.empty()) return false;
  for (char c : name) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && kSymbols.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// Reads a "host:port" string key into host and port.
void ReadListen(ObjectReader& reader, const char* key, std::string* host, uint16_t* port) {
  auto node = reader.Optional(key);
  if (!node) return;
  std::string text;
  try {
    text = node->AsString();
  } catch (const ConfigError& e) {
    node->Absorb(e);
    return;
  }
  auto endpoint = ParseHostPort(text);
  if (!endpoint) {
    node->Report("must be \"host:port\", got \"" + text + "\"");
    return;
  }
  *host = endpoint->host;
  *port = endpoint->port;
}

Micros PositiveDuration(ObjectReader& reader, const char* key, Micros fallback) {
  Micros value = reader.Get<Micros>(key, fallback);
  if (value.count() <= 0) {
    reader.node().Child(key).Report("must be a positive duration");
    return fallback;
  }
  return value;
}

UpstreamConfig ParseUpstream(const std::string& name, const ConfigNode& node) {
  UpstreamConfig config;
  config.name = name;
  ObjectReader reader(node);
  auto endpoints = reader.Optional("endpoints");
  if (!endpoints) {
    node.Report("missing required key \"endpoints\"");
  } else {
    try {
      for (const auto& element : endpoints->Elements()) {
        std::string text;
        try {
          text = element.AsString();
        } catch (const ConfigError& e) {
          element.Absorb(e);
          continue;
        }
        auto endpoint = ParseHostPort(text);
        if (!endpoint) {
          element.Report("must be \"host:port\", got \"" + text + "\"");
          continue;
        }
        config.endpoints.push_back(*endpoint);
      }
      if (endpoints->json().is_array() && endpoints->json().empty()) {
        endpoints->Report("must list at least one endpoint");
      }
    } catch (const ConfigError& e) {
      endpoints->Absorb(e);
    }
  }
  config.max_connections =
      reader.GetInRange<int>("max_connections", config.max_connections, 1, 100000);
  config.max_pending = reader.GetInRange<int>("max_pending", config.max_pending, 0, 1000000);
  config.pending_timeout = PositiveDuration(reader, "pending_timeout", config.pending_timeout);
  config.idle_timeout = PositiveDuration(reader, "idle_timeout", config.idle_timeout);
  config.connect_timeout = PositiveDuration(reader, "connect_timeout", config.connect_timeout);
  config.header_timeout = PositiveDuration(reader, "header_timeout", config.header_timeout);
  config.total_timeout = PositiveDuration(reader, "total_timeout", config.total_timeout);
  config.max_response_bytes = reader.GetInRange<int64_t>(
      "max_response_bytes", config.max_response_bytes, 0, int64_t{1} << 40);
  config.eject_after_failures =
      reader.GetInRange<int>("eject_after_failures", config.eject_after_failures, 0, 1000000);
  config.eject_duration = PositiveDuration(reader, "eject_duration", config.eject_duration);
  reader.Finish();
  return config;
}

MirrorConfig ParseMirror(size_t index, const ConfigNode& node) {
  MirrorConfig config;
  ObjectReader reader(node);
  config.name = reader.Get<std::string>("name", std::to_string(index));
  config.upstream = reader.Require<std::string>("upstream");
  config.percent = reader.GetInRange<double>("percent", config.percent, 0.0, 100.0);
  std::string sampling = reader.Get<std::string>("sampling", "counter");
  if (sampling == "counter") {
    config.sampling = Sampling::kCounter;
  } else if (sampling == "hash") {
    config.sampling = Sampling::kHash;
  } else {
    node.Child("sampling").Report("must be \"counter\" or \"hash\", got \"" + sampling + "\"");
  }
  config.hash_header = ToLowerAscii(reader.Get<std::string>("hash_header", ""));
  if (config.sampling == Sampling::kHash && config.hash_header.empty()) {
    node.Report("hash sampling needs \"hash_header\"");
  }
  config.mirror_body = reader.Get<bool>("mirror_body", config.mirror_body);
  config.max_body_bytes =
      reader.GetInRange<int64_t>("max_body_bytes", config.max_body_bytes, 0, int64_t{1} << 40);
  config.timeout = PositiveDuration(reader, "timeout", config.timeout);
  config.max_in_flight = reader.GetInRange<int>("max_in_flight", config.max_in_flight, 1, 1000000);
  if (reader.Optional("capture_body_sample")) {
    config.capture_body_sample = reader.GetInRange<double>("capture_body_sample", 1.0, 0.0, 1.0);
  }
  reader.Finish();
  return config;
}

std::vector<CutoverStep> ParseCutoverSteps(const ConfigNode& node) {
  std::vector<CutoverStep> steps;
  auto elements = node.Elements();
  if (node.json().is_array() && elements.empty()) node.Report("must list at least one step");
  for (size_t i = 0; i < elements.size(); ++i) {
    try {
      ObjectReader reader(elements[i]);
      CutoverStep step;
      step.share = reader.Require<double>("share");
      if (!(step.share > 0 && step.share <= 100)) {
        elements[i].Child("share").Report("must be in (0, 100], got " + FormatDouble(step.share));
      } else if (!steps.empty() && step.share <= steps.back().share) {
        elements[i].Child("share").Report("must be above the previous step's (" +
                                          FormatDouble(steps.back().share) + ")");
      }
      step.hold = reader.Get<Micros>("hold", step.hold);  // 0 or more: the parser checks
      step.min_judged =
          static_cast<uint64_t>(reader.GetInRange<int64_t>("min_judged", 0, 0, int64_t{1} << 40));
      reader.Finish();
      steps.push_back(step);
    } catch (const ConfigError& e) {
      elements[i].Absorb(e);
    }
  }
  if (!steps.empty() && steps.back().share != 100) {
    node.Element(steps.size() - 1).Child("share").Report("the last step must be 100");
  }
  return steps;
}

CutoverConfig ParseCutover(const ConfigNode& node) {
  CutoverConfig config;
  ObjectReader reader(node);
  config.candidate = reader.Require<std::string>("candidate");
  if (reader.Has("candidate") && config.candidate.empty()) {
    node.Child("candidate").Report("must name a mirror of the route");
  }
  std::string sticky = reader.Get<std::string>("sticky", "client_address");
  if (sticky == "client_address") {
    config.sticky = StickyKey::kClientAddress;
  } else if (sticky.starts_with("header:") && IsHeaderName(sticky.substr(7))) {
    config.sticky = StickyKey::kHeader;
    config.sticky_name = ToLowerAscii(sticky.substr(7));
  } else if (sticky.starts_with("cookie:") && IsHeaderName(sticky.substr(7))) {
    config.sticky = StickyKey::kCookie;
    config.sticky_name = sticky.substr(7);
  } else {
    node.Child("sticky").Report(
        "must be \"client_address\", \"header:NAME\" or \"cookie:NAME\", got \"" + sticky + "\"");
  }
  if (auto steps = reader.Optional("steps")) {
    try {
      config.steps = ParseCutoverSteps(*steps);
    } catch (const ConfigError& e) {
      steps->Absorb(e);
    }
  } else {
    node.Report("missing required key \"steps\"");
  }
  config.evaluation_interval =
      PositiveDuration(reader, "evaluation_interval", config.evaluation_interval);
  config.state_file = reader.Get<std::string>("state_file", "");
  reader.Finish();
  return config;
}

RouteConfig ParseRoute(size_t index, const ConfigNode& node) {
  RouteConfig config;
  ObjectReader reader(node);
  config.name = reader.Get<std::string>("name", "route" + std::to_string(index));
  for (auto& host : reader.Get<std::vector<std::string>>("hosts", {})) {
    config.hosts.push_back(ToLowerAscii(host));
  }
  config.path_prefix = reader.Get<std::string>("path_prefix", config.path_prefix);
  if (config.path_prefix.empty() || config.path_prefix[0] != '/') {
    node.Child("path_prefix").Report("must start with \"/\"");
  }
  for (auto& method : reader.Get<std::vector<std::string>>("methods", {})) {
    std::string upper = method;
    std::transform(upper.begin(), upper.end(), upper.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    config.methods.push_back(upper);
  }
  config.upstream = reader.Require<std::string>("upstream");
  if (auto mirrors = reader.Optional("mirrors")) {
    try {
      auto elements = mirrors->Elements();
      for (size_t i = 0; i < elements.size(); ++i) {
        try {
          config.mirrors.push_back(ParseMirror(i, elements[i]));
        } catch (const ConfigError& e) {
          elements[i].Absorb(e);
        }
      }
    } catch (const ConfigError& e) {
      mirrors->Absorb(e);
    }
  }
  if (auto cutover = reader.Optional("cutover")) {
    try {
      config.cutover = ParseCutover(*cutover);
    } catch (const ConfigError& e) {
      cutover->Absorb(e);
    }
  }
  reader.Finish();
  return config;
}

void ParseCapture(const ConfigNode& node, CaptureConfig* config) {
  ObjectReader reader(node);
  for (auto& name : reader.Get<std::vector<std::string>>("request_headers", {})) {
    config->request_headers.push_back(ToLowerAscii(name));
  }
  for (auto& name : reader.Get<std::vector<std::string>>("response_headers", {"content-type"})) {
    config->response_headers.push_back(ToLowerAscii(name));
  }
  config->max_body_bytes =
      reader.GetInRange<int64_t>("max_body_bytes", config->max_body_bytes, 0, int64_t{1} << 30);
  config->body_sample = reader.GetInRange<double>("body_sample", config->body_sample, 0.0, 1.0);
  if (auto pair_log = reader.Optional("pair_log")) {
    try {
      ObjectReader log(*pair_log);
      auto& out = config->pair_log;
      out.path = log.Require<std::string>("path");
      out.max_file_bytes =
          log.GetInRange<int64_t>("max_file_bytes", out.max_file_bytes, 4096, int64_t{1} << 40);
      out.max_files = log.GetInRange<int>("max_files", out.max_files, 1, 1000);
      out.compression = log.Get<std::string>("compression", out.compression);
      if (out.compression != "zstd" && out.compression != "none") {
        log.Required("compression").Report("must be zstd or none, got \"" + out.compression + "\"");
      }
      out.compression_level =
          log.GetInRange<int>("compression_level", out.compression_level, 1, 19);
      out.max_total_bytes =
          log.GetInRange<int64_t>("max_total_bytes", out.max_total_bytes, 0, int64_t{1} << 50);
      out.max_age = log.Get<Micros>("max_age", out.max_age);
      out.queue_capacity = log.GetInRange<int>("queue_capacity", out.queue_capacity, 1, 10000000);
      out.counters_interval = PositiveDuration(log, "counters_interval", out.counters_interval);
      log.Finish();
    } catch (const ConfigError& e) {
      pair_log->Absorb(e);
    }
  }
  reader.Finish();
}

// Loads the comparator config file named at `node` with the comparator's loader `load`. A file
// that cannot be opened is reported at `node`; problems inside it keep their own file and JSON
// path, followed by one line at `node` saying which reference they came through.
template <typename T>
std::shared_ptr<const T> LoadReferenced(const ConfigNode& node, const std::string& path,
                                        T (*load)(const std::string&), const char* what) {
  if (std::ifstream probe(path); !probe) {
    node.Report(std::string("cannot open ") + what + " \"" + path + "\": " + std::strerror(errno));
    return nullptr;
  }
  try {
    return std::make_shared<const T>(load(path));
  } catch (const ConfigError& e) {
    node.Absorb(e);
    node.Report("\"" + path + "\" is not a valid " + what + " (problems listed above)");
    return nullptr;
  }
}

// True when `key` is present as an empty string (a wrong type is already reported by the reader).
bool IsEmptyString(const ConfigNode& node, const char* key) {
  const auto& json = node.json();
  return json.contains(key) && json[key].is_string() &&
         json[key].get_ref<const std::string&>().empty();
}

// An input file named in the config: a relative path is relative to the config file's directory,
// so the config and its companion files travel together and `check` answers the same anywhere.
std::string BesideConfig(const ConfigNode& node, const std::string& path) {
  if (path.empty() || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(node.file()).parent_path() / path).lexically_normal().string();
}

void ParseAdmin(const ConfigNode& node, AdminConfig* config) {
  ObjectReader reader(node);
  if (reader.Has("allowed_hosts")) {
    config->allowed_hosts.clear();
    auto hosts = reader.Get<std::vector<std::string>>("allowed_hosts", {});
    for (size_t i = 0; i < hosts.size(); ++i) {
      std::string host = ToLowerAscii(hosts[i]);
      // A name or an address, without port ("[::1]", not "[::1]:9901"): the port is the admin
      // listener's own.
      bool bracketed = host.starts_with('[') && host.ends_with(']') && host.size() > 2;
      if (host.empty() || (!bracketed && host.find(':') != std::string::npos) ||
          host.find_first_of(" \t/@") != std::string::npos) {
        node.Child("allowed_hosts")
            .Element(i)
            .Report("must be a host name or address without port (IPv6 in brackets), or \"*\"");
        continue;
      }
      config->allowed_hosts.push_back(host);
    }
    if (hosts.empty()) node.Child("allowed_hosts").Report("must list at least one host");
  }
  config->token_file = BesideConfig(node, reader.Get<std::string>("token_file", ""));
  reader.Finish();
  if (IsEmptyString(node, "token_file")) node.Child("token_file").Report("must not be empty");
  if (config->token_file.empty()) return;
  std::string text, error;
  if (!ReadSmallFile(config->token_file, 4096, &text, &error)) {
    node.Child("token_file").Report("\"" + config->token_file + "\": " + error);
    return;
  }
  // The token is the file's first line, surrounding white space (a final newline) left out.
  config->token = std::string(Trim(std::string_view(text).substr(0, text.find('\n'))));
  if (config->token.size() < 16) {
    node.Child("token_file")
        .Report("\"" + config->token_file +
                "\" must hold a token of at least 16 characters on its first line");
    config->token.clear();
  }
}

void ParseComparison(const ConfigNode& node, ComparisonConfig* config) {
  ObjectReader reader(node);
  config->rules_path = BesideConfig(node, reader.Require<std::string>("rules"));
  config->gates_path = BesideConfig(node, reader.Get<std::string>("gates", ""));
  config->queue_capacity =
      reader.GetInRange<int>("queue_capacity", config->queue_capacity, 1, 10000000);
  config->run = reader.Get<std::string>("run", config->run);
  config->report_dir = reader.Get<std::string>("report_dir", "");
  config->final_report = reader.Get<bool>("final_report", config->final_report);
  config->checkpoint_file = reader.Get<std::string>("checkpoint_file", "");
  const bool has_interval = reader.Has("checkpoint_interval");
  config->checkpoint_interval =
      PositiveDuration(reader, "checkpoint_interval", config->checkpoint_interval);
  reader.Finish();
  for (const char* key : {"rules", "gates", "run", "report_dir", "checkpoint_file"}) {
    if (IsEmptyString(node, key)) node.Child(key).Report("must not be empty");
  }
  // Each checkpoint encodes the whole state on the judging thread (55 ms for a 200k-pair
  // classification state, bench/comparator): more often than this costs more than it saves.
  if (config->checkpoint_interval.count() > 0 &&
      config->checkpoint_interval < std::chrono::seconds(1)) {
    node.Child("checkpoint_interval").Report("must be at least 1s");
  }
  if (has_interval && !reader.Has("checkpoint_file")) {
    node.Child("checkpoint_interval").Report("needs \"checkpoint_file\"");
  }
  if (!config->rules_path.empty()) {
    config->rules = LoadReferenced<comparator::CompareConfig>(
        node.Child("rules"), config->rules_path, comparator::LoadCompareConfig, "compare config");
  }
  if (config->rules) {
    // A checkpoint is resumed only under the rules it was judged with (their text as JSON).
    std::string text, error;
    if (ReadSmallFile(config->rules_path, kMaxConfigFileBytes, &text, &error)) {
      config->rules_sha256 = comparator::CompareConfigHash(text);
    } else {
      node.Child("rules").Report("\"" + config->rules_path + "\": " + error);
    }
  }
  if (!config->gates_path.empty()) {
    config->gates = LoadReferenced<comparator::GateConfig>(
        node.Child("gates"), config->gates_path, comparator::LoadGateConfig, "gates config");
  }
}

// A cutover's candidate is a mirror of its route on another upstream, and the gates decide.
void CheckCutover(const ConfigNode& node, const GatewayConfig& config, const RouteConfig& route) {
  const auto& cutover = route.cutover;
  const MirrorConfig* candidate = nullptr;
  for (size_t m = 0; m < route.mirrors.size(); ++m) {
    if (route.mirrors[m].name == cutover.candidate) candidate = &route.mirrors[m];
  }
  if (!candidate) {
    node.Child("candidate")
        .Report("no mirror \"" + cutover.candidate + "\" on route \"" + route.name + "\"");
  } else if (candidate->upstream == route.upstream) {
    node.Child("candidate")
        .Report("mirror \"" + cutover.candidate + "\" sends to the route's own upstream \"" +
                route.upstream + "\": there is nothing to move to");
  }
  if (!config.comparison.enabled() || !config.comparison.gates) {
    node.Report("needs the \"comparison\" section with \"gates\": the gates decide each step");
  }
}

// Cross-references: upstream names, unique names.
void CheckReferences(const ConfigNode& root, const GatewayConfig& config) {
  std::set<std::string> routes;
  for (size_t r = 0; r < config.routes.size(); ++r) {
    const auto& route = config.routes[r];
    auto route_node = root.Child("routes").Element(r);
    if (!routes.insert(route.name).second) {
      route_node.Child("name").Report("duplicate route name \"" + route.name + "\"");
    }
    if (!route.upstream.empty() && !config.FindUpstream(route.upstream)) {
      route_node.Child("upstream").Report("unknown upstream \"" + route.upstream + "\"");
    }
    std::set<std::string> mirrors;
    for (size_t m = 0; m < route.mirrors.size(); ++m) {
      const auto& mirror = route.mirrors[m];
      auto mirror_node = route_node.Child("mirrors").Element(m);
      if (!mirrors.insert(mirror.name).second) {
        mirror_node.Child("name").Report("duplicate mirror name \"" + mirror.name + "\"");
      }
      if (!mirror.upstream.empty() && !config.FindUpstream(mirror.upstream)) {
        mirror_node.Child("upstream").Report("unknown upstream \"" + mirror.upstream + "\"");
      }
    }
    if (route.cutover.enabled()) CheckCutover(route_node.Child("cutover"), config, route);
  }
}

}  // namespace

bool IsLoopbackAddress(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

const UpstreamConfig* GatewayConfig::FindUpstream(const std::string& name) const {
  for (const auto& upstream : upstreams) {
    if (upstream.name == name) return &upstream;
  }
  return nullptr;
}

namespace {

// What would only fail at start (exit 1, no JSON path) is reported by `check` instead: the admin
// listener on the proxy's own address.
void CheckStartable(const ConfigNode& root, const GatewayConfig& config) {
  auto any = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
  if (config.admin_port == config.listen_port && config.admin_port != 0 &&
      (config.admin_host == config.listen_host || any(config.admin_host) ||
       any(config.listen_host))) {
    root.Child("admin_listen")
        .Report("must not be the address of listen (" +
                Endpoint{config.listen_host, config.listen_port}.ToString() +
                "): both could not be bound");
  }
}

}  // namespace

GatewayConfig ParseGatewayConfig(const ConfigNode& root) {
  GatewayConfig config;
  ObjectReader reader(root);
  ReadListen(reader, "listen", &config.listen_host, &config.listen_port);
  ReadListen(reader, "admin_listen", &config.admin_host, &config.admin_port);
  if (auto admin = reader.Optional("admin")) {
    try {
      ParseAdmin(*admin, &config.admin);
    } catch (const ConfigError& e) {
      admin->Absorb(e);
    }
  }
  {
    // The admin API changes what production traffic does (mirror percents): beyond loopback it
    // must be behind a token. An address, not a name: the listener binds it as it is.
    in6_addr ignored{};
    const auto& host = config.admin_host;
    bool address = inet_pton(AF_INET, host.c_str(), &ignored) == 1 ||
                   inet_pton(AF_INET6, host.c_str(), &ignored) == 1;
    if (!address) {
      root.Child("admin_listen")
          .Report("must be an IP address and port, got host \"" + host + "\"");
    } else if (!IsLoopbackAddress(host) && config.admin.token_file.empty()) {
      root.Child("admin_listen")
          .Report("\"" + Endpoint{host, config.admin_port}.ToString() +
                  "\" is beyond loopback: set admin.token_file (a bearer token), or bind "
                  "127.0.0.1 or [::1]");
    }
  }
  config.io_threads = reader.GetInRange<int>("io_threads", config.io_threads, 0, 256);
  config.shadow_threads = reader.GetInRange<int>("shadow_threads", config.shadow_threads, 0, 256);
  config.shadow_nice = reader.GetInRange<int>("shadow_nice", config.shadow_nice, 0, 19);
  config.max_connections =
      reader.GetInRange<int>("max_connections", config.max_connections, 1, 10000000);
  config.max_header_bytes =
      reader.GetInRange<int64_t>("max_header_bytes", config.max_header_bytes, 1024, 1 << 24);
  config.max_request_body_bytes = reader.GetInRange<int64_t>(
      "max_request_body_bytes", config.max_request_body_bytes, 0, int64_t{1} << 40);
  config.max_streamed_body_bytes = reader.GetInRange<int64_t>(
      "max_streamed_body_bytes", config.max_streamed_body_bytes, 0, int64_t{1} << 50);
  config.max_buffered_body_bytes = reader.GetInRange<int64_t>(
      "max_buffered_body_bytes", config.max_buffered_body_bytes, 0, int64_t{1} << 40);
  config.client_header_timeout =
      PositiveDuration(reader, "client_header_timeout", config.client_header_timeout);
  config.client_body_timeout =
      PositiveDuration(reader, "client_body_timeout", config.client_body_timeout);
  config.keep_alive_timeout =
      PositiveDuration(reader, "keep_alive_timeout", config.keep_alive_timeout);
  config.write_timeout = PositiveDuration(reader, "write_timeout", config.write_timeout);
  config.shutdown_grace = PositiveDuration(reader, "shutdown_grace", config.shutdown_grace);
  config.shadow_header = reader.Get<std::string>("shadow_header", config.shadow_header);
  if (!config.shadow_header.empty() && !IsHeaderName(config.shadow_header)) {
    // It is written into every mirror copy's head.
    root.Child("shadow_header")
        .Report("must be a header name (letters, digits and !#$%&'*+-.^_`|~) or \"\", got " +
                nlohmann::json(config.shadow_header).dump());
    config.shadow_header.clear();
  }
  if (reader.Has("redact_headers")) {
    config.redact_headers.clear();
    for (auto& name : reader.Get<std::vector<std::string>>("redact_headers", {})) {
      config.redact_headers.push_back(ToLowerAscii(name));
    }
  }
  config.access_log_path = reader.Get<std::string>("access_log_path", "");
  if (IsEmptyString(root, "access_log_path")) {
    root.Child("access_log_path").Report("must not be empty (leave it out for stdout)");
  }
  std::string access_log = reader.Get<std::string>("access_log", "off");
  if (access_log == "off") {
    config.access_log = AccessLogFormat::kOff;
  } else if (access_log == "text") {
    config.access_log = AccessLogFormat::kText;
  } else if (access_log == "json") {
    config.access_log = AccessLogFormat::kJson;
  } else {
    root.Child("access_log")
        .Report("must be \"off\", \"text\" or \"json\", got \"" + access_log + "\"");
  }

  if (auto upstreams = reader.Optional("upstreams")) {
    if (!upstreams->json().is_object()) {
      upstreams->Report("must be an object of upstreams by name");
    } else {
      for (const auto& [name, value] : upstreams->json().items()) {
        auto child = upstreams->Child(name);
        try {
          config.upstreams.push_back(ParseUpstream(name, child));
        } catch (const ConfigError& e) {
          child.Absorb(e);
        }
      }
    }
  } else {
    root.Report("missing required key \"upstreams\"");
  }
  if (auto routes = reader.Optional("routes")) {
    try {
      auto elements = routes->Elements();
      for (size_t i = 0; i < elements.size(); ++i) {
        try {
          config.routes.push_back(ParseRoute(i, elements[i]));
        } catch (const ConfigError& e) {
          elements[i].Absorb(e);
        }
      }
      if (elements.empty()) routes->Report("must list at least one route");
    } catch (const ConfigError& e) {
      routes->Absorb(e);
    }
  } else {
    root.Report("missing required key \"routes\"");
  }
  if (auto capture = reader.Optional("capture")) {
    try {
      ParseCapture(*capture, &config.capture);
    } catch (const ConfigError& e) {
      capture->Absorb(e);
    }
  } else {
    config.capture.response_headers = {"content-type"};
  }
  // Credentials never reach the pair log, whatever capture.request_headers names.
  for (const auto& name : config.capture.request_headers) {
    if (std::find(config.redact_headers.begin(), config.redact_headers.end(), name) !=
        config.redact_headers.end()) {
      config.capture.redacted.push_back(name);
    }
  }
  if (auto comparison = reader.Optional("comparison")) {
    try {
      ParseComparison(*comparison, &config.comparison);
    } catch (const ConfigError& e) {
      comparison->Absorb(e);
    }
  }
  reader.Finish();
  if (config.routes.size() ==
      static_cast<size_t>(root.json().contains("routes") && root.json()["routes"].is_array()
                              ? root.json()["routes"].size()
                              : 0)) {
    CheckReferences(root, config);
  }
  CheckStartable(root, config);
  return config;
}

GatewayConfig LoadGatewayConfig(const std::string& path) {
  return LoadConfigFile<GatewayConfig>(path, ParseGatewayConfig);
}

nlohmann::json CutoverToJson(const CutoverConfig& cutover) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& step : cutover.steps) {
    steps.push_back({{"share", step.share},
                     {"hold", FormatMicros(step.hold)},
                     {"min_judged", step.min_judged}});
  }
  std::string sticky = cutover.sticky == StickyKey::kHeader   ? "header:" + cutover.sticky_name
                       : cutover.sticky == StickyKey::kCookie ? "cookie:" + cutover.sticky_name
                                                              : "client_address";
  nlohmann::json out = {{"candidate", cutover.candidate},
                        {"sticky", sticky},
                        {"steps", steps},
                        {"evaluation_interval", FormatMicros(cutover.evaluation_interval)}};
  if (!cutover.state_file.empty()) out["state_file"] = cutover.state_file;
  return out;
}

nlohmann::json GatewayConfigToJson(const GatewayConfig& config) {
  using nlohmann::json;
  json out;
  out["listen"] = Endpoint{config.listen_host, config.listen_port}.ToString();
  out["admin_listen"] = Endpoint{config.admin_host, config.admin_port}.ToString();
  out["admin"] = {{"allowed_hosts", config.admin.allowed_hosts}};
  if (!config.admin.token_file.empty()) out["admin"]["token_file"] = config.admin.token_file;
  out["io_threads"] = config.io_threads;
  out["shadow_threads"] = config.shadow_threads;
  out["shadow_nice"] = config.shadow_nice;
  out["max_connections"] = config.max_connections;
  out["max_header_bytes"] = config.max_header_bytes;
  out["max_request_body_bytes"] = config.max_request_body_bytes;
  out["max_streamed_body_bytes"] = config.max_streamed_body_bytes;
  out["max_buffered_body_bytes"] = config.max_buffered_body_bytes;
  out["client_header_timeout"] = FormatMicros(config.client_header_timeout);
  out["client_body_timeout"] = FormatMicros(config.client_body_timeout);
  out["keep_alive_timeout"] = FormatMicros(config.keep_alive_timeout);
  out["write_timeout"] = FormatMicros(config.write_timeout);
  out["shutdown_grace"] = FormatMicros(config.shutdown_grace);
  out["shadow_header"] = config.shadow_header;
  out["redact_headers"] = config.redact_headers;
  out["access_log"] = config.access_log == AccessLogFormat::kOff    ? "off"
                      : config.access_log == AccessLogFormat::kText ? "text"
                                                                    : "json";
  if (!config.access_log_path.empty()) out["access_log_path"] = config.access_log_path;
  json upstreams = json::object();
  for (const auto& u : config.upstreams) {
    json endpoints = json::array();
    for (const auto& e : u.endpoints) endpoints.push_back(e.ToString());
    upstreams[u.name] = {{"endpoints", endpoints},
                         {"max_connections", u.max_connections},
                         {"max_pending", u.max_pending},
                         {"pending_timeout", FormatMicros(u.pending_timeout)},
                         {"idle_timeout", FormatMicros(u.idle_timeout)},
                         {"connect_timeout", FormatMicros(u.connect_timeout)},
                         {"header_timeout", FormatMicros(u.header_timeout)},
                         {"total_timeout", FormatMicros(u.total_timeout)},
                         {"max_response_bytes", u.max_response_bytes},
                         {"eject_after_failures", u.eject_after_failures},
                         {"eject_duration", FormatMicros(u.eject_duration)}};
  }
  out["upstreams"] = upstreams;
  json routes = json::array();
  for (const auto& r : config.routes) {
    json mirrors = json::array();
    for (const auto& m : r.mirrors) {
      mirrors.push_back({{"name", m.name},
                         {"upstream", m.upstream},
                         {"percent", m.percent},
                         {"sampling", m.sampling == Sampling::kHash ? "hash" : "counter"},
                         {"hash_header", m.hash_header},
                         {"mirror_body", m.mirror_body},
                         {"max_body_bytes", m.max_body_bytes},
                         {"timeout", FormatMicros(m.timeout)},
                         {"max_in_flight", m.max_in_flight}});
      if (m.capture_body_sample) mirrors.back()["capture_body_sample"] = *m.capture_body_sample;
    }
    routes.push_back({{"name", r.name},
                      {"hosts", r.hosts},
                      {"path_prefix", r.path_prefix},
                      {"methods", r.methods},
                      {"upstream", r.upstream},
                      {"mirrors", mirrors}});
    if (r.cutover.enabled()) routes.back()["cutover"] = CutoverToJson(r.cutover);
  }
  out["routes"] = routes;
  json capture = {{"request_headers", config.capture.request_headers},
                  {"response_headers", config.capture.response_headers},
                  {"max_body_bytes", config.capture.max_body_bytes},
                  {"body_sample", config.capture.body_sample}};
  if (!config.capture.pair_log.path.empty()) {
    const auto& p = config.capture.pair_log;
    capture["pair_log"] = {{"path", p.path},
                           {"max_file_bytes", p.max_file_bytes},
                           {"max_files", p.max_files},
                           {"compression", p.compression},
                           {"compression_level", p.compression_level},
                           {"max_total_bytes", p.max_total_bytes},
                           {"max_age", FormatMicros(p.max_age)},
                           {"queue_capacity", p.queue_capacity},
                           {"counters_interval", FormatMicros(p.counters_interval)}};
  }
  out["capture"] = capture;
  if (config.comparison.enabled()) {
    const auto& c = config.comparison;
    json comparison = {{"rules", c.rules_path},
                       {"queue_capacity", c.queue_capacity},
                       {"run", c.run},
                       {"final_report", c.final_report}};
    if (!c.gates_path.empty()) comparison["gates"] = c.gates_path;
    if (!c.report_dir.empty()) comparison["report_dir"] = c.report_dir;
    if (!c.checkpoint_file.empty()) {
      comparison["checkpoint_file"] = c.checkpoint_file;
      comparison["checkpoint_interval"] = FormatMicros(c.checkpoint_interval);
    }
    out["comparison"] = comparison;
  }
  return out;
}

}  // namespace sg::gateway
