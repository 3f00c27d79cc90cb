// A pair record with every field set, shared by the pair-log tests.
#pragma once

#include <string>

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

}  // namespace sg::testing
