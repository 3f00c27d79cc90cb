#include "gateway/header_rules.h"

#include <sstream>

#include <gtest/gtest.h>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace sg::gateway {
namespace {

std::string Get(const http::fields& f, const std::string& name) {
  auto it = f.find(name);
  return it == f.end() ? "<none>" : std::string(it->value());
}

TEST(HeaderRulesTest, RemovesHopByHopAndHeadersNamedByConnection) {
  http::fields f;
  f.insert(http::field::connection, "keep-alive, X-Secret-Hop");
  f.insert(http::field::connection, "Other");
  f.insert("X-Secret-Hop", "1");
  f.insert("Other", "1");
  f.insert(http::field::keep_alive, "timeout=5");
  f.insert(http::field::te, "trailers");
  f.insert(http::field::trailer, "X");
  f.insert(http::field::transfer_encoding, "chunked");
  f.insert(http::field::upgrade, "websocket");
  f.insert("Proxy-Authorization", "Basic x");
  f.insert("Proxy-Connection", "keep-alive");
  f.insert(http::field::content_type, "text/plain");
  f.insert("X-Keep", "yes");
  RemoveHopByHop(f);
  int count = 0;
  for (const auto& field : f) {
    (void)field;
    ++count;
  }
  EXPECT_EQ(count, 2);
  EXPECT_EQ(Get(f, "content-type"), "text/plain");
  EXPECT_EQ(Get(f, "x-keep"), "yes");
}

TEST(HeaderRulesTest, RemovesOnlyTheHopByHopHeadersThere) {
  // Each kind that is there goes (duplicates too), whatever the case; the rest stay in order.
  http::fields f;
  f.insert("X-First", "1");
  f.insert(http::field::upgrade, "websocket");
  f.insert("UPGRADE", "h2c");
  f.insert("pRoXy-Anything", "x");
  f.insert("Proxy", "not hop-by-hop: no dash");
  f.insert(http::field::te, "trailers");
  f.insert("X-Last", "2");
  RemoveHopByHop(f);
  std::vector<std::string> left;
  for (const auto& field : f) left.emplace_back(field.name_string());
  EXPECT_EQ(left, (std::vector<std::string>{"X-First", "Proxy", "X-Last"}));
}

TEST(HeaderRulesTest, ContentLengthNamedByConnectionStays) {
  // Found by fuzz/request_head_fuzzer: "Connection: content-length" took the Content-Length out
  // of a streamed request's head, whose body then followed it unframed: the primary read the
  // body as a second request on a pooled connection (smuggling). The same for a response.
  http::fields f;
  f.insert(http::field::connection, "Content-Length, X-Hop");
  f.insert(http::field::content_length, "38");
  f.insert("X-Hop", "1");
  RemoveHopByHop(f);
  EXPECT_EQ(Get(f, "content-length"), "38");
  EXPECT_EQ(Get(f, "x-hop"), "<none>");
  EXPECT_EQ(Get(f, "connection"), "<none>");
}

TEST(HeaderRulesTest, HostNamedByConnectionStays) {
  // "Connection: host" took the Host out, and the gateway forwarded an HTTP/1.1 request without
  // one, which it would itself have refused with 400.
  http::fields f;
  f.insert(http::field::connection, "host");
  f.insert(http::field::host, "api.test");
  RemoveHopByHop(f);
  EXPECT_EQ(Get(f, "host"), "api.test");
  EXPECT_EQ(Get(f, "connection"), "<none>");
}

TEST(HeaderRulesTest, ForwardedHeadersAppendClientAddress) {
  http::fields f;
  f.insert(http::field::host, "api.example:8080");
  f.insert("X-Forwarded-For", "10.0.0.1");
  f.insert("X-Forwarded-For", "10.0.0.2");
  SetForwardedHeaders(f, "127.0.0.1", "http");
  EXPECT_EQ(Get(f, "x-forwarded-for"), "10.0.0.1, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(Get(f, "x-forwarded-proto"), "http");
  EXPECT_EQ(Get(f, "x-forwarded-host"), "api.example:8080");
  http::fields bare;
  bare.insert("X-Forwarded-Host", "spoofed");
  SetForwardedHeaders(bare, "::1", "http");
  EXPECT_EQ(Get(bare, "x-forwarded-for"), "::1");
  EXPECT_EQ(Get(bare, "x-forwarded-host"), "<none>");
  // What the client sent under any case is replaced: one of each is left.
  http::fields spoofed;
  spoofed.insert("x-forwarded-proto", "https");
  spoofed.insert("X-FORWARDED-FOR", "10.0.0.9");
  spoofed.insert(http::field::host, "h");
  spoofed.insert("X-Forwarded-Host", "spoofed");
  SetForwardedHeaders(spoofed, "127.0.0.1", "http");
  EXPECT_EQ(spoofed.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(spoofed.count("X-Forwarded-Proto"), 1u);
  EXPECT_EQ(spoofed.count("X-Forwarded-Host"), 1u);
  EXPECT_EQ(Get(spoofed, "x-forwarded-for"), "10.0.0.9, 127.0.0.1");
  EXPECT_EQ(Get(spoofed, "x-forwarded-proto"), "http");
  EXPECT_EQ(Get(spoofed, "x-forwarded-host"), "h");
}

TEST(HeaderRulesTest, RequestIdIsKeptWhenValidElseGenerated) {
  http::fields f;
  f.insert("X-Request-Id", "abc-123");
  EXPECT_EQ(EnsureRequestId(f), "abc-123");
  http::fields bad;
  bad.insert("X-Request-Id", "has space");
  auto id = EnsureRequestId(bad);
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(Get(bad, "x-request-id"), id);
  http::fields twice;  // two ids: neither is kept, one is generated
  twice.insert("X-Request-Id", "a");
  twice.insert("x-request-id", "b");
  auto fresh = EnsureRequestId(twice);
  EXPECT_EQ(fresh.size(), 32u);
  EXPECT_EQ(twice.count("X-Request-Id"), 1u);
  EXPECT_EQ(Get(twice, "x-request-id"), fresh);
  http::fields none;
  auto a = EnsureRequestId(none);
  http::fields none2;
  EXPECT_NE(a, EnsureRequestId(none2));
  EXPECT_FALSE(IsValidRequestId(std::string(129, 'a')));
  EXPECT_FALSE(IsValidRequestId(""));
}

TEST(HeaderRulesTest, ShadowCopyIsRedactedAndMarked) {
  http::fields f;
  f.insert(http::field::authorization, "Bearer prod");
  f.insert(http::field::cookie, "session=1");
  f.insert("X-Api-Key", "k");
  f.insert(http::field::content_type, "image/png");
  PrepareShadowHeaders(f, {"authorization", "cookie", "x-api-key"}, "X-Shadow-Request");
  EXPECT_EQ(Get(f, "authorization"), "<none>");
  EXPECT_EQ(Get(f, "cookie"), "<none>");
  EXPECT_EQ(Get(f, "x-api-key"), "<none>");
  EXPECT_EQ(Get(f, "x-shadow-request"), "1");
  EXPECT_EQ(Get(f, "content-type"), "image/png");
}

// The copy's head written from the primary's request is the head of a redacted, marked copy.
TEST(HeaderRulesTest, ShadowHeadIsTheHeadOfAPreparedCopy) {
  http::request<http::string_body> request(http::verb::post, "/predictions/m", 11);
  request.set(http::field::host, "models.internal");
  request.insert("AUTHORIZATION", "Bearer prod");
  request.insert("Cookie", "a=1");
  request.insert("X-Trace", "t1");
  request.insert("cookie", "b=2");
  request.insert("x-shadow-request", "0");  // a client's own marker is replaced
  request.insert("X-Api-Key", "k");
  request.body() = "{\"x\": 1}";
  request.prepare_payload();
  const std::vector<std::string> redact = {"authorization", "cookie", "x-api-key"};
  for (std::string marker : {"X-Shadow-Request", ""}) {
    auto copy = request;
    PrepareShadowHeaders(copy, redact, marker);
    std::string expected;
    AppendHead(copy.base(), &expected);
    std::string head;
    AppendShadowHead(request.base(), redact, marker, &head);
    EXPECT_EQ(head, expected) << marker;
    EXPECT_EQ(head.find("prod"), std::string::npos);
    EXPECT_EQ(head.find("a=1"), std::string::npos);
  }
  std::string head;
  AppendShadowHead(request.base(), redact, "X-Shadow-Request", &head);
  EXPECT_EQ(head,
            "POST /predictions/m HTTP/1.1\r\nHost: models.internal\r\nX-Trace: t1\r\n"
            "Content-Length: 8\r\nX-Shadow-Request: 1\r\n\r\n");
}

TEST(HeaderRulesTest, FramingChecks) {
  auto check = [](std::vector<std::pair<http::field, std::string>> headers, unsigned version = 11) {
    http::request_header<> head;
    head.version(version);
    for (auto& [name, value] : headers) head.insert(name, value);
    return CheckRequestFraming(head);
  };
  using F = http::field;
  EXPECT_EQ(check({}), "");
  EXPECT_EQ(check({{F::content_length, "10"}}), "");
  EXPECT_EQ(check({{F::content_length, "10"}, {F::content_length, "10"}}), "");
  EXPECT_EQ(check({{F::content_length, "10, 10"}}), "");
  EXPECT_EQ(check({{F::transfer_encoding, "chunked"}}), "");
  EXPECT_EQ(check({{F::transfer_encoding, "Chunked"}}), "");
  EXPECT_NE(check({{F::content_length, "10"}, {F::transfer_encoding, "chunked"}}), "");
  EXPECT_NE(check({{F::content_length, "10"}, {F::content_length, "11"}}), "");
  EXPECT_NE(check({{F::content_length, "10, 11"}}), "");
  EXPECT_NE(check({{F::content_length, "-1"}}), "");
  EXPECT_NE(check({{F::content_length, "0x10"}}), "");
  EXPECT_NE(check({{F::content_length, ""}}), "");
  EXPECT_NE(check({{F::content_length, "99999999999999999999"}}), "");
  EXPECT_NE(check({{F::transfer_encoding, "gzip"}}), "");
  EXPECT_NE(check({{F::transfer_encoding, "chunked, gzip"}}), "");
  EXPECT_NE(check({{F::transfer_encoding, "chunked"}, {F::transfer_encoding, "chunked"}}), "");
  // HTTP/1.0 has no Transfer-Encoding: faulty framing (RFC 9112 section 6.1).
  EXPECT_EQ(check({{F::content_length, "10"}}, 10), "");
  EXPECT_EQ(check({{F::transfer_encoding, "chunked"}}, 10),
            "Transfer-Encoding in an HTTP/1.0 request");
}

TEST(HeaderRulesTest, HostChecks) {
  auto check = [](unsigned version, std::vector<std::string> hosts) {
    http::request_header<> head;
    head.version(version);
    for (auto& host : hosts) head.insert(http::field::host, host);
    return CheckRequestHost(head);
  };
  EXPECT_EQ(check(11, {"api.test"}), "");
  // An http URI's authority may not be empty (RFC 9110 section 4.2.1); nginx answers 400.
  EXPECT_EQ(check(11, {""}), "empty Host");
  EXPECT_EQ(check(10, {" "}), "empty Host");
  EXPECT_EQ(check(10, {}), "");
  EXPECT_EQ(check(10, {"api.test"}), "");
  EXPECT_EQ(check(11, {}), "no Host in an HTTP/1.1 request");
  EXPECT_EQ(check(11, {"a", "b"}), "more than one Host");
  EXPECT_EQ(check(11, {"a", "a"}), "more than one Host");
  EXPECT_EQ(check(10, {"a", "b"}), "more than one Host");
}

// ScanRequestHeader over `bytes` given in pieces of `piece` bytes, as reads would deliver them:
// {where the header ends (0: incomplete), whether it folds a line}.
std::pair<std::size_t, bool> Scan(std::string_view bytes, std::size_t piece) {
  std::size_t scanned = 0;
  bool fold = false;
  for (std::size_t have = std::min(piece, bytes.size());;
       have = std::min(have + piece, bytes.size())) {
    std::size_t end = ScanRequestHeader(bytes.substr(0, have), &scanned, &fold);
    if (end != 0 || have == bytes.size()) return {end, fold};
  }
}

TEST(HeaderRulesTest, ScanRequestHeaderFindsTheEndAndFolds) {
  const std::string plain = "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n";
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{1000}}) {
    SCOPED_TRACE(piece);
    EXPECT_EQ(Scan(plain, piece), std::make_pair(plain.size(), false));
    // Bytes after the header (a body, the next request) are not looked at.
    EXPECT_EQ(Scan(plain + "body\n with\n\tfolds\r\n\r\n", piece),
              std::make_pair(plain.size(), false));
    EXPECT_EQ(Scan(plain.substr(0, plain.size() - 1), piece),
              std::make_pair(std::size_t{0}, false));
    EXPECT_EQ(Scan("GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n", piece).second, true);
    EXPECT_EQ(Scan("GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n", piece).second, true);
    // Whitespace before the first field.
    EXPECT_EQ(Scan("GET / HTTP/1.1\r\n Host: t\r\n\r\n", piece).second, true);
    // Spaces inside a line are no fold.
    EXPECT_EQ(Scan("GET / HTTP/1.1\r\nX-A: 1  2 \r\n\r\n", piece).second, false);
    // Bare LFs end lines too (the parser refuses them).
    EXPECT_EQ(Scan("GET / HTTP/1.1\nHost: t\n\n", piece).first, 24u);
    EXPECT_EQ(Scan("GET / HTTP/1.1\r\nHost: t\n\r\n", piece).first, 26u);
  }
}

// What Beast's serializer writes for the message's head (everything before the body).
template <bool isRequest>
std::string BeastHead(const http::message<isRequest, http::string_body>& message) {
  std::ostringstream out;
  out << message;
  std::string text = out.str();
  return text.substr(0, text.size() - message.body().size());
}

TEST(HeaderRulesTest, AppendHeadWritesWhatBeastWrites) {
  http::request<http::string_body> request(http::verb::post, "/predictions/m?x=1%20y", 11);
  request.set(http::field::host, "models.internal:8080");
  request.insert("X-Forwarded-For", "10.0.0.1");
  request.insert("x-custom-lower", "a, b");
  request.insert("X-Empty", "");
  request.keep_alive(true);
  request.body() = "{}";
  request.prepare_payload();
  std::string head;
  AppendHead(request.base(), &head);
  EXPECT_EQ(head, BeastHead(request));

  http::request<http::string_body> custom;
  custom.method_string("PURGE");
  custom.target("*");
  custom.version(10);
  head.clear();
  AppendHead(custom.base(), &head);
  EXPECT_EQ(head, BeastHead(custom));
  EXPECT_EQ(head, "PURGE * HTTP/1.0\r\n\r\n");

  for (unsigned status : {200u, 204u, 404u, 503u, 599u, 100u}) {
    http::response<http::string_body> response(static_cast<http::status>(status), 11);
    response.set("X-Request-Id", "abc");
    response.body() = status == 204 ? "" : "body";
    response.prepare_payload();
    head.clear();
    AppendHead(response.base(), &head);
    EXPECT_EQ(head, BeastHead(response)) << status;
  }
  http::response<http::string_body> reason(http::status::ok, 10);
  reason.reason("Fine Thanks");
  head.clear();
  AppendHead(reason.base(), &head);
  EXPECT_EQ(head, BeastHead(reason));
  EXPECT_EQ(head, "HTTP/1.0 200 Fine Thanks\r\n\r\n");
}

}  // namespace
}  // namespace sg::gateway
