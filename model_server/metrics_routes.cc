#include "model_server/serve_routes.h"

#include <set>

#include <boost/beast/http.hpp>

#include "model_server/ts_metrics.h"

namespace sg::serve {

// GET /metrics: TorchServe's metrics (ts_metrics.h), then sg-serve's own. `name[]=X` (repeated)
// keeps only the families named, as TorchServe's metrics API.
void ServeServer::Routes::Metrics(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  if (path.size() != 1 || path[0] != "metrics") return respond(NotFound(request));
  if (request.method() != bhttp::verb::get) return respond(MethodNotAllowed(request));
  std::set<std::string> names;
  for (const auto& kv : Split(query, '&')) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string key = kv.substr(0, eq);
    if (key == "name[]" || key == "name%5B%5D" || key == "name%5b%5d")
      names.insert(kv.substr(eq + 1));
  }
  const std::set<std::string>* filter = names.empty() ? nullptr : &names;
  std::string text = self->ts_metrics_->Render(filter);
  std::string own = self->registry_.Render();
  text += filter ? FilterMetricFamilies(own, names) : own;
  respond(http::MakeTextResponse(request, Status::ok, std::move(text), kPrometheusContentType));
}

}  // namespace sg::serve
