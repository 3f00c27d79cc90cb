// libFuzzer target: one pair-log line (docs/pair-log.md) through DecodePairLogLine (simdjson On
// Demand, driven by common/pair_log_fields.h), and what it decodes to through the comparator's
// judging (the default rules, as sg-compare runs them). Oracles besides "no crash":
//  - "invalid JSON" exactly when nlohmann::json (an independent parser) rejects the line, or
//    takes it but it is not an object or nests deeper than the decoder's 64 levels;
//  - a failed line has a reason; a decoded entry encodes to a line that decodes back to the same
//    entry, and encoding that again gives the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

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

std::string Encode(const sg::PairLogEntry& entry) {
  return std::visit([](const auto& e) { return sg::EncodePairLogLine(e); }, entry);
}

// Whether nlohmann::json reads the line as a JSON object nested at most 64 levels below it.
enum class Reference { kNotJson, kObject, kOther };
Reference ReadWithNlohmann(std::string_view line) {
  // nlohmann's lexer takes a NUL byte for the end of the input ("{}\0x" parses); JSON has no
  // unescaped NUL anywhere.
  if (line.find('\0') != std::string_view::npos) return Reference::kNotJson;
  int depth = 0;
  bool object = false, first = true;
  auto seen = [&](int d, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if (first) object = event == nlohmann::json::parse_event_t::object_start;
    first = false;
    if (d > depth) depth = d;
    return false;  // keep nothing
  };
  try {
    (void)nlohmann::json::parse(line, seen);
  } catch (const nlohmann::json::exception&) {
    return Reference::kNotJson;
  }
  return object && depth <= 64 ? Reference::kObject : Reference::kOther;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto config =
      std::make_shared<const sg::comparator::CompareConfig>(sg::comparator::DefaultCompareConfig());
  std::string_view line(reinterpret_cast<const char*>(data), size);

  std::string error;
  const auto decoded = sg::DecodePairLogLine(line, &error);
  const Reference reference = ReadWithNlohmann(line);
  if (reference == Reference::kNotJson && (decoded || error != "invalid JSON")) {
    Fail("nlohmann::json rejects a line the decoder does not call invalid JSON", line, error);
  }
  if (reference == Reference::kObject && error == "invalid JSON") {
    Fail("the decoder calls a JSON object invalid JSON", line);
  }
  if (!decoded) {
    if (error.empty()) Fail("a rejected line has no reason", line);
    return 0;
  }

  const std::string encoded = Encode(*decoded);
  auto again = sg::DecodePairLogLine(encoded, &error);
  if (!again) Fail("an encoded entry does not decode", line, encoded + "\n" + error);
  if (!(*again == *decoded)) Fail("an entry does not survive encoding", line, encoded);
  if (Encode(*again) != encoded) Fail("encoding is not stable", line, encoded);

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
