// CutoverPairSink: hands each pair record to the routes' cutovers (each takes a copy of its
// candidate's pairs for the step's comparison), then passes it on to the gateway's sink.
#pragma once

#include <memory>
#include <vector>

#include "gateway/cutover.h"
#include "gateway/pair_sink.h"

namespace sg::gateway {

class CutoverPairSink : public PairSink {
 public:
  // REQUIRES: `next` is not null.
  CutoverPairSink(std::shared_ptr<PairSink> next, std::vector<std::shared_ptr<Cutover>> cutovers)
      : next_(std::move(next)), cutovers_(std::move(cutovers)) {}

  bool Submit(PairRecord record) override;
  bool Submit(MirrorCounters counters) override { return next_->Submit(std::move(counters)); }
  bool Submit(CutoverDecision decision) override { return next_->Submit(std::move(decision)); }
  uint64_t dropped() const override { return next_->dropped(); }
  void Close() override { next_->Close(); }
  void Reopen() override { next_->Reopen(); }

 private:
  std::shared_ptr<PairSink> next_;
  std::vector<std::shared_ptr<Cutover>> cutovers_;
};

}  // namespace sg::gateway
