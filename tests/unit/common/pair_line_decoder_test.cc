// DecodePairLogLine (simdjson On Demand, driven by common/pair_log_fields.h) on lines written by
// hand: other writers' member order and spacing, escapes, the contract's decisions on odd JSON
// (docs/pair-log.md, Reading), malformed lines and their reasons, and every truncation,
// deletion and substitution of two lines.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/pair_record.h"
#include "sample_pair.h"

namespace sg {
namespace {

using testing::kSamplePairLine;
using testing::SamplePair;

std::string Error(std::string_view line) {
  std::string error;
  EXPECT_FALSE(DecodePairLogLine(line, &error)) << line;
  return error;
}

PairRecord Pair(std::string_view line) {
  std::string error;
  auto decoded = DecodePairLogLine(line, &error);
  EXPECT_TRUE(decoded) << error << "\n" << line;
  if (!decoded || !std::holds_alternative<PairRecord>(*decoded)) return {};
  return std::get<PairRecord>(*decoded);
}

// kSamplePairLine with its first `from` replaced by `to`.
std::string With(const std::string& from, const std::string& to) {
  std::string line(kSamplePairLine);
  const size_t at = line.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? line : line.replace(at, from.size(), to);
}

// Another writer's line: any member order, spaces and line breaks between tokens, escapes where
// the encoder writes raw characters, the optional fields left out.
TEST(PairLineDecoderTest, DecodesHandWrittenLines) {
  const PairRecord r = Pair(
      "{ \"v\" : 1 ,\t\"type\": \"pair\",\r\n \"ts_us\": 17, \"route\": \"cl\\u0061ssify\",\n"
      "  \"shadow\": {\"status\": 503, \"outcome\": \"shadow_error\", \"latency_us\": 9,\n"
      "              \"error\": \"upstream \\\"x\\\"\", \"body\": \"\\u00e9\\ud83d\\ude00\"},\n"
      "  \"primary\": {\"outcome\": \"ok\", \"status\": 200, \"latency_us\": 4,\n"
      "               \"headers\": {\"x-b\": \"2\", \"x-a\": \"1\"}, \"body_b64\": \"AAE=\"},\n"
      "  \"request\": {\"target\": \"/p?q=1\", \"method\": \"POST\"},\n"
      "  \"id\": \"\\/id\" }");
  EXPECT_EQ(r.id, "/id");
  EXPECT_EQ(r.ts_us, 17);
  EXPECT_EQ(r.route, "classify");
  EXPECT_EQ(r.mirror, "");
  EXPECT_FALSE(r.served_by_candidate);
  EXPECT_EQ(r.request.method, "POST");
  EXPECT_EQ(r.request.target, "/p?q=1");
  EXPECT_EQ(r.request.size, 0u);
  EXPECT_EQ(r.request.sha256, "");
  EXPECT_TRUE(r.request.headers.empty());
  EXPECT_FALSE(r.request.body.has_value());
  EXPECT_FALSE(r.request.body_truncated);
  EXPECT_EQ(r.primary.status, 200);
  EXPECT_EQ(r.primary.latency_us, 4);
  EXPECT_EQ(r.primary.outcome, "ok");
  EXPECT_EQ(r.primary.headers, (std::map<std::string, std::string>{{"x-a", "1"}, {"x-b", "2"}}));
  EXPECT_EQ(r.primary.body, std::string("\x00\x01", 2));
  EXPECT_EQ(r.primary.error, "");
  EXPECT_EQ(r.shadow.status, 503);
  EXPECT_EQ(r.shadow.latency_us, 9);
  EXPECT_EQ(r.shadow.send_offset_us, 0);
  EXPECT_EQ(r.shadow.outcome, "shadow_error");
  EXPECT_EQ(r.shadow.error, "upstream \"x\"");
  EXPECT_EQ(r.shadow.body, "é😀");
}

TEST(PairLineDecoderTest, EscapesAndUnicodeAsJsonAllowsThem) {
  const std::pair<std::string, std::string> cases[] = {
      {R"("\u00e9\u00E9")", "éé"},
      {R"("\ud83d\ude00")", "😀"},
      {R"("\/\b\f\n\r\t\"\\")", "/\b\f\n\r\t\"\\"},
      {R"("\u0000x")", std::string("\0x", 2)},
      {R"("\u20ac")", "€"},
      {"\"raw 😀 é\x7f\"", "raw 😀 é\x7f"},
  };
  for (const auto& [json, text] : cases) {
    EXPECT_EQ(Pair(With(R"("req-1")", json)).id, text) << json;
  }
}

// The contract's decisions where JSON allows more than the writers write (docs/pair-log.md,
// Reading).
TEST(PairLineDecoderTest, IntegerFieldsTakeIntegerLiteralsOnly) {
  EXPECT_EQ(Error(With(R"("v":1)", R"("v":1.0)")), "bad type for field v");
  EXPECT_EQ(Error(With(R"("v":1)", R"("v":true)")), "bad type for field v");
  EXPECT_EQ(Error(With(R"("status":200)", R"("status":2e2)")), "bad type for field primary.status");
  EXPECT_EQ(Error(With(R"("ts_us":1795000000123456)", R"("ts_us":12345678901234567890)")),
            "bad type for field ts_us");
  EXPECT_EQ(Error(With(R"("size":4)", R"("size":-4)")), "bad type for field request.size");
  EXPECT_EQ(Pair(With(R"("ts_us":1795000000123456)", R"("ts_us":-1234567890123456789)")).ts_us,
            -1234567890123456789);
  EXPECT_EQ(Pair(With(R"("size":4)", R"("size":18446744073709551615)")).request.size, UINT64_MAX);
  EXPECT_EQ(Pair(With(R"("status":200)", R"("status":-0)")).primary.status, 0);
}

TEST(PairLineDecoderTest, RepeatedNamesAreMalformed) {
  EXPECT_EQ(Error(With(R"("id":"req-1")", R"("id":"a","id":"req-1")")), "duplicate field id");
  EXPECT_EQ(Error(With(R"("v":1)", R"("v":1,"v":1)")), "duplicate field v");
  EXPECT_EQ(Error(With(R"("status":200)", R"("status":200,"status":201)")),
            "duplicate field primary.status");
  EXPECT_EQ(Error(With(R"("content-type":"image/png")",
                       R"("content-type":"a","content-type":"image/png")")),
            "duplicate field request.headers.content-type");
  // "body" and "body_b64" are one field.
  EXPECT_EQ(Error(With(R"("body_b64":"//4gYmluYXJ5")", R"("body":"x","body_b64":"//4gYmluYXJ5")")),
            "duplicate field shadow.body_b64");
}

TEST(PairLineDecoderTest, NullIsAnAbsentField) {
  EXPECT_EQ(Pair(With(R"("mirror":"student")", R"("mirror":null)")).mirror, "");
  EXPECT_FALSE(
      Pair(With(R"("body_truncated":false)", R"("body_truncated":null)")).request.body_truncated);
  EXPECT_FALSE(Pair(With(R"("body_b64":"iVBORw==")", R"("body_b64":null)")).request.body);
  EXPECT_EQ(Error(With(R"("id":"req-1")", R"("id":null)")), "missing field id");
  EXPECT_EQ(Error(With(R"("v":1)", R"("v":null)")), "missing field v");
  EXPECT_EQ(Error(With(R"("request":{)", R"("request":null,"x":{)")), "missing object request");
}

TEST(PairLineDecoderTest, HeaderValuesAreStrings) {
  EXPECT_EQ(Error(With(R"("content-type":"image/png")", R"("content-type":"image/png","x-n":1)")),
            "bad type for field request.headers");
  EXPECT_EQ(Error(With(R"("content-type":"image/png")", R"("content-type":null)")),
            "bad type for field request.headers");
}

// Unknown fields are ignored (new optional fields do not bump "v"), but read through: a line that
// is not JSON anywhere is "invalid JSON".
TEST(PairLineDecoderTest, UnknownFieldsAreIgnoredButMustBeJson) {
  const PairRecord p = SamplePair();
  EXPECT_TRUE(Pair(With(R"("v":1)",
                        R"("v":1,"future":[1,2.5e-3,{"a":[[[]]]},"x",true,null,-0,1e308])")) == p);
  EXPECT_TRUE(Pair(With(R"("status":200)", R"("status":200,"later":{"k":[1,2]})")) == p);
  // The request's body is base64 only: a text "body" there is an unknown field.
  EXPECT_TRUE(Pair(With(R"("body_b64":"iVBORw==")", R"("body":"text","body_b64":"iVBORw==")")) ==
              p);
  for (const char* bad : {R"([1,])", R"({"a" 1})", "01", "1e999", "-", "nul", "tru", R"("\x")",
                          R"({"a":[1 2]})", R"({"\ud800":1})"}) {
    EXPECT_EQ(Error(With(R"("v":1)", std::string(R"("v":1,"future":)") + bad)), "invalid JSON")
        << bad;
    EXPECT_EQ(Error(With(R"("id":"req-1")", std::string(R"("id":)") + bad)), "invalid JSON")
        << bad;  // a known field's value that is not JSON either
  }
  // Nesting: 64 levels below the line are read, deeper is invalid JSON.
  auto nested = [&](int depth) {
    return With(R"("v":1)", R"("v":1,"deep":)" + std::string(depth, '[') + std::string(depth, ']'));
  };
  EXPECT_TRUE(Pair(nested(64)) == p);
  EXPECT_EQ(Error(nested(65)), "invalid JSON");
  EXPECT_EQ(Error(nested(100000)), "invalid JSON");
  // The same limit inside a known object's mistyped field and a header's value.
  auto inside = [&](const std::string& from, const std::string& prefix, int depth) {
    return Error(With(from, prefix + std::string(depth, '[') + std::string(depth, ']')));
  };
  EXPECT_EQ(inside(R"("status":200)", R"("status":)", 63), "bad type for field primary.status");
  EXPECT_EQ(inside(R"("status":200)", R"("status":)", 64), "invalid JSON");
  EXPECT_EQ(inside(R"("x-true-label":"Trouser")", R"("x-true-label":)", 62),
            "bad type for field request.headers");
  EXPECT_EQ(inside(R"("x-true-label":"Trouser")", R"("x-true-label":)", 63), "invalid JSON");
  // Keys are compared unescaped.
  EXPECT_TRUE(Pair(With(R"("v":1)", R"("\u0076":1)")) == p);
}

TEST(PairLineDecoderTest, AByteOrderMarkIsIgnored) {
  EXPECT_TRUE(Pair("\xef\xbb\xbf" + std::string(kSamplePairLine)) == SamplePair());
  EXPECT_EQ(Error("\xef\xbb\xbf\xef\xbb\xbf" + std::string(kSamplePairLine)), "invalid JSON");
}

TEST(PairLineDecoderTest, MalformedLinesKeepTheirReasons) {
  const std::string line(kSamplePairLine);
  const std::pair<std::string, std::string> cases[] = {
      {"", "invalid JSON"},
      {"[]", "invalid JSON"},
      {"7", "invalid JSON"},
      {line.substr(0, line.size() - 1), "invalid JSON"},
      {line + " x", "invalid JSON"},
      {line + "}", "invalid JSON"},
      {line + line, "invalid JSON"},
      {line + std::string(1, '\0'), "invalid JSON"},        // (nlohmann::json stops at a NUL)
      {With(R"("req-1")", "\"req\x01\""), "invalid JSON"},  // raw control character
      {With(R"("req-1")", "\"req\xff\""), "invalid JSON"},  // invalid UTF-8
      {With(R"("req-1")", "\"req\xed\xa0\x80\""), "invalid JSON"},  // UTF-8 surrogate
      {With(R"("req-1")", R"("\ud83d")"), "invalid JSON"},          // lone high surrogate
      {With(R"("req-1")", R"("\ude00")"), "invalid JSON"},          // lone low surrogate
      {With(R"("req-1")", R"("\x")"), "invalid JSON"},
      {With(R"("v":1)", R"("v":1,"f":1e999)"), "invalid JSON"},  // number overflow
      {With(R"("v":1)", R"("v":1,"f":01)"), "invalid JSON"},
      {With(R"("v":1)", R"("v":1,"f":[1,])"), "invalid JSON"},
      {With(R"("v":1)", R"("v":1,)"), "invalid JSON"},
      {With(R"("v":1)", R"("v":01)"), "invalid JSON"},
      {With(R"("v":1)", R"("v":2)"), "unsupported version 2"},
      {With(R"("v":1)", R"("v":-9223372036854775808)"), "unsupported version -9223372036854775808"},
      {With(R"("v":1)", R"("w":1)"), "missing field v"},
      {With(R"("v":1)", R"("v":"1")"), "bad type for field v"},
      {With(R"("type":"pair")", R"("type":"nope")"), "unknown record type \"nope\""},
      {With(R"("type":"pair")", R"("kind":"pair")"), "missing field type"},
      {With(R"("type":"pair")", R"("type":["pair"])"), "bad type for field type"},
      {With(R"("id":"req-1")", R"("id":null)"), "missing field id"},
      {With(R"("id":"req-1")", R"("id":7)"), "bad type for field id"},
      {With(R"("ts_us":1795000000123456)", R"("ts_us":"1")"), "bad type for field ts_us"},
      {With(R"("route":"classify")", R"("r":"classify")"), "missing field route"},
      {With(R"("status":200)", R"("status":"200")"), "bad type for field primary.status"},
      {With(R"("latency_us":5321)", R"("latency":5321)"), "missing field primary.latency_us"},
      {With(R"("outcome":"ok")", R"("outcome":1)"), "bad type for field primary.outcome"},
      {With(R"("method":"POST")", R"("method":false)"), "bad type for field request.method"},
      {With(R"("target":"/predictions/fashion")", "\"t\":1"), "missing field request.target"},
      {With(R"("size":4)", R"("size":"4")"), "bad type for field request.size"},
      {With(R"("body_truncated":false)", R"("body_truncated":0)"),
       "bad type for field primary.body_truncated"},
      {With(R"("headers":{"content-type":"image/png","x-true-label":"Trouser"})",
            R"("headers":[])"),
       "bad type for field request.headers"},
      {With(R"("body_b64":"iVBORw==")", R"("body_b64":"abc")"),
       "invalid base64 in request.body_b64"},
      {With(R"("body_b64":"iVBORw==")", R"("body_b64":"iV*ORw==")"),
       "invalid base64 in request.body_b64"},
      {With(R"("body_b64":"iVBORw==")", R"("body_b64":"iVBO Rw==")"),
       "invalid base64 in request.body_b64"},
      {With(R"("body_b64":"//4gYmluYXJ5")", R"("body_b64":"//4gYmluYXJ5\n")"),
       "invalid base64 in shadow.body_b64"},
      {With(R"("request":{)", R"("req":{)"), "missing object request"},
      {With(R"("shadow":{)", R"("shadow":7,"x":{)"), "missing object shadow"},
  };
  for (const auto& [bad, reason] : cases) {
    EXPECT_EQ(Error(bad), reason) << bad;
  }
  // The first problem in the line's order; broken JSON anywhere wins.
  EXPECT_EQ(Error(With(R"("id":"req-1")", R"("id":7,"route":8)")), "bad type for field id");
  EXPECT_EQ(Error(With(R"("id":"req-1")", R"("id":7,"x":[1,])")), "invalid JSON");
  EXPECT_EQ(Error(With(R"("v":1)", R"("v":2,"id":7)")), "unsupported version 2");
}

// The thread's padded buffer is reused: bytes of an earlier, longer line after the end of this
// one are never read as part of it.
TEST(PairLineDecoderTest, TheReusedBufferHoldsOnlyThisLine) {
  const std::string line(kSamplePairLine);
  for (size_t cut = line.size(); cut-- > line.size() - 40;) {
    ASSERT_TRUE(Pair(line) == SamplePair());
    EXPECT_EQ(Error(std::string_view(line).substr(0, cut)), "invalid JSON") << cut;
  }
  // A line longer than any before (the buffer and the parser grow), then a short one.
  PairRecord big = SamplePair();
  big.primary.body = std::string(1 << 20, 'x');
  EXPECT_TRUE(Pair(EncodePairLogLine(big)) == big);
  EXPECT_TRUE(Pair(line) == SamplePair());
}

// Each thread has its own parser and buffer.
TEST(PairLineDecoderTest, ThreadsDecodeAtTheSameTime) {
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      PairRecord p = SamplePair();
      p.id = "thread-" + std::to_string(t);
      const std::string line = EncodePairLogLine(p);
      for (int i = 0; i < 2000; ++i) {
        std::string error;
        auto decoded = DecodePairLogLine(i % 2 ? line : line.substr(0, 50), &error);
        wrong[t] += i % 2 ? !(decoded && std::get<PairRecord>(*decoded) == p) : decoded.has_value();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

// Records with every kind of string content the encoder emits (escapes, control characters,
// NUL, multi-byte UTF-8, invalid UTF-8 bodies sent as body_b64), optional fields present or
// absent, and either ordinary numbers or the extremes of each field's type.
class RecordGenerator {
 public:
  explicit RecordGenerator(uint64_t seed) : rng_(seed) {}

  PairRecord Next(bool huge_numbers) {
    PairRecord p;
    p.id = Text(20);
    p.ts_us = huge_numbers ? Pick<int64_t>({INT64_MAX, INT64_MIN, -1}) : Small();
    p.route = Text(10);
    p.mirror = Coin() ? Text(8) : "";
    p.served_by_candidate = Coin();
    p.request.method = Coin() ? "POST" : "";
    p.request.target = Text(30);
    p.request.size = huge_numbers ? Pick<uint64_t>({UINT64_MAX, uint64_t{1} << 63}) : 1234;
    p.request.sha256 = Coin() ? std::string(64, 'f') : "";
    p.request.headers = Headers();
    if (Coin()) p.request.body = Coin() ? Bytes(40) : "";
    p.request.body_truncated = Coin();
    p.primary = Response(huge_numbers, false);
    p.shadow = Response(huge_numbers, true);
    return p;
  }

 private:
  CapturedResponse Response(bool huge_numbers, bool shadow) {
    CapturedResponse r;
    r.status = huge_numbers ? Pick<int>({INT_MAX, INT_MIN}) : Pick<int>({0, 200, 503, -1});
    r.latency_us = huge_numbers ? Pick<int64_t>({INT64_MAX, INT64_MIN}) : Small();
    if (shadow) r.send_offset_us = huge_numbers ? INT64_MIN : -Small();
    r.outcome = Coin() ? "ok" : "shadow_timeout";
    r.headers = Headers();
    r.body = Coin() ? Text(200) : Bytes(60);  // Bytes is rarely valid UTF-8: body_b64
    r.body_truncated = Coin();
    if (Coin()) r.error = Text(40);
    return r;
  }

  std::map<std::string, std::string> Headers() {
    std::map<std::string, std::string> h;
    const int n = static_cast<int>(rng_() % 4);
    for (int i = 0; i < n; ++i) h[Text(12)] = Text(16);
    return h;
  }

  // Valid UTF-8 from pieces JSON must escape or that take several bytes.
  std::string Text(int max_pieces) {
    static const std::vector<std::string> kPieces = {"a",
                                                     "Z",
                                                     "0",
                                                     " ",
                                                     "\"",
                                                     "\\",
                                                     "/",
                                                     "\n",
                                                     "\t",
                                                     "\r",
                                                     "\b",
                                                     "\f",
                                                     "\x01",
                                                     "\x1f",
                                                     "\x7f",
                                                     std::string(1, '\0'),
                                                     "é",
                                                     "✓",
                                                     "😀",
                                                     "{\"Coat\": 0.5}",
                                                     "ordinary text "};
    std::string s;
    const int n = static_cast<int>(rng_() % static_cast<uint64_t>(max_pieces + 1));
    for (int i = 0; i < n; ++i) s += kPieces[rng_() % kPieces.size()];
    return s;
  }

  std::string Bytes(int max_length) {
    std::string s(rng_() % static_cast<uint64_t>(max_length + 1), '\0');
    for (auto& c : s) c = static_cast<char>(rng_() % 256);
    return s;
  }

  int64_t Small() { return static_cast<int64_t>(rng_() % 1000000000000000000ULL); }
  bool Coin() { return rng_() % 2 == 0; }
  template <typename T>
  T Pick(std::initializer_list<T> values) {
    return values.begin()[rng_() % values.size()];
  }

  std::mt19937_64 rng_;
};

TEST(PairLineDecoderTest, RoundTripsVariedRecords) {
  RecordGenerator gen(7);
  for (int i = 0; i < 600; ++i) {
    const PairRecord p = gen.Next(/*huge_numbers=*/i % 6 == 0);
    const std::string line = EncodePairLogLine(p);
    ASSERT_TRUE(Pair(line) == p) << line;
  }
}

// Every truncation, deletion and a set of substitutions at every byte of two lines: never a
// crash; a line that decodes names no error and encodes to a line that decodes to the same
// record; one that does not has a reason.
TEST(PairLineDecoderTest, MutatedLinesDecodeOrFailCleanly) {
  PairRecord p = SamplePair();
  p.id = "r\"\\/\u00e9\xf0\x9f\x98\x80";
  p.shadow.error = "timeout\n";
  const std::string lines[] = {EncodePairLogLine(p), std::string(kSamplePairLine)};
  const std::string substitutes[] = {
      "\"", "\\", "{", "}", "[", ",",    ":",    " ",
      "0",  "-",  "e", "x", "n", "\x80", "\xc3", std::string(1, '\0')};
  int decoded_lines = 0;
  auto check = [&](std::string_view line) {
    std::string error;
    const auto decoded = DecodePairLogLine(line, &error);
    if (!decoded) {
      EXPECT_FALSE(error.empty()) << line;
      return;
    }
    ++decoded_lines;
    const std::string again =
        std::visit([](const auto& e) { return EncodePairLogLine(e); }, *decoded);
    const auto twice = DecodePairLogLine(again, &error);
    ASSERT_TRUE(twice) << error << "\n" << line;
    EXPECT_TRUE(*twice == *decoded) << line;
  };
  for (const std::string& line : lines) {
    for (size_t i = 0; i <= line.size(); ++i) {
      check(std::string_view(line).substr(0, i));
      if (i == line.size()) break;
      check(std::string(line).erase(i, 1));
      for (const std::string& s : substitutes) check(std::string(line).replace(i, 1, s));
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(decoded_lines, 1000);  // the substitutions inside strings stay valid lines
}

}  // namespace
}  // namespace sg
