#include "gateway/cutover_pair_sink.h"

namespace sg::gateway {

bool CutoverPairSink::Submit(PairRecord record) {
  for (const auto& cutover : cutovers_) cutover->Offer(record);
  return next_->Submit(std::move(record));
}

}  // namespace sg::gateway
