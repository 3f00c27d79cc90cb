#include "model_server/serve_routes.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <spdlog/spdlog.h>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "model_server/handler.h"
#include "model_server/model_archive.h"

namespace sg::serve {
namespace {

Response Status200(const Request& context, int status, const std::string& text) {
  return http::MakeJsonResponse(context, static_cast<Status>(status), {{"status", text}});
}

Response ModelNotFound(const Request& request, const std::string& name) {
  return Error(request, 404, "ModelNotFoundException", "Model not found: " + name);
}

Response VersionNotFound(const Request& request, const std::string& name,
                         const std::string& version) {
  return Error(request, 404, "ModelVersionNotFoundException",
               "Model version: " + version + " does not exist for model: " + name);
}

// TorchServe's NettyUtils.getIntParameter: a missing or unparsable value is the default.
int IntParam(const std::string& query, const std::string& name, int fallback) {
  std::string text = QueryParam(query, name);
  if (text.empty()) return fallback;
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    return used == text.size() ? value : fallback;
  } catch (const std::exception&) {
    return fallback;
  }
}

bool HasParam(const std::string& query, const std::string& name) {
  for (const auto& kv : Split(query, '&')) {
    if (kv.substr(0, kv.find('=')) == name) return true;
  }
  return false;
}

// Java's Boolean.parseBoolean: "true" in any case is true, anything else false.
bool BoolParam(const std::string& query, const std::string& name, bool fallback) {
  if (!HasParam(query, name)) return fallback;
  std::string text = QueryParam(query, name);
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return text == "true";
}

// %XX and '+' decoded (a model store file name or handler in a query).
std::string UrlDecode(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace

void ServeServer::Routes::Management(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  auto method = request.method();
  if ((path.empty() && method == bhttp::verb::options) ||
      (path.size() == 1 && path[0] == "api-description")) {
    return ApiDescription(request, respond, "management");
  }
  // KServe v1 model readiness: GET /v1/models/{m}.
  if (path.size() == 3 && path[0] == "v1" && path[1] == "models") {
    if (method != bhttp::verb::get) return respond(MethodNotAllowed(request));
    auto entry = self->Find(path[2], "");
    if (!entry) return respond(ModelNotFound(request, path[2]));
    return respond(http::MakeJsonResponse(
        request, Status::ok, {{"name", path[2]}, {"ready", entry->pool->ready_workers() > 0}}));
  }
  if (path.empty() || path[0] != "models" || path.size() > 4) return respond(NotFound(request));
  if (path.size() == 4 && path[3] != "set-default") return respond(NotFound(request));
  if (path.size() == 1) {
    if (method == bhttp::verb::get) return ListModels(self, request, respond, query);
    if (method == bhttp::verb::post && self->config_.enable_model_api) {
      return Register(self, request, respond, query);
    }
    return respond(MethodNotAllowed(request));
  }
  const std::string& name = path[1];
  std::string version = path.size() >= 3 ? path[2] : "";
  if (path.size() == 4) {
    if (method != bhttp::verb::put) return respond(MethodNotAllowed(request));
    if (!self->Find(name, "")) return respond(ModelNotFound(request, name));
    {
      std::lock_guard lock(self->models_mutex_);
      auto it = self->models_.find(name);
      if (it == self->models_.end()) return respond(ModelNotFound(request, name));
      if (!it->second.versions.count(version)) {
        return respond(VersionNotFound(request, name, version));
      }
      it->second.default_version = version;
    }
    return respond(Status200(
        request, 200,
        "Default vesion succsesfully updated for model \"" + name + "\" to \"" + version + "\""));
  }
  if (!self->Find(name, "")) return respond(ModelNotFound(request, name));
  if (method == bhttp::verb::get) {
    std::vector<std::shared_ptr<ModelEntry>> entries;
    for (const auto& e : self->AllEntries()) {
      if (e->pool->model().name != name) continue;
      if (version == "all" || e == self->Find(name, version)) entries.push_back(e);
    }
    if (entries.empty()) return respond(VersionNotFound(request, name, version));
    bool customized = version != "all" && BoolParam(query, "customized", false);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : entries) {
      auto d = e->pool->Describe();
      d["modelUrl"] = e->url;
      d["loadedAtStartup"] = e->loaded_at_startup;
      if (customized) {
        // The built-in handlers have no describe_handle: their metadata is what sg-serve feeds
        // the model, as a JSON text (TorchServe's customizedMetadata is a string too).
        const auto& m = e->pool->model();
        nlohmann::json meta = {{"handler", HandlerName(m.handler)},
                               {"topk", m.topk},
                               {"preprocess",
                                {{"resize", m.preprocess.resize},
                                 {"crop", m.preprocess.crop},
                                 {"channels", m.preprocess.channels},
                                 {"mean", m.preprocess.mean},
                                 {"std", m.preprocess.std}}}};
        if (!m.input_shape.empty()) meta["inputShape"] = m.input_shape;
        d["customizedMetadata"] = meta.dump(2);
      }
      out.push_back(std::move(d));
    }
    return respond(http::MakeJsonResponse(request, Status::ok, out));
  }
  if (method == bhttp::verb::put) {
    if (version.empty()) version = QueryParam(query, "model_version");
    return ScaleRoute(self, request, respond, query, name, version);
  }
  if (method == bhttp::verb::delete_ && self->config_.enable_model_api) {
    auto entry = self->Find(name, version);
    if (!entry) return respond(VersionNotFound(request, name, version));
    std::string actual = entry->pool->model().version;
    {
      std::lock_guard lock(self->models_mutex_);
      auto it = self->models_.find(name);
      if (it == self->models_.end()) return respond(ModelNotFound(request, name));
      const auto& versions = it->second;
      if (!version.empty() && versions.default_version == version && versions.versions.size() > 1) {
        return respond(Error(request, 403, "InvalidModelVersionException",
                             "Cannot remove default version for model " + name));
      }
    }
    self->RemoveModel(name, actual);
    return respond(Status200(request, 200, "Model \"" + name + "\" unregistered"));
  }
  respond(MethodNotAllowed(request));
}

void ServeServer::Routes::ListModels(ServeServer* self, const Request& request,
                                     const Responder& respond, const std::string& query) {
  int limit = IntParam(query, "limit", 100);
  if (limit > 100 || limit < 0) limit = 100;
  int token = std::max(0, IntParam(query, "next_page_token", 0));
  std::vector<std::shared_ptr<ModelEntry>> defaults;  // in name order
  for (const auto& e : self->AllEntries()) {
    if (self->Find(e->pool->model().name, "") == e) defaults.push_back(e);
  }
  nlohmann::json out = nlohmann::json::object();
  size_t last = static_cast<size_t>(token) + static_cast<size_t>(limit);
  if (last > defaults.size()) {
    last = defaults.size();
  } else {
    out["nextPageToken"] = std::to_string(last);
  }
  nlohmann::json models = nlohmann::json::array();
  for (size_t i = static_cast<size_t>(token); i < last; ++i) {
    models.push_back(
        {{"modelName", defaults[i]->pool->model().name}, {"modelUrl", defaults[i]->url}});
  }
  out["models"] = std::move(models);
  respond(http::MakeJsonResponse(request, Status::ok, out));
}

void ServeServer::Routes::ScaleRoute(ServeServer* self, const Request& request,
                                     const Responder& respond, const std::string& query,
                                     const std::string& name, const std::string& version) {
  int min_workers = IntParam(query, "min_worker", 1);
  int max_workers = IntParam(query, "max_worker", min_workers);
  if (max_workers < min_workers) {
    return respond(
        Error(request, 400, "BadRequestException", "max_worker cannot be less than min_worker."));
  }
  auto entry = self->Find(name, version);
  if (!entry) return respond(VersionNotFound(request, name, version));
  if (min_workers < 0) {
    // TorchServe fails this one inside its worker manager: 500, not 400.
    return respond(Error(request, 500, "InternalServerException",
                         "min_worker cannot be negative, got " + std::to_string(min_workers)));
  }
  if (min_workers > 1024) {
    return respond(Error(request, 400, "BadRequestException",
                         "min_worker must be at most 1024, got " + std::to_string(min_workers)));
  }
  bool synchronous = BoolParam(query, "synchronous", false);
  auto context = ReplyContext(request);
  self->Background([self, entry, min_workers, synchronous, context, respond, name, version] {
    std::string error;
    bool ok = self->Scale(entry, min_workers, &error) != ScaleResult::kRefused;
    if (!ok) spdlog::error("model {}: cannot start workers: {}", name, error);
    if (!synchronous) return;
    if (ok)
      ok = entry->pool->WaitReady(
          std::chrono::steady_clock::now() + entry->start_timeout + std::chrono::seconds(10),
          &error);
    if (!ok) {
      return respond(
          Error(context, 500, "InternalServerException", "Failed to start workers: " + error));
    }
    std::string text = "Workers scaled to " + std::to_string(min_workers) + " for model: " + name;
    if (!version.empty()) text += ", version: " + version;
    respond(Status200(context, 200, text));
  });
  if (!synchronous) respond(Status200(request, 202, "Processing worker updates..."));
}

void ServeServer::Routes::Register(ServeServer* self, const Request& request,
                                   const Responder& respond, const std::string& query) {
  if (!HasParam(query, "url")) {
    return respond(Error(request, 400, "BadRequestException", "Parameter url is required."));
  }
  std::string url = UrlDecode(QueryParam(query, "url"));
  std::string runtime = UrlDecode(QueryParam(query, "runtime"));
  if (HasParam(query, "runtime") && runtime != "python" && runtime != "python3") {
    return respond(
        Error(request, 400, "BadRequestException", "Invalid RuntimeType value: " + runtime));
  }
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0) {
    return respond(Error(request, 400, "DownloadArchiveException",
                         "sg-serve does not download archives: copy " + url +
                             " into the model store and register it by its file name"));
  }
  const auto& store = self->config_.model_store;
  if (url.empty() || store.empty() || url.find('/') != std::string::npos || url == "." ||
      url == ".." || !std::filesystem::exists(std::filesystem::path(store) / url)) {
    return respond(Error(request, 404, "ModelNotFoundException",
                         store.empty() ? "sg-serve has no model store (--model-store): cannot "
                                         "register " +
                                             url
                                       : "Model not found in model store: " + url));
  }
  int initial = std::max(0, IntParam(query, "initial_workers", 0));
  int batch_size = IntParam(query, "batch_size", -1);
  int max_batch_delay = IntParam(query, "max_batch_delay", -1);
  int response_timeout = IntParam(query, "response_timeout", -1);
  int startup_timeout = IntParam(query, "startup_timeout", -1);
  bool synchronous = BoolParam(query, "synchronous", true);
  std::string model_name = UrlDecode(QueryParam(query, "model_name"));
  std::string handler = UrlDecode(QueryParam(query, "handler"));
  auto context = ReplyContext(request);
  self->Background([=] {
    // TorchServe's defaults and config.properties' (registration_defaults), then the archive's
    // model-config.yaml, then the request's parameters.
    ModelConfig model = self->config_.registration_defaults;
    std::string error;
    std::vector<std::string> warnings;
    auto work = std::filesystem::path(self->env_.socket_dir) / "archives";
    if (!OpenModelArchive((std::filesystem::path(store) / url).string(), work.string(), &model,
                          &error, &warnings)) {
      return respond(Error(context, 400, "InvalidModelException", error));
    }
    for (const auto& w : warnings) spdlog::warn("{}", w);
    if (!model_name.empty()) model.name = model_name;
    if (batch_size > 0) model.batch_size = batch_size;
    if (max_batch_delay >= 0) model.max_batch_delay = std::chrono::milliseconds(max_batch_delay);
    if (response_timeout > 0) model.response_timeout = std::chrono::seconds(response_timeout);
    auto start_timeout = startup_timeout >= 0 ? std::chrono::milliseconds(startup_timeout * 1000)
                                              : self->env_.worker_start_timeout;
    auto entry = self->MakeEntry(model, start_timeout);
    entry->url = url;
    entry->loaded_at_startup = false;
    // The archive's extracted folder, when the archive was a file (a folder is used in place).
    auto inside = std::filesystem::path(model.path).lexically_relative(work);
    if (!inside.empty() && *inside.begin() != "..")
      entry->work_dir = (work / *inside.begin()).string();
    if (!handler.empty() && !ParseHandlerName(handler)) {
      entry->refusal = "handler \"" + handler +
                       "\" cannot run in sg-serve: it runs TorchScript models with its built-in "
                       "handlers only (image_classifier, image_scorer, tensor)";
    }
    if (!self->AddModel(entry)) {
      return respond(Error(
          context, 409, "ConflictStatusException",
          "Model version " + model.version + " for model " + model.name + " already registered."));
    }
    std::string registered = "Model \"" + model.name + "\" Version: " + model.version;
    if (initial == 0) {
      return respond(Status200(context, 200,
                               registered +
                                   " registered with 0 initial workers. Use scale workers API to "
                                   "add workers for the model."));
    }
    bool ok = self->Scale(entry, initial, &error) != ScaleResult::kRefused;
    if (!synchronous) {
      if (!ok) spdlog::error("model {}: cannot start workers: {}", model.name, error);
      return respond(Status200(context, 202, "Processing worker updates..."));
    }
    if (ok) {
      ok = entry->pool->WaitReady(
          std::chrono::steady_clock::now() + start_timeout + std::chrono::seconds(10), &error);
    }
    if (!ok) {
      // As TorchServe: a model whose initial workers fail is unregistered again.
      self->RemoveModel(model.name, model.version);
      return respond(
          Error(context, 500, "InternalServerException", "Failed to start workers: " + error));
    }
    respond(
        Status200(context, 200,
                  registered + " registered with " + std::to_string(initial) + " initial workers"));
  });
}

}  // namespace sg::serve
