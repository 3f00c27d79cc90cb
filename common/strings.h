// Small string helpers shared by the modules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// Shortest text that reads back as the same double; NaN, +Inf and -Inf as Prometheus writes them.
std::string FormatDouble(double value);

// `value` with `decimals` digits after the point ("%.*f"), as tables and progress lines print it.
std::string Fixed(double value, int decimals);

// Unix epoch seconds as UTC, in strftime's `format` ("%Y-%m-%dT%H:%M:%SZ"): the one place the
// project turns a time into calendar text.
std::string FormatUtc(int64_t unix_seconds, const char* format);

// Unix epoch microseconds as UTC with milliseconds: "2026-12-07T08:30:00.123Z".
std::string FormatUtcMicros(int64_t unix_us);

// Lower-cases ASCII letters.
std::string ToLowerAscii(std::string_view text);

// Splits on `separator`, keeping empty fields.
std::vector<std::string> Split(std::string_view text, char separator);

// Removes leading and trailing spaces and tabs.
std::string_view Trim(std::string_view text);

// A listen or upstream address: a host (a name, an IPv4 literal, or an IPv6 literal without its
// brackets) and a port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
  // "host:port", "[::1]:port" for an IPv6 literal.
  std::string ToString() const;
};

// Parses "host:port" or "[IPv6]:port" (every module's addresses: the gateway's listen, admin and
// upstream endpoints, sg-serve's listeners). nullopt when the host is empty, an IPv6 literal
// lacks its brackets ("::1:80"), or the port is missing, not all digits or over 65535.
std::optional<HostPort> ParseHostPort(std::string_view text);

}  // namespace sg
