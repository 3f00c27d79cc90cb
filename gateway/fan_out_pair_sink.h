// FanOutPairSink: one PairSink over several, so the pair log and the in-process comparator see
// the same records. The gateway keeps talking to one sink; what it feeds is decided in main.
#pragma once

#include <memory>
#include <vector>

#include "gateway/pair_sink.h"

namespace sg::gateway {

class FanOutPairSink : public PairSink {
 public:
  // REQUIRES: no sink is null.
  explicit FanOutPairSink(std::vector<std::shared_ptr<PairSink>> sinks);

  // null for no sinks, the sink itself for one, a FanOutPairSink for more.
  static std::shared_ptr<PairSink> Combine(std::vector<std::shared_ptr<PairSink>> sinks);

  // Every sink but the last gets a copy (the bodies included: that copy, on the I/O thread, is
  // the cost of a second sink); the last gets the record. True when every sink accepted it.
  bool Submit(PairRecord record) override;
  // Each sink gets the counters with `sink_dropped` set to its own dropped(): a pair log's
  // counters records report the log's drops, the comparator's its queue's.
  bool Submit(MirrorCounters counters) override;
  bool Submit(CutoverDecision decision) override;
  // Sum over the sinks (a record dropped by two sinks counts twice).
  uint64_t dropped() const override;
  // Closes the sinks in order.
  void Close() override;
  void Reopen() override;

 private:
  const std::vector<std::shared_ptr<PairSink>> sinks_;
};

}  // namespace sg::gateway
