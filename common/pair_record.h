// PairRecord: one mirrored exchange (request, primary response, shadow response, timings), and
// the gateway's not-mirrored counters. The JSONL encoding is the stable contract documented in
// docs/pair-log.md (version 1); each JSON field is declared once, in common/pair_log_fields.h,
// and this is the one place that encodes and decodes it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json_fwd.hpp>

namespace sg {

inline constexpr int kPairLogVersion = 1;

struct CapturedRequest {
  std::string method;
  std::string target;
  uint64_t size = 0;                           // whole body, bytes
  std::string sha256;                          // hex digest of the whole body
  std::map<std::string, std::string> headers;  // captured subset, lower-case names
  std::optional<std::string> body;             // raw bytes when captured (body_b64 in JSON)
  bool body_truncated = false;

  bool operator==(const CapturedRequest&) const = default;
};

struct CapturedResponse {
  int status = 0;              // 0: no response arrived
  int64_t latency_us = 0;      // dispatch to complete response
  int64_t send_offset_us = 0;  // shadow only: its dispatch minus the primary's
  std::string outcome;         // primary: ok|error|timeout|connect_failed;
                               // shadow: ok|shadow_error|shadow_timeout|connect_failed
  std::map<std::string, std::string> headers;
  std::string body;  // raw bytes (JSON: "body" if valid UTF-8, else "body_b64")
  bool body_truncated = false;
  std::string error;  // human text when outcome != ok

  bool operator==(const CapturedResponse&) const = default;
};

struct PairRecord {
  std::string id;
  int64_t ts_us = 0;
  std::string route;
  std::string mirror;
  // During a progressive cutover the client may have been served by the shadow's upstream (the
  // candidate) and the primary's answer came from the copy; `primary` stays the reference either
  // way. JSON: "served_by": "candidate", absent (or "primary") otherwise.
  bool served_by_candidate = false;
  CapturedRequest request;
  CapturedResponse primary;
  CapturedResponse shadow;

  bool operator==(const PairRecord&) const = default;
};

struct MirrorCounters {
  int64_t ts_us = 0;
  std::string instance;
  std::string route;
  std::string mirror;
  uint64_t requests = 0;
  std::map<std::string, uint64_t> not_mirrored;  // sampled_out, body_too_large, overload
  std::map<std::string, uint64_t> mirrored;      // ok, shadow_error, shadow_timeout, connect_failed
  uint64_t sink_dropped = 0;
  // Parts of the mirrored pairs left out of the records: body_sampled_out, body_truncated (JSON:
  // "not_captured", written when not empty; older lines have none).
  std::map<std::string, uint64_t> not_captured;

  bool operator==(const MirrorCounters&) const = default;
};

// A progressive cutover's decision (docs/gateway.md, "Progressive cutover"): the gateway writes
// one whenever a route's cutover starts, advances, is promoted, rolls back, pauses, resumes or
// takes a manual share.
struct CutoverDecision {
  int64_t ts_us = 0;
  std::string instance;
  std::string route;
  std::string mirror;    // the candidate
  std::string decision;  // start|advance|promote|rollback|pause|resume|share
  std::string state;     // after it: RUNNING|PAUSED|ROLLED_BACK|PROMOTED
  int step = -1;         // after it; -1: a manual share before the first step
  double share = 0;      // percent served by the candidate after it
  std::string reason;
  // The failing gate of an automatic rollback (empty otherwise): the gate's name and metric, its
  // value and bound, and which side of the bound passes ("max": value <= bound, or "min").
  std::string gate;
  std::string metric;
  std::optional<double> value;
  std::optional<double> bound;
  std::string bound_kind;
  std::optional<uint64_t> judged;  // pairs judged at the step, for the schedule's own decisions

  bool operator==(const CutoverDecision&) const = default;
};

using PairLogEntry = std::variant<PairRecord, MirrorCounters, CutoverDecision>;

// One JSONL line, without the trailing newline: the members in key order, strings as
// nlohmann::json writes them (invalid UTF-8 replaced by U+FFFD).
std::string EncodePairLogLine(const PairRecord& record);
std::string EncodePairLogLine(const MirrorCounters& counters);
std::string EncodePairLogLine(const CutoverDecision& decision);

// Decodes one line (simdjson On Demand; thread-safe: each thread reuses its own parser and
// padded buffer). On failure returns nullopt and sets `error` to a short reason ("invalid JSON",
// "missing field primary.status", "unsupported version 2", ...: docs/pair-log.md, Reading).
std::optional<PairLogEntry> DecodePairLogLine(std::string_view line, std::string* error);

// Helpers shared with the encoders.
std::string Base64Encode(std::string_view bytes);
// RFC 4648 section 4 (standard alphabet, padded to a multiple of 4 characters); nullopt for
// any other text: whitespace or line breaks, '=' anywhere but as the last one or two
// characters, a missing or extra '=' (RFC 4648 section 3.3: non-alphabet characters are
// rejected). Pad bits that are not zero ("QR==") are ignored, as Python's and Go's decoders do.
std::optional<std::string> Base64Decode(std::string_view text);
bool IsValidUtf8(std::string_view bytes);
std::string Sha256Hex(std::string_view bytes);

}  // namespace sg
