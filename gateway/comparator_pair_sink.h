// ComparatorPairSink: the in-process comparator as a pair sink. Records are offered to an
// OnlineComparator (comparator/online_comparator.h), whose worker thread judges them; the
// gateway's I/O threads only pay the comparator's Offer (a move under a short lock). A full queue
// drops the record and counts it in the comparator's queue stats.
#pragma once

#include <atomic>
#include <memory>

#include "gateway/pair_sink.h"

namespace sg::comparator {
class OnlineComparator;
}  // namespace sg::comparator

namespace sg::gateway {

class ComparatorPairSink : public PairSink {
 public:
  // REQUIRES: `online` is not null. The comparator is shared: the admin endpoints read it too.
  explicit ComparatorPairSink(std::shared_ptr<comparator::OnlineComparator> online);

  bool Submit(PairRecord record) override;
  bool Submit(MirrorCounters counters) override;
  // The comparator queue's drops plus records submitted after Close.
  uint64_t dropped() const override;
  // Waits until every accepted record has been judged. The comparator itself stays alive and
  // readable (the final report is written after this).
  void Close() override;

 private:
  const std::shared_ptr<comparator::OnlineComparator> online_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> dropped_after_close_{0};
};

}  // namespace sg::gateway
