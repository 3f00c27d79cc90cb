// The fast pair-line decoder against the reference (DOM) decoder: round trips of varied records,
// and the same result and error, byte for byte, on odd, malformed and mutated lines.
#include "common/pair_line_decoder.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/pair_record.h"
#include "sample_pair.h"

namespace sg {
namespace {

using pair_log_internal::DecodePairLineDom;
using pair_log_internal::DecodePairLineFast;
using testing::SamplePair;

// DecodePairLogLine and the reference agree on success, error text and record; when the fast
// path accepts the line on its own, its record is the reference's too.
void ExpectSameAsReference(std::string_view line) {
  SCOPED_TRACE(std::string("line: ") + std::string(line));
  std::string error = "unset", reference_error = "unset";
  const auto decoded = DecodePairLogLine(line, &error);
  const auto reference = DecodePairLineDom(line, &reference_error);
  ASSERT_EQ(decoded.has_value(), reference.has_value()) << error << " / " << reference_error;
  EXPECT_EQ(error, reference_error);
  if (decoded) {
    EXPECT_TRUE(*decoded == *reference);
  }
  PairRecord fast;
  if (DecodePairLineFast(line, &fast)) {
    ASSERT_TRUE(reference.has_value())
        << "fast path accepted a line the reference rejects: " << reference_error;
    ASSERT_TRUE(std::holds_alternative<PairRecord>(*reference));
    EXPECT_TRUE(fast == std::get<PairRecord>(*reference));
  }
}

std::string Error(std::string_view line) {
  std::string error;
  EXPECT_FALSE(DecodePairLogLine(line, &error)) << line;
  return error;
}

bool FastAccepts(std::string_view line) {
  PairRecord r;
  return DecodePairLineFast(line, &r);
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

// Every record decodes back to itself; with `fast`, the fast path takes the line on its own.
void ExpectRoundTrip(const PairRecord& p, bool fast) {
  const std::string line = EncodePairLogLine(p);
  SCOPED_TRACE(line);
  PairRecord r;
  if (fast) {
    ASSERT_TRUE(DecodePairLineFast(line, &r));
    EXPECT_TRUE(r == p);
  }
  std::string error;
  auto decoded = DecodePairLogLine(line, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_TRUE(std::get<PairRecord>(*decoded) == p);
  ExpectSameAsReference(line);
}

TEST(PairLineDecoderTest, RoundTripsVariedRecordsOnTheFastPath) {
  RecordGenerator gen(7);
  for (int i = 0; i < 500; ++i) ExpectRoundTrip(gen.Next(/*huge_numbers=*/false), true);
}

// Integers of 19 or more digits are left to the reference, which reads them as before.
TEST(PairLineDecoderTest, HugeNumbersRoundTripThroughTheReference) {
  RecordGenerator gen(11);
  for (int i = 0; i < 100; ++i) ExpectRoundTrip(gen.Next(/*huge_numbers=*/true), false);
}

TEST(PairLineDecoderTest, TheBenchmarkShapeTakesTheFastPath) {
  PairRecord p = SamplePair();
  p.request.body.reset();
  EXPECT_TRUE(FastAccepts(EncodePairLogLine(p)));
  p.shadow.status = 0;
  p.shadow.outcome = "shadow_timeout";
  p.shadow.body.clear();
  p.shadow.error = "no response within 100ms";
  EXPECT_TRUE(FastAccepts(EncodePairLogLine(p)));
}

TEST(PairLineDecoderTest, EscapesAndUnicodeAsJsonAllowsThem) {
  const std::string head = R"({"v": 1, "type": "pair", "ts_us": 1, "route": "r", )"
                           R"("request": {"method": "GET", "target": "/"}, )"
                           R"("primary": {"status": 200, "latency_us": 1, "outcome": "ok"}, )"
                           R"("shadow": {"status": 200, "latency_us": 1, "outcome": "ok"}, "id": )";
  const std::pair<std::string, std::string> cases[] = {
      {R"("\u00e9\u00E9")", "éé"},
      {R"("\ud83d\ude00")", "😀"},
      {R"("\/\b\f\n\r\t\"\\")", "/\b\f\n\r\t\"\\"},
      {R"("\u0000x")", std::string("\0x", 2)},
      {R"("\u20ac")", "€"},
      {"\"raw 😀 é\"", "raw 😀 é"},
  };
  for (const auto& [json, text] : cases) {
    const std::string line = head + json + "}";
    PairRecord fast;
    ASSERT_TRUE(DecodePairLineFast(line, &fast)) << line;
    EXPECT_EQ(fast.id, text);
    ExpectSameAsReference(line);
  }
}

// Lines the reference accepts that the fast path leaves to it, with what the reference makes of
// them (unchanged behaviour).
TEST(PairLineDecoderTest, OddButValidLinesGoToTheReference) {
  const PairRecord p = SamplePair();
  const std::string line = EncodePairLogLine(p);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string out = line;
    const size_t at = out.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return out.replace(at, from.size(), to);
  };
  const std::vector<std::string> odd = {
      with(R"("v":1)", R"("v":1.0)"),
      with(R"("v":1)", R"("v":true)"),
      with(R"("v":1)", R"("\u0076":1)"),
      with(R"("status":200)", R"("status":2e2)"),
      with(R"("status":200)", R"("status":200,"status":201)"),
      with(R"("mirror":"student")", R"("mirror":null)"),
      with(R"("id":"req-1")", R"("id":"a","id":"req-1")"),
      with(R"("content-type":"image/png")", R"("content-type":"image/png","x-n":1)"),
      with(R"("content-type":"image/png")", R"("content-type":"a","content-type":"image/png")"),
      with(R"("ts_us":1795000000123456)", R"("ts_us":12345678901234567890)"),
      with(R"("ts_us":1795000000123456)", R"("ts_us":-1234567890123456789)"),
      with(R"("size":4)", R"("size":-4)"),
      with(R"("body_b64":"iVBORw==")", R"("body":"text","body_b64":"not base64!")"),
      with(R"("body_b64":"iVBORw==")", R"("body_b64":"iVBO Rw==")"),
      with(R"("body_b64":"iVBORw==")", R"("body_b64":"iVBORw==    ")"),
      with(R"("body_truncated":false)", R"("body_truncated":null)"),
      "\xef\xbb\xbf" + line,
      with(R"("v":1)", R"("v":1,"future":[1,2.5e-3,{"a":[[[]]]},"x",true,null,-0])"),
  };
  for (const auto& l : odd) ExpectSameAsReference(l);

  std::string error;
  auto decoded = DecodePairLogLine(with(R"("id":"req-1")", R"("id":"a","id":"b")"), &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(std::get<PairRecord>(*decoded).id, "b");  // the last of repeated names
  decoded = DecodePairLogLine(odd[7], &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(std::get<PairRecord>(*decoded).request.headers.count("x-n"), 0u);  // not a string
  decoded = DecodePairLogLine(odd[12], &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(std::get<PairRecord>(*decoded).request.body, "text");  // "body" wins
}

TEST(PairLineDecoderTest, MalformedLinesKeepTheirReasons) {
  const std::string line = EncodePairLogLine(SamplePair());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string out = line;
    return out.replace(out.find(from), from.size(), to);
  };
  const std::pair<std::string, std::string> cases[] = {
      {"", "invalid JSON"},
      {"[]", "invalid JSON"},
      {line.substr(0, line.size() - 1), "invalid JSON"},
      {line + " x", "invalid JSON"},
      {with(R"("req-1")", "\"req\x01\""), "invalid JSON"},          // raw control character
      {with(R"("req-1")", "\"req\xff\""), "invalid JSON"},          // invalid UTF-8
      {with(R"("req-1")", "\"req\xed\xa0\x80\""), "invalid JSON"},  // UTF-8 surrogate
      {with(R"("req-1")", R"("\ud83d")"), "invalid JSON"},          // lone high surrogate
      {with(R"("req-1")", R"("\ude00")"), "invalid JSON"},          // lone low surrogate
      {with(R"("req-1")", R"("\x")"), "invalid JSON"},
      {with(R"("v":1)", R"("v":1,"f":1e999)"), "invalid JSON"},  // number overflow
      {with(R"("v":1)", R"("v":1,"f":01)"), "invalid JSON"},
      {with(R"("v":1)", R"("v":1,"f":[1,])"), "invalid JSON"},
      {with(R"("v":1)", R"("v":1,)"), "invalid JSON"},
      {with(R"("v":1)", R"("v":2)"), "unsupported version 2"},
      {with(R"("v":1)", R"("w":1)"), "missing field v"},
      {with(R"("v":1)", R"("v":"1")"), "bad type for field v"},
      {with(R"("type":"pair")", R"("type":"nope")"), "unknown record type \"nope\""},
      {with(R"("id":"req-1")", R"("id":null)"), "missing field id"},
      {with(R"("id":"req-1")", R"("id":7)"), "bad type for field id"},
      {with(R"("ts_us":1795000000123456)", R"("ts_us":"1")"), "bad type for field ts_us"},
      {with(R"("route":"classify")", R"("r":"classify")"), "missing field route"},
      {with(R"("status":200)", R"("status":"200")"), "bad type for field primary.status"},
      {with(R"("latency_us":5321)", R"("latency":5321)"), "missing field primary.latency_us"},
      {with(R"("outcome":"ok")", R"("outcome":1)"), "bad type for field primary.outcome"},
      {with(R"("method":"POST")", R"("method":false)"), "bad type for field request.method"},
      {with(R"("target":"/predictions/fashion")", "\"t\":1"), "missing field request.target"},
      {with(R"("size":4)", R"("size":"4")"), "bad type for field request.size"},
      {with(R"("body_truncated":false)", R"("body_truncated":0)"),
       "bad type for field primary.body_truncated"},
      {with(R"("headers":{"content-type":"image/png","x-true-label":"Trouser"})",
            R"("headers":[])"),
       "bad type for field request.headers"},
      {with(R"("body_b64":"iVBORw==")", R"("body_b64":"abc")"),
       "invalid base64 in request.body_b64"},
      {with(R"("body_b64":"iVBORw==")", R"("body_b64":"iV*ORw==")"),
       "invalid base64 in request.body_b64"},
      {with(R"("request":{)", R"("req":{)"), "missing object request"},
      {with(R"("shadow":{)", R"("shadow":7,"x":{)"), "missing object shadow"},
  };
  for (const auto& [bad, reason] : cases) {
    EXPECT_EQ(Error(bad), reason) << bad;
    ExpectSameAsReference(bad);
  }
}

// The string scanner reads eight bytes at a time: every byte that needs attention is found at
// every offset of a word, next to bytes just inside the plain range.
TEST(PairLineDecoderTest, StringScanFindsEveryByteThatNeedsAttention) {
  const std::string line = EncodePairLogLine(SamplePair());
  const size_t id = line.find("\"req-1\"") + 1;
  const std::string bytes[] = {"\"",   "\\",   std::string(1, '\0'), "\x1f", "\x20",    "\x21",
                               "\x7f", "\x80", "\xc3\xa9",           "\xff", "\\u00e9", "\\n",
                               "\x5b", "\x5d"};
  for (size_t length = 0; length < 20; ++length) {
    for (size_t at = 0; at <= length; ++at) {
      for (const std::string& b : bytes) {
        std::string text(length, 'a');
        text.insert(at, b);
        ExpectSameAsReference(std::string(line).replace(id, 5, text));
      }
    }
  }
}

// Every truncation, deletion and a set of substitutions at every byte of two lines: whatever the
// reference makes of the result, DecodePairLogLine makes the same.
TEST(PairLineDecoderTest, AgreesWithTheReferenceOnMutatedLines) {
  PairRecord p = SamplePair();
  p.id = "r\"\\/\u00e9\xf0\x9f\x98\x80";
  p.shadow.body = std::string("\xff\xfe", 2);  // body_b64
  p.shadow.error = "timeout\n";
  const std::string lines[] = {EncodePairLogLine(p), EncodePairLogLine(SamplePair())};
  const std::string substitutes[] = {
      "\"", "\\", "{", "}", "[", ",",    ":",    " ",
      "0",  "-",  "e", "x", "n", "\x80", "\xc3", std::string(1, '\0')};
  int fast = 0;
  for (const std::string& line : lines) {
    for (size_t i = 0; i <= line.size(); ++i) {
      ExpectSameAsReference(std::string_view(line).substr(0, i));
      if (i == line.size()) break;
      ExpectSameAsReference(std::string(line).erase(i, 1));
      for (const std::string& s : substitutes) {
        const std::string mutated = std::string(line).replace(i, 1, s);
        ExpectSameAsReference(mutated);
        fast += FastAccepts(mutated);
      }
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(fast, 0);  // the mutations that stay valid (inside strings) stay on the fast path
}

}  // namespace
}  // namespace sg
