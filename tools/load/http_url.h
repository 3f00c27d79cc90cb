// Parsing the target URL ("http://host:port/path?query"); only plain HTTP is supported.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sg::load {

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string target = "/";        // path and query, as sent in the request line
  std::string HostHeader() const;  // "host:port", or "host" when the port is 80
};

// nullopt with `error` for anything but http://HOST[:PORT][/TARGET] (https, user info, bad port).
std::optional<HttpUrl> ParseHttpUrl(std::string_view url, std::string* error);

}  // namespace sg::load
