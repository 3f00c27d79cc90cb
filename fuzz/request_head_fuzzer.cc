// libFuzzer target: the gateway's request head, read as ProxySession reads it (ScanRequestHeader,
// then Beast's request_parser fed the whole header in one put, then the framing and Host
// checks), and the header rules applied to what passes, on both the buffered and the streamed
// path. An input starting with "HTTP/" is an upstream's response head instead (relayed with
// RemoveHopByHop and AppendHead). Oracles besides "no crash":
//  - ScanRequestHeader fed the bytes piece by piece finds what one call over all of them finds;
//  - the parser takes exactly the scanned header (nothing of it is left to be read as body);
//  - AppendHead writes byte for byte what Beast's serializer writes, and AppendShadowHead what
//    AppendHead writes for a copy shaped by PrepareShadowHeaders;
//  - the head sent upstream parses back (Beast, ScanRequestHeader, the gateway's own checks) to
//    the same start line, fields and framing: no field or request is injected, none of the
//    hop-by-hop fields is left, and the body is delimited upstream as the client delimited it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/strings.h"
#include "gateway/header_rules.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using sg::gateway::AppendHead;
using sg::gateway::AppendShadowHead;

// The gateway's defaults (gateway/gateway_config.h).
constexpr uint32_t kMaxHeaderBytes = 16 << 10;
constexpr uint64_t kMaxBodyBytes = 16 << 20;
const std::vector<std::string> kRedact = {"authorization", "cookie", "proxy-authorization"};
const std::string kShadowHeader = "X-Shadow-Request";

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "request_head_fuzzer: %s\n%.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

template <bool isRequest>
std::string BeastHead(const http::header<isRequest>& head) {
  std::ostringstream out;
  out << head;  // the start line and fields as Beast's serializer writes them
  return out.str();
}

// The fields as a list of (name as sent, value).
std::vector<std::pair<std::string, std::string>> Fields(const http::fields& fields) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& field : fields)
    out.emplace_back(std::string_view(field.name_string()), std::string_view(field.value()));
  return out;
}

bool IsHopByHop(std::string_view name) {
  std::string lower = sg::ToLowerAscii(name);
  return lower == "connection" || lower == "keep-alive" || lower == "te" || lower == "trailer" ||
         lower == "transfer-encoding" || lower == "upgrade" || lower.rfind("proxy-", 0) == 0;
}

// One-call scan against a scan fed `step` more bytes at a time, as the session reads them.
void CheckIncrementalScan(std::string_view bytes, std::size_t end, bool obs_fold,
                          std::size_t step) {
  std::size_t scanned = 0;
  bool fold = false;
  for (std::size_t have = std::min(step, bytes.size());;
       have = std::min(have + step, bytes.size())) {
    std::size_t found = sg::gateway::ScanRequestHeader(bytes.substr(0, have), &scanned, &fold);
    if (found != 0 || have == bytes.size()) {
      if (found != end || (found != 0 && fold != obs_fold)) Fail("incremental scan differs", bytes);
      return;
    }
  }
}

// What the upstream receives for `head` parses back to the same request.
void CheckSentUpstream(const http::request_header<>& head, bool chunked,
                       std::optional<uint64_t> length) {
  std::string text;
  AppendHead(head, &text);
  if (text != BeastHead(head)) Fail("AppendHead differs from Beast's serializer", text);

  std::size_t scanned = 0;
  bool fold = false;
  if (sg::gateway::ScanRequestHeader(text, &scanned, &fold) != text.size() || fold) {
    Fail("the head sent upstream does not scan as one header", text);
  }
  http::request_parser<http::empty_body> parser;
  parser.header_limit(std::numeric_limits<uint32_t>::max());
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  beast::error_code ec;
  std::size_t used = parser.put(boost::asio::buffer(text.data(), text.size()), ec);
  if (ec || used != text.size() || !parser.is_header_done()) {
    Fail("the head sent upstream does not parse back", text + "\n" + ec.message());
  }
  const auto& back = parser.get();
  if (back.method_string() != head.method_string() || back.target() != head.target() ||
      back.version() != head.version() || Fields(back) != Fields(head)) {
    Fail("the head sent upstream parses back to another request", text);
  }
  std::optional<uint64_t> back_length;
  if (parser.content_length()) back_length = *parser.content_length();
  if (parser.chunked() != chunked || back_length != length) {
    Fail("the body is delimited differently upstream", text);
  }
  if (!sg::gateway::CheckRequestFraming(back).empty()) {
    Fail("the head sent upstream has a framing the gateway refuses", text);
  }
  for (const auto& field : back) {
    if (IsHopByHop(field.name_string()) &&
        !(chunked && field.name() == http::field::transfer_encoding) &&
        field.name() != http::field::connection) {
      Fail("a hop-by-hop field is sent upstream", text);
    }
  }

  // The mirror copy's head.
  std::string shadow;
  AppendShadowHead(head, kRedact, kShadowHeader, &shadow);
  http::request_header<> copy = head;
  sg::gateway::PrepareShadowHeaders(copy, kRedact, kShadowHeader);
  std::string expected;
  AppendHead(copy, &expected);
  if (shadow != expected) Fail("AppendShadowHead differs from PrepareShadowHeaders", shadow);
}

