#include "gateway/header_rules.h"

#include <algorithm>
#include <array>
#include <random>

#include <boost/beast/core/string.hpp>

#include "common/strings.h"

namespace sg::gateway {
namespace {

bool IsDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Every value of `name`, each split on commas and trimmed (empty items kept as "").
std::vector<std::string> ListValues(const http::fields& fields, http::field name) {
  std::vector<std::string> items;
  auto [begin, end] = fields.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    for (const auto& item : Split(it->value(), ',')) items.emplace_back(Trim(item));
  }
  return items;
}

}  // namespace

void RemoveHopByHop(http::fields& fields) {
  // One pass finds what goes (usually only Connection, or nothing), without allocating for the
  // headers that stay: this runs twice per proxied request.
  static constexpr std::array kHopByHop = {
      http::field::connection, http::field::keep_alive,        http::field::te,
      http::field::trailer,    http::field::transfer_encoding, http::field::upgrade,
  };
  auto fixed_index = [](http::field id) {
    return static_cast<size_t>(std::find(kHopByHop.begin(), kHopByHop.end(), id) -
                               kHopByHop.begin());
  };
  unsigned present = 0;            // bit i: kHopByHop[i] is there (each is erased by one lookup)
  std::vector<std::string> named;  // named by Connection (RFC 9110 section 7.6.1), or Proxy-*
  for (const auto& field : fields) {
    if (field.name() == http::field::connection) {
      // Each comma-separated token of Connection names a hop-by-hop header too.
      std::string_view value = field.value();
      while (!value.empty()) {
        auto comma = value.find(',');
        auto token = Trim(value.substr(0, comma));
        value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
        // Content-Length is never taken out: it frames the message end to end, and a streamed
        // body sent without it would be read upstream as the next request (smuggling). Nor is
        // Host: an HTTP/1.1 request forwarded without it is one the primary must refuse, and a
        // client must not be able to make the gateway send what it refuses to take itself.
        auto id = http::string_to_field(token);
        if (!token.empty() && id != http::field::content_length && id != http::field::host &&
            fixed_index(id) == kHopByHop.size()) {
          named.emplace_back(token);
        }
      }
    }
    if (size_t i = fixed_index(field.name()); i < kHopByHop.size()) {
      present |= 1u << i;
      continue;
    }
    auto name = field.name_string();
    if (name.size() >= 6 && boost::beast::iequals(name.substr(0, 6), "proxy-")) {
      named.emplace_back(std::string_view(name));
    }
  }
  for (size_t i = 0; i < kHopByHop.size(); ++i) {
    if (present & (1u << i)) fields.erase(kHopByHop[i]);
  }
  for (const auto& name : named) fields.erase(name);
}

void SetForwardedHeaders(http::fields& fields, std::string_view client_ip, std::string_view proto) {
  // One pass over the request's (few) headers finds what is there, usually none of the three:
  // then they are plain inserts, with no lookups by name (each is a tree search).
  std::string forwarded_for;
  std::string_view host;
  bool has_host = false, had_for = false, had_proto = false, had_host = false;
  for (const auto& field : fields) {
    if (field.name() == http::field::host) {
      if (!has_host) host = field.value();
      has_host = true;
      continue;
    }
    auto name = field.name_string();
    if (boost::beast::iequals(name, "X-Forwarded-For")) {
      if (!forwarded_for.empty()) forwarded_for += ", ";
      forwarded_for += field.value();
      had_for = true;
    } else if (boost::beast::iequals(name, "X-Forwarded-Proto")) {
      had_proto = true;
    } else if (boost::beast::iequals(name, "X-Forwarded-Host")) {
      had_host = true;
    }
  }
  if (!forwarded_for.empty()) forwarded_for += ", ";
  forwarded_for += client_ip;
  // Erasing other headers leaves the Host element (and `host`) where it is.
  if (had_for) fields.erase("X-Forwarded-For");
  if (had_proto) fields.erase("X-Forwarded-Proto");
  if (had_host) fields.erase("X-Forwarded-Host");
  fields.insert("X-Forwarded-For", forwarded_for);
  fields.insert("X-Forwarded-Proto", proto);
  if (has_host) fields.insert("X-Forwarded-Host", host);
}

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (unsigned char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string GenerateRequestId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  uint64_t a = random();
  uint64_t b = random();
  for (int i = 0; i < 16; ++i) {
    id[i] = kHex[(a >> (i * 4)) & 0xf];
    id[16 + i] = kHex[(b >> (i * 4)) & 0xf];
  }
  return id;
}

std::string EnsureRequestId(http::fields& fields) {
  auto [begin, end] = fields.equal_range("X-Request-Id");
  if (begin != end && std::next(begin) == end && IsValidRequestId(begin->value())) {
    return std::string(begin->value());
  }
  std::string id = GenerateRequestId();
  if (begin != end) fields.erase("X-Request-Id");  // invalid or repeated
  fields.insert("X-Request-Id", id);
  return id;
}

