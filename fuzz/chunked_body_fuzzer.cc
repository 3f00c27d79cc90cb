// libFuzzer target: a chunked request body read as ProxySession::StartCollecting reads it. The
// header goes through Beast's request_parser<string_body> (the session's parser_), which is then
// turned into a request_parser<buffer_body> that reads the body piece by piece into a fixed
// buffer, the bytes arriving in reads of any size, under a body limit.
//
// Input: three bytes of settings (piece size, read size, body limit), then the bytes the client
// sends after the header "POST /m HTTP/1.1 ... Transfer-Encoding: chunked".
// Oracles besides "no crash":
//  - the pieces collected, whatever the piece and read sizes, are the body Beast's parser
//    returns when given every byte at once, and the two agree on success, failure and where the
//    message ends (the rest is the next pipelined request);
//  - a body Beast accepts is valid chunked coding (RFC 9112 section 7.1, checked by a strict
//    decoder written here): same body, same end, never over the limit. A message Beast ends
//    elsewhere than the RFC's grammar does is request smuggling's raw material.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr std::string_view kHead =
    "POST /m HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n";

[[noreturn]] void Fail(const char* what, std::string_view body) {
  std::fprintf(stderr, "chunked_body_fuzzer: %s\nbody: ", what);
  for (unsigned char c : body) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      std::fputc(c, stderr);
    } else {
      std::fprintf(stderr, "\\x%02x", c);
    }
  }
  std::fputc('\n', stderr);
  std::abort();
}

// What a parser made of the body.
struct Outcome {
  bool ok = false;
  std::string body;
  std::size_t end = 0;  // bytes of the input the message took (when ok)
};

// Beast's parser as ProxySession uses it: header through the string_body parser, then the body
// through a buffer_body parser in pieces of `piece_size`, the input arriving `read_size` bytes
// at a time.
Outcome Collect(std::string_view input, std::size_t piece_size, std::size_t read_size,
                uint64_t limit) {
  Outcome out;
  http::request_parser<http::string_body> head_parser;
  head_parser.header_limit(16 << 10);
  head_parser.body_limit(limit);
  beast::error_code ec;
  std::size_t used = head_parser.put(boost::asio::buffer(kHead.data(), kHead.size()), ec);
  if (ec || used != kHead.size() || !head_parser.is_header_done() || !head_parser.chunked()) {
    Fail("the fixed head does not parse", {});
  }
  http::request_parser<http::buffer_body> parser(std::move(head_parser));
  parser.body_limit(limit);
  std::string piece(piece_size, '\0');
  std::string buffer;  // received and not yet parsed (the session's flat_buffer)
  std::size_t received = 0;
  auto& body = parser.get().body();
  body.data = piece.data();
  body.size = piece.size();
  bool need_input = true;
  while (!parser.is_done()) {
    if (need_input) {
      if (received == input.size()) {
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return out;  // partial_message: the client left
        break;
      }
      std::size_t n = std::min(read_size, input.size() - received);
      buffer.append(input.substr(received, n));
      received += n;
      need_input = false;
    }
    used = parser.put(boost::asio::buffer(buffer.data(), buffer.size()), ec);
    buffer.erase(0, used);
    if (ec == http::error::need_buffer) {
      // The piece is full (ProxySession::OnCollectPiece appends it and reads the next).
      if (body.size == piece.size()) Fail("need_buffer with an empty piece", input);
      out.body.append(piece.data(), piece.size() - body.size);
      body.data = piece.data();
      body.size = piece.size();
      continue;
    }
    if (ec == http::error::need_more || (!ec && used == 0 && !parser.is_done())) {
      need_input = true;
      continue;
    }
    if (ec) return out;
  }
  out.body.append(piece.data(), piece.size() - body.size);
  out.ok = true;
  out.end = received - buffer.size();
  return out;
}

// Beast's string_body parser given every byte at once.
Outcome AllAtOnce(std::string_view input, uint64_t limit) {
  Outcome out;
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 << 10);
  parser.body_limit(limit);
  std::string all(kHead);
  all.append(input);
  std::string_view rest = all;
  beast::error_code ec;
  while (!parser.is_done()) {
    std::size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(used);
    if (ec == http::error::need_more && used > 0) continue;
    if (ec == http::error::need_more) {
      parser.put_eof(ec);
      if (ec || !parser.is_done()) return out;
      break;
    }
    if (ec) return out;
    if (used == 0 && !parser.is_done()) return out;
  }
  out.ok = true;
  out.body = parser.get().body();
  out.end = input.size() - rest.size();
  return out;
}

