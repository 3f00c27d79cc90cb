// The target URL ("http://HOST[:PORT][/PATH][?QUERY]"), parsed with Boost.URL (RFC 3986); only
// plain HTTP is supported.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sg::load {

struct HttpUrl {
  std::string host;            // as the resolver takes it: "::1" for [::1], names lower-cased
  std::string port = "80";     // digits, 1-65535; "80" when the URL names none
  std::string target = "/";    // path and query exactly as written (percent escapes kept)
  bool ipv6 = false;           // the host is an IPv6 literal, written in brackets in Host
  bool explicit_port = false;  // the URL names its port (requests keeps it in the URL)

  // "host:port" or "[::1]:port", always with the port (for messages).
  std::string HostPort() const;
  // The Host header, as curl sends it: "host", "host:port", "[::1]:port"; no port when it is 80.
  std::string HostHeader() const;
  // The URL as Python's requests normalises it (scheme and host lower-cased, the port when the
  // URL names one, no fragment): the URL in Locust's HTTPError texts.
  std::string Normalized() const;
};

// nullopt with `error` for anything but http://HOST[:PORT][/TARGET]: https (sg-load speaks plain
// HTTP), user info, an IPvFuture host, a bad port, or text that is not a URL. The scheme is
// case-insensitive (HTTP:// is http://); a #fragment is dropped, as curl drops it.
std::optional<HttpUrl> ParseHttpUrl(std::string_view url, std::string* error);

}  // namespace sg::load
