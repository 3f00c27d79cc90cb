// CutoverAdmin: the admin endpoints of the routes' progressive cutovers (docs/gateway.md,
// "Progressive cutover"), as plain functions of a request (testable without sockets):
//
//   GET  /admin/routes/{route}/cutover           the state (200 JSON)
//   PUT  /admin/routes/{route}/cutover           {"share": x}: a manual share, PAUSED
//   POST /admin/routes/{route}/cutover/{action}  start, pause, resume, promote, rollback
//
// 404 for a route without a cutover, 409 when the state does not allow the action, 400 for a bad
// body, 405 for another method. Actions write the state file (a small fsync): call Handle() off
// the proxy's I/O threads.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/http_server.h"
#include "gateway/cutover.h"

namespace sg::gateway {

class CutoverAdmin {
 public:
  explicit CutoverAdmin(std::vector<std::shared_ptr<Cutover>> cutovers)
      : cutovers_(std::move(cutovers)) {}

  // True for the paths (without query) that Handle() answers.
  static bool Matches(std::string_view path);
  // REQUIRES: Matches(the request's path).
  sg::http::Response Handle(const sg::http::Request& request) const;

 private:
  std::vector<std::shared_ptr<Cutover>> cutovers_;
};

}  // namespace sg::gateway
