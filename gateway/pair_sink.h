// PairSink: where captured pair records and counters records go: JsonlPairSink (the pair log,
// written off the I/O threads), ComparatorPairSink (the in-process comparator) and
// FanOutPairSink (both). The gateway depends only on this interface.
#pragma once

#include <cstdint>

#include "common/pair_record.h"

namespace sg::gateway {

class PairSink {
 public:
  virtual ~PairSink() = default;

  // Hands over one record. Called from I/O threads: MUST NOT block (no file or network I/O, no
  // waiting on a full queue). Returns false when the record was dropped (and counted).
  virtual bool Submit(PairRecord record) = 0;
  virtual bool Submit(MirrorCounters counters) = 0;
  // A cutover's decision (Cutover, on its evaluation or admin thread). Default: not recorded (the
  // in-process comparator judges pairs and counters only).
  virtual bool Submit(CutoverDecision /*decision*/) { return true; }

  // Records dropped so far. Thread-safe.
  virtual uint64_t dropped() const = 0;

  // Writes out everything accepted so far and releases resources; blocks. Called once, at
  // shutdown, after the I/O threads stopped submitting. Submit after Close drops.
  virtual void Close() = 0;

  // Reopens the files it writes by name (SIGHUP, after logrotate renamed them): later records
  // go to new files. Called on an I/O thread: MUST NOT block. Default: nothing to reopen.
  virtual void Reopen() {}
};

}  // namespace sg::gateway
