// Checkpoints of a comparison's state (docs/comparator.md, "Checkpoints"): the online
// comparator writes its exact state (state_codec.h) to one file, periodically and at shutdown,
// and resumes from it at start for the same run.
//
// The file is one JSON document:
//   {"format": "shadowgate.comparison-checkpoint", "version": 1, "run": NAME,
//    "config_sha256": HEX, "written_at_us": T, "judged": N, "pairs": P,
//    "state_sha256": HEX, "state": {...}}
// written atomically: a temporary file next to it, fsynced, renamed over it, then the folder
// fsynced, so a crash leaves the old checkpoint or the new one whole. A checkpoint is taken only
// when it is whole (state_sha256 matches), of this version, of this run and of this compare config
// (config_sha256); anything else is refused and set aside (renamed to PATH.refused-<UTC time>),
// never merged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace sg::comparator {

class Comparison;
struct CompareConfig;

inline constexpr const char* kCheckpointFormat = "shadowgate.comparison-checkpoint";
inline constexpr int kCheckpointVersion = 1;

struct CheckpointIdentity {
  std::string run;            // the run's name: a checkpoint of another run is foreign
  std::string config_sha256;  // the compare config's hash (CompareConfigHash)
};

// The hash of a compare config's text as JSON (whitespace and key order do not count).
std::string CompareConfigHash(const std::string& config_text);

// The checkpoint document of `comparison`'s state (one line of JSON). Strings that are not UTF-8
// are written with U+FFFD for each bad byte (so they resume as the report shows them); every
// other value reads back exactly.
std::string EncodeCheckpoint(const CheckpointIdentity& identity, const Comparison& comparison,
                             uint64_t judged);

// Writes EncodeCheckpoint(...) to `path` atomically (common/atomic_file.h). False with `error`
// (path and reason).
bool WriteCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                     const Comparison& comparison, uint64_t judged, std::string* error);

struct LoadedCheckpoint {
  enum class Result { kNone, kLoaded, kRefused };
  Result result = Result::kNone;
  std::string reason;     // kRefused: why (foreign run, other config, corrupt, ...)
  std::string set_aside;  // kRefused: where the file was moved ("" when it could not be)
  uint64_t judged = 0;    // kLoaded: records judged into the state
  uint64_t pairs = 0;
  int64_t written_at_us = 0;
};

// Reads `path` into `comparison`, replacing its state (`config`: the one `comparison` was built
// from, which `identity` hashes). kNone when there is no file; kRefused (the file renamed aside,
// `comparison` untouched) when it cannot be taken.
LoadedCheckpoint LoadCheckpoint(const std::string& path, const CheckpointIdentity& identity,
                                std::shared_ptr<const CompareConfig> config,
                                Comparison* comparison);

}  // namespace sg::comparator
