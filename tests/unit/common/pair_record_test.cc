// The pair log's encoder against lines written out by hand (docs/pair-log.md), the field tables
// against the doc, and the helpers (base64, UTF-8, SHA-256).
#include "common/pair_record.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/pair_log_fields.h"
#include "sample_pair.h"
#include "tests/support/test_support.h"

namespace sg {
namespace {

using testing::kSamplePairLine;
using testing::SamplePair;

TEST(PairRecordTest, EncodesTheSampleAsWritten) {
  EXPECT_EQ(EncodePairLogLine(SamplePair()), kSamplePairLine);
  std::string error;
  auto decoded = DecodePairLogLine(kSamplePairLine, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_TRUE(std::get<PairRecord>(*decoded) == SamplePair());
}

// What each kind of field looks like on the wire: escapes as nlohmann::json writes them (short
// forms, "\u00xx" for other control characters, '/' and DEL and UTF-8 kept), invalid UTF-8 in a
// text field replaced by U+FFFD, a binary body as body_b64, and the fields left out when empty
// (error, the request's body) or not the shadow's (send_offset_us).
TEST(PairRecordTest, EncodesEachKindAsDocumented) {
  PairRecord p;
  p.id = std::string("a\"b\\c/\x01\b\f\n\r\t\x7f \xc3\xa9\x00", 17);
  p.ts_us = -5;
  p.route = "r";
  p.served_by_candidate = true;
  p.request.method = "GET";
  p.request.target = "/x\xffy";
  p.request.size = 18446744073709551615u;
  p.primary.status = -1;
  p.primary.latency_us = 9223372036854775807;
  p.primary.send_offset_us = 99;  // the primary's is not written
  p.primary.outcome = "ok";
  p.primary.body = std::string("\xff\x00", 2);
  p.primary.body_truncated = true;
  p.shadow.latency_us = -9223372036854775807 - 1;
  p.shadow.send_offset_us = -3;
  p.shadow.outcome = "connect_failed";
  p.shadow.headers = {{"b", "2"}, {"a", "1"}};
  EXPECT_EQ(
      EncodePairLogLine(p),
      "{\"id\":\"a\\\"b\\\\c/\\u0001\\b\\f\\n\\r\\t\x7f \xc3\xa9\\u0000\",\"mirror\":\"\","
      "\"primary\":{\"body_b64\":\"/wA=\",\"body_truncated\":true,\"headers\":{},"
      "\"latency_us\":9223372036854775807,\"outcome\":\"ok\",\"status\":-1},"
      "\"request\":{\"body_truncated\":false,\"headers\":{},\"method\":\"GET\",\"sha256\":\"\","
      "\"size\":18446744073709551615,\"target\":\"/x\xef\xbf\xbdy\"},"
      "\"route\":\"r\",\"served_by\":\"candidate\","
      "\"shadow\":{\"body\":\"\",\"body_truncated\":false,\"headers\":{\"a\":\"1\",\"b\":\"2\"},"
      "\"latency_us\":-9223372036854775808,\"outcome\":\"connect_failed\",\"send_offset_us\":-3,"
      "\"status\":0},"
      "\"ts_us\":-5,\"type\":\"pair\",\"v\":1}");
}

TEST(PairRecordTest, EncodesCountersAsWritten) {
  MirrorCounters c;
  c.ts_us = 1;
  c.instance = "h:1";
  c.route = "r";
  c.mirror = "m";
  c.requests = 10;
  c.not_mirrored = {{"overload", 2}, {"body_too_large", 0}};
  c.mirrored = {{"ok", 8}};
  // What was not captured (capture.body_sample): written only when there is something to say,
  // so lines without it read as before.
  EXPECT_EQ(EncodePairLogLine(c),
            R"({"instance":"h:1","mirror":"m","mirrored":{"ok":8},)"
            R"("not_mirrored":{"body_too_large":0,"overload":2},"requests":10,"route":"r",)"
            R"("sink_dropped":0,"ts_us":1,"type":"counters","v":1})");
  c.not_captured = {{"body_sampled_out", 7}, {"body_truncated", 1}};
  c.sink_dropped = 3;
  EXPECT_EQ(EncodePairLogLine(c),
            R"({"instance":"h:1","mirror":"m","mirrored":{"ok":8},)"
            R"("not_captured":{"body_sampled_out":7,"body_truncated":1},)"
            R"("not_mirrored":{"body_too_large":0,"overload":2},"requests":10,"route":"r",)"
            R"("sink_dropped":3,"ts_us":1,"type":"counters","v":1})");
}

// An automatic rollback for a failing gate, every field set (the doc's example).
CutoverDecision GateRollback() {
  CutoverDecision d;
  d.ts_us = 1795000000123456;
  d.instance = "h:7:1";
  d.route = "classify";
  d.mirror = "cpu";
  d.decision = "rollback";
  d.state = "ROLLED_BACK";
  d.step = 2;
  d.share = 0;
  d.reason = "gate \"errors\" (shadow_error_rate) value 0.31 > bound 0.002";
  d.gate = "errors";
  d.metric = "shadow_error_rate";
  d.value = 0.31;
  d.bound = 0.002;
  d.bound_kind = "max";
  d.judged = 412;
  return d;
}

// Numbers as nlohmann::json writes doubles ("0.0", "1e-07", "1e+20"), and the gate's fields only
// when there is a gate.
TEST(PairRecordTest, EncodesCutoverDecisionsAsWritten) {
  EXPECT_EQ(EncodePairLogLine(GateRollback()),
            R"({"bound":0.002,"bound_kind":"max","decision":"rollback","gate":"errors",)"
            R"("instance":"h:7:1","judged":412,"metric":"shadow_error_rate","mirror":"cpu",)"
            R"("reason":"gate \"errors\" (shadow_error_rate) value 0.31 > bound 0.002",)"
            R"("route":"classify","share":0.0,"state":"ROLLED_BACK","step":2,)"
            R"("ts_us":1795000000123456,"type":"cutover","v":1,"value":0.31})");

  CutoverDecision manual;  // no gate: the optional fields are left out
  manual.ts_us = 5;
  manual.route = "r";
  manual.decision = "pause";
  manual.state = "PAUSED";
  manual.step = -1;
  manual.share = 12.5;
  manual.reason = "manual";
  EXPECT_EQ(EncodePairLogLine(manual),
            R"({"decision":"pause","instance":"","mirror":"","reason":"manual","route":"r",)"
            R"("share":12.5,"state":"PAUSED","step":-1,"ts_us":5,"type":"cutover","v":1})");
  manual.value = 1e-7;
  manual.bound = 1e20;
  manual.judged = 0;
  EXPECT_EQ(EncodePairLogLine(manual),
            R"({"bound":1e+20,"decision":"pause","instance":"","judged":0,"mirror":"",)"
            R"("reason":"manual","route":"r","share":12.5,"state":"PAUSED","step":-1,"ts_us":5,)"
            R"("type":"cutover","v":1,"value":1e-07})");
}

// served_by (progressive cutover): written only for the candidate, so a line without it (every
// line written before it existed) reads as served by the primary; another value is malformed.
TEST(PairRecordTest, ServedByIsOptionalAndChecked) {
  std::string line(kSamplePairLine);
  std::string error;
  auto decoded = DecodePairLogLine(line, &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_FALSE(std::get<PairRecord>(*decoded).served_by_candidate);

  const size_t at = line.find(R"(,"shadow":)");
  for (const auto& [value, candidate] :
       {std::pair{"\"candidate\"", true}, std::pair{"\"primary\"", false}}) {
    decoded = DecodePairLogLine(
        std::string(line).insert(at, R"(,"served_by":)" + std::string(value)), &error);
    ASSERT_TRUE(decoded) << error;
    EXPECT_EQ(std::get<PairRecord>(*decoded).served_by_candidate, candidate) << value;
  }
  for (const char* value : {"\"shadow\"", "\"Candidate\"", "\"\""}) {
    EXPECT_FALSE(DecodePairLogLine(
        std::string(line).insert(at, R"(,"served_by":)" + std::string(value)), &error));
    EXPECT_EQ(error, "bad value for field served_by") << value;
  }
  EXPECT_FALSE(DecodePairLogLine(std::string(line).insert(at, R"(,"served_by":true)"), &error));
  EXPECT_EQ(error, "bad type for field served_by");
}

TEST(PairRecordTest, DecodesCountersLines) {
  std::string error;
  auto decoded = DecodePairLogLine(
      R"({"v": 1, "type": "counters", "ts_us": 1795000000999999, "instance": "host:7:1",
          "route": "classify", "mirror": "student", "requests": 10000,
          "not_mirrored": {"sampled_out": 0, "body_too_large": 3, "overload": 12},
          "mirrored": {"ok": 9950, "shadow_error": 20}, "sink_dropped": 2,
          "not_captured": {"body_sampled_out": 9850, "body_truncated": 0}})",
      &error);
  ASSERT_TRUE(decoded) << error;
  MirrorCounters expected;
  expected.ts_us = 1795000000999999;
  expected.instance = "host:7:1";
  expected.route = "classify";
  expected.mirror = "student";
  expected.requests = 10000;
  expected.not_mirrored = {{"sampled_out", 0}, {"body_too_large", 3}, {"overload", 12}};
  expected.mirrored = {{"ok", 9950}, {"shadow_error", 20}};
  expected.sink_dropped = 2;
  expected.not_captured = {{"body_sampled_out", 9850}, {"body_truncated", 0}};
  EXPECT_EQ(std::get<MirrorCounters>(*decoded), expected);

