#include "gateway/routing.h"

#include <algorithm>

#include "common/strings.h"

namespace sg::gateway {

std::optional<HostHeader> SplitHostHeader(std::string_view host) {
  host = Trim(host);
  std::string_view name = host;
  std::optional<std::string> port;
  if (name.starts_with('[')) {
    auto close = name.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    if (close + 1 < name.size()) {
      if (name[close + 1] != ':') return std::nullopt;
      port = std::string(name.substr(close + 2));
    }
    name = name.substr(0, close + 1);
  } else if (auto colon = name.find(':'); colon != std::string_view::npos) {
    port = std::string(name.substr(colon + 1));
    name = name.substr(0, colon);
  }
  if (name.empty()) return std::nullopt;
  return HostHeader{ToLowerAscii(name), std::move(port)};
}

std::string NormalizeHost(std::string_view host) {
  auto split = SplitHostHeader(host);
  return split ? std::move(split->name) : std::string();
}

RouteTable::RouteTable(const std::vector<RouteConfig>& routes) {
  for (const auto& route : routes) {
    entries_.push_back({route.hosts, route.path_prefix, route.methods});
  }
}

int RouteTable::Match(std::string_view host, std::string_view path, std::string_view method) const {
  std::string normalized = NormalizeHost(host);
  int best = -1;
  size_t best_length = 0;
  bool best_named = false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const auto& entry = entries_[i];
    bool named = !entry.hosts.empty();
    if (named &&
        std::find(entry.hosts.begin(), entry.hosts.end(), normalized) == entry.hosts.end()) {
      continue;
    }
    if (!path.starts_with(entry.prefix)) continue;
    if (!entry.methods.empty() &&
        std::find(entry.methods.begin(), entry.methods.end(), method) == entry.methods.end()) {
      continue;
    }
    size_t length = entry.prefix.size();
    bool better =
        best < 0 || length > best_length || (length == best_length && named && !best_named);
    if (better) {
      best = static_cast<int>(i);
      best_length = length;
      best_named = named;
    }
  }
  return best;
}

}  // namespace sg::gateway