bool IsTchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// A strict decoder of RFC 9112 section 7.1's chunked-body:
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;  last-chunk = 1*"0" [ chunk-ext ] CRLF
//   chunk-ext = *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
// Trailer lines are only checked for their CRLF ends (what they hold is dropped by the gateway).
class StrictChunked {
 public:
  explicit StrictChunked(std::string_view in) : in_(in) {}

  Outcome Decode() {
    Outcome out;
    for (;;) {
      std::optional<uint64_t> size = ChunkSize();
      if (!size || !ChunkExt() || !Crlf()) return out;
      if (*size == 0) break;
      if (*size > in_.size() - at_) return out;
      out.body.append(in_.substr(at_, *size));
      at_ += *size;
      if (!Crlf()) return out;
    }
    // trailer-section CRLF: lines up to the empty one, each ended by CRLF, no bare CR or LF.
    for (;;) {
      std::size_t crlf = in_.find("\r\n", at_);
      if (crlf == std::string_view::npos) return out;
      std::string_view line = in_.substr(at_, crlf - at_);
      if (line.find_first_of("\r\n") != std::string_view::npos) return out;
      at_ = crlf + 2;
      if (line.empty()) break;
    }
    out.ok = true;
    out.end = at_;
    return out;
  }

 private:
  bool More() const { return at_ < in_.size(); }
  unsigned char Peek() const { return static_cast<unsigned char>(in_[at_]); }

  std::optional<uint64_t> ChunkSize() {
    uint64_t size = 0;
    std::size_t digits = 0;
    while (More() && std::isxdigit(Peek())) {
      unsigned char c = Peek();
      unsigned value = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
      if (size > (std::numeric_limits<uint64_t>::max() >> 4)) return std::nullopt;
      size = size * 16 + value;
      ++at_;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    return size;
  }

  void Bws() {
    while (More() && (Peek() == ' ' || Peek() == '\t')) ++at_;
  }

  bool Token() {
    std::size_t start = at_;
    while (More() && IsTchar(Peek())) ++at_;
    return at_ > start;
  }

  // Beast 1.81 reads a quoted chunk-ext-val more loosely than RFC 9110 section 5.6.4's
  // quoted-string: any byte but an unescaped '"' (NUL, control characters, a bare CR or LF too)
  // and a backslash before any byte. The line still has to end with CRLF after the closing quote.
  // That is accepted here as well, so that the fuzzer carries on looking for what matters more
  // (another body or end): the gateway never forwards a client's chunk extensions (a chunked body
  // is sent upstream re-chunked by Beast's serializer, or with a Content-Length once collected).
  bool QuotedString() {
    if (!More() || Peek() != '"') return false;
    ++at_;
    while (More()) {
      unsigned char c = Peek();
      ++at_;
      if (c == '"') return true;
      if (c == '\\') {
        if (!More()) return false;
        ++at_;
      }
    }
    return false;
  }

  bool ChunkExt() {
    for (;;) {
      std::size_t start = at_;
      Bws();
      if (!More() || Peek() != ';') {
        at_ = start;
        return true;
      }
      ++at_;
      Bws();
      if (!Token()) return false;
      std::size_t before_value = at_;
      Bws();
      if (More() && Peek() == '=') {
        ++at_;
        Bws();
        if (!Token() && !QuotedString()) return false;
      } else {
        at_ = before_value;
      }
    }
  }

  bool Crlf() {
    if (in_.substr(at_, 2) != "\r\n") return false;
    at_ += 2;
    return true;
  }

  std::string_view in_;
  std::size_t at_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  // Settings: pieces of 1-64 bytes (the session's are 64 KiB: small ones make every chunk
  // cross them), reads of 1-256 bytes, and a limit of 0-254 bytes or none (the gateway's 1 GiB).
  std::size_t piece_size = 1 + data[0] % 64;
  std::size_t read_size = 1 + data[1];
  uint64_t limit = data[2] == 255 ? std::numeric_limits<uint64_t>::max() : data[2];
  std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

  Outcome pieces = Collect(input, piece_size, read_size, limit);
  Outcome whole = AllAtOnce(input, limit);
  if (pieces.ok != whole.ok) Fail("read in pieces and all at once disagree on success", input);
  if (!whole.ok) return 0;
  if (pieces.body != whole.body) Fail("read in pieces and all at once differ", input);
  if (pieces.end != whole.end) Fail("read in pieces and all at once end elsewhere", input);
  if (whole.body.size() > limit) Fail("a body over the limit was accepted", input);
  Outcome strict = StrictChunked(input).Decode();
  if (!strict.ok) Fail("Beast accepted a body that is not valid chunked coding", input);
  if (strict.body != whole.body) Fail("Beast decoded another body than RFC 9112's", input);
  if (strict.end != whole.end) Fail("Beast ended the message elsewhere than RFC 9112", input);
  return 0;
}
