#include "model_server/serve_routes.h"

#include <boost/beast/http.hpp>

namespace sg::serve {

void ServeServer::Routes::Metrics(ServeServer* self, Request&& request, Responder respond) {
  std::string query;
  auto path = PathSegments(request.target(), &query);
  if (path.size() != 1 || path[0] != "metrics") return respond(NotFound(request));
  if (request.method() != bhttp::verb::get) return respond(MethodNotAllowed(request));
  respond(http::MakeTextResponse(request, Status::ok, self->registry_.Render(),
                                 kPrometheusContentType));
}

}  // namespace sg::serve