  // Lines written before not_captured existed; the optional counts absent.
  decoded = DecodePairLogLine(
      R"({"v":1,"type":"counters","ts_us":5,"route":"r","mirror":"m","requests":3})", &error);
  ASSERT_TRUE(decoded) << error;
  MirrorCounters old;
  old.ts_us = 5;
  old.route = "r";
  old.mirror = "m";
  old.requests = 3;
  EXPECT_EQ(std::get<MirrorCounters>(*decoded), old);

  EXPECT_FALSE(DecodePairLogLine(R"({"v":1,"type":"counters","ts_us":5,"route":"r"})", &error));
  EXPECT_EQ(error, "missing field mirror");
  EXPECT_FALSE(DecodePairLogLine(
      R"({"v":1,"type":"counters","ts_us":5,"route":"r","mirror":"m","mirrored":{"ok":-1}})",
      &error));
  EXPECT_EQ(error, "bad type for field mirrored");
}

// A cutover decision line (docs/pair-log.md): as documented, with and without the failing gate's
// fields.
TEST(PairRecordTest, DecodesCutoverDecisionLines) {
  std::string error;
  auto decoded = DecodePairLogLine(
      R"({"v": 1, "type": "cutover", "ts_us": 1795000000123456, "instance": "h:7:1",
          "route": "classify", "mirror": "cpu", "decision": "rollback", "state": "ROLLED_BACK",
          "step": 2, "share": 0, "reason": "gate \"errors\" (shadow_error_rate) value 0.31 > bound 0.002",
          "gate": "errors", "metric": "shadow_error_rate", "value": 0.31, "bound": 2e-3,
          "bound_kind": "max", "judged": 412})",
      &error);
  ASSERT_TRUE(decoded) << error;
  ASSERT_TRUE(std::holds_alternative<CutoverDecision>(*decoded));
  EXPECT_EQ(std::get<CutoverDecision>(*decoded), GateRollback());

  const std::string manual =
      R"({"decision":"pause","reason":"manual","route":"r","share":12.5,"state":"PAUSED",)"
      R"("step":-1,"ts_us":5,"type":"cutover","v":1})";
  decoded = DecodePairLogLine(manual, &error);
  ASSERT_TRUE(decoded) << error;
  const auto& d = std::get<CutoverDecision>(*decoded);
  EXPECT_EQ(d.step, -1);
  EXPECT_EQ(d.share, 12.5);
  EXPECT_FALSE(d.value || d.bound || d.judged);

  auto json = nlohmann::json::parse(manual);
  json.erase("decision");
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "missing field decision");
  json = nlohmann::json::parse(manual);
  json["value"] = "high";
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field value");
  json = nlohmann::json::parse(manual);
  json["step"] = 3e9;  // beyond int
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field step");
}

