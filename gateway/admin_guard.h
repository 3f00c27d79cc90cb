// AdminGuard: who may use the admin listener. A plain function over a request's path, Host and
// Authorization, testable without a socket (docs/gateway.md, "Security model").
//
// - Host must name the gateway as the operator reaches it: one of `admin.allowed_hosts`
//   (default localhost, 127.0.0.1 and [::1]), with the admin listener's port or none. A page
//   whose name was re-bound to 127.0.0.1 (DNS rebinding) sends its own name and is refused with
//   421 before anything runs.
// - With `admin.token_file`, every path but /healthz and /readyz needs `Authorization: Bearer
//   <token>`, compared in constant time; missing or wrong: 401 with WWW-Authenticate.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/gateway_config.h"

namespace sg::gateway {

struct AdminRefusal {
  int status = 0;                // 421 (Host) or 401 (token)
  std::string message;           // for the JSON error body
  std::string www_authenticate;  // set with 401
};

class AdminGuard {
 public:
  // `port`: the admin listener's bound port (a Host's port must be this one).
  AdminGuard(const AdminConfig& config, uint16_t port);

  // nullopt when the request may proceed. `host`: the Host value, nullopt unless the request
  // has exactly one; `authorization`: the Authorization value, nullopt when absent.
  std::optional<AdminRefusal> Check(std::string_view path, std::optional<std::string_view> host,
                                    std::optional<std::string_view> authorization) const;

  // True when `host` (a Host header value) names an allowed host, with `port` or no port.
  bool HostAllowed(std::string_view host) const;

 private:
  const AdminConfig& config_;
  const uint16_t port_;
};

// Compares `presented` with `expected` in time that depends only on expected's length.
bool ConstantTimeEquals(std::string_view presented, std::string_view expected);

}  // namespace sg::gateway
