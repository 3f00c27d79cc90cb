#include "common/pair_record.h"

#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sample_pair.h"

namespace sg {
namespace {

using testing::SamplePair;

TEST(PairRecordTest, RoundTripsEveryField) {
  PairRecord p = SamplePair();
  std::string line = EncodePairLogLine(p);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["v"], 1);
  EXPECT_EQ(json["type"], "pair");
  EXPECT_EQ(json["primary"]["body"], R"({"Trouser": 0.98})");
  EXPECT_TRUE(json["shadow"].contains("body_b64"));  // not UTF-8
  EXPECT_EQ(json["request"]["body_b64"], "iVBORw==");

  std::string error;
  auto decoded = DecodePairLogLine(line, &error);
  ASSERT_TRUE(decoded) << error;
  const auto& q = std::get<PairRecord>(*decoded);
  EXPECT_EQ(q.id, p.id);
  EXPECT_EQ(q.ts_us, p.ts_us);
  EXPECT_EQ(q.request.sha256, p.request.sha256);
  EXPECT_EQ(q.request.body, p.request.body);
  EXPECT_EQ(q.request.headers, p.request.headers);
  EXPECT_EQ(q.primary.body, p.primary.body);
  EXPECT_EQ(q.shadow.body, p.shadow.body);
  EXPECT_EQ(q.shadow.send_offset_us, 14);
  EXPECT_EQ(q.shadow.outcome, "shadow_timeout");
  EXPECT_EQ(q.shadow.error, p.shadow.error);
}

// Random text: plain ASCII, every control character, quotes and backslashes, valid multi-byte
// UTF-8, and (sometimes) invalid bytes.
std::string RandomText(std::mt19937& random) {
  static const std::string kPieces[] = {
      "a",    "Z",    "0", " ", "\"", "\\", "/", "\x7f", "é", "€", "\xf0\x9f\x98\x80",
      "\xff", "\xc3", "{}"};
  std::string text;
  int n = static_cast<int>(random() % 12);
  for (int i = 0; i < n; ++i) {
    if (random() % 4 == 0) {
      text.push_back(static_cast<char>(random() % 0x20));  // a control character
    } else {
      text += kPieces[random() % std::size(kPieces)];
    }
  }
  return text;
}

TEST(PairRecordTest, DirectEncoderWritesTheDomEncodersBytes) {
  std::mt19937 random(7);
  EXPECT_EQ(EncodePairLogLine(SamplePair()), EncodePairLogLineDom(SamplePair()));
  for (int i = 0; i < 2000; ++i) {
    PairRecord p;
    p.id = RandomText(random);
    p.ts_us = static_cast<int64_t>(random()) - 1000;
    p.route = RandomText(random);
    p.mirror = RandomText(random);
    p.served_by_candidate = random() % 2;
    p.request.method = RandomText(random);
    p.request.target = RandomText(random);
    p.request.size = random();
    p.request.sha256 = Sha256Hex(p.request.target);
    if (random() % 2) p.request.body = RandomText(random);
    p.request.body_truncated = random() % 2;
    for (auto* r : {&p.primary, &p.shadow}) {
      r->status = static_cast<int>(random() % 600);
      r->latency_us = random();
      r->send_offset_us = static_cast<int64_t>(random() % 1000) - 500;
      r->outcome = RandomText(random);
      r->body = RandomText(random);
      r->body_truncated = random() % 2;
      if (random() % 2) r->error = RandomText(random);
      for (int h = static_cast<int>(random() % 3); h > 0; --h) {
        r->headers[RandomText(random)] = RandomText(random);
      }
    }
    for (int h = static_cast<int>(random() % 3); h > 0; --h) {
      p.request.headers[RandomText(random)] = RandomText(random);
    }
    ASSERT_EQ(EncodePairLogLine(p), EncodePairLogLineDom(p)) << i;
  }
}

// served_by (progressive cutover): written only for the candidate, so a line without it (every
// line written before it existed) reads as served by the primary; another value is malformed.
TEST(PairRecordTest, ServedByIsOptionalAndChecked) {
  PairRecord p = SamplePair();
  std::string line = EncodePairLogLine(p);
  EXPECT_EQ(line.find("served_by"), std::string::npos);
  std::string error;
  auto decoded = DecodePairLogLine(line, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_FALSE(std::get<PairRecord>(*decoded).served_by_candidate);

  p.served_by_candidate = true;
  line = EncodePairLogLine(p);
  EXPECT_EQ(nlohmann::json::parse(line)["served_by"], "candidate");
  decoded = DecodePairLogLine(line, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_TRUE(std::get<PairRecord>(*decoded) == p);

  auto json = nlohmann::json::parse(line);
  json["served_by"] = "primary";
  decoded = DecodePairLogLine(json.dump(), &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_FALSE(std::get<PairRecord>(*decoded).served_by_candidate);
  json["served_by"] = "shadow";
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad value for field served_by");
}

TEST(PairRecordTest, CountersRoundTrip) {
  MirrorCounters c;
  c.ts_us = 1;
  c.instance = "h:1";
  c.route = "r";
  c.mirror = "m";
  c.requests = 10;
  c.not_mirrored = {{"overload", 2}};
  c.mirrored = {{"ok", 8}};
  std::string error;
  auto decoded = DecodePairLogLine(EncodePairLogLine(c), &error);
  ASSERT_TRUE(decoded) << error;
  const auto& d = std::get<MirrorCounters>(*decoded);
  EXPECT_EQ(d.requests, 10u);
  EXPECT_EQ(d.not_mirrored.at("overload"), 2u);
  EXPECT_EQ(d.mirrored.at("ok"), 8u);
  EXPECT_TRUE(d.not_captured.empty());
  // What was not captured (capture.body_sample): written only when there is something to say,
  // so lines without it read as before.
  EXPECT_EQ(EncodePairLogLine(c).find("not_captured"), std::string::npos);
  c.not_captured = {{"body_sampled_out", 7}, {"body_truncated", 1}};
  decoded = DecodePairLogLine(EncodePairLogLine(c), &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(std::get<MirrorCounters>(*decoded), c);
}

// A cutover decision line (docs/pair-log.md): as documented, and round-tripped with and without
// the failing gate's fields.
TEST(PairRecordTest, CutoverDecisionLines) {
  std::string error;
  auto decoded = DecodePairLogLine(
      R"({"v": 1, "type": "cutover", "ts_us": 1795000000123456, "instance": "h:7:1",
          "route": "classify", "mirror": "cpu", "decision": "rollback", "state": "ROLLED_BACK",
          "step": 2, "share": 0, "reason": "gate \"errors\" (shadow_error_rate) value 0.31 > bound 0.002",
          "gate": "errors", "metric": "shadow_error_rate", "value": 0.31, "bound": 0.002,
          "bound_kind": "max", "judged": 412})",
      &error);
  ASSERT_TRUE(decoded) << error;
  ASSERT_TRUE(std::holds_alternative<CutoverDecision>(*decoded));
  const auto& d = std::get<CutoverDecision>(*decoded);
  CutoverDecision expected;
  expected.ts_us = 1795000000123456;
  expected.instance = "h:7:1";
  expected.route = "classify";
  expected.mirror = "cpu";
  expected.decision = "rollback";
  expected.state = "ROLLED_BACK";
  expected.step = 2;
  expected.share = 0;
  expected.reason = "gate \"errors\" (shadow_error_rate) value 0.31 > bound 0.002";
  expected.gate = "errors";
  expected.metric = "shadow_error_rate";
  expected.value = 0.31;
  expected.bound = 0.002;
  expected.bound_kind = "max";
  expected.judged = 412;
  EXPECT_EQ(d, expected);
  auto again = DecodePairLogLine(EncodePairLogLine(d), &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(std::get<CutoverDecision>(*again), d);

  CutoverDecision manual;  // no gate: the optional fields are left out
  manual.ts_us = 5;
  manual.route = "r";
  manual.decision = "pause";
  manual.state = "PAUSED";
  manual.step = 0;
  manual.share = 12.5;
  manual.reason = "manual";
  const std::string line = EncodePairLogLine(manual);
  for (const char* absent : {"\"gate\"", "\"value\"", "\"bound\"", "\"judged\""}) {
    EXPECT_EQ(line.find(absent), std::string::npos) << line;
  }
  again = DecodePairLogLine(line, &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(std::get<CutoverDecision>(*again), manual);

  auto json = nlohmann::json::parse(line);
  json.erase("decision");
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "missing field decision");
  json = nlohmann::json::parse(line);
  json["value"] = "high";
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field value");
}

TEST(PairRecordTest, MalformedLinesAreRejectedWithReason) {
  std::string error;
  std::string line = EncodePairLogLine(SamplePair());
  EXPECT_FALSE(DecodePairLogLine(line.substr(0, line.size() / 2), &error));
  EXPECT_EQ(error, "invalid JSON");
  EXPECT_FALSE(DecodePairLogLine(R"({"v": 2, "type": "pair"})", &error));
  EXPECT_EQ(error, "unsupported version 2");
  EXPECT_FALSE(DecodePairLogLine(R"({"v": 1, "type": "nope"})", &error));
  EXPECT_EQ(error, "unknown record type \"nope\"");
  auto json = nlohmann::json::parse(line);
  json["primary"].erase("status");
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "missing field primary.status");
  json = nlohmann::json::parse(line);
  json["shadow"]["latency_us"] = "slow";
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field shadow.latency_us");
}

TEST(PairRecordTest, NumberOutsideItsFieldsTypeIsMalformed) {
  // Found by fuzz/pair_log_fuzzer (UBSan): nlohmann casts a float to the integer field's type,
  // undefined when it does not fit (ts_us 1e81).
  std::string error;
  auto json = nlohmann::json::parse(EncodePairLogLine(SamplePair()));
  json["ts_us"] = 1e81;
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field ts_us");
  json["ts_us"] = 9223372036854775808.0;  // 2^63
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  json["ts_us"] = -1e300;
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  json["ts_us"] = 12.0;  // a float that fits is read as before
  ASSERT_TRUE(DecodePairLogLine(json.dump(), &error)) << error;
  json = nlohmann::json::parse(EncodePairLogLine(SamplePair()));
  json["primary"]["status"] = 3e9;  // beyond int
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field primary.status");
  MirrorCounters counters;
  counters.route = "r";
  json = nlohmann::json::parse(EncodePairLogLine(counters));
  json["requests"] = -1.0;  // uint64_t
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field requests");
  json = nlohmann::json::parse(EncodePairLogLine(counters));
  json["not_mirrored"] = {{"overload", 1.3e93}};  // a map's value
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field not_mirrored");
}

TEST(PairRecordTest, KnownDigestsAndEncodings) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("abc"));
}

TEST(PairRecordTest, Base64DecodeRoundTripsEveryLengthAndByte) {
  std::string bytes;
  for (int i = 0; i < 600; ++i) {
    bytes.push_back(static_cast<char>(i * 7919 % 256));
    ASSERT_EQ(Base64Decode(Base64Encode(bytes)), bytes) << i;
  }
  EXPECT_EQ(Base64Decode("QR=="), "A");  // unused low bits are ignored
  EXPECT_EQ(Base64Decode("QUI="), "AB");
}

// The contract is RFC 4648 base64 as every encoder writes it (pair-log.md): anything else is
// rejected, so the line is reported malformed instead of decoded to guessed bytes.
TEST(PairRecordTest, Base64DecodeRejectsNonCanonicalText) {
  EXPECT_FALSE(Base64Decode("iVBORw==    "));  // whitespace
  EXPECT_FALSE(Base64Decode("  Zm9vYmFy  "));
  EXPECT_FALSE(Base64Decode("Zm9v\nYmFy"));  // a MIME line break
  EXPECT_FALSE(Base64Decode("Zm=v"));        // '=' inside
  EXPECT_FALSE(Base64Decode("===="));        // only padding
  EXPECT_FALSE(Base64Decode("A==="));        // three '='
  EXPECT_FALSE(Base64Decode("Zm9v===="));    // a whole group of padding
  EXPECT_FALSE(Base64Decode("Zg-="));        // base64url's alphabet
  EXPECT_FALSE(Base64Decode("Zm9v YmFy  "));
  EXPECT_FALSE(Base64Decode("Zm9vY"));  // not a multiple of 4
  EXPECT_FALSE(Base64Decode("Zg"));     // padding left out
  // The canonical forms of the same bytes decode.
  EXPECT_EQ(Base64Decode("iVBORw=="), "\x89PNG");
  EXPECT_EQ(Base64Decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(Base64Decode("Zg=="), "f");
  EXPECT_EQ(Base64Decode(""), "");
}

TEST(PairRecordTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("héllo ✓ 😀"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace sg
