#include "gateway/fan_out_pair_sink.h"

namespace sg::gateway {

FanOutPairSink::FanOutPairSink(std::vector<std::shared_ptr<PairSink>> sinks)
    : sinks_(std::move(sinks)) {}

std::shared_ptr<PairSink> FanOutPairSink::Combine(std::vector<std::shared_ptr<PairSink>> sinks) {
  if (sinks.empty()) return nullptr;
  if (sinks.size() == 1) return std::move(sinks.front());
  return std::make_shared<FanOutPairSink>(std::move(sinks));
}

bool FanOutPairSink::Submit(PairRecord record) {
  bool all = true;
  for (size_t i = 0; i + 1 < sinks_.size(); ++i) all = sinks_[i]->Submit(PairRecord(record)) && all;
  if (!sinks_.empty()) all = sinks_.back()->Submit(std::move(record)) && all;
  return all;
}

bool FanOutPairSink::Submit(MirrorCounters counters) {
  bool all = true;
  for (const auto& sink : sinks_) {
    MirrorCounters copy = counters;
    copy.sink_dropped = sink->dropped();
    all = sink->Submit(std::move(copy)) && all;
  }
  return all;
}

bool FanOutPairSink::Submit(CutoverDecision decision) {
  bool all = true;
  for (const auto& sink : sinks_) all = sink->Submit(CutoverDecision(decision)) && all;
  return all;
}

uint64_t FanOutPairSink::dropped() const {
  uint64_t total = 0;
  for (const auto& sink : sinks_) total += sink->dropped();
  return total;
}

void FanOutPairSink::Reopen() {
  for (const auto& sink : sinks_) sink->Reopen();
}

void FanOutPairSink::Close() {
  for (const auto& sink : sinks_) sink->Close();
}

}  // namespace sg::gateway
