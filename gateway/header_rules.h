// Proxy header rules and request framing checks: plain functions over Beast header fields,
// tested without sockets.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

namespace sg::gateway {

namespace http = boost::beast::http;

// Removes hop-by-hop headers: Connection and every header it names (except Content-Length, which
// frames the message: a request or response relayed with its body but without it would be read
// as two), Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade and every Proxy-* header.
void RemoveHopByHop(http::fields& fields);

// Sets X-Forwarded-For (appending `client_ip` to an existing list), X-Forwarded-Proto and
// X-Forwarded-Host (from Host, when present).
void SetForwardedHeaders(http::fields& fields, std::string_view client_ip, std::string_view proto);

// True when `id` can be kept as a request id: 1-128 visible ASCII characters.
bool IsValidRequestId(std::string_view id);
// A fresh random id: 32 lower-case hex digits.
std::string GenerateRequestId();
// Keeps a valid X-Request-Id or replaces it with a generated one; returns the id.
std::string EnsureRequestId(http::fields& fields);

// Shapes a mirror copy: removes the `redact` headers (lower-case names) and sets
// `shadow_header: 1` (when non-empty).
void PrepareShadowHeaders(http::fields& fields, const std::vector<std::string>& redact,
                          const std::string& shadow_header);

// Where the request header at the start of `bytes` ends (the offset just past the empty line that
// ends it), or 0 while it is incomplete. `*scanned` (0 at first) carries the scan over calls as
// more bytes arrive, so that each byte is looked at about once. A bare LF ends a line here too, so
// that the parser, which refuses it, answers at once rather than the header timeout. Sets
// `*obs_fold` when a line of the header starts with SP or HTAB: obsolete line folding (RFC 9112
// section 5.2) or whitespace before the first field (section 2.2), which Beast's parser would
// unfold silently.
std::size_t ScanRequestHeader(std::string_view bytes, std::size_t* scanned, bool* obs_fold);

// Request framing (RFC 9112 section 6): returns an empty string when the request's framing is
// unambiguous, else why it is refused (400). Refused: Content-Length together with
// Transfer-Encoding; differing or malformed Content-Length values; a Transfer-Encoding whose last
// coding is not chunked, or that is repeated; any Transfer-Encoding in an HTTP/1.0 request
// (section 6.1: faulty framing). (Beast's parser refuses some of these too; this check does not
// rely on it.)
std::string CheckRequestFraming(const http::request_header<>& head);

// Host (RFC 9112 section 3.2): returns an empty string when the request's Host is acceptable,
// else why it is refused (400): none in an HTTP/1.1 request, or more than one.
std::string CheckRequestHost(const http::request_header<>& head);

// Appends the serialized head (start line, fields, blank line) to `out`, byte for byte what
// Beast's serializer writes for it: the proxy writes heads with one gather write instead of
// Beast's generic serializer, which costs more per request than the rest of a small exchange.
// The body (if any) follows the head unchanged: callers use this only for messages whose body is
// not chunk-encoded.
void AppendHead(const http::request_header<>& head, std::string* out);
void AppendHead(const http::response_header<>& head, std::string* out);

// Appends the head of a mirror copy of `head`: what AppendHead writes for a copy shaped by
// PrepareShadowHeaders (the `redact` headers left out, `shadow_header: 1` last when non-empty),
// written straight from the primary's head, so the copy needs no fields of its own.
void AppendShadowHead(const http::request_header<>& head, const std::vector<std::string>& redact,
                      const std::string& shadow_header, std::string* out);

}  // namespace sg::gateway
