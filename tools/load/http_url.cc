#include "tools/load/http_url.h"

#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "common/strings.h"

namespace sg::load {

namespace {

std::string Bracketed(const HttpUrl& url) {
  return url.ipv6 ? "[" + url.host + "]" : url.host;
}

}  // namespace

std::string HttpUrl::HostPort() const {
  return Bracketed(*this) + ":" + port;
}

std::string HttpUrl::HostHeader() const {
  return port == "80" ? Bracketed(*this) : HostPort();
}

std::string HttpUrl::Normalized() const {
  return "http://" + (explicit_port ? HostPort() : Bracketed(*this)) + target;
}

std::optional<HttpUrl> ParseHttpUrl(std::string_view text, std::string* error) {
  auto fail = [&](const std::string& why) {
    *error = why + " (got \"" + std::string(text) + "\")";
    return std::nullopt;
  };
  boost::system::result<boost::urls::url_view> parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    return fail("URL must be http://HOST[:PORT][/PATH]: it does not parse as a URL, " +
                parsed.error().message());
  }
  const boost::urls::url_view& url = *parsed;
  if (url.scheme_id() == boost::urls::scheme::https) {
    return fail("URL must start with http://: sg-load speaks plain HTTP, not https");
  }
  if (url.scheme_id() != boost::urls::scheme::http) return fail("URL must start with http://");
  if (!url.has_authority()) return fail("URL has no host");
  if (url.has_userinfo()) {
    return fail(
        "URL user info (user:password@) is not supported: send credentials with "
        "--header \"Authorization: ...\"");
  }
  HttpUrl result;
  switch (url.host_type()) {
    case boost::urls::host_type::ipv6:
      result.ipv6 = true;
      result.host = url.host_address();
      break;
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::name:
      result.host = ToLowerAscii(url.host_address());
      break;
    default:
      return fail("URL host must be a name, an IPv4 address or an [IPv6] address");
  }
  if (result.host.empty()) return fail("URL has no host");
  // An empty port ("http://h:/") is the scheme's default (RFC 3986 section 6.2.3).
  if (url.has_port() && !url.port().empty()) {
    std::string_view port = url.port();
    int number = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (ec != std::errc() || end != port.data() + port.size() || number < 1 || number > 65535) {
      return fail("URL port must be 1-65535");
    }
    result.port = std::to_string(number);
    result.explicit_port = true;
  }
  // After an authority the path is empty or starts with "/" (RFC 3986 path-abempty); Boost.URL
  // 1.81 lets "http://h:12x/" through as port 12 and path "x/", so the port's junk shows here.
  std::string_view path = url.encoded_path();
  if (!path.empty() && path[0] != '/') return fail("URL port must be 1-65535");
  result.target = std::string(url.encoded_target());
  if (path.empty()) result.target.insert(result.target.begin(), '/');  // "http://h?q": "/?q"
  return result;
}

}  // namespace sg::load
