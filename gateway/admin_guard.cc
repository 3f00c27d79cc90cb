#include "gateway/admin_guard.h"

#include <algorithm>
#include <charconv>

#include "common/strings.h"
#include "gateway/routing.h"

namespace sg::gateway {

bool ConstantTimeEquals(std::string_view presented, std::string_view expected) {
  // Every byte of `expected` is looked at whatever `presented` holds, so the time tells an
  // attacker nothing about how much of a guess was right (only the token's length, fixed).
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= static_cast<unsigned char>(p ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

AdminGuard::AdminGuard(const AdminConfig& config, uint16_t port) : config_(config), port_(port) {}

bool AdminGuard::HostAllowed(std::string_view host) const {
  auto split = SplitHostHeader(host);
  if (!split) return false;
  if (const auto& port = split->port) {
    unsigned number = 0;
    auto [end, ec] = std::from_chars(port->data(), port->data() + port->size(), number);
    if (port->empty() || ec != std::errc() || end != port->data() + port->size() ||
        number != port_) {
      return false;
    }
  }
  const auto& allowed = config_.allowed_hosts;
  return std::find(allowed.begin(), allowed.end(), "*") != allowed.end() ||
         std::find(allowed.begin(), allowed.end(), split->name) != allowed.end();
}

std::optional<AdminRefusal> AdminGuard::Check(std::string_view path,
                                              std::optional<std::string_view> host,
                                              std::optional<std::string_view> authorization) const {
  if (!host || !HostAllowed(*host)) {
    return AdminRefusal{
        421, "the admin listener does not answer for this Host (admin.allowed_hosts)", ""};
  }
  if (config_.token.empty() || path == "/healthz" || path == "/readyz") return std::nullopt;
  static constexpr std::string_view kScheme = "bearer ";
  static const std::string kChallenge = "Bearer realm=\"shadowgate-admin\"";
  if (!authorization) {
    return AdminRefusal{401, "the admin API needs \"Authorization: Bearer <token>\"", kChallenge};
  }
  std::string_view value = Trim(*authorization);
  bool bearer =
      value.size() > kScheme.size() && ToLowerAscii(value.substr(0, kScheme.size())) == kScheme;
  if (!bearer || !ConstantTimeEquals(Trim(value.substr(kScheme.size())), config_.token)) {
    return AdminRefusal{401, "wrong admin token", kChallenge + ", error=\"invalid_token\""};
  }
  return std::nullopt;
}

}  // namespace sg::gateway
