// A pair record with every field set, shared by the pair-log tests.
#pragma once

#include <string>
#include <string_view>

#include "common/pair_record.h"

namespace sg::testing {

// Primary "ok" with a JSON body; shadow timed out with a binary body (so body_b64) and an error;
// the request body "\x89PNG" is "iVBORw==" in base64.
inline PairRecord SamplePair() {
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

// SamplePair() as every version 1 writer writes it: members in key order, the request's digest
// (sha256sum) and the bodies' base64 (Python's base64 module) worked out by hand.
inline constexpr std::string_view kSamplePairLine =
    R"({"id":"req-1","mirror":"student",)"
    R"("primary":{"body":"{\"Trouser\": 0.98}","body_truncated":false,)"
    R"("headers":{"content-type":"application/json"},"latency_us":5321,"outcome":"ok",)"
    R"("status":200},)"
    R"("request":{"body_b64":"iVBORw==","body_truncated":false,)"
    R"("headers":{"content-type":"image/png","x-true-label":"Trouser"},"method":"POST",)"
    R"("sha256":"0f4636c78f65d3639ece5a064b5ae753e3408614a14fb18ab4d7540d2c248543","size":4,)"
    R"("target":"/predictions/fashion"},)"
    R"("route":"classify",)"
    R"("shadow":{"body_b64":"//4gYmluYXJ5","body_truncated":false,)"
    R"("error":"no response within 100ms","headers":{},"latency_us":100000,)"
    R"("outcome":"shadow_timeout","send_offset_us":14,"status":0},)"
    R"("ts_us":1795000000123456,"type":"pair","v":1})";

}  // namespace sg::testing
