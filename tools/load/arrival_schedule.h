// Open-loop arrival times: request k is due at offset(k) from the start, whatever happened to
// the requests before it. Latency is measured from these intended times, so a slow server cannot
// slow the schedule down and hide its own queueing (no coordinated omission).
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sg::load {

enum class ArrivalProcess { kConstant, kPoisson };

class ArrivalSchedule {
 public:
  // REQUIRES: rate_per_s > 0.
  ArrivalSchedule(ArrivalProcess process, double rate_per_s, uint64_t seed);

  // The offset from the start at which the next request is due; successive calls are
  // non-decreasing. Constant: k / rate exactly (no accumulated rounding). Poisson: sums of
  // exponential gaps with mean 1 / rate, from a seeded generator (reproducible).
  std::chrono::nanoseconds Next();

 private:
  ArrivalProcess process_;
  double rate_per_s_;
  uint64_t count_ = 0;
  double poisson_offset_s_ = 0;
  std::mt19937_64 random_;
  std::exponential_distribution<double> gap_;
};

}  // namespace sg::load
