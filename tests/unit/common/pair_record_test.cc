#include "common/pair_record.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sg {
namespace {

PairRecord SamplePair() {
  PairRecord p;
  p.id = "req-1";
  p.ts_us = 1795000000123456;
  p.route = "classify";
  p.mirror = "student";
  p.request = {"POST",
               "/predictions/fashion",
               4,
               Sha256Hex("\x89PNG"),
               {{"content-type", "image/png"}, {"x-true-label", "Trouser"}},
               std::string("\x89PNG"),
               false};
  p.primary.status = 200;
  p.primary.latency_us = 5321;
  p.primary.outcome = "ok";
  p.primary.headers = {{"content-type", "application/json"}};
  p.primary.body = R"({"Trouser": 0.98})";
  p.shadow.status = 0;
  p.shadow.latency_us = 100000;
  p.shadow.send_offset_us = 14;
  p.shadow.outcome = "shadow_timeout";
  p.shadow.body = std::string("\xff\xfe binary", 9);
  p.shadow.error = "no response within 100ms";
  return p;
}

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

TEST(PairRecordTest, KnownDigestsAndEncodings) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("abc"));
  EXPECT_TRUE(IsValidUtf8("héllo ✓ 😀"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace sg
