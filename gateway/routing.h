// Route selection: Host, then the longest path prefix, then the optional method list. A plain
// function over plain data, tested without sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/gateway_config.h"

namespace sg::gateway {

class RouteTable {
 public:
  explicit RouteTable(const std::vector<RouteConfig>& routes);

  // Index of the matching route, or -1. `host` is the Host header as sent (case and port are
  // ignored). Among routes whose host list accepts the host, whose prefix starts `path` and whose
  // method list (if any) holds `method`, the longest prefix wins; on a tie a route naming the host
  // beats a host-less one, then the earlier route wins.
  int Match(std::string_view host, std::string_view path, std::string_view method) const;

 private:
  struct Entry {
    std::vector<std::string> hosts;
    std::string prefix;
    std::vector<std::string> methods;
  };
  std::vector<Entry> entries_;
};

// A Host header split as RFC 9110 section 7.2 writes it: host [":" port], an IPv6 literal in
// brackets ("[::1]:9901"). `name` is lower-cased and keeps an IPv6 literal's brackets; `port` is
// the text after the colon, unchecked (the admin guard compares it with its own port). nullopt
// for an empty name or an unclosed or trailing-garbage IPv6 literal ("[::1", "[::1]x").
struct HostHeader {
  std::string name;
  std::optional<std::string> port;
};
std::optional<HostHeader> SplitHostHeader(std::string_view host);

// The name a route's `hosts` list is matched against: "Example.COM:8080" -> "example.com",
// "[::1]:80" -> "[::1]"; "" for a Host SplitHostHeader refuses (it matches no named route).
std::string NormalizeHost(std::string_view host);

}  // namespace sg::gateway
