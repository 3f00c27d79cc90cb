#include "tools/load/http_url.h"

#include <charconv>

namespace sg::load {

std::string HttpUrl::HostHeader() const {
  return port == "80" ? host : host + ":" + port;
}

std::optional<HttpUrl> ParseHttpUrl(std::string_view url, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    *error = "URL must start with http:// (got \"";
    *error += url;
    *error += "\")";
    return std::nullopt;
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpUrl parsed;
  if (slash != std::string_view::npos) {
    parsed.target = std::string(rest.substr(slash));
    if (parsed.target[0] == '?') parsed.target.insert(parsed.target.begin(), '/');
  }
  if (authority.find('@') != std::string_view::npos) {
    *error = "URL user info is not supported";
    return std::nullopt;
  }
  std::string_view host = authority;
  if (!authority.empty() && authority[0] == '[') {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *error = "URL has an unterminated [IPv6] host";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        *error = "URL has junk after the [IPv6] host";
        return std::nullopt;
      }
      parsed.port = std::string(after.substr(1));
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    parsed.port = std::string(authority.substr(colon + 1));
  }
  if (host.empty()) {
    *error = "URL has no host";
    return std::nullopt;
  }
  int port = 0;
  auto [end, ec] =
      std::from_chars(parsed.port.data(), parsed.port.data() + parsed.port.size(), port);
  if (ec != std::errc() || end != parsed.port.data() + parsed.port.size() || port < 1 ||
      port > 65535) {
    *error = "URL port must be 1-65535 (got \"" + parsed.port + "\")";
    return std::nullopt;
  }
  parsed.host = std::string(host);
  return parsed;
}

}  // namespace sg::load
