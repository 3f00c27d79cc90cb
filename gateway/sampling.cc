#include "gateway/sampling.h"

#include <cmath>

namespace sg::gateway {

namespace {
constexpr uint64_t kMillion = 1000000;
}

uint64_t PercentToPpm(double percent) {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return kMillion;
  return static_cast<uint64_t>(std::llround(percent * 10000.0));
}

bool CounterSelected(uint64_t n, uint64_t ppm) {
  using Wide = unsigned __int128;
  return (Wide(n + 1) * ppm) / kMillion > (Wide(n) * ppm) / kMillion;
}

uint64_t HashKey(std::string_view key) {
  // FNV-1a, then the splitmix64 finalizer so nearby keys spread over the buckets.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

bool HashSelected(std::string_view key, uint64_t ppm) {
  return HashKey(key) % kMillion < ppm;
}

bool BodySampled(std::string_view request_id, uint64_t ppm) {
  if (ppm >= kMillion) return true;
  if (ppm == 0) return false;
  // splitmix64's finalizer over the key's hash plus a constant: another, independent hash.
  uint64_t h = HashKey(request_id) + 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h % kMillion < ppm;
}

bool MirrorSampler::Sample(uint64_t ppm, std::string_view key) {
  if (ppm >= kMillion) return true;
  if (ppm == 0) return false;
  if (hash_ && !key.empty()) return HashSelected(key, ppm);
  return CounterSelected(counter_.fetch_add(1, std::memory_order_relaxed), ppm);
}

}  // namespace sg::gateway
