#include "common/pair_line_decoder.h"

#include <array>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>
#include <system_error>

namespace sg::pair_log_internal {
namespace {

// Bytes that end a plain run inside a JSON string: the quote, a backslash, control characters
// (invalid unescaped) and the first byte of a multi-byte UTF-8 sequence (validated on its own).
constexpr std::array<bool, 256> kStringStop = [] {
  std::array<bool, 256> stop{};
  for (int c = 0; c < 256; ++c) stop[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
  return stop;
}();

// Advances `p` past bytes that need no attention in a JSON string (see kStringStop), eight at a
// time while a whole word is plain, then one at a time.
inline const char* SkipPlain(const char* p, const char* end) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
    // High bit set in a byte that is zero in quote/backslash, below 0x20, or >= 0x80.
    const uint64_t stop =
        ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) | (w - kOnes * 0x20) | w;
    if (stop & kHigh) break;
    p += 8;
  }
  while (p < end && !kStringStop[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

constexpr int kMaxDepth = 32;  // deeper unknown values go to the reference decoder

inline unsigned Byte(char c) {
  return static_cast<unsigned char>(c);
}
inline bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A strict RFC 8259 reader over one line that accepts exactly what nlohmann::json::parse accepts
// (same whitespace, escapes, surrogate pairs, UTF-8 rules, number grammar and overflow check) or
// declines. Every method returns false to decline; the position is then meaningless.
class PairLineParser {
 public:
  explicit PairLineParser(std::string_view line)
      : p_(line.data()), end_(line.data() + line.size()) {}

  bool Parse(PairRecord* r) {
    enum : uint32_t {
      kV = 1 << 0,
      kType = 1 << 1,
      kId = 1 << 2,
      kTs = 1 << 3,
      kRoute = 1 << 4,
      kMirror = 1 << 5,
      kRequest = 1 << 6,
      kPrimary = 1 << 7,
      kShadow = 1 << 8,
      kServedBy = 1 << 9,
      kRequired = kV | kType | kId | kTs | kRoute | kRequest | kPrimary | kShadow,
    };
    uint32_t seen = 0;
    auto once = [&seen](uint32_t bit) { return !(seen & bit) && (seen |= bit); };
    SkipWs();
    const bool ok = Object([&](std::string_view key) {
      if (key == "v") {
        int64_t v;
        return once(kV) && Int(&v) && v == kPairLogVersion;
      }
      if (key == "type") return once(kType) && String(&scratch_) && scratch_ == "pair";
      if (key == "id") return once(kId) && String(&r->id);
      if (key == "ts_us") return once(kTs) && Int(&r->ts_us);
      if (key == "route") return once(kRoute) && String(&r->route);
      if (key == "mirror") return once(kMirror) && String(&r->mirror);
      if (key == "served_by") {
        if (!once(kServedBy) || !String(&scratch_)) return false;
        r->served_by_candidate = scratch_ == "candidate";
        return r->served_by_candidate || scratch_ == "primary";
      }
      if (key == "request") return once(kRequest) && Request(&r->request);
      if (key == "primary") return once(kPrimary) && Response(&r->primary);
      if (key == "shadow") return once(kShadow) && Response(&r->shadow);
      return SkipValue(0);
    });
    SkipWs();
    return ok && p_ == end_ && (seen & kRequired) == kRequired;
  }

 private:
  bool Request(CapturedRequest* r) {
    enum : uint32_t {
      kMethod = 1 << 0,
      kTarget = 1 << 1,
      kSize = 1 << 2,
      kSha = 1 << 3,
      kHeaders = 1 << 4,
      kBody = 1 << 5,
      kBodyB64 = 1 << 6,
      kTruncated = 1 << 7,
      kRequired = kMethod | kTarget,
    };
    uint32_t seen = 0;
    auto once = [&seen](uint32_t bit) { return !(seen & bit) && (seen |= bit); };
    std::string body;
    const bool ok = Object([&](std::string_view key) {
      if (key == "method") return once(kMethod) && String(&r->method);
      if (key == "target") return once(kTarget) && String(&r->target);
      if (key == "size") return once(kSize) && Unsigned(&r->size);
      if (key == "sha256") return once(kSha) && String(&r->sha256);
      if (key == "headers") return once(kHeaders) && Headers(&r->headers);
      if (key == "body") return once(kBody) && String(&body);
      if (key == "body_b64") return once(kBodyB64) && String(&b64_);
      if (key == "body_truncated") return once(kTruncated) && Bool(&r->body_truncated);
      return SkipValue(1);
    });
    if (!ok || (seen & kRequired) != kRequired) return false;
    // As the reference: a text "body" wins over "body_b64".
    if (seen & kBody) {
      r->body = std::move(body);
    } else if (seen & kBodyB64) {
      r->body = Base64Decode(b64_);
      if (!r->body) return false;
    }
    return true;
  }

  bool Response(CapturedResponse* r) {
    enum : uint32_t {
      kStatus = 1 << 0,
      kLatency = 1 << 1,
      kOffset = 1 << 2,
      kOutcome = 1 << 3,
      kHeaders = 1 << 4,
      kBody = 1 << 5,
      kBodyB64 = 1 << 6,
      kTruncated = 1 << 7,
      kError = 1 << 8,
      kRequired = kStatus | kLatency | kOutcome,
    };
    uint32_t seen = 0;
    auto once = [&seen](uint32_t bit) { return !(seen & bit) && (seen |= bit); };
    const bool ok = Object([&](std::string_view key) {
      if (key == "status") return once(kStatus) && Int32(&r->status);
      if (key == "latency_us") return once(kLatency) && Int(&r->latency_us);
      if (key == "send_offset_us") return once(kOffset) && Int(&r->send_offset_us);
      if (key == "outcome") return once(kOutcome) && String(&r->outcome);
      if (key == "headers") return once(kHeaders) && Headers(&r->headers);
      if (key == "body") return once(kBody) && String(&r->body);
      if (key == "body_b64") return once(kBodyB64) && String(&b64_);
      if (key == "body_truncated") return once(kTruncated) && Bool(&r->body_truncated);
      if (key == "error") return once(kError) && String(&r->error);
      return SkipValue(1);
    });
    if (!ok || (seen & kRequired) != kRequired) return false;
    if (!(seen & kBody) && (seen & kBodyB64)) {
      auto decoded = Base64Decode(b64_);
      if (!decoded) return false;
      r->body = std::move(*decoded);
    }
    return true;
  }

  // String values only, each name once (the reference keeps the last of repeated names and
  // skips values that are not strings; both are left to it).
  bool Headers(std::map<std::string, std::string>* headers) {
    return Object([&](std::string_view key) {
      auto [it, inserted] = headers->try_emplace(std::string(key));
      return inserted && String(&it->second);
    });
  }

  // '{' members '}', calling field(key) with the position at the member's value.
  template <typename Field>
  bool Object(Field&& field) {
    if (p_ >= end_ || *p_ != '{') return false;
    ++p_;
    SkipWs();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    while (true) {
      std::string_view key;
      if (!Key(&key)) return false;
      SkipWs();
      if (p_ >= end_ || *p_ != ':') return false;
      ++p_;
      SkipWs();
      if (!field(key)) return false;
      SkipWs();
      if (p_ >= end_) return false;
      const char c = *p_++;
      if (c == '}') return true;
      if (c != ',') return false;
      SkipWs();
    }
  }

  bool Array(int depth) {
    ++p_;  // '['
    SkipWs();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    while (true) {
      if (!SkipValue(depth)) return false;
      SkipWs();
      if (p_ >= end_) return false;
      const char c = *p_++;
      if (c == ']') return true;
      if (c != ',') return false;
      SkipWs();
    }
  }

  // Validates any value without keeping it (fields this decoder does not know).
  bool SkipValue(int depth) {
    if (p_ >= end_) return false;
    switch (*p_) {
      case '"':
        return String(&scratch_);
      case '{':
        return depth < kMaxDepth && Object([&](std::string_view) { return SkipValue(depth + 1); });
      case '[':
        return depth < kMaxDepth && Array(depth + 1);
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number();
    }
  }

  // An object key: a view of the line, or of key_ (valid until the next key) when it has escapes.
  bool Key(std::string_view* key) {
    const char* quote = p_;
    if (p_ >= end_ || *p_ != '"') return false;
    const char* start = ++p_;
    while (true) {
      p_ = SkipPlain(p_, end_);
      if (p_ >= end_) return false;
      if (*p_ == '"') break;
      if (*p_ == '\\') {
        p_ = quote;
        if (!String(&key_)) return false;
        *key = key_;
        return true;
      }
      if (Byte(*p_) < 0x80 || !Utf8Sequence()) return false;  // a control character
    }
    *key = std::string_view(start, static_cast<size_t>(p_ - start));
    ++p_;
    return true;
  }

  bool String(std::string* out) {
    out->clear();
    if (p_ >= end_ || *p_ != '"') return false;
    const char* run = ++p_;
    while (true) {
      p_ = SkipPlain(p_, end_);
      if (p_ >= end_) return false;
      const unsigned c = Byte(*p_);
      if (c >= 0x80) {
        if (!Utf8Sequence()) return false;
        continue;
      }
      out->append(run, p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c != '\\' || !Escape(out)) return false;  // control characters must be escaped
      run = p_;
    }
  }

  // One multi-byte UTF-8 sequence at p_ (RFC 3629: no overlong forms, surrogates or values past
  // U+10FFFF), as nlohmann's lexer checks it.
  bool Utf8Sequence() {
    const unsigned c = Byte(*p_);
    unsigned low = 0x80, high = 0xBF;
    ptrdiff_t length;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (end_ - p_ < length) return false;
    if (Byte(p_[1]) < low || Byte(p_[1]) > high) return false;
    for (ptrdiff_t i = 2; i < length; ++i) {
      if ((Byte(p_[i]) & 0xC0) != 0x80) return false;
    }
    p_ += length;
    return true;
  }

  bool Escape(std::string* out) {
    ++p_;  // '\\'
    if (p_ >= end_) return false;
    switch (*p_++) {
      case '"':
        out->push_back('"');
        return true;
      case '\\':
        out->push_back('\\');
        return true;
      case '/':
        out->push_back('/');
        return true;
      case 'b':
        out->push_back('\b');
        return true;
      case 'f':
        out->push_back('\f');
        return true;
      case 'n':
        out->push_back('\n');
        return true;
      case 'r':
        out->push_back('\r');
        return true;
      case 't':
        out->push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    uint32_t cp;
    if (!Hex4(&cp)) return false;
    if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs its low half next
      uint32_t low;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
      p_ += 2;
      if (!Hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return false;
    }
    AppendUtf8(out, cp);
    return true;
  }

  bool Hex4(uint32_t* cp) {
    if (end_ - p_ < 4) return false;
    *cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
      *cp = *cp << 4 | digit;
    }
    return true;
  }

  // An integer literal of at most 18 digits (so it fits in int64_t and the reference reads it
  // unchanged); fractions and exponents decline.
  bool Int(int64_t* value) {
    const bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    const char* digits = p_;
    uint64_t magnitude = 0;
    while (p_ < end_ && IsDigit(*p_))
      magnitude = magnitude * 10 + static_cast<uint64_t>(*p_++ - '0');
    const ptrdiff_t n = p_ - digits;
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *value = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
    return true;
  }

  bool Int32(int* value) {
    int64_t v;
    if (!Int(&v) || v < INT_MIN || v > INT_MAX) return false;
    *value = static_cast<int>(v);
    return true;
  }

  bool Unsigned(uint64_t* value) {
    int64_t v;
    if (p_ < end_ && *p_ == '-') return false;
    if (!Int(&v)) return false;
    *value = static_cast<uint64_t>(v);
    return true;
  }

  bool Bool(bool* value) {
    if (p_ < end_ && *p_ == 't') return Literal("true") && (*value = true);
    if (!Literal("false")) return false;
    *value = false;
    return true;
  }

  bool Literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // Any JSON number. nlohmann reads integers past 64 bits and fractions as doubles and rejects a
  // line whose double overflows ("number overflow"); those are checked with from_chars, and
  // out-of-range results (overflow, or an underflow nlohmann would accept) decline.
  bool Number() {
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ >= end_ || !IsDigit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    bool plain = true;
    if (p_ < end_ && *p_ == '.') {
      plain = false;
      ++p_;
      if (p_ >= end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      plain = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !IsDigit(*p_)) return false;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
    }
    if (plain && p_ - start <= 18) return true;
    double value;
    const auto [end, ec] = std::from_chars(start, p_, value);
    return ec == std::errc() && end == p_;
  }

  void SkipWs() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  const char* p_;
  const char* end_;
  std::string scratch_;  // values that are checked or skipped, not kept
  std::string b64_;      // body_b64 text before decoding
  std::string key_;      // the last key that had escapes
};

}  // namespace

bool DecodePairLineFast(std::string_view line, PairRecord* out) {
  return PairLineParser(line).Parse(out);
}

}  // namespace sg::pair_log_internal
