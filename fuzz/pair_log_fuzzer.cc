// libFuzzer target: one pair-log line (docs/pair-log.md) through DecodePairLogLine, and what it
// decodes to through the comparator's judging (the default rules, as sg-compare runs them).
// Oracles besides "no crash":
//  - DecodePairLogLine (fast path, else the DOM reference) and the reference alone agree on
//    success, on the error text and on the entry; a line the fast path vouches for decodes to
//    the reference's record (the contract in common/pair_line_decoder.h);
//  - a decoded entry encodes to a line that decodes back to the same entry, and the direct
//    encoder writes the DOM encoder's line byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "common/pair_line_decoder.h"
#include "common/pair_record.h"
#include "comparator/compare_config.h"
#include "comparator/comparison.h"

namespace {

[[noreturn]] void Fail(const char* what, std::string_view line, std::string_view detail = {}) {
  std::fprintf(stderr, "pair_log_fuzzer: %s\nline: %.*s\n%.*s\n", what,
               static_cast<int>(line.size()), line.data(), static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void CheckRoundTrip(const sg::PairLogEntry& entry, std::string_view line) {
  std::string encoded;
  if (const auto* pair = std::get_if<sg::PairRecord>(&entry)) {
    encoded = sg::EncodePairLogLine(*pair);
    if (encoded != sg::EncodePairLogLineDom(*pair)) {
      Fail("the direct encoder and the DOM encoder differ", line, encoded);
    }
  } else if (const auto* counters = std::get_if<sg::MirrorCounters>(&entry)) {
    encoded = sg::EncodePairLogLine(*counters);
  } else {
    encoded = sg::EncodePairLogLine(std::get<sg::CutoverDecision>(entry));
  }
  std::string error;
  auto again = sg::DecodePairLogLine(encoded, &error);
  if (!again) Fail("an encoded entry does not decode", line, encoded + "\n" + error);
  if (!(*again == entry)) Fail("an entry does not survive encoding", line, encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto config =
      std::make_shared<const sg::comparator::CompareConfig>(sg::comparator::DefaultCompareConfig());
  std::string_view line(reinterpret_cast<const char*>(data), size);

  std::string error = "unset", reference_error = "unset";
  const auto decoded = sg::DecodePairLogLine(line, &error);
  const auto reference = sg::pair_log_internal::DecodePairLineDom(line, &reference_error);
  if (decoded.has_value() != reference.has_value()) {
    Fail("DecodePairLogLine and the reference disagree on success", line,
         error + " / " + reference_error);
  }
  if (error != reference_error) {
    Fail("DecodePairLogLine and the reference give different errors", line,
         error + " / " + reference_error);
  }
  if (decoded && !(*decoded == *reference)) {
    Fail("DecodePairLogLine and the reference decode different entries", line);
  }
  sg::PairRecord fast;
  if (sg::pair_log_internal::DecodePairLineFast(line, &fast)) {
    if (!reference) Fail("the fast path accepted a line the reference rejects", line);
    const auto* pair = std::get_if<sg::PairRecord>(&*reference);
    if (pair == nullptr || !(fast == *pair)) Fail("the fast path decoded another record", line);
  }
  if (!decoded) return 0;
  CheckRoundTrip(*decoded, line);

  // What sg-compare does with the entry.
  sg::comparator::Comparison comparison(config);
  if (const auto* pair = std::get_if<sg::PairRecord>(&*decoded)) {
    comparison.Add(*pair);
  } else if (const auto* counters = std::get_if<sg::MirrorCounters>(&*decoded)) {
    comparison.AddCounters(*counters);
  }  // a cutover decision is shown, not judged
  (void)comparison.ToJson().dump();
  return 0;
}
