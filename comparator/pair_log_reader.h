// Streams pair logs (docs/pair-log.md) into a Comparison in time order, one line at a time:
// memory depends on how many inputs overlap in time and on the reorder window, never on the size
// or the number of the files. Lines are decoded only by common/pair_record.h.
//
// Several inputs (the rotated files of several gateways, compressed or not) are merged by ts_us,
// so that a month judged from many files is judged as one time-ordered log: a file joins the
// merge when the merge reaches its first line's time, and leaves it at its end.
#pragma once

#include <chrono>
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
  // A gateway writes a pair once both answers are in, stamped with the request's time, so its
  // lines are out of order by up to the slower side's timeout (60 s: the primary's default
  // total_timeout). Each input's lines are held until that input has read a line this much later,
  // and put back in time order; 0: judged in file order. A line later than that is still judged,
  // where it is read, and counted late.
  std::chrono::microseconds reorder_window = std::chrono::seconds(60);
  // Bytes of lines one input may hold for reordering; past it the oldest is released early.
  size_t max_held_bytes = 64 << 20;
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
  uint64_t late = 0;       // judged after a later record (of any input): beyond the window
};

// Reads every line of `in`, in time order within ReadOptions::reorder_window. Malformed lines (bad
// JSON, missing fields, unsupported version, a truncated last line, a line over max_line_bytes, a
// negative latency, a status outside 100-599) are counted by reason and never stop the read.
ReadStats ReadPairLog(std::istream& in, Comparison& comparison, const ReadOptions& options = {});

// The pair-log files that `inputs` name, in order: a file as given (plain or zstd), "-" (standard
// input) as is, and a folder as the pair-log files directly in it, by name: regular files, not
// hidden, named *.jsonl, *.jsonl.N, *.jsonl.zst or *.jsonl.N.zst (N: digits), as the gateway
// rotates them (path, path.1.zst ...; docs/pair-log.md). Where a folder holds both NAME.N and
// NAME.N.zst (the gateway was stopped while compressing it), the compressed one is taken: the
// gateway renames it into place only once it is whole. False with `error` for a folder without
// pair-log files, or a file (or "-") named twice. Folders are not searched below their top.
bool ExpandPairLogInputs(const std::vector<std::string>& inputs, std::vector<std::string>* files,
                         std::string* error);

// Reads `files` ("-" = standard input) as one log, merged by time (above), decompressing zstd
// files. `stats` gets one entry per file; `most_open` (when given) the most files that were open
// at once (a file is opened when the merge nears its first record's time and closed at its
// end: the files of one gateway's rotation are open one or two at a time). False with `error`
// when a file cannot be opened or read, or its compressed data is corrupt or truncated (an
// unknown number of records lost: not a malformed line to count, an input to fix); what was read
// before was judged.
bool ReadPairLogs(const std::vector<std::string>& files, Comparison& comparison,
                  std::vector<ReadStats>* stats, std::string* error,
                  const ReadOptions& options = {}, size_t* most_open = nullptr);

// One file, as ReadPairLogs.
bool ReadPairLogFile(const std::string& path, Comparison& comparison, ReadStats* stats,
                     std::string* error, const ReadOptions& options = {});

}  // namespace sg::comparator
