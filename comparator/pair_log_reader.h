// Streams pair-log files (docs/pair-log.md) into a Comparison, one line at a time: memory does
// not depend on the file size. Lines are decoded only by common/pair_record.h.
#pragma once

#include <cstdint>
#include <istream>
#include <string>

namespace sg::comparator {

class Comparison;

struct ReadStats {
  uint64_t lines = 0;
  uint64_t pairs = 0;
  uint64_t counters = 0;
  uint64_t malformed = 0;  // also counted, with the reason, in the Comparison
};

// Reads every line of `in`. Malformed lines (bad JSON, missing fields, unsupported version, a
// truncated last line) are counted by reason and never stop the read.
ReadStats ReadPairLog(std::istream& in, Comparison& comparison);

// Opens `path` ("-" = standard input) and reads it as above. False with `error` when the file
// cannot be opened or read.
bool ReadPairLogFile(const std::string& path, Comparison& comparison, ReadStats* stats,
                     std::string* error);

}  // namespace sg::comparator
