// Microseconds, as the pair log and the metrics count time: one definition for every module.
#pragma once

#include <chrono>
#include <cstdint>

namespace sg {

// A duration in whole microseconds (truncated toward zero).
template <typename Rep, typename Period>
int64_t ToMicros(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

// Now, in microseconds since the Unix epoch (the system clock: pair records' ts_us).
inline int64_t NowUnixMicros() {
  return ToMicros(std::chrono::system_clock::now().time_since_epoch());
}

}  // namespace sg
