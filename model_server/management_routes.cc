#include "model_server/serve_routes.h"

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "model_server/handler.h"

namespace sg::serve {

void ServeServer::Routes::Management(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  if (path.empty() || path[0] != "models" || path.size() > 3) return respond(NotFound(request));
  if (path.size() == 1) {
    if (request.method() != bhttp::verb::get) return respond(MethodNotAllowed(request));
    nlohmann::json models = nlohmann::json::array();
    for (const auto& p : self->pools_) {
      models.push_back({{"modelName", p->model().name}, {"modelUrl", p->model().path}});
    }
    return respond(http::MakeJsonResponse(request, Status::ok, {{"models", models}}));
  }
  size_t index = self->pools_.size();
  for (size_t i = 0; i < self->pools_.size(); ++i) {
    if (self->pools_[i]->model().name == path[1]) index = i;
  }
  if (index == self->pools_.size()) {
    return respond(Error(request, 404, "ModelNotFoundException", "Model not found: " + path[1]));
  }
  auto& pool = *self->pools_[index];
  if (path.size() == 3 && path[2] != pool.model().version && path[2] != "all") {
    return respond(Error(request, 404, "ModelNotFoundException",
                         "Model version: " + path[2] + " does not exist for model: " + path[1]));
  }
  if (request.method() == bhttp::verb::get) {
    return respond(
        http::MakeJsonResponse(request, Status::ok, nlohmann::json::array({pool.Describe()})));
  }
  if (request.method() != bhttp::verb::put) return respond(MethodNotAllowed(request));
  std::string text = QueryParam(query, "min_worker");
  int workers = 0;
  try {
    size_t used = 0;
    workers = std::stoi(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
  } catch (const std::exception&) {
    return respond(Error(request, 400, "BadRequestException",
                         "min_worker must be a positive integer, got \"" + text + "\""));
  }
  if (workers < 1 || workers > 1024) {
    return respond(
        Error(request, 400, "BadRequestException", "min_worker must be in [1, 1024], got " + text));
  }
  bool synchronous = QueryParam(query, "synchronous") == "true";
  std::string name = pool.model().name;
  auto context = ReplyContext(request);
  std::lock_guard lock(self->threads_mutex_);
  self->background_.emplace_back([self, name, workers, synchronous, context, respond] {
    self->Replan(name, workers);
    if (synchronous) {
      respond(http::MakeJsonResponse(
          context, Status::ok,
          {{"status", "Workers scaled to " + std::to_string(workers) + " for model: " + name}}));
    }
  });
  if (!synchronous) {
    respond(http::MakeJsonResponse(request, Status::accepted,
                                   {{"status", "Processing worker updates..."}}));
  }
}

}  // namespace sg::serve