TEST(PairRecordTest, MalformedLinesAreRejectedWithReason) {
  std::string error;
  const std::string line(kSamplePairLine);
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

// Integer fields take integer literals in the member's range (docs/pair-log.md, Reading): a
// float, even one with an integer value, is "bad type" (the old DOM decoder cast floats, which
// was undefined for `"ts_us": 1e81`, found by fuzz/pair_log_fuzzer with UBSan).
TEST(PairRecordTest, NumberOutsideItsFieldsTypeIsMalformed) {
  std::string error;
  auto json = nlohmann::json::parse(kSamplePairLine);
  for (const nlohmann::json& bad :
       {nlohmann::json(1e81), nlohmann::json(9223372036854775808.0), nlohmann::json(-1e300),
        nlohmann::json(12.0), nlohmann::json(9223372036854775808u)}) {
    json["ts_us"] = bad;
    EXPECT_FALSE(DecodePairLogLine(json.dump(), &error)) << bad;
    EXPECT_EQ(error, "bad type for field ts_us");
  }
  json["ts_us"] = -9223372036854775807 - 1;  // INT64_MIN fits
  auto decoded = DecodePairLogLine(json.dump(), &error);
  ASSERT_TRUE(decoded) << error;
  EXPECT_EQ(std::get<PairRecord>(*decoded).ts_us, -9223372036854775807 - 1);
  json = nlohmann::json::parse(kSamplePairLine);
  json["primary"]["status"] = 3000000000;  // beyond int
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field primary.status");
  json = nlohmann::json::parse(kSamplePairLine);
  json["request"]["size"] = -4;  // uint64_t
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field request.size");
  const std::string counters =
      R"({"v":1,"type":"counters","ts_us":1,"route":"r","mirror":"m","requests":0})";
  json = nlohmann::json::parse(counters);
  json["requests"] = -1.0;
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field requests");
  json = nlohmann::json::parse(counters);
  json["not_mirrored"] = {{"overload", 1.3e93}};  // a map's value
  EXPECT_FALSE(DecodePairLogLine(json.dump(), &error));
  EXPECT_EQ(error, "bad type for field not_mirrored");
}

// Every key of a table (nested tables' keys too, and "<key>_b64" for a text-or-base64 body).
template <typename Fields>
void CollectKeys(const Fields& fields, std::vector<std::string>* keys) {
  std::apply(
      [&](const auto&... field) {
        auto add = [&](const auto& f) {
          const std::string name(f.key.name());
          keys->push_back(name);
          using Descriptor = std::decay_t<decltype(f)>;
          if constexpr (requires { typename Descriptor::Kind; }) {
            if constexpr (requires { f.kind.fields; }) CollectKeys(*f.kind.fields, keys);
            if constexpr (std::is_same_v<typename Descriptor::Kind, pair_log::TextOrBase64>) {
              keys->push_back(name + "_b64");
            }
          }
        };
        (add(field), ...);
      },
      fields);
}

// docs/pair-log.md is the human contract: a field added to a table without its doc line fails
// here. Each key must appear, quoted, in the section of its line type.
TEST(PairRecordDocTest, TheDocNamesEveryField) {
  const std::string doc = testing::ReadFile(testing::SourceDir() / "docs/pair-log.md");
  ASSERT_FALSE(doc.empty());
  auto section = [&](const std::string& type) {
    const size_t start = doc.find("## `\"type\": \"" + type + "\"`");
    EXPECT_NE(start, std::string::npos) << type;
    if (start == std::string::npos) return std::string();
    return doc.substr(start, doc.find("\n## ", start + 1) - start);
  };
  std::vector<std::string> pair_keys, counters_keys, cutover_keys;
  CollectKeys(pair_log::kPairFields, &pair_keys);
  CollectKeys(pair_log::kCountersFields, &counters_keys);
  CollectKeys(pair_log::kCutoverFields, &cutover_keys);
  EXPECT_EQ(pair_keys.size(), 35u);  // 10, the request's 7, the responses' 8 + body_b64 each
  for (const auto& [type, keys] :
       {std::pair{"pair", pair_keys}, std::pair{"counters", counters_keys},
        std::pair{"cutover", cutover_keys}}) {
    const std::string text = section(type);
    for (const std::string& key : keys) {
      EXPECT_NE(text.find('"' + key + '"'), std::string::npos)
          << "docs/pair-log.md, section \"" << type << "\", does not name \"" << key << "\"";
    }
  }
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
