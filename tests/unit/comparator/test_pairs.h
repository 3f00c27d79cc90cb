// Builders for pair records used by the comparator's tests.
#pragma once

#include <map>
#include <string>

#include "common/pair_record.h"

namespace sg::comparator::testing {

inline PairRecord MakePair(const std::string& id, const std::string& primary_body,
                           const std::string& shadow_body, int64_t primary_us = 5000,
                           int64_t shadow_us = 6000) {
  PairRecord p;
  p.id = id;
  p.ts_us = 1795000000000000;
  p.route = "classify";
  p.mirror = "student";
  p.request.method = "POST";
  p.request.target = "/predictions/fashion";
  p.request.size = 500;
  p.request.sha256 = std::string(64, 'a');
  p.primary.status = 200;
  p.primary.outcome = "ok";
  p.primary.latency_us = primary_us;
  p.primary.headers["content-type"] = "application/json";
  p.primary.body = primary_body;
  p.shadow = p.primary;
  p.shadow.latency_us = shadow_us;
  p.shadow.send_offset_us = 10;
  p.shadow.body = shadow_body;
  return p;
}

}  // namespace sg::comparator::testing
