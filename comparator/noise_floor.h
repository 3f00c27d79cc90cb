// The noise floor (Diffy's idea): the gateway also mirrors to a second instance of the primary;
// those pairs (primary vs itself) measure the primary's own non-determinism. NoiseFloorJson puts
// the candidate's figures next to the noise's and flags what exceeds it by both margins:
// candidate > noise * (1 + rel) + abs. The gates use the same thresholds to widen their bounds
// (a candidate is never asked to agree with the primary better than the primary agrees with
// itself), overall and per slice.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "comparator/compare_config.h"

namespace sg::comparator {

// `candidate` and `noise` are Comparison::ToJson() of the candidate's and the noise mirror's
// pairs. The "noise_floor" object of the comparison.
nlohmann::json NoiseFloorJson(const nlohmann::json& candidate, const nlohmann::json& noise,
                              const NoiseFloor& config);

}  // namespace sg::comparator
