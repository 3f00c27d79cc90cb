// CutoverAdmin: the admin endpoints of the routes' progressive cutovers (docs/gateway.md,
// "Progressive cutover"), as plain functions of a request (testable without sockets):
//
//   GET  /admin/routes/{route}/cutover           the state (200 JSON)
//   PUT  /admin/routes/{route}/cutover           {"share": x}: a manual share, PAUSED
//   POST /admin/routes/{route}/cutover/{action}  start, pause, resume, promote, rollback
//   POST /admin/routes/{route}/cutover/report[?name=NAME]  cutover.json/.md/.html into
//        <report_dir>/NAME (201; default name cutover-<route>-<UTC time>; 403 without
//        report_dir, 409 when it exists)
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
  // `report_dir`: comparison.report_dir (empty: no reports).
  CutoverAdmin(std::vector<std::shared_ptr<Cutover>> cutovers, std::string report_dir)
      : cutovers_(std::move(cutovers)), report_dir_(std::move(report_dir)) {}

  // True for the paths (without query) that Handle() answers.
  static bool Matches(std::string_view path);
  // REQUIRES: Matches(the request's path).
  sg::http::Response Handle(const sg::http::Request& request) const;

 private:
  std::vector<std::shared_ptr<Cutover>> cutovers_;
  std::string report_dir_;
};

}  // namespace sg::gateway
