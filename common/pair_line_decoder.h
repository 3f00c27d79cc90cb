// The two decoders behind DecodePairLogLine (common/pair_record.h). Internal to sg_common; declared
// here for pair_record.cc and the tests that check the two agree.
//
// DecodePairLineDom is the reference: it parses the line into an nlohmann::json DOM and reads the
// fields from it; it classifies every malformed line ("invalid JSON", "missing field x", ...).
// DecodePairLineFast reads a `"type": "pair"` line in one pass straight into a PairRecord, with no
// DOM and no per-field lookups. It vouches only for lines it can decode exactly as the reference
// does and declines everything else, so DecodePairLogLine is "fast path, else reference".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/pair_record.h"

namespace sg::pair_log_internal {

// True with `out` filled when `line` is a well-formed version 1 pair line and the result is the
// one DecodePairLineDom returns. False (with `out` unspecified) when it cannot vouch for that:
// malformed JSON, a counters or cutover line, a required field missing, a known field null, mistyped or
// repeated, an integer with a fraction, an exponent or more than 18 digits, an int field outside
// int, a negative unsigned field, a header that is not a string or repeats a name, base64
// Base64Decode rejects, nesting deeper than 32, a byte order mark. Never sets an error: the
// caller asks the reference decoder, which names the problem.
bool DecodePairLineFast(std::string_view line, PairRecord* out);

// The reference decoder (nlohmann::json DOM); same contract as DecodePairLogLine.
std::optional<PairLogEntry> DecodePairLineDom(std::string_view line, std::string* error);

}  // namespace sg::pair_log_internal
