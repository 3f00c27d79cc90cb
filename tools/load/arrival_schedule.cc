#include "tools/load/arrival_schedule.h"

#include <cmath>

namespace sg::load {

ArrivalSchedule::ArrivalSchedule(ArrivalProcess process, double rate_per_s, uint64_t seed)
    : process_(process), rate_per_s_(rate_per_s), random_(seed), gap_(rate_per_s) {}

std::chrono::nanoseconds ArrivalSchedule::Next() {
  double offset_s;
  if (process_ == ArrivalProcess::kConstant) {
    offset_s = static_cast<double>(count_) / rate_per_s_;
  } else {
    // The first request goes at once; later ones after exponential gaps.
    if (count_ > 0) poisson_offset_s_ += gap_(random_);
    offset_s = poisson_offset_s_;
  }
  ++count_;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(offset_s * 1e9)));
}

}  // namespace sg::load
