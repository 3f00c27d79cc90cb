// Streams pair-log files (docs/pair-log.md) into a Comparison, one line at a time: memory does
// not depend on the file size. Lines are decoded only by common/pair_record.h.
#pragma once

#include <cstdint>
#include <istream>
#include <set>
#include <string>
#include <vector>

#include "common/pair_record.h"

namespace sg::comparator {

class Comparison;

struct ReadOptions {
  // Only records (pairs and counters) of these mirrors are judged; empty: every mirror. A gateway
  // that mirrors one route to several candidates writes them all into one log.
  std::set<std::string> mirrors;
  // Longer lines are malformed ("line longer than ..."), read past without being held: memory
  // stays bounded whatever the input (a stray binary file, /dev/zero).
  size_t max_line_bytes = 16 << 20;
};

struct ReadStats {
  uint64_t lines = 0;
  uint64_t pairs = 0;
  uint64_t counters = 0;
  uint64_t malformed = 0;  // also counted, with the reason, in the Comparison
  uint64_t skipped = 0;    // records of mirrors that ReadOptions::mirrors leaves out
  // The progressive cutovers' decisions ("cutover" lines), as read: shown in the report, not
  // judged.
  std::vector<CutoverDecision> cutover_decisions;
};

// Reads every line of `in`. Malformed lines (bad JSON, missing fields, unsupported version, a
// truncated last line, a line over max_line_bytes, a negative latency, a status outside 100-599)
// are counted by reason and never stop the read.
ReadStats ReadPairLog(std::istream& in, Comparison& comparison, const ReadOptions& options = {});

// Opens `path` ("-" = standard input) and reads it as above, decompressing a zstd file (the
// gateway's rotated files). False with `error` when the file cannot be opened or read, or its
// compressed data is corrupt or truncated (an unknown number of records lost: not a malformed
// line to count, an input to fix).
bool ReadPairLogFile(const std::string& path, Comparison& comparison, ReadStats* stats,
                     std::string* error, const ReadOptions& options = {});

}  // namespace sg::comparator