// The header rules of ProxySession::HandleRequest (buffered) and StartStreamed (streamed).
template <class Body>
void ShapeUpstream(http::request<Body>& head) {
  sg::gateway::RemoveHopByHop(head);
  head.erase(http::field::expect);
  head.erase(kShadowHeader);
  std::string id = sg::gateway::EnsureRequestId(head);
  if (!sg::gateway::IsValidRequestId(id) || head.count("X-Request-Id") != 1 ||
      std::string_view(head["X-Request-Id"]) != id) {
    Fail("EnsureRequestId left no single valid id");
  }
  sg::gateway::SetForwardedHeaders(head, "127.0.0.1", "http");
  if (head.count("X-Forwarded-For") != 1 || head.count("X-Forwarded-Proto") != 1 ||
      head.count("X-Forwarded-Host") > 1) {
    Fail("SetForwardedHeaders left more than one of a kind");
  }
  head.version(11);
  head.keep_alive(true);
}

void Request(std::string_view bytes) {
  // ProxySession::ParseHeader: scan, then the whole header in one put.
  std::size_t scanned = 0;
  bool obs_fold = false;
  std::size_t end = sg::gateway::ScanRequestHeader(bytes, &scanned, &obs_fold);
  CheckIncrementalScan(bytes, end, obs_fold, 1);
  CheckIncrementalScan(bytes, end, obs_fold, 13);
  if (end == 0 || obs_fold) return;  // incomplete (431 or 408 in the end), or 400

  http::request_parser<http::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(kMaxBodyBytes);
  beast::error_code ec;
  std::size_t used = parser.put(boost::asio::buffer(bytes.data(), end), ec);
  if (ec == http::error::need_more || (!ec && !parser.is_header_done())) return;  // bare LF: 400
  if (ec) return;
  if (used != end) Fail("the parser left part of the scanned header", bytes.substr(0, end));
  const auto& request = parser.get();
  if (!sg::gateway::CheckRequestFraming(request.base()).empty()) return;
  if (!sg::gateway::CheckRequestHost(request.base()).empty()) return;
  bool chunked = parser.chunked();
  std::optional<uint64_t> length;
  if (parser.content_length()) length = *parser.content_length();
  // The head before the body (the session moves it out first: trailers never join it).
  const http::request_header<> head = request.base();

  // Streamed: the client's framing is kept.
  http::request<http::empty_body> streamed;
  streamed.base() = head;
  ShapeUpstream(streamed);
  if (chunked) streamed.chunked(true);
  CheckSentUpstream(streamed.base(), chunked, length);

  // Buffered: the rest of the bytes are the body (as far as they go), framed afresh.
  std::string_view rest = bytes.substr(end);
  while (!parser.is_done() && !rest.empty()) {
    used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    if (ec == http::error::need_more) ec = {};
    if (ec) return;
    if (used == 0) break;
    rest.remove_prefix(used);
  }
  if (!parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) return;
  http::request<http::string_body> buffered;
  buffered.base() = head;
  buffered.body() = std::move(parser.get().body());
  ShapeUpstream(buffered);
  buffered.prepare_payload();
  std::optional<uint64_t> buffered_length;
  if (buffered.has_content_length()) buffered_length = buffered.body().size();
  CheckSentUpstream(buffered.base(), false, buffered_length);
}

// ProxySession::DoResponseHeaderRead and StartRelayResponse: an upstream's response head.
void Response(std::string_view bytes) {
  http::response_parser<http::empty_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  beast::error_code ec;
  parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !parser.is_header_done()) return;
  http::response_header<> head = parser.get().base();
  std::string text;
  AppendHead(head, &text);
  if (text != BeastHead(head)) Fail("AppendHead (response) differs from Beast's serializer", text);
  sg::gateway::RemoveHopByHop(head);
  head.version(11);
  head.set("X-Request-Id", "0123456789abcdef0123456789abcdef");
  text.clear();
  AppendHead(head, &text);
  if (text != BeastHead(head)) Fail("AppendHead (relayed) differs from Beast's serializer", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (bytes.substr(0, 5) == "HTTP/") {
    Response(bytes);
  } else {
    Request(bytes);
  }
  return 0;
}
