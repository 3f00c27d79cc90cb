#include "model_server/torchserve_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "model_server/model_archive.h"
#include "model_server/ts_properties.h"

namespace sg::serve {
namespace {

namespace fs = std::filesystem;

// config.properties keys sg-serve reads and applies.
const std::set<std::string>& HonouredKeys() {
  static const std::set<std::string> keys = {"inference_address",
                                             "management_address",
                                             "metrics_address",
                                             "model_store",
                                             "load_models",
                                             "default_workers_per_model",
                                             "job_queue_size",
                                             "enable_model_api",
                                             "max_request_size",
                                             "default_response_timeout",
                                             "default_startup_timeout",
                                             "enable_envvars_config",
                                             "models",
                                             "disable_token_authorization"};
  return keys;
}

// config.properties keys TorchServe knows and sg-serve does not apply, with the reason it warns.
const std::map<std::string, std::string>& IgnoredKeys() {
  static const std::map<std::string, std::string> keys = {
      {"number_of_netty_threads", "sg-serve sizes its I/O threads from the CPU plan"},
      {"netty_client_threads", "sg-serve sizes its I/O threads from the CPU plan"},
      {"use_native_io", "no Netty here"},
      {"io_ratio", "no Netty here"},
      {"vmargs", "no JVM here"},
      {"prefer_direct_buffer", "no JVM here"},
      {"async_logging", "sg-serve logs through spdlog (--log-level)"},
      {"max_response_size",
       "answers are the handler's JSON (the top classes of image_classifier), not limited"},
      {"unregister_model_timeout", "workers are stopped with sg-serve's own grace period"},
      {"decode_input_request", "no Python backend: the built-in handler reads the body itself"},
      {"initial_worker_port", "workers talk to the front over Unix sockets"},
      {"model_server_home", "nothing is read from a TorchServe home"},
      {"limit_max_image_pixels",
       "images over preprocess.max_pixels (40,000,000 pixels) are refused with 400 either way"},
      {"install_py_dep_per_model", "no Python code runs in sg-serve"},
      {"blacklist_env_vars", "no model code runs in sg-serve, so none can read the environment"},
      {"number_of_gpu", "archives are served on the CPU"},
      {"allowed_urls", "archives are read from the model store only, never downloaded"},
      {"use_env_allowed_urls", "archives are read from the model store only, never downloaded"},
      {"workflow_store", "workflows are not served"},
      {"disable_system_metrics", "sg-serve's metrics are its own (docs/model-server.md)"},
      {"system_metrics_cmd", "sg-serve's metrics are its own (docs/model-server.md)"},
      {"metrics_mode", "the metrics listener always answers in Prometheus format"},
      {"metrics_format", "the metrics listener always answers in Prometheus format"},
      {"metrics_config", "the metrics listener always answers in Prometheus format"},
      {"enable_metrics_api", "the metrics listener is always served"},
      {"cors_allowed_origin", "no CORS headers are sent"},
      {"cors_allowed_methods", "no CORS headers are sent"},
      {"cors_allowed_headers", "no CORS headers are sent"},
      {"private_key_file", "no TLS here (an https address is refused)"},
      {"certificate_file", "no TLS here (an https address is refused)"},
      {"keystore", "no TLS here (an https address is refused)"},
      {"keystore_pass", "no TLS here (an https address is refused)"},
      {"keystore_type", "no TLS here (an https address is refused)"},
      {"grpc_inference_port", "no gRPC API here"},
      {"grpc_management_port", "no gRPC API here"},
      {"grpc_inference_address", "no gRPC API here"},
      {"grpc_management_address", "no gRPC API here"},
      {"enable_grpc_ssl", "no gRPC API here"},
      {"grpc_inference_max_connection_age_ms", "no gRPC API here"},
      {"grpc_management_max_connection_age_ms", "no gRPC API here"},
      {"grpc_inference_max_connection_age_grace_ms", "no gRPC API here"},
      {"grpc_management_max_connection_age_grace_ms", "no gRPC API here"},
      {"plugins_path", "TorchServe's plugins are Java"},
      {"default_service_handler", "archives name their built-in handler"},
      {"service_envelope", "KServe requests are answered at their own paths"},
      {"model_snapshot", "sg-serve writes and reads no config snapshots"},
      {"snapshot_store", "sg-serve writes and reads no config snapshots"},
  };
  return keys;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One setting and where it came from, for messages ("config.properties:12", "--models", ...).
struct Setting {
  std::string value;
  std::string where;
};

class Builder {
 public:
  Builder(const std::map<std::string, std::string>& env, const std::string& work_dir)
      : env_(env), work_dir_(work_dir) {}

  TorchServeStart Build(const TorchServeFlags& flags, const std::string& cwd_properties) {
    ReadProperties(flags, cwd_properties);
    if (!flags.model_store.empty()) settings_["model_store"] = {flags.model_store, "--model-store"};
    if (!flags.models.empty()) {
      std::string joined;
      for (const auto& m : flags.models) joined += (joined.empty() ? "" : ",") + m;
      settings_["load_models"] = {joined, "--models"};
    }
    if (flags.enable_model_api) settings_["enable_model_api"] = {"true", "--enable-model-api"};
    ApplyEnvironment();
    ApplyServerSettings();
    LoadModels();
    if (!problems_.empty()) throw ConfigError(problems_);
    return std::move(start_);
  }

 private:
  void Problem(const Setting& s, const std::string& key, const std::string& why) {
    problems_.push_back(s.where + ": " + key + ": " + why);
  }
  void Warn(const Setting& s, const std::string& key, const std::string& why) {
    start_.warnings.push_back(s.where + ": " + key + ": " + why);
  }

  void ReadProperties(const TorchServeFlags& flags, const std::string& cwd_properties) {
    std::string file;
    if (auto it = env_.find("TS_CONFIG_FILE"); it != env_.end() && !it->second.empty()) {
      file = it->second;
    } else if (!flags.ts_config.empty()) {
      file = flags.ts_config;
    } else if (std::error_code ec; fs::is_regular_file(cwd_properties, ec)) {
      file = cwd_properties;
    }
    if (file.empty()) return;
    start_.properties_file = file;
    std::string text, error;
    if (!ReadSmallFile(file, kMaxConfigFileBytes, &text, &error)) {
      problems_.push_back(file + ": " + error);
      return;
    }
    Properties properties;
    if (!ParseProperties(text, &properties, &error)) {
      problems_.push_back(file + ": " + error);
      return;
    }
    for (const auto& p : properties.entries) {
      Setting s{p.value, file + ":" + std::to_string(p.line)};
      if (HonouredKeys().count(p.key)) {
        settings_[p.key] = s;
      } else if (auto it = IgnoredKeys().find(p.key); it != IgnoredKeys().end()) {
        Warn(s, p.key, "ignored: " + it->second);
      } else {
        Warn(s, p.key, "unknown key, ignored (as TorchServe ignores unknown keys)");
      }
    }
  }

  // TS_<KEY> variables, read when the file sets enable_envvars_config=true (as TorchServe).
  void ApplyEnvironment() {
    auto it = settings_.find("enable_envvars_config");
    if (it == settings_.end()) return;
    auto on = Bool("enable_envvars_config");
    if (!on || !*on) return;
    for (const auto& key : HonouredKeys()) {
      std::string name = "TS_" + key;
      for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (auto e = env_.find(name); e != env_.end()) settings_[key] = {e->second, name};
    }
  }

  const Setting* Find(const std::string& key) const {
    auto it = settings_.find(key);
    return it == settings_.end() ? nullptr : &it->second;
  }

  std::optional<bool> Bool(const std::string& key) {
    const Setting* s = Find(key);
    if (!s) return std::nullopt;
    std::string v = Lower(Trim(s->value));
    if (v == "true") return true;
    if (v == "false") return false;
    Problem(*s, key, "must be true or false, got \"" + s->value + "\"");
    return std::nullopt;
  }

  std::optional<int64_t> Int(const std::string& key, int64_t lo, int64_t hi) {
    const Setting* s = Find(key);
    if (!s) return std::nullopt;
    std::string v = Trim(s->value);
    int64_t value = 0;
    size_t used = 0;
    try {
      value = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (v.empty() || used != v.size()) {
      Problem(*s, key, "must be an integer, got \"" + s->value + "\"");
      return std::nullopt;
    }
    if (value < lo || value > hi) {
      Problem(*s, key,
              "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                  std::to_string(value));
      return std::nullopt;
    }
    return value;
  }

  void ApplyServerSettings() {
    ServeConfig& c = start_.config;
    for (auto [key, field] :
         {std::pair<const char*, std::string*>{"inference_address", &c.inference_address},
          {"management_address", &c.management_address},
          {"metrics_address", &c.metrics_address}}) {
      if (const Setting* s = Find(key)) {
        std::string error;
        if (!NormalizeAddress(Trim(s->value), field, &error)) Problem(*s, key, error);
      }
    }
    if (auto v = Int("max_request_size", 1, int64_t{1} << 32)) c.max_request_size = *v;
    if (auto v = Bool("enable_model_api")) c.enable_model_api = *v;
    if (auto v = Int("default_workers_per_model", 1, 4096)) default_workers_ = static_cast<int>(*v);
    ModelConfig& defaults = c.registration_defaults;
    if (auto v = Int("job_queue_size", 1, 1'000'000))
      defaults.job_queue_size = static_cast<int>(*v);
    if (auto v = Int("default_response_timeout", 1, 86400)) {
      defaults.response_timeout = std::chrono::seconds(*v);
    }
    if (auto v = Int("default_startup_timeout", 1, 86400)) {
      start_.startup_timeout = std::chrono::seconds(*v);
    }
    if (auto v = Bool("disable_token_authorization"); v && !*v) {
      Warn(*Find("disable_token_authorization"), "disable_token_authorization",
           "false, but sg-serve has no token authorization: it answers every request (keep its "
           "listeners on 127.0.0.1 or behind the gateway)");
    }
    if (const Setting* s = Find("model_store")) c.model_store = Trim(s->value);
    if (const Setting* s = Find("models")) {
      per_model_ = nlohmann::json::parse(s->value, nullptr, false);
      if (per_model_.is_discarded() || !per_model_.is_object()) {
        Problem(*s, "models", "must be a JSON object {\"name\": {\"version\": {...}}}");
        per_model_ = nlohmann::json::object();
      }
    }
  }

  // The archives load_models names: (name or "" for the archive's own, path).
  std::vector<std::pair<std::string, std::string>> Targets() {
    std::vector<std::pair<std::string, std::string>> out;
    const Setting* s = Find("load_models");
    if (!s) return out;
    const std::string& store = start_.config.model_store;
    std::vector<std::string> entries;
    std::stringstream list(s->value);
    for (std::string e; std::getline(list, e, ',');) {
      if (!Trim(e).empty()) entries.push_back(Trim(e));
    }
    if (entries.size() == 1 && Lower(entries[0]) == "standalone") return out;
    if (entries.size() == 1 && Lower(entries[0]) == "all") {
      if (store.empty()) {
        Problem(*s, "load_models", "\"all\" needs a model store (--model-store or model_store)");
        return out;
      }
      std::error_code ec;
      std::vector<std::string> names;
      for (const auto& e : fs::directory_iterator(store, ec)) {
        std::string name = e.path().filename().string();
        bool archive = name.size() > 4 && (name.compare(name.size() - 4, 4, ".mar") == 0 ||
                                           name.compare(name.size() - 4, 4, ".tgz") == 0 ||
                                           (name.size() > 7 && name.ends_with(".tar.gz")));
        if (name.front() != '.' && (e.is_directory(ec) || (e.is_regular_file(ec) && archive))) {
          names.push_back(name);
        }
      }
      if (ec)
        Problem(*s, "load_models", "cannot list the model store " + store + ": " + ec.message());
      std::sort(names.begin(), names.end());
      for (const auto& n : names) out.push_back({"", (fs::path(store) / n).string()});
      return out;
    }
    for (const auto& e : entries) {
      auto eq = e.find('=');
      std::string name = eq == std::string::npos ? "" : Trim(e.substr(0, eq));
      std::string file = eq == std::string::npos ? e : Trim(e.substr(eq + 1));
      if (file.find("://") != std::string::npos) {
        Problem(*s, "load_models",
                "\"" + file + "\": archives are not downloaded: copy it into the model store");
        continue;
      }
      if (file.empty() || (eq != std::string::npos && name.empty())) {
        Problem(*s, "load_models", "\"" + e + "\": expected NAME=FILE.mar or FILE.mar");
        continue;
      }
      if (fs::path(file).is_absolute()) {
        out.push_back({name, file});
      } else if (store.empty()) {
        Problem(*s, "load_models",
                "\"" + file +
                    "\" is relative, and no model store is set "
                    "(--model-store or model_store)");
      } else {
        out.push_back({name, (fs::path(store) / file).string()});
      }
    }
    return out;
  }

  // The `models` property's settings for this model and version, where model-config.yaml did not
  // set them.
  void ApplyPerModel(const Setting& where, const std::set<std::string>& yaml_keys, ModelConfig* m) {
    auto by_name = per_model_.find(m->name);
    if (by_name == per_model_.end() || !by_name->is_object()) return;
    auto by_version = by_name->find(m->version);
    if (by_version == by_name->end() || !by_version->is_object()) return;
    std::string prefix = "models." + m->name + "." + m->version + ".";
    int min_workers = -1, max_workers = -1;
    for (const auto& [key, value] : by_version->items()) {
      auto as_int = [&](int lo) -> std::optional<int> {
        if (!value.is_number_integer() || value.get<int64_t>() < lo ||
            value.get<int64_t>() > 1'000'000) {
          Problem(where, prefix + key, "must be an integer >= " + std::to_string(lo));
          return std::nullopt;
        }
        return value.get<int>();
      };
      bool from_yaml = yaml_keys.count(key) > 0;
      if (key == "minWorkers") {
        if (auto v = as_int(1)) min_workers = *v;
        if (!from_yaml && min_workers > 0) m->workers = min_workers;
      } else if (key == "maxWorkers") {
        if (auto v = as_int(1)) max_workers = *v;
      } else if (key == "batchSize") {
        if (auto v = as_int(1); v && !from_yaml) m->batch_size = *v;
      } else if (key == "maxBatchDelay") {
        if (auto v = as_int(0); v && !from_yaml) m->max_batch_delay = std::chrono::milliseconds(*v);
      } else if (key == "responseTimeout") {
        if (auto v = as_int(1); v && !from_yaml) m->response_timeout = std::chrono::seconds(*v);
      } else if (key == "jobQueueSize") {
        if (auto v = as_int(1); v && !from_yaml) m->job_queue_size = *v;
      } else if (key == "defaultVersion" || key == "marName") {
        // Used by TorchServe's snapshots and version routing; one version per name here.
      } else {
        Warn(where, prefix + key, "ignored: not used by sg-serve's built-in handlers");
      }
    }
    if (max_workers > 0 && max_workers != std::max(min_workers, 1)) {
      Warn(where, prefix + "maxWorkers",
           "ignored: sg-serve starts minWorkers workers and does not scale on its own");
    }
  }

  static bool ValidName(const std::string& name) {
    if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
  }

  void LoadModels() {
    auto targets = Targets();
    const Setting* where = Find("load_models");
    std::set<std::string> names;
    for (const auto& [name, path] : targets) {
      // TorchServe's defaults for a model loaded at start-up: those of a registered one, and
      // default_workers_per_model.
      ModelConfig m = start_.config.registration_defaults;
      m.workers = default_workers_;
      std::set<std::string> yaml_keys;
      std::string error;
      if (!OpenModelArchive(path, work_dir_, &m, &error, &start_.warnings, &yaml_keys)) {
        Problem(*where, "load_models", error);
        continue;
      }
      if (!name.empty()) m.name = name;
      if (!ValidName(m.name)) {
        Problem(*where, "load_models",
                path + ": model name \"" + m.name +
                    "\" must begin with a letter and hold only letters, digits, _, - and .");
        continue;
      }
      if (!names.insert(m.name).second) {
        Problem(*where, "load_models", path + ": a second model named \"" + m.name + "\"");
        continue;
      }
      if (const Setting* s = Find("models")) ApplyPerModel(*s, yaml_keys, &m);
      start_.config.models.push_back(std::move(m));
    }
    // No model at start: as TorchServe, when models can be registered later; else nothing
    // could ever be served.
    if (problems_.empty() && start_.config.models.empty() && !start_.config.enable_model_api) {
      problems_.push_back(
          "no model to serve: give --models NAME=FILE.mar (or all) with --model-store DIR, or "
          "load_models and model_store in config.properties (or --enable-model-api to register "
          "models later)");
    }
  }

  const std::map<std::string, std::string>& env_;
  std::string work_dir_;
  std::map<std::string, Setting> settings_;
  std::vector<std::string> problems_;
  TorchServeStart start_;
  int default_workers_ = 0;  // 0: planned (TorchServe: one per CPU)
  nlohmann::json per_model_ = nlohmann::json::object();
};

}  // namespace

bool TorchServeFlags::Given() const {
  return !ts_config.empty() || !model_store.empty() || !models.empty() || enable_model_api;
}

TorchServeStart LoadTorchServeStart(const TorchServeFlags& flags,
                                    const std::map<std::string, std::string>& env,
                                    const std::string& cwd_properties,
                                    const std::string& work_dir) {
  return Builder(env, work_dir).Build(flags, cwd_properties);
}

}  // namespace sg::serve