namespace {

// The one rule of what a mirror copy leaves out of the primary's fields: the `redact` headers and
// any `shadow_header` the client sent (the copy's own comes last).
bool LeftOutOfShadowCopy(boost::beast::string_view name, const std::vector<std::string>& redact,
                         const std::string& shadow_header) {
  if (!shadow_header.empty() && boost::beast::iequals(name, shadow_header)) return true;
  for (const auto& r : redact) {
    if (boost::beast::iequals(name, r)) return true;
  }
  return false;
}

}  // namespace

void PrepareShadowHeaders(http::fields& fields, const std::vector<std::string>& redact,
                          const std::string& shadow_header) {
  for (auto it = fields.begin(); it != fields.end();) {
    it = LeftOutOfShadowCopy(it->name_string(), redact, shadow_header) ? fields.erase(it)
                                                                       : std::next(it);
  }
  if (!shadow_header.empty()) fields.insert(shadow_header, "1");
}

std::size_t ScanRequestHeader(std::string_view bytes, std::size_t* scanned, bool* obs_fold) {
  // Each line end decides from the one or two bytes after it: an empty line ends the header, a
  // line starting with whitespace is a fold. Without them yet, the scan resumes at this LF.
  for (std::size_t at = *scanned;;) {
    std::size_t lf = bytes.find('\n', at);
    if (lf == std::string_view::npos) {
      *scanned = bytes.size();
      return 0;
    }
    *scanned = lf;
    if (lf + 1 >= bytes.size()) return 0;
    char next = bytes[lf + 1];
    if (next == '\n') return lf + 2;
    if (next == '\r') {
      if (lf + 2 >= bytes.size()) return 0;
      if (bytes[lf + 2] == '\n') return lf + 3;
    }
    if (next == ' ' || next == '\t') *obs_fold = true;
    at = lf + 1;
  }
}

std::string CheckRequestFraming(const http::request_header<>& head) {
  const http::fields& fields = head;
  bool has_length = fields.count(http::field::content_length) > 0;
  bool has_encoding = fields.count(http::field::transfer_encoding) > 0;
  if (has_encoding && head.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  if (has_length && has_encoding) return "both Content-Length and Transfer-Encoding";
  if (has_length) {
    std::string first;
    for (const auto& value : ListValues(fields, http::field::content_length)) {
      if (!IsDigits(value) || value.size() > 18) return "malformed Content-Length";
      if (first.empty()) {
        first = value;
      } else if (std::stoull(value) != std::stoull(first)) {
        return "differing Content-Length values";
      }
    }
  }
  if (has_encoding) {
    auto codings = ListValues(fields, http::field::transfer_encoding);
    if (codings.size() != 1 || ToLowerAscii(codings[0]) != "chunked") {
      return "unsupported Transfer-Encoding (only a single \"chunked\")";
    }
  }
  return {};
}

std::string CheckRequestHost(const http::request_header<>& head) {
  auto hosts = head.count(http::field::host);
  if (hosts == 0 && head.version() >= 11) return "no Host in an HTTP/1.1 request";
  if (hosts > 1) return "more than one Host";
  // Every request the gateway takes is for an http URI, whose authority may not be empty (RFC
  // 9110 section 4.2.1: a recipient must reject it); nginx answers 400 too.
  if (hosts == 1 && Trim(head[http::field::host]).empty()) return "empty Host";
  return {};
}

namespace {

void AppendVersion(unsigned version, std::string* out) {
  out->append("HTTP/");
  out->push_back(static_cast<char>('0' + version / 10));
  out->push_back('.');
  out->push_back(static_cast<char>('0' + version % 10));
}

void AppendField(boost::beast::string_view name, boost::beast::string_view value,
                 std::string* out) {
  out->append(name.data(), name.size());
  out->append(": ");
  out->append(value.data(), value.size());
  out->append("\r\n");
}

void AppendFields(const http::fields& fields, std::string* out) {
  for (const auto& field : fields) AppendField(field.name_string(), field.value(), out);
  out->append("\r\n");
}

void AppendRequestLine(const http::request_header<>& head, std::string* out) {
  auto method = head.method_string();
  auto target = head.target();
  out->append(method.data(), method.size());
  out->push_back(' ');
  out->append(target.data(), target.size());
  out->push_back(' ');
  AppendVersion(head.version(), out);
  out->append("\r\n");
}

}  // namespace

void AppendHead(const http::request_header<>& head, std::string* out) {
  AppendRequestLine(head, out);
  AppendFields(head, out);
}

void AppendShadowHead(const http::request_header<>& head, const std::vector<std::string>& redact,
                      const std::string& shadow_header, std::string* out) {
  AppendRequestLine(head, out);
  for (const auto& field : head) {
    if (LeftOutOfShadowCopy(field.name_string(), redact, shadow_header)) continue;
    AppendField(field.name_string(), field.value(), out);
  }
  if (!shadow_header.empty()) AppendField(shadow_header, "1", out);
  out->append("\r\n");
}

void AppendHead(const http::response_header<>& head, std::string* out) {
  AppendVersion(head.version(), out);
  out->push_back(' ');
  unsigned status = head.result_int();
  char digits[3] = {static_cast<char>('0' + status / 100 % 10),
                    static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10)};
  out->append(digits, 3);
  out->push_back(' ');
  auto reason = head.reason();
  out->append(reason.data(), reason.size());
  out->append("\r\n");
  AppendFields(head, out);
}

}  // namespace sg::gateway
