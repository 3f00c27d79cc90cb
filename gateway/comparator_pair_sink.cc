#include "gateway/comparator_pair_sink.h"

#include "comparator/online_comparator.h"

namespace sg::gateway {

ComparatorPairSink::ComparatorPairSink(std::shared_ptr<comparator::OnlineComparator> online)
    : online_(std::move(online)) {}

bool ComparatorPairSink::Submit(PairRecord record) {
  if (closed_.load(std::memory_order_acquire)) {
    dropped_after_close_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return online_->Offer(std::move(record));
}

bool ComparatorPairSink::Submit(MirrorCounters counters) {
  if (closed_.load(std::memory_order_acquire)) {
    dropped_after_close_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return online_->Offer(std::move(counters));
}

uint64_t ComparatorPairSink::dropped() const {
  return online_->queue_stats().dropped + dropped_after_close_.load(std::memory_order_relaxed);
}

void ComparatorPairSink::Close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  online_->Flush();
}

}  // namespace sg::gateway
