// Mirror sampling: which requests get a shadow copy. Pure functions plus one atomic counter.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sg::gateway {

// Percent (0-100, fractional) as parts per million of requests.
uint64_t PercentToPpm(double percent);

// Counter sampling: request number `n` (0-based) is selected when floor((n+1)*p) > floor(n*p),
// so any window of requests holds the exact fraction, to one request.
bool CounterSelected(uint64_t n, uint64_t ppm);

// Hash sampling: the same key is selected every time for a given percent, and raising the percent
// only adds keys (a key selected at 10% is selected at 20%).
uint64_t HashKey(std::string_view key);
bool HashSelected(std::string_view key, uint64_t ppm);

// Body capture sampling (capture.body_sample): by a hash of the request id, salted so that it
// does not follow hash sampling on the same key (a request a mirror took at 10% is not more
// likely to keep its body). The same id gets the same answer on every mirror with the same share.
bool BodySampled(std::string_view request_id, uint64_t ppm);

// Per-mirror sampler: counter sampling, or hash sampling on a header value (requests without the
// header fall back to the counter, so they are still sampled at the configured rate).
class MirrorSampler {
 public:
  explicit MirrorSampler(bool hash) : hash_(hash) {}
  // Thread-safe.
  bool Sample(uint64_t ppm, std::string_view key);

 private:
  bool hash_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace sg::gateway
